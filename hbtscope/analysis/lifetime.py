"""Fluorescence decays: TCSPC histograms, maximum-likelihood multi-exponential fits and
fast mean-arrival-time lifetime estimators.

Histogram (:func:`decay_histogram`): the delay of every photon after its preceding sync
(laser pulse), ``delay = photon - sync[last sync <= photon]``, binned in ``n_bins`` bins of
``bin_ps`` starting at delay 0; photons before the first sync or beyond the range are
dropped.

Model (:func:`fit_decay`, Pierini et al. eq. 2, 001, 004 eq. 3). Bin k covers
[k*dt, (k+1)*dt), dt = ``bin_ps``. Expected counts::

    mu_k = sum_i a_i * u_k(tau_i, t0) + B

``u_k`` is the fraction of the photons of a unit-area decay (1/tau) exp(-(t - t0)/tau),
t >= t0, convolved with the instrument response (IRF) that falls in bin k, integrated
exactly over the bin:

* ``irf=None``: pure exponential starting at t0 (a step). t0 is then not a smooth
  parameter (its maximum-likelihood estimate is pinned to the first photon), so it is
  not fitted: it defaults to the start of the brightest bin.
* ``irf={"gaussian": sigma_ps}``: exponentially modified Gaussian, bin integrals as
  differences of its closed-form CDF ``F(u) = Phi(u/s) - exp(s^2/2tau^2 - u/tau)
  Phi(u/s - s/tau)`` (evaluated through erfcx, no overflow), with closed-form
  derivatives. t0 = centre of the Gaussian.
* ``irf=array`` (measured IRF on the same bins, any normalisation): the IRF is taken as a
  piecewise-constant density (uniform within each of its bins) and shifted by t0
  (continuous; t0 = 0 means "as measured"). The convolution with the exponential and the
  integration over the detection bins are done exactly: an IRF bin at distance m bins
  (fractional offset r) before a detection bin contributes ``g_r(m)``, with closed forms
  for m = 0, 1 and a geometric series ``~ exp(-m dt/tau)`` for m >= 2, summed by an O(n)
  recursion.

Pulse pile-up wrap-around (``period_ps`` = P): the tails of all earlier pulses are added,
i.e. the decay is the periodic ``sum_{m>=0} h(t - t0 + m P)`` (closed-form geometric sum
``exp(-P/tau) / (1 - exp(-P/tau))`` of the exponential tails), and for the Gaussian IRF also
the rising edge of the next pulse. Assumes 0 <= t0 < P and a histogram range <= P.

a_i is the number of photons of component i per full decay (including the part outside
the range), B the background per bin. Reported:

* ``amplitudes`` A_i = a_i (1 - exp(-dt/tau_i)): the pre-exponential factor of eq. 2, i.e.
  counts per bin of component i in the first bin after t0 (one pulse, no IRF);
* ``fractions`` f_i = a_i / sum a (fraction of signal photons, "49 % of signal" in seed
  004), ``amplitude_fractions`` A_i / sum A;
* ``tau_intensity_ps`` = sum f_i tau_i and ``tau_amplitude_ps`` = sum alpha_i tau_i.

Fit. Poisson maximum likelihood: minimise ``NLL = sum_k (mu_k - n_k ln mu_k)`` over the
fit range by Levenberg-Marquardt-damped Fisher scoring (gradient ``J^T (1 - n/mu)``,
expected information ``I = J^T diag(1/mu) J``), lifetimes on a log scale, amplitudes and
background kept >= 0. The Poisson MLE is unbiased at low counts where chi-square fits are
not, and reaches the Cramer-Rao bound (F-value ~1 for a mono-exponential with a narrow
IRF). Uncertainties: square roots of the diagonal of the inverse expected Fisher
information at the optimum, over all free parameters (also when a bounded parameter
sits at 0, which is conservative), propagated to derived quantities to first order.
Goodness of fit: Pearson ``chi2_red = sum (n - mu)^2 / mu / dof`` with
``dof = n_fit_bins - n_free``, the Poisson deviance ``D``, and ``gof_p_value``: the probability of a
deviance at least as large under the fitted model, from a scaled chi-square with the exact
low-count mean and variance of D (``_gof.deviance_p_value``; Pearson's X^2 has a far heavier
tail at low counts). The
objective is public: :func:`decay_deviance` (= 2 NLL + a constant of the data) evaluated
at any parameters through :func:`decay_expectation`.

Multi-start: one start for a mono-exponential (the mean-delay lifetime), 2-3 lifetime
splits around it for two or three components; the best likelihood is kept.
Identifiability: ``identifiable`` is false (with a ``message``, and infinite errors for the
parameters concerned instead of numbers like 1e9) when the Fisher information is singular
(condition number of its correlation form > 1e12, e.g. two equal lifetimes) or a relative
error exceeds 1e3 (an error of ln tau above 10: known only within a factor e^10, e.g.
the lifetime of a component whose amplitude went to 0);
``at_bound`` when a lifetime, an amplitude or t0 ended on its bound.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit
from scipy.special import gammaln

from hbtscope.analysis._gof import (
    MAX_LOG_ERROR,
    MAX_RELATIVE_ERROR,
    deviance_p_value,
    identifiability,
    pearson_p_value,
    poisson_deviance,
)
from hbtscope.analysis.correlation import _as_tags

__all__ = [
    "DecayFitResult",
    "decay_deviance",
    "decay_expectation",
    "decay_histogram",
    "fit_decay",
    "histogram_mean_delay",
    "lifetime_from_mean",
    "mean_arrival_time",
    "photon_delays",
]


# ======================================================================================
# histograms and fast estimators
# ======================================================================================


def _as_int_array(x: object, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.size == 0:
        return np.empty(0, dtype=np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integer picosecond tags, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def photon_delays(photon_ps: np.ndarray, sync_ps: np.ndarray) -> np.ndarray:
    """Delay of each photon after its preceding sync (``sync <= photon``), int64 ps.

    ``photon_ps`` need not be sorted; ``sync_ps`` must be sorted ascending. Photons
    before the first sync get -1. Vectorised with ``searchsorted``.
    """
    ph = _as_int_array(photon_ps, "photon_ps")
    sync = _as_tags(sync_ps, "sync_ps")
    out = np.full(ph.size, -1, dtype=np.int64)
    if ph.size == 0 or sync.size == 0:
        return out
    idx = np.searchsorted(sync, ph, side="right") - 1
    ok = idx >= 0
    out[ok] = ph[ok] - sync[idx[ok]]
    return out


def decay_histogram(
    photon_ps: np.ndarray, sync_ps: np.ndarray, bin_ps: int, n_bins: int
) -> np.ndarray:
    """TCSPC histogram: counts of photon delays in ``[k*bin_ps, (k+1)*bin_ps)``.

    Delays are those of :func:`photon_delays`; photons before the first sync or with a
    delay >= ``n_bins * bin_ps`` are dropped. Returns int64 ``counts`` of length n_bins.
    """
    bw = int(bin_ps)
    nb = int(n_bins)
    if bw != bin_ps or bw <= 0:
        raise ValueError(f"bin_ps must be a positive integer number of ps, got {bin_ps!r}")
    if nb != n_bins or nb <= 0:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    d = photon_delays(photon_ps, sync_ps)
    d = d[d >= 0] // bw
    d = d[d < nb]
    return np.bincount(d, minlength=nb).astype(np.int64)


def mean_arrival_time(
    delays_ps: np.ndarray,
    groups: np.ndarray | None = None,
    n_groups: int | None = None,
    *,
    t0_ps: float = 0.0,
) -> float | np.ndarray:
    """Mean photon delay minus ``t0_ps`` (e.g. the IRF centroid): the fast lifetime.

    Negative delays (no preceding sync, see :func:`photon_delays`) are ignored. With
    ``groups`` (one non-negative integer label per photon, e.g. its intensity-trace bin)
    the mean is computed per group by ``bincount`` (``n_groups`` groups, NaN where
    empty): the lifetime-per-bin / FLID estimator. For a mono-exponential decay without
    background and an untruncated range the result is tau; see
    :func:`lifetime_from_mean` for the truncation correction.
    """
    d = np.asarray(delays_ps)
    if d.ndim != 1:
        raise ValueError("delays_ps must be 1-D")
    ok = d >= 0
    if groups is None:
        if not ok.any():
            return float("nan")
        return float(np.mean(d[ok].astype(np.float64))) - float(t0_ps)
    g = np.asarray(groups)
    if g.shape != d.shape:
        raise ValueError("groups must have the same shape as delays_ps")
    if not np.issubdtype(g.dtype, np.integer):
        raise TypeError("groups must be integer labels")
    ok &= g >= 0
    ng = int(g[ok].max()) + 1 if n_groups is None and ok.any() else int(n_groups or 0)
    ok &= g < ng
    n = np.bincount(g[ok], minlength=ng).astype(np.float64)
    s = np.bincount(g[ok], weights=d[ok].astype(np.float64), minlength=ng)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / n - float(t0_ps)


def histogram_mean_delay(
    counts: np.ndarray, bin_ps: float, *, t0_ps: float = 0.0, background: float = 0.0
) -> float:
    """Mean delay of a histogram minus ``t0_ps``: ``sum (t_k - t0)(n_k - B) / sum (n_k - B)``
    with bin centres ``t_k = (k + 1/2) bin_ps`` and background ``B`` per bin. Applied to an
    IRF histogram it gives the IRF centroid."""
    n = np.asarray(counts, dtype=np.float64) - float(background)
    t = (np.arange(n.size) + 0.5) * float(bin_ps)
    tot = n.sum()
    if not tot > 0:
        return float("nan")
    return float((t * n).sum() / tot) - float(t0_ps)


def lifetime_from_mean(mean_ps: float | np.ndarray, *, window_ps: float | None = None):
    """Lifetime from the mean delay after t0 of a mono-exponential decay.

    Without ``window_ps`` this is the identity (``<t> = tau``). With a detection window
    [t0, t0 + W) the mean of the truncated exponential is
    ``<t> = tau - W / (exp(W/tau) - 1)``, inverted here by Newton iterations (vectorised,
    NaN where ``<t>`` is not in (0, W/2)).
    """
    m = np.asarray(mean_ps, dtype=np.float64)
    if window_ps is None:
        return m if m.ndim else float(m)
    W = float(window_ps)
    ok = (m > 0) & (m < 0.5 * W)
    tau = np.where(ok, m, np.nan)
    for _ in range(60):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            z = W / tau
            em1 = np.expm1(z)
            f = tau - W / em1 - m
            # d/dtau [W / (e^z - 1)] = W e^z z / (tau (e^z - 1)^2)
            df = 1.0 - W * np.exp(z) * z / (tau * em1 * em1)
            df = np.where(np.isfinite(df), df, 1.0)
            step = f / df
        tau = np.where(ok, np.clip(tau - step, 1e-6 * m, np.inf), np.nan)
        if np.all(~ok | (np.abs(step) <= 1e-12 * np.abs(tau))):
            break
    return tau if tau.ndim else float(tau)


# ======================================================================================
# decay shapes (unit-area component, per bin)
# ======================================================================================


def _shape_none(
    edges: np.ndarray, tau: float, t0: float, period: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Bin integrals of (1/tau) exp(-(t-t0)/tau), t >= t0 (periodic if period), and their
    derivative with respect to log tau."""
    u = edges - t0
    if period is None:
        w = np.maximum(u, 0.0)
        H = -np.exp(-w / tau)
        dH = H * (w / tau)
    else:
        P = period
        k = np.floor(u / P)
        w = u - k * P
        qp = math.exp(-P / tau)
        e = -np.exp(-w / tau) / (1.0 - qp)
        H = e + k
        dH = e * (w / tau + qp * P / (tau * (1.0 - qp)))
    return np.diff(H), np.diff(dH)


