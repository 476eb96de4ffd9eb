"""Fluorescence lifetime images (FLIM) from stacks of TCSPC histograms: a front end of the one
decay model (:mod:`hbtscope.analysis.decay_model`) and the one Poisson maximum-likelihood
engine (:mod:`hbtscope.analysis._poisson_ml`) that also fit single decays
(:func:`hbtscope.analysis.lifetime.fit_decay`).

Pure numpy/numba; no I/O. Times are in picoseconds.

Model
-----
A pixel's histogram ``y_k`` (bins ``k = 0 .. K-1`` of width ``dt``, bin 0 starting at the
histogram's time zero) is Poisson with mean

    mu_k = A1 h_k(tau1) + A2 h_k(tau2) + b

``b`` is a constant background per bin, ``A_i`` the photons of component ``i`` over one full
excitation period, and ``h(tau)`` the decay of one component seen through the instrument:
the IRF convolved with an exponential that is excited once per period ``T = M dt``
(``period_ps``; by default the histogram spans exactly one period, ``M = K``), so the tails
of earlier pulses wrap around. ``h`` sums to 1 over the ``M`` bins of a period. It is the
"grid" form of the decay model: the IRF is a histogram on the same bins (measured, e.g.
scattered laser light) or a Gaussian ``(centre_ps, sigma_ps)`` binned by
:func:`~hbtscope.analysis.irf.gaussian_irf` on up to 16 sub-bins per bin (sub-bins <=
sigma), taken as uniform within each bin, which makes the discrete convolution exact for
bin-integrated data; ``h`` and ``dh/dtau`` follow from one recursion over the bins, O(K +
non-zero IRF bins) per evaluation (no FFT). :func:`decay_model` gives the expected
histogram.

Estimation
----------
* **Maximum likelihood** (Poisson): per pixel, projected Levenberg-Marquardt / Fisher scoring
  (:mod:`hbtscope.analysis._poisson_ml`) on ``(A1, A2, ln tau1, ln tau2, b)`` with bounds
  (``A >= 0``, ``b >= 1e-9``, ``tau`` within ``tau_bounds_ps``); parameters at a bound with
  the gradient pointing out are held there. All pixels are fitted in parallel
  (``numba.prange``), so the whole image is one call. Convergence: log-likelihood change
  < 1e-7 with an accepted step, and the Newton decrement ``g^T F^-1 g / 2 < 1e-4`` at the
  end (``converged`` map); errors are the square roots of the diagonal of the inverse Fisher
  information at the optimum, propagated to derived quantities to first order.
* The background is held at ``b >= 1e-9``. Where the optimum lies on that bound (no
  background, and a lifetime long against the period so that the wrapped tail looks like a
  background) the covariance still includes ``b`` (inverse Fisher information of all free
  parameters), which makes the errors conservative there (pull widths ~0.8 measured), and
  the lifetime is biased low by a few percent at ~1000 photons (boundary effect of the
  constraint; it vanishes with counts). Letting ``b`` go negative removes that bias but makes
  the fit fail where ``mu`` touches 0 before the IRF (short lifetimes), so it is not done.
* ``taus="free"``: every pixel gets its own ``tau1 < tau2``; ``taus="global"``: the lifetimes
  are fitted once on the sum of all pixels and held fixed, each pixel fitting only its
  amplitudes and background (concave likelihood: always converges; the standard choice for
  ~1000 photons per pixel, where a free bi-exponential is poorly determined: measured pull
  widths of its per-pixel lifetimes 1.3-1.8 there, ~1 from ~20 000 photons on, with an
  O(1/N) ML bias of ~0.3 sigma at 20 000 photons); a tuple fixes them to given values.
  Starting values come from the fit of the summed histogram (``FlimResult.global_fit``, a
  :class:`~hbtscope.analysis.lifetime.DecayFitResult`; multi-start for two components).
* **Fallback** for pixels with fewer than ``min_photons`` photons: the mean arrival time
  (:func:`~hbtscope.analysis.mean_arrival.histogram_mean_delay`). The background-subtracted
  mean of the arrival times (measured from just before the IRF, modulo the period) is
  matched to the same quantity of the model ``h(tau)`` (a lookup table over ``tau``, so IRF,
  truncation and wrap-around are exact for a single exponential); its error is the standard
  error of the mean through the table's slope. The background per bin of dim pixels is the
  global fit's background per pixel; its uncertainty (shared by all dim pixels) is not in
  the per-pixel errors. Map ``method``: 0 no photons, 1 mean arrival time, 2 maximum
  likelihood.

Objective, goodness of fit, identifiability
-------------------------------------------
The ML fit minimises the Poisson deviance ``D = 2 sum [y ln(y/mu) - (y - mu)]`` (= -2 ln L
+ const) with ``mu`` from :func:`decay_model`. Every pixel reports ``deviance``, Pearson
``chi2_red = sum (y - mu)^2 / mu / dof`` with ``dof = K - n_free``, and ``gof_p_value``: the
probability of a deviance at least as large under the fitted model (scaled chi-square with
the exact low-count mean and variance of the deviance, ``_gof.deviance_p_value``).
``identifiable`` is false (the errors concerned become infinite instead of numbers like 1e9)
when the Fisher information of the free parameters is singular (the Cholesky factorisation
fails, or the condition number of the covariance's correlation form exceeds 1e12: two equal
lifetimes, a vanished component), when an error of ln tau exceeds 10 (a lifetime known only
within a factor e^10) or an amplitude's error exceeds 1e3 times the pixel's photons.

Derived quantities: amplitude fraction ``alpha1 = a1 / (a1 + a2)`` with decay amplitudes
``a_i = A_i / tau_i`` (``decay = a1 exp(-t/tau1) + a2 exp(-t/tau2)``), intensity fraction
``f1 = A1 / (A1 + A2)``, intensity-weighted mean lifetime ``tau_mean = f1 tau1 + f2 tau2``
(what the mean arrival time estimates) and amplitude-weighted ``tau_amp = alpha1 tau1 +
alpha2 tau2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hbtscope.analysis import _poisson_ml
from hbtscope.analysis._gof import (
    MAX_CONDITION,
    MAX_LOG_ERROR,
    MAX_RELATIVE_ERROR,
    deviance_p_value,
)
from hbtscope.analysis.decay_model import (
    I_AMP,
    I_BG,
    I_LOGTAU,
    N_PARAMS,
    DecayModel,
    make_grid_model,
    model_rows,
)
from hbtscope.analysis.irf import gaussian_irf
from hbtscope.analysis.lifetime import B_FLOOR, DecayFitResult, fit_histogram
from hbtscope.analysis.mean_arrival import histogram_mean_delay

__all__ = [
    "FlimResult",
    "decay_model",
    "flim_fit",
    "gaussian_irf",
    "mean_arrival_lifetime",
]

_A1, _A2 = I_AMP, I_AMP + 1
_T1, _T2 = I_LOGTAU, I_LOGTAU + 1
_SWAP = np.arange(N_PARAMS)
_SWAP[[_A1, _A2, _T1, _T2]] = [_A2, _A1, _T2, _T1]  # exchange the two components
_NAMES = ("A1", "A2", "A3", "ln_tau1", "ln_tau2", "ln_tau3", "t0", "b")


def decay_model(
    n_bins: int,
    bin_ps: float,
    irf,
    taus_ps,
    photons,
    background: float = 0.0,
    *,
    period_ps: float | None = None,
) -> np.ndarray:
    """Expected histogram ``sum_i photons_i h(tau_i) + background`` that :func:`flim_fit`
    fits: :mod:`hbtscope.analysis.decay_model` in its "grid" form (module doc).

    ``photons_i``: photons of component ``i`` per period (in the whole period, not only the
    window); ``irf`` as in :func:`flim_fit`.
    """
    model = make_grid_model(irf, int(n_bins), float(bin_ps), period_ps)
    return model.expectation(taus_ps, photons, float(background), 0.0)


@dataclass(frozen=True)
class FlimResult:
    """Per-pixel lifetime maps from :func:`flim_fit` (arrays of the image shape); the
    uncertainty of ``<name>`` is ``<name>_err``."""

    tau1_ps: np.ndarray
    tau1_ps_err: np.ndarray
    tau2_ps: np.ndarray
    tau2_ps_err: np.ndarray
    fraction1: np.ndarray  # amplitude fraction alpha1 = a1 / (a1 + a2)
    fraction1_err: np.ndarray
    intensity_fraction1: np.ndarray  # A1 / (A1 + A2)
    tau_mean_ps: np.ndarray  # intensity-weighted mean lifetime (fit or mean arrival time)
    tau_mean_ps_err: np.ndarray
    tau_amp_ps: np.ndarray  # amplitude-weighted mean lifetime
    amplitude1: np.ndarray  # photons of component 1 per period
    amplitude2: np.ndarray
    background: np.ndarray  # counts per bin
    photons: np.ndarray  # total counts in the histogram
    method: np.ndarray  # int8: 0 none, 1 mean arrival time, 2 maximum likelihood
    converged: np.ndarray  # bool (True for the mean-arrival fallback)
    at_bound: np.ndarray  # bool: a lifetime or amplitude ended on its bound
    n_iter: np.ndarray
    deviance: np.ndarray  # Poisson deviance of the fit (NaN for the fallback)
    model: str
    taus_mode: str
    global_taus_ps: np.ndarray = field(repr=False)
    global_fit: DecayFitResult | None = field(default=None, repr=False)
    chi2_red: np.ndarray | None = None  # Pearson chi2 / dof per fitted pixel (NaN otherwise)
    dof: int = 0  # K - free parameters per pixel
    gof_p_value: np.ndarray | None = None  # deviance p-value per fitted pixel
    identifiable: np.ndarray | None = None  # bool: the ML fit determines its parameters
    # (False where no ML fit was made: empty or mean-arrival-time pixels)

    def as_dict(self) -> dict[str, np.ndarray | str]:
        out: dict = {}
        for k, v in self.__dict__.items():
            if k == "global_fit":
                continue
            out[k] = v
        return out


# ============================================================================== helpers


def _gof(Y2, theta, model: DecayModel, n_exp, n_free):
    """Pearson chi2_red and the deviance p-value of each row's fit (module doc)."""
    mu = np.empty_like(Y2)
    model_rows(np.ascontiguousarray(theta), n_exp, *model.args(), mu)
    dof = Y2.shape[1] - n_free
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2_red = np.sum((Y2 - mu) ** 2 / np.maximum(mu, 1e-300), axis=1) / dof
    p = deviance_p_value(Y2, mu, n_free)
    return chi2_red, np.atleast_1d(p), dof


