"""CW antibunching fit (Baronnier et al. eq. 4).

CW antibunching (:func:`g2_cw_fit`). Under continuous-wave excitation the HBT
coincidence histogram of a single emitter is::

    g2(tau) = 1 - C exp(-|tau - tau_off| / tau0)

(Baronnier et al., eq. 4), with tau0 = 1/(k_exc + k_rad) for a two-level system and C < 1 because
uncorrelated background photons and dark counts add accidental coincidences at zero
delay (C = rho1 rho2 with rho the signal fraction on each detector). tau_off is the
electronic delay between the channels. The measured histogram is this function convolved
with the coincidence IRF (the timing jitter of both detectors: sigma = sqrt(s1^2 + s2^2)
for Gaussian jitters) and averaged over each bin::

    mu_k = A * [1 - C * <(K (x) IRF)(tau)>_bin k],    K(t) = exp(-|t - tau_off| / tau0)

* Gaussian IRF (``irf=sigma_ps``): exact bin average through the exponentially modified
  Gaussian CDF F (K (x) N = tau0 [f(t) + f(-t)], f the ex-Gaussian density), i.e.
  <K>_[a,b) = tau0 [F(b) - F(a) - F(-b) + F(-a)] / (b - a);
* no IRF: exact bin average of the two-sided exponential;
* measured IRF array (odd length, centre element = zero delay, sampled with the bin
  width of the histogram): the bin-averaged model on an extended grid is convolved with
  the normalised IRF (discrete convolution).

Estimation. Counts (integer data): Poisson maximum likelihood (Fisher scoring, see
hbtscope.analysis._fisher_scoring), which is unbiased at the few coincidences per bin of
a typical CW histogram where a chi-square fit is not; uncertainties from the inverse
Fisher information. Already normalised g2 (float data): weighted least squares with
``g2_err`` (or unit weights, the covariance then scaled by the residual variance).

Normalisation. By default the plateau A is a free parameter (g2 = 1 is the plateau of
the fitted range). With ``normalise_by=(tau_min, tau_max)`` A is fixed to the mean counts
of the bins with tau_min <= |tau| < tau_max (long delays, e.g. beyond the blinking
bunching; tau measured from a fixed ``tau_offset_ps`` when one is given); its Poisson
error sigma_A = sqrt(sum n)/n_bins is propagated to the other parameters through
d theta/dA = -I_tt^-1 I_tA.

The blinking bunching at long delays is in :mod:`hbtscope.analysis.g2_long`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit
from scipy.special import gammaln

from hbtscope.analysis._fisher_scoring import _ml_fit
from hbtscope.analysis._gof import chi2_p_value, deviance_p_value, poisson_deviance
from hbtscope.analysis.irf import exgauss_cdf_parts

__all__ = ["G2CWResult", "g2_cw_fit", "g2_cw_model"]


# ======================================================================================
# helpers
# ======================================================================================


def _scalars(obj: Any) -> dict[str, float | int | str | bool]:
    out: dict[str, float | int | str | bool] = {}
    for name in obj.__dataclass_fields__:
        value = getattr(obj, name)
        if isinstance(value, np.ndarray | tuple):
            continue
        if isinstance(value, bool | np.bool_):
            out[name] = bool(value)
        elif isinstance(value, str):
            out[name] = value
        elif isinstance(value, int | np.integer):
            out[name] = int(value)
        else:
            out[name] = float(value)
    return out


def _ro(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.setflags(write=False)
    return a


@njit(cache=True, nogil=True)
def _two_sided_gauss(
    a: np.ndarray, b: np.ndarray, tau0: float, off: float, sigma: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin averages over [a, b) of exp(-|t - off|/tau0) (x) N(0, sigma), and their
    derivatives with respect to log tau0 and off."""
    n = a.shape[0]
    K = np.empty(n)
    dK = np.empty(n)
    dO = np.empty(n)
    for k in range(n):
        ua = a[k] - off
        ub = b[k] - off
        fa, dfa, ta = exgauss_cdf_parts(ua, tau0, sigma)
        fb, dfb, tb = exgauss_cdf_parts(ub, tau0, sigma)
        ga, dga, sa = exgauss_cdf_parts(-ua, tau0, sigma)
        gb, dgb, sb = exgauss_cdf_parts(-ub, tau0, sigma)
        w = b[k] - a[k]
        core = fb - fa - gb + ga
        K[k] = tau0 * core / w
        # d(tau0 * core)/dlog tau0 = tau0 * (core + d core/dlog tau0)
        dK[k] = tau0 * (core + dfb - dfa - dgb + dga) / w
        # dF(u)/doff = t (the "d/dt0" output); dF(-u)/doff = -t(-u)
        dO[k] = tau0 * (tb - ta + sb - sa) / w
    return K, dK, dO


