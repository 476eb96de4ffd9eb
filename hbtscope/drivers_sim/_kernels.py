"""numba kernels of the simulated detectors."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def apply_dead_time(ts, ch, dead_ps, last_ps):
    """Keep only clicks that come at least the channel's dead time after its previous kept click.

    ``ts`` sorted int64 ps, ``ch`` channel numbers (index into ``dead_ps``/``last_ps``);
    ``last_ps`` is updated in place so the dead time carries across calls.
    Returns a boolean mask of kept clicks.
    """
    keep = np.empty(ts.shape[0], dtype=np.bool_)
    for i in range(ts.shape[0]):
        c = ch[i]
        if ts[i] - last_ps[c] >= dead_ps[c]:
            keep[i] = True
            last_ps[c] = ts[i]
        else:
            keep[i] = False
    return keep


@njit(cache=True)
def plan_ladder(st, v, cum, top, first):
    """Outcome class of every candidate pulse, and how many random numbers assembly needs.

    Candidates were drawn with the largest per-pulse click probability q_max over the
    emitter's states (``cum`` has at least 3 classes); pulse p, in blinking state
    ``st[p]``, falls in class c when ``v[p]``
    lies in [cum[s, c-1], cum[s, c]) of that state's cumulative class probabilities
    (normalised to q_max; see ``physics.ladder_outcomes``: top rung ``top[c]``, highest
    clicking rung ``first[c]``), and yields nothing (thinning to the state's own q) when
    v >= cum[s, -1]. Returns (class per pulse or -1, exponentials needed = sum of top rungs,
    uniforms needed = sum of rungs below the first click, photons at most).
    """
    n = v.shape[0]
    n_cls = cum.shape[1]
    cls = np.empty(n, np.int32)
    n_exp = 0
    n_unif = 0
    n_ph = 0
    last = n_cls - 1
    for p in range(n):
        s = st[p]
        vp = v[p]
        # branch-free over the three classes of one and two excitons (random branches cost
        # more than the arithmetic); the rest, and thinning, take the rare branch
        c = int(vp >= cum[s, 0]) + int(vp >= cum[s, 1]) + int(vp >= cum[s, 2])
        if c == 3:
            if vp >= cum[s, last]:
                cls[p] = -1
                continue
            while vp >= cum[s, c]:
                c += 1
        cls[p] = c
        n_exp += top[c]
        n_unif += first[c] - 1
        n_ph += first[c]
    return cls, n_exp, n_unif, n_ph


@njit(cache=True, fastmath=True)
def assemble_photons(
    k,
    st,
    v,
    cls,
    cum,
    top,
    first,
    p_rung,
    tau_ps,
    e,
    u,
    jn,
    phase_ps,
    period_ps,
    route_cum,
    jitter_sd_ps,
    delay_ps,
):
    """Detected photons of one emitter from its candidate pulses ``k`` (thinned generation).

    The exciton ladder (``physics`` module doc): pulse p of class ``cls[p]`` (from
    :func:`plan_ladder`; -1: nothing) starts at rung n0 = ``top[c]`` and cascades down;
    rung n decays after ``tau_ps[s, n-1] * e`` (the next exponential), so the photon of rung
    n leaves at the sum of the delays of the rungs n0 .. n. The highest clicking rung is
    ``first[c]``; each rung n below it clicks when the next uniform ``u`` < ``p_rung[s, n-1]``.
    Each click goes to detector i by a uniform against ``route_cum``: the first reuses
    ``v[p]`` rescaled within its class interval, the others ``u / p_rung`` (both uniform on
    [0, 1) given the click). Each photon gets its detector's delay and Gaussian jitter (the
    next ``jn``) and never precedes its pulse. ``e`` must hold sum of top rungs, ``u`` the
    rungs below the first clicks, ``jn`` at least one number per photon (plan_ladder).

    The random numbers come in bulk from numpy's Generator (ziggurat samplers), so this
    kernel only does the bookkeeping. Returns (timestamps_ps, detector index, pulse time),
    unsorted.
    """
    n = k.shape[0]
    cap = jn.shape[0]
    ts = np.empty(cap, np.int64)
    det = np.empty(cap, np.int64)
    origin = np.empty(cap, np.int64)
    n_det = route_cum.shape[0]
    m = 0
    i_e = 0
    i_u = 0
    for p in range(n):
        c = cls[p]
        if c < 0:
            continue
        s = st[p]
        t_pulse = phase_ps + np.int64(k[p] * period_ps + 0.5)  # k, period >= 0
        if c == 0:  # the common case: one exciton, its photon clicks
            r = v[p] / cum[s, 0]
            i = 0
            for q in range(n_det - 1):
                i += r >= route_cum[q]
            t = tau_ps[s, 0] * e[i_e] + delay_ps[i] + jitter_sd_ps[i] * jn[m]
            i_e += 1
            if t < 0.0:
                t = 0.0
            ts[m] = t_pulse + np.int64(t + 0.5)
            det[m] = i
            origin[m] = t_pulse
            m += 1
            continue
        lo = cum[s, c - 1]
        r0 = (v[p] - lo) / (cum[s, c] - lo)
        n0 = top[c]
        j = first[c]
        t_emit = 0.0
        for rung in range(n0, 0, -1):
            t_emit += tau_ps[s, rung - 1] * e[i_e]
            i_e += 1
            if rung > j:
                continue
            if rung == j:
                r = r0
            else:
                uu = u[i_u]
                i_u += 1
                pr = p_rung[s, rung - 1]
                if uu >= pr:
                    continue
                r = uu / pr
            i = 0
            for q in range(n_det - 1):
                i += r >= route_cum[q]
            t = t_emit + delay_ps[i] + jitter_sd_ps[i] * jn[m]
            if t < 0.0:
                t = 0.0
            ts[m] = t_pulse + np.int64(t + 0.5)  # t >= 0
            det[m] = i
            origin[m] = t_pulse
            m += 1
    return ts[:m], det[:m], origin[:m]


@njit(cache=True)
def _hash_uniform(t, c, seed):
    """A uniform number on [0, 1) from (time, channel, seed): splitmix64, so the randomness of
    a click does not depend on how the stream was cut into read-outs."""
    z = np.uint64(t) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(c) * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ np.uint64(seed)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def _heap_push(ht, hc, n, t, c):
    if n >= ht.shape[0]:
        ht2 = np.empty(2 * ht.shape[0] + 16, np.int64)
        hc2 = np.empty(2 * ht.shape[0] + 16, np.int64)
        ht2[:n] = ht[:n]
        hc2[:n] = hc[:n]
        ht, hc = ht2, hc2
    i = n
    ht[i] = t
    hc[i] = c
    while i > 0:
        p = (i - 1) // 2
        if ht[p] <= ht[i]:
            break
        ht[p], ht[i] = ht[i], ht[p]
        hc[p], hc[i] = hc[i], hc[p]
        i = p
    return ht, hc, n + 1


@njit(cache=True)
def _heap_pop(ht, hc, n):
    t, c = ht[0], hc[0]
    n -= 1
    ht[0], hc[0] = ht[n], hc[n]
    i = 0
    while True:
        left, right, m = 2 * i + 1, 2 * i + 2, i
        if left < n and ht[left] < ht[m]:
            m = left
        if right < n and ht[right] < ht[m]:
            m = right
        if m == i:
            break
        ht[m], ht[i] = ht[i], ht[m]
        hc[m], hc[i] = hc[i], hc[m]
        i = m
    return t, c, n


@njit(cache=True)
def spad_clicks(ts, ch, t_end, dead_ps, ap_prob, ap_tau_ps, last_ps, heap_t, heap_c, heap_n, seed):
    """SPAD dead time and afterpulsing over time-ordered candidate clicks before ``t_end``.

    A click is kept if it comes at least the channel's dead time after the previous kept click
    (``last_ps`` is updated in place). Each kept click is followed, with probability
    ``ap_prob[c]``, by an afterpulse at t + dead + Exp(ap_tau_ps[c]), which is itself a click
    (dead time, afterpulses of its own). Afterpulses not yet due stay in a min-heap
    (``heap_t``, ``heap_c``, ``heap_n`` entries) for the next call. Random numbers are hashes
    of (time, channel, seed), so the result does not depend on how the stream is cut.

    Returns (timestamps, channels, heap_t, heap_c, heap_n).
    """
    n_in = ts.shape[0]
    out_t = np.empty(n_in + 64, np.int64)
    out_c = np.empty(n_in + 64, np.int64)
    m = 0
    i = 0
    while True:
        take_heap = heap_n > 0 and heap_t[0] < t_end and (i >= n_in or heap_t[0] <= ts[i])
        if take_heap:
            t, c, heap_n = _heap_pop(heap_t, heap_c, heap_n)
        elif i < n_in:
            t, c = ts[i], ch[i]
            i += 1
        else:
            break
        if t - last_ps[c] < dead_ps[c]:
            continue
        last_ps[c] = t
        if m >= out_t.shape[0]:
            o2 = np.empty(2 * m + 64, np.int64)
            c2 = np.empty(2 * m + 64, np.int64)
            o2[:m] = out_t[:m]
            c2[:m] = out_c[:m]
            out_t, out_c = o2, c2
        out_t[m] = t
        out_c[m] = c
        m += 1
        if ap_prob[c] > 0.0:
            u = _hash_uniform(t, c, seed)
            if u < ap_prob[c]:
                v = _hash_uniform(t + 1, c + 7, seed)
                delay = dead_ps[c] + np.int64(-ap_tau_ps[c] * np.log1p(-v))
                heap_t, heap_c, heap_n = _heap_push(heap_t, heap_c, heap_n, t + delay, c)
    return out_t[:m], out_c[:m], heap_t, heap_c, heap_n