def _identifiable(theta, cov, free, status, photons, K):
    """Per row: identifiable (bool), singular (bool) and the free parameters not determined
    (n, N_PARAMS) (module doc)."""
    f = np.asarray(free)
    is_free = np.zeros(N_PARAMS, dtype=bool)
    is_free[f] = True
    sd = np.sqrt(np.abs(np.diagonal(cov, axis1=1, axis2=2)))
    limit = np.full_like(sd, np.inf)
    limit[:, [_A1, _A2]] = MAX_RELATIVE_ERROR * np.maximum(
        np.abs(theta[:, [_A1, _A2]]), photons[:, None]
    )
    limit[:, [_T1, _T2]] = MAX_LOG_ERROR
    limit[:, I_BG] = MAX_RELATIVE_ERROR * np.maximum(np.abs(theta[:, I_BG]), photons / K + 1.0)
    bad = is_free & (~np.isfinite(sd) | (sd > limit))
    # the kernel leaves NaN (singular information) or zero rows (a parameter held at its
    # bound because the full information was singular) in the covariance
    sub = cov[:, f][:, :, f]
    d = np.sqrt(np.abs(np.diagonal(sub, axis1=1, axis2=2)))
    usable = np.all(np.isfinite(sub.reshape(sub.shape[0], -1)), axis=1) & np.all(d > 0, axis=1)
    singular = ~usable | (status == _poisson_ml.STATUS_SINGULAR)
    bad[:, f] |= ~usable[:, None] & ~(np.isfinite(d) & (d > 0))
    rows = np.flatnonzero(usable)
    if rows.size:
        c = sub[rows] / (d[rows][:, :, None] * d[rows][:, None, :])
        w, v = np.linalg.eigh(c)
        with np.errstate(divide="ignore"):
            cond = np.where(w[:, 0] > 0, w[:, -1] / w[:, 0], np.inf)
        sing = ~(cond < MAX_CONDITION)
        singular[rows[sing]] = True
        # the undetermined direction: the covariance's largest-variance eigenvector
        bad[rows[sing][:, None], f[None, :]] |= np.abs(v[sing][:, :, -1]) > 0.2
    return ~singular & ~np.any(bad, axis=1), singular, bad


