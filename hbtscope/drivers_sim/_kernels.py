"""numba kernels of the simulated detectors."""

from __future__ import annotations

import numpy as np
from numba import njit

# numpy's ziggurat tables (as numba ships them for its port of numpy's Generator)
from numba.np.random._constants import (
    fe_double,
    fi_double,
    ke_double,
    ki_double,
    we_double,
    wi_double,
    ziggurat_exp_r,
    ziggurat_nor_inv_r,
    ziggurat_nor_r,
)

#: top rungs of the exciton ladder (physics.N_MAX): a compile-time constant, so the branch-free
#: search over the top-rung blocks in pulsed_photons is a fixed-length (vectorised) loop
LADDER_RUNGS = 10


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
def release_clicks(order, ts, ch, origin, t_end, dead_ps, last_ps):
    """The pending clicks in time order (``order``: a stable argsort of ``ts``): those before
    ``t_end`` through the channels' dead time (:func:`apply_dead_time`, ``last_ps`` updated
    in place), and the rest, still pending. Returns (kept times, kept channels, pending
    times, channels, origins), in time order."""
    n = order.shape[0]
    out_t = np.empty(n, np.int64)
    out_c = np.empty(n, ch.dtype)
    m = 0
    cut = n
    for j in range(n):
        i = order[j]
        t = ts[i]
        if t >= t_end:
            cut = j
            break
        c = ch[i]
        if t - last_ps[c] >= dead_ps[c]:
            last_ps[c] = t
            out_t[m] = t
            out_c[m] = c
            m += 1
    rest = n - cut
    rt = np.empty(rest, np.int64)
    rc = np.empty(rest, ch.dtype)
    ro = np.empty(rest, np.int64)
    for j in range(rest):
        i = order[cut + j]
        rt[j] = ts[i]
        rc[j] = ch[i]
        ro[j] = origin[i]
    return out_t[:m], out_c[:m], rt, rc, ro


@njit(cache=True, nogil=True)
def ladder_class_probs(p_top, p, top, first, out):
    """``physics.ladder_outcomes`` for p of shape (n_states, n_max), given p_top[n - 1] =
    P(top rung n): out[s, c] = p_top[top[c] - 1] p[s, first[c] - 1]
    prod_{first[c] < n <= top[c]} (1 - p[s, n - 1]), the product as the exponential of
    the difference of cumulative log1p sums (the same arithmetic, in the same order)."""
    n_states, n_max = p.shape
    cum = np.empty(n_max + 1)
    for s in range(n_states):
        cum[0] = 0.0
        for n in range(n_max):
            cum[n + 1] = cum[n] + np.log1p(-min(p[s, n], 1.0 - 1e-15))
        for c in range(top.shape[0]):
            out[s, c] = p_top[top[c] - 1] * p[s, first[c] - 1] * np.exp(cum[top[c]] - cum[first[c]])


# ---------------------------------------------------------------- inline random numbers
# xoshiro256** (Blackman & Vigna) with its state in a uint64[4] array, seeded by SplitMix64,
# and numpy's ziggurat samplers on top of it (the code of numpy's / numba's
# random_standard_normal and random_standard_exponential): inlined in the kernels, a draw
# costs a few ns instead of a call through the bit generator's function pointer.


@njit(cache=True, nogil=True)
def rng_state(seed):
    """xoshiro256** state (uint64[4]) from a 64-bit seed, by SplitMix64 (never all zero)."""
    s = np.empty(4, np.uint64)
    z = np.uint64(seed)
    for j in range(4):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        x = z
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        s[j] = x ^ (x >> np.uint64(31))
    return s


