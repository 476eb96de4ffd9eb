"""Exact intervals for counts: a Poisson mean from one observed count.

:func:`poisson_interval` is Garwood's (1936) central interval, the Poisson analogue of
Clopper-Pearson: ``[chi2_{a/2}(2n) / 2, chi2_{1-a/2}(2n + 2) / 2]`` with ``a = 1 - level``;
for ``n = 0`` the lower end is 0 and the upper end ``-ln(a/2)`` (1.84 at 68.27 %). It never
collapses to a point, so a rate estimated from zero counts keeps an honest uncertainty.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["poisson_interval"]

ONE_SIGMA = 0.682689492137086


def poisson_interval(n, level: float = ONE_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """Central ``level`` confidence interval ``(lo, hi)`` of a Poisson mean, ``n`` observed.

    ``n`` may be an array of non-negative integers (counts); returns arrays (or floats).
    """
    k = np.asarray(n, dtype=np.float64)
    if np.any(k < 0) or not np.all(np.isfinite(k)):
        raise ValueError("counts must be finite and >= 0")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    a = 1.0 - level
    lo = np.where(k > 0, 0.5 * stats.chi2.ppf(a / 2, 2 * np.maximum(k, 1)), 0.0)
    hi = 0.5 * stats.chi2.ppf(1 - a / 2, 2 * k + 2)
    if lo.ndim == 0:
        return float(lo), float(hi)
    return lo, hi
