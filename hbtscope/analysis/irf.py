"""The Gaussian instrument response, written once: its bin probabilities and its convolution
with an exponential.

* :func:`gaussian_irf`: a Gaussian IRF ``N(centre, sigma)`` integrated over bins and wrapped
  onto one period (the IRF on a histogram's bins, as a measured IRF would be given).
* :func:`exgauss_cdf_parts`: the CDF of Exp(tau) (x) N(0, sigma), the exponentially modified
  Gaussian (Grushka 1972, Anal. Chem. 44, 1733),
  ``F(u) = Phi(u/s) - exp(s^2/2tau^2 - u/tau) Phi(u/s - s/tau)``, evaluated through the scaled
  complementary error function ``erfcx`` (no overflow for s << tau or u << 0), with its
  closed-form derivatives with respect to ln tau and to the centre. Bin integrals of a decay
  seen through a Gaussian IRF are differences of it (:mod:`hbtscope.analysis.decay_model`),
  and so is the two-sided CW antibunching kernel of :mod:`hbtscope.analysis.g2_cw`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.special import ndtr

__all__ = ["exgauss_cdf_parts", "gaussian_irf", "period_bins"]


@njit(cache=True, nogil=True)
def erfcx(z: float) -> float:
    """Scaled complementary error function exp(z^2) erfc(z) for z >= 0."""
    if z < 25.0:
        return math.exp(z * z) * math.erfc(z)
    # asymptotic series, relative error < 1e-10 for z >= 25
    iz2 = 1.0 / (z * z)
    return (1.0 - 0.5 * iz2 * (1.0 - 1.5 * iz2 * (1.0 - 2.5 * iz2))) / (z * 1.7724538509055159)


@njit(cache=True, nogil=True)
def exgauss_cdf_parts(u: float, tau: float, sigma: float) -> tuple[float, float, float]:
    """Exp(tau) (x) N(0, sigma) at ``u`` (time after the Gaussian's centre): the CDF F(u),
    tau dF/dtau (= dF/d ln tau), and dF/d centre (= -density)."""
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
        G = 0.5 * g * erfcx(z)
    else:
        G = 0.5 * math.exp(min(0.5 * st * st - u / tau, 0.0)) * math.erfc(z)
    phi = g * 0.3989422804014327
    F = 0.5 * math.erfc(-u / sigma * 0.7071067811865476) - G
    return F, -(u / tau - st * st) * G - st * phi, -G / tau


def period_bins(n_bins: int, bin_ps: float, period_ps: float | None) -> int:
    """Bins per excitation period (``n_bins`` when ``period_ps`` is None); the period must be
    at least the histogram."""
    if period_ps is None:
        return int(n_bins)
    M = int(round(float(period_ps) / float(bin_ps)))
    if M < n_bins:
        raise ValueError(
            f"period_ps = {period_ps} is shorter than the histogram ({n_bins} x {bin_ps} ps)"
        )
    return M


def gaussian_irf(
    n_bins: int, bin_ps: float, centre_ps: float, sigma_ps: float, *, period_ps: float | None = None
) -> np.ndarray:
    """Gaussian IRF integrated over bins of ``bin_ps`` and wrapped onto one period.

    Returns ``M = period_ps / bin_ps`` (default ``n_bins``) bin probabilities summing to 1:
    ``sum_w [Phi((b_k + wT - c)/s) - Phi((a_k + wT - c)/s)]`` over the periodic images w.
    """
    M = period_bins(int(n_bins), bin_ps, period_ps)
    s = float(sigma_ps)
    if not s > 0:
        raise ValueError(f"sigma_ps must be > 0, got {sigma_ps!r}")
    T = M * float(bin_ps)
    n_wrap = int(math.ceil(8 * s / T)) + 1
    edges = np.arange(M + 1) * float(bin_ps)
    out = np.zeros(M)
    for w in range(-n_wrap, n_wrap + 1):
        out += np.diff(ndtr((edges + w * T - float(centre_ps)) / s))
    return out / out.sum()
