"""g2 power series: pulsed g2(0) of one emitter at several multiples of its P_sat in one run
(D'Amato et al., Fig. 5a, blue: g2(0) rises below P_sat as biexcitons are excited, and
flattens above).

Why a module of its own rather than a mode of ``g2``: one run holds one correlation
histogram *per power*, its analysis returns arrays (g2(0) with its error and interval per
power, and the rise with power) and its figure is g2(0) versus P/P_sat, while a ``g2`` run
file keeps its one histogram under ``data/g2`` and its scalar ``analysis/g2`` -- readers of g2
runs (the run browser, the survey, plain-h5py scripts) stay as they are. Everything else is
shared: each histogram is analysed by :func:`hbtscope.procedures.g2.analyse_g2_histogram`
(zero delay, crosstalk windows, :func:`hbtscope.analysis.g2_pulsed`: centre-peak area over
the mean side-peak area near tau ~ 10 µs, background corrected), and "k x P_sat" is resolved
by :func:`hbtscope.procedures.saturation.power_at_p_sat` from the emitter's saturation sweep in
the emitter book (P_sat at the sample; the laser set point through the sweep's power law of
the non-linear laser).

Powers are visited in increasing order (at low power first, so the emitter's dose before the
low-power points is least). The acquisition time at factor k is ``duration_s * max(1, 1/k)``
with ``equalise_counts`` (the count rate falls ~ k below P_sat), else ``duration_s``.

Run file: ``data/g2_power/lag_ps`` (n_bins), ``coincidences`` (n_powers, n_bins),
``factor``, ``set_power_W``, ``power_W`` (the power meter's reading at the sample, else the
set point), ``acquired_s``, ``counts_a``, ``counts_b`` (n_powers), rewritten after every power
so a stopped run keeps the powers it finished; with ``record_tags`` the raw tags in ``tttr/``
and ``tag_range_ps`` (n_powers, 2) to split them. ``truth/`` (simulator): the truth at the
first power plus ``series_g2_0``, ``series_g2_0_with_background``, ``series_laser_power_W``,
``series_emitter_rate_cps`` per power. ``analysis/g2_power``: arrays ``factor``,
``power_over_P_sat``, ``g2_0`` (+ ``g2_0_err``), ``g2_0_ci_low``/``_high``, ``g2_0_upper``,
and ``rise`` = g2(0) at the highest minus at the lowest power with its error.
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

from hbtscope.analysis import CorrelationAccumulator
from hbtscope.analysis.g2 import NORM_DELAY_PS, NORM_HALFWIDTH_PS
from hbtscope.procedures._tag_stream import PairTotals, acquire_pair
from hbtscope.procedures.base import AbortRequested, AnalysisOutput, HbtProcedure, Measurement
from hbtscope.procedures.g2 import analyse_g2_histogram
from hbtscope.procedures.live_plots import LivePlot
from hbtscope.procedures.saturation import power_at_p_sat
from hbtscope.storage import layout as L
from hbtscope.storage.emitter_book import EmitterBookError, check_name
from hbtscope.storage.reading import read_calibrations
from hbtscope.storage.runfile import read_parameters, read_values
from hbtscope.units import PS_PER_S

#: D'Amato et al. Fig. 5a
DEFAULT_FACTORS = "0.25, 0.5, 1, 1.5, 2, 3"
MAX_FACTORS = 20


def parse_factors(text: str) -> list[float]:
    """ "0.25, 0.5, 1" -> [0.25, 0.5, 1.0]; ValueError unless 1-20 finite numbers > 0."""
    try:
        factors = [float(t) for t in str(text).replace(";", ",").split(",") if t.strip()]
    except ValueError:
        raise ValueError("must be numbers separated by commas, e.g. '0.25, 0.5, 1'") from None
    if not 1 <= len(factors) <= MAX_FACTORS:
        raise ValueError(f"must list 1 to {MAX_FACTORS} multiples of P_sat")
    if not all(math.isfinite(f) and 0 < f <= 1000 for f in factors):
        raise ValueError("must be finite multiples of P_sat in (0, 1000]")
    return factors


class G2PowerSeries(HbtProcedure):
    """g2(0) at several multiples of P_sat in one run (D'Amato et al. Fig. 5a)."""

    NAME = "g2_power"

    emitter = Parameter("Emitter name (its P_sat from the emitter book)", default="")
    factors = Parameter("Multiples of P_sat", default=DEFAULT_FACTORS)
    P_sat_set_W = FloatParameter(
        "Laser set point at P_sat (NaN = from the emitter book)",
        units="W",
        minimum=1e-12,
        maximum=1e-2,
        default=float("nan"),
    )
    duration_s = FloatParameter(
        "Acquisition time per power", units="s", minimum=0.1, maximum=86400.0, default=10.0
    )
    equalise_counts = BooleanParameter("Longer below P_sat (duration / factor)", default=True)
    rep_rate_Hz = FloatParameter(
        "Repetition rate", units="Hz", minimum=1e5, maximum=1e8, default=5e6
    )
    bin_width_ps = IntegerParameter(
        "Histogram bin width", units="ps", minimum=10, maximum=1_000_000, default=1000
    )
    max_lag_ps = IntegerParameter(
        "Correlation window, max |tau|",
        units="ps",
        minimum=100_000,
        maximum=100_000_000,
        default=12_000_000,
    )
    norm_delay_ps = IntegerParameter(
        "Side peaks normalised near tau",
        units="ps",
        minimum=0,
        maximum=100_000_000,
        default=NORM_DELAY_PS,
    )
    norm_halfwidth_ps = IntegerParameter(
        "Half-width of the normalisation range",
        units="ps",
        minimum=0,
        maximum=100_000_000,
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
    readout_s = FloatParameter(
        "Read-out interval", units="s", minimum=0.01, maximum=1.0, default=0.2
    )
    record_tags = BooleanParameter("Store raw tags", default=False)
    x_um = FloatParameter("Stage x (NaN = stay)", units="um", default=float("nan"))
    y_um = FloatParameter("Stage y (NaN = stay)", units="um", default=float("nan"))
    z_um = FloatParameter("Stage z (NaN = stay)", units="um", default=float("nan"))

    NAN_MEANS = {
        "x_um": "stay",
        "y_um": "stay",
        "z_um": "stay",
        "zero_delay_ps": "from the calibration or the data",
        "P_sat_set_W": "from the emitter book",
    }
    #: what check_setup resolved: factors, set points, durations, P_sat
    plan: dict[str, Any] = {}
    #: the stored histograms may hold at most this many bins in all (8 bytes each)
    MAX_HISTOGRAM_BINS = 20_000_000

    # --- validation ----------------------------------------------------------------------

    def check_setup(self, setup) -> None:
        try:
            factors = sorted(parse_factors(self.factors))
        except ValueError as exc:
            self.fail("factors", str(exc))
        if self.emitter:
            try:
                check_name(str(self.emitter))
            except EmitterBookError as exc:
                self.fail("emitter", str(exc))
        period = PS_PER_S / self.rep_rate_Hz
        reach = self.norm_delay_ps + self.norm_halfwidth_ps + period
        if self.max_lag_ps < reach:
            self.fail(
                "max_lag_ps", f"ps must reach beyond the normalisation peaks (>= {reach:.0f})"
            )
        n_bins = (2 * self.max_lag_ps // self.bin_width_ps + 1) * len(factors)
        if n_bins > self.MAX_HISTOGRAM_BINS:
            self.fail(
                "bin_width_ps",
                f"asks for {n_bins:.3g} histogram bins in all (at most "
                f"{self.MAX_HISTOGRAM_BINS:.3g})",
            )
        set_points, at_sample, p_sat, p_sat_err = self._resolve(factors)
        max_W = float(getattr(setup.laser, "max_power_W", math.inf))
        if max(set_points) > max_W:
            self.fail(
                "factors",
                f"top factor {factors[-1]} x P_sat needs a laser set point of "
                f"{max(set_points):.3g} W, above the setup's max_power_W = {max_W} W",
            )
        if getattr(setup.laser, "rep_rate_range_Hz", None):
            lo, hi = setup.laser.rep_rate_range_Hz
            if not lo <= self.rep_rate_Hz <= hi:
                self.fail("rep_rate_Hz", f"is outside the laser's range [{lo}, {hi}] Hz")
        self.check_stage_target(setup, x_um=self.x_um, y_um=self.y_um, z_um=self.z_um)
        self.plan = {
            "factor": np.array(factors),
            "set_power_W": np.array(set_points),
            "at_sample_W": np.array(at_sample),
            "duration_s": np.array([self._duration(k) for k in factors]),
            "P_sat_W": p_sat,
            "P_sat_W_err": p_sat_err,
        }
        if float(self.plan["duration_s"].sum()) > 86400.0:
            self.fail("duration_s", "makes the series longer than a day")
        setup.tagger  # noqa: B018 - a missing tagger role is reported now, not after moving

    def _resolve(self, factors: list[float]):
        """Set points, powers at the sample, P_sat and its error for ``factors``."""
        if not math.isnan(self.P_sat_set_W):  # given: a linear laser is assumed
            sets = [k * self.P_sat_set_W for k in factors]
            return sets, [math.nan] * len(factors), math.nan, math.nan
        if not self.emitter:
            self.fail("emitter", "is needed (its P_sat from the emitter book) or P_sat_set_W")
        if self.book is None:
            self.fail("emitter", "needs the data directory's emitter book (run_procedure)")
        try:
            resolved = [
                power_at_p_sat(self.book, self.emitter, k, self.rep_rate_Hz) for k in factors
            ]
        except EmitterBookError as exc:
            self.fail("emitter", f"has no usable P_sat: {exc}")
        return (
            [r.set_point_W for r in resolved],
            [r.at_sample_W for r in resolved],
            resolved[0].P_sat_W,
            resolved[0].P_sat_W_err,
        )

    def _duration(self, factor: float) -> float:
        return self.duration_s * (max(1.0, 1.0 / factor) if self.equalise_counts else 1.0)

    # --- acquisition ---------------------------------------------------------------------

    def startup(self) -> None:
        self.move_if_given(self.x_um, self.y_um, self.z_um)
        laser = self.setup.laser
        laser.rep_rate_Hz = self.rep_rate_Hz
        laser.power_W = float(self.plan["set_power_W"][0])
        laser.enable()

    def _acquire(self, duration_s: float, acc: CorrelationAccumulator, done_s: float) -> dict:
        """One TTTR acquisition into ``acc`` (as the g2 procedure does); its figures."""
        total = float(self.plan["duration_s"].sum())
        t = acquire_pair(
            self,
            acc,
            duration_s,
            PairTotals(),
            readout_s=self.readout_s,
            record_tags=self.record_tags,
            on_read=lambda t: self.progress(100.0 * (done_s + t.elapsed_s) / total),
        )
        out = {
            "counts_a": t.counts_a,
            "counts_b": t.counts_b,
            "overflow": t.overflow_missed,
            "elapsed": t.elapsed_s,
            "first": t.first_ps,
            "last": t.last_ps,
        }
        if t.aborted:
            out["aborted"] = True
        return out

    def execute(self) -> None:
        setup = self.setup
        plan = self.plan
        self.publish_tttr_info(1.0, dict(setup.tagger.channels))
        n = plan["factor"].size
        meter = setup.powermeter if "powermeter" in setup.instruments else None
        rows: list[np.ndarray] = []
        lag = None
        figures: dict[str, list] = {k: [] for k in ("power", "acq", "a", "b", "range")}
        truth: dict[str, list] = {k: [] for k in ("g2", "g2bg", "power", "rate")}
        self.publish_values(
            "g2_power",
            {
                "P_sat_W": plan["P_sat_W"],
                "P_sat_W_err": plan["P_sat_W_err"],
                "emitter": str(self.emitter),
            },
        )
        done_s = 0.0
        for i in range(n):
            self.check_stop()
            setup.laser.power_W = float(plan["set_power_W"][i])
            figures["power"].append(
                float(meter.read_power_W()) if meter is not None else float(plan["set_power_W"][i])
            )
            if setup.is_simulated:
                t = setup.truth()
                if i == 0:
                    self.publish_truth(t)
                truth["g2"].append(float(t.get("g2_0", math.nan)))
                truth["g2bg"].append(float(t.get("g2_0_with_background", math.nan)))
                truth["power"].append(float(t.get("laser_power_W", math.nan)))
                truth["rate"].append(float(t.get("emitter_rate_cps", 0.0)))
            acc = CorrelationAccumulator(self.bin_width_ps, self.max_lag_ps)
            got = self._acquire(float(plan["duration_s"][i]), acc, done_s)
            done_s += float(plan["duration_s"][i])
            lag = acc.lag_ps
            rows.append(acc.counts)
            figures["acq"].append(got["elapsed"])
            figures["a"].append(got["counts_a"])
            figures["b"].append(got["counts_b"])
            figures["range"].append((got["first"], got["last"]))
            self._publish_series(i + 1, lag, rows, figures, truth)
            row = {"factor": float(plan["factor"][i]), **got, **self._live_g2(lag, acc.counts)}
            p_sat = float(plan["P_sat_W"])  # as the analysis: else the nominal factor
            ok = math.isfinite(p_sat) and p_sat > 0
            row["power_over_P_sat"] = figures["power"][-1] / p_sat if ok else row["factor"]
            self.emit("results", row)
            if got.get("aborted"):
                raise AbortRequested("stopped by the user")

    def _publish_series(self, k: int, lag, rows, figures, truth) -> None:
        plan = self.plan
        g = "g2_power/"
        self.publish_array(g + "lag_ps", lag, units="ps")
        self.publish_array(g + "coincidences", np.vstack(rows), units="counts")
        self.publish_array(g + "factor", plan["factor"][:k])
        self.publish_array(g + "set_power_W", plan["set_power_W"][:k], units="W")
        self.publish_array(g + "power_W", np.array(figures["power"]), units="W")
        self.publish_array(g + "acquired_s", np.array(figures["acq"]), units="s")
        self.publish_array(g + "counts_a", np.array(figures["a"], np.int64), units="counts")
        self.publish_array(g + "counts_b", np.array(figures["b"], np.int64), units="counts")
        self.publish_array(g + "tag_range_ps", np.array(figures["range"], np.int64), units="ps")
        if truth["g2"]:
            self.publish_truth(
                {
                    "series_g2_0": np.array(truth["g2"]),
                    "series_g2_0_with_background": np.array(truth["g2bg"]),
                    "series_laser_power_W": np.array(truth["power"]),
                    "series_emitter_rate_cps": np.array(truth["rate"]),
                }
            )

    def _live_g2(self, lag: np.ndarray, counts: np.ndarray) -> dict[str, float]:
        """The step's g2(0) ± err for the live view, as the analysis will compute it."""
        params = {name: getattr(self, name) for name in self._parameters}
        try:
            res, _ = _step_g2(
                lag, counts, PS_PER_S / float(self.rep_rate_Hz), params, self.setup.calibrations()
            )
        except ValueError:
            return {"g2_0": math.nan, "g2_0_err": math.nan}
        return {"g2_0": float(res.g2_0), "g2_0_err": float(res.g2_0_err)}

    def shutdown(self) -> None:
        if self.setup is not None and "laser" in self.setup.instruments:
            self.setup.laser.disable()


# ----------------------------------------------------------------------------- analysis


def _param(params: dict[str, Any], name: str, default: Any) -> Any:
    value = params.get(name, default)
    return default if value is None else value


def _step_g2(
    lag: np.ndarray, counts: np.ndarray, period_ps: float, params: dict[str, Any], cal: dict
) -> tuple[Any, dict[str, Any]]:
    """g2(0) of one power step's histogram with the run's settings (the analysis and the
    live view use this one function)."""
    res, _, used = analyse_g2_histogram(
        lag,
        counts,
        period_ps,
        norm_delay_ps=float(_param(params, "norm_delay_ps", NORM_DELAY_PS)),
        norm_halfwidth_ps=float(_param(params, "norm_halfwidth_ps", NORM_HALFWIDTH_PS)),
        background=str(_param(params, "background", "linear")),
        zero_delay_ps=float(_param(params, "zero_delay_ps", math.nan)),
        exclude_crosstalk=bool(_param(params, "exclude_crosstalk", True)),
        calibrations=cal,
    )
    return res, used


def analyse(run: h5py.File) -> AnalysisOutput:
    """g2(0) per power from the stored histograms (:func:`analyse_g2_histogram` with the
    run's settings), and its rise from the lowest to the highest power (module doc)."""
    params, _ = read_parameters(run)
    group = run.get(f"{L.DATA}/g2_power")
    if not isinstance(group, h5py.Group) or "coincidences" not in group:
        return AnalysisOutput("g2_power", {"error": "no histogram recorded"}, {}, {"n_powers": 0})
    lag = group["lag_ps"][()]
    hist = group["coincidences"][()]
    factor = group["factor"][()]
    power = group["power_W"][()]
    n = min(hist.shape[0], factor.size, power.size)
    info = read_values(group)
    p_sat = float(info.get("P_sat_W", math.nan))
    period = PS_PER_S / float(params["rep_rate_Hz"])
    cal = read_calibrations(run)
    g2_0, err, lo, hi, upper = (np.full(n, np.nan) for _ in range(5))
    zero = np.full(n, np.nan)
    problems = []
    for i in range(n):
        try:
            res, used = _step_g2(lag, hist[i], period, params, cal)
        except ValueError as exc:
            problems.append(f"factor {factor[i]}: {exc}")
            continue
        g2_0[i], err[i], upper[i] = res.g2_0, res.g2_0_err, res.g2_0_upper
        lo[i], hi[i] = res.g2_0_ci
        zero[i] = used["zero_delay_ps"]
    ratio = power[:n] / p_sat if math.isfinite(p_sat) and p_sat > 0 else factor[:n].astype(float)
    values: dict[str, Any] = {
        "factor": factor[:n].astype(float),
        "power_W": power[:n].astype(float),
        "power_over_P_sat": ratio,
        "power_axis": "power meter / P_sat" if math.isfinite(p_sat) else "nominal factor",
        "P_sat_W": p_sat,
        "g2_0": g2_0,
        "g2_0_ci_low": lo,
        "g2_0_ci_high": hi,
        "g2_0_upper": upper,
        "zero_delay_ps": zero,
        "n_powers": int(n),
    }
    errors: dict[str, Any] = {"g2_0": err}
    ok = np.isfinite(g2_0)
    if problems:
        values["error"] = "; ".join(problems)
    if ok.sum() >= 2:
        i0, i1 = np.flatnonzero(ok)[[0, -1]]
        values["rise"] = float(g2_0[i1] - g2_0[i0])
        errors["rise"] = float(math.hypot(err[i0], err[i1]))
    else:
        values["rise"] = math.nan
        errors["rise"] = math.nan
    summary = {
        "factor": values["factor"].tolist(),
        "power_over_P_sat": ratio.tolist(),
        "g2_0": g2_0.tolist(),
        "g2_0_err": err.tolist(),
        "rise": values["rise"],
        "rise_err": errors["rise"],
        "P_sat_W": p_sat,
    }
    return AnalysisOutput("g2_power", values, errors, summary)


def figure(run: h5py.File, path: Path) -> Path | None:
    """g2(0) versus P/P_sat (D'Amato et al. Fig. 5a) with 1-sigma error bars and 68 %
    intervals; right: the centre and first side peaks of each power, normalised to the
    reference side peaks' mean maximum, coloured by power. From the run file alone."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    group = run.get(f"{L.ANALYSIS}/g2_power")
    values = read_values(group) if isinstance(group, h5py.Group) else {}
    if "g2_0" not in values:
        values = {**analyse(run).values}
        values["g2_0_err"] = analyse(run).errors.get("g2_0")
    if not values.get("n_powers"):
        return None
    x = np.asarray(values["power_over_P_sat"], float)
    g = np.asarray(values["g2_0"], float)
    e = np.asarray(values["g2_0_err"], float)
    lo = np.asarray(values["g2_0_ci_low"], float)
    hi = np.asarray(values["g2_0_ci_high"], float)
    fig = Figure(figsize=(10, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.vlines(x, lo, hi, color="tab:blue", alpha=0.3, lw=6, label="68 % interval")
    ax1.errorbar(x, g, e, fmt="o", color="tab:blue", ms=5, capsize=3, label="g²(0) ± 1σ")
    ax1.axhline(0.5, color="tab:red", lw=0.8, ls=":")
    ax1.axvline(1.0, color="0.6", lw=0.8, ls="--")
    ax1.set_xlabel(f"P / P_sat ({values.get('power_axis', '')})")
    ax1.set_ylabel("g²(0)")
    top = np.concatenate([hi[np.isfinite(hi)], (g + e)[np.isfinite(g + e)]])
    ax1.set_ylim(0, max(0.6, 1.15 * float(top.max())) if top.size else 1.0)
    if math.isfinite(float(values.get("rise", math.nan))):
        ax1.text(
            0.03,
            0.97,
            f"rise {float(values['rise']):+.3f} ± {float(values.get('rise_err', math.nan)):.3f}",
            transform=ax1.transAxes,
            va="top",
        )
    ax1.legend(loc="lower right", fontsize=8)
    data = run.get(f"{L.DATA}/g2_power")
    params, _ = read_parameters(run)
    period = PS_PER_S / float(params["rep_rate_Hz"])
    if isinstance(data, h5py.Group) and "coincidences" in data:
        lag = data["lag_ps"][()]
        hist = data["coincidences"][()]
        zero = np.asarray(values.get("zero_delay_ps", np.zeros(hist.shape[0])), float)
        cmap = colormaps["viridis"]
        bw = float(lag[1] - lag[0]) if lag.size > 1 else period
        factor_bins = max(1, int(period / 40 // bw))  # ~period/40 per displayed bin
        m = lag.size // factor_bins * factor_bins
        lag_r = lag[:m].reshape(-1, factor_bins).mean(axis=1)
        for i in range(min(hist.shape[0], x.size)):
            h = hist[i][:m].reshape(-1, factor_bins).sum(axis=1)
            z = zero[i] if math.isfinite(zero[i]) else 0.0
            sel = np.abs(lag_r - z) <= 1.5 * period
            side = np.abs(np.abs(lag_r - z) - period) < period / 2
            scale = max(float(h[side].max()) if side.any() else 1.0, 1.0)
            ax2.plot(
                (lag_r[sel] - z) * 1e-3,
                h[sel] / scale,
                lw=0.8,
                color=cmap(i / max(1, x.size - 1)),
                label=f"{x[i]:.2g} P_sat",
            )
        ax2.set_ylim(0, 1.4)
        ax2.text(
            0.02,
            0.97,
            "SPAD crosstalk spikes are excluded from g²(0)",
            transform=ax2.transAxes,
            va="top",
            fontsize=7,
        )
        ax2.set_xlabel("delay τ − zero delay (ns)")
        ax2.set_ylabel("coincidences / side-peak maximum")
        ax2.legend(fontsize=7, loc="upper right")
    fig.suptitle(Path(run.filename).name, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


LIVE_PLOTS = (
    LivePlot(
        "g2 histogram per power (one row each)",
        y="g2_power/coincidences",
        x="g2_power/lag_ps",
        x_label="delay [ps]",
        y_label="power step",
    ),
    LivePlot(
        "g2(0) of each power step as it ends",
        y="rows:g2_0",
        x="rows:power_over_P_sat",
        x_label="P / P_sat",
        y_label="g2(0)",
        line=False,
    ),
    LivePlot(
        "g2(0) against power (68 % interval, at the end)",
        y="",
        x_label="P / P_sat",
        y_label="g2(0)",
        fit_points=("power_over_P_sat", "g2_0"),
        band=("g2_0_ci_low", "g2_0_ci_high"),
    ),
)

MEASUREMENT = Measurement("g2_power", G2PowerSeries, analyse, figure, live_plots=LIVE_PLOTS)
