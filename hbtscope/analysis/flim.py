"""Fluorescence lifetime images (FLIM) from stacks of TCSPC histograms.

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
of earlier pulses wrap around. ``h`` sums to 1 over the ``M`` bins of a period.

The IRF is a histogram on the same bins (measured, e.g. scattered laser light) or a Gaussian
``(centre_ps, sigma_ps)`` (:func:`gaussian_irf`, bin-integrated and wrapped onto the period;
internally on a grid of up to 16 sub-bins per bin, fine enough that sub-bins are <= sigma).
Within each IRF bin the excitation time is taken as uniform, which makes the discrete
convolution *exact* for bin-integrated data: an excitation uniform in bin ``m`` puts into bin
``m + d`` the fraction

    1 - x                                 for d = 0,   x = (tau/dt)(1 - q),  q = exp(-dt/tau)
    (tau/dt)(1 - q)^2 q^(d-1)             for d >= 1,

and summing the periodic images gives a geometric kernel; ``h`` and ``dh/dtau`` then follow
from a first-order recursion over the bins, O(K + non-zero IRF bins) per evaluation (no
FFT), which the numba kernel evaluates for every pixel.

Estimation
----------
* **Maximum likelihood** (Poisson): per pixel, projected Levenberg-Marquardt / Fisher scoring
  on ``theta = (A1, A2, ln tau1, ln tau2, b)`` with bounds (``A, b >= 0``, ``tau`` within
  ``tau_bounds_ps``); parameters at a bound with the gradient pointing out are held there.
  All pixels are fitted in parallel (``numba.prange``), each in its own loop, so the whole
  image is one call. Convergence: log-likelihood change < 1e-7 with an accepted step, and
  the Newton decrement ``g^T F^-1 g / 2 < 1e-4`` at the end (``converged`` map); errors are
  the square roots of the diagonal of the inverse Fisher information at the optimum
  (``cov = F^-1``), propagated to derived quantities to first order.
* The background is held at ``b >= 0``. Where the optimum lies on that bound (no
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
  O(1/N) ML bias of ~0.3 sigma at 20 000 photons); a tuple fixes
  them to given values. Starting values come from a fit of the summed histogram
  (multi-start for two components).
* **Fallback** for pixels with fewer than ``min_photons`` photons: the mean arrival time.
  The background-subtracted mean of the arrival times (measured from just before the IRF,
  modulo the period) is matched to the same quantity of the model ``h(tau)`` (a lookup
  table over ``tau``, so IRF, truncation and wrap-around are exact for a single
  exponential); its error is the standard error of the mean through the table's slope. The
  background per bin of dim pixels is the global fit's background per pixel; its uncertainty
  (shared by all dim pixels) is not in the per-pixel errors.
  Map ``method``: 0 no photons, 1 mean arrival time, 2 maximum likelihood.

Objective, goodness of fit, identifiability
-------------------------------------------
The ML fit minimises the Poisson deviance ``D = 2 sum [y ln(y/mu) - (y - mu)]`` (= -2 ln L
+ const), public as :func:`decay_deviance` (``mu`` from :func:`decay_model`). Every fit
(``DecayFit`` and the per-pixel maps) reports ``deviance``, Pearson ``chi2_red = sum (y -
mu)^2 / mu / dof`` with ``dof = K - n_free``, and ``gof_p_value``: the probability of a
deviance at least as large under the fitted model (scaled chi-square with the exact
low-count mean and variance of the deviance, ``_gof.deviance_p_value``). ``identifiable``
is false (``DecayFit.message`` says why; the errors concerned become infinite instead of
numbers like 1e9) when the Fisher information of the free parameters is singular (the
Cholesky factorisation fails, or the condition number of the covariance's correlation form
exceeds 1e12: two equal lifetimes, a vanished component), when an error of ln tau exceeds
10 (a lifetime known only within a factor e^10) or an amplitude's error exceeds 1e3 times
the pixel's photons.

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
from numba import njit, prange

from hbtscope.analysis._gof import (
    MAX_CONDITION,
    MAX_LOG_ERROR,
    MAX_RELATIVE_ERROR,
    deviance_p_value,
    poisson_deviance,
)

__all__ = [
    "DecayFit",
    "FlimResult",
    "decay_deviance",
    "decay_model",
    "fit_decay",
    "flim_fit",
    "gaussian_irf",
    "mean_arrival_lifetime",
]

_N_PARAMS = 5  # A1, A2, ln tau1, ln tau2, b
_B_FLOOR = 1e-9  # background lower bound (counts/bin): keeps mu > 0 everywhere


# =============================================================================== kernels


@njit(cache=True)
def _component(tau, irf, nz, M, K, dt, h, dh):
    """h_k(tau) and dh_k/dtau, k < K, of the IRF (M bins, sum 1; ``nz`` its non-zero bins)
    convolved with the periodic bin-integrated exponential (see module doc)."""
    r = dt / tau
    q = math.exp(-r)
    om = -math.expm1(-r)  # 1 - q
    rM = M * r
    qM = math.exp(-rM)
    omM = -math.expm1(-rM)  # 1 - q^M
    dq = q * r / tau
    dqM = qM * rM / tau
    x = om / r  # (tau/dt)(1 - q)
    dx = om / dt - q / tau
    C = x * om  # (tau/dt)(1 - q)^2
    dC = om * om / dt - 2.0 * om * q / tau
    c = C / omM
    dc = dC / omM + C * dqM / (omM * omM)
    # S_0 = sum_{j} q^(M-1-j) irf[j] over the non-zero IRF bins, and its derivative
    S = 0.0
    dS = 0.0
    for t in range(nz.shape[0]):
        j = nz[t]
        n = M - 1 - j
        p = math.exp(-n * r)
        S += p * irf[j]
        dS += n * p * (r / tau) * irf[j]
    for j in range(K):
        v = irf[j]
        h[j] = (1.0 - x) * v + c * S
        dh[j] = -dx * v + dc * S + c * dS
        dS = dq * S + q * dS - dqM * v
        S = q * S + omM * v


@njit(cache=True)
def _binned(tau, irf, nz, M, K, s, dt, h, dh, hf, dhf):
    """``_component`` on a grid ``s`` times finer (``irf``, ``M``, ``dt`` of the fine grid),
    summed into the ``K`` coarse bins (``hf``, ``dhf``: scratch of ``K * s``)."""
    if s == 1:
        _component(tau, irf, nz, M, K, dt, h, dh)
        return
    _component(tau, irf, nz, M, K * s, dt, hf, dhf)
    for k in range(K):
        a = 0.0
        b = 0.0
        for u in range(k * s, (k + 1) * s):
            a += hf[u]
            b += dhf[u]
        h[k] = a
        dh[k] = b


@njit(cache=True)
def _evaluate(theta, two, irf, nz, M, K, s, dt, mu, J, h, dh, hf, dhf):
    b = theta[4]
    for k in range(K):
        mu[k] = b
        J[k, 4] = 1.0
        J[k, 1] = 0.0
        J[k, 3] = 0.0
    ncomp = 2 if two else 1
    for comp in range(ncomp):
        A = theta[comp]
        tau = math.exp(theta[2 + comp])
        _binned(tau, irf, nz, M, K, s, dt, h, dh, hf, dhf)
        for k in range(K):
            mu[k] += A * h[k]
            J[k, comp] = h[k]
            J[k, 2 + comp] = A * tau * dh[k]


@njit(cache=True)
def _loglik(y, mu):
    s = 0.0
    for k in range(y.shape[0]):
        m = mu[k]
        if y[k] > 0.0:
            if m <= 0.0:
                return -np.inf
            s += y[k] * math.log(m) - m
        else:
            s -= m
    return s


@njit(cache=True)
def _score_fisher(y, mu, J, idx, n, g, F):
    """Score g and Fisher information F restricted to parameters idx[:n]."""
    K = y.shape[0]
    for a in range(n):
        g[a] = 0.0
        for b in range(n):
            F[a, b] = 0.0
    for k in range(K):
        m = mu[k]
        if m <= 0.0:
            continue
        w = y[k] / m - 1.0
        im = 1.0 / m
        for a in range(n):
            ja = J[k, idx[a]]
            g[a] += w * ja
            t = ja * im
            for b in range(a, n):
                F[a, b] += t * J[k, idx[b]]
    for a in range(n):
        for b in range(a):
            F[a, b] = F[b, a]


@njit(cache=True)
def _cholesky_solve(A, rhs, n, out):
    """Solve A out = rhs for the leading n x n block of a symmetric A; False if not PD."""
    L = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1):
            s = A[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            if i == j:
                if not s > 0.0:
                    return False
                L[i, i] = math.sqrt(s)
            else:
                L[i, j] = s / L[j, j]
    z = np.empty(n)
    for i in range(n):
        s = rhs[i]
        for k in range(i):
            s -= L[i, k] * z[k]
        z[i] = s / L[i, i]
    for i in range(n - 1, -1, -1):
        s = z[i]
        for k in range(i + 1, n):
            s -= L[k, i] * out[k]
        out[i] = s / L[i, i]
    return True


@njit(cache=True)
def _free_set(theta, g_full, free, lo, hi, idx):
    """Free parameters not held at a bound by an outward gradient; returns their count."""
    n = 0
    for a in range(free.shape[0]):
        p = free[a]
        at_lo = theta[p] <= lo[p] and g_full[p] <= 0.0
        at_hi = theta[p] >= hi[p] and g_full[p] >= 0.0
        if not (at_lo or at_hi):
            idx[n] = p
            n += 1
    return n


@njit(cache=True)
def _full_score(y, mu, J, g_full):
    K = y.shape[0]
    for p in range(_N_PARAMS):
        g_full[p] = 0.0
    for k in range(K):
        m = mu[k]
        if m <= 0.0:
            continue
        w = y[k] / m - 1.0
        for p in range(_N_PARAMS):
            g_full[p] += w * J[k, p]


@njit(parallel=True, cache=True)
def _fit_kernel(
    Y, theta0, free, lo, hi, irf, nz, M, s, dt, two, max_iter, out_theta, out_cov, out_ll, out_dev,
    out_iter, out_status,
):  # fmt: skip
    n_pix, K = Y.shape
    nfree = free.shape[0]
    for i in prange(n_pix):
        y = Y[i]
        theta = theta0[i].copy()
        trial = theta.copy()
        mu = np.empty(K)
        mu2 = np.empty(K)
        J = np.empty((K, _N_PARAMS))
        J2 = np.empty((K, _N_PARAMS))
        h = np.empty(K)
        dh = np.empty(K)
        hf = np.empty(K * s)
        dhf = np.empty(K * s)
        g_full = np.empty(_N_PARAMS)
        idx = np.empty(_N_PARAMS, dtype=np.int64)
        g = np.empty(_N_PARAMS)
        F = np.empty((_N_PARAMS, _N_PARAMS))
        A = np.empty((_N_PARAMS, _N_PARAMS))
        delta = np.empty(_N_PARAMS)
        _evaluate(theta, two, irf, nz, M, K, s, dt, mu, J, h, dh, hf, dhf)
        L = _loglik(y, mu)
        lam = 1e-3
        status = 1
        it = 0
        while it < max_iter:
            it += 1
            _full_score(y, mu, J, g_full)
            n = _free_set(theta, g_full, free, lo, hi, idx)
            if n == 0:
                status = 0
                break
            _score_fisher(y, mu, J, idx, n, g, F)
            accepted = False
            gain = 0.0
            for _t in range(40):
                for a in range(n):
                    for b in range(n):
                        A[a, b] = F[a, b]
                    A[a, a] = F[a, a] * (1.0 + lam) + 1e-300
                if not _cholesky_solve(A, g, n, delta):
                    lam *= 10.0
                    continue
                for p in range(_N_PARAMS):
                    trial[p] = theta[p]
                for a in range(n):
                    p = idx[a]
                    v = theta[p] + delta[a]
                    if v < lo[p]:
                        v = lo[p]
                    elif v > hi[p]:
                        v = hi[p]
                    trial[p] = v
                _evaluate(trial, two, irf, nz, M, K, s, dt, mu2, J2, h, dh, hf, dhf)
                L2 = _loglik(y, mu2)
                if L2 >= L:
                    gain = L2 - L
                    for p in range(_N_PARAMS):
                        theta[p] = trial[p]
                    L = L2
                    for k in range(K):
                        mu[k] = mu2[k]
                        for p in range(_N_PARAMS):
                            J[k, p] = J2[k, p]
                    lam = max(lam * 0.2, 1e-10)
                    accepted = True
                    break
                lam *= 10.0
                if lam > 1e12:
                    break
            if not accepted:
                status = 2
                break
            if gain < 1e-7:
                status = 0
                break
        # convergence: Newton decrement over the free parameters off their bounds
        _full_score(y, mu, J, g_full)
        n = _free_set(theta, g_full, free, lo, hi, idx)
        for a in range(_N_PARAMS):
            for b in range(_N_PARAMS):
                out_cov[i, a, b] = 0.0
        if n > 0:
            _score_fisher(y, mu, J, idx, n, g, F)
            if _cholesky_solve(F, g, n, delta):
                dec = 0.0
                for a in range(n):
                    dec += g[a] * delta[a]
                if 0.5 * dec < 1e-4:
                    status = 0
                else:
                    status = max(status, 1)
            else:
                status = 3
        # covariance: inverse Fisher information of all free parameters, including any held
        # at a bound (a parameter at a bound still shares the uncertainty of the others);
        # if that matrix is singular (e.g. tau2 of a vanished component), of those off bounds
        nc = nfree
        for a in range(nfree):
            idx[a] = free[a]
        _score_fisher(y, mu, J, idx, nc, g, F)
        e = np.zeros(_N_PARAMS)
        if not _cholesky_solve(F, e, nc, delta):
            _full_score(y, mu, J, g_full)
            nc = _free_set(theta, g_full, free, lo, hi, idx)
            _score_fisher(y, mu, J, idx, nc, g, F)
        col = np.empty(_N_PARAMS)
        for a in range(nc):
            for b in range(nc):
                e[b] = 1.0 if a == b else 0.0
            if _cholesky_solve(F, e, nc, col):
                for b in range(nc):
                    out_cov[i, idx[a], idx[b]] = col[b]
            else:
                for b in range(nc):
                    out_cov[i, idx[a], idx[b]] = np.nan
        dev = 0.0
        for k in range(K):
            if y[k] > 0.0 and mu[k] > 0.0:
                dev += 2.0 * (y[k] * math.log(y[k] / mu[k]) - (y[k] - mu[k]))
            else:
                dev += 2.0 * mu[k]
        for p in range(_N_PARAMS):
            out_theta[i, p] = theta[p]
        out_ll[i] = L
        out_dev[i] = dev
        out_iter[i] = it
        out_status[i] = status
    return nfree


@njit(cache=True)
def _model_table(taus, irf, nz, M, K, s, dt, t_rel):
    """Mean of t_rel under h(tau) over the window, for each tau."""
    out = np.empty(taus.shape[0])
    h = np.empty(K)
    dh = np.empty(K)
    hf = np.empty(K * s)
    dhf = np.empty(K * s)
    for i in range(taus.shape[0]):
        _binned(taus[i], irf, nz, M, K, s, dt, h, dh, hf, dhf)
        tot = 0.0
        st = 0.0
        for k in range(K):
            tot += h[k]
            st += h[k] * t_rel[k]
        out[i] = st / tot
    return out


@njit(parallel=True, cache=True)
def _model_stack(theta, two, irf, nz, M, K, s, dt, out):
    """Expected histograms ``mu`` (n, K) of the parameter rows ``theta`` (n, 5)."""
    n = theta.shape[0]
    for i in prange(n):
        h = np.empty(K)
        dh = np.empty(K)
        hf = np.empty(K * s)
        dhf = np.empty(K * s)
        for k in range(K):
            out[i, k] = theta[i, 4]
        for comp in range(2 if two else 1):
            _binned(math.exp(theta[i, 2 + comp]), irf, nz, M, K, s, dt, h, dh, hf, dhf)
            for k in range(K):
                out[i, k] += theta[i, comp] * h[k]


def _gof(Y2, theta, inst, two, n_free):
    """Pearson chi2_red and the deviance p-value of each row's fit (module doc)."""
    mu = np.empty_like(Y2)
    _model_stack(np.ascontiguousarray(theta), two, *inst.args()[:2], inst.M * inst.s,
                 Y2.shape[1], inst.s, inst.dt / inst.s, mu)  # fmt: skip
    dof = Y2.shape[1] - n_free
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2_red = np.sum((Y2 - mu) ** 2 / np.maximum(mu, 1e-300), axis=1) / dof
    p = deviance_p_value(Y2, mu, n_free)
    return chi2_red, np.atleast_1d(p), dof


