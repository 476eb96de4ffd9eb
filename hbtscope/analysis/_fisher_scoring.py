"""Generic Levenberg-Marquardt-damped Fisher scoring for small models fitted in Python: the
CW antibunching fit (:mod:`hbtscope.analysis.g2_cw`, Poisson counts or a weighted
least-squares g2) and the telegraph fit of :mod:`hbtscope.analysis.g2_long`.

The decay fits (single histograms and FLIM pixels) use the numba engine of
:mod:`hbtscope.analysis._poisson_ml` instead, whose model is evaluated inside numba.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


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
