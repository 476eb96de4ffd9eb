"""Pair counting of two sorted int64 tag streams into arbitrary increasing lag bins (kernels).

Used by the log-binned correlation (:mod:`hbtscope.analysis.correlation_log`) and the
blinking bunching of :func:`hbtscope.analysis.g2_cw.g2_long_delays`. :func:`add_pairs` adds
``#{(i, j) : edges[k] <= t2[j] - t1[i] < edges[k+1]}`` to ``counts[k]``; inputs are not
validated (use :mod:`hbtscope.analysis._validate`).

Algorithm. Let ``S(e) = #{(i, j) : t2[j] - t1[i] < e} = sum_i rank2(t1[i] + e)`` with
``rank2(x) = #{j : t2[j] < x}``. Then ``counts[k] = S(edges[k+1]) - S(edges[k])``. For
each edge a pointer into ``t2`` follows ``t1[i] + e`` as ``i`` increases (Laurence et
al.): a merge of ``t1 + e`` with ``t2``, so every edge costs O(N1 + N2) in total whatever
the number of pairs it spans (at 100 kcps a 1 s lag spans 1e5 partners per tag; they are
never enumerated). The merges are branch-free, six edges run interleaved, and a merge
step is a handful of instructions (see :func:`_rank_sums`). For the small lags, where
bins are narrow and pairs are few, the pairs of a contiguous window of bins are
enumerated directly and binned by a lookup table or a branch-free binary search; the
window is the widest one holding about one partner per tag. Total cost
O((N1 + N2) * n_edges_outside_window + n_pairs_in_window).

Speed (``bench/bench_correlate_log.py``: two Poisson channels of 100 kcps for 10 s, 81
edges 10 ns - 1 s, one core of the development machine, AMD EPYC Zen 4): about 22 M
tags/s, i.e. ~0.7 ns per tag and rank-sum edge (52 edges by merge, 30 bins enumerated).
A cumulative-count table of ``t2`` on 2**s ps cells (rank = table + in-cell fix-up, one
lookup per t1 tag and edge, scalar or gathered by AVX-512) was measured slower than the
merge, as were segment-interleaved lanes (one edge, six parts of ``t1``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["add_pairs"]

_INT64_MAX = np.iinfo(np.int64).max
# Target number of partners per tag inside the directly enumerated window of bins.
_DIRECT_PAIRS_PER_TAG = 1.0
# Largest lookup table (cells) used to bin the directly enumerated lags.
_LUT_MAX_CELLS = 1 << 16
# Rate (tags per ps) meaning 'too dense for any direct window'.
_INF_RATE = float("inf")


# --------------------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def _bin_of(d: np.int64, win: np.ndarray, n_pow: int) -> int:
    """Index k with win[k] <= d < win[k+1] (caller guarantees win[0] <= d < win[-1]).

    Branch-free binary search over ``win`` padded to ``n_pow + 1`` entries with +max.
    """
    k = 0
    step = n_pow >> 1
    while step > 0:
        k += step * (win[k + step] <= d)
        step >>= 1
    return k


@njit(cache=True, nogil=True)
def _finish_lane(a: np.ndarray, b_pad: np.ndarray, e: np.int64, i: int, j: int, s: int) -> int:
    """Complete one merge lane (branchy; only the few remaining steps)."""
    n_a = a.shape[0]
    while i < n_a:
        x = a[np.uint64(i)] + e
        while b_pad[np.uint64(j)] < x:
            j += 1
        s += j
        i += 1
    return s


@njit(cache=True, nogil=True)
def _rank_sums(a: np.ndarray, b_pad: np.ndarray, n_b: int, e_val: np.ndarray) -> np.ndarray:
    """S(e) = sum_i #{j : b[j] < a[i] + e} for every e in ``e_val``.

    One branch-free merge of ``a + e`` with ``b`` per edge (a step consumes the smaller
    head: a b-step advances the rank j, an a-step adds j to S), six edges interleaved so
    the six dependency chains overlap. ``b_pad`` ends with int64-max sentinels.

    Few instructions per step (the loop is bound by instruction throughput, not by the
    chains): the a-index is derived, not tracked (i = t - (j - g) after t steps from the
    start rank g); every step adds j to S and the b-steps' terms, which are exactly
    g, g + 1, ..., j_end - 1, are removed at the end in closed form; indices are cast to
    unsigned so that numba emits no negative-index wraparound.
    """
    n = e_val.shape[0]
    n_a = a.shape[0]
    s = np.zeros(n, dtype=np.int64)
    if n_a == 0 or n_b == 0:
        return s
    bb = b_pad[:n_b]
    first = a[0]
    last = a[n_a - 1]
    for q0 in range(0, n, 6):
        e0 = e_val[min(q0 + 0, n - 1)]
        e1 = e_val[min(q0 + 1, n - 1)]
        e2 = e_val[min(q0 + 2, n - 1)]
        e3 = e_val[min(q0 + 3, n - 1)]
        e4 = e_val[min(q0 + 4, n - 1)]
        e5 = e_val[min(q0 + 5, n - 1)]
        g0 = np.searchsorted(bb, first + e0)
        g1 = np.searchsorted(bb, first + e1)
        g2 = np.searchsorted(bb, first + e2)
        g3 = np.searchsorted(bb, first + e3)
        g4 = np.searchsorted(bb, first + e4)
        g5 = np.searchsorted(bb, first + e5)
        # steps of a lane until its last a is consumed: n_a + #b in [first+e, last+e)
        m0 = n_a + np.searchsorted(bb, last + e0) - g0
        m1 = n_a + np.searchsorted(bb, last + e1) - g1
        m2 = n_a + np.searchsorted(bb, last + e2) - g2
        m3 = n_a + np.searchsorted(bb, last + e3) - g3
        m4 = n_a + np.searchsorted(bb, last + e4) - g4
        m5 = n_a + np.searchsorted(bb, last + e5) - g5
        m = min(min(m0, m1), min(m2, m3), min(m4, m5))
        j0 = g0
        j1 = g1
        j2 = g2
        j3 = g3
        j4 = g4
        j5 = g5
        s0 = s1 = s2 = s3 = s4 = s5 = 0
        for t in range(m):
            c0 = b_pad[np.uint64(j0)] < a[np.uint64(t + g0 - j0)] + e0
            c1 = b_pad[np.uint64(j1)] < a[np.uint64(t + g1 - j1)] + e1
            c2 = b_pad[np.uint64(j2)] < a[np.uint64(t + g2 - j2)] + e2
            c3 = b_pad[np.uint64(j3)] < a[np.uint64(t + g3 - j3)] + e3
            c4 = b_pad[np.uint64(j4)] < a[np.uint64(t + g4 - j4)] + e4
            c5 = b_pad[np.uint64(j5)] < a[np.uint64(t + g5 - j5)] + e5
            s0 += j0
            s1 += j1
            s2 += j2
            s3 += j3
            s4 += j4
            s5 += j5
            j0 += c0
            j1 += c1
            j2 += c2
            j3 += c3
            j4 += c4
            j5 += c5
        s0 -= (j0 * (j0 - 1) - g0 * (g0 - 1)) >> 1
        s1 -= (j1 * (j1 - 1) - g1 * (g1 - 1)) >> 1
        s2 -= (j2 * (j2 - 1) - g2 * (g2 - 1)) >> 1
        s3 -= (j3 * (j3 - 1) - g3 * (g3 - 1)) >> 1
        s4 -= (j4 * (j4 - 1) - g4 * (g4 - 1)) >> 1
        s5 -= (j5 * (j5 - 1) - g5 * (g5 - 1)) >> 1
        s[q0] = _finish_lane(a, b_pad, e0, m - (j0 - g0), j0, s0)
        if q0 + 1 < n:
            s[q0 + 1] = _finish_lane(a, b_pad, e1, m - (j1 - g1), j1, s1)
        if q0 + 2 < n:
            s[q0 + 2] = _finish_lane(a, b_pad, e2, m - (j2 - g2), j2, s2)
        if q0 + 3 < n:
            s[q0 + 3] = _finish_lane(a, b_pad, e3, m - (j3 - g3), j3, s3)
        if q0 + 4 < n:
            s[q0 + 4] = _finish_lane(a, b_pad, e4, m - (j4 - g4), j4, s4)
        if q0 + 5 < n:
            s[q0 + 5] = _finish_lane(a, b_pad, e5, m - (j5 - g5), j5, s5)
    return s


@njit(cache=True, nogil=True)
def _direct_pairs(
    a: np.ndarray,
    b_pad: np.ndarray,
    n_b: int,
    lo_e: np.int64,
    hi_e: np.int64,
    win: np.ndarray,
    n_pow: int,
    lut: np.ndarray,
    lut_shift: int,
    counts: np.ndarray,
) -> None:
    """Enumerate the pairs with lo_e <= b - a < hi_e and bin them on ``win``.

    With a non-empty ``lut`` the bin of a lag d is ``lut[(d - lo_e) >> lut_shift]``
    or the next one (cells no wider than the narrowest bin hold at most one edge);
    otherwise a branch-free binary search (:func:`_bin_of`). With the table, the first
    two candidate partners of each tag are binned unconditionally (a partner that is
    not one adds 0 to bin 0; its cell index is clamped into the table), so the usual
    0-2 partners per tag cost no unpredictable branch; further partners take a loop.
    Indices are cast to unsigned (no numba wraparound code).
    """
    n_a = a.shape[0]
    if n_a == 0 or n_b == 0:
        return
    use_lut = lut.shape[0] > 0
    last_cell = lut.shape[0] - 1
    last_j = b_pad.shape[0] - 1
    bb = b_pad[:n_b]
    lo = np.searchsorted(bb, a[0] + lo_e)
    hi = np.searchsorted(bb, a[0] + hi_e)
    for i in range(n_a):
        ai = a[np.uint64(i)]
        x = ai + lo_e
        y = ai + hi_e
        # two branch-free steps cover the usual advance (< 1 partner per tag)
        lo += b_pad[np.uint64(lo)] < x
        hi += b_pad[np.uint64(hi)] < y
        lo += b_pad[np.uint64(lo)] < x
        hi += b_pad[np.uint64(hi)] < y
        while b_pad[np.uint64(lo)] < x:
            lo += 1
        while b_pad[np.uint64(hi)] < y:
            hi += 1
        if use_lut:
            n_partners = hi - lo
            for u in range(2):
                v = u < n_partners
                d = b_pad[np.uint64(min(lo + u, last_j))] - ai
                k = lut[np.uint64(min(max((d - lo_e) >> lut_shift, 0), last_cell))]
                k = (k + (win[np.uint64(k + 1)] <= d)) * v
                counts[np.uint64(k)] += v
            for j in range(lo + 2, hi):
                d = b_pad[np.uint64(j)] - ai
                k = lut[np.uint64((d - lo_e) >> lut_shift)]
                counts[np.uint64(k + (win[np.uint64(k + 1)] <= d))] += 1
        else:
            for j in range(lo, hi):
                counts[_bin_of(b_pad[j] - ai, win, n_pow)] += 1


# --------------------------------------------------------------------------------------
# input checks and helpers
# --------------------------------------------------------------------------------------


def _direct_window(edges: np.ndarray, rate_per_ps: float) -> tuple[int, int]:
    """Contiguous edge window [ka, kb] with the most bins and <= ~1 partner per tag.

    Returns (0, 0) when no window of at least two bins is cheap enough.
    """
    n = edges.size
    if rate_per_ps <= 0 or n < 3:
        return 0, 0
    span_max = _DIRECT_PAIRS_PER_TAG / rate_per_ps
    best = (0, 0)
    lo = 0
    for hi in range(n):
        while edges[hi] - edges[lo] > span_max:
            lo += 1
        if hi - lo > best[1] - best[0]:
            best = (lo, hi)
    if best[1] - best[0] < 2:
        return 0, 0
    return best


def _bin_lut(w: np.ndarray) -> tuple[np.ndarray, int]:
    """Lookup table of the bin of each cell of 2**shift ps of the window ``w`` (edges).

    ``lut[c]`` is the bin holding ``w[0] + c * 2**shift``; the cell width is at most the
    narrowest bin, so a lag in cell c lies in bin ``lut[c]`` or ``lut[c] + 1``. Returns an
    empty table when it would exceed ``_LUT_MAX_CELLS`` cells.
    """
    shift = int(np.min(np.diff(w))).bit_length() - 1
    n_cells = int((w[-1] - w[0] - 1) >> shift) + 1
    if n_cells > _LUT_MAX_CELLS:
        return np.empty(0, dtype=np.int64), 0
    starts = w[0] + (np.arange(n_cells, dtype=np.int64) << shift)
    lut = np.searchsorted(w, starts, side="right").astype(np.int64) - 1
    return lut, shift


def _typical_rate(b: np.ndarray) -> float:
    """Tags per ps of ``b`` where its tags are, for sizing the direct window.

    The mean rate over the whole span, unless the median gap (over up to ~4096 strides
    of the tags) says the tags are more than twice as dense where they are: long pauses
    (a record made of separate acquisitions) would otherwise open a direct window that
    enumerates every pair. Zero when all tags are equal (no direct window).
    """
    span = float(b[-1] - b[0])
    if span <= 0:
        return 0.0
    mean = (b.size - 1) / span
    if b.size < 1024:  # few tags: any window is cheap
        return mean
    stride = max(1, b.size // 4096)
    gaps = np.diff(b[::stride])
    if gaps.size == 0:
        return mean
    med = float(np.median(gaps)) / stride
    if med <= 0:
        return _INF_RATE
    return max(mean, 1.0 / med) if 1.0 / med > 2.0 * mean else mean


def _run_kernel(a: np.ndarray, b: np.ndarray, edges: np.ndarray, counts: np.ndarray) -> None:
    """Add the pairs of sorted int64 arrays a x b to counts (no validation)."""
    if a.size == 0 or b.size == 0:
        return
    ka, kb = _direct_window(edges, _typical_rate(b))
    b_pad = np.empty(b.size + 2, dtype=np.int64)
    b_pad[: b.size] = b
    b_pad[b.size :] = _INT64_MAX
    # rank sums at every edge outside the open window (ka, kb)
    k_ptr = (
        np.r_[np.arange(0, ka + 1), np.arange(kb, edges.size)] if kb > ka else np.arange(edges.size)
    )
    s = _rank_sums(a, b_pad, b.size, np.ascontiguousarray(edges[k_ptr]))
    consecutive = np.diff(k_ptr) == 1
    counts[k_ptr[:-1][consecutive]] += np.diff(s)[consecutive]
    if kb - ka > 1:
        n_direct = kb - ka
        n_pow = 1
        while n_pow < n_direct:
            n_pow <<= 1
        win = np.full(n_pow + 1, _INT64_MAX, dtype=np.int64)
        win[: n_direct + 1] = edges[ka : kb + 1]
        lut, lut_shift = _bin_lut(edges[ka : kb + 1])
        direct = np.zeros(n_direct, dtype=np.int64)
        _direct_pairs(a, b_pad, b.size, edges[ka], edges[kb], win, n_pow, lut, lut_shift, direct)
        counts[ka:kb] += direct


def add_pairs(a: np.ndarray, b: np.ndarray, edges: np.ndarray, counts: np.ndarray) -> None:
    """Add pairs a x b, looping over the shorter array (pointers walk the longer one).

    Looping over ``b`` uses the mirror identity: the lags of (a, b) equal those of
    (-b[::-1], -a[::-1]), with the same half-open convention.
    """
    if a.size == 0 or b.size == 0:
        return
    if b.size < a.size // 2:
        _run_kernel(-b[::-1].copy(), -a[::-1].copy(), edges, counts)
    else:
        _run_kernel(a, b, edges, counts)