_NAMES = ("A1", "A2", "ln_tau1", "ln_tau2", "b")


def _identifiable(theta, cov, free, status, photons, K):
    """Per row: identifiable (bool), singular (bool) and the free parameters not determined
    (n, 5) (module doc)."""
    f = np.asarray(free)
    is_free = np.zeros(_N_PARAMS, dtype=bool)
    is_free[f] = True
    sd = np.sqrt(np.abs(np.diagonal(cov, axis1=1, axis2=2)))
    limit = np.empty_like(sd)
    limit[:, :2] = MAX_RELATIVE_ERROR * np.maximum(np.abs(theta[:, :2]), photons[:, None])
    limit[:, 2:4] = MAX_LOG_ERROR
    limit[:, 4] = MAX_RELATIVE_ERROR * np.maximum(np.abs(theta[:, 4]), photons / K + 1.0)
    bad = is_free & (~np.isfinite(sd) | (sd > limit))
    # the kernel leaves NaN (singular information) or zero rows (a parameter held at its
    # bound because the full information was singular) in the covariance
    sub = cov[:, f][:, :, f]
    d = np.sqrt(np.abs(np.diagonal(sub, axis1=1, axis2=2)))
    usable = np.all(np.isfinite(sub.reshape(sub.shape[0], -1)), axis=1) & np.all(d > 0, axis=1)
    singular = ~usable | (status == 3)
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


