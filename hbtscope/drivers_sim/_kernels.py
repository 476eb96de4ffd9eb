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
def assemble_photons(
    k,
    st,
    v,
    e1,
    e2,
    ur,
    jn,
    phase_ps,
    period_ps,
    cum_p,
    tau_x_ps,
    tau_xx_ps,
    route_cum,
    jitter_sd_ps,
    delay_ps,
):
    """Detected photons of one emitter from its candidate pulses ``k`` (thinned generation).

    Candidates were drawn with the largest per-pulse probability q_max over the emitter's
    states; pulse p, in blinking state ``st[p]``, yields an outcome by comparing the uniform
    ``v[p]`` with that state's cumulative outcome probabilities ``cum_p[st[p]]`` (normalised
    to q_max): X after a single exciton; X after an undetected biexciton decay; XX only; XX
    then X (the cascade); nothing if v >= cum_p[st, 3] (thinning to the state's own q).
    Delays are exponential: tau_xx * e1 for the XX photon, then tau_x * e2 more for the X
    photon of a cascade (tau_x * e2 alone after a single exciton), with the state's lifetimes.
    Each photon goes to detector i by a uniform against ``route_cum``: the first photon of a
    pulse reuses ``v`` rescaled within its outcome's interval (again uniform on [0, 1)), the
    second of a cascade takes the next ``ur``. Each photon gets its detector's delay and
    Gaussian jitter (the next ``jn``) and never precedes its pulse. ``ur`` must hold one number
    per cascade, ``jn`` one per photon.

    The random numbers come in bulk from numpy's Generator (ziggurat samplers), so this
    kernel only does the bookkeeping. Returns (timestamps_ps, detector index, pulse time),
    unsorted.
    """
    n = k.shape[0]
    ts = np.empty(2 * n, np.int64)
    det = np.empty(2 * n, np.int64)
    origin = np.empty(2 * n, np.int64)
    n_det = route_cum.shape[0]
    m = 0
    i_ur = 0
    for p in range(n):
        s = st[p]
        vp = v[p]
        c = cum_p[s]
        if vp >= c[3]:
            continue
        t_pulse = phase_ps + np.int64(np.round(k[p] * period_ps))
        t_xx = tau_xx_ps[s] * e1[p]
        if vp < c[0]:
            n_ph = 1
            d0 = tau_x_ps[s] * e2[p]
            d1 = 0.0
            lo, hi = 0.0, c[0]
        elif vp < c[1]:
            n_ph = 1
            d0 = t_xx + tau_x_ps[s] * e2[p]
            d1 = 0.0
            lo, hi = c[0], c[1]
        elif vp < c[2]:
            n_ph = 1
            d0 = t_xx
            d1 = 0.0
            lo, hi = c[1], c[2]
        else:
            n_ph = 2
            d0 = t_xx
            d1 = t_xx + tau_x_ps[s] * e2[p]
            lo, hi = c[2], c[3]
        for j in range(n_ph):
            delay = d0 if j == 0 else d1
            if j == 0:
                r = (vp - lo) / (hi - lo)
            else:
                r = ur[i_ur]
                i_ur += 1
            i = 0
            while i < n_det - 1 and r >= route_cum[i]:
                i += 1
            t = delay + delay_ps[i] + jitter_sd_ps[i] * jn[m]
            if t < 0.0:
                t = 0.0
            ts[m] = t_pulse + np.int64(np.round(t))
            det[m] = i
            origin[m] = t_pulse
            m += 1
    return ts[:m], det[:m], origin[:m]
