"""Cross-correlation of two time-tag streams (start-stop-free coincidence histogram).

All arithmetic on time tags is done on int64 picoseconds; no floating point touches a
tag, so the histogram is exact for any tag magnitude that fits in int64 (tags up to
~106 days in ps).

Definitions (shared by :func:`correlate` and :class:`CorrelationAccumulator`)::

    d      = t2[j] - t1[i]                        (every pair i, j)
    counted if  -max_lag_ps <= d < +max_lag_ps    (half-open)
    n_bins = ceil(2 * max_lag_ps / bin_width_ps)
    bin    = floor((d + max_lag_ps) / bin_width_ps)
    lag_ps[k] = -max_lag_ps + (k + 0.5) * bin_width_ps   (bin centres)

When ``bin_width_ps`` does not divide ``2 * max_lag_ps`` the last bin extends beyond
``+max_lag_ps`` but only receives the pairs with ``d < max_lag_ps``, i.e. it is
partially filled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hbtscope.analysis._validate import as_int_ps, as_tags

# old private name, still imported by lifetime and g2_cw (use hbtscope.analysis._validate.as_tags)
_as_tags = as_tags

__all__ = ["CorrelationAccumulator", "correlate"]

# Keep t +/- max_lag far away from int64 overflow for any realistic tag value.
_MAX_LAG_LIMIT_PS = 2**53


@njit(cache=True)
def _correlate_into(
    t1: np.ndarray, t2: np.ndarray, bin_width: int, max_lag: int, counts: np.ndarray
) -> None:
    """Add all pairs of ``t1`` x ``t2`` with -max_lag <= t2 - t1 < max_lag to ``counts``.

    Two-pointer sweep: ``lo`` is the first t2 >= t1[i] - max_lag; it only moves forward
    because t1 is sorted. The inner walk visits exactly the pairs inside the window.
    """
    n2 = t2.shape[0]
    lo = 0
    for i in range(t1.shape[0]):
        start = t1[i] - max_lag
        while lo < n2 and t2[lo] < start:
            lo += 1
        stop = t1[i] + max_lag
        j = lo
        while j < n2 and t2[j] < stop:
            counts[(t2[j] - start) // bin_width] += 1
            j += 1


def _check_params(bin_width_ps: object, max_lag_ps: object) -> tuple[int, int, int]:
    bw = as_int_ps(bin_width_ps, "bin_width_ps")
    ml = as_int_ps(max_lag_ps, "max_lag_ps")
    if ml > _MAX_LAG_LIMIT_PS:
        raise ValueError(f"max_lag_ps={ml} is unreasonably large (limit {_MAX_LAG_LIMIT_PS})")
    n_bins = -(-2 * ml // bw)  # ceil(2*ml/bw) in integers
    return bw, ml, n_bins


def _lag_centres(bw: int, ml: int, n_bins: int) -> np.ndarray:
    return -float(ml) + (np.arange(n_bins, dtype=np.float64) + 0.5) * float(bw)


def correlate(
    t1_ps: np.ndarray, t2_ps: np.ndarray, bin_width_ps: int, max_lag_ps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Coincidence histogram of ``t2 - t1`` over ``[-max_lag_ps, +max_lag_ps)``.

    Parameters
    ----------
    t1_ps, t2_ps
        1-D integer (int64) arrays of time tags in ps, each sorted ascending
        (duplicates and negative values are allowed).
    bin_width_ps
        Histogram bin width in ps, integer > 0.
    max_lag_ps
        Half range in ps, integer > 0. Pairs with ``-max_lag_ps <= t2 - t1 < max_lag_ps``
        are counted.

    Returns
    -------
    lag_ps
        float64 bin centres, ``-max_lag_ps + (k + 0.5) * bin_width_ps``,
        ``k = 0 .. ceil(2*max_lag_ps/bin_width_ps) - 1``.
    counts
        int64 number of pairs per bin, ``bin = floor((t2 - t1 + max_lag_ps) / bin_width_ps)``.

    Raises
    ------
    ValueError
        If a tag array is not 1-D or not sorted, or if ``bin_width_ps <= 0`` or
        ``max_lag_ps <= 0`` (or either is not an integer number of ps).
    TypeError
        If a tag array does not have an integer dtype.
    """
    bw, ml, n_bins = _check_params(bin_width_ps, max_lag_ps)
    t1 = as_tags(t1_ps, "t1_ps")
    t2 = as_tags(t2_ps, "t2_ps")
    counts = np.zeros(n_bins, dtype=np.int64)
    if t1.size and t2.size:
        _correlate_into(t1, t2, bw, ml, counts)
    return _lag_centres(bw, ml, n_bins), counts