def _message(bad_row, singular: bool, at_bound_names) -> str:
    notes = []
    if singular:
        notes.append("information matrix singular")
    if np.any(bad_row):
        notes.append("not determined by the data: " + ", ".join(np.asarray(_NAMES)[bad_row]))
    if at_bound_names:
        notes.append("at a bound: " + ", ".join(at_bound_names))
    return "; ".join(notes)


# ============================================================================== helpers


def _grid(n_bins: int, bin_ps: float, period_ps: float | None) -> int:
    if period_ps is None:
        return n_bins
    M = int(round(float(period_ps) / float(bin_ps)))
    if M < n_bins:
        raise ValueError(
            f"period_ps = {period_ps} is shorter than the histogram ({n_bins} x {bin_ps} ps)"
        )
    return M


def gaussian_irf(
    n_bins: int, bin_ps: float, center_ps: float, sigma_ps: float, *, period_ps: float | None = None
) -> np.ndarray:
    """Gaussian IRF integrated over bins of ``bin_ps`` and wrapped onto one period.

    Returns ``M = period_ps / bin_ps`` (default ``n_bins``) bin probabilities summing to 1.
    """
    from scipy.special import ndtr

    M = _grid(int(n_bins), bin_ps, period_ps)
    s = float(sigma_ps)
    if not s > 0:
        raise ValueError(f"sigma_ps must be > 0, got {sigma_ps!r}")
    T = M * float(bin_ps)
    n_wrap = int(math.ceil(8 * s / T)) + 1
    edges = np.arange(M + 1) * float(bin_ps)
    out = np.zeros(M)
    for w in range(-n_wrap, n_wrap + 1):
        cdf = ndtr((edges + w * T - float(center_ps)) / s)
        out += np.diff(cdf)
    return out / out.sum()


