"""Photon delays after the laser pulse from a *divided* sync, and detector alignment.

A pulsed laser at 2.5-10 MHz gives more sync tags than photons by a factor of 100-1000; a
long TTTR record (minutes, as in Pierini et al. 2020 and D'Amato et al. 2023) therefore keeps
only every N-th sync (the time tagger's event divider). The delay of a photon after the pulse
that excited it is then

    delay = (t - s_j) mod T_j,    T_j = (s_{j+1} - s_j) / N,

with s_j the last kept sync before the photon and T_j the laser period measured over that
stretch of N pulses (so a slow drift of the laser's period is followed). Photons after the last
kept sync use the period of the stretch before it; photons before the first kept sync are
dropped (delay -1).

Two SPADs see the same pulse at different times (cables, electronics): :func:`align_delays`
shifts every detector's delays so that the rising edges of their decays coincide, which is
what a combined decay histogram needs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hbtscope.analysis._validate import as_times

__all__ = ["align_delays", "delays_from_divided_sync", "rising_edge_ps", "sync_period_ps"]


def sync_period_ps(sync_ps: np.ndarray, divider: int) -> float:
    """The laser period (ps) from kept syncs every ``divider`` pulses: median spacing / N."""
    s = as_times("sync_ps", sync_ps)
    if s.size < 2:
        raise ValueError("need at least two sync tags to measure the laser period")
    if int(divider) < 1:
        raise ValueError(f"divider must be >= 1, got {divider!r}")
    return float(np.median(np.diff(s.astype(np.float64)))) / int(divider)


@njit(cache=True, nogil=True)
def _merge_delays(ph: np.ndarray, s: np.ndarray, n: int, out: np.ndarray) -> None:
    """One pass over sorted photons and syncs: out[i] = (ph[i] - s_j) mod T_j (module doc)."""
    j = -1
    m = s.size
    for i in range(ph.size):
        t = ph[i]
        while j + 1 < m and s[j + 1] <= t:
            j += 1
        if j < 0:
            out[i] = -1.0
            continue
        k = j if j + 1 < m else j - 1  # after the last sync: the period of the stretch before
        period = (s[k + 1] - s[k]) / n
        dt = float(t - s[j])
        out[i] = dt - period * np.floor(dt / period)


def delays_from_divided_sync(
    photon_ps: np.ndarray, sync_ps: np.ndarray, divider: int
) -> np.ndarray:
    """Delay (ps, float64) of each photon after its laser pulse from syncs kept every
    ``divider`` pulses (module doc); -1 for photons before the first kept sync. Photons in
    time order take one merged pass (numba); otherwise a binary search per photon."""
    ph = np.asarray(photon_ps, dtype=np.int64)
    s = as_times("sync_ps", sync_ps).astype(np.int64)
    n = int(divider)
    if n < 1:
        raise ValueError(f"divider must be >= 1, got {divider!r}")
    out = np.full(ph.size, -1.0)
    if ph.size == 0 or s.size < 2:
        return out
    if np.all(ph[1:] >= ph[:-1]):
        _merge_delays(ph, s, n, out)
        return out
    spacing = np.diff(s).astype(np.float64) / n  # period over each stretch
    period = np.append(spacing, spacing[-1])
    j = np.searchsorted(s, ph, side="right") - 1
    ok = j >= 0
    dt = (ph[ok] - s[j[ok]]).astype(np.float64)
    out[ok] = np.mod(dt, period[j[ok]])
    return out


def rising_edge_ps(delay_ps: np.ndarray, period_ps: float, bin_ps: float = 32.0) -> float:
    """Where a decay rises: the first bin reaching half the maximum of the delay histogram
    (smoothed over 3 bins), in ps. Robust to the decay's tail and to a flat background."""
    d = np.asarray(delay_ps, dtype=np.float64)
    d = d[d >= 0]
    if d.size == 0:
        raise ValueError("no photon delays")
    n_bins = max(int(period_ps // bin_ps), 3)
    h, _ = np.histogram(d, bins=n_bins, range=(0.0, n_bins * bin_ps))
    return rising_edge_of_histogram(h, bin_ps)


def rising_edge_of_histogram(counts: np.ndarray, bin_ps: float) -> float:
    """:func:`rising_edge_ps` of a delay histogram over one period (bins of ``bin_ps`` from
    0): walking back from the maximum (3-bin smoothing, periodic), the first bin reaching
    half the maximum above the median; ps."""
    h = np.convolve(np.asarray(counts, dtype=np.float64), np.ones(3) / 3.0, mode="same")
    n_bins = h.size
    base = float(np.median(h))
    k_max = int(np.argmax(h))
    half = base + 0.5 * (h[k_max] - base)
    # walk back from the maximum to the last bin below half maximum (periodic)
    k = k_max
    for _ in range(n_bins):
        if h[(k - 1) % n_bins] < half:
            break
        k -= 1
    return float((k % n_bins) * bin_ps)


def align_delays(
    delay_ps: np.ndarray, channel: np.ndarray, period_ps: float, reference: int | None = None
) -> tuple[np.ndarray, dict[int, float]]:
    """Shift each channel's delays (mod the period) so its rising edge falls on that of
    ``reference`` (default: the busiest channel). Returns the aligned delays (negative
    delays, i.e. photons without a sync, are left as they are) and the shift applied to
    each channel (ps)."""
    d = np.asarray(delay_ps, dtype=np.float64).copy()
    ch = np.asarray(channel)
    chans, counts = np.unique(ch, return_counts=True)
    if chans.size == 0:
        return d, {}
    ref = int(chans[np.argmax(counts)]) if reference is None else int(reference)
    edge_ref = rising_edge_ps(d[(ch == ref) & (d >= 0)], period_ps)
    shifts: dict[int, float] = {}
    for c in chans:
        sel = (ch == c) & (d >= 0)
        shift = 0.0 if int(c) == ref else edge_ref - rising_edge_ps(d[sel], period_ps)
        d[sel] = np.mod(d[sel] + shift, period_ps)
        shifts[int(c)] = float(shift)
    return d, shifts
