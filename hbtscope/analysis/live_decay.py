"""A decay histogram and the mean arrival time, fed chunk by chunk (a live view of a TTTR record).

:class:`DecayAccumulator` takes the tags of one read-out after the other (sync kept every
``divider`` pulses, and one photon channel), computes each photon's delay after its pulse as
``(t - s_j) mod T_j`` with ``T_j = (s_{j+1} - s_j) / N`` (:mod:`hbtscope.analysis.
divided_sync`; the last kept syncs of the previous chunk are carried over, so no photon is lost
at a chunk boundary once two syncs (a period) are known; photons before that are dropped) and
adds it to a histogram over one period. Per chunk it returns the photons' mean delay minus the
decay's rising edge (the lifetime axis of a FLID, D'Amato et al. 2023; as
:func:`~hbtscope.analysis.mean_arrival_time_per_bin`; the edge:
:func:`~hbtscope.analysis.divided_sync.rising_edge_of_histogram` of the histogram so far). The
final analysis re-computes everything from the recorded tags; this is what the operator
watches.
"""

from __future__ import annotations

import math

import numpy as np

from hbtscope.analysis.divided_sync import delays_from_divided_sync, rising_edge_of_histogram

__all__ = ["DecayAccumulator"]


class DecayAccumulator:
    """Histogram of photon delays after the laser pulse, fed read-out by read-out."""

    def __init__(self, divider: int, bin_ps: float = 100.0) -> None:
        if int(divider) < 1:
            raise ValueError(f"divider must be >= 1, got {divider!r}")
        if not (math.isfinite(bin_ps) and bin_ps > 0):
            raise ValueError(f"bin_ps must be > 0, got {bin_ps!r}")
        self.divider = int(divider)
        self.bin_ps = float(bin_ps)
        self.period_ps = math.nan
        self.counts = np.zeros(0, dtype=np.int64)
        self._last_syncs = np.zeros(0, dtype=np.int64)

    @property
    def delay_ns(self) -> np.ndarray:
        """Bin centres (ns) of :attr:`counts`."""
        return (np.arange(self.counts.size) + 0.5) * self.bin_ps / 1e3

    def add(self, photon_ps: np.ndarray, sync_ps: np.ndarray) -> float:
        """Add one chunk (sorted photon and sync times, ps); the chunk's mean arrival time
        after the rising edge (ns), NaN while no period is known or no photon fell after a
        sync."""
        syncs = np.concatenate([self._last_syncs, np.asarray(sync_ps, dtype=np.int64)])
        if syncs.size >= 2 and not math.isfinite(self.period_ps):
            self.period_ps = float(np.median(np.diff(syncs.astype(np.float64)))) / self.divider
            n_bins = max(int(math.ceil(self.period_ps / self.bin_ps)), 1)
            self.counts = np.zeros(n_bins, dtype=np.int64)
        if syncs.size:
            self._last_syncs = syncs[-2:] if syncs.size >= 2 else syncs
        if not math.isfinite(self.period_ps) or syncs.size < 2:
            return math.nan
        d = delays_from_divided_sync(np.asarray(photon_ps, dtype=np.int64), syncs, self.divider)
        d = d[d >= 0]
        if d.size == 0:
            return math.nan
        k = np.minimum((d // self.bin_ps).astype(np.int64), self.counts.size - 1)
        self.counts += np.bincount(k, minlength=self.counts.size)
        # as the analysis's FLID (mean_arrival_time_per_bin with t0 = the edge): the plain
        # mean minus the edge; no wrap, so photons a little before the edge are not sent to
        # the period's end
        return (float(np.mean(d)) - self.rising_edge_ps()) / 1e3

    def rising_edge_ps(self) -> float:
        """Where the histogram so far rises (:func:`~hbtscope.analysis.divided_sync.
        rising_edge_of_histogram`), ps; 0 without photons."""
        if self.counts.sum() == 0:
            return 0.0
        return rising_edge_of_histogram(self.counts, self.bin_ps)
