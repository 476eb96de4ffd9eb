"""numba kernels of the simulated Swabian Time Tagger (device buffer and measurements).

Every kernel works on one time-ordered block of tags and keeps its state in small arrays that
the caller passes back on the next block, so results never depend on how the stream is cut.
"""

from __future__ import annotations

import numpy as np
from numba import njit

OPEN = np.int64(-(2**62))  # end time of an overflow interval that has not ended yet

# bit flags of the role(s) a tag plays in a measurement
CLICK = 1
START = 2
NEXT = 4
SYNC = 8
BEGIN = 16
END = 32


@njit(cache=True, nogil=True)
def event_divider(ch, divider, counter):
    """Keep every ``divider[c]``-th tag of channel ``c``: the 1st, the (N+1)-th, ...

    ``counter[c]`` counts the tags of channel c seen so far (updated in place), so the phase
    carries across blocks. Returns the boolean keep mask.
    """
    keep = np.empty(ch.shape[0], dtype=np.bool_)
    for i in range(ch.shape[0]):
        c = ch[i]
        keep[i] = counter[c] % divider[c] == 0
        counter[c] += 1
    return keep


@njit(cache=True, nogil=True)
def _advance(t, fs, fe, rate, fill, t_last, in_ovf, resume_t, j, ovf_begin, ev_begin, ev_end, n_ev):
    """Bring the device-buffer state up to time ``t`` (before a tag at ``t`` is handled).

    Opens the overflow intervals forced to start before or at ``t`` and closes the ones that
    end before or at ``t``: a rate overflow ends when the buffer has drained to the resume
    level (time ``resume_t``), a forced one at its stop time; overlapping ones merge.
    """
    while True:
        while j < fs.shape[0] and fe[j] <= t_last:
            j += 1
        if in_ovf:
            cand = resume_t
            k = j
            while k < fs.shape[0] and fs[k] <= cand:
                if fe[k] > cand:
                    cand = fe[k]
                k += 1
            if cand > t:
                break
            fill = max(fill - rate * (cand - t_last), 0.0)
            t_last = cand
            in_ovf = False
            ev_end[n_ev - 1] = cand
        elif j < fs.shape[0] and fs[j] <= t:
            tb = max(fs[j], t_last)
            fill = max(fill - rate * (tb - t_last), 0.0)
            t_last = tb
            in_ovf = True
            resume_t = tb
            ovf_begin = tb
            ev_begin[n_ev] = tb
            ev_end[n_ev] = OPEN
            n_ev += 1
        else:
            break
    return fill, t_last, in_ovf, resume_t, j, ovf_begin, n_ev


@njit(cache=True, nogil=True)
def device_buffer(ts, t_end, fs, fe, rate_per_ps, capacity, resume_level, st_f, st_i):
    """The on-device FIFO between the inputs and USB, as a leaky bucket of tags.

    Every tag enters the buffer (``fill += 1``) which drains at ``rate_per_ps`` tags/ps. A tag
    that finds the buffer full (``fill + 1 > capacity``) starts an overflow: it and every tag
    after it are lost until the buffer has drained to ``resume_level``. Tags inside the forced
    intervals ``[fs[k], fe[k])`` (sorted, disjoint) are lost whatever the rate.

    State: ``st_f[0]`` fill at time ``st_i[0]``; ``st_i[1]`` 1 while in overflow; ``st_i[2]``
    the time the rate part of the current overflow ends; ``st_i[3]`` first forced interval not
    yet over; ``st_i[4]`` begin of the current overflow.

    Returns (keep mask, begin and end of each overflow interval touched by this block, end
    ``OPEN`` if it lasts beyond ``t_end``). Interval 0 is the one carried over from the
    previous block if the block starts in overflow. The lost tags are exactly the tags inside
    the intervals.
    """
    n = ts.shape[0]
    keep = np.empty(n, dtype=np.bool_)
    m = n + 2 * fs.shape[0] + 2
    ev_begin = np.empty(m, dtype=np.int64)
    ev_end = np.empty(m, dtype=np.int64)
    fill = st_f[0]
    t_last = st_i[0]
    in_ovf = st_i[1] == 1
    resume_t = st_i[2]
    j = st_i[3]
    ovf_begin = st_i[4]
    n_ev = 0
    if in_ovf:
        ev_begin[0] = ovf_begin
        ev_end[0] = OPEN
        n_ev = 1
    nf = fs.shape[0]
    for i in range(n):
        t = ts[i]
        if in_ovf or nf > 0:
            fill, t_last, in_ovf, resume_t, j, ovf_begin, n_ev = _advance(
                t, fs, fe, rate_per_ps, fill, t_last, in_ovf, resume_t, j, ovf_begin,
                ev_begin, ev_end, n_ev,
            )  # fmt: skip
        fill = max(fill - rate_per_ps * (t - t_last), 0.0)
        t_last = t
        if in_ovf:
            keep[i] = False
        elif fill + 1.0 > capacity:
            in_ovf = True
            ovf_begin = t
            resume_t = t + np.int64(np.ceil((fill - resume_level) / rate_per_ps))
            ev_begin[n_ev] = t
            ev_end[n_ev] = OPEN
            n_ev += 1
            keep[i] = False
        else:
            fill += 1.0
            keep[i] = True
    fill, t_last, in_ovf, resume_t, j, ovf_begin, n_ev = _advance(
        t_end, fs, fe, rate_per_ps, fill, t_last, in_ovf, resume_t, j, ovf_begin,
        ev_begin, ev_end, n_ev,
    )  # fmt: skip
    if t_end > t_last:
        fill = max(fill - rate_per_ps * (t_end - t_last), 0.0)
        t_last = t_end
    st_f[0] = fill
    st_i[0] = t_last
    st_i[1] = 1 if in_ovf else 0
    st_i[2] = resume_t
    st_i[3] = j
    st_i[4] = ovf_begin
    return keep, ev_begin[:n_ev], ev_end[:n_ev]