_MAX_OVERSAMPLE = 16


@dataclass(frozen=True)
class _Instrument:
    """The IRF on the fit's internal grid: ``s`` sub-bins per histogram bin."""

    irf: np.ndarray  # M * s fine bins, sum 1
    s: int
    M: int  # coarse bins per period
    dt: float  # coarse bin width

    @property
    def coarse(self) -> np.ndarray:
        return self.irf.reshape(self.M, self.s).sum(axis=1)

    def args(self):
        """(irf, non-zero bins, M_fine, s, dt_fine) for the numba kernels."""
        nz = np.flatnonzero(self.irf).astype(np.int64)
        return self.irf, nz, self.M * self.s, self.s, self.dt / self.s


def _instrument(irf, n_bins: int, bin_ps: float, period_ps: float | None) -> _Instrument:
    """A measured IRF is used as given (uniform within a bin); a Gaussian one is computed on a
    grid with sub-bins <= sigma (at most 16 per bin). Measured on Monte Carlo histograms of
    5 million photons (bin/sigma = 0.5 ... 3.3): deviance per bin 1.2 ... 6 instead of 1 and a
    lifetime bias < 0.05 %; the excess deviance scales with the counts, so it is < 0.1 per
    bin for the <= 10^5 photons of a FLIM pixel."""
    M = _grid(n_bins, bin_ps, period_ps)
    if isinstance(irf, tuple | list) and len(irf) == 2 and np.isscalar(irf[0]):
        centre, sigma = float(irf[0]), float(irf[1])
        if not sigma > 0:
            raise ValueError(f"the Gaussian IRF sigma must be > 0, got {sigma}")
        s = int(min(_MAX_OVERSAMPLE, max(1, math.ceil(float(bin_ps) / sigma - 1e-9))))
        fine = gaussian_irf(M * s, float(bin_ps) / s, centre, sigma)
        fine[fine < 1e-15 * fine.max()] = 0.0  # Gaussian tails beyond ~8 sigma
        fine /= fine.sum()
        return _Instrument(fine, s, M, float(bin_ps))
    a = np.asarray(irf, dtype=np.float64).ravel()
    if a.size not in (n_bins, M) or a.size > M:
        raise ValueError(f"a measured IRF must have {n_bins} (or {M}) bins, got {a.size}")
    if np.any(a < 0) or not np.all(np.isfinite(a)) or not a.sum() > 0:
        raise ValueError("the IRF must be finite, non-negative and not all zero")
    full = np.zeros(M)
    full[: a.size] = a
    return _Instrument(full / full.sum(), 1, M, float(bin_ps))


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
    """Expected histogram ``sum_i photons_i h(tau_i) + background`` (see module doc).

    ``photons_i``: photons of component ``i`` per period (in the whole period, not only the
    window); ``irf`` as in :func:`flim_fit`.
    """
    K = int(n_bins)
    inst = _instrument(irf, K, float(bin_ps), period_ps)
    irf_f, nz, Mf, s, dt_f = inst.args()
    out = np.full(K, float(background))
    h, dh = np.empty(K), np.empty(K)
    hf, dhf = np.empty(K * s), np.empty(K * s)
    for tau, a in zip(np.atleast_1d(taus_ps), np.atleast_1d(photons), strict=True):
        _binned(float(tau), irf_f, nz, Mf, K, s, dt_f, h, dh, hf, dhf)
        out += float(a) * h
    return out


