"""Recompute the analysis of a run from the raw data stored in its run file.

:func:`analyse_run` opens a run file, reads the procedure's stored parameters and raw data
(time tags, micro times, histograms) and redoes the analysis with :mod:`hbtscope.analysis`,
so any run, including one recorded by an older version or imported from another instrument,
can be re-evaluated. Nothing in the file is ever ``eval``-ed or unpickled: parameters are
plain HDF5 attributes (JSON text at most, decoded with :mod:`json`).

Supported procedures
--------------------
``g2``
    The two SPAD channels (``setup/calibrations/detector_channels`` ``spad_a``/``spad_b``,
    else ``tttr/@channel_map``, else the two busiest channels) are correlated with
    :func:`hbtscope.analysis.correlate` using the stored ``bin_width_ps`` and ``max_lag_ps``,
    and :func:`hbtscope.analysis.g2_pulsed` is applied with the stored ``rep_rate_Hz``,
    ``norm_delay_ps``, ``norm_halfwidth_ps``, ``background`` (and ``"sqrt"`` too),
    ``zero_delay_ps`` and ``exclude_crosstalk``, through the procedure's own
    :func:`hbtscope.procedures.g2.analyse_g2_histogram` (runs written before these
    parameters existed: zero delay 0, no crosstalk exclusion, as they were analysed). The
    result says whether the recomputed histogram equals the stored
    ``data/g2/coincidences`` bin for bin and quotes the stored g2(0). A run recorded without
    tags (``record_tags = False``) is re-analysed from its stored histogram.
``import_ptu``
    Two-channel correlation summary of the first two photon channels: coincidence histogram
    (T2: 1 ns bins over +-1 us; T3: 1 ns bins over +-max(12 us, ...)), normalised to the
    accidental level N1 N2 dt / T of two uncorrelated streams of the run's duration T;
    ``g2_zero`` is the normalised rate in the two bins around tau = 0, ``g2_far`` over
    |tau| > max_lag / 2. For T3 files (pulsed, sync period known) also the pulsed g2(0) of
    :func:`hbtscope.analysis.g2_pulsed` when the side peaks hold counts, and per photon
    channel the decay (micro time) histogram with its mean delay
    ``mean_delay_ps = resolution * mean(dtime)`` and its standard error.

The returned dict holds plain scalars (JSON-ready after ``float()``/``int()``) and, under the
key ``"arrays"``, the recomputed histograms as numpy arrays.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import h5py
import numpy as np

from hbtscope.analysis import correlate, poisson_interval
from hbtscope.procedures.g2 import analyse_g2_histogram
from hbtscope.storage import layout as L
from hbtscope.storage.reading import (
    PS_PER_S,
    RunFileError,
    UnsupportedRunError,
    _busiest,
    _channel_map,
    _is_photon_name,
    _spad_channels,
    _text,
    open_run_checked,
    read_tags,
)
from hbtscope.storage.runfile import read_attrs, read_parameters, read_values


def supported_procedures() -> tuple[str, ...]:
    return tuple(_ANALYSERS)


def analyse_run(path: str | os.PathLike) -> dict[str, Any]:
    """Recompute the analysis of the run file ``path`` from its stored raw data.

    Returns a dict with ``file``, ``procedure``, ``uuid``, ``status`` and the procedure's
    results (see the module documentation), histograms under ``"arrays"``.

    Raises
    ------
    RunFileError
        Missing file, not an HDF5 file, not a run file.
    UnsupportedRunError
        No re-analysis for the run's procedure.
    """
    path = pathlib.Path(path)
    with open_run_checked(path) as f:
        procedure = _text(f.attrs[L.ATTR_PROCEDURE])
        analyser = _ANALYSERS.get(procedure)
        if analyser is None:
            raise UnsupportedRunError(
                f"{path}: no re-analysis for procedure {procedure!r} "
                f"(supported: {', '.join(_ANALYSERS)})"
            )
        out: dict[str, Any] = {
            "file": str(path),
            "procedure": procedure,
            "uuid": _text(f.attrs.get(L.ATTR_UUID, "")),
            "status": _text(f.attrs.get(L.ATTR_STATUS, "")),
        }
        params, _ = read_parameters(f)
        try:
            out.update(analyser(f, params))
        except KeyError as exc:
            raise RunFileError(
                f"{path}: incomplete {procedure!r} run file (missing {exc})"
            ) from None
    return out


# ---------------------------------------------------------------------------------- g2


def _analyse_g2(f: h5py.File, params: dict[str, Any]) -> dict[str, Any]:
    ts, ch = read_tags(f)
    bw = int(params["bin_width_ps"])
    ml = int(params["max_lag_ps"])
    period = PS_PER_S / float(params["rep_rate_Hz"])
    out: dict[str, Any] = {"n_tags": int(ts.size)}
    stored = f.get(f"{L.DATA}/g2/coincidences")
    stored_counts = stored[()] if isinstance(stored, h5py.Dataset) else None
    pair = _spad_channels(f, ch) if ts.size else None
    if pair is not None:
        a, b = pair
        lag, counts = correlate(ts[ch == a], ts[ch == b], bw, ml)
        out.update(
            source="tttr",
            channel_a=a,
            channel_b=b,
            counts_a=int(np.count_nonzero(ch == a)),
            counts_b=int(np.count_nonzero(ch == b)),
        )
        if stored_counts is not None:
            out["histogram_matches_stored"] = bool(
                stored_counts.shape == counts.shape and np.array_equal(stored_counts, counts)
            )
    elif stored_counts is not None:
        counts = stored_counts.astype(np.int64)
        lag = f[f"{L.DATA}/g2/lag_ps"][()]
        out["source"] = "stored_histogram"
    else:
        raise RunFileError(f"{f.filename}: g2 run without time tags or a stored histogram")
    out["n_coincidences"] = int(counts.sum())
    arrays = {"lag_ps": lag, "coincidences": counts}
    method = str(params.get("background", "linear"))  # "seed001" (old files) still reads
    cal_group = f.get(L.CALIBRATIONS)
    calibrations = read_values(cal_group) if isinstance(cal_group, h5py.Group) else {}
    if "crosstalk_windows_ps" in calibrations:
        calibrations["crosstalk_windows_ps"] = np.asarray(
            calibrations["crosstalk_windows_ps"], dtype=np.float64
        ).reshape(-1, 2)
    try:
        res, sqrt_res, used = analyse_g2_histogram(
            lag,
            counts,
            period,
            norm_delay_ps=float(params.get("norm_delay_ps", 10_000_000)),
            norm_halfwidth_ps=float(params.get("norm_halfwidth_ps", 2_000_000)),
            background=method,
            zero_delay_ps=float(params.get("zero_delay_ps", 0.0)),  # old runs: 0
            exclude_crosstalk=bool(params.get("exclude_crosstalk", False)),
            calibrations=calibrations,
        )
    except ValueError as exc:
        out["g2_error"] = str(exc)
    else:
        out.update(res.as_dict())
        out.update({k: v for k, v in used.items() if k != "crosstalk_windows_ps"})
        out["g2_0_sqrt"] = sqrt_res.g2_0
        out["g2_0_sqrt_err"] = sqrt_res.g2_0_err
        arrays["peak_delays_ps"] = np.asarray(res.peak_delays_ps)
        arrays["peak_areas_norm"] = np.asarray(res.peak_areas_norm)
        arrays["crosstalk_windows_ps"] = used["crosstalk_windows_ps"]
    stored_an = f.get(f"{L.ANALYSIS}/g2")
    if isinstance(stored_an, h5py.Group):
        vals = read_values(stored_an)
        if "g2_0" in vals:
            out["stored_g2_0"] = float(vals["g2_0"])
            out["stored_g2_0_err"] = float(vals.get("g2_0_err", np.nan))
    out["arrays"] = arrays
    return out


# ---------------------------------------------------------------------------- import_ptu


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
    cmap = _channel_map(f)
    photon_channels = sorted(v for k, v in cmap.items() if _is_photon_name(k))
    if not photon_channels:
        photon_channels = sorted(_busiest(ch, 8))
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
            ml = int(max(12_000_000, 10_000_000 + 1_500_000 + 2 * period))
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
                    norm_delay_ps=10_000_000,
                    norm_halfwidth_ps=1_500_000,
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
        "mean_delay_err_ps": mean_err,
    }
    if isinstance(stored, h5py.Dataset):
        s = stored[()]
        out["decay_matches_stored"] = bool(
            s.shape[0] == hist.shape[0] and np.array_equal(s, hist[:, : s.shape[1]])
        )
    arrays["decay_counts"] = hist
    arrays["decay_time_ps"] = np.arange(n_bins) * res_ps
    return out


_ANALYSERS = {"g2": _analyse_g2, "import_ptu": _analyse_import_ptu}
