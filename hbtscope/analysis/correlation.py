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

from hbtscope.analysis._streaming import PairAccumulator
from hbtscope.analysis._validate import as_int_ps, as_tags

__all__ = ["CorrelationAccumulator", "correlate"]

# Keep t +/- max_lag far away from int64 overflow for any realistic tag value.
_MAX_LAG_LIMIT_PS = 2**53


@njit(cache=True, nogil=True)
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


class CorrelationAccumulator(PairAccumulator):
    """Streaming version of :func:`correlate` for chunked acquisition.

    Feed consecutive chunks of both channels with :meth:`add`; after any number of
    chunks ``counts`` is bit-for-bit the histogram that one :func:`correlate` call on the
    concatenated streams would give.

    The chunk-order checks and the history are those of
    :class:`~hbtscope.analysis._streaming.PairAccumulator` with the lag window
    ``[-max_lag_ps, max_lag_ps)``: every pair is counted once, in the call where its
    later-arriving tag arrives, and the history keeps only the tags that can still pair with
    a future tag of the other channel (exact if each channel is time-ordered). When the
    chunks of the two channels end at a common time, pass it as ``t_end_ps`` so the
    history stays bounded to about ``max_lag_ps`` of tags even if one channel is silent.

    Parameters
    ----------
    bin_width_ps, max_lag_ps
        As in :func:`correlate`.
    """

    def __init__(self, bin_width_ps: int, max_lag_ps: int) -> None:
        self._bw, self._ml, self._n_bins = _check_params(bin_width_ps, max_lag_ps)
        self._lag_ps = _lag_centres(self._bw, self._ml, self._n_bins)
        self._lag_ps.setflags(write=False)
        super().__init__(self._n_bins, -self._ml, self._ml)

    def _count(self, t1: np.ndarray, t2: np.ndarray) -> None:
        _correlate_into(t1, t2, self._bw, self._ml, self._counts)

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
