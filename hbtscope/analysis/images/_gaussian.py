"""Gaussian spot model shared by the refocus fits and emitter finding: the 1-D profile
(pixel-integrated or sampled) with its derivatives, the 2-D model with its Jacobian, and the
check of a noise model argument."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["check_noise", "gauss2d", "profile"]

_SQRT2 = math.sqrt(2.0)

_SQRT2PI = math.sqrt(2.0 * math.pi)


def profile(coord: np.ndarray, c: float, s: float, step: float, integrated: bool):
    """1-D Gaussian profile with peak 1 at the continuous level, and d/dc, d/ds."""
    if not integrated:
        u = (coord - c) / s
        g = np.exp(-0.5 * u * u)
        return g, g * u / s, g * u * u / s
    a2 = (coord + 0.5 * step - c) / s
    a1 = (coord - 0.5 * step - c) / s
    d = 0.5 * (special.erf(a2 / _SQRT2) - special.erf(a1 / _SQRT2))
    p2 = np.exp(-0.5 * a2 * a2) / _SQRT2PI
    p1 = np.exp(-0.5 * a1 * a1) / _SQRT2PI
    k = _SQRT2PI * s / step  # mean of exp(-u^2/2) over the pixel = k * d
    g = k * d
    dg_dc = -k * (p2 - p1) / s
    dg_ds = _SQRT2PI / step * d - k * (a2 * p2 - a1 * p1) / s
    return g, dg_dc, dg_ds


def gauss2d(p, xc, yc, ax, ay, integrated):
    """Model (flattened) and Jacobian of b + A gx gy for p = (x, y, sigma, A, b)."""
    gx, gx_c, gx_s = profile(xc, p[0], p[2], ax, integrated)
    gy, gy_c, gy_s = profile(yc, p[1], p[2], ay, integrated)
    g = np.outer(gy, gx).ravel()
    J = np.empty((g.size, 5))
    J[:, 0] = p[3] * np.outer(gy, gx_c).ravel()
    J[:, 1] = p[3] * np.outer(gy_c, gx).ravel()
    J[:, 2] = p[3] * (np.outer(gy_s, gx) + np.outer(gy, gx_s)).ravel()
    J[:, 3] = g
    J[:, 4] = 1.0
    return p[4] + p[3] * g, J


def check_noise(noise):
    """``"constant"``, ``"poisson"`` or a ``(var0, gain)`` variance model."""
    if isinstance(noise, str):
        if noise not in ("constant", "poisson"):
            raise ValueError(
                f"noise must be 'constant', 'poisson' or (var0, gain), got {noise!r}"
            ) from None
        return noise
    try:
        v0, k = (float(v) for v in noise)
    except (TypeError, ValueError):
        raise ValueError(
            f"noise must be 'constant', 'poisson' or (var0, gain), got {noise!r}"
        ) from None
    if not (v0 > 0 and k >= 0 and math.isfinite(v0) and math.isfinite(k)):
        raise ValueError(f"noise (var0, gain) needs var0 > 0 and gain >= 0, got {noise!r}")
    return (v0, k)