def _prepare(stack, bin_ps):
    Y = np.asarray(stack, dtype=np.float64)
    if Y.ndim < 1 or Y.shape[-1] < 4:
        raise ValueError("histograms need at least 4 bins along the last axis")
    if not np.all(np.isfinite(Y)) or np.any(Y < 0):
        raise ValueError("histogram counts must be finite and >= 0")
    dt = float(bin_ps)
    if not dt > 0:
        raise ValueError(f"bin_ps must be > 0, got {bin_ps!r}")
    return Y, dt


def _tau_bounds(tau_bounds_ps, model: DecayModel) -> tuple[float, float]:
    if tau_bounds_ps is not None:
        return float(tau_bounds_ps[0]), float(tau_bounds_ps[1])
    return 0.05 * model.bin_ps, 10.0 * model.M * model.bin_ps


def _bounds(two, taus_mode, tau_bounds_ps, model: DecayModel):
    tlo, thi = _tau_bounds(tau_bounds_ps, model)
    lo = np.zeros(N_PARAMS)
    hi = np.full(N_PARAMS, 1e300)
    lo[[_T1, _T2]] = math.log(tlo)
    hi[[_T1, _T2]] = math.log(thi)
    lo[I_BG] = B_FLOOR
    if taus_mode == "free":
        free = [_A1, _A2, _T1, _T2, I_BG] if two else [_A1, _T1, I_BG]
    else:
        free = [_A1, _A2, I_BG] if two else [_A1, I_BG]
    return lo, hi, np.array(free, dtype=np.int64)


