"""g2 (HBT antibunching) of the emitter at the focus, pulsed excitation: one measurement.

The procedure records TTTR on the two SPADs of the HBT arm through the time tagger and
correlates the raw tags as they come (:class:`hbtscope.analysis.CorrelationAccumulator`),
publishing tags, histogram and acquisition figures as events. :func:`analyse` reads a run file
alone and computes the pulsed g2 as in Pierini et al. and D'Amato et al.: g2(0) = corrected
centre-peak area / mean corrected side-peak area, side peaks taken near tau ~ 10 µs (blinking
makes the near ones > 1), background from between the peaks. :func:`figure` draws the run
from its file. The run itself, ``hbtscope analyse`` and the run browser call the same two.

``excitation = "cw"`` runs the laser continuous-wave and fits the antibunching dip
1 - C exp(-|tau|/tau0) with the IRF (Baronnier et al. eq. 4; :mod:`hbtscope.procedures._g2_cw`).
``emitter`` with a finite ``power_in_P_sat`` sets the laser to that multiple of the emitter's
P_sat from its saturation sweep in the emitter book (:mod:`hbtscope.procedures.saturation`).

Run file: ``data/g2/lag_ps``, ``data/g2/coincidences`` (the live histogram), ``data/g2``
attributes ``acquired_s``, ``overflow_missed_tags``; ``tttr/`` the tags (``record_tags``);
``analysis/g2`` the result (docs/run-file-layout.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pymeasure.experiment import (
    BooleanParameter,
    FloatParameter,
    IntegerParameter,
    ListParameter,
    Parameter,
)

from hbtscope.analysis import (
    CorrelationAccumulator,
    G2PulsedResult,
    correlate,
    find_crosstalk_peaks,
    find_zero_delay,
    g2_pulsed,
)
from hbtscope.analysis.g2 import NORM_DELAY_PS, NORM_HALFWIDTH_PS
from hbtscope.procedures._tag_stream import PairTotals, acquire_pair
from hbtscope.procedures.base import AbortRequested, AnalysisOutput, HbtProcedure, Measurement
from hbtscope.procedures.saturation import power_at_p_sat
from hbtscope.storage import layout as L
from hbtscope.storage.emitter_book import EmitterBookError, check_name
from hbtscope.storage.reading import (
    RunFileError,
    read_calibrations,
    read_tags,
    spad_channels,
)
from hbtscope.storage.runfile import read_parameters, read_values
from hbtscope.units import PS_PER_S


def analyse_g2_histogram(
    lag_ps: np.ndarray,
    counts: np.ndarray,
    period_ps: float,
    *,
    norm_delay_ps: float,
    norm_halfwidth_ps: float,
    background: str,
    zero_delay_ps: float = math.nan,
    exclude_crosstalk: bool = True,
    calibrations: dict | None = None,
) -> tuple[G2PulsedResult, G2PulsedResult, dict]:
    """The g2 analysis of a run: zero delay, crosstalk windows, then g2_pulsed.

    Zero delay: ``zero_delay_ps`` if finite, else the setup's calibration
    ``hbt_zero_delay_ps``, else found from the side peaks (:func:`find_zero_delay`).
    Crosstalk (``exclude_crosstalk``): the calibration's ``crosstalk_windows_ps``, else the
    narrow excess peaks found in the centre peak (:func:`find_crosstalk_peaks`), excluded
    from every peak. Returns the result with ``background``, the one with the square-root
    correction, and what was used (``zero_delay_ps``, ``zero_delay_ps_err``,
    ``zero_delay_source``, ``crosstalk_windows_ps``, ``crosstalk_source``).
    Raises ValueError when the histogram cannot be analysed at all.
    """
    cal = calibrations or {}
    used: dict = {}
    if math.isfinite(zero_delay_ps):
        z, z_err, source = float(zero_delay_ps), 0.0, "parameter"
    elif cal.get("hbt_zero_delay_ps") is not None:
        z, z_err, source = float(cal["hbt_zero_delay_ps"]), 0.0, "calibration"
    else:
        try:
            found = find_zero_delay(lag_ps, counts, period_ps)
            z, z_err, source = found.zero_delay_ps, found.zero_delay_ps_err, "data"
        except ValueError as exc:  # no side-peak signal: nothing to align on
            z, z_err, source = 0.0, math.nan, f"default (not found: {exc})"
    used.update(zero_delay_ps=z, zero_delay_ps_err=z_err, zero_delay_source=source)
    windows: tuple = ()
    xt_source = "off"
    if exclude_crosstalk:
        if cal.get("crosstalk_windows_ps") is not None:
            windows = tuple(tuple(w) for w in cal["crosstalk_windows_ps"])
            xt_source = "calibration"
        else:
            try:
                windows = find_crosstalk_peaks(lag_ps, counts, period_ps, z).windows_ps
                xt_source = "data"
            except ValueError as exc:
                xt_source = f"not searched: {exc}"
    used.update(
        crosstalk_windows_ps=np.asarray(windows, dtype=np.float64).reshape(-1, 2),
        crosstalk_source=xt_source,
    )
    res, sqrt_res = (
        g2_pulsed(
            lag_ps,
            counts,
            period_ps,
            norm_delay_ps=norm_delay_ps,
            norm_halfwidth_ps=norm_halfwidth_ps,
            background=method,
            zero_delay_ps=z,
            exclude_ps=windows,
        )
        for method in (background, "sqrt")
    )
    return res, sqrt_res, used


class G2Measurement(HbtProcedure):
    """g2 of the emitter at the focus, pulsed (Pierini et al. Fig. 6a) or CW (Baronnier et al.)."""

    NAME = "g2"

    duration_s = FloatParameter(
        "Acquisition time", units="s", minimum=0.01, maximum=86400.0, default=20.0
    )
    laser_power_W = FloatParameter(
        "Laser power", units="W", minimum=0.0, maximum=1e-2, default=24e-9
    )
    rep_rate_Hz = FloatParameter(
        "Repetition rate", units="Hz", minimum=1e5, maximum=1e8, default=5e6
    )
    bin_width_ps = IntegerParameter(
        "Histogram bin width", units="ps", minimum=1, maximum=1_000_000, default=1000
    )
    max_lag_ps = IntegerParameter(
        "Correlation window, max |tau|",
        units="ps",
        minimum=100_000,
        maximum=1_000_000_000,
        default=12_000_000,
    )
    norm_delay_ps = IntegerParameter(
        "Side peaks normalised near tau",
        units="ps",
        minimum=0,
        maximum=1_000_000_000,
        default=NORM_DELAY_PS,
    )
    norm_halfwidth_ps = IntegerParameter(
        "Half-width of the normalisation range",
        units="ps",
        minimum=0,
        maximum=1_000_000_000,
        default=NORM_HALFWIDTH_PS,
    )
    background = ListParameter(
        "Background correction", choices=["linear", "sqrt", "none"], default="linear"
    )
    zero_delay_ps = FloatParameter(
        "Zero delay t_B - t_A (NaN = calibration or from the data)",
        units="ps",
        default=float("nan"),
    )
    exclude_crosstalk = BooleanParameter("Exclude SPAD crosstalk peaks", default=True)
    excitation = ListParameter("Excitation", choices=["pulsed", "cw"], default="pulsed")
    irf_sigma_ps = FloatParameter(
        "CW, coincidence IRF sigma (both SPADs' jitter)",
        units="ps",
        minimum=1.0,
        maximum=100_000.0,
        default=210.0,
    )
    cw_fit_range_ps = IntegerParameter(
        "CW, fit up to |tau - zero delay|",
        units="ps",
        minimum=10_000,
        maximum=1_000_000_000,
        default=200_000,
    )
    readout_s = FloatParameter(
        "Read-out interval", units="s", minimum=0.01, maximum=1.0, default=0.2
    )
    record_tags = BooleanParameter("Store raw tags", default=True)
    x_um = FloatParameter("Stage x (NaN = stay)", units="um", default=float("nan"))
    y_um = FloatParameter("Stage y (NaN = stay)", units="um", default=float("nan"))
    z_um = FloatParameter("Stage z (NaN = stay)", units="um", default=float("nan"))
    emitter = Parameter("Emitter name (emitter book)", default="")
    power_in_P_sat = FloatParameter(
        "Laser power in units of the emitter's P_sat (NaN = laser_power_W)",
        minimum=0.0,
        maximum=1000.0,
        default=float("nan"),
    )

    NAN_MEANS = {
        "x_um": "stay",
        "y_um": "stay",
        "z_um": "stay",
        "zero_delay_ps": "from the calibration or the data",
        "power_in_P_sat": "use laser_power_W",
    }
    #: how the power was resolved from the emitter book (None: laser_power_W as given)
    resolved_power = None
    #: the correlation histogram may hold at most this many bins (8 bytes each: 400 MB)
    MAX_HISTOGRAM_BINS = 50_000_000

    def check_setup(self, setup) -> None:
        reach = self.norm_delay_ps + self.norm_halfwidth_ps + self._period_ps()
        if self.max_lag_ps < reach:
            self.fail(
                "max_lag_ps",
                f"ps must reach beyond the normalisation peaks at {self.norm_delay_ps} ± "
                f"{self.norm_halfwidth_ps} ps plus one period (>= {reach:.0f} ps)",
            )
        n_bins = 2 * self.max_lag_ps // self.bin_width_ps + 1
        if n_bins > self.MAX_HISTOGRAM_BINS:
            self.fail(
                "bin_width_ps",
                f"with max_lag_ps = {self.max_lag_ps} asks for {n_bins:.3g} histogram bins "
                f"({8 * n_bins / 2**30:.1f} GiB); at most {self.MAX_HISTOGRAM_BINS:.3g} allowed",
            )
        self.resolve_power_in_p_sat(setup)
        if self.excitation == "cw":
            self.check_cw(setup)
        self.check_laser(setup, "laser_power_W", "rep_rate_Hz")
        self.check_stage_target(setup, x_um=self.x_um, y_um=self.y_um, z_um=self.z_um)
        setup.tagger  # noqa: B018 - a missing tagger role is reported now, not after moving

    def check_cw(self, setup) -> None:
        """CW needs a laser role that can run continuous-wave, and a fit range inside the
        correlation window (:mod:`hbtscope.procedures._g2_cw`)."""
        cw = getattr(type(setup.laser), "cw", None)
        if not (isinstance(cw, property) and cw.fset is not None):
            self.fail(
                "excitation",
                f"needs a laser that can run CW; {type(setup.laser).__name__} of "
                f"{setup.path} cannot",
            )
        if self.cw_fit_range_ps > self.max_lag_ps:
            self.fail("cw_fit_range_ps", f"ps exceeds max_lag_ps = {self.max_lag_ps} ps")

    def resolve_power_in_p_sat(self, setup) -> None:
        """With a finite ``power_in_P_sat``: ``laser_power_W`` becomes the laser set point that
        puts that multiple of the emitter's P_sat on the sample (its saturation sweep in the
        emitter book, :func:`hbtscope.procedures.saturation.power_at_p_sat`); the run file's
        parameters then hold the resolved set point and ``data/g2`` how it was found."""
        if self.emitter:
            try:
                check_name(str(self.emitter))
            except EmitterBookError as exc:
                self.fail("emitter", str(exc))
        if math.isnan(self.power_in_P_sat):
            return
        if not self.emitter:
            self.fail("power_in_P_sat", "needs an emitter whose P_sat is in the emitter book")
        if self.book is None:
            self.fail("power_in_P_sat", "needs the data directory's emitter book (run_procedure)")
        try:
            resolved = power_at_p_sat(
                self.book, self.emitter, self.power_in_P_sat, self.rep_rate_Hz
            )
        except EmitterBookError as exc:
            self.fail("power_in_P_sat", f"cannot be resolved: {exc}")
        max_W = float(getattr(setup.laser, "max_power_W", math.inf))
        if resolved.set_point_W > max_W:
            self.fail(
                "power_in_P_sat",
                f"x P_sat of {self.emitter} needs a laser set point of "
                f"{resolved.set_point_W:.3g} W, above the setup's max_power_W = {max_W} W",
            )
        self.resolved_power = resolved
        self.laser_power_W = resolved.set_point_W

    def startup(self) -> None:
        self.move_if_given(self.x_um, self.y_um, self.z_um)
        laser = self.setup.laser
        if self.excitation == "cw" or isinstance(getattr(type(laser), "cw", None), property):
            laser.cw = self.excitation == "cw"  # a laser left in CW by an earlier run: pulsed
        laser.rep_rate_Hz = self.rep_rate_Hz
        laser.power_W = self.laser_power_W
        laser.enable()

    def _period_ps(self) -> float:
        return PS_PER_S / self.rep_rate_Hz

    def execute(self) -> None:
        setup = self.setup
        tagger = setup.tagger
        self.publish_tttr_info(1.0, dict(tagger.channels))
        if setup.is_simulated:
            self.publish_truth(setup.truth())
        if self.resolved_power is not None:
            r = self.resolved_power
            self.publish_values(
                "g2",
                {
                    "power_in_P_sat": float(self.power_in_P_sat),
                    "P_sat_W": r.P_sat_W,
                    "P_sat_W_err": r.P_sat_W_err,
                    "power_at_sample_W": r.at_sample_W,
                    "laser_power_exponent": r.laser_power_exponent,
                    "P_sat_run": r.run,
                },
            )
        acc = CorrelationAccumulator(self.bin_width_ps, self.max_lag_ps)
        totals = PairTotals()

        def live(t: PairTotals) -> None:
            self.progress(100.0 * t.elapsed_s / self.duration_s)
            self.emit(
                "results",
                {"elapsed_s": t.elapsed_s, "counts_a": t.counts_a, "counts_b": t.counts_b},
            )

        try:
            acquire_pair(
                self,
                acc,
                self.duration_s,
                totals,
                readout_s=self.readout_s,
                record_tags=self.record_tags,
                on_read=live,
            )
        finally:
            self.acquired_s = totals.elapsed_s
            self.overflow_missed = totals.overflow_missed
            self.aborted = totals.aborted
            self.publish_array("g2/lag_ps", acc.lag_ps, units="ps")
            self.publish_array("g2/coincidences", acc.counts, units="counts")
            self.publish_values(
                "g2",
                {
                    "acquired_s": totals.elapsed_s,
                    "overflow_missed_tags": totals.overflow_missed,
                    "counts_a": totals.counts_a,
                    "counts_b": totals.counts_b,
                },
            )
        if self.aborted:
            raise AbortRequested("stopped by the user")

    def shutdown(self) -> None:
        if self.setup is not None and "laser" in self.setup.instruments:
            self.setup.laser.disable()


# ----------------------------------------------------------------------------- analysis


def _parameter(params: dict[str, Any], name: str, default: Any) -> Any:
    value = params.get(name, default)
    return default if value is None else value


def _analyse_cw(run, params, lag, counts, values) -> AnalysisOutput:
    """The CW branch of :func:`analyse` (:func:`hbtscope.procedures._g2_cw.analyse_cw`)."""
    from hbtscope.procedures._g2_cw import analyse_cw

    try:
        cw_values, errors, summary = analyse_cw(lag, counts, params, read_calibrations(run))
    except ValueError as exc:
        values.update(excitation="cw", error=str(exc))
        summary = {"acquired_s": values.get("acquired_s", 0.0), "g2_0": math.nan}
        summary["g2_0_err"] = math.nan
        return AnalysisOutput("g2", values, {}, summary)
    values.update(cw_values)
    summary = {"acquired_s": values.get("acquired_s", 0.0), **summary}
    for key in ("power_in_P_sat", "power_at_sample_W", "P_sat_W", "P_sat_W_err"):
        if key in values:
            summary[key] = values[key]
    return AnalysisOutput("g2", values, errors, summary)


def analyse(run: h5py.File) -> AnalysisOutput:
    """The g2 analysis of a run file, from the file alone.

    The two SPAD channels (``setup/calibrations/detector_channels`` ``spad_a``/``spad_b``, else
    ``tttr/@channel_map``, else the two busiest channels) are correlated with the stored
    ``bin_width_ps`` and ``max_lag_ps`` (:func:`hbtscope.analysis.correlate`); a run without
    tags (``record_tags = False``) is analysed from its stored histogram. The result says
    whether the histogram from the tags equals the stored live one bin for bin. Then
    :func:`analyse_g2_histogram` with the run's ``rep_rate_Hz``, normalisation band,
    ``background`` (and the square-root correction too), ``zero_delay_ps`` and
    ``exclude_crosstalk`` (runs written before these existed: zero delay 0, no exclusion, as
    they were analysed then). Values that cannot be computed are replaced by ``error``.
    """
    params, _ = read_parameters(run)
    bw = int(params["bin_width_ps"])
    ml = int(params["max_lag_ps"])
    period = PS_PER_S / float(params["rep_rate_Hz"])
    norm_delay = float(_parameter(params, "norm_delay_ps", NORM_DELAY_PS))
    norm_halfwidth = float(_parameter(params, "norm_halfwidth_ps", NORM_HALFWIDTH_PS))
    values: dict[str, Any] = {"norm_delay_ps": norm_delay, "norm_halfwidth_ps": norm_halfwidth}
    group = run.get(f"{L.DATA}/g2")
    stored = group.get("coincidences") if isinstance(group, h5py.Group) else None
    stored_counts = stored[()] if isinstance(stored, h5py.Dataset) else None
    if isinstance(group, h5py.Group):  # acquisition figures recorded by the procedure
        acq = {k: v for k, v in read_values(group).items() if np.ndim(v) == 0}
        values.update(acq)
        acquired = float(acq.get("acquired_s", 0.0))
        for key, name in (("counts_a", "rate_a_cps"), ("counts_b", "rate_b_cps")):
            if key in acq:
                values[name] = float(acq[key]) / acquired if acquired > 0 else 0.0
    ts, ch = read_tags(run)
    values["n_tags"] = int(ts.size)
    pair = spad_channels(run, ch) if ts.size else None
    if pair is not None:
        a, b = pair
        lag, counts = correlate(ts[ch == a], ts[ch == b], bw, ml)
        values.update(source="tttr", channel_a=a, channel_b=b)
        if stored_counts is not None:
            values["histogram_matches_stored"] = bool(
                stored_counts.shape == counts.shape and np.array_equal(stored_counts, counts)
            )
    elif stored_counts is not None:
        counts = stored_counts.astype(np.int64)
        lag = group["lag_ps"][()]
        values["source"] = "stored_histogram"
    else:
        raise RunFileError(f"{run.filename}: g2 run without time tags or a stored histogram")
    values["n_coincidences"] = int(counts.sum())
    errors: dict[str, Any] = {}
    if _parameter(params, "excitation", "pulsed") == "cw":
        return _analyse_cw(run, params, lag, counts, values)
    try:
        res, sqrt_res, used = analyse_g2_histogram(
            lag,
            counts,
            period,
            norm_delay_ps=norm_delay,
            norm_halfwidth_ps=norm_halfwidth,
            background=str(_parameter(params, "background", "linear")),
            zero_delay_ps=float(_parameter(params, "zero_delay_ps", 0.0)),  # old runs: 0
            exclude_crosstalk=bool(_parameter(params, "exclude_crosstalk", False)),
            calibrations=read_calibrations(run),
        )
    except ValueError as exc:  # e.g. a histogram too short for the reference peaks
        values["error"] = str(exc)
        summary = {"acquired_s": values.get("acquired_s", 0.0), "g2_0": math.nan}
        summary["g2_0_err"] = math.nan
        return AnalysisOutput("g2", values, errors, summary)
    values.update(res.as_dict())
    values["g2_0_sqrt"] = sqrt_res.g2_0
    values["g2_0_sqrt_clipped"] = sqrt_res.centre_area_clipped
    errors["g2_0_sqrt"] = sqrt_res.g2_0_err
    values.update(used)
    values["peak_delays_ps"] = np.asarray(res.peak_delays_ps, dtype=np.float64)
    values["peak_areas_norm"] = np.asarray(res.peak_areas_norm, dtype=np.float64)
    summary = {
        "acquired_s": values.get("acquired_s", 0.0),
        "g2_0": res.g2_0,
        "g2_0_err": res.g2_0_err,
        "g2_0_ci": list(res.g2_0_ci),
        "g2_0_upper": res.g2_0_upper,
        "centre_counts": res.centre_counts,
        "reference_counts": res.reference_counts,
        "zero_delay_ps": used["zero_delay_ps"],
        "zero_delay_source": used["zero_delay_source"],
        "crosstalk_windows_ps": used["crosstalk_windows_ps"].tolist(),
    }
    for key in ("power_in_P_sat", "power_at_sample_W", "P_sat_W", "P_sat_W_err"):
        if key in values:  # a run "at k x P_sat" (emitter book)
            summary[key] = values[key]
    return AnalysisOutput("g2", values, errors, summary)


#: what the figure needs from analysis/g2 (older runs lack the band and the peak arrays)
_FIGURE_KEYS = {"g2_0", "period_ps", "peak_delays_ps", "peak_areas_norm", "norm_delay_ps"}


def figure(run: h5py.File, path: Path) -> Path | None:
    """The figure of a g2 run (Pierini et al. Fig. 6a), from its file alone: the histogram
    around zero delay scaled to the reference peaks and every peak's normalised area, with the
    run's own normalisation band. None when the run has no g2 result."""
    from hbtscope.plots import plot_g2_pulsed

    group = run.get(f"{L.ANALYSIS}/g2")
    data = run.get(f"{L.DATA}/g2")
    if not isinstance(data, h5py.Group) or "coincidences" not in data:
        return None
    values = read_values(group) if isinstance(group, h5py.Group) else {}
    if values.get("excitation") == "cw" and "fit_lag_ps" in values:
        from hbtscope.procedures._g2_cw import figure_cw

        acquired = float(values.get("acquired_s", 0.0))
        return figure_cw(values, path, title=f"{Path(run.filename).name} — {acquired:.1f} s, CW")
    if not _FIGURE_KEYS <= set(values):  # a run written before 2026-12-05: analyse it again
        values = dict(analyse(run).values)
    if "g2_0" not in values:
        return None
    acquired = float(values.get("acquired_s", 0.0))
    title = f"{Path(run.filename).name} — {acquired:.1f} s"
    return plot_g2_pulsed(
        data["lag_ps"][()],
        data["coincidences"][()],
        values,
        path,
        title=title,
    )


MEASUREMENT = Measurement("g2", G2Measurement, analyse, figure)