def decay_deviance(
    histogram,
    bin_ps: float,
    irf,
    taus_ps,
    photons,
    background: float = 0.0,
    *,
    period_ps: float | None = None,
) -> float:
    """The objective of :func:`fit_decay` and of each pixel of :func:`flim_fit` at arbitrary
    parameters: the Poisson deviance ``2 sum [y ln(y/mu) - (y - mu)]`` with ``mu`` from
    :func:`decay_model` (``= 2 NLL + const(y)``); ``DecayFit.deviance`` and
    ``FlimResult.deviance`` are its values at the optimum."""
    y = np.asarray(histogram, dtype=np.float64)
    mu = decay_model(y.size, bin_ps, irf, taus_ps, photons, background, period_ps=period_ps)
    return poisson_deviance(y, mu)


@dataclass(frozen=True)
class DecayFit:
    """Result of :func:`fit_decay` (one histogram)."""

    taus_ps: np.ndarray
    taus_err_ps: np.ndarray
    photons: np.ndarray  # A_i, photons per component per period
    photons_err: np.ndarray
    background: float  # per bin
    background_err: float
    amplitude_fraction1: float
    intensity_fraction1: float
    tau_mean_ps: float  # intensity weighted
    tau_mean_err_ps: float
    tau_amp_ps: float
    loglik: float
    deviance: float
    converged: bool
    n_iter: int
    chi2_red: float = math.nan
    dof: int = 0
    gof_p_value: float = math.nan
    identifiable: bool = True
    at_bound: bool = False
    message: str = ""


@dataclass(frozen=True)
class FlimResult:
    """Per-pixel lifetime maps from :func:`flim_fit` (arrays of the image shape)."""

    tau1_ps: np.ndarray
    tau1_err_ps: np.ndarray
    tau2_ps: np.ndarray
    tau2_err_ps: np.ndarray
    fraction1: np.ndarray  # amplitude fraction alpha1 = a1 / (a1 + a2)
    fraction1_err: np.ndarray
    intensity_fraction1: np.ndarray  # A1 / (A1 + A2)
    tau_mean_ps: np.ndarray  # intensity-weighted mean lifetime (fit or mean arrival time)
    tau_mean_err_ps: np.ndarray
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
    global_fit: DecayFit | None = field(default=None, repr=False)
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


