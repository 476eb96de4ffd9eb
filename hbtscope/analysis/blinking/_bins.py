"""Whole bins of a photon-stream trace, and the bin of each photon (trace and ON/OFF windows)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MAX_BINS", "bin_index", "span"]

MAX_BINS = 100_000_000  # refuse traces that would not fit in memory


def span(t: np.ndarray, bin_ps: float, t_start_ps, t_stop_ps) -> tuple[float, float, int]:
    if t_start_ps is None:
        if t.size == 0:
            raise ValueError("t_ps is empty: give t_start_ps and t_stop_ps for an empty record")
        t_start_ps = t[0]
    if t_stop_ps is None:
        if t.size == 0:
            raise ValueError("t_ps is empty: give t_start_ps and t_stop_ps for an empty record")
        t_stop_ps = t[-1] + 1
    a, b = float(t_start_ps), float(t_stop_ps)
    if not (math.isfinite(a) and math.isfinite(b) and b > a):
        raise ValueError(f"need finite t_start_ps < t_stop_ps, got {t_start_ps!r}, {t_stop_ps!r}")
    n = int(math.floor((b - a) / bin_ps + 1e-9))
    if n < 1:
        raise ValueError(
            f"the span {b - a:g} ps is shorter than one bin ({bin_ps:g} ps): no whole bin"
        )
    if n > MAX_BINS:
        raise ValueError(
            f"{n} bins of {bin_ps:g} ps over {b - a:g} ps: more than {MAX_BINS}; use larger bins"
        )
    return a, b, n


def bin_index(t: np.ndarray, start: float, bin_ps: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of each photon and a mask of photons inside the n whole bins."""
    if t.dtype == np.int64 and float(start).is_integer() and float(bin_ps).is_integer():
        idx = (t - np.int64(start)) // np.int64(bin_ps)
    else:
        idx = np.floor((t - start) / bin_ps).astype(np.int64)
    ok = (idx >= 0) & (idx < n)
    return idx, ok
