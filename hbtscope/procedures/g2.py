"""g2 (HBT antibunching) of the emitter at the focus, pulsed excitation.

Records TTTR on the two SPADs of the HBT arm through the time tagger, correlates the raw tags
(:class:`hbtscope.analysis.CorrelationAccumulator`), and analyses the pulsed g2 as in Pierini et al.
and 001: g2(0) = corrected centre-peak area / mean corrected side-peak area, side peaks taken
near tau ~ 10 µs (blinking makes the near ones > 1), background from between the peaks.
"""

from __future__ import annotations

import math

import numpy as np
from pymeasure.experiment import (
    BooleanParameter,
    FloatParameter,
    IntegerParameter,
    ListParameter,
)

from hbtscope.analysis import (
    CorrelationAccumulator,
    G2PulsedResult,
    find_crosstalk_peaks,
    find_zero_delay,
    g2_pulsed,
)
from hbtscope.procedures.base import AbortRequested, HbtProcedure

PS_PER_S = 1_000_000_000_000


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
    correction, and what was used (``zero_delay_ps``, ``zero_delay_err_ps``,
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
            z, z_err, source = found.zero_delay_ps, found.zero_delay_err_ps, "data"
        except ValueError as exc:  # no side-peak signal: nothing to align on
            z, z_err, source = 0.0, math.nan, f"default (not found: {exc})"
    used.update(zero_delay_ps=z, zero_delay_err_ps=z_err, zero_delay_source=source)
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
    """Pulsed g2 of the emitter at the focus (Pierini et al. Fig. 6a, D'Amato et al. Fig. 3c)."""

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
        default=10_000_000,
    )
    norm_halfwidth_ps = IntegerParameter(
        "Half-width of the normalisation range",
        units="ps",
        minimum=0,
        maximum=1_000_000_000,
        default=1_500_000,
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
    readout_s = FloatParameter(
        "Read-out interval", units="s", minimum=0.01, maximum=1.0, default=0.2
    )
    record_tags = BooleanParameter("Store raw tags", default=True)
    x_um = FloatParameter("Stage x (NaN = stay)", units="um", default=float("nan"))
    y_um = FloatParameter("Stage y (NaN = stay)", units="um", default=float("nan"))
    z_um = FloatParameter("Stage z (NaN = stay)", units="um", default=float("nan"))

    def startup(self) -> None:
        if self.max_lag_ps < self.norm_delay_ps + self.norm_halfwidth_ps + self._period_ps():
            raise ValueError(
                f"max_lag_ps = {self.max_lag_ps} ps must reach beyond the normalisation peaks at "
                f"{self.norm_delay_ps} ± {self.norm_halfwidth_ps} ps plus one period"
            )
        self.move_if_given(self.x_um, self.y_um, self.z_um)
        laser = self.setup.laser
        laser.rep_rate_Hz = self.rep_rate_Hz
        laser.power_W = self.laser_power_W
        laser.enable()

    def _period_ps(self) -> float:
        return PS_PER_S / self.rep_rate_Hz

    def execute(self) -> None:
        setup, writer = self.setup, self.writer
        tagger = setup.tagger
        ch_a, ch_b = tagger.spad_channels
        clock = setup.clock
        writer.set_tttr_info(resolution_ps=1.0, channel_map=dict(tagger.channels))
        if setup.is_simulated:
            writer.write_truth(setup.truth())
        acc = CorrelationAccumulator(self.bin_width_ps, self.max_lag_ps)
        n_max = 4_000_000
        stream = tagger.api.TimeTagStream(tagger.device, n_max, [ch_a, ch_b])
        duration_ps = int(round(self.duration_s * PS_PER_S))
        stream.startFor(duration_ps)
        n_tags = np.zeros(2, np.int64)
        self.overflow_missed = 0
        elapsed = 0.0
        self.aborted = False
        try:
            while True:
                wait = min(self.readout_s, max(self.duration_s - elapsed, 0.0)) or self.readout_s
                clock.sleep(wait)
                running = stream.isRunning()
                buf = stream.getData()
                if buf.size >= n_max:
                    raise RuntimeError(
                        "time tag stream buffer overflowed: count rate too high for the "
                        f"read-out interval {self.readout_s} s"
                    )
                real = buf.getEventTypes() == tagger.api.TagType.TimeTag
                if not np.all(real):  # overflow events: keep photons only, note the loss
                    self.overflow_missed += int(buf.getMissedEvents().sum())
                ts = buf.getTimestamps()[real]
                ch = buf.getChannels()[real]
                if self.record_tags and ts.size:
                    writer.append_tags(ts, ch)
                a, b = ts[ch == ch_a], ts[ch == ch_b]
                n_tags += (a.size, b.size)
                acc.add(a, b)
                elapsed = (buf.tGetData - buf.tStart) / PS_PER_S + elapsed
                self.progress(100.0 * elapsed / self.duration_s)
                self.emit(
                    "results",
                    {"elapsed_s": elapsed, "counts_a": int(n_tags[0]), "counts_b": int(n_tags[1])},
                )
                if not running:
                    break
                self.check_stop()
        except AbortRequested:
            self.aborted = True
            stream.stop()
        finally:
            self.acquired_s = elapsed
            self._analyse(acc, n_tags, elapsed)
        if self.aborted:
            raise AbortRequested("stopped by the user")

    def _analyse(self, acc: CorrelationAccumulator, n_tags: np.ndarray, elapsed_s: float) -> None:
        writer = self.writer
        lag, counts = acc.lag_ps, acc.counts
        self.result_lag_ps, self.result_counts = lag, counts
        writer.write_array("g2/lag_ps", lag, units="ps")
        writer.write_array("g2/coincidences", counts, units="counts")
        rates = n_tags / elapsed_s if elapsed_s > 0 else np.zeros(2)
        self.result = None
        values = {
            "acquired_s": elapsed_s,
            "overflow_missed_tags": getattr(self, "overflow_missed", 0),
            "rate_a_cps": float(rates[0]),
            "rate_b_cps": float(rates[1]),
        }
        try:
            res, seed, used = analyse_g2_histogram(
                lag,
                counts,
                self._period_ps(),
                norm_delay_ps=self.norm_delay_ps,
                norm_halfwidth_ps=self.norm_halfwidth_ps,
                background=self.background,
                zero_delay_ps=self.zero_delay_ps,
                exclude_crosstalk=self.exclude_crosstalk,
                calibrations=self.setup.calibrations(),
            )
        except ValueError as exc:  # e.g. a histogram too short for the reference peaks
            writer.write_analysis("g2", {**values, "error": str(exc)})
            return
        self.result = res
        self.used = used
        values.update(res.as_dict())
        values["g2_0_sqrt"] = seed.g2_0
        values["g2_0_sqrt_clipped"] = seed.centre_area_clipped
        values.update({k: v for k, v in used.items() if k != "crosstalk_windows_ps"})
        writer.write_analysis(
            "g2",
            values,
            errors={"g2_0_sqrt": seed.g2_0_err},
        )
        writer.write_array("g2/crosstalk_windows_ps", used["crosstalk_windows_ps"], units="ps")
        writer.write_array("g2/peak_delays_ps", res.peak_delays_ps, units="ps")
        writer.write_array("g2/peak_areas_norm", res.peak_areas_norm)

    def shutdown(self) -> None:
        if self.setup is not None and "laser" in self.setup.instruments:
            self.setup.laser.disable()

    def summary(self) -> dict:
        """Plain numbers for the CLI's --json."""
        out = {"acquired_s": getattr(self, "acquired_s", 0.0)}
        if getattr(self, "result", None) is not None:
            out["g2_0"] = self.result.g2_0
            out["g2_0_err"] = self.result.g2_0_err
            out["g2_0_ci"] = list(self.result.g2_0_ci)
            out["g2_0_upper"] = self.result.g2_0_upper
            out["centre_counts"] = self.result.centre_counts
            out["reference_counts"] = self.result.reference_counts
            out["zero_delay_ps"] = self.used["zero_delay_ps"]
            out["zero_delay_source"] = self.used["zero_delay_source"]
            out["crosstalk_windows_ps"] = self.used["crosstalk_windows_ps"].tolist()
        else:
            out["g2_0"] = math.nan
            out["g2_0_err"] = math.nan
        return out
