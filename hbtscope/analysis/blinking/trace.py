"""Intensity trace of a photon stream, its histogram, and the mean delay per bin.

Photon time tags in picoseconds (``t_ps``, sorted ascending, int64 from a time tagger or
float). :func:`intensity_trace` bins them (D'Amato et al. Fig. 4a: 10 ms bins; Pierini et al.
Fig. 5a: 50 ms), :func:`intensity_histogram` histograms the counts per bin, and
:func:`mean_arrival_time_per_bin` gives the mean delay after the laser sync per bin (the
lifetime axis of a FLID, D'Amato et al. SI VI).
"""

from __future__ import annotations

import math

import numpy as np

from hbtscope.analysis._validate import as_times, finite_1d, positive
from hbtscope.analysis.blinking._bins import bin_index, span

__all__ = ["intensity_histogram", "intensity_trace", "mean_arrival_time_per_bin"]


def intensity_trace(
    t_ps, bin_ps: float, t_start_ps: float | None = None, t_stop_ps: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Photon counts in consecutive bins of ``bin_ps`` picoseconds.

    Bins are ``[t_start + i*bin, t_start + (i+1)*bin)`` for the whole bins that fit in
    ``[t_start, t_stop)``; photons after the last whole bin are not counted (a partial bin
    would look like a dip). Defaults: ``t_start`` = first photon, ``t_stop`` = last photon
    + 1 ps -- pass the record's true start and stop when you know them.

    Returns ``(bin_start_ps, counts)`` (counts int64). Counts per second are
    ``counts / (bin_ps * 1e-12)``.
    """
    bin_ps = positive("bin_ps", bin_ps)
    t = as_times("t_ps", t_ps, allow_empty=True)
    start, _, n = span(t, bin_ps, t_start_ps, t_stop_ps)
    idx, ok = bin_index(t, start, bin_ps, n)
    counts = np.bincount(idx[ok], minlength=n).astype(np.int64)
    starts = start + bin_ps * np.arange(n, dtype=np.float64)
    if float(start).is_integer() and float(bin_ps).is_integer():
        starts = np.int64(start) + np.int64(bin_ps) * np.arange(n, dtype=np.int64)
    return starts, counts


def intensity_histogram(
    counts, bins: int | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of the counts per bin of a trace (D'Amato et al. Fig. 4a, right panel).

    ``bins=None``: one bin per integer count value when the range spans <= 200 values,
    otherwise 100 equal bins. An int gives that many equal bins over ``[min - 0.5,
    max + 0.5]``; an array gives the edges. Returns ``(edges, occurrences)``.
    """
    c = finite_1d("counts", counts)
    lo, hi = float(np.min(c)), float(np.max(c))
    if bins is None:
        if hi - lo <= 200:
            edges = np.arange(math.floor(lo) - 0.5, math.ceil(hi) + 1.0, 1.0)
        else:
            edges = np.linspace(lo - 0.5, hi + 0.5, 101)
    elif isinstance(bins, int | np.integer) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        edges = np.linspace(lo - 0.5, hi + 0.5, int(bins) + 1)
    else:
        edges = finite_1d("bins", bins)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bin edges must be at least two strictly increasing values")
    hist, edges = np.histogram(c, bins=edges)
    return edges, hist.astype(np.int64)


def mean_arrival_time_per_bin(
    t_ps,
    delay_ps,
    bin_ps: float,
    t_start_ps: float | None = None,
    t_stop_ps: float | None = None,
    *,
    t0_ps: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean photon delay after its laser sync, per trace bin (FLID lifetime axis).

    ``delay_ps[i]`` is photon i's time after the sync pulse that preceded it; ``t0_ps`` (the
    IRF position) is subtracted so that, for a mono-exponential decay much shorter than the
    sync period, the mean delay estimates the lifetime. Bins as in :func:`intensity_trace`.
    Returns ``(bin_start_ps, counts, mean_delay_ps)``; empty bins give NaN.
    """
    bin_ps = positive("bin_ps", bin_ps)
    t = as_times("t_ps", t_ps, allow_empty=True)
    d = finite_1d("delay_ps", delay_ps, allow_empty=True)
    if d.size != t.size:
        raise ValueError(f"t_ps and delay_ps differ in length ({t.size} vs {d.size})")
    t0 = float(t0_ps)
    if not math.isfinite(t0):
        raise ValueError("t0_ps must be finite")
    starts, counts = intensity_trace(t, bin_ps, t_start_ps, t_stop_ps)
    start = float(starts[0])
    idx, ok = bin_index(t, start, bin_ps, counts.size)
    sums = np.bincount(idx[ok], weights=d[ok] - t0, minlength=counts.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return starts, counts, mean
