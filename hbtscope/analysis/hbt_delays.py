"""Zero delay and crosstalk peaks of a pulsed HBT coincidence histogram.

Real HBT arms have two detectors with different cable and electronic delays (a few ns), so
the comb of coincidence peaks sits at ``tau0 + k T``, not at ``k T``; and silicon SPADs
emit a breakdown flash with every avalanche (Kurtsiefer 2001) that can fire the other
detector, adding narrow peaks at ``tau0 +- d`` (d: the optical path between the two SPADs)
inside the antibunching dip. Both are found from the data here; :func:`g2_pulsed` takes the
zero delay (``zero_delay_ps``) and the sub-windows to exclude from every peak
(``exclude_ps``).

* :func:`find_zero_delay` -- fold the side peaks (|k| >= 1; the centre peak is antibunched
  and may hold crosstalk) onto one period, subtract the floor measured between the peaks,
  and take the centroid of the folded peak, iterated on a window of +-3 RMS widths around
  the current estimate. The two-photon delay distribution of a side peak is symmetric about
  tau0 (a difference of two independent emission delays and jitters), so the centroid is
  unbiased; its error is the RMS width over sqrt(peak counts).
* :func:`find_crosstalk_peaks` -- compare the centre peak with the mean side-peak profile
  scaled to it (robustly, iteratively excluding outliers): crosstalk shows as clusters of
  bins more than ``z_min`` Poisson sigma above the scaled profile. Each cluster is
  reported as a window (offsets from tau0) widened by ``pad_ps`` on both sides;
  :func:`g2_pulsed` removes the same windows from every peak, so the ratio g2(0) is not
  biased by the exclusion for peaks of the same shape (in a pulsed biexciton cascade the
  centre peak has the same two-sided-exponential shape with the X lifetime as the side
  peaks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CrosstalkPeaks", "ZeroDelay", "find_crosstalk_peaks", "find_zero_delay"]


@dataclass(frozen=True)
class ZeroDelay:
    """Position of the k = 0 peak (ps) with its 1-sigma error, and the folded peak's RMS
    width and background-subtracted counts it was estimated from."""

    zero_delay_ps: float
    zero_delay_ps_err: float
    rms_width_ps: float
    peak_counts: float


@dataclass(frozen=True)
class CrosstalkPeaks:
    """Windows to exclude, as (lo, hi) offsets from the zero delay (ps), with the excess
    counts and significance (Poisson sigma of the summed excess) of each."""

    windows_ps: tuple[tuple[float, float], ...]
    excess_counts: tuple[float, ...]
    significance: tuple[float, ...]


def _uniform(lag: np.ndarray) -> float:
    if lag.ndim != 1 or lag.size < 4:
        raise ValueError("lag_ps must be a 1-D array of at least 4 bin centres")
    bw = float(lag[-1] - lag[0]) / (lag.size - 1)
    if not bw > 0 or np.max(np.abs(np.diff(lag) - bw)) > 1e-6 * bw:
        raise ValueError("lag_ps must be uniformly spaced, ascending bin centres")
    return bw


def find_zero_delay(
    lag_ps, counts, period_ps: float, *, guess_ps: float = 0.0, n_iter: int = 8
) -> ZeroDelay:
    """Zero delay of a pulsed coincidence histogram from its side peaks (module doc)."""
    lag = np.asarray(lag_ps, dtype=np.float64)
    y = np.asarray(counts, dtype=np.float64)
    if y.shape != lag.shape:
        raise ValueError("lag_ps and counts must have the same shape")
    bw = _uniform(lag)
    T = float(period_ps)
    if not T > 2 * bw:
        raise ValueError(f"period_ps must span several bins, got {period_ps!r}")
    side = np.abs(lag - guess_ps) > 0.5 * T
    if not side.any() or y[side].sum() <= 0:
        raise ValueError("no coincidences in the side peaks: the zero delay cannot be found")
    n_fold = max(int(round(T / bw)), 4)
    phase = np.mod(lag[side] - guess_ps + 0.5 * T, T) - 0.5 * T
    idx = np.clip(((phase + 0.5 * T) / T * n_fold).astype(np.int64), 0, n_fold - 1)
    folded = np.bincount(idx, weights=y[side], minlength=n_fold)
    # each folded bin sits at the mean phase of the histogram bins folded into it
    n_in = np.bincount(idx, minlength=n_fold)
    nominal = (np.arange(n_fold) + 0.5) / n_fold * T - 0.5 * T
    centres = np.where(
        n_in > 0, np.bincount(idx, weights=phase, minlength=n_fold) / np.maximum(n_in, 1), nominal
    )
    # floor: the quietest 20 % of the folded period (between the peaks)
    floor = float(np.mean(np.sort(folded)[: max(n_fold // 5, 1)]))
    signal = np.clip(folded - floor, 0.0, None)
    if not signal.sum() > 0:
        raise ValueError("the side peaks hold no signal above their floor")
    # start at the maximum of a lightly smoothed folded peak, then iterate the centroid
    k = max(1, n_fold // 200)
    smooth = np.convolve(signal, np.ones(2 * k + 1), mode="same")
    c = float(centres[int(np.argmax(smooth))])
    half = 0.25 * T
    for _ in range(n_iter):
        sel = np.abs(centres - c) <= half
        w = signal[sel]
        if not w.sum() > 0:
            break
        c_new = float(np.sum(w * centres[sel]) / w.sum())
        rms = float(math.sqrt(np.sum(w * (centres[sel] - c_new) ** 2) / w.sum()))
        half = min(max(3.0 * rms, 2.0 * bw), 0.5 * T)
        if abs(c_new - c) < 1e-3 * bw:
            c = c_new
            break
        c = c_new
    sel = np.abs(centres - c) <= half
    w = signal[sel]
    n = float(w.sum())
    rms = float(math.sqrt(np.sum(w * (centres[sel] - c) ** 2) / n))
    return ZeroDelay(
        zero_delay_ps=guess_ps + c,
        zero_delay_ps_err=max(rms, bw / math.sqrt(12)) / math.sqrt(n),
        rms_width_ps=rms,
        peak_counts=n,
    )


def find_crosstalk_peaks(
    lag_ps,
    counts,
    period_ps: float,
    zero_delay_ps: float,
    *,
    n_side_peaks: int = 20,
    z_min: float = 5.0,
    pad_ps: float = 1000.0,
    skip_near_ps: float = 0.0,
) -> CrosstalkPeaks:
    """Narrow excess peaks in the centre peak (breakdown-flash crosstalk; module doc).

    The mean profile of the ``n_side_peaks`` nearest side peaks on each side (aligned on
    ``zero_delay_ps``) is scaled to the centre peak by a robust ratio; bins of the centre
    peak more than ``z_min`` sigma (Poisson, of the expected counts, at least 1) above it
    form clusters, each reported as a window widened by ``pad_ps``. ``skip_near_ps``
    ignores excess within that distance of the zero delay (to leave a true centre peak
    alone when the optical path is known to be longer).
    """
    lag = np.asarray(lag_ps, dtype=np.float64)
    y = np.asarray(counts, dtype=np.float64)
    bw = _uniform(lag)
    T = float(period_ps)
    z0 = float(zero_delay_ps)
    n_win = int(math.floor(0.5 * T / bw))
    offs = (np.arange(-n_win, n_win + 1)) * bw

    def profile(k: int) -> np.ndarray | None:
        x = z0 + k * T + offs
        if x[0] < lag[0] - 0.5 * bw or x[-1] > lag[-1] + 0.5 * bw:
            return None
        return np.interp(x, lag, y)

    centre = profile(0)
    if centre is None:
        raise ValueError("the histogram does not contain the centre peak")
    sides = [
        p for k in range(1, n_side_peaks + 1) for p in (profile(k), profile(-k)) if p is not None
    ]
    if not sides:
        raise ValueError("the histogram holds no side peak to compare the centre with")
    ref = np.mean(sides, axis=0)
    ok = np.ones(offs.size, dtype=bool)
    scale = 0.0
    for _ in range(4):  # robust scale: drop bins far above the scaled profile, refit
        denom = float(ref[ok].sum())
        scale = float(centre[ok].sum()) / denom if denom > 0 else 0.0
        expect = scale * ref
        sd = np.sqrt(np.maximum(expect, 1.0))
        ok = (centre - expect) / sd < z_min
    expect = scale * ref
    sd = np.sqrt(np.maximum(expect, 1.0))
    hot = ((centre - expect) / sd >= z_min) & (np.abs(offs) >= skip_near_ps)
    windows, excess, signif = [], [], []
    i = 0
    while i < offs.size:
        if not hot[i]:
            i += 1
            continue
        j = i
        while j + 1 < offs.size and hot[j + 1]:
            j += 1
        ex = float(np.sum(centre[i : j + 1] - expect[i : j + 1]))
        var = float(np.sum(np.maximum(expect[i : j + 1], 1.0)))
        windows.append((float(offs[i] - 0.5 * bw - pad_ps), float(offs[j] + 0.5 * bw + pad_ps)))
        excess.append(ex)
        signif.append(ex / math.sqrt(var))
        i = j + 1
    # merge overlapping windows
    merged: list[list[float]] = []
    for lo, hi in windows:
        if merged and lo <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    if len(merged) < len(windows):  # sum the excess of merged clusters
        ex_m, sg_m = [], []
        for lo, hi in merged:
            parts = [k for k, w in enumerate(windows) if w[0] >= lo and w[1] <= hi]
            ex_m.append(sum(excess[k] for k in parts))
            sg_m.append(math.sqrt(sum(signif[k] ** 2 for k in parts)))
        excess, signif = ex_m, sg_m
    return CrosstalkPeaks(
        windows_ps=tuple((lo, hi) for lo, hi in merged),
        excess_counts=tuple(excess),
        significance=tuple(signif),
    )