def _origin_and_times(irf_coarse: np.ndarray, K: int, dt: float):
    """Arrival-time origin just before the IRF, and bin-centre times relative to it (mod T)."""
    M = irf_coarse.size
    T = M * dt
    peak = int(np.argmax(irf_coarse))
    rolled = np.roll(irf_coarse, M // 2 - peak)  # peak in the middle
    first = int(np.argmax(np.cumsum(rolled) >= 1e-4))
    origin_bin = (first - (M // 2 - peak)) % M
    origin = origin_bin * dt
    t_rel = np.mod((np.arange(K) + 0.5) * dt - origin, T)
    return origin, t_rel


def mean_arrival_lifetime(
    histograms,
    bin_ps: float,
    irf,
    *,
    background=0.0,
    period_ps: float | None = None,
    tau_bounds_ps: tuple[float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Lifetime from the mean arrival time (fast, for dim pixels): ``(tau_ps, tau_ps_err)``.

    ``histograms``: ``(..., K)``; ``background``: counts per bin (scalar or per histogram).
    The background-subtracted mean arrival time (:func:`hbtscope.analysis.mean_arrival.
    histogram_mean_delay`), measured from just before the IRF, is inverted through the
    model's mean arrival time versus a single lifetime (a table of 512 log-spaced
    lifetimes), which accounts for the IRF, the window and the wrap-around.
    """
    Y, dt = _prepare(histograms, bin_ps)
    model = make_grid_model(irf, Y.shape[-1], dt, period_ps)
    return _mean_arrival(Y, model, background, tau_bounds_ps)


def _mean_arrival(Y, model: DecayModel, background, tau_bounds_ps):
    K = Y.shape[-1]
    _, t_rel = _origin_and_times(model.coarse_irf, K, model.bin_ps)
    tlo, thi = _tau_bounds(tau_bounds_ps, model)
    taus = np.geomspace(tlo, thi, 512)
    rows = np.zeros((taus.size, N_PARAMS))
    rows[:, _A1] = 1.0
    rows[:, _T1] = np.log(taus)
    shapes = np.empty((taus.size, K))
    model_rows(rows, 1, *model.args(), shapes)
    table = histogram_mean_delay(shapes, model.bin_ps, times_ps=t_rel)
    order = np.argsort(table)
    table, taus = table[order], taus[order]
    m, err_m = histogram_mean_delay(
        Y, model.bin_ps, background=background, times_ps=t_rel, return_error=True
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.interp(m, table, taus, left=np.nan, right=np.nan)
        slope = np.interp(tau, taus, np.gradient(table, taus))
        err = err_m / slope
    return tau, err


def _derived(theta, cov, two):
    """Lifetimes, fractions and mean lifetimes with first-order errors; arrays (n,)."""
    A1, A2 = theta[:, _A1], theta[:, _A2]
    t1, t2 = np.exp(theta[:, _T1]), np.exp(theta[:, _T2])
    n = theta.shape[0]

    def err(grad):
        return np.sqrt(np.clip(np.einsum("ni,nij,nj->n", grad, cov, grad), 0.0, None))

    z = np.zeros(n)
    g = np.zeros((n, N_PARAMS))
    out = {}
    g[:, _T1] = t1
    out["tau1_err"] = err(g)
    g[:] = 0
    g[:, _T2] = t2
    out["tau2_err"] = err(g) if two else np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        if two:
            a1, a2 = A1 / t1, A2 / t2
            S = a1 + a2
            alpha = a1 / S
            g[:] = 0
            g[:, _A1] = (a2 / S**2) / t1
            g[:, _A2] = (-a1 / S**2) / t2
            g[:, _T1] = (a2 / S**2) * (-a1)
            g[:, _T2] = (-a1 / S**2) * (-a2)
            out["alpha_err"] = err(g)
            tot = A1 + A2
            f1 = A1 / tot
            tm = (A1 * t1 + A2 * t2) / tot
            g[:] = 0
            g[:, _A1] = (t1 - tm) / tot
            g[:, _A2] = (t2 - tm) / tot
            g[:, _T1] = A1 * t1 / tot
            g[:, _T2] = A2 * t2 / tot
            out["tm_err"] = err(g)
            out["tau_amp"] = (A1 + A2) / S
        else:
            alpha = np.ones(n)
            f1 = np.ones(n)
            tm = t1
            out["alpha_err"] = z
            out["tm_err"] = out["tau1_err"]
            out["tau_amp"] = t1
    out.update(tau1=t1, tau2=t2 if two else np.full(n, np.nan), alpha=alpha, f1=f1, tm=tm)
    return out


def _global_fit(ysum, model: DecayModel, two: bool, tau_bounds_ps, max_iter):
    """Fit of the summed histogram (the one decay fit, on the "grid" form): theta and the
    :class:`~hbtscope.analysis.lifetime.DecayFitResult`."""
    fit = fit_histogram(ysum, model, n_exp=2 if two else 1, background=True,
                        tau_bounds_ps=_tau_bounds(tau_bounds_ps, model),
                        max_iter=max_iter)  # fmt: skip
    theta = np.zeros(N_PARAMS)
    theta[_A1] = fit.photons[0]
    theta[_T1] = math.log(fit.taus_ps[0])
    if two:
        theta[_A2] = fit.photons[1]
        theta[_T2] = math.log(fit.taus_ps[1])
    else:
        theta[_T2] = theta[_T1]
    theta[I_BG] = max(fit.background, B_FLOOR)
    return theta, fit


# ========================================================================= public API


def flim_fit(
    stack,
    bin_ps: float,
    irf,
    *,
    model: str = "bi",
    taus: str | tuple[float, ...] = "free",
    period_ps: float | None = None,
    min_photons: float = 200,
    tau_bounds_ps: tuple[float, float] | None = None,
    max_iter: int = 100,
) -> FlimResult:
    """Per-pixel lifetime maps from a ``(ny, nx, n_bins)`` stack of TCSPC histograms.

    Parameters
    ----------
    stack
        Histograms, last axis = TCSPC bins (any leading shape).
    bin_ps
        Bin width in ps.
    irf
        Measured IRF (``n_bins`` or one period of bins, any normalisation) or a Gaussian as
        ``(centre_ps, sigma_ps)``.
    model
        ``"bi"`` (two exponentials + background) or ``"mono"``.
    taus
        ``"free"`` (per pixel), ``"global"`` (fitted on the summed histogram, then fixed) or a
        tuple of fixed lifetimes in ps (one per component).
    period_ps
        Excitation period, if longer than the histogram (default: the histogram is one period).
    min_photons
        Pixels with fewer counts get the mean-arrival-time lifetime instead of a fit.
    tau_bounds_ps
        Allowed lifetimes (default ``(0.05 bin, 10 periods)``).
    max_iter
        Levenberg-Marquardt iterations per pixel.

    Returns
    -------
    FlimResult
    """
    Y, dt = _prepare(stack, bin_ps)
    if model not in ("mono", "bi"):
        raise ValueError(f"model must be 'mono' or 'bi', got {model!r}")
    shape = Y.shape[:-1]
    K = Y.shape[-1]
    Y2 = Y.reshape(-1, K)
    n = Y2.shape[0]
    dm = make_grid_model(irf, K, dt, period_ps)
    two = model == "bi"
    n_exp = 2 if two else 1
    if isinstance(taus, str):
        if taus not in ("free", "global"):
            raise ValueError(f"taus must be 'free', 'global' or a tuple, got {taus!r}")
        taus_mode = taus
        fixed = None
    else:
        fixed = np.asarray(taus, dtype=np.float64).ravel()
        if fixed.size != n_exp or not np.all(fixed > 0):
            raise ValueError(f"taus must give {n_exp} positive lifetimes")
        taus_mode = "fixed"
    lo, hi, free = _bounds(two, taus_mode, tau_bounds_ps, dm)
    photons = Y2.sum(axis=1)
    bright = photons >= float(min_photons)
    dim = (~bright) & (photons > 0)

    # global fit on the summed histogram of the bright pixels (or of all)
    sel = bright if bright.any() else photons > 0
    if not sel.any():
        nan = np.full(shape, np.nan)
        return _empty_result(shape, nan, model, taus_mode)
    ysum = Y2[sel].sum(axis=0)
    g_theta, g_fit = _global_fit(ysum, dm, two, tau_bounds_ps, 4 * max_iter)
    n_sel = int(sel.sum())
    b_pix = max(g_theta[I_BG] / n_sel, B_FLOOR)
    if fixed is not None:
        g_theta[_T1] = math.log(fixed[0])
        g_theta[_T2] = math.log(fixed[-1])
    global_taus = np.exp(g_theta[[_T1, _T2]]) if two else np.exp(g_theta[[_T1]])

    out_theta = np.full((n, N_PARAMS), np.nan)
    out_cov = np.zeros((n, N_PARAMS, N_PARAMS))
    dev = np.full(n, np.nan)
    chi2_red = np.full(n, np.nan)
    p_gof = np.full(n, np.nan)
    ident = np.zeros(n, dtype=bool)
    bad = np.zeros((n, N_PARAMS), dtype=bool)
    n_iter = np.zeros(n, dtype=np.int64)
    status = np.full(n, -1, dtype=np.int64)
    if bright.any():
        yb = Y2[bright]
        sig = np.maximum(yb.sum(axis=1) - b_pix * K, 1.0)
        tot = max(g_theta[_A1] + g_theta[_A2], 1e-300) if two else max(g_theta[_A1], 1e-300)
        th0 = np.zeros((yb.shape[0], N_PARAMS))
        th0[:, _A1] = sig * g_theta[_A1] / tot
        th0[:, _A2] = sig * g_theta[_A2] / tot if two else 0.0
        th0[:, _T1] = g_theta[_T1]
        th0[:, _T2] = g_theta[_T2]
        th0[:, I_BG] = b_pix
        th, cov, _, dv, it, st = _poisson_ml.run(yb, th0, free, lo, hi, dm, n_exp,
                                                 max_iter=max_iter)  # fmt: skip
        if two and taus_mode == "free":  # order tau1 < tau2 in every pixel
            swap = th[:, _T1] > th[:, _T2]
            th[swap] = th[swap][:, _SWAP]
            cov[swap] = cov[swap][:, _SWAP][:, :, _SWAP]
        out_theta[bright], out_cov[bright] = th, cov
        dev[bright], n_iter[bright], status[bright] = dv, it, st
        chi2_red[bright], p_gof[bright], _ = _gof(yb, th, dm, n_exp, free.size)
        ident[bright], _, bad[bright] = _identifiable(th, cov, free, st, yb.sum(axis=1), K)

    d = _derived(np.nan_to_num(out_theta), out_cov, two)
    fitted = bright
    nan = np.nan
    tau1 = np.where(fitted, d["tau1"], nan)
    tau2 = np.where(fitted, d["tau2"], nan)
    tau1_err = np.where(fitted, d["tau1_err"], nan)
    tau2_err = np.where(fitted, d["tau2_err"], nan)
    alpha = np.where(fitted, d["alpha"], nan)
    alpha_err = np.where(fitted, d["alpha_err"], nan)
    f1 = np.where(fitted, d["f1"], nan)
    tm = np.where(fitted, d["tm"], nan)
    tm_err = np.where(fitted, d["tm_err"], nan)
    tau_amp = np.where(fitted, d["tau_amp"], nan)
    tau1_err = np.where(bad[:, _T1], np.inf, tau1_err)
    tau2_err = np.where(bad[:, _T2], np.inf, tau2_err)
    if taus_mode != "free":  # lifetimes were not fitted per pixel
        tau1_err = np.where(fitted, 0.0, nan)
        tau2_err = np.where(fitted, 0.0 if two else nan, nan)
    method = np.where(fitted, 2, 0).astype(np.int8)
    converged = fitted & (status == _poisson_ml.STATUS_CONVERGED)
    at_bound = np.zeros(n, dtype=bool)
    if fitted.any():
        th = out_theta[fitted]
        chk = [p for p in ([_A1, _T1] + ([_A2, _T2] if two else [])) if p in free]
        ab = np.zeros(th.shape[0], dtype=bool)
        for p in chk:
            ab |= (th[:, p] <= lo[p]) | (th[:, p] >= hi[p])
        at_bound[fitted] = ab
    if dim.any():
        t_fb, e_fb = _mean_arrival(Y2[dim], dm, b_pix, tau_bounds_ps)
        tm[dim], tm_err[dim] = t_fb, e_fb
        method[dim] = 1
        converged[dim] = np.isfinite(t_fb)
    amp1 = np.where(fitted, out_theta[:, _A1], nan)
    amp2 = np.where(fitted & two, out_theta[:, _A2], nan)
    bg = np.where(fitted, out_theta[:, I_BG], np.where(dim, b_pix, nan))

    def r(a):
        return np.asarray(a).reshape(shape)

    return FlimResult(
        tau1_ps=r(tau1),
        tau1_ps_err=r(tau1_err),
        tau2_ps=r(tau2),
        tau2_ps_err=r(tau2_err),
        fraction1=r(alpha),
        fraction1_err=r(alpha_err),
        intensity_fraction1=r(f1),
        tau_mean_ps=r(tm),
        tau_mean_ps_err=r(tm_err),
        tau_amp_ps=r(tau_amp),
        amplitude1=r(amp1),
        amplitude2=r(amp2),
        background=r(bg),
        photons=r(photons),
        method=r(method),
        converged=r(converged),
        at_bound=r(at_bound),
        n_iter=r(n_iter),
        deviance=r(dev),
        model=model,
        taus_mode=taus_mode,
        global_taus_ps=global_taus,
        global_fit=g_fit,
        chi2_red=r(chi2_red),
        dof=int(K - free.size),
        gof_p_value=r(p_gof),
        identifiable=r(ident),
    )


def _empty_result(shape, nan, model, taus_mode) -> FlimResult:
    zeros_i = np.zeros(shape, dtype=np.int8)
    return FlimResult(
        tau1_ps=nan, tau1_ps_err=nan, tau2_ps=nan, tau2_ps_err=nan, fraction1=nan,
        fraction1_err=nan, intensity_fraction1=nan, tau_mean_ps=nan, tau_mean_ps_err=nan,
        tau_amp_ps=nan, amplitude1=nan, amplitude2=nan, background=nan,
        photons=np.zeros(shape), method=zeros_i, converged=np.zeros(shape, bool),
        at_bound=np.zeros(shape, bool), n_iter=np.zeros(shape, np.int64), deviance=nan,
        model=model, taus_mode=taus_mode, global_taus_ps=np.full(2 if model == "bi" else 1, np.nan),
    )  # fmt: skip