@njit(inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


# The same generator with its state in four scalars (``_t`` functions take and return it):
# inside a kernel LLVM keeps them in registers, where the array state would be re-read after
# every store to an output array it cannot prove distinct. The array functions below are these.


@njit(inline="always")
def _next_u64_t(s0, s1, s2, s3):
    result = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = _rotl(s3, 45)
    return result, s0, s1, s2, s3


@njit(inline="always")
def _uniform_t(s0, s1, s2, s3):
    r, s0, s1, s2, s3 = _next_u64_t(s0, s1, s2, s3)
    return np.float64(r >> np.uint64(11)) * (1.0 / 9007199254740992.0), s0, s1, s2, s3


@njit(inline="always")
def _exponential_t(s0, s1, s2, s3):
    while True:
        ri, s0, s1, s2, s3 = _next_u64_t(s0, s1, s2, s3)
        ri >>= np.uint64(3)
        idx = np.int64(ri & np.uint64(0xFF))
        ri >>= np.uint64(8)
        x = np.float64(ri) * we_double[idx]
        if ri < ke_double[idx]:
            return x, s0, s1, s2, s3
        u, s0, s1, s2, s3 = _uniform_t(s0, s1, s2, s3)
        if idx == 0:
            return ziggurat_exp_r - np.log1p(-u), s0, s1, s2, s3
        if (fe_double[idx - 1] - fe_double[idx]) * u + fe_double[idx] < np.exp(-x):
            return x, s0, s1, s2, s3


@njit(inline="always")
def _normal_t(s0, s1, s2, s3):
    while True:
        r, s0, s1, s2, s3 = _next_u64_t(s0, s1, s2, s3)
        idx = np.int64(r & np.uint64(0xFF))
        r >>= np.uint64(8)
        rabs = (r >> np.uint64(1)) & np.uint64(0x000FFFFFFFFFFFFF)
        x = np.float64(rabs) * wi_double[idx]
        if r & np.uint64(1):
            x = -x
        if rabs < ki_double[idx]:
            return x, s0, s1, s2, s3
        if idx == 0:
            while True:
                u1, s0, s1, s2, s3 = _uniform_t(s0, s1, s2, s3)
                u2, s0, s1, s2, s3 = _uniform_t(s0, s1, s2, s3)
                xx = -ziggurat_nor_inv_r * np.log1p(-u1)
                yy = -np.log1p(-u2)
                if yy + yy > xx * xx:
                    if (rabs >> np.uint64(8)) & np.uint64(1):
                        return -(ziggurat_nor_r + xx), s0, s1, s2, s3
                    return ziggurat_nor_r + xx, s0, s1, s2, s3
        else:
            u, s0, s1, s2, s3 = _uniform_t(s0, s1, s2, s3)
            if (fi_double[idx - 1] - fi_double[idx]) * u + fi_double[idx] < np.exp(-0.5 * x * x):
                return x, s0, s1, s2, s3


@njit(inline="always")
def _next_u64(s):
    result, s[0], s[1], s[2], s[3] = _next_u64_t(s[0], s[1], s[2], s[3])
    return result


@njit(inline="always")
def _uniform(s):
    """Uniform on [0, 1), 53 bits."""
    x, s[0], s[1], s[2], s[3] = _uniform_t(s[0], s[1], s[2], s[3])
    return x


@njit(inline="always")
def _exponential(s):
    """Standard exponential (numpy's ziggurat)."""
    x, s[0], s[1], s[2], s[3] = _exponential_t(s[0], s[1], s[2], s[3])
    return x


@njit(inline="always")
def _normal(s):
    """Standard normal (numpy's ziggurat)."""
    x, s[0], s[1], s[2], s[3] = _normal_t(s[0], s[1], s[2], s[3])
    return x


@njit(cache=True, nogil=True)
def rng_draws(state, n, kind):
    """n draws of the inline generator (kind 0 uniform, 1 exponential, 2 normal): tests."""
    out = np.empty(n)
    for i in range(n):
        if kind == 0:
            out[i] = _uniform(state)
        elif kind == 1:
            out[i] = _exponential(state)
        else:
            out[i] = _normal(state)
    return out


@njit(cache=True, fastmath=True, nogil=True)
def pulsed_photons(
    rng,
    k_last,
    k1,
    q,
    path_t,
    path_s,
    cum,
    block,
    top,
    first,
    p_rung,
    tau_ps,
    phase_ps,
    period_ps,
    route_cum,
    jitter_sd_ps,
    delay_ps,
    ts,
    det,
    origin,
):
    """Detected photons of one emitter over the pulses k_last < k < k1 (thinned generation).

    Candidate ("active") pulses come with probability ``q`` each, the largest per-pulse
    click probability q_max over the emitter's blinking states: geometric gaps
    1 + floor(E / -ln(1 - q)), E ~ Exp(1), so only they cost anything. Pulse k, at
    ``phase_ps + round(k period_ps)``, is in the blinking state of the path (``path_t``
    switch times, first <= the first pulse; ``path_s`` states) and falls in outcome class
    c when a uniform v lies in [cum[s, c-1], cum[s, c]) of that state's cumulative class
    probabilities (normalised to q_max; ``physics.ladder_outcomes``, classes ordered as
    ``physics.ladder_classes``: top rung ``top[c]``, highest clicking rung ``first[c]``);
    it yields nothing (thinning to the state's own q) when v >= cum[s, -1]. The top rung
    comes first, branch-free, from ``block[s, n - 1]`` = cum at the end of the classes with
    n0 = n, n = 1 .. LADDER_RUNGS; then the class within its block (j = 1 first, by far the
    most likely: the exciton is the brightest rung).

    The exciton ladder (``physics`` module doc): the pulse starts at rung n0 and cascades
    down; rung n decays after ``tau_ps[s, n-1] E``, so the photon of rung n leaves at the
    sum of the delays of the rungs n0 .. n. Rung ``first[c]`` clicks; each rung n below it
    clicks when a uniform u < ``p_rung[s, n-1]``. Each click goes to detector i by a
    uniform against ``route_cum``: the first reuses v rescaled within its class interval,
    the others ``u / p_rung`` (both uniform on [0, 1) given the click). Each photon gets
    its detector's delay and Gaussian jitter and never precedes its pulse.

    Every random number comes from ``rng``, an inline generator state (:func:`rng_state`,
    advanced in place), in a fixed order, so the photons depend on that state only. The
    photons (timestamp ps, detector index, pulse time; unsorted) go into ``ts``, ``det``,
    ``origin``; when they are nearly full (room for less than one cascade), the kernel
    stops before the next pulse and returns (photons written, last pulse done, False):
    call it again from there with new arrays (the same random numbers follow). Returns
    (photons written, k1, True) when done.
    """
    n_det = route_cum.shape[0]
    n_path = path_t.shape[0]
    cap = ts.shape[0]
    m = 0
    if k1 - 1 <= k_last or q <= 0.0:
        return m, k1, True
    scale = -1.0 / np.log1p(-q) if q < 1.0 else 0.0
    k = k_last
    ip = 0  # path segment of the current pulse
    s0, s1, s2, s3 = rng[0], rng[1], rng[2], rng[3]  # the generator, in registers
    while True:
        if m + LADDER_RUNGS > cap:
            rng[0], rng[1], rng[2], rng[3] = s0, s1, s2, s3
            return m, k, False
        e, s0, s1, s2, s3 = _exponential_t(s0, s1, s2, s3)
        gap = e * scale
        if gap >= k1 - 1 - k:  # also when the gap overflows an int64
            break
        k += 1 + np.int64(gap)
        t_pulse = phase_ps + np.int64(k * period_ps + 0.5)  # k, period >= 0
        while ip + 1 < n_path and path_t[ip + 1] <= t_pulse:
            ip += 1
        s = path_s[ip]
        v, s0, s1, s2, s3 = _uniform_t(s0, s1, s2, s3)
        row = block[s]
        if v >= row[LADDER_RUNGS - 1]:
            continue
        n0 = 1
        for b in range(LADDER_RUNGS - 1):
            n0 += np.int64(v >= row[b])
        c = n0 * (n0 - 1) // 2
        while v >= cum[s, c]:
            c += 1
        lo = cum[s, c - 1] if c > 0 else 0.0
        r = (v - lo) / (cum[s, c] - lo)
        j = first[c]
        t_emit = 0.0
        for rung in range(n0, j - 1, -1):  # the rungs above j decay unseen, then j
            e, s0, s1, s2, s3 = _exponential_t(s0, s1, s2, s3)
            t_emit += tau_ps[s, rung - 1] * e
        rung = j
        while True:  # photon of rung ``rung`` routed by r, then the rungs below j
            i = 0
            for qq in range(n_det - 1):
                i += r >= route_cum[qq]
            z, s0, s1, s2, s3 = _normal_t(s0, s1, s2, s3)
            t = t_emit + delay_ps[i] + jitter_sd_ps[i] * z
            if t < 0.0:
                t = 0.0
            ts[m] = t_pulse + np.int64(t + 0.5)  # t >= 0
            det[m] = i
            origin[m] = t_pulse
            m += 1
            clicked = False
            while rung > 1 and not clicked:
                rung -= 1
                e, s0, s1, s2, s3 = _exponential_t(s0, s1, s2, s3)
                t_emit += tau_ps[s, rung - 1] * e
                uu, s0, s1, s2, s3 = _uniform_t(s0, s1, s2, s3)
                pr = p_rung[s, rung - 1]
                if uu < pr:
                    clicked = True
                    r = uu / pr
            if not clicked:
                break
    rng[0], rng[1], rng[2], rng[3] = s0, s1, s2, s3
    return m, k1, True


@njit(cache=True, nogil=True)
def crosstalk_kernel(rng, ts, ch, prob, target, shift_ps, jitter_sigma_ps):
    """Breakdown-flash clicks of the clicks ``(ts, ch)`` (``imperfections.crosstalk_clicks``):
    candidates at the largest probability by geometric gaps, each kept with prob[c] / that.
    ``rng``: an inline generator state (:func:`rng_state`)."""
    n = ts.shape[0]
    q = 0.0
    for i in range(n):
        q = max(q, prob[ch[i]])
    out_t = np.empty(0, np.int64)
    out_c = np.empty(0, np.int64)
    if n == 0 or q <= 0.0:
        return out_t, out_c
    scale = -1.0 / np.log1p(-q) if q < 1.0 else 0.0
    cap = np.int64(n * q + 6.0 * np.sqrt(n * q)) + 16
    out_t = np.empty(cap, np.int64)
    out_c = np.empty(cap, np.int64)
    m = 0
    i = -1
    while True:
        gap = _exponential(rng) * scale
        if gap >= n - 1 - i:
            break
        i += 1 + np.int64(gap)
        c = ch[i]
        if q > prob[c] and _uniform(rng) * q >= prob[c]:
            continue
        if m == cap:
            cap = 2 * cap
            t2 = np.empty(cap, np.int64)
            c2 = np.empty(cap, np.int64)
            t2[:m] = out_t[:m]
            c2[:m] = out_c[:m]
            out_t, out_c = t2, c2
        tgt = target[c]
        t = ts[i] + shift_ps[c] + jitter_sigma_ps[tgt] * _normal(rng)
        out_t[m] = np.int64(np.round(t))
        out_c[m] = tgt
        m += 1
    return out_t[:m], out_c[:m]


@njit(cache=True, nogil=True)
def _hash_uniform(t, c, seed):
    """A uniform number on [0, 1) from (time, channel, seed): splitmix64, so the randomness of
    a click does not depend on how the stream was cut into read-outs."""
    z = np.uint64(t) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(c) * np.uint64(0xBF58476D1CE4E5B9)
    z = z ^ np.uint64(seed)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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


@njit(cache=True, nogil=True)
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