class CorrelationAccumulator:
    """Streaming version of :func:`correlate` for chunked acquisition.

    Feed consecutive chunks of both channels with :meth:`add`; after any number of
    chunks ``counts`` is bit-for-bit the histogram that one :func:`correlate` call on the
    concatenated streams would give.

    Every pair is counted exactly once, in the call where its later-arriving tag arrives:
    new t1 x (history t2 + new t2), then history t1 x new t2. The history of a channel
    keeps only the tags that can still pair with a future tag of the other channel:
    future tags of channel 2 are >= ``w2`` (the latest channel-2 tag seen, or ``t_end_ps``
    if larger), so channel-1 history keeps ``t1 > w2 - max_lag_ps``; symmetrically the
    channel-2 history keeps ``t2 >= w1 - max_lag_ps`` (the lag window is half-open).
    This is exact relying only on each channel being time-ordered across chunks. When the
    chunks of the two channels end at a common time, pass it as ``t_end_ps`` so the
    history stays bounded to about ``max_lag_ps`` of tags even if one channel is silent.

    Parameters
    ----------
    bin_width_ps, max_lag_ps
        As in :func:`correlate`.
    """

    def __init__(self, bin_width_ps: int, max_lag_ps: int) -> None:
        self._bw, self._ml, self._n_bins = _check_params(bin_width_ps, max_lag_ps)
        self._counts = np.zeros(self._n_bins, dtype=np.int64)
        self._lag_ps = _lag_centres(self._bw, self._ml, self._n_bins)
        self._lag_ps.setflags(write=False)
        self.reset()

    @property
    def bin_width_ps(self) -> int:
        return self._bw

    @property
    def max_lag_ps(self) -> int:
        return self._ml

    @property
    def lag_ps(self) -> np.ndarray:
        """Bin centres in ps (read-only float64 array)."""
        return self._lag_ps

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
        promise that all tags of both channels in later chunks are >= ``t_end_ps``.
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

        bw, ml = self._bw, self._ml
        if t1.size:
            t2_all = np.concatenate((self._hist2, t2)) if self._hist2.size else t2
            if t2_all.size:
                _correlate_into(t1, t2_all, bw, ml, self._counts)
        if t2.size and self._hist1.size:
            _correlate_into(self._hist1, t2, bw, ml, self._counts)

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

        # A future t2 >= w2 pairs with a t1 only if t2 - t1 < max_lag: keep t1 > w2 - max_lag.
        # A future t1 >= w1 pairs with a t2 only if t2 - t1 >= -max_lag: keep t2 >= w1 - max_lag.
        self._hist1 = self._prune(np.concatenate((self._hist1, t1)), self._last2, "right")
        self._hist2 = self._prune(np.concatenate((self._hist2, t2)), self._last1, "left")

    def _prune(self, hist: np.ndarray, last_other: int | None, side: str) -> np.ndarray:
        """Drop history tags that cannot pair with any future tag of the other channel."""
        w = last_other
        if self._t_end is not None and (w is None or self._t_end > w):
            w = self._t_end
        if w is None or hist.size == 0:
            return hist
        cut = int(np.searchsorted(hist, w - self._ml, side=side))
        return hist[cut:].copy() if cut else hist