@njit(cache=True)
def _erfcx(z: float) -> float:
    """Scaled complementary error function exp(z^2) erfc(z) for z >= 0."""
    if z < 25.0:
        return math.exp(z * z) * math.erfc(z)
    # asymptotic series, relative error < 1e-10 for z >= 25
    iz2 = 1.0 / (z * z)
    return (1.0 - 0.5 * iz2 * (1.0 - 1.5 * iz2 * (1.0 - 2.5 * iz2))) / (z * 1.7724538509055159)


@njit(cache=True)
def _gauss_cdf_parts(u: float, tau: float, sigma: float) -> tuple[float, float, float]:
    """Exp(tau) (x) Gaussian(sigma): CDF F(u), tau dF/dtau, dF/dt0 (= -density)."""
    st = sigma / tau
    if u / sigma - st >= 9.0:
        # Phi factors are 1 to 1e-19: F = 1 - E, E = exp(s^2/2tau^2 - u/tau)
        E = math.exp(0.5 * st * st - u / tau)
        return 1.0 - E, -(u / tau - st * st) * E, -E / tau
    if u <= -38.0 * sigma:
        return 0.0, 0.0, 0.0
    z = (st - u / sigma) * 0.7071067811865476
    g = math.exp(-0.5 * (u / sigma) ** 2)
    if z >= 0.0:
        G = 0.5 * g * _erfcx(z)
    else:
        G = 0.5 * math.exp(min(0.5 * st * st - u / tau, 0.0)) * math.erfc(z)
    phi = g * 0.3989422804014327
    F = 0.5 * math.erfc(-u / sigma * 0.7071067811865476) - G
    return F, -(u / tau - st * st) * G - st * phi, -G / tau


