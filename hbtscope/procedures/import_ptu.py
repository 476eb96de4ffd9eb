"""Runs imported from PicoQuant PTU files (``hbtscope import FILE.ptu``): a kind of run with
no procedure of its own, but an analysis and a place in the measurement catalogue.

``analyse(run)``: two-channel correlation summary of the first two photon channels —
coincidence histogram (T2: 1 ns bins over +-1 us; T3: 1 ns bins over +-max(12 us, ...)),
normalised to the accidental level N1 N2 dt / T of two uncorrelated streams of the run's
duration T; ``g2_zero`` is the normalised rate in the two bins around tau = 0, ``g2_far`` over
|tau| > max_lag / 2, each with the exact Poisson interval of its counts. For T3 files
(pulsed, sync period known) also the pulsed g2(0) of :func:`hbtscope.analysis.g2_pulsed`
when the side peaks hold counts, and per photon channel the decay (micro time) histogram with
its mean delay ``mean_delay_ps = resolution * mean(dtime)`` and its standard error.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np

from hbtscope.analysis import correlate, poisson_interval
from hbtscope.analysis.g2 import NORM_DELAY_PS, NORM_HALFWIDTH_PS
from hbtscope.procedures.base import AnalysisOutput, Measurement
from hbtscope.procedures.g2 import analyse_g2_histogram
from hbtscope.storage import layout as L
from hbtscope.storage.reading import (
    busiest_channels,
    channel_map,
    is_photon_name,
    read_tags,
)
from hbtscope.storage.runfile import read_attrs, read_parameters
from hbtscope.units import PS_PER_S


def _correlation_summary(
    t1: np.ndarray, t2: np.ndarray, duration_ps: float, bw: int, ml: int
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    lag, counts = correlate(t1, t2, bw, ml)
    acc = t1.size * t2.size * bw / duration_ps if duration_ps > 0 else np.nan
    out: dict[str, Any] = {
        "corr_bin_width_ps": bw,
        "corr_max_lag_ps": ml,
        "n_coincidences": int(counts.sum()),
        "accidentals_per_bin": float(acc),
    }
    centre = np.abs(lag) < bw  # the two bins around tau = 0
    far = np.abs(lag) > ml / 2
    if acc > 0:
        # g2 near 0 and far out, each with the exact Poisson interval of its counts (an
        # empty centre gives an upper limit, never 0 +- 0)
        for key, sel in (("g2_zero", centre), ("g2_far", far)):
            n, norm = float(counts[sel].sum()), acc * sel.sum()
            lo, hi = poisson_interval(n)
            out[key] = n / norm
            out[f"{key}_err"] = max(np.sqrt(n), hi - n, n - lo) / norm
            out[f"{key}_ci"] = [lo / norm, hi / norm]
    return out, lag, counts


def _analyse_import_ptu(f: h5py.File, params: dict[str, Any]) -> dict[str, Any]:
    ts, ch = read_tags(f)
    mode = str(params.get("mode", ""))
    cmap = channel_map(f)
    photon_channels = sorted(v for k, v in cmap.items() if is_photon_name(k))
    if not photon_channels:
        photon_channels = sorted(busiest_channels(ch, 8))
    out: dict[str, Any] = {
        "mode": mode,
        "n_tags": int(ts.size),
        "photon_channels": photon_channels,
        "counts_per_channel": {str(c): int(np.count_nonzero(ch == c)) for c in photon_channels},
    }
    arrays: dict[str, np.ndarray] = {}
    duration = float(ts[-1] - ts[0]) if ts.size > 1 else 0.0
    out["duration_s"] = duration / PS_PER_S
    period = float(params.get("sync_period_ps", 0.0) or 0.0)
    if len(photon_channels) >= 2:
        a, b = photon_channels[:2]
        t1, t2 = ts[ch == a], ts[ch == b]
        bw = 1000
        if mode == "T3" and period > 0:
            ml = int(max(12_000_000, NORM_DELAY_PS + NORM_HALFWIDTH_PS + 2 * period))
        else:
            ml = 1_000_000
        summary, lag, counts = _correlation_summary(t1, t2, duration, bw, ml)
        out.update(channel_a=a, channel_b=b, **summary)
        arrays["lag_ps"], arrays["coincidences"] = lag, counts
        if mode == "T3" and period > 0:
            try:
                res, _, used = analyse_g2_histogram(
                    lag,
                    counts,
                    period,
                    norm_delay_ps=NORM_DELAY_PS,
                    norm_halfwidth_ps=NORM_HALFWIDTH_PS,
                    background="linear",
                )
                out["g2_0_pulsed"] = res.g2_0
                out["g2_0_pulsed_err"] = res.g2_0_err
                out["g2_0_pulsed_ci"] = list(res.g2_0_ci)
                out["g2_0_pulsed_upper"] = res.g2_0_upper
                out["g2_pulsed_side_mean"] = res.side_mean
                out["zero_delay_ps"] = used["zero_delay_ps"]
                out["crosstalk_windows_ps"] = used["crosstalk_windows_ps"].tolist()
            except ValueError as exc:
                out["g2_pulsed_error"] = str(exc)
    if mode == "T3":
        out.update(_decay_summary(f, ch, photon_channels, arrays, params))
    out["arrays"] = arrays
    return out


def _decay_summary(f, ch, photon_channels, arrays, params) -> dict[str, Any]:
    dset = f.get(f"{L.DATA}/ptu/dtime")
    if not isinstance(dset, h5py.Dataset):
        return {"decay_error": "no data/ptu/dtime in this run"}
    dtime = dset[()].astype(np.int64)
    res_ps = float(read_attrs(dset).get("resolution_ps", params.get("tcspc_resolution_ps")))
    if dtime.shape[0] != ch.shape[0]:
        return {"decay_error": "data/ptu/dtime and tttr/channels differ in length"}
    stored = f.get(f"{L.DATA}/decay/counts")
    n_bins = int(dtime.max()) + 1 if dtime.size else 1
    if isinstance(stored, h5py.Dataset):
        n_bins = max(n_bins, stored.shape[1])
    hist = np.zeros((len(photon_channels), n_bins), dtype=np.int64)
    mean_delay, mean_err = {}, {}
    for i, c in enumerate(photon_channels):
        d = dtime[ch == c]
        hist[i] = np.bincount(d, minlength=n_bins)
        if d.size:
            mean_delay[str(c)] = float(d.mean() * res_ps)
            mean_err[str(c)] = float(d.std(ddof=1) * res_ps / np.sqrt(d.size)) if d.size > 1 else 0
    out: dict[str, Any] = {
        "decay_resolution_ps": res_ps,
        "decay_n_bins": n_bins,
        "mean_delay_ps": mean_delay,
        "mean_delay_ps_err": mean_err,
    }
    if isinstance(stored, h5py.Dataset):
        s = stored[()]
        out["decay_matches_stored"] = bool(
            s.shape[0] == hist.shape[0] and np.array_equal(s, hist[:, : s.shape[1]])
        )
    arrays["decay_counts"] = hist
    arrays["decay_time_ps"] = np.arange(n_bins) * res_ps
    return out


def analyse(run: h5py.File) -> AnalysisOutput:
    """The correlation and decay summary of an imported PTU run (module docstring)."""
    params, _ = read_parameters(run)
    out = _analyse_import_ptu(run, params)
    arrays = out.pop("arrays")
    return AnalysisOutput("ptu_summary", {**out, **arrays})


MEASUREMENT = Measurement(
    "import_ptu", None, analyse, doc="a PicoQuant PTU file imported with `hbtscope import`"
)
