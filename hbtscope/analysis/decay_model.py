"""The fluorescence-decay model, written once: exact bin-integrated multi-exponential (x) IRF
with the periodic wrap-around of earlier pulses, plus a constant background.

Bin k of width dt covers [k dt, (k+1) dt). Expected counts (Pierini et al. eq. 2; O'Connor &
Phillips, *Time-correlated single photon counting*, 1984, ch. 6)::

    mu_k = sum_i A_i u_k(tau_i, t0) + B

``A_i`` are the photons of component i per full decay (per excitation period, including
what falls outside the histogram), ``B`` the background per bin and ``u_k`` the fraction of
a unit-area decay (1/tau) exp(-(t - t0)/tau), t >= t0, seen through the instrument response
(IRF), that falls in bin k, integrated exactly over the bin. With a laser period P the tails
of all earlier pulses are added (the periodic ``sum_{m>=0} h(t - t0 + m P)``). IRF
representations (:class:`DecayModel`, ``kind``):

* ``"none"``: a pure exponential starting at t0 (a step); closed form, periodic sum
  ``exp(-P/tau) / (1 - exp(-P/tau))`` of the tails.
* ``"gaussian"``: Gaussian IRF of width sigma centred at t0: exponentially modified
  Gaussian, bin integrals as differences of its CDF (:func:`hbtscope.analysis.irf.
  exgauss_cdf_parts`), closed-form derivatives in ln tau and t0; periodic: the tails of
  the earlier pulses and the rising edge of the next one.
* ``"array"``: a measured IRF on the histogram's bins, taken as piecewise constant (uniform
  within each bin) and shifted by a continuous t0 (t0 = 0: "as measured"). An IRF bin at
  distance m bins (fractional offset r) before a detection bin contributes ``g_r(m)``, with
  closed forms for m = 0, 1 and a geometric series ``~ exp(-m dt/tau)`` for m >= 2, summed by
  an O(n) recursion; earlier pulses add their pure exponential tails (geometric sum).
* ``"grid"``: an IRF on the period's bins (M = P/dt, circular: the IRF itself wraps), at its
  own position (no t0), on ``s`` sub-bins per bin: a measured IRF as given (s = 1) or a
  Gaussian binned by :func:`hbtscope.analysis.irf.gaussian_irf` on sub-bins <= sigma (at
  most 16 per bin). An excitation uniform in bin m puts into bin m + d the fraction
  ``1 - x`` (d = 0) or ``x (1 - q)^2 q^(d-1)`` (d >= 1), ``q = exp(-dt/tau)``,
  ``x = (tau/dt)(1 - q)``; summing the periodic images gives a geometric kernel and one
  first-order recursion over the bins gives u and du/dtau, O(K + non-zero IRF bins): the
  fast form of the per-pixel FLIM fits. For a Gaussian it is an approximation (the IRF
  uniform within each sub-bin): fitted to noise-free closed-form histograms of 5 million
  photons (bin/sigma 0.5 ... 3.3) it is biased by < 0.005 % in one lifetime and up to
  0.16 % in two (800 + 4000 ps), with a deviance of 0.3 ... 7 per bin that scales with the
  counts (~0.1 per bin at the <= 1e5 photons of a pixel). With a measured IRF (s = 1) the
  "grid" and "array" forms are the same convolution (equal to rounding).

Parameters of the fit engine (:mod:`hbtscope.analysis._poisson_ml`) are one vector
``theta = (A_1, A_2, A_3, ln tau_1, ln tau_2, ln tau_3, t0, B)`` (``N_PARAMS``); the model
and its Jacobian are evaluated by :func:`evaluate` (numba), which stores only the columns of
the parameters in the model (:func:`jacobian_columns`: 3 of 8 for a mono-exponential).
Public: :func:`decay_expectation` (mu at any parameters) and :func:`decay_deviance` (the
Poisson deviance the fits minimise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from hbtscope.analysis._gof import poisson_deviance
from hbtscope.analysis.irf import exgauss_cdf_parts, gaussian_irf, period_bins

__all__ = ["DecayModel", "decay_deviance", "decay_expectation"]

N_EXP_MAX = 3
N_PARAMS = 2 * N_EXP_MAX + 2
I_AMP = 0  # A_i at I_AMP + i
I_LOGTAU = N_EXP_MAX  # ln tau_i at I_LOGTAU + i
I_T0 = 2 * N_EXP_MAX
I_BG = 2 * N_EXP_MAX + 1

KIND_NONE, KIND_GAUSSIAN, KIND_ARRAY, KIND_GRID = 0, 1, 2, 3
_KINDS = {"none": KIND_NONE, "gaussian": KIND_GAUSSIAN, "array": KIND_ARRAY, "grid": KIND_GRID}
_MAX_OVERSAMPLE = 16
_H_LOGTAU = 1e-4  # central-difference steps of the "array" derivatives
_H_T0_BINS = 1e-2


# =============================================================================== kernels


@njit(cache=True, nogil=True)
def _shape_none_into(edges, tau, t0, period, u, du):
    """Bin integrals of (1/tau) exp(-(t-t0)/tau), t >= t0 (periodic if period > 0), and
    their derivative with respect to ln tau."""
    n = edges.shape[0]
    H_prev = 0.0
    dH_prev = 0.0
    if period > 0.0:
        qp = math.exp(-period / tau)
    for k in range(n):
        x = edges[k] - t0
        if period > 0.0:
            m = math.floor(x / period)
            w = x - m * period
            e = -math.exp(-w / tau) / (1.0 - qp)
            H = e + m
            dH = e * (w / tau + qp * period / (tau * (1.0 - qp)))
        else:
            w = max(x, 0.0)
            H = -math.exp(-w / tau)
            dH = H * (w / tau)
        if k > 0:
            u[k - 1] = H - H_prev
            du[k - 1] = dH - dH_prev
        H_prev = H
        dH_prev = dH


@njit(cache=True, nogil=True)
def _shape_gauss_into(edges, tau, t0, sigma, period, u, du, dt0):
    """Bin integrals of the Gaussian-IRF decay and their derivatives wrt ln tau and t0.

    Earlier pulses (periodic case) add sum_{m>=1} [F(b + mP) - F(a + mP)] with F ~ 1 - E
    there, i.e. the geometric sum of exponential tails; the next pulse adds F(u - P)."""
    n = edges.shape[0]
    periodic = period > 0.0
    qp = 0.0
    c = 0.0
    st2 = 0.0
    if periodic:
        qp = math.exp(-period / tau)
        c = qp * period / (tau * (1.0 - qp))
        st2 = (sigma / tau) ** 2
    f_prev = 0.0
    df_prev = 0.0
    dt_prev = 0.0
    for k in range(n):
        x = edges[k] - t0
        f, df, dt = exgauss_cdf_parts(x, tau, sigma)
        if periodic:
            # next pulse, and the exponential tails of all earlier pulses:
            # W(u) = -E(u + P) / (1 - exp(-P/tau))
            f1, df1, dt1 = exgauss_cdf_parts(x - period, tau, sigma)
            W = -math.exp(min(0.5 * st2 - (x + period) / tau, 700.0)) / (1.0 - qp)
            f += f1 + W
            df += df1 + W * (-st2 + (x + period) / tau + c)
            dt += dt1 + W / tau
        if k > 0:
            u[k - 1] = f - f_prev
            du[k - 1] = df - df_prev
            dt0[k - 1] = dt - dt_prev
        f_prev = f
        df_prev = df
        dt_prev = dt


@njit(cache=True, nogil=True)
def _irf_conv_kernel(h, q, r, x, out):
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


@njit(cache=True, nogil=True)
def _shape_array_into(n_bins, dt, h, tau, shift, period, res):
    """Measured IRF ``h`` (normalised, on the histogram bins) shifted by ``shift`` ps,
    convolved with the (periodic if period > 0) exponential: bin integrals into ``res``."""
    delta = shift / dt
    q = math.floor(delta)
    r = delta - q
    x = dt / tau
    # for q < 0 the IRF bins shifted before bin 0 still feed the tail: pad on the left
    pad = max(0, -int(q)) + 2
    out = np.empty(n_bins + pad)
    _irf_conv_kernel(h, int(q) + pad, r, min(x, 700.0), out)
    for k in range(n_bins):
        res[k] = out[pad + k]
    if period > 0.0:
        # previous pulses: every IRF bin lies wholly before every detection bin, so each
        # contributes the pure exponential bin integral, summed over m >= 1 geometrically:
        # (1/x)(1-e^-x)(e^x-1) e^{-(k-j-q-r)x - mP/tau}
        J = -1
        for j in range(h.shape[0]):
            if h[j] > 0.0:
                J = j
        if J >= 0:
            sw = 0.0
            for jj in range(J + 1):
                sw += h[jj] * math.exp((jj - J) * x)
            lw = math.log(sw)
            om = -math.expm1(-x)
            log_c = (
                math.log(om) + x + math.log(om if x < 700 else 1.0) - math.log(x)
                - math.log(-math.expm1(-period / tau))
            )  # fmt: skip
            for k in range(n_bins):
                expo = log_c + lw + (J + q + r - k) * x - period / tau
                res[k] += math.exp(min(expo, 700.0))


@njit(cache=True, nogil=True)
def _component(tau, irf, nz, M, K, dt, h, dh):
    """h_k(tau) and dh_k/dtau, k < K, of the IRF (M bins, sum 1; ``nz`` its non-zero bins)
    convolved with the periodic bin-integrated exponential ("grid" form, module doc)."""
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def unit_shape(kind, tau, t0, need_t0, edges, sigma, period, h, gi, nz, Mf, s, dtf,
               u, du, dt0, hf, dhf):  # fmt: skip
    """One unit-area component over all bins: ``u``, ``du/d ln tau`` (times the returned
    factor) and (if ``need_t0``) ``du/dt0``, for the IRF representation ``kind`` (module
    doc). The factor is tau for the "grid" form (whose recursion gives du/dtau), else 1."""
    K = u.shape[0]
    if kind == KIND_NONE:
        _shape_none_into(edges, tau, t0, period, u, du)
    elif kind == KIND_GAUSSIAN:
        _shape_gauss_into(edges, tau, t0, sigma, period, u, du, dt0)
    elif kind == KIND_ARRAY:
        dt = edges[1] - edges[0]
        _shape_array_into(K, dt, h, tau, t0, period, u)
        _shape_array_into(K, dt, h, tau * math.exp(_H_LOGTAU), t0, period, du)
        _shape_array_into(K, dt, h, tau * math.exp(-_H_LOGTAU), t0, period, hf)
        for k in range(K):
            du[k] = (du[k] - hf[k]) / (2.0 * _H_LOGTAU)
        if need_t0:
            e = _H_T0_BINS * dt
            _shape_array_into(K, dt, h, tau, t0 + e, period, dt0)
            _shape_array_into(K, dt, h, tau, t0 - e, period, hf)
            for k in range(K):
                dt0[k] = (dt0[k] - hf[k]) / (2.0 * e)
    else:
        _binned(tau, gi, nz, Mf, K, s, dtf, u, du, hf, dhf)
        return tau
    return 1.0


@njit(cache=True, nogil=True)
def jacobian_columns(n_exp, need_t0):
    """Column of each parameter of ``theta`` in the compact Jacobian of :func:`evaluate`
    (-1 for parameters not in the model): ``A_1..A_n, ln tau_1..ln tau_n, [t0], B``. Only
    the columns in use are stored, so that a pixel's working set stays small (a mono fit
    touches 3 of the 8 parameters)."""
    col = np.full(N_PARAMS, -1, dtype=np.int64)
    for i in range(n_exp):
        col[I_AMP + i] = i
        col[I_LOGTAU + i] = n_exp + i
    c = 2 * n_exp
    if need_t0:
        col[I_T0] = c
        c += 1
    col[I_BG] = c
    return col


@njit(cache=True, nogil=True)
def evaluate(theta, n_exp, need_t0, kind, edges, sigma, period, h, gi, nz, Mf, s, dtf,
             mu, J, u, du, dt0, hf, dhf):  # fmt: skip
    """mu (K) and its compact Jacobian J (K x (2 n_exp + need_t0 + 1)) with respect to theta
    (module doc), columns as in :func:`jacobian_columns`: ``A_1..A_n, ln tau_1..ln tau_n,
    [t0], B``."""
    K = mu.shape[0]
    b = theta[I_BG]
    t0 = theta[I_T0]
    c_t0 = 2 * n_exp
    c_bg = c_t0 + 1 if need_t0 else c_t0
    for k in range(K):
        mu[k] = b
        J[k, c_bg] = 1.0
        if need_t0:
            J[k, c_t0] = 0.0
    for i in range(n_exp):
        A = theta[I_AMP + i]
        tau = math.exp(theta[I_LOGTAU + i])
        f = A * unit_shape(kind, tau, t0, need_t0, edges, sigma, period, h, gi, nz, Mf, s,
                           dtf, u, du, dt0, hf, dhf)  # fmt: skip
        for k in range(K):
            mu[k] += A * u[k]
            J[k, i] = u[k]
            J[k, n_exp + i] = f * du[k]
        if need_t0:
            for k in range(K):
                J[k, c_t0] += A * dt0[k]


@njit(parallel=True, cache=True, nogil=True)
def model_rows(theta, n_exp, kind, edges, sigma, period, h, gi, nz, Mf, s, dtf, out):
    """Expected histograms ``out`` (n, K) of the parameter rows ``theta`` (n, N_PARAMS)."""
    n, K = out.shape
    for i in prange(n):
        u = np.empty(K)
        du = np.empty(K)
        dt0 = np.empty(K)
        hf = np.empty(max(K * s, K))
        dhf = np.empty(max(K * s, K))
        for k in range(K):
            out[i, k] = theta[i, I_BG]
        for c in range(n_exp):
            unit_shape(kind, math.exp(theta[i, I_LOGTAU + c]), theta[i, I_T0], False, edges,
                       sigma, period, h, gi, nz, Mf, s, dtf, u, du, dt0, hf, dhf)  # fmt: skip
            for k in range(K):
                out[i, k] += theta[i, I_AMP + c] * u[k]


# =============================================================================== the model


@dataclass(frozen=True, eq=False)
class DecayModel:
    """The instrument side of the model: bins, IRF representation and period.

    ``kind`` (module doc); ``sigma_ps`` of a Gaussian IRF; ``centre_ps`` its centre when it
    is given (fixed t0), else NaN; ``irf`` the normalised measured IRF ("array", n_bins) or
    the IRF on the fine period grid ("grid", ``M * s`` bins); ``period_ps`` 0 without wrap.
    """

    kind: str
    n_bins: int
    bin_ps: float
    period_ps: float = 0.0
    sigma_ps: float = math.nan
    centre_ps: float = math.nan
    irf: np.ndarray | None = None
    s: int = 1  # grid: sub-bins per bin
    M: int = 0  # grid: bins per period

    @property
    def code(self) -> int:
        return _KINDS[self.kind]

    @property
    def t0_is_parameter(self) -> bool:
        """Whether t0 can be fitted (it has no meaning for the "grid" form)."""
        return self.kind in ("gaussian", "array")

    @property
    def scratch(self) -> int:
        return max(self.n_bins * self.s, self.n_bins)

    @property
    def coarse_irf(self) -> np.ndarray:
        """The "grid" IRF summed onto the M coarse bins of the period."""
        return self.irf.reshape(self.M, self.s).sum(axis=1)

    def args(self) -> tuple:
        """(kind, edges, sigma, period, h, grid irf, non-zero grid bins, M_fine, s, dt_fine)
        for the numba kernels."""
        edges = np.arange(self.n_bins + 1, dtype=np.float64) * self.bin_ps
        empty = np.zeros(1)
        sigma = 0.0 if math.isnan(self.sigma_ps) else self.sigma_ps
        if self.kind == "grid":
            gi = self.irf
            nz = np.flatnonzero(gi).astype(np.int64)
            return (self.code, edges, sigma, float(self.period_ps), empty, gi, nz,
                    self.M * self.s, self.s, self.bin_ps / self.s)  # fmt: skip
        h = self.irf if self.kind == "array" else empty
        return (self.code, edges, sigma, float(self.period_ps), h, empty,
                np.zeros(1, dtype=np.int64), 1, 1, self.bin_ps)  # fmt: skip

    def expectation(self, taus_ps, photons, background: float, t0_ps: float) -> np.ndarray:
        """mu over all bins for the given components (photons per full decay)."""
        taus = np.atleast_1d(np.asarray(taus_ps, dtype=np.float64))
        a = np.atleast_1d(np.asarray(photons, dtype=np.float64))
        if taus.size != a.size or taus.size > N_EXP_MAX:
            raise ValueError(f"taus_ps and photons must hold 1..{N_EXP_MAX} values each")
        th = np.zeros((1, N_PARAMS))
        th[0, I_AMP : I_AMP + a.size] = a
        th[0, I_LOGTAU : I_LOGTAU + taus.size] = np.log(taus)
        th[0, I_T0] = t0_ps
        th[0, I_BG] = background
        out = np.empty((1, self.n_bins))
        model_rows(th, taus.size, *self.args(), out)
        return out[0]


def _is_gaussian_pair(irf: object) -> bool:
    return isinstance(irf, tuple | list) and len(irf) == 2 and all(np.isscalar(v) for v in irf)


def make_model(irf: object, n_bins: int, bin_ps: float, period_ps: float | None) -> DecayModel:
    """The exact model for an IRF given as ``None``, ``{"gaussian": sigma_ps}`` (centre = t0,
    fitted), ``{"gaussian": sigma_ps, "centre_ps": c}`` or ``(centre_ps, sigma_ps)`` (centre
    fixed), or a measured array on the ``n_bins`` bins (any normalisation)."""
    nb, dt = int(n_bins), float(bin_ps)
    P = 0.0 if period_ps is None else float(period_ps)
    if period_ps is not None and not P > 0:
        raise ValueError(f"period_ps must be > 0, got {period_ps!r}")
    if irf is None:
        return DecayModel("none", nb, dt, P)
    if isinstance(irf, dict) or _is_gaussian_pair(irf):
        if isinstance(irf, dict):
            if "gaussian" not in irf or not set(irf) <= {"gaussian", "centre_ps"}:
                raise ValueError(
                    "irf dict must be {'gaussian': sigma_ps} (optionally 'centre_ps'), got "
                    f"keys {set(irf)}"
                )
            sigma, centre = float(irf["gaussian"]), float(irf.get("centre_ps", math.nan))
        else:
            centre, sigma = float(irf[0]), float(irf[1])
        if not sigma > 0:
            raise ValueError(f"gaussian IRF sigma must be > 0, got {sigma}")
        return DecayModel("gaussian", nb, dt, P, sigma_ps=sigma, centre_ps=centre)
    h = np.asarray(irf, dtype=np.float64)
    if h.ndim != 1 or h.size != nb:
        raise ValueError(
            f"a measured irf must be a 1-D array on the same bins as counts "
            f"(length {nb}), got shape {h.shape}"
        )
    if np.any(h < 0) or not h.sum() > 0 or not np.all(np.isfinite(h)):
        raise ValueError("a measured irf must be finite, >= 0 and not all zero")
    return DecayModel("array", nb, dt, P, irf=np.ascontiguousarray(h / h.sum()))


def make_grid_model(irf: object, n_bins: int, bin_ps: float, period_ps: float | None) -> DecayModel:
    """The "grid" form (module doc) of a measured IRF (``n_bins`` or one period of bins) or a
    Gaussian ``(centre_ps, sigma_ps)``, for the per-pixel FLIM fits."""
    dt = float(bin_ps)
    M = period_bins(n_bins, dt, period_ps)
    P = M * dt if period_ps is not None else n_bins * dt
    if _is_gaussian_pair(irf):
        centre, sigma = float(irf[0]), float(irf[1])
        if not sigma > 0:
            raise ValueError(f"the Gaussian IRF sigma must be > 0, got {sigma}")
        s = int(min(_MAX_OVERSAMPLE, max(1, math.ceil(dt / sigma - 1e-9))))
        fine = gaussian_irf(M * s, dt / s, centre, sigma)
        fine[fine < 1e-15 * fine.max()] = 0.0  # Gaussian tails beyond ~8 sigma
        fine /= fine.sum()
        return DecayModel("grid", n_bins, dt, P, sigma_ps=sigma, centre_ps=centre, irf=fine,
                          s=s, M=M)  # fmt: skip
    a = np.asarray(irf, dtype=np.float64).ravel()
    if a.size not in (n_bins, M) or a.size > M:
        raise ValueError(f"a measured IRF must have {n_bins} (or {M}) bins, got {a.size}")
    if np.any(a < 0) or not np.all(np.isfinite(a)) or not a.sum() > 0:
        raise ValueError("the IRF must be finite, non-negative and not all zero")
    full = np.zeros(M)
    full[: a.size] = a
    return DecayModel("grid", n_bins, dt, P, irf=full / full.sum(), s=1, M=M)


# ============================================================ single shapes (checks, guesses)


def _shape_none(edges: np.ndarray, tau: float, t0: float, period: float | None):
    """(u, du/d ln tau) of the "none" form on arbitrary ``edges``."""
    e = np.ascontiguousarray(edges, dtype=np.float64)
    u, du = np.empty(e.size - 1), np.empty(e.size - 1)
    _shape_none_into(e, float(tau), float(t0), 0.0 if period is None else float(period), u, du)
    return u, du


def _shape_gauss(edges: np.ndarray, tau: float, t0: float, sigma: float, period: float | None):
    """(u, du/d ln tau, du/dt0) of the "gaussian" form on arbitrary ``edges``."""
    e = np.ascontiguousarray(edges, dtype=np.float64)
    u, du, d0 = np.empty(e.size - 1), np.empty(e.size - 1), np.empty(e.size - 1)
    P = 0.0 if period is None else float(period)
    _shape_gauss_into(e, float(tau), float(t0), float(sigma), P, u, du, d0)
    return u, du, d0


def _shape_array(n_bins: int, dt: float, h: np.ndarray, tau: float, shift: float,
                 period: float | None) -> np.ndarray:  # fmt: skip
    """u of the "array" form: measured IRF ``h`` (normalised) shifted by ``shift`` ps."""
    out = np.empty(int(n_bins))
    P = 0.0 if period is None else float(period)
    _shape_array_into(int(n_bins), float(dt), np.ascontiguousarray(h, dtype=np.float64),
                      float(tau), float(shift), P, out)  # fmt: skip
    return out


# ======================================================================== public functions


def decay_expectation(
    n_bins: int,
    bin_ps: float,
    taus_ps,
    photons,
    background: float = 0.0,
    *,
    irf: object = None,
    t0_ps: float | None = None,
    period_ps: float | None = None,
) -> np.ndarray:
    """Expected counts ``mu_k = sum_i photons_i u_k(tau_i, t0) + background`` over all
    ``n_bins`` bins of ``bin_ps`` (module doc), the model :func:`hbtscope.analysis.fit_decay`
    fits.

    ``photons_i``: photons of component i per full decay (``DecayFitResult.photons``);
    ``irf`` as in ``fit_decay``: None (step at t0), ``{"gaussian": sigma_ps}`` (centre t0),
    ``(centre_ps, sigma_ps)``, or a measured array (shifted by t0). ``t0_ps`` defaults to the
    Gaussian's given centre, else 0.
    """
    model = make_model(irf, n_bins, bin_ps, period_ps)
    if t0_ps is None:
        t0_ps = 0.0 if math.isnan(model.centre_ps) else model.centre_ps
    return model.expectation(taus_ps, photons, float(background), float(t0_ps))


def decay_deviance(
    counts,
    bin_ps: float,
    taus_ps,
    photons,
    background: float = 0.0,
    *,
    irf: object = None,
    t0_ps: float | None = None,
    period_ps: float | None = None,
    fit_range: tuple[int, int] | None = None,
) -> float:
    """The objective of the decay fits at arbitrary parameters: the Poisson deviance
    ``D = 2 sum_k [n_k ln(n_k / mu_k) - (n_k - mu_k)]`` over ``fit_range`` (default all
    bins), ``mu`` from :func:`decay_expectation`. ``D = 2 NLL + const(data)`` with
    ``NLL = sum (mu - n ln mu)``, so the fit minimises it; ``DecayFitResult.deviance`` is its
    value at the optimum."""
    n = np.asarray(counts, dtype=np.float64)
    mu = decay_expectation(n.size, bin_ps, taus_ps, photons, background, irf=irf, t0_ps=t0_ps,
                           period_ps=period_ps)  # fmt: skip
    lo, hi = (0, n.size) if fit_range is None else (int(fit_range[0]), int(fit_range[1]))
    return poisson_deviance(n[lo:hi], mu[lo:hi])
