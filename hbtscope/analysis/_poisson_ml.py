"""The Poisson maximum-likelihood engine of the decay fits (single histograms and FLIM pixels).

For each row ``y`` of counts it maximises ``ln L = sum_k (y_k ln mu_k - mu_k)`` over the bins
``[k_lo, k_hi)``, ``mu`` and its Jacobian from :func:`hbtscope.analysis.decay_model.evaluate`,
by projected Levenberg-Marquardt-damped Fisher scoring: score ``g = J^T (y/mu - 1)``,
expected information ``F = J^T diag(1/mu) J`` over the free parameters, step
``(F + lambda diag F)^-1 g`` accepted when ``ln L`` does not decrease (lambda / 5 after
an accepted step, x 10 after a rejected one), box bounds by clipping, and parameters at a
bound whose score points outwards held there (active set). Rows are independent and run in
parallel (``numba.prange``): the pixels of an image, or the starting points of one fit.

Stopping: ``tight=False`` (FLIM pixels) when an accepted step gains < 1e-7 in ln L;
``tight=True`` (single fits) when it gains < 1e-10 (1 + |ln L|) with all steps < 1e-6 (1 +
|theta|), or < 1e-13 (1 + |ln L|). ``status``: 0 converged (Newton decrement
``g^T F^-1 g / 2 < 1e-4`` at the end), 1 not converged, 2 no improving step found and not at
the optimum, 3 singular information, 4 the start has a negative expectation. The
covariance is the inverse Fisher information of all free parameters (also those held at a
bound: conservative), of those off their bounds if that is singular, NaN if both are.
A negative expectation is outside the model (ln L = -inf); an expectation of exactly 0
where counts were seen costs ``y ln(1e-300)``, large but finite, so the optimiser can move
away from it (a fit without background before the rise).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from hbtscope.analysis.decay_model import I_T0, N_PARAMS, evaluate, jacobian_columns

STATUS_CONVERGED, STATUS_NOT_CONVERGED, STATUS_STUCK, STATUS_SINGULAR, STATUS_BAD_START = range(5)


@njit(cache=True, nogil=True)
def _loglik(y, mu, klo, khi):
    s = 0.0
    for k in range(klo, khi):
        m = mu[k]
        if m < 0.0:
            return -np.inf
        if y[k] > 0.0:
            s += y[k] * math.log(max(m, 1e-300)) - m
        else:
            s -= m
    return s


@njit(cache=True, nogil=True)
def _score_fisher(y, mu, J, col, idx, n, g, F, klo, khi, ci):
    """Score g and Fisher information F restricted to parameters idx[:n] (their Jacobian
    columns ``col[idx]``, written to the scratch ``ci``)."""
    for a in range(n):
        ci[a] = col[idx[a]]
    for a in range(n):
        g[a] = 0.0
        for b in range(n):
            F[a, b] = 0.0
    for k in range(klo, khi):
        m = mu[k]
        if m <= 0.0:
            continue
        w = y[k] / m - 1.0
        im = 1.0 / m
        for a in range(n):
            ja = J[k, ci[a]]
            g[a] += w * ja
            t = ja * im
            for b in range(a, n):
                F[a, b] += t * J[k, ci[b]]
    for a in range(n):
        for b in range(a):
            F[a, b] = F[b, a]


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def _free_score(y, mu, J, col, free, g_full, klo, khi):
    for a in range(free.shape[0]):
        g_full[free[a]] = 0.0
    for k in range(klo, khi):
        m = mu[k]
        if m <= 0.0:
            continue
        w = y[k] / m - 1.0
        for a in range(free.shape[0]):
            p = free[a]
            g_full[p] += w * J[k, col[p]]


@njit(parallel=True, cache=True, nogil=True)
def fit_rows(
    Y, theta0, free, lo, hi, klo, khi, n_exp, need_t0, kind, edges, sigma, period, h, gi, nz,
    Mf, s, dtf, max_iter, tight, out_theta, out_cov, out_ll, out_dev, out_iter, out_status,
):  # fmt: skip
    """Fit every row of ``Y`` (n, K) from ``theta0`` (n, N_PARAMS); see the module doc."""
    n_rows, K = Y.shape
    nfree = free.shape[0]
    ns = max(K * s, K)
    col = jacobian_columns(n_exp, need_t0)
    ncol = 2 * n_exp + 2 if need_t0 else 2 * n_exp + 1
    for i in prange(n_rows):
        y = Y[i]
        theta = theta0[i].copy()
        trial = theta.copy()
        mu = np.empty(K)
        mu2 = np.empty(K)
        J = np.zeros((K, ncol))
        J2 = np.zeros((K, ncol))
        u = np.empty(K)
        du = np.empty(K)
        dt0 = np.empty(K)
        hf = np.empty(ns)
        dhf = np.empty(ns)
        g_full = np.zeros(N_PARAMS)
        idx = np.empty(N_PARAMS, dtype=np.int64)
        ci = np.empty(N_PARAMS, dtype=np.int64)
        g = np.empty(N_PARAMS)
        F = np.empty((N_PARAMS, N_PARAMS))
        A = np.empty((N_PARAMS, N_PARAMS))
        delta = np.empty(N_PARAMS)
        evaluate(theta, n_exp, need_t0, kind, edges, sigma, period, h, gi, nz, Mf, s, dtf,
                 mu, J, u, du, dt0, hf, dhf)  # fmt: skip
        L = _loglik(y, mu, klo, khi)
        for a in range(N_PARAMS):
            for b in range(N_PARAMS):
                out_cov[i, a, b] = 0.0
        if not L > -np.inf:
            for p in range(N_PARAMS):
                out_theta[i, p] = theta[p]
            out_ll[i] = -np.inf
            out_dev[i] = np.inf
            out_iter[i] = 0
            out_status[i] = 4
            continue
        lam = 1e-3
        status = 1
        it = 0
        while it < max_iter:
            it += 1
            _free_score(y, mu, J, col, free, g_full, klo, khi)
            n = _free_set(theta, g_full, free, lo, hi, idx)
            if n == 0:
                status = 0
                break
            _score_fisher(y, mu, J, col, idx, n, g, F, klo, khi, ci)
            accepted = False
            gain = 0.0
            small = True
            for _t in range(40):
                for a in range(n):
                    for b in range(n):
                        A[a, b] = F[a, b]
                    A[a, a] = F[a, a] * (1.0 + lam) + 1e-300
                if not _cholesky_solve(A, g, n, delta):
                    lam *= 10.0
                    continue
                for p in range(N_PARAMS):
                    trial[p] = theta[p]
                for a in range(n):
                    p = idx[a]
                    v = theta[p] + delta[a]
                    if v < lo[p]:
                        v = lo[p]
                    elif v > hi[p]:
                        v = hi[p]
                    trial[p] = v
                evaluate(trial, n_exp, need_t0, kind, edges, sigma, period, h, gi, nz, Mf, s,
                         dtf, mu2, J2, u, du, dt0, hf, dhf)  # fmt: skip
                L2 = _loglik(y, mu2, klo, khi)
                if L2 >= L:
                    gain = L2 - L
                    small = True
                    for p in range(N_PARAMS):
                        if abs(trial[p] - theta[p]) > 1e-6 * (1.0 + abs(trial[p])):
                            small = False
                        theta[p] = trial[p]
                    L = L2
                    mu, mu2 = mu2, mu
                    J, J2 = J2, J
                    lam = max(lam * 0.2, 1e-10)
                    accepted = True
                    break
                lam *= 10.0
                if lam > 1e12:
                    break
            if not accepted:
                status = 2
                break
            if tight:
                scale = 1.0 + abs(L)
                if (gain <= 1e-10 * scale and small) or gain <= 1e-13 * scale:
                    status = 0
                    break
            elif gain < 1e-7:
                status = 0
                break
        # convergence: Newton decrement over the free parameters off their bounds
        _free_score(y, mu, J, col, free, g_full, klo, khi)
        n = _free_set(theta, g_full, free, lo, hi, idx)
        if n > 0:
            _score_fisher(y, mu, J, col, idx, n, g, F, klo, khi, ci)
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
        _score_fisher(y, mu, J, col, idx, nc, g, F, klo, khi, ci)
        e = np.zeros(N_PARAMS)
        if not _cholesky_solve(F, e, nc, delta):
            _free_score(y, mu, J, col, free, g_full, klo, khi)
            nc = _free_set(theta, g_full, free, lo, hi, idx)
            _score_fisher(y, mu, J, col, idx, nc, g, F, klo, khi, ci)
        cov_col = np.empty(N_PARAMS)
        for a in range(nc):
            for b in range(nc):
                e[b] = 1.0 if a == b else 0.0
            if _cholesky_solve(F, e, nc, cov_col):
                for b in range(nc):
                    out_cov[i, idx[a], idx[b]] = cov_col[b]
            else:
                for b in range(nc):
                    out_cov[i, idx[a], idx[b]] = np.nan
        dev = 0.0
        for k in range(klo, khi):
            if y[k] > 0.0 and mu[k] > 0.0:
                dev += 2.0 * (y[k] * math.log(y[k] / mu[k]) - (y[k] - mu[k]))
            else:
                dev += 2.0 * mu[k]
        for p in range(N_PARAMS):
            out_theta[i, p] = theta[p]
        out_ll[i] = L
        out_dev[i] = dev
        out_iter[i] = it
        out_status[i] = status


def run(Y, theta0, free, lo, hi, model, n_exp: int, *, fit_range=None, max_iter: int = 200,
        tight: bool = False):  # fmt: skip
    """Fit the rows of ``Y`` (n, K) with the model ``model`` (a
    :class:`~hbtscope.analysis.decay_model.DecayModel`). Returns (theta, cov, log-likelihood
    without the ln y! term, deviance, iterations, status), one entry per row."""
    Y = np.ascontiguousarray(np.atleast_2d(Y), dtype=np.float64)
    n, K = Y.shape
    klo, khi = (0, K) if fit_range is None else (int(fit_range[0]), int(fit_range[1]))
    free = np.asarray(free, dtype=np.int64)
    th = np.empty((n, N_PARAMS))
    cov = np.empty((n, N_PARAMS, N_PARAMS))
    ll = np.empty(n)
    dev = np.empty(n)
    it = np.empty(n, dtype=np.int64)
    st = np.empty(n, dtype=np.int64)
    theta0 = np.ascontiguousarray(np.clip(np.atleast_2d(theta0), lo, hi))
    need_t0 = bool(np.any(free == I_T0))
    fit_rows(Y, theta0, free, lo, hi, klo, khi, int(n_exp), need_t0, *model.args(),
             int(max_iter), bool(tight), th, cov, ll, dev, it, st)  # fmt: skip
    return th, cov, ll, dev, it, st


def model_and_jacobian(theta, model, n_exp: int, need_t0: bool):
    """mu (K) and J (K, N_PARAMS; zero columns for parameters not in the model) at ``theta``
    (the engine's own evaluation)."""
    K, ns = model.n_bins, model.scratch
    n_exp, need_t0 = int(n_exp), bool(need_t0)
    col = jacobian_columns(n_exp, need_t0)
    mu, Jc = np.empty(K), np.zeros((K, int(np.count_nonzero(col >= 0))))
    evaluate(np.asarray(theta, dtype=np.float64), n_exp, need_t0, *model.args(), mu, Jc,
             np.empty(K), np.empty(K), np.empty(K), np.empty(ns), np.empty(ns))  # fmt: skip
    J = np.zeros((K, N_PARAMS))
    used = np.flatnonzero(col >= 0)
    J[:, used] = Jc[:, col[used]]
    return mu, J