def _two_sided_plain(
    a: np.ndarray, b: np.ndarray, tau0: float, off: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin averages of exp(-|t - off|/tau0) (no IRF) and derivatives (log tau0, off)."""

    def Q(t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        at = np.abs(t)
        e = np.exp(-at / tau0)
        q = np.sign(t) * tau0 * (1.0 - e)
        dq = np.sign(t) * (tau0 * (1.0 - e) - at * e)
        return q, dq, -e  # dQ/doff = -K(t)

    qa, dqa, oa = Q(a - off)
    qb, dqb, ob = Q(b - off)
    w = b - a
    return (qb - qa) / w, (dqb - dqa) / w, (ob - oa) / w


def _uniform_bins(lag: np.ndarray) -> float:
    if lag.size < 4:
        raise ValueError("the histogram needs at least 4 bins")
    step = np.diff(lag)
    bw = float(lag[-1] - lag[0]) / (lag.size - 1)
    if not bw > 0 or np.max(np.abs(step - bw)) > 1e-6 * bw:
        raise ValueError("lag_ps must be uniformly spaced, ascending bin centres")
    return bw


# ======================================================================================
# CW antibunching
# ======================================================================================


@dataclass(frozen=True, eq=False)
class G2CWResult:
    """Result of :func:`g2_cw_fit`. Times in ps.

    ``C``, ``tau0_ps``, ``tau_offset_ps``: parameters of 1 - C exp(-|tau - tau_off|/tau0);
    ``g2_0 = 1 - C`` (IRF-free value at tau_off) and ``g2_0_convolved`` (the minimum of
    the IRF-convolved model, what the histogram shows); ``baseline`` = A, coincidences
    per bin at g2 = 1 (or the g2 scale for normalised input). ``*_err``: 1 sigma (NaN
    when the parameter is fixed; infinite when the fit cannot identify it).
    ``converged``: the optimiser's status; ``identifiable``: False when the information
    matrix is singular or C / tau0 are unconstrained (e.g. no dip: a flat histogram), and
    ``message`` says which. Goodness of fit: ``chi2_red`` (Pearson, per degree of
    freedom ``dof``), ``deviance`` (Poisson deviance 2 sum[y ln(y/mu) - (y - mu)] for
    counts, the weighted chi-square for a normalised g2) and ``gof_p_value``: for counts the
    deviance against a chi-square with its exact low-count moments
    (:func:`hbtscope.analysis._gof.deviance_p_value`), for a normalised g2 chi2(dof).
    ``lag_ps``, ``g2``, ``g2_err``, ``model_g2``: data and model divided by the baseline,
    over the bins used.
    """

    C: float
    C_err: float
    tau0_ps: float
    tau0_ps_err: float
    g2_0: float
    g2_0_err: float
    g2_0_convolved: float
    tau_offset_ps: float
    tau_offset_ps_err: float
    baseline: float
    baseline_err: float
    normalised_by_window: bool
    method: str
    irf: str
    irf_sigma_ps: float
    chi2_red: float
    log_likelihood: float
    dof: int
    n_bins: int
    n_iter: int
    converged: bool
    identifiable: bool
    message: str
    deviance: float
    gof_p_value: float
    lag_ps: np.ndarray = field(repr=False)
    g2: np.ndarray = field(repr=False)
    g2_err: np.ndarray = field(repr=False)
    model_g2: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, float | int | str | bool]:
        """Scalar fields as plain Python values (arrays left out)."""
        return _scalars(self)


def g2_cw_model(
    lag_ps: np.ndarray,
    baseline: float,
    C: float,
    tau0_ps: float,
    tau_offset_ps: float = 0.0,
    irf_sigma_ps: float | None = None,
) -> np.ndarray:
    """Expected coincidences per bin of the model :func:`g2_cw_fit` fits (Gaussian IRF or
    none): ``baseline * (1 - C <exp(-|tau - tau_off| / tau0) (x) IRF>_bin)`` on the uniform
    bins centred at ``lag_ps``. With it, the fit's Poisson log-likelihood can be evaluated
    at any parameters (e.g. the generating ones, to check the optimum independently of the
    optimiser)."""
    lag = np.asarray(lag_ps, dtype=np.float64)
    bw = _uniform_bins(lag)
    a, b = lag - 0.5 * bw, lag + 0.5 * bw
    if irf_sigma_ps is None:
        K = _two_sided_plain(a, b, float(tau0_ps), float(tau_offset_ps))[0]
    else:
        K = _two_sided_gauss(a, b, float(tau0_ps), float(tau_offset_ps), float(irf_sigma_ps))[0]
    return float(baseline) * (1.0 - float(C) * K)


def g2_cw_fit(
    lag_ps: np.ndarray,
    counts_or_g2: np.ndarray,
    *,
    irf: None | float | np.ndarray = None,
    normalise_by: tuple[float, float] | None = None,
    fit_range_ps: tuple[float, float] | None = None,
    tau_offset_ps: float | None = None,
    data: str | None = None,
    g2_err: np.ndarray | None = None,
    max_iter: int = 200,
    exclude_ps: tuple = (),
) -> G2CWResult:
    """Fit g2(tau) = 1 - C exp(-|tau - tau_off|/tau0) (x) IRF to a CW HBT histogram.

    Parameters
    ----------
    lag_ps
        Uniformly spaced bin centres (e.g. from :func:`hbtscope.analysis.correlate`).
    counts_or_g2
        Coincidence counts per bin (Poisson maximum likelihood) or a normalised g2.
    irf
        None, the Gaussian sigma of the coincidence IRF in ps, or a measured IRF array
        (odd length, centre element at zero delay, same bin width).
    normalise_by
        (tau_min_ps, tau_max_ps): fix the baseline to the mean of the bins with
        tau_min <= |tau| < tau_max (see module doc). None: fitted baseline.
    fit_range_ps
        (lo, hi): fit only bins with lo <= tau <= hi (default: all bins).
    tau_offset_ps
        Fixed channel offset; None: fitted.
    data
        What ``counts_or_g2`` is: ``"counts"`` (coincidences per bin, Poisson ML) or
        ``"g2"`` (an already normalised g2, least squares). Never guessed from the values
        (a sparse float histogram of 0/1 counts looks like a normalised g2): ``None`` (or
        the old ``"auto"``) accepts an integer array as counts and refuses anything else.
    g2_err
        1-sigma errors of a normalised g2 (least-squares weights); ignored for counts.
    exclude_ps
        (lo, hi) windows of tau (ps, absolute lags) left out of the fit and of the
        normalisation window, e.g. the narrow SPAD crosstalk peaks; only with a Gaussian
        IRF or none (the model is then evaluated bin by bin, so holes are allowed).

    Returns
    -------
    G2CWResult
    """
    lag = np.asarray(lag_ps, dtype=np.float64)
    y_all = np.asarray(counts_or_g2, dtype=np.float64)
    if lag.ndim != 1 or y_all.shape != lag.shape:
        raise ValueError("lag_ps and counts_or_g2 must be 1-D arrays of the same length")
    if not np.all(np.isfinite(y_all)):
        raise ValueError("counts_or_g2 must be finite")
    bw = _uniform_bins(lag)
    if data is None or data == "auto":
        if not np.issubdtype(np.asarray(counts_or_g2).dtype, np.integer):
            raise ValueError(
                "say what the histogram is: data='counts' (coincidences per bin) or "
                "data='g2' (normalised); a float array is not taken as either by guessing"
            )
        is_counts = True
    elif data in ("counts", "g2"):
        is_counts = data == "counts"
    else:
        raise ValueError(f"data must be 'counts' or 'g2', got {data!r}")
    if is_counts and np.any(y_all < 0):
        raise ValueError("counts must be non-negative")

    # IRF
    if irf is None:
        kind, sigma, h = "none", math.nan, None
    elif np.ndim(irf) == 0:
        kind, sigma, h = "gaussian", float(irf), None
        if not sigma > 0:
            raise ValueError(f"the Gaussian IRF sigma must be > 0, got {irf!r}")
    else:
        h = np.asarray(irf, dtype=np.float64)
        if h.ndim != 1 or h.size % 2 != 1:
            raise ValueError("a measured irf must be a 1-D array of odd length (centre = 0)")
        if np.any(h < 0) or not h.sum() > 0:
            raise ValueError("a measured irf must be >= 0 and not all zero")
        kind, sigma, h = "array", math.nan, h / h.sum()

    # bins used
    sel = np.ones(lag.size, dtype=bool)
    if fit_range_ps is not None:
        lo_r, hi_r = float(fit_range_ps[0]), float(fit_range_ps[1])
        sel = (lag >= lo_r) & (lag <= hi_r)
    windows = np.asarray(exclude_ps, dtype=np.float64).reshape(-1, 2)
    kept = np.ones(lag.size, dtype=bool)
    for lo_x, hi_x in windows:
        if not (math.isfinite(lo_x) and math.isfinite(hi_x) and lo_x < hi_x):
            raise ValueError(f"each exclude_ps window is (lo, hi) with lo < hi, got {(lo_x, hi_x)}")
        kept &= ~((lag >= lo_x) & (lag <= hi_x))
    if windows.size and kind == "array":
        raise ValueError("exclude_ps needs a Gaussian IRF or none (a measured IRF is convolved)")
    sel &= kept
    if sel.sum() < 6:
        raise ValueError("fewer than 6 bins in the fit range")
    lag_f = lag[sel]
    y = y_all[sel]
    edges_a = lag_f - 0.5 * bw
    edges_b = lag_f + 0.5 * bw

    # ---------------- initial values ----------------
    k_s = max(1, min(5, lag_f.size // 20))
    smooth = np.convolve(y, np.ones(2 * k_s + 1) / (2 * k_s + 1), mode="same")
    inner = slice(k_s, lag_f.size - k_s)
    i_min = int(np.argmin(smooth[inner])) + k_s
    off0 = float(lag_f[i_min]) if tau_offset_ps is None else float(tau_offset_ps)
    dist = np.abs(lag_f - off0)
    outer = dist >= np.quantile(dist, 0.7)
    A0 = float(np.mean(y[outer])) if outer.any() else float(np.mean(y))
    if not A0 > 0:
        raise ValueError("the histogram has no coincidences away from zero delay")
    C0 = float(np.clip(1.0 - smooth[i_min] / A0, 0.05, 0.98))
    area = float(np.sum(np.clip(1.0 - y[dist < np.quantile(dist, 0.7)] / A0, 0, None))) * bw
    tau00 = float(np.clip(area / (2 * C0), 2 * bw, 0.25 * (lag_f[-1] - lag_f[0])))

    # fixed baseline from the long-delay window
    A_fixed: float | None = None
    A_fixed_err = math.nan
    if normalise_by is not None:
        w_lo, w_hi = float(normalise_by[0]), float(normalise_by[1])
        if not 0 <= w_lo < w_hi:
            raise ValueError("normalise_by must be (tau_min_ps, tau_max_ps) with 0 <= min < max")
        wd = np.abs(lag - (0.0 if tau_offset_ps is None else float(tau_offset_ps)))
        win = (wd >= w_lo) & (wd < w_hi) & kept
        if win.sum() < 1:
            raise ValueError(f"no bins with {w_lo} <= |tau| < {w_hi} ps")
        A_fixed = float(np.mean(y_all[win]))
        if not A_fixed > 0:
            raise ValueError("the normalisation window holds no coincidences")
        if is_counts:
            A_fixed_err = math.sqrt(float(np.sum(y_all[win]))) / win.sum()
        else:
            A_fixed_err = (
                float(np.std(y_all[win], ddof=1) / math.sqrt(win.sum()))
                if (win.sum() > 1)
                else math.nan
            )
        A0 = A_fixed

    # ---------------- model ----------------
    if kind == "array":
        m = h.size // 2
        ext_a = np.concatenate(
            (edges_a[0] - bw * np.arange(m, 0, -1), edges_a, edges_a[-1] + bw * np.arange(1, m + 1))
        )
        ext_b = ext_a + bw

    def kernel(tau0: float, off: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if kind == "gaussian":
            return _two_sided_gauss(edges_a, edges_b, tau0, off, sigma)
        if kind == "none":
            return _two_sided_plain(edges_a, edges_b, tau0, off)
        K, dK, dO = _two_sided_plain(ext_a, ext_b, tau0, off)
        return (
            np.convolve(K, h, mode="valid"),
            np.convolve(dK, h, mode="valid"),
            np.convolve(dO, h, mode="valid"),
        )

    fit_A = A_fixed is None
    fit_off = tau_offset_ps is None
    names = (["A"] if fit_A else []) + ["C", "log_tau0"] + (["tau_off"] if fit_off else [])
    iA = 0 if fit_A else -1
    iC = 1 if fit_A else 0
    iT = iC + 1
    iO = iT + 1 if fit_off else -1
    n_par = len(names)

    def unpack(th: np.ndarray) -> tuple[float, float, float, float]:
        A = th[iA] if fit_A else A_fixed
        off = th[iO] if fit_off else off0
        return float(A), float(th[iC]), float(math.exp(th[iT])), float(off)

    def fun_full(th: np.ndarray, with_A_column: bool = False):
        A, C, tau0, off = unpack(th)
        K, dK, dO = kernel(tau0, off)
        g = 1.0 - C * K
        mu = A * g
        cols = n_par + (1 if with_A_column else 0)
        J = np.empty((mu.size, cols))
        if fit_A:
            J[:, iA] = g
        J[:, iC] = -A * K
        J[:, iT] = -A * C * dK
        if fit_off:
            J[:, iO] = -A * C * dO
        if with_A_column:
            J[:, -1] = g
        return mu, J

    def fun(th: np.ndarray):
        return fun_full(th)

    th0 = np.empty(n_par)
    if fit_A:
        th0[iA] = A0
    th0[iC] = C0
    th0[iT] = math.log(tau00)
    if fit_off:
        th0[iO] = off0
    lower = np.full(n_par, -np.inf)
    upper = np.full(n_par, np.inf)
    lower[iT] = math.log(0.01 * bw)
    upper[iT] = math.log(10.0 * (lag[-1] - lag[0]))
    if fit_A:
        lower[iA] = 1e-12
    if fit_off:
        lower[iO] = lag_f[0]
        upper[iO] = lag_f[-1]

    if is_counts:
        out = _ml_fit(fun, y, th0, lower, upper, poisson=True, max_iter=max_iter)
        method = "poisson_mle"
    else:
        if g2_err is None:
            w = np.ones_like(y)
        else:
            e = np.asarray(g2_err, dtype=np.float64)
            if e.shape != lag.shape or np.any(e[sel] <= 0):
                raise ValueError("g2_err must be positive and shaped like lag_ps")
            w = 1.0 / e[sel] ** 2
        out = _ml_fit(fun, y, th0, lower, upper, poisson=False, weights=w, max_iter=max_iter)
        method = "least_squares"
    th = out.theta
    cov = out.cov
    mu = out.mu
    dof = int(y.size - n_par)
    if is_counts:
        chi2 = float(np.sum((y - mu) ** 2 / np.maximum(mu, 1e-300)))
        loglik = float(np.sum(y * np.log(np.maximum(mu, 1e-300)) - mu - gammaln(y + 1.0)))
    else:
        chi2 = float(np.sum(w * (y - mu) ** 2))
        loglik = math.nan
        if g2_err is None and dof > 0:
            cov = cov * (chi2 / dof)  # unit weights: scale by the residual variance
    if A_fixed is not None and math.isfinite(A_fixed_err):
        # propagate the baseline error: d theta / dA = -I_tt^-1 I_tA
        _, Jx = fun_full(th, with_A_column=True)
        wts = 1.0 / np.maximum(mu, 1e-300) if is_counts else w
        info = (Jx * wts[:, None]).T @ Jx
        dth = -np.linalg.solve(info[:n_par, :n_par], info[:n_par, n_par])
        cov = cov + np.outer(dth, dth) * A_fixed_err**2
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    A, C, tau0, off = unpack(th)
    # identifiable: a finite covariance and errors that say something (C is in [0, 1]:
    # sigma_C > 1 means "any contrast"; sigma(ln tau0) > 3 means tau0 unknown within a
    # factor of 20); the optimiser's own status is ``converged``
    problems = []
    if not np.all(np.isfinite(np.diag(cov))):
        problems.append("singular information matrix")
    if not sd[iC] < 1.0:
        problems.append(f"contrast unconstrained (sigma_C = {sd[iC]:.3g})")
    if not sd[iT] < 3.0:
        problems.append(f"tau0 unconstrained (sigma of ln tau0 = {sd[iT]:.3g})")
    if not out.converged:
        problems.append(f"did not converge in {out.n_iter} iterations")
    identifiable = not any(p.startswith(("singular", "contrast", "tau0")) for p in problems)
    if not identifiable:
        sd = np.where(np.isfinite(sd) & (sd < 1.0), sd, math.inf)
        sd[iC] = math.inf
        sd[iT] = math.inf
    if is_counts:
        deviance = poisson_deviance(y, mu)
        gof_p = float(deviance_p_value(y, mu, n_par)) if dof > 0 else math.nan
    else:
        deviance = chi2
        gof_p = chi2_p_value(chi2, dof)
    K, _, _ = kernel(tau0, off)
    g_model = 1.0 - C * K
    g2_err_out = np.sqrt(np.maximum(y, 0.0)) / A if is_counts else (1.0 / np.sqrt(w)) / A
    return G2CWResult(
        C=C,
        C_err=float(sd[iC]),
        tau0_ps=tau0,
        tau0_ps_err=float(tau0 * sd[iT]),
        g2_0=1.0 - C,
        g2_0_err=float(sd[iC]),
        g2_0_convolved=float(np.min(g_model)),
        tau_offset_ps=off,
        tau_offset_ps_err=float(sd[iO]) if fit_off else math.nan,
        baseline=A,
        baseline_err=float(sd[iA]) if fit_A else float(A_fixed_err),
        normalised_by_window=A_fixed is not None,
        method=method,
        irf=kind,
        irf_sigma_ps=sigma,
        chi2_red=chi2 / dof if dof > 0 else math.nan,
        log_likelihood=loglik,
        dof=dof,
        n_bins=int(y.size),
        n_iter=out.n_iter,
        converged=out.converged,
        identifiable=identifiable,
        message="; ".join(problems) if problems else "ok",
        deviance=deviance,
        gof_p_value=gof_p,
        lag_ps=_ro(lag_f),
        g2=_ro(y / A),
        g2_err=_ro(g2_err_out),
        model_g2=_ro(g_model),
    )