# ========================================================================= public API


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


def _bounds(model, taus_mode, tau_bounds_ps, dt, M):
    tlo, thi = tau_bounds_ps if tau_bounds_ps is not None else (0.05 * dt, 10.0 * M * dt)
    lo = np.array([0.0, 0.0, math.log(tlo), math.log(tlo), _B_FLOOR])
    hi = np.array([1e300, 1e300, math.log(thi), math.log(thi), 1e300])
    two = model == "bi"
    if taus_mode == "free":
        free = [0, 1, 2, 3, 4] if two else [0, 2, 4]
    else:
        free = [0, 1, 4] if two else [0, 4]
    return lo, hi, np.array(free, dtype=np.int64), two


def _run(Y2, theta0, free, lo, hi, inst: _Instrument, two, max_iter):
    n = Y2.shape[0]
    th = np.empty((n, _N_PARAMS))
    cov = np.empty((n, _N_PARAMS, _N_PARAMS))
    ll = np.empty(n)
    dev = np.empty(n)
    it = np.empty(n, dtype=np.int64)
    st = np.empty(n, dtype=np.int64)
    theta0 = np.clip(theta0, lo, hi)
    _fit_kernel(
        np.ascontiguousarray(Y2), np.ascontiguousarray(theta0), free, lo, hi, *inst.args(),
        two, int(max_iter), th, cov, ll, dev, it, st,
    )  # fmt: skip
    return th, cov, ll, dev, it, st


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
    """Lifetime from the mean arrival time (fast, for dim pixels): ``(tau_ps, tau_err_ps)``.

    ``histograms``: ``(..., K)``; ``background``: counts per bin (scalar or per histogram).
    The background-subtracted mean arrival time, measured from just before the IRF, is
    inverted through the model's mean arrival time versus a single lifetime (a table of 512
    log-spaced lifetimes), which accounts for the IRF, the window and the wrap-around.
    """
    Y, dt = _prepare(histograms, bin_ps)
    inst = _instrument(irf, Y.shape[-1], dt, period_ps)
    return _mean_arrival(Y, inst, background, tau_bounds_ps)


def _mean_arrival(Y, inst: _Instrument, background, tau_bounds_ps):
    K = Y.shape[-1]
    dt, M = inst.dt, inst.M
    _, t_rel = _origin_and_times(inst.coarse, K, dt)
    tlo, thi = tau_bounds_ps if tau_bounds_ps is not None else (0.05 * dt, 10.0 * M * dt)
    taus = np.geomspace(tlo, thi, 512)
    irf_f, nz, Mf, s, dt_f = inst.args()
    table = _model_table(taus, irf_f, nz, Mf, K, s, dt_f, t_rel)
    order = np.argsort(table)
    table, taus = table[order], taus[order]
    b = np.asarray(background, dtype=np.float64)
    b = np.broadcast_to(b[..., None] if b.ndim == Y.ndim - 1 else b, Y.shape)
    w = Y - b
    n_sig = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = (w * t_rel).sum(axis=-1) / n_sig
        var_t = (Y * (t_rel - m[..., None]) ** 2).sum(axis=-1) / n_sig**2
        tau = np.interp(m, table, taus, left=np.nan, right=np.nan)
        slope = np.interp(tau, taus, np.gradient(table, taus))
        err = np.sqrt(var_t) / slope
    bad = ~(n_sig > 0)
    tau = np.where(bad, np.nan, tau)
    err = np.where(bad, np.nan, err)
    return tau, err


