"""TTTR trace of the emitter at the focus: blinking, lifetimes, FLID and long-delay g2.

One long time-tagged record (minutes) of the two SPADs of the HBT arm and of the laser sync,
kept every ``sync_divider`` pulses (the tagger's event divider: a 5 MHz sync would outnumber
the photons 100 to 1). The tags are published in chunks as they come (as ``g2``).
:func:`analyse` reads the run file alone and gives, as in Pierini et al. 2020 (Fig. 5) and
D'Amato et al. 2023 (Fig. 4):

- the intensity trace in bins of ``bin_width_s`` (10 ms: D'Amato et al.; 50 ms: Pierini et
  al.) and its histogram;
- the ON fraction, bins above the midpoint of a fitted two-level model, with the 68 %
  interval of a two-state Markov chain fitted to the ON/OFF sequence
  (:func:`hbtscope.analysis.on_fraction`);
- change points and intensity levels on the individual photons (Watkins & Yang 2005,
  :func:`hbtscope.analysis.change_points`, :func:`hbtscope.analysis.cluster_levels`);
- decays: total (tri-exponential: substrate, grey, bright) and of the bright and grey
  intensity windows (bi-exponential: the substrate's sub-ns light and the state's lifetime),
  Poisson maximum likelihood with a Gaussian IRF of ``irf_fwhm_ps`` and the periodic wrap
  (:func:`hbtscope.analysis.fit_decay`); the delay of a photon after its pulse is
  ``(t - s_j) mod T_j`` from the divided sync (:mod:`hbtscope.analysis.divided_sync`);
- FLID: 2-D KDE of (intensity, mean arrival time) per bin with 50 % and 68 % contours
  (:func:`hbtscope.analysis.flid`);
- g2 from 10 ns to 1 s on log bins, the blinking bunching (:func:`g2_long_delays`).

Run file: ``tttr/`` the tags (sync, SPAD A, SPAD B), ``data/tttr_trace`` attributes
``acquired_s``, ``counts_a``, ``counts_b``, ``syncs``, ``sync_divider``,
``overflow_missed_tags``; ``analysis/tttr_trace`` the results (docs/measurements/tttr_trace.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pymeasure.experiment import FloatParameter, IntegerParameter, ListParameter, Parameter

from hbtscope.analysis import (
    change_points,
    cluster_levels,
    fit_decay,
    flid,
    g2_long_delays,
    intensity_histogram,
    intensity_trace,
    mean_arrival_time_per_bin,
    on_fraction,
    photons_in_windows,
    two_level_fit,
)
from hbtscope.analysis.divided_sync import (
    align_delays,
    delays_from_divided_sync,
    rising_edge_ps,
    sync_period_ps,
)
from hbtscope.analysis.live_decay import DecayAccumulator
from hbtscope.procedures.base import AbortRequested, AnalysisOutput, HbtProcedure, Measurement
from hbtscope.procedures.live_plots import LivePlot
from hbtscope.storage import layout as L
from hbtscope.storage.reading import RunFileError, channel_map, read_tags, spad_channels
from hbtscope.storage.runfile import read_parameters, read_values
from hbtscope.units import PS_PER_S

#: Gaussian FWHM / sigma
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: change points are searched on at most this many photons (Watkins & Yang's recursion is
#: O(N log N) but its constant is large): the first ones of the record
MAX_CPA_PHOTONS = 3_000_000


class TTTRTrace(HbtProcedure):
    """Long TTTR record: blinking trace, ON fraction, lifetimes, FLID, g2 to 1 s (Pierini et al.
    Fig. 5, D'Amato et al. Fig. 4)."""

    NAME = "tttr_trace"

    duration_s = FloatParameter(
        "Record length", units="s", minimum=1.0, maximum=36_000.0, default=300.0
    )
    laser_power_W = FloatParameter(
        "Laser power", units="W", minimum=0.0, maximum=1e-2, default=24e-9
    )
    rep_rate_Hz = FloatParameter(
        "Repetition rate", units="Hz", minimum=1e5, maximum=1e8, default=5e6
    )
    sync_divider = IntegerParameter(
        "Keep every N-th laser sync", minimum=1, maximum=65_535, default=1000
    )
    bin_width_s = FloatParameter(
        "Intensity trace bin", units="s", minimum=1e-4, maximum=10.0, default=0.01
    )
    decay_bin_ps = IntegerParameter(
        "TCSPC histogram bin", units="ps", minimum=4, maximum=10_000, default=128
    )
    irf_fwhm_ps = FloatParameter(
        "IRF FWHM (Gaussian)", units="ps", minimum=1.0, maximum=10_000.0, default=350.0
    )
    fit_start_ns = FloatParameter(
        "Decay fit starts after the rising edge",
        units="ns",
        minimum=0.0,
        maximum=100.0,
        default=3.0,
    )
    window_sigma = FloatParameter(
        "Intensity window half-width (level sd)", minimum=0.1, maximum=5.0, default=0.5
    )
    cpa_alpha = ListParameter(
        "Change-point type-I error", choices=[0.31, 0.1, 0.05, 0.01], default=0.05
    )
    readout_s = FloatParameter(
        "Read-out interval", units="s", minimum=0.01, maximum=1.0, default=0.2
    )
    max_rate_cps = FloatParameter(
        "Highest expected count rate (memory budget)",
        units="cps",
        minimum=1e3,
        maximum=1e8,
        default=2e5,
    )
    emitter = Parameter("Emitter name (remembered in the emitter book)", default="")
    x_um = FloatParameter("Stage x (NaN = stay)", units="um", default=float("nan"))
    y_um = FloatParameter("Stage y (NaN = stay)", units="um", default=float("nan"))
    z_um = FloatParameter("Stage z (NaN = stay)", units="um", default=float("nan"))

    NAN_MEANS = {"x_um": "stay", "y_um": "stay", "z_um": "stay"}
    #: the analysis holds every photon in memory (~60 bytes each with its delays and masks):
    #: a record ends early when it reaches this many tags (6 GB of analysis)
    MAX_TAGS = 100_000_000

    def check_setup(self, setup) -> None:
        self.check_laser(setup, "laser_power_W", "rep_rate_Hz")
        self.check_stage_target(setup, x_um=self.x_um, y_um=self.y_um, z_um=self.z_um)
        tagger = setup.tagger  # a missing tagger role is reported now, not after moving
        if tagger.sync_channel is None:
            self.fail("sync_divider", f"needs a 'sync' channel in {setup.path} (calibrations)")
        n_bins = self.duration_s / self.bin_width_s
        if n_bins < 20:
            self.fail("bin_width_s", f"gives {n_bins:.0f} trace bins; at least 20 are needed")
        if self.decay_bin_ps * 8 > PS_PER_S / self.rep_rate_Hz:
            self.fail("decay_bin_ps", "is too wide: at least 8 bins per laser period")
        tags = self.duration_s * (self.max_rate_cps + self.rep_rate_Hz / self.sync_divider)
        if tags > self.MAX_TAGS:
            self.fail(
                "duration_s",
                f"may give {tags:.3g} tags (at max_rate_cps = {self.max_rate_cps:.3g} and the "
                f"divided sync): at most {self.MAX_TAGS:.3g} fit the analysis; shorten the "
                "record, lower max_rate_cps if the emitter is dimmer, or raise sync_divider",
            )

    def startup(self) -> None:
        self.move_if_given(self.x_um, self.y_um, self.z_um)
        tagger = self.setup.tagger
        self._old_divider = tagger.device.getEventDivider(tagger.sync_channel)
        tagger.device.setEventDivider(tagger.sync_channel, self.sync_divider)
        laser = self.setup.laser
        laser.rep_rate_Hz = self.rep_rate_Hz
        laser.power_W = self.laser_power_W
        laser.enable()

    def execute(self) -> None:
        self._live_axis_sent = False
        setup = self.setup
        tagger = setup.tagger
        ch_a, ch_b = tagger.spad_channels
        sync = tagger.sync_channel
        self.publish_tttr_info(1.0, dict(tagger.channels))
        if setup.is_simulated:
            self.publish_truth(setup.truth())
        n_max = 4_000_000
        stream = tagger.api.TimeTagStream(tagger.device, n_max, [sync, ch_a, ch_b])
        stream.startFor(int(round(self.duration_s * PS_PER_S)))
        counts = {"counts_a": 0, "counts_b": 0, "syncs": 0}
        live_decay = DecayAccumulator(int(self.sync_divider))  # the live view's, SPAD A
        missed = 0
        elapsed = 0.0
        aborted = False
        stopped_early = ""
        try:
            while True:
                wait = min(self.readout_s, max(self.duration_s - elapsed, 0.0)) or self.readout_s
                setup.clock.sleep(wait)
                running = stream.isRunning()
                buf = stream.getData()
                if buf.size >= n_max:
                    raise RuntimeError(
                        "time tag stream buffer overflowed: count rate too high for the "
                        f"read-out interval {self.readout_s} s"
                    )
                real = buf.getEventTypes() == tagger.api.TagType.TimeTag
                if not np.all(real):
                    missed += int(buf.getMissedEvents().sum())
                ts = buf.getTimestamps()[real]
                ch = buf.getChannels()[real]
                if ts.size:
                    self.publish_tags(ts, ch)
                for key, c in (("counts_a", ch_a), ("counts_b", ch_b), ("syncs", sync)):
                    counts[key] += int(np.count_nonzero(ch == c))
                dt = (buf.tGetData - buf.tStart) / PS_PER_S
                elapsed += dt
                self.progress(100.0 * elapsed / self.duration_s)
                # the intensity trace of the live view: both SPADs over this read-out
                n = int(np.count_nonzero((ch == ch_a) | (ch == ch_b)))
                rate = n / dt if dt > 0 else 0.0
                # the live decay and FLID: SPAD A's delays after the pulse, this read-out's
                # mean arrival time against its rate (the analysis redoes both from the tags)
                mean_ns = live_decay.add(ts[ch == ch_a], ts[ch == sync])
                if live_decay.counts.size:
                    # a copy: the accumulator goes on adding while displays hold this one
                    self.publish_array(LIVE_DECAY, live_decay.counts.copy(), "counts")
                    if not self._live_axis_sent:
                        self.publish_array(LIVE_DECAY_AXIS, live_decay.delay_ns, "ns")
                        self._live_axis_sent = True
                row = {"elapsed_s": elapsed, **counts, "rate_cps": rate, "mean_delay_ns": mean_ns}
                self.emit("results", row)
                if not running:
                    break
                if sum(counts.values()) >= self.MAX_TAGS:  # brighter than max_rate_cps said
                    stream.stop()
                    stopped_early = f"tag budget of {self.MAX_TAGS:.3g} reached"
                    break
                self.check_stop()
        except AbortRequested:
            aborted = True
            stream.stop()
        finally:
            self.publish_values(
                "tttr_trace",
                {
                    "acquired_s": elapsed,
                    "sync_divider": int(self.sync_divider),
                    "overflow_missed_tags": missed,
                    "stopped_early": stopped_early,
                    **counts,
                },
            )
            if setup.is_simulated:  # the truth at the end too: dose, blue-shift, bleaching
                self.publish_values("tttr_trace/truth_end", _flat_truth(setup.truth()))
        if aborted:
            raise AbortRequested("stopped by the user")

    def shutdown(self) -> None:
        if self.setup is None:
            return
        if "laser" in self.setup.instruments:
            self.setup.laser.disable()
        old = getattr(self, "_old_divider", None)
        if old is not None and "tagger" in self.setup.instruments:
            tagger = self.setup.tagger
            tagger.device.setEventDivider(tagger.sync_channel, int(old))


def _flat_truth(truth: dict) -> dict:
    """Scalars and numeric lists of a truth dict (what an attribute can hold)."""
    out = {}
    for k, v in truth.items():
        if isinstance(v, bool | int | float | str):
            out[k] = v
        elif isinstance(v, list) and all(isinstance(x, int | float) for x in v):
            out[k] = np.asarray(v, dtype=np.float64)
    return out


# ----------------------------------------------------------------------------- analysis


def _param(params: dict[str, Any], name: str, default: Any) -> Any:
    value = params.get(name, default)
    return default if value is None else value


def _photons_and_delays(run: h5py.File, divider: int) -> dict[str, Any]:
    """Photon times, their channels, their aligned delays after the pulse and the period."""
    ts, ch = read_tags(run)
    if ts.size == 0:
        raise RunFileError(f"{run.filename}: TTTR trace without time tags")
    pair = spad_channels(run, ch)
    if pair is None:
        raise RunFileError(f"{run.filename}: no two SPAD channels among the tags")
    sync_ch = channel_map(run).get("sync")
    a, b = pair
    photon = (ch == a) | (ch == b)
    ph, pch = ts[photon], ch[photon]
    sync = ts[ch == sync_ch] if sync_ch is not None else ts[:0]
    out: dict[str, Any] = {"t": ph, "ch": pch, "a": a, "b": b, "sync": sync}
    if sync.size >= 2:
        period = sync_period_ps(sync, divider)
        raw = delays_from_divided_sync(ph, sync, divider)
        delay, shifts = align_delays(raw, pch, period, reference=a)
        out.update(period_ps=period, delay=delay, shifts=shifts)
    return out


def _level_sd(mean: float, phi: float) -> float:
    """Standard deviation of a negative-binomial level (variance mu + phi mu^2)."""
    return math.sqrt(max(mean + phi * mean * mean, 1e-12))


def _fit_window(
    delay: np.ndarray,
    bin_ps: int,
    period: float,
    sigma: float,
    n_exp: int,
    edge_ps: float,
    start_ps: float,
) -> tuple[Any, np.ndarray]:
    """Decay histogram of ``delay`` and its Poisson maximum-likelihood fit from ``start_ps``
    on (the tail: a Gaussian IRF of ``sigma``, a flat background, the periodic wrap)."""
    n_bins = int(period // bin_ps)
    d = delay[delay >= 0]
    hist, _ = np.histogram(d, bins=n_bins, range=(0.0, n_bins * bin_ps))
    first = min(int(math.ceil(start_ps / bin_ps)), n_bins - 8)
    fit = fit_decay(
        hist,
        bin_ps,
        n_exp=n_exp,
        irf=(edge_ps + FWHM_PER_SIGMA / 2 * sigma, sigma),  # centre: half maximum + HWHM
        background=True,
        period_ps=period,
        fit_range=(first, n_bins),
    )
    return fit, hist


def _segment_windows(t: np.ndarray, cp: Any, two: Any, bw_ps: float) -> dict[str, np.ndarray]:
    """Photon masks of the bright and grey change-point segments: a segment is bright when
    its rate is above the trace's ON threshold, grey when below it but above half the lower
    level (darker segments are OFF: background only). Segment edges are photon-exact, so a
    window mixes states only through switches the change-point test missed."""
    thr = two.threshold / (bw_ps / PS_PER_S)
    low = 0.5 * two.means[0] / (bw_ps / PS_PER_S)
    rate = np.asarray(cp.seg_rate_cps)
    n_cpa = int(cp.n_photons)
    first = np.concatenate([[0], np.asarray(cp.photon_index, dtype=np.int64)])
    seg = np.searchsorted(first, np.arange(t.size), side="right") - 1
    inside = np.arange(t.size) < n_cpa
    seg = np.clip(seg, 0, rate.size - 1)
    rate = np.nan_to_num(rate, nan=0.0)
    return {
        "bright": inside & (rate[seg] > thr),
        "grey": inside & (rate[seg] <= thr) & (rate[seg] > low),
    }


def _decays(
    photons: dict, starts: np.ndarray, counts: np.ndarray, two: Any, params: dict, cp: Any
) -> tuple[dict, dict, dict]:
    """Total decay (bi-exponential: grey and bright) and the bright and grey windows
    (mono-exponential), fitted on the tail from ``fit_start_ns`` after the rising edge: the
    substrate's sub-ns light and the multi-exciton cascade (the exciton waits for the
    biexciton, a ~1 ns rise) are over by then. Windows: bins within ``window_sigma`` level
    standard deviations of the two-level fit's ON (bright) and OFF (grey) levels (D'Amato et
    al. Fig. 4b); the longest lifetime of each window is its state's lifetime."""
    values: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    if "delay" not in photons:
        values["decay_error"] = "no sync tags: no decays"
        return values, errors, arrays
    bin_ps = int(_param(params, "decay_bin_ps", 128))
    sigma = float(_param(params, "irf_fwhm_ps", 350.0)) / FWHM_PER_SIGMA
    k = float(_param(params, "window_sigma", 0.5))
    bw = float(params["bin_width_s"]) * PS_PER_S
    period, delay, t = photons["period_ps"], photons["delay"], photons["t"]
    edge = rising_edge_ps(delay, period)
    start_ps = edge + float(_param(params, "fit_start_ns", 3.0)) * 1e3
    (m_lo, m_hi), (p_lo, p_hi) = two.means, two.phi
    sd_lo, sd_hi = _level_sd(m_lo, p_lo), _level_sd(m_hi, p_hi)
    windows = {
        "total": (np.ones(counts.size, bool), 2),
        "bright": (counts >= m_hi - k * sd_hi, 1),
        "grey": ((counts >= m_lo - k * sd_lo) & (counts <= m_lo + k * sd_lo), 1),
    }
    masks: dict[str, Any] = {"total": slice(None)}
    if cp is not None and two.n_levels == 2:
        masks.update(_segment_windows(t, cp, two, bw))
        values["windows_from"] = "change-point segments"
    else:
        for name in ("bright", "grey"):
            masks[name] = photons_in_windows(t, starts, windows[name][0], bw)
        values["windows_from"] = "trace bins"
    if two.n_levels < 2:  # one level: no windows
        windows = {"total": windows["total"]}
        values["window_error"] = "one intensity level: no bright/grey windows"
    for name, (sel, n_exp) in windows.items():
        mask = masks[name]
        n_in = t.size if isinstance(mask, slice) else int(np.count_nonzero(mask))
        values[f"{name}_n_photons"] = int(n_in)
        try:
            fit, hist = _fit_window(delay[mask], bin_ps, period, sigma, n_exp, edge, start_ps)
        except ValueError as exc:
            values[f"{name}_decay_error"] = str(exc)
            continue
        tau, tau_err = float(fit.taus_ps[-1]), float(fit.taus_ps_err[-1])
        values[f"tau_{name}_ns"] = tau / 1e3
        errors[f"tau_{name}_ns"] = tau_err / 1e3
        values[f"{name}_taus_ns"] = np.asarray(fit.taus_ps) / 1e3
        errors[f"{name}_taus_ns"] = np.asarray(fit.taus_ps_err) / 1e3
        values[f"{name}_fractions"] = np.asarray(fit.fractions)
        values[f"{name}_converged"] = bool(fit.converged)
        values[f"{name}_identifiable"] = bool(fit.identifiable)
        values[f"{name}_chi2_red"] = float(fit.chi2_red)
        values[f"{name}_n_bins_window"] = int(np.count_nonzero(sel))
        values[f"{name}_fit_message"] = str(fit.message)
        arrays[f"decay_{name}"] = hist
        arrays[f"decay_{name}_model"] = np.asarray(fit.model, dtype=np.float64)
    values["decay_bin_ps"] = bin_ps
    values["rising_edge_ps"] = edge
    values["fit_start_ps"] = start_ps
    values["period_ps"] = period
    values["detector_shift_ps"] = np.asarray(
        [photons["shifts"].get(c, 0.0) for c in (photons["a"], photons["b"])]
    )
    return values, errors, arrays


def _flid(photons: dict, starts, counts, t0: float, t1: float, params: dict) -> dict:
    """FLID: KDE of (intensity cps, mean arrival time ns) per trace bin, 50/68 % contours."""
    if "delay" not in photons:
        return {}
    bw = float(params["bin_width_s"]) * PS_PER_S
    d, t = photons["delay"], photons["t"]
    ok = d >= 0
    edge = rising_edge_ps(d[ok], photons["period_ps"])
    _, c, mean = mean_arrival_time_per_bin(t[ok], d[ok], bw, t0, t1, t0_ps=edge)
    res = flid(c / (bw / PS_PER_S), mean / 1e3)
    return {
        "flid_x_edges": res.x_edges,
        "flid_y_edges": res.y_edges,
        "flid_density": res.density,
        "flid_levels": np.asarray([res.levels[p] for p in (0.5, 0.68)]),
        "flid_mean_delay_ns": mean / 1e3,
    }


def _change_points(t: np.ndarray, alpha: float) -> tuple[dict, dict, Any]:
    """Watkins & Yang change points and intensity levels on the first MAX_CPA_PHOTONS."""
    tt = t[:MAX_CPA_PHOTONS]
    cp = change_points(tt, alpha)
    lv = cluster_levels(cp)
    values = {
        "n_change_points": int(len(cp.times_ps)),
        "cpa_photons": int(tt.size),
        "cpa_truncated": bool(t.size > tt.size),
        "n_levels": int(lv.n_states),
        "level_rates_cps": np.asarray(lv.rates_cps),
        "level_time_fraction": np.asarray(lv.time_fraction),
        "cp_seg_start_ps": np.asarray(cp.seg_start_ps, dtype=np.float64),
        "cp_seg_stop_ps": np.asarray(cp.seg_stop_ps, dtype=np.float64),
        "cp_seg_rate_cps": np.asarray(cp.seg_rate_cps),
    }
    return values, {"level_rates_cps": np.asarray(lv.rates_cps_err)}, cp


def _g2_long(photons: dict, duration_ps: float) -> tuple[dict, dict]:
    """g2 from 10 ns to 1 s on log bins between the two SPADs (blinking bunching)."""
    t, ch = photons["t"], photons["ch"]
    res = g2_long_delays(t[ch == photons["a"]], t[ch == photons["b"]], duration_ps)
    values = {
        "g2_long_tau_ps": np.asarray(res.tau_ps),
        "g2_long_g2": np.asarray(res.g2),
        "g2_short": float(res.g2_short),
        "g2_long": float(res.g2_long),
        "g2_tau_blink_ns": float(res.tau_blink_ps) / 1e3,
        "g2_fit_converged": bool(res.fit_converged),
        "g2_C_blink": float(res.C_blink),
    }
    errors = {
        "g2_long_g2": np.asarray(res.g2_err),
        "g2_short": float(res.g2_short_err),
        "g2_long": float(res.g2_long_err),
        "g2_tau_blink_ns": float(res.tau_blink_ps_err) / 1e3,
        "g2_C_blink": float(res.C_blink_err),
    }
    return values, errors


def analyse(run: h5py.File) -> AnalysisOutput:
    """The TTTR-trace analysis of a run file, from the file alone (module doc)."""
    params, _ = read_parameters(run)
    acq = {}
    group = run.get(f"{L.DATA}/tttr_trace")
    if isinstance(group, h5py.Group):
        acq = {k: v for k, v in read_values(group).items() if np.ndim(v) == 0}
    divider = int(acq.get("sync_divider", _param(params, "sync_divider", 1)))
    photons = _photons_and_delays(run, divider)
    t = photons["t"]
    acquired = float(acq.get("acquired_s", (t[-1] - t[0]) / PS_PER_S))
    t_start = int(photons["sync"][0]) if photons["sync"].size else int(t[0])
    t_start = min(t_start, int(t[0]))
    t_stop = max(int(t[-1]) + 1, t_start + int(acquired * PS_PER_S))
    bw = float(params["bin_width_s"]) * PS_PER_S
    starts, counts = intensity_trace(t, bw, t_start, t_stop)
    values: dict[str, Any] = {**acq, "n_photons": int(t.size), "bin_width_s": bw / PS_PER_S}
    errors: dict[str, Any] = {}
    values["trace_start_ps"] = starts.astype(np.float64)
    values["trace_counts"] = counts
    edges, occ = intensity_histogram(counts)
    values["histogram_edges"], values["histogram_counts"] = edges, occ
    values["mean_rate_cps"] = float(counts.mean() / (bw / PS_PER_S))
    errors["mean_rate_cps"] = float(math.sqrt(counts.sum()) / (counts.size * bw / PS_PER_S))
    drift, drift_err = _drift(counts)
    values["intensity_drift"], errors["intensity_drift"] = drift, drift_err
    if abs(drift) > max(3 * drift_err, 0.1):
        values["warning"] = (
            f"the intensity changes by {100 * drift:+.0f} % over the record (focus drift, "
            "bleaching or brightening?): ON fraction and intensity windows may show the drift "
            "rather than blinking; refocus first"
        )
    two = two_level_fit(counts)
    on = on_fraction(counts, threshold=two.threshold)
    values.update(
        on_fraction=on.fraction,
        on_fraction_ci=np.asarray(on.fraction_ci),
        on_threshold=on.threshold,
        n_levels_trace=int(two.n_levels),
        level_means=np.asarray(two.means),
        level_phi=np.asarray(two.phi),
    )
    errors["on_fraction"] = on.fraction_err
    cp = None
    try:
        cv, ce, cp = _change_points(t, float(_param(params, "cpa_alpha", 0.05)))
        values.update(cv)
        errors.update(ce)
    except ValueError as exc:
        values["cpa_error"] = str(exc)
    dv, de, arrays = _decays(photons, starts, counts, two, params, cp)
    values.update(dv)
    errors.update(de)
    values.update(arrays)
    values.update(_flid(photons, starts, counts, t_start, t_stop, params))
    try:
        gv, ge = _g2_long(photons, float(t_stop - t_start))
        values.update(gv)
        errors.update(ge)
    except ValueError as exc:
        values["g2_long_error"] = str(exc)
    summary = {**_summary(values, errors), **_truth_summary(run)}
    return AnalysisOutput("tttr_trace", values, errors, summary)


def _drift(counts: np.ndarray) -> tuple[float, float]:
    """Relative change of the intensity from the first to the last fifth of the record:
    (mean of the last 4 of 20 blocks - mean of the first 4) / overall mean, with the error
    from the scatter of the 20 block means (blinking included, if faster than a block)."""
    n = counts.size // 20
    if n < 1:
        return math.nan, math.nan
    blocks = counts[: 20 * n].reshape(20, n).mean(axis=1)
    mean = float(blocks.mean())
    if mean <= 0:
        return math.nan, math.nan
    change = (blocks[-4:].mean() - blocks[:4].mean()) / mean
    err = math.sqrt(2.0 * blocks.var(ddof=1) / 4.0) / mean
    return float(change), float(err)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list | np.ndarray) and len(value) else value


def _truth_summary(run: h5py.File) -> dict[str, Any]:
    """On the simulator, the truth of the summary's numbers (``truth/`` of the run file): the
    bright state's share of time (``truth_fraction_bright``: what the ON fraction estimates
    when the OFF and grey periods last longer than a trace bin; blinking faster than a bin is
    averaged into ON bins, so the ON fraction of bins is then higher), the bright and grey
    lifetimes."""
    group = run.get(L.TRUTH)
    truth = read_values(group) if isinstance(group, h5py.Group) else {}
    keys = {
        "truth_fraction_bright": "fraction_bright",
        "truth_tau_bright_ns": "tau_bright_ns",
        "truth_tau_grey_ns": "tau_grey_ns",
        "truth_emitter_rate_cps": "emitter_rate_cps",
    }
    return {out: float(_first(truth[k])) for out, k in keys.items() if k in truth}


def _summary(values: dict, errors: dict) -> dict:
    """The numbers the command line prints, each with its error."""
    out: dict[str, Any] = {"acquired_s": values.get("acquired_s", math.nan)}
    for key in (
        "mean_rate_cps",
        "on_fraction",
        "tau_total_ns",
        "tau_bright_ns",
        "tau_grey_ns",
        "g2_short",
        "g2_long",
        "intensity_drift",
    ):
        if key in values:
            out[key] = float(values[key])
            out[f"{key}_err"] = float(errors.get(key, math.nan))
    for key in ("n_change_points", "n_levels", "bright_converged", "grey_converged", "warning"):
        if key in values:
            out[key] = values[key]
    return out


# ----------------------------------------------------------------------------- figure


def figure(run: h5py.File, path: Path) -> Path | None:
    """The figure of a TTTR trace (Pierini et al. Fig. 5, D'Amato et al. Fig. 4): trace with its
    histogram and the change-point levels, decays (total, bright, grey) with their fits, FLID
    with the 50/68 % contours, g2 from 10 ns to 1 s. From the run file alone."""
    group = run.get(f"{L.ANALYSIS}/tttr_trace")
    values = read_values(group) if isinstance(group, h5py.Group) else {}
    if "trace_counts" not in values:
        try:
            values = dict(analyse(run).values)
        except (RunFileError, ValueError):
            return None
    title = f"{Path(run.filename).name} — {float(values.get('acquired_s', 0.0)):.0f} s"
    return plot_tttr_trace(values, path, title=title)


def _panel_trace(fig, gs, v: dict) -> None:
    """Trace (kcps vs s) with the change-point levels, and its histogram on the side."""
    ax = fig.add_subplot(gs[0, :3])
    bw = float(v["bin_width_s"])
    counts = np.asarray(v["trace_counts"], dtype=np.float64)
    t = np.arange(counts.size) * bw
    ax.plot(t, counts / bw / 1e3, lw=0.4, color="tab:blue")
    if "cp_seg_start_ps" in v and len(v["trace_start_ps"]):
        t0 = float(v["trace_start_ps"][0])
        segs = zip(v["cp_seg_start_ps"], v["cp_seg_stop_ps"], v["cp_seg_rate_cps"], strict=True)
        for a, b, r in segs:
            ax.plot([(a - t0) / PS_PER_S, (b - t0) / PS_PER_S], [r / 1e3] * 2, color="k", lw=0.8)
    ax.set_ylim(0, 1.3 * max(counts.max(), 1.0) / bw / 1e3)  # short segments: rates off scale
    thr = float(v.get("on_threshold", math.nan))
    if math.isfinite(thr):
        ax.axhline(thr / bw / 1e3, color="tab:red", ls="--", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"counts / {bw * 1e3:.0f} ms (kcps)")
    on, on_err = v.get("on_fraction", math.nan), v.get("on_fraction_err", math.nan)
    ax.set_title(f"ON fraction {on:.3f} ± {on_err:.3f}", fontsize=9)
    ah = fig.add_subplot(gs[0, 3], sharey=ax)
    edges = np.asarray(v["histogram_edges"], dtype=np.float64)
    ah.barh(
        (edges[:-1] + edges[1:]) / 2 / bw / 1e3,
        v["histogram_counts"],
        height=np.diff(edges) / bw / 1e3,
        color="tab:blue",
    )
    ah.set_xlabel("occurrences")
    ah.tick_params(labelleft=False)


def _panel_decays(ax, v: dict) -> None:
    """Decays of the total record and of the bright and grey windows with their fits."""
    bin_ps = float(v.get("decay_bin_ps", 128))
    for name, color in (("total", "0.4"), ("bright", "tab:orange"), ("grey", "tab:purple")):
        if f"decay_{name}" not in v:
            continue
        h = np.asarray(v[f"decay_{name}"], dtype=np.float64)
        x = np.arange(h.size) * bin_ps / 1e3
        tau = v.get(f"tau_{name}_ns", math.nan)
        err = v.get(f"tau_{name}_ns_err", math.nan)
        norm = max(h.max(), 1.0)
        ax.semilogy(
            x, h / norm, ".", ms=1.5, color=color, label=f"{name}: {tau:.2f} ± {err:.2f} ns"
        )
        model = v.get(f"decay_{name}_model")
        if model is not None and len(model) == h.size:
            ax.semilogy(x, np.asarray(model) / norm, "-", lw=0.8, color=color)
    ax.set_xlim(0, min(100.0, float(v.get("period_ps", 2e5)) / 1e3))
    ax.set_ylim(1e-4, 1.5)
    ax.set_xlabel("delay after the pulse (ns)")
    ax.set_ylabel("normalised counts")
    ax.legend(fontsize=7)


def _panel_flid(ax, v: dict) -> None:
    """FLID: density of (intensity, mean arrival time) with the 50 % and 68 % contours."""
    if "flid_density" not in v:
        ax.set_axis_off()
        return
    xe, ye = np.asarray(v["flid_x_edges"]), np.asarray(v["flid_y_edges"])
    dens = np.asarray(v["flid_density"])
    ax.pcolormesh(xe / 1e3, ye, dens.T, cmap="viridis", shading="flat")
    xc, yc = (xe[:-1] + xe[1:]) / 2 / 1e3, (ye[:-1] + ye[1:]) / 2
    levels = np.sort(np.asarray(v["flid_levels"], dtype=np.float64))
    if levels.size and np.all(np.diff(levels) > 0):
        ax.contour(xc, yc, dens.T, levels=levels, colors=["w", "r"][: levels.size], linewidths=0.8)
    ax.set_xlabel("intensity (kcps)")
    ax.set_ylabel("mean arrival time (ns)")
    ax.set_title("FLID, 68 % (white) and 50 % (red)", fontsize=9)


def _panel_g2(ax, v: dict) -> None:
    """g2 from 10 ns to 1 s on log bins (blinking bunching)."""
    if "g2_long_tau_ps" not in v:
        ax.set_axis_off()
        return
    tau = np.asarray(v["g2_long_tau_ps"], dtype=np.float64) / PS_PER_S
    g = np.asarray(v["g2_long_g2"], dtype=np.float64)
    err = np.asarray(v.get("g2_long_g2_err", np.zeros_like(g)), dtype=np.float64)
    ax.errorbar(tau, g, yerr=err, fmt=".", ms=3, lw=0.6)
    ax.axhline(1.0, color="0.5", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("delay τ (s)")
    ax.set_ylabel("g2(τ)")
    ax.set_title(f"g2 < 10 µs: {v.get('g2_short', math.nan):.3f}", fontsize=9)


def plot_tttr_trace(values: dict, path: Path, *, title: str = "") -> Path:
    """Four panels as Pierini et al. Fig. 5 and D'Amato et al. Fig. 4: trace + histogram,
    decays, FLID, log-delay g2."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 8), layout="constrained")
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 4, height_ratios=[1, 1.2])
    _panel_trace(fig, gs, values)
    _panel_decays(fig.add_subplot(gs[1, 0:2]), values)
    _panel_flid(fig.add_subplot(gs[1, 2]), values)
    _panel_g2(fig.add_subplot(gs[1, 3]), values)
    if title:
        fig.suptitle(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


#: SPAD A's decay as the record goes (``data/`` of the run file too: the live view's; the
#: analysis recomputes the decays from the tags)
LIVE_DECAY = "tttr_trace/live_decay_a"
LIVE_DECAY_AXIS = "tttr_trace/live_decay_a_ns"

LIVE_PLOTS = (
    LivePlot(
        "intensity trace (both SPADs, per read-out)",
        y="rows:rate_cps",
        x="rows:elapsed_s",
        x_label="time [s]",
        y_label="rate [counts/s]",
    ),
    LivePlot(
        "intensity histogram",
        y="rows:rate_cps",
        x_label="rate [counts/s]",
        y_label="read-outs",
        histogram=True,
    ),
    LivePlot(
        "decay (SPAD A, so far)",
        y=LIVE_DECAY,
        x=LIVE_DECAY_AXIS,
        x_label="delay after the sync [ns]",
        y_label="photons",
        log_y=True,
        points=False,
    ),
    LivePlot(
        "FLID (per read-out)",
        y="rows:mean_delay_ns",
        x="rows:rate_cps",
        x_label="rate [counts/s]",
        y_label="mean arrival time [ns]",
        line=False,
    ),
)

MEASUREMENT = Measurement("tttr_trace", TTTRTrace, analyse, figure, live_plots=LIVE_PLOTS)