@njit(cache=True, nogil=True)
def time_differences(ts, role, starts, n_old, binwidth, data, st):
    """Multiple-start multiple-stop histograms stepped by next/sync markers (TimeDifferences).

    ``role`` holds the CLICK/START/NEXT/SYNC flags of each tag; ``starts`` the start times
    still in range from earlier blocks (``starts[:n_old]``) followed by this block's starts in
    order. Each click adds one count per earlier start within ``n_bins * binwidth`` to the
    histogram ``data[index]`` of the current index. A tag that is both marker and click counts
    in the new histogram; a tag that is both click and start is not paired with itself.

    State ``st``: [0] histogram index (-2 wait for sync, -1 wait for next), [1] rollovers,
    [2] max rollovers (-1: none), [3] first start still in range, [4] has next channel,
    [5] has sync channel. Returns the position after the tag that completed ``max`` rollovers
    (the measurement stops there) or -1.
    """
    n_hist, n_bins = data.shape
    span = binwidth * n_bins
    lo = st[3]
    n_seen = n_old
    for i in range(ts.shape[0]):
        t = ts[i]
        r = role[i]
        if r & SYNC:
            if st[5] == 1:
                if st[0] >= 0:
                    st[1] += 1
                st[0] = -1
                if st[2] >= 0 and st[1] >= st[2]:
                    st[3] = lo
                    return i + 1
        if r & NEXT:
            if st[4] == 1:
                idx = st[0]
                if idx == -2:
                    pass
                elif idx == -1:
                    st[0] = 0
                elif idx + 1 < n_hist:
                    st[0] = idx + 1
                else:
                    st[1] += 1
                    st[0] = -2 if st[5] == 1 else 0
                    if st[2] >= 0 and st[1] >= st[2]:
                        st[3] = lo
                        return i + 1
        if r & CLICK:
            while lo < n_seen and t - starts[lo] >= span:
                lo += 1
            idx = st[0]
            if idx >= 0:
                for p in range(lo, n_seen):
                    d = t - starts[p]
                    if d >= 0:
                        data[idx, d // binwidth] += 1
        if r & START:
            n_seen += 1
    # drop starts that can no longer pair with a later click
    if ts.shape[0] > 0:
        t = ts[ts.shape[0] - 1]
        while lo < n_seen and t - starts[lo] >= span:
            lo += 1
    st[3] = lo
    return -1


@njit(cache=True, nogil=True)
def count_between_markers(ts, role, data, widths, begins, st):
    """Counts of click tags between begin (and end) markers into ``data`` (CountBetweenMarkers).

    State ``st``: [0] counting (0/1), [1] current count, [2] begin time of the current bin,
    [3] number of values filled, [4] has an end channel. A begin tag closes the running bin
    (when there is no end channel) and opens the next one; an end tag closes it. Returns the
    position after the tag that filled the last value (the measurement stops there) or -1.
    """
    n_values = data.shape[0]
    for i in range(ts.shape[0]):
        t = ts[i]
        r = role[i]
        if r & END:
            if st[0] == 1:
                k = st[3]
                data[k] = st[1]
                widths[k] = t - st[2]
                begins[k] = st[2]
                st[3] = k + 1
                st[0] = 0
                if st[3] >= n_values:
                    return i + 1
        if r & BEGIN:
            if st[0] == 1 and st[4] == 0:
                k = st[3]
                data[k] = st[1]
                widths[k] = t - st[2]
                begins[k] = st[2]
                st[3] = k + 1
                if st[3] >= n_values:
                    st[0] = 0
                    return i + 1
            st[0] = 1
            st[1] = 0
            st[2] = t
        if r & CLICK:
            if st[0] == 1:
                st[1] += 1
    return -1


@njit(cache=True, nogil=True)
def log_bin_sums(clicks, starts, edges):
    """S[j] = number of (click, start) pairs with start <= click - edges[j].

    ``clicks`` and ``starts`` sorted; the counts of the log bins are ``S[:-1] - S[1:]``
    (pairs with edges[j] <= click - start < edges[j+1]). Two pointers per edge: O(n) each.
    """
    n_e = edges.shape[0]
    out = np.zeros(n_e, dtype=np.int64)
    for j in range(n_e):
        e = edges[j]
        p = 0
        total = 0
        for i in range(clicks.shape[0]):
            x = clicks[i] - e
            while p < starts.shape[0] and starts[p] <= x:
                p += 1
            total += p
        out[j] = total
    return out


@njit(cache=True, nogil=True)
def start_stop(ts, is_start, is_click, binwidth, data, last_start):
    """Single-start histogram: each click adds one count at ``(t - last start) // binwidth``.

    ``last_start[0]`` (-1: none yet) carries the last start across blocks; clicks beyond the
    last bin are not counted.
    """
    n_bins = data.shape[0]
    for i in range(ts.shape[0]):
        if is_start[i]:
            last_start[0] = ts[i]
        if is_click[i] and last_start[0] >= 0:
            k = (ts[i] - last_start[0]) // binwidth
            if k < n_bins:
                data[k] += 1