def _derived(theta, cov, two):
    """Lifetimes, fractions and mean lifetimes with first-order errors; arrays (n,)."""
    A1, A2 = theta[:, 0], theta[:, 1]
    t1, t2 = np.exp(theta[:, 2]), np.exp(theta[:, 3])
    n = theta.shape[0]

    def err(grad):
        return np.sqrt(np.clip(np.einsum("ni,nij,nj->n", grad, cov, grad), 0.0, None))

    z = np.zeros(n)
    g = np.zeros((n, _N_PARAMS))
    out = {}
    g[:, 2] = t1
    out["tau1_err"] = err(g)
    g[:] = 0
    g[:, 3] = t2
    out["tau2_err"] = err(g) if two else np.full(n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        if two:
            a1, a2 = A1 / t1, A2 / t2
            S = a1 + a2
            alpha = a1 / S
            g[:] = 0
            g[:, 0] = (a2 / S**2) / t1
            g[:, 1] = (-a1 / S**2) / t2
            g[:, 2] = (a2 / S**2) * (-a1)
            g[:, 3] = (-a1 / S**2) * (-a2)
            out["alpha_err"] = err(g)
            tot = A1 + A2
            f1 = A1 / tot
            tm = (A1 * t1 + A2 * t2) / tot
            g[:] = 0
            g[:, 0] = (t1 - tm) / tot
            g[:, 1] = (t2 - tm) / tot
            g[:, 2] = A1 * t1 / tot
            g[:, 3] = A2 * t2 / tot
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


def _global_start(ysum, inst: _Instrument, model, lo, hi, max_iter):
    """Fit the summed histogram (multi-start for two components): theta and DecayFit."""
    n_ph = float(ysum.sum())
    b0 = max(float(np.percentile(ysum, 5)), _B_FLOOR)
    K, M, dt = ysum.size, inst.M, inst.dt
    tau_m, _ = _mean_arrival(ysum, inst, b0, None)
    tau_m = float(tau_m) if np.isfinite(tau_m) else 0.1 * M * dt
    sig = max(n_ph - b0 * K, 1.0)
    if model == "bi":
        starts = [(1 / 3, 1.5), (1 / 8, 1.1), (1 / 2, 3.0), (1 / 20, 1.02)]
        th0 = np.array(
            [[0.5 * sig, 0.5 * sig, math.log(tau_m * a), math.log(tau_m * b), b0]
             for a, b in starts]
        )  # fmt: skip
        free = np.array([0, 1, 2, 3, 4], dtype=np.int64)
    else:
        th0 = np.array([[sig, 0.0, math.log(tau_m), math.log(tau_m), b0]])
        free = np.array([0, 2, 4], dtype=np.int64)
    Y2 = np.repeat(ysum[None, :], th0.shape[0], axis=0)
    th, cov, ll, dev, it, st = _run(Y2, th0, free, lo, hi, inst, model == "bi",
                                    max_iter)  # fmt: skip
    ll = np.where(np.isfinite(ll), ll, -np.inf)
    best = int(np.argmax(ll))
    theta = th[best].copy()
    cv = cov[best]
    if model == "bi" and theta[2] > theta[3]:  # order tau1 < tau2
        theta = theta[[1, 0, 3, 2, 4]]
        cv = cv[np.ix_([1, 0, 3, 2, 4], [1, 0, 3, 2, 4])]
    d = _derived(theta[None], cv[None], model == "bi")
    taus = np.exp(theta[2:4]) if model == "bi" else np.exp(theta[2:3])
    chi2_red, p_gof, dof = _gof(ysum[None, :], theta[None, :], inst, model == "bi", free.size)
    ident, singular, bad = _identifiable(
        theta[None, :], cv[None], free, st[best : best + 1], np.array([n_ph]), K
    )
    hit = [_NAMES[p] for p in free if theta[p] <= lo[p] or theta[p] >= hi[p]]
    sd = np.where(bad[0], np.inf, np.sqrt(np.clip(np.diag(cv), 0, None)))
    fit = DecayFit(
        taus_ps=taus,
        taus_err_ps=taus * (sd[2:4] if model == "bi" else sd[2:3]),
        photons=theta[:2] if model == "bi" else theta[:1],
        photons_err=sd[:2] if model == "bi" else sd[:1],
        background=float(theta[4]),
        background_err=float(sd[4]),
        amplitude_fraction1=float(d["alpha"][0]),
        intensity_fraction1=float(d["f1"][0]),
        tau_mean_ps=float(d["tm"][0]),
        tau_mean_err_ps=float(d["tm_err"][0]),
        tau_amp_ps=float(d["tau_amp"][0]),
        loglik=float(ll[best]),
        deviance=float(dev[best]),
        converged=bool(st[best] == 0),
        n_iter=int(it[best]),
        chi2_red=float(chi2_red[0]),
        dof=int(dof),
        gof_p_value=float(p_gof[0]),
        identifiable=bool(ident[0]),
        at_bound=any(h != "b" for h in hit),
        message=_message(bad[0], bool(singular[0]), hit),
    )
    return theta, fit


def fit_decay(
    histogram,
    bin_ps: float,
    irf,
    *,
    model: str = "bi",
    period_ps: float | None = None,
    tau_bounds_ps: tuple[float, float] | None = None,
    max_iter: int = 200,
) -> DecayFit:
    """Maximum-likelihood fit of one decay histogram (mono or bi-exponential + background)."""
    Y, dt = _prepare(histogram, bin_ps)
    if Y.ndim != 1:
        raise ValueError("fit_decay takes one histogram; use flim_fit for images")
    if model not in ("mono", "bi"):
        raise ValueError(f"model must be 'mono' or 'bi', got {model!r}")
    K = Y.size
    inst = _instrument(irf, K, dt, period_ps)
    lo, hi, _, _ = _bounds(model, "free", tau_bounds_ps, dt, inst.M)
    _, fit = _global_start(Y, inst, model, lo, hi, max_iter)
    return fit


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
    inst = _instrument(irf, K, dt, period_ps)
    M = inst.M
    if isinstance(taus, str):
        if taus not in ("free", "global"):
            raise ValueError(f"taus must be 'free', 'global' or a tuple, got {taus!r}")
        taus_mode = taus
        fixed = None
    else:
        fixed = np.asarray(taus, dtype=np.float64).ravel()
        if fixed.size != (2 if model == "bi" else 1) or not np.all(fixed > 0):
            raise ValueError(f"taus must give {2 if model == 'bi' else 1} positive lifetimes")
        taus_mode = "fixed"
    lo, hi, free, two = _bounds(model, taus_mode, tau_bounds_ps, dt, M)
    photons = Y2.sum(axis=1)
    bright = photons >= float(min_photons)
    dim = (~bright) & (photons > 0)

    # global fit on the summed histogram of the bright pixels (or of all)
    sel = bright if bright.any() else photons > 0
    if not sel.any():
        nan = np.full(shape, np.nan)
        return _empty_result(shape, nan, model, taus_mode)
    ysum = Y2[sel].sum(axis=0)
    g_theta, g_fit = _global_start(ysum, inst, model, lo, hi, 4 * max_iter)
    n_sel = int(sel.sum())
    b_pix = max(g_theta[4] / n_sel, _B_FLOOR)
    if fixed is not None:
        g_theta = g_theta.copy()
        g_theta[2] = math.log(fixed[0])
        g_theta[3] = math.log(fixed[-1])
    global_taus = np.exp(g_theta[2:4]) if two else np.exp(g_theta[2:3])

    out_theta = np.full((n, _N_PARAMS), np.nan)
    out_cov = np.zeros((n, _N_PARAMS, _N_PARAMS))
    dev = np.full(n, np.nan)
    chi2_red = np.full(n, np.nan)
    p_gof = np.full(n, np.nan)
    ident = np.zeros(n, dtype=bool)
    bad = np.zeros((n, _N_PARAMS), dtype=bool)
    n_iter = np.zeros(n, dtype=np.int64)
    status = np.full(n, -1, dtype=np.int64)
    if bright.any():
        yb = Y2[bright]
        sig = np.maximum(yb.sum(axis=1) - b_pix * K, 1.0)
        tot = max(g_theta[0] + g_theta[1], 1e-300) if two else max(g_theta[0], 1e-300)
        th0 = np.empty((yb.shape[0], _N_PARAMS))
        th0[:, 0] = sig * g_theta[0] / tot
        th0[:, 1] = sig * g_theta[1] / tot if two else 0.0
        th0[:, 2] = g_theta[2]
        th0[:, 3] = g_theta[3]
        th0[:, 4] = b_pix
        th, cov, _, dv, it, st = _run(yb, th0, free, lo, hi, inst, two, max_iter)
        if two and taus_mode == "free":  # order tau1 < tau2 in every pixel
            swap = th[:, 2] > th[:, 3]
            perm = np.array([1, 0, 3, 2, 4])
            th[swap] = th[swap][:, perm]
            cov[swap] = cov[swap][:, perm][:, :, perm]
        out_theta[bright], out_cov[bright] = th, cov
        dev[bright], n_iter[bright], status[bright] = dv, it, st
        chi2_red[bright], p_gof[bright], _ = _gof(yb, th, inst, two, free.size)
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
    tau1_err = np.where(bad[:, 2], np.inf, tau1_err)
    tau2_err = np.where(bad[:, 3], np.inf, tau2_err)
    if taus_mode != "free":  # lifetimes were not fitted per pixel
        tau1_err = np.where(fitted, 0.0, nan)
        tau2_err = np.where(fitted, 0.0 if two else nan, nan)
    method = np.where(fitted, 2, 0).astype(np.int8)
    converged = fitted & (status == 0)
    at_bound = np.zeros(n, dtype=bool)
    if fitted.any():
        th = out_theta[fitted]
        chk = [0, 2] + ([1, 3] if two else [])
        chk = [p for p in chk if p in free]
        ab = np.zeros(th.shape[0], dtype=bool)
        for p in chk:
            ab |= (th[:, p] <= lo[p]) | (th[:, p] >= hi[p])
        at_bound[fitted] = ab
    if dim.any():
        t_fb, e_fb = _mean_arrival(Y2[dim], inst, b_pix, tau_bounds_ps)
        tm[dim], tm_err[dim] = t_fb, e_fb
        method[dim] = 1
        converged[dim] = np.isfinite(t_fb)
    amp1 = np.where(fitted, out_theta[:, 0], nan)
    amp2 = np.where(fitted & two, out_theta[:, 1], nan)
    bg = np.where(fitted, out_theta[:, 4], np.where(dim, b_pix, nan))

    def r(a):
        return np.asarray(a).reshape(shape)

    return FlimResult(
        tau1_ps=r(tau1),
        tau1_err_ps=r(tau1_err),
        tau2_ps=r(tau2),
        tau2_err_ps=r(tau2_err),
        fraction1=r(alpha),
        fraction1_err=r(alpha_err),
        intensity_fraction1=r(f1),
        tau_mean_ps=r(tm),
        tau_mean_err_ps=r(tm_err),
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
        tau1_ps=nan, tau1_err_ps=nan, tau2_ps=nan, tau2_err_ps=nan, fraction1=nan,
        fraction1_err=nan, intensity_fraction1=nan, tau_mean_ps=nan, tau_mean_err_ps=nan,
        tau_amp_ps=nan, amplitude1=nan, amplitude2=nan, background=nan,
        photons=np.zeros(shape), method=zeros_i, converged=np.zeros(shape, bool),
        at_bound=np.zeros(shape, bool), n_iter=np.zeros(shape, np.int64), deviance=nan,
        model=model, taus_mode=taus_mode, global_taus_ps=np.full(2 if model == "bi" else 1, np.nan),
    )  # fmt: skip
