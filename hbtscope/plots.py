"""Drawing helpers for the figures of runs (matplotlib Agg, no display needed).

Each measurement's ``figure(run, path)`` (hbtscope.procedures) draws its run from the run file
with these; :func:`hbtscope.reanalyse.redraw` re-draws any run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _rebin(lag_ps: np.ndarray, counts: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum groups of ``factor`` bins, aligned so that one new bin is centred on zero delay."""
    bw = lag_ps[1] - lag_ps[0]
    i0 = int(np.argmin(np.abs(lag_ps)))  # bin holding tau = 0
    start = (i0 - factor // 2) % factor
    n = ((counts.size - start) // factor) * factor
    c = counts[start : start + n].reshape(-1, factor).sum(axis=1)
    lag = lag_ps[start : start + n].reshape(-1, factor)[:, 0] + (factor - 1) * bw / 2
    return lag, c


def _display_factor(period_bins: float, per_period: int = 20) -> int:
    """Rebinning factor giving ~``per_period`` bins per laser period, an integer number of
    them when possible, so every peak is sampled at the same phase."""
    target = max(1, int(round(period_bins / per_period)))
    n = int(round(period_bins))
    if abs(period_bins - n) < 1e-6 and n > 0:
        divisors = [f for f in range(1, n + 1) if n % f == 0]
        return min(divisors, key=lambda f: abs(f - target))
    return target


def plot_g2_pulsed(
    lag_ps, counts, result: Mapping[str, Any], path: str | Path, title: str = ""
) -> Path:
    """Pulsed g2 like Pierini et al. Fig. 6a: coincidence histogram scaled so side peaks are ~1.

    ``result``: the values of a g2 analysis (``analysis/g2`` of a run file: ``period_ps``,
    ``peak_delays_ps``, ``peak_areas_norm``, ``g2_0`` with ``_err``, ``_ci``, ``_upper``,
    ``method``, ``norm_delay_ps``, ``norm_halfwidth_ps``, ``crosstalk_windows_ps``).
    Left: the histogram around zero delay (rebinned to ~period/20), scaled by the mean maximum
    of the reference peaks. Right: every peak's area normalised to the mean reference side-peak
    area, i.e. g2 at tau = k T, with the normalisation band shaded. Crosstalk sub-windows left
    out of every peak area are named in the text (at this zoom their spikes still show).
    """
    lag_ps = np.asarray(lag_ps, float)
    counts = np.asarray(counts)
    period = float(result["period_ps"])
    norm_delay = float(result["norm_delay_ps"])
    norm_half = float(result["norm_halfwidth_ps"])
    delays = np.asarray(result["peak_delays_ps"], dtype=float)
    areas = np.asarray(result["peak_areas_norm"], dtype=float)
    excluded = np.asarray(result.get("crosstalk_windows_ps", np.empty((0, 2))), float)
    ci = np.asarray(result["g2_0_ci"], dtype=float)
    bw = float(lag_ps[1] - lag_ps[0]) if lag_ps.size > 1 else period
    factor = _display_factor(period / bw)
    lag_r, c_r = _rebin(lag_ps, counts, factor)
    # scale: a side peak's maximum bin ~ 1 (mean of the reference peaks' maxima)
    ref_max = []
    for d in delays:
        if abs(abs(d) - norm_delay) <= norm_half:
            sel = np.abs(lag_r - d) < period / 2
            if sel.any():
                ref_max.append(c_r[sel].max())
    scale = float(np.mean(ref_max)) if ref_max and np.mean(ref_max) > 0 else max(c_r.max(), 1)

    fig = Figure(figsize=(10, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    zoom = np.abs(lag_r) <= 6.5 * period
    ax1.step(lag_r[zoom] * 1e-3, c_r[zoom] / scale, where="mid", color="tab:blue", lw=1)
    ax1.axhline(1.0, color="0.6", lw=0.8, ls="--")
    ax1.axhline(0.5, color="tab:red", lw=0.8, ls=":", label="0.5: single-emitter threshold")
    ax1.set_xlabel("delay τ (ns)")
    ax1.set_ylabel("normalised coincidences")
    ax1.text(
        0.02,
        0.95,
        f"g²(0) = {result['g2_0']:.3f} ± {result['g2_0_err']:.3f}\n"
        f"68 % interval [{ci[0]:.3f}, {ci[1]:.3f}]\n"
        f"g²(0) < {result['g2_0_upper']:.3f} (97.7 %)\n({result['method']} background)"
        + "".join(
            f"\nexcluded: crosstalk at {0.5e-3 * (lo + hi):+.1f} ns"
            for lo, hi in excluded.reshape(-1, 2)
        ),
        transform=ax1.transAxes,
        va="top",
    )
    ax1.legend(loc="upper right", fontsize=8, framealpha=0.9)
    ax1.set_ylim(0, 1.8 * max(1.0, float(np.max(c_r[zoom]) / scale)))  # room for the text
    ax2.plot(delays * 1e-6, areas, ".", ms=3, color="tab:blue")
    ax2.axhline(1.0, color="0.6", lw=0.8, ls="--")
    lo_us, hi_us = (norm_delay - norm_half) * 1e-6, (norm_delay + norm_half) * 1e-6
    ax2.axvspan(lo_us, hi_us, color="tab:orange", alpha=0.15, label="normalisation peaks")
    ax2.axvspan(-hi_us, -lo_us, color="tab:orange", alpha=0.15)
    ax2.set_xlabel("delay τ (µs)")
    ax2.set_ylabel("peak area / reference")
    ax2.legend(loc="lower right", fontsize=8)
    ax2.set_ylim(bottom=0)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