@njit(cache=True)
def _shape_gauss_kernel(
    edges: np.ndarray, tau: float, t0: float, sigma: float, period: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = edges.shape[0]
    F = np.empty(n)
    dF = np.empty(n)
    dT = np.empty(n)
    periodic = period > 0.0
    if periodic:
        qp = math.exp(-period / tau)
        c = qp * period / (tau * (1.0 - qp))
        st2 = (sigma / tau) ** 2
    for k in range(n):
        u = edges[k] - t0
        f, df, dt0 = _gauss_cdf_parts(u, tau, sigma)
        if periodic:
            # next pulse, and the exponential tails of all earlier pulses:
            # W(u) = -E(u + P) / (1 - exp(-P/tau))
            f1, df1, dt1 = _gauss_cdf_parts(u - period, tau, sigma)
            W = -math.exp(min(0.5 * st2 - (u + period) / tau, 700.0)) / (1.0 - qp)
            f += f1 + W
            df += df1 + W * (-st2 + (u + period) / tau + c)
            dt0 += dt1 + W / tau
        F[k] = f
        dF[k] = df
        dT[k] = dt0
    return np.diff(F), np.diff(dF), np.diff(dT)


def _shape_gauss(
    edges: np.ndarray, tau: float, t0: float, sigma: float, period: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin integrals of the Gaussian-IRF decay and their derivatives wrt log tau and t0.

    Earlier pulses (periodic case) add sum_{m>=1} [F(b + mP) - F(a + mP)] with F ~ 1 - E
    there, i.e. the geometric sum of exponential tails; the next pulse adds F(u - P).
    """
    return _shape_gauss_kernel(
        edges, float(tau), float(t0), float(sigma), 0.0 if period is None else float(period)
    )


@njit(cache=True)
def _irf_conv_kernel(h: np.ndarray, q: int, r: float, x: float, out: np.ndarray) -> None:
    """out[k] = sum_j h[j] g_r(k - j - q): piecewise-uniform IRF (bin j uniform on
    [(j+q+r), (j+q+r+1)) in units of dt) convolved with Exp(tau), x = dt/tau, integrated
    over the detection bins [k, k+1)."""
    n = out.shape[0]
    nh = h.shape[0]
    emx = math.exp(-x)
    om = -math.expm1(-x)  # 1 - e^-x
    e1r = math.exp(-(1.0 - r) * x)  # e^{(r-1)x}
    g0 = (1.0 - r) - (-math.expm1(-(1.0 - r) * x)) / x
    g1 = om * (1.0 - e1r) / x + r - (e1r - emx) / x
    c2 = om * om * e1r / x  # g_r(m) = c2 * e^{-(m-2)x} for m >= 2
    v = 0.0  # v_k = sum_{m>=2} e^{-(m-2)x} h'[k-m]
    for k in range(n):
        if k >= 2:
            j = k - 2 - q
            hp = h[j] if 0 <= j < nh else 0.0
            v = v * emx + hp
        j0 = k - q
        j1 = k - 1 - q
        h0 = h[j0] if 0 <= j0 < nh else 0.0
        h1 = h[j1] if 0 <= j1 < nh else 0.0
        out[k] = g0 * h0 + g1 * h1 + c2 * v


def _shape_array(
    n_bins: int, dt: float, h: np.ndarray, tau: float, shift: float, period: float | None
) -> np.ndarray:
    """Measured IRF ``h`` (normalised, on the histogram bins) shifted by ``shift`` ps."""
    delta = shift / dt
    q = math.floor(delta)
    r = delta - q
    x = dt / tau
    # for q < 0 the IRF bins shifted before bin 0 still feed the tail: pad on the left
    pad = max(0, -q) + 2
    out = np.empty(n_bins + pad, dtype=np.float64)
    _irf_conv_kernel(h, q + pad, r, min(x, 700.0), out)
    res = out[pad:]
    if period is not None:
        # previous pulses: every IRF bin lies wholly before every detection bin, so each
        # contributes the pure exponential bin integral, summed over m >= 1 geometrically:
        # (1/x)(1-e^-x)(e^x-1) e^{-(k-j-q-r)x - mP/tau}
        P = period
        nz = np.flatnonzero(h > 0)
        if nz.size:
            J = int(nz[-1])
            jj = np.arange(J + 1)
            with np.errstate(under="ignore"):
                lw = math.log(float(np.sum(h[: J + 1] * np.exp((jj - J) * x))))
            log_c = (
                math.log(-math.expm1(-x))
                + x
                + math.log(-math.expm1(-x) if x < 700 else 1.0)
                - math.log(x)
                - math.log(-math.expm1(-P / tau))
            )
            k = np.arange(n_bins)
            expo = log_c + lw + (J + q + r - k) * x - P / tau
            with np.errstate(under="ignore"):
                res = res + np.exp(np.minimum(expo, 700.0))
    return res


# ======================================================================================
# generic Poisson / Gaussian maximum-likelihood engine (also used by g2_cw)
# ======================================================================================


@dataclass
class _FitOutput:
    theta: np.ndarray
    mu: np.ndarray
    jac: np.ndarray
    cov: np.ndarray
    nll: float
    n_iter: int
    converged: bool


def _nll(n: np.ndarray, mu: np.ndarray, poisson: bool, w: np.ndarray | None) -> float:
    if poisson:
        # a negative expectation is outside the model; an exactly zero one where counts
        # were seen (e.g. far before the rise without background) is a large but finite
        # penalty so the optimiser can move away from it
        if np.any(mu < 0):
            return math.inf
        return float(np.sum(mu - n * np.log(np.maximum(mu, 1e-300))))
    return float(0.5 * np.sum(w * (n - mu) ** 2))


def _ml_fit(
    fun: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    n: np.ndarray,
    theta0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    *,
    poisson: bool = True,
    weights: np.ndarray | None = None,
    max_iter: int = 200,
    tol: float = 1e-10,
) -> _FitOutput:
    """Levenberg-Marquardt-damped Fisher scoring.

    ``fun(theta) -> (mu, J)`` with ``J = d mu / d theta`` (n_data x n_par). Poisson:
    NLL = sum(mu - n ln mu), information J^T diag(1/mu) J. Gaussian: NLL = 1/2 sum w (n -
    mu)^2, information J^T diag(w) J. Box bounds by clipping (projected steps).
    """
    theta = np.clip(np.asarray(theta0, dtype=np.float64), lower, upper)
    mu, J = fun(theta)
    nll = _nll(n, mu, poisson, weights)
    if not math.isfinite(nll):
        raise ValueError("the initial model is negative")
    lam = 1e-3
    converged = False
    it = 0
    while it < max_iter:
        it += 1
        if poisson:
            wmu = 1.0 / np.maximum(mu, 1e-300)
            grad = J.T @ (1.0 - n * wmu)
            info = (J * wmu[:, None]).T @ J
        else:
            grad = J.T @ (weights * (mu - n))
            info = (J * weights[:, None]).T @ J
        d = np.sqrt(np.maximum(np.diag(info), 1e-300))
        improved = False
        for _ in range(30):
            A = info / np.outer(d, d) + lam * np.eye(theta.size)
            try:
                step = -np.linalg.solve(A, grad / d) / d
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            trial = np.clip(theta + step, lower, upper)
            mu_t, J_t = fun(trial)
            nll_t = _nll(n, mu_t, poisson, weights)
            if nll_t <= nll:
                improved = True
                break
            lam *= 10.0
        if not improved:
            converged = True  # no descent direction left: at the optimum (to precision)
            break
        dn = nll - nll_t
        theta, mu, J, nll = trial, mu_t, J_t, nll_t
        lam = max(lam * 0.1, 1e-12)
        if dn <= tol * (1.0 + abs(nll)) and np.all(np.abs(step) <= 1e-6 * (1.0 + np.abs(theta))):
            converged = True
            break
        if dn <= 1e-13 * (1.0 + abs(nll)):
            converged = True
            break
    if poisson:
        wmu = 1.0 / np.maximum(mu, 1e-300)
        info = (J * wmu[:, None]).T @ J
    else:
        info = (J * weights[:, None]).T @ J
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(info)
    return _FitOutput(theta, mu, J, cov, nll, it, converged)


# ======================================================================================
# fit_decay
# ======================================================================================


@dataclass(frozen=True, eq=False)
class DecayFitResult:
    """Result of :func:`fit_decay` (times in ps, counts per bin; see the module doc).

    Per-component arrays are sorted by increasing lifetime. ``*_err`` are 1-sigma
    uncertainties from the inverse Fisher information (NaN for fixed parameters; inf for
    parameters the data do not determine). Goodness of fit: ``chi2_red`` (Pearson / dof),
    ``deviance``, ``dof``, ``gof_p_value`` (deviance, low-count exact moments);
    ``identifiable``, ``at_bound`` and ``message`` as in the module doc.
    """

    n_exp: int
    taus_ps: np.ndarray
    taus_err_ps: np.ndarray
    amplitudes: np.ndarray
    amplitudes_err: np.ndarray
    photons: np.ndarray
    photons_err: np.ndarray
    fractions: np.ndarray
    fractions_err: np.ndarray
    amplitude_fractions: np.ndarray
    amplitude_fractions_err: np.ndarray
    tau_intensity_ps: float
    tau_intensity_err_ps: float
    tau_amplitude_ps: float
    tau_amplitude_err_ps: float
    background: float
    background_err: float
    background_fraction: float
    t0_ps: float
    t0_err_ps: float
    log_likelihood: float
    deviance: float
    chi2_red: float
    dof: int
    n_photons: int
    n_iter: int
    converged: bool
    irf: str
    irf_sigma_ps: float
    period_ps: float
    bin_ps: float
    fit_start: int
    fit_stop: int
    model: np.ndarray = field(repr=False)
    param_names: tuple[str, ...] = field(repr=False)
    covariance: np.ndarray = field(repr=False)
    gof_p_value: float = math.nan
    identifiable: bool = True
    at_bound: bool = False
    message: str = ""

    @property
    def tau_ps(self) -> float:
        """Lifetime of a mono-exponential fit (the first component otherwise)."""
        return float(self.taus_ps[0])

    @property
    def tau_err_ps(self) -> float:
        return float(self.taus_err_ps[0])

    def as_dict(self) -> dict[str, float | int | str | bool]:
        """Scalars and per-component values flattened (``tau_1_ps``, ``fraction_1``, ...)."""
        out: dict[str, float | int | str | bool] = {}
        per = {
            "taus_ps": "tau_{}_ps",
            "taus_err_ps": "tau_{}_err_ps",
            "amplitudes": "amplitude_{}",
            "amplitudes_err": "amplitude_{}_err",
            "photons": "photons_{}",
            "photons_err": "photons_{}_err",
            "fractions": "fraction_{}",
            "fractions_err": "fraction_{}_err",
            "amplitude_fractions": "amplitude_fraction_{}",
            "amplitude_fractions_err": "amplitude_fraction_{}_err",
        }
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in per:
                for i, v in enumerate(value, start=1):
                    out[per[name].format(i)] = float(v)
            elif name in ("model", "covariance", "param_names"):
                continue
            elif isinstance(value, bool | np.bool_):
                out[name] = bool(value)
            elif isinstance(value, str):
                out[name] = value
            elif isinstance(value, int | np.integer):
                out[name] = int(value)
            else:
                out[name] = float(value)
        return out


def _parse_irf(irf: Any, n_bins: int) -> tuple[str, float, np.ndarray | None]:
    if irf is None:
        return "none", math.nan, None
    if isinstance(irf, dict):
        if set(irf) != {"gaussian"}:
            raise ValueError(f"irf dict must be {{'gaussian': sigma_ps}}, got keys {set(irf)}")
        s = float(irf["gaussian"])
        if not s > 0:
            raise ValueError(f"gaussian IRF sigma must be > 0, got {s}")
        return "gaussian", s, None
    h = np.asarray(irf, dtype=np.float64)
    if h.ndim != 1 or h.size != n_bins:
        raise ValueError(
            f"a measured irf must be a 1-D array on the same bins as counts "
            f"(length {n_bins}), got shape {h.shape}"
        )
    if np.any(h < 0) or not h.sum() > 0 or not np.all(np.isfinite(h)):
        raise ValueError("a measured irf must be finite, >= 0 and not all zero")
    return "array", math.nan, h / h.sum()


def _unit_shape(
    kind: str, sigma: float, h: np.ndarray | None, nb: int, dt: float, tau: float, t0: float,
    P: float | None,
) -> np.ndarray:  # fmt: skip
    """Bin integrals u_k(tau, t0) of one unit-area component over all ``nb`` bins."""
    if kind == "none":
        return _shape_none(np.arange(nb + 1, dtype=np.float64) * dt, tau, t0, P)[0]
    if kind == "gaussian":
        return _shape_gauss(np.arange(nb + 1, dtype=np.float64) * dt, tau, t0, sigma, P)[0]
    return _shape_array(nb, dt, h, tau, t0, P)


def decay_expectation(
    n_bins: int,
    bin_ps: float,
    taus_ps,
    photons,
    background: float = 0.0,
    *,
    irf: None | np.ndarray | dict = None,
    t0_ps: float = 0.0,
    period_ps: float | None = None,
) -> np.ndarray:
    """Expected counts ``mu_k = sum_i photons_i u_k(tau_i, t0) + background`` of the model
    :func:`fit_decay` fits (module doc), over all ``n_bins`` bins of ``bin_ps``.

    ``photons_i``: photons of component i per full decay (``DecayFitResult.photons``);
    ``irf`` and ``t0_ps`` as in :func:`fit_decay` (for ``irf=None`` the step time).
    """
    nb = int(n_bins)
    dt = float(bin_ps)
    kind, sigma, h = _parse_irf(irf, nb)
    P = None if period_ps is None else float(period_ps)
    mu = np.full(nb, float(background))
    for tau, a in zip(np.atleast_1d(taus_ps), np.atleast_1d(photons), strict=True):
        mu += float(a) * _unit_shape(kind, sigma, h, nb, dt, float(tau), float(t0_ps), P)
    return mu


def decay_deviance(
    counts,
    bin_ps: float,
    taus_ps,
    photons,
    background: float = 0.0,
    *,
    irf: None | np.ndarray | dict = None,
    t0_ps: float = 0.0,
    period_ps: float | None = None,
    fit_range: tuple[int, int] | None = None,
) -> float:
    """The objective of :func:`fit_decay` at arbitrary parameters: the Poisson deviance
    ``D = 2 sum_k [n_k ln(n_k / mu_k) - (n_k - mu_k)]`` over ``fit_range`` (default all
    bins), ``mu`` from :func:`decay_expectation`. ``D = 2 NLL + const(data)`` with
    ``NLL = sum (mu - n ln mu)``, so the fit minimises it; ``DecayFitResult.deviance`` is its
    value at the optimum."""
    n = np.asarray(counts, dtype=np.float64)
    mu = decay_expectation(
        n.size, bin_ps, taus_ps, photons, background, irf=irf, t0_ps=t0_ps, period_ps=period_ps
    )
    lo, hi = (0, n.size) if fit_range is None else (int(fit_range[0]), int(fit_range[1]))
    return poisson_deviance(n[lo:hi], mu[lo:hi])


def _rise_time(y: np.ndarray, dt: float, base: float) -> float:
    """Time of the first half-maximum crossing on the rising edge (bin centre)."""
    peak = int(np.argmax(y))
    half = base + 0.5 * (y[peak] - base)
    k = peak
    while k > 0 and y[k - 1] >= half:
        k -= 1
    return (k + 0.5) * dt


def fit_decay(
    counts: np.ndarray,
    bin_ps: float,
    *,
    n_exp: int = 1,
    irf: None | np.ndarray | dict = None,
    background: bool | float = True,
    t0_ps: float | None = None,
    period_ps: float | None = None,
    fit_range: tuple[int, int] | None = None,
    tau_init_ps: tuple[float, ...] | None = None,
    max_iter: int = 200,
) -> DecayFitResult:
    """Poisson maximum-likelihood fit of IRF (x) sum_i A_i exp(-t/tau_i) + B to a decay.

    Parameters
    ----------
    counts
        TCSPC histogram (non-negative counts), bin k = [k, k+1) * ``bin_ps``.
    bin_ps
        Bin width in ps.
    n_exp
        Number of exponential components: 1, 2 or 3.
    irf
        ``None`` (no IRF, step at t0), ``{"gaussian": sigma_ps}``, or a measured IRF array
        on the same bins (normalised internally).
    background
        ``True``: fit a constant background per bin; ``False``: none; a number: fixed
        background per bin.
    t0_ps
        Fixed pulse arrival time (Gaussian IRF: centre; measured IRF: shift of the IRF;
        no IRF: start of the exponential). ``None``: fitted (with an IRF) or the start of
        the brightest bin (without).
    period_ps
        Laser period for the pile-up wrap-around of earlier pulses' tails (None: no wrap).
    fit_range
        (start, stop) bin indices of the likelihood (default: all bins).
    tau_init_ps
        Optional initial lifetimes (length n_exp).

    Returns
    -------
    DecayFitResult
    """
    n_all = np.asarray(counts, dtype=np.float64)
    if n_all.ndim != 1 or n_all.size < 3:
        raise ValueError("counts must be a 1-D histogram with at least 3 bins")
    if np.any(n_all < 0) or not np.all(np.isfinite(n_all)):
        raise ValueError("counts must be finite and non-negative")
    if n_exp not in (1, 2, 3):
        raise ValueError(f"n_exp must be 1, 2 or 3, got {n_exp!r}")
    dt = float(bin_ps)
    if not dt > 0:
        raise ValueError(f"bin_ps must be > 0, got {bin_ps!r}")
    nb = n_all.size
    kind, sigma, h = _parse_irf(irf, nb)
    P = None if period_ps is None else float(period_ps)
    if P is not None and not P > 0:
        raise ValueError(f"period_ps must be > 0, got {period_ps!r}")
    lo, hi = (0, nb) if fit_range is None else (int(fit_range[0]), int(fit_range[1]))
    if not 0 <= lo < hi <= nb or hi - lo < 2 * n_exp + 3:
        raise ValueError(f"fit_range must be within [0, {nb}] and hold enough bins")
    n = n_all[lo:hi]
    n_tot = float(n.sum())
    if not n_tot > 0:
        raise ValueError("no counts in the fit range")
    edges_all = np.arange(nb + 1, dtype=np.float64) * dt

    h_tau = 1e-4
    h_t0 = 1e-2 * dt

    def shape(tau: float, t0: float) -> np.ndarray:
        if kind == "none":
            return _shape_none(edges_all, tau, t0, P)[0]
        if kind == "gaussian":
            return _shape_gauss(edges_all, tau, t0, sigma, P)[0]
        return _shape_array(nb, dt, h, tau, t0, P)

    def shape_d(tau: float, t0: float, need_t0: bool) -> tuple[np.ndarray, ...]:
        """(u, du/dlog tau, du/dt0 or None) over all bins."""
        if kind == "none":
            u, du = _shape_none(edges_all, tau, t0, P)
            return u, du, None
        if kind == "gaussian":
            return _shape_gauss(edges_all, tau, t0, sigma, P)
        u = _shape_array(nb, dt, h, tau, t0, P)
        up = _shape_array(nb, dt, h, tau * math.exp(h_tau), t0, P)
        dn = _shape_array(nb, dt, h, tau * math.exp(-h_tau), t0, P)
        du = (up - dn) / (2 * h_tau)
        dt0 = None
        if need_t0:
            up = _shape_array(nb, dt, h, tau, t0 + h_t0, P)
            dn = _shape_array(nb, dt, h, tau, t0 - h_t0, P)
            dt0 = (up - dn) / (2 * h_t0)
        return u, du, dt0

    # ---------------- initial values ----------------
    tail = n_all[-max(3, nb // 10) :]
    head = n_all[: max(3, nb // 20)]
    b0 = float(min(tail.mean(), head.mean()))
    peak = int(np.argmax(n_all))
    if kind == "array":
        t_rise_data = _rise_time(n_all, dt, b0)
        t_rise_irf = _rise_time(h, dt, 0.0)
        t0_init = t_rise_data - t_rise_irf
        ref = float(np.sum((np.arange(nb) + 0.5) * dt * h))  # IRF centroid, after shift
        ref += t0_init
    elif kind == "gaussian":
        t0_init = _rise_time(n_all, dt, b0)
        ref = t0_init
    else:
        t0_init = peak * dt
        ref = t0_init
    t0_fixed = t0_ps is not None or kind == "none"
    t0_val = float(t0_ps) if t0_ps is not None else t0_init
    if t0_ps is not None:
        ref = ref - t0_init + t0_val
    # mean delay after the reference time, background removed -> mono-exp guess
    tc = (np.arange(nb) + 0.5) * dt
    after = tc >= ref
    w = np.maximum(n_all[after] - b0, 0.0)
    window = max(nb * dt - ref, 2 * dt)
    if w.sum() > 0:
        m = float(np.sum((tc[after] - ref) * w) / w.sum())
        tau_m = lifetime_from_mean(m, window_ps=window) if m < 0.5 * window else m
        if not math.isfinite(tau_m):
            tau_m = m
    else:
        tau_m = 0.2 * window
    tau_m = float(np.clip(tau_m, 0.5 * dt, 10 * window))

    if isinstance(background, bool | np.bool_):
        fit_bg = bool(background)
        b_fixed = None if fit_bg else 0.0
    else:
        fit_bg = False
        b_fixed = float(background)
    if b_fixed is not None and b_fixed < 0:
        raise ValueError("a fixed background must be >= 0")

    # parameter vector: [log tau_1..n, t0?, a_1..n, B?]
    names = [f"log_tau_{i + 1}" for i in range(n_exp)]
    if not t0_fixed:
        names.append("t0_ps")
    names += [f"photons_{i + 1}" for i in range(n_exp)]
    if fit_bg:
        names.append("background")
    i_t0 = n_exp if not t0_fixed else -1
    i_a = n_exp + (0 if t0_fixed else 1)
    i_b = i_a + n_exp if fit_bg else -1
    n_par = len(names)
    lower = np.full(n_par, -np.inf)
    upper = np.full(n_par, np.inf)
    lower[:n_exp] = math.log(0.02 * dt)
    upper[:n_exp] = math.log(1e3 * max(nb * dt, P or 0.0))
    lower[i_a : i_a + n_exp] = 0.0
    if fit_bg:
        lower[i_b] = 0.0
    if not t0_fixed:
        lower[i_t0] = -0.5 * nb * dt
        upper[i_t0] = (P if P is not None else nb * dt) * (1.0 - 1e-9)

    def fun(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        taus = np.exp(theta[:n_exp])
        t0 = theta[i_t0] if not t0_fixed else t0_val
        a = theta[i_a : i_a + n_exp]
        B = theta[i_b] if fit_bg else b_fixed
        mu = np.full(hi - lo, B)
        J = np.empty((hi - lo, n_par))
        dmu_dt0 = np.zeros(hi - lo)
        for i in range(n_exp):
            u, du, dt0 = shape_d(taus[i], t0, not t0_fixed)
            u = u[lo:hi]
            mu += a[i] * u
            J[:, i_a + i] = u
            J[:, i] = a[i] * du[lo:hi]
            if not t0_fixed:
                dmu_dt0 += a[i] * dt0[lo:hi]
        if not t0_fixed:
            J[:, i_t0] = dmu_dt0
        if fit_bg:
            J[:, i_b] = 1.0
        return mu, J

    def start(taus: np.ndarray) -> np.ndarray:
        th = np.empty(n_par)
        th[:n_exp] = np.log(taus)
        if not t0_fixed:
            th[i_t0] = t0_val
        bg = max(b0, 1e-3 * n_tot / n.size) if fit_bg else (b_fixed or 0.0)
        signal = max(n_tot - bg * n.size, 0.1 * n_tot)
        # photons per component so that the range holds the signal
        fr = np.array([shape(t, t0_val)[lo:hi].sum() for t in taus])
        th[i_a : i_a + n_exp] = signal / n_exp / np.maximum(fr, 1e-3)
        if fit_bg:
            th[i_b] = bg
        return th

    if tau_init_ps is not None:
        inits = [np.asarray(tau_init_ps, dtype=np.float64)]
        if inits[0].shape != (n_exp,) or np.any(inits[0] <= 0):
            raise ValueError(f"tau_init_ps must hold {n_exp} positive lifetimes")
    elif n_exp == 1:
        inits = [np.array([tau_m])]
    elif n_exp == 2:
        inits = [tau_m * np.array([0.3, 1.5]), tau_m * np.array([0.1, 1.2])]
    else:
        inits = [
            tau_m * np.array([0.15, 0.6, 1.6]),
            tau_m * np.array([0.05, 0.3, 1.3]),
            tau_m * np.array([0.3, 1.0, 2.5]),
        ]

    best: _FitOutput | None = None
    for taus0 in inits:
        taus0 = np.clip(taus0, 0.1 * dt, None)
        try:
            out = _ml_fit(fun, n, start(taus0), lower, upper, max_iter=max_iter)
        except ValueError:
            continue
        if best is None or out.nll < best.nll:
            best = out
    if best is None:
        raise ValueError("the decay fit failed from every starting point")
    theta, cov = best.theta, best.cov

    # ---------------- derived quantities ----------------
    order = np.argsort(theta[:n_exp])
    taus = np.exp(theta[:n_exp])
    a = theta[i_a : i_a + n_exp]
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    # identifiability (module doc): errors of parameters the data do not determine -> inf
    hit = np.zeros(n_par, dtype=bool)
    span = np.where(np.isfinite(upper - lower), upper - lower, 1.0)
    tol = 1e-6 * np.maximum(span, 1.0)
    hit |= np.isfinite(lower) & (theta - lower <= np.where(lower == 0, 0.0, tol))
    hit |= np.isfinite(upper) & (upper - theta <= tol)
    wmu = 1.0 / np.maximum(best.mu, 1e-300)
    info = (best.jac * wmu[:, None]).T @ best.jac
    # limits of a sane error: ln tau within a factor e^10, photons within 1e3 x the photons
    # seen, background within 1e3 x the mean count per bin, t0 within the range
    limit = MAX_RELATIVE_ERROR * np.maximum(np.abs(theta), n_tot)
    limit[:n_exp] = MAX_LOG_ERROR
    if not t0_fixed:
        limit[i_t0] = max(nb * dt, P or 0.0)
    if fit_bg:
        limit[i_b] = MAX_RELATIVE_ERROR * max(abs(theta[i_b]), n_tot / n.size)
    identifiable, message, bad = identifiability(info, limit, names=names, at_bound=hit, cov=cov)
    sd = np.where(bad, np.inf, sd)
    at_bound = bool(np.any(np.delete(hit, [i_b]) if fit_bg else hit))

    def grad_err(g: np.ndarray) -> float:
        return float(math.sqrt(max(g @ cov @ g, 0.0)))

    taus_err = taus * sd[:n_exp]
    x = dt / taus
    kfac = -np.expm1(-x)  # A_i = a_i (1 - e^{-dt/tau})
    amps = a * kfac
    dk_dlogtau = -x * np.exp(-x)  # d(1 - e^{-dt/tau}) / d log tau
    amps_err = np.empty(n_exp)
    fr_err = np.empty(n_exp)
    afr_err = np.empty(n_exp)
    sa = a.sum()
    sA = amps.sum()
    g_ti = np.zeros(n_par)  # intensity-weighted mean tau
    g_ta = np.zeros(n_par)  # amplitude-weighted mean tau
    for i in range(n_exp):
        g = np.zeros(n_par)
        g[i_a + i] = kfac[i]
        g[i] = a[i] * dk_dlogtau[i]
        amps_err[i] = grad_err(g)
        # f_i = a_i / sum a
        g = np.zeros(n_par)
        g[i_a : i_a + n_exp] = -a[i] / sa**2 if sa > 0 else 0.0
        g[i_a + i] += 1.0 / sa if sa > 0 else 0.0
        fr_err[i] = grad_err(g)
        # alpha_i = A_i / sum A
        g = np.zeros(n_par)
        if sA > 0:
            for j in range(n_exp):
                dA = np.zeros(n_par)
                dA[i_a + j] = kfac[j]
                dA[j] = a[j] * dk_dlogtau[j]
                g += ((1.0 if i == j else 0.0) / sA - amps[i] / sA**2) * dA
        afr_err[i] = grad_err(g)
    fr = a / sa if sa > 0 else np.full(n_exp, np.nan)
    afr = amps / sA if sA > 0 else np.full(n_exp, np.nan)
    tau_int = float(np.sum(fr * taus))
    tau_amp = float(np.sum(afr * taus))
    if sa > 0:
        for j in range(n_exp):
            g_ti[i_a + j] = (taus[j] - tau_int) / sa
            g_ti[j] = fr[j] * taus[j]
    if sA > 0:
        for j in range(n_exp):
            dA = np.zeros(n_par)
            dA[i_a + j] = kfac[j]
            dA[j] = a[j] * dk_dlogtau[j]
            g_ta += (taus[j] - tau_amp) / sA * dA
            g_ta[j] += afr[j] * taus[j]

    mu_fit = best.mu
    dof = int(n.size - n_par)
    chi2_red, _ = pearson_p_value(n, mu_fit, dof)
    p_gof = deviance_p_value(n, np.maximum(mu_fit, 1e-300), n_par)
    deviance = poisson_deviance(n, np.maximum(mu_fit, 1e-300))
    loglik = float(np.sum(n * np.log(np.maximum(mu_fit, 1e-300)) - mu_fit - gammaln(n + 1.0)))

    B = float(theta[i_b]) if fit_bg else float(b_fixed)
    B_err = float(sd[i_b]) if fit_bg else math.nan
    t0 = float(theta[i_t0]) if not t0_fixed else t0_val
    t0_err = float(sd[i_t0]) if not t0_fixed else math.nan

    # full-range model
    taus_all = np.exp(theta[:n_exp])
    model = np.full(nb, B)
    for i in range(n_exp):
        model += a[i] * shape(taus_all[i], t0)

    def ro(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)[order].copy()
        v.setflags(write=False)
        return v

    model.setflags(write=False)
    cov_ro = cov.copy()
    cov_ro.setflags(write=False)
    return DecayFitResult(
        n_exp=n_exp,
        taus_ps=ro(taus),
        taus_err_ps=ro(taus_err),
        amplitudes=ro(amps),
        amplitudes_err=ro(amps_err),
        photons=ro(a),
        photons_err=ro(sd[i_a : i_a + n_exp]),
        fractions=ro(fr),
        fractions_err=ro(fr_err),
        amplitude_fractions=ro(afr),
        amplitude_fractions_err=ro(afr_err),
        tau_intensity_ps=tau_int,
        tau_intensity_err_ps=grad_err(g_ti),
        tau_amplitude_ps=tau_amp,
        tau_amplitude_err_ps=grad_err(g_ta),
        background=B,
        background_err=B_err,
        background_fraction=B * n.size / n_tot,
        t0_ps=t0,
        t0_err_ps=t0_err,
        log_likelihood=loglik,
        deviance=deviance,
        chi2_red=chi2_red,
        dof=dof,
        n_photons=int(round(n_tot)),
        n_iter=best.n_iter,
        converged=best.converged,
        irf=kind,
        irf_sigma_ps=sigma,
        period_ps=math.nan if P is None else P,
        bin_ps=dt,
        fit_start=lo,
        fit_stop=hi,
        model=model,
        param_names=tuple(names),
        covariance=cov_ro,
        gof_p_value=p_gof,
        identifiable=identifiable,
        at_bound=at_bound,
        message=message,
    )
