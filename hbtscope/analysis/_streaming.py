"""Streaming machinery shared by the chunked correlators (linear and log-binned bins).

A :class:`PairAccumulator` counts every pair ``(t1[i], t2[j])`` of two time-tag channels
whose lag ``d = t2[j] - t1[i]`` lies in ``[lag_min_ps, lag_max_ps)``, fed in consecutive
chunks. Every pair is counted exactly once, in the call where its later-arriving tag arrives:
new t1 x (history t2 + new t2), then history t1 x new t2. The history of a channel keeps only
the tags that can still pair with a future tag of the other channel: future tags of channel 2
are >= ``w2`` (the latest channel-2 tag seen, or ``t_end_ps`` if larger), so the channel-1
history keeps ``t1 > w2 - lag_max_ps``; symmetrically the channel-2 history keeps
``t2 >= w1 + lag_min_ps``. This is exact relying only on each channel being time-ordered
across chunks. A subclass says how pairs are binned (:meth:`PairAccumulator._count`).
"""

from __future__ import annotations

import numpy as np

from hbtscope.analysis._validate import as_tags

__all__ = ["PairAccumulator"]


class PairAccumulator:
    """Chunk-order checks, bounded history and counts of a streaming two-channel correlator.

    Subclasses call ``super().__init__(n_bins, lag_min_ps, lag_max_ps)`` and implement
    :meth:`_count` (add the pairs of two sorted int64 tag arrays to ``self._counts``).
    """

    def __init__(self, n_bins: int, lag_min_ps: int, lag_max_ps: int) -> None:
        self._counts = np.zeros(int(n_bins), dtype=np.int64)
        self._lag_min = int(lag_min_ps)
        self._lag_max = int(lag_max_ps)
        self.reset()

    def _count(self, t1: np.ndarray, t2: np.ndarray) -> None:
        """Add all pairs t1 x t2 inside the lag window to ``self._counts``."""
        raise NotImplementedError

    @property
    def counts(self) -> np.ndarray:
        """Current histogram (int64 copy)."""
        return self._counts.copy()

    @property
    def n_tags(self) -> tuple[int, int]:
        """Number of tags of (channel 1, channel 2) added so far."""
        return self._n1, self._n2

    def reset(self) -> None:
        """Clear the histogram and the history."""
        self._counts[:] = 0
        self._hist1 = np.empty(0, dtype=np.int64)
        self._hist2 = np.empty(0, dtype=np.int64)
        self._last1: int | None = None
        self._last2: int | None = None
        self._t_end: int | None = None
        self._n1 = 0
        self._n2 = 0

    def add(self, t1_chunk: np.ndarray, t2_chunk: np.ndarray, t_end_ps: int | None = None) -> None:
        """Add the next chunk of each channel (either may be empty).

        Each chunk must be sorted and must not start before the last tag previously
        added for the same channel (ValueError otherwise). ``t_end_ps`` (optional) is a
        promise that all tags of both channels in later chunks are >= ``t_end_ps``; it keeps
        the history bounded while one channel is silent.
        """
        t1 = as_tags(t1_chunk, "t1_chunk")
        t2 = as_tags(t2_chunk, "t2_chunk")
        for t, last, name in ((t1, self._last1, "t1_chunk"), (t2, self._last2, "t2_chunk")):
            if t.size and last is not None and t[0] < last:
                raise ValueError(
                    f"{name} starts at {t[0]} ps, before the last tag of the previous chunk "
                    f"({last} ps); chunks must be consecutive in time"
                )
        if self._t_end is not None:
            for t, name in ((t1, "t1_chunk"), (t2, "t2_chunk")):
                if t.size and t[0] < self._t_end:
                    raise ValueError(
                        f"{name} starts at {t[0]} ps, before the promised t_end_ps "
                        f"{self._t_end} of the previous chunk"
                    )

        if t1.size:
            t2_all = np.concatenate((self._hist2, t2)) if self._hist2.size else t2
            if t2_all.size:
                self._count(t1, t2_all)
        if t2.size and self._hist1.size:
            self._count(self._hist1, t2)

        if t1.size:
            self._last1 = int(t1[-1])
            self._n1 += t1.size
        if t2.size:
            self._last2 = int(t2[-1])
            self._n2 += t2.size
        if t_end_ps is not None:
            t_end = int(t_end_ps)
            if self._t_end is None or t_end > self._t_end:
                self._t_end = t_end

        # A future t2 >= w2 pairs with a t1 only if t2 - t1 < lag_max: keep t1 > w2 - lag_max.
        # A future t1 >= w1 pairs with a t2 only if t2 - t1 >= lag_min: keep t2 >= w1 + lag_min.
        self._hist1 = self._prune(
            np.concatenate((self._hist1, t1)), self._last2, -self._lag_max, "right"
        )
        self._hist2 = self._prune(
            np.concatenate((self._hist2, t2)), self._last1, self._lag_min, "left"
        )

    def _prune(
        self, hist: np.ndarray, last_other: int | None, offset: int, side: str
    ) -> np.ndarray:
        """Drop history tags that cannot pair with any future tag of the other channel."""
        w = last_other
        if self._t_end is not None and (w is None or self._t_end > w):
            w = self._t_end
        if w is None or hist.size == 0:
            return hist
        cut = int(np.searchsorted(hist, w + offset, side=side))
        return hist[cut:].copy() if cut else hist
