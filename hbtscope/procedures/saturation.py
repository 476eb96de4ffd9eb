"""Saturation sweep of the emitter at the focus: count rate versus excitation power.

Pierini et al. and D'Amato et al. (eq. 1) measure the emitter's count rate at
log-spaced laser powers, take several acquisitions per power and keep the brightest (an
acquisition caught in an OFF or grey period of the blinking is lower, never higher), subtract
the background measured off the emitter, and fit::

    C(P) = A (1 - exp(-P / P_sat)) + B P

``A`` is the saturating single-exciton rate, ``B`` the linear term (higher rungs of the
multi-exciton ladder), ``P_sat`` the power at saturation (mean one exciton per pulse at the
peak of the focus); ``I_sat = P_sat / spot_area`` (setup calibration ``spot_area_um2``,
pi w^2 / 2 for the peak of a Gaussian spot), the seeds' unit W/µm^2.

**Power axis.** The laser's emitted power is not its set point (a diode laser's output is not
linear in the set point; the simulator's default laser emits P_ref (P_set/P_ref)^1.08). The
saturation law holds in the power that reaches the sample, so when the setup has a
``powermeter`` role the power is read at every point and the fit is in *measured* power at
the sample: ``P_sat_W`` is a power at the sample (comparable across days and lasers). For
later runs "at k P_sat" the sweep also calibrates the laser on its own points, a power law
P_meas = c P_set^gamma (least squares in log-log), and reports the set point that gives
P_sat, ``P_sat_set_W`` = (P_sat / c)^(1/gamma), and ``laser_power_exponent`` gamma: the set
point for k P_sat is ``P_sat_set_W * k**(1/gamma)``. Without a power meter (or with
``measure_power = False``) the axis is the set point, gamma = 1, and ``power_axis`` says so.

**Order of the sweep.** All emitter points first (up, and with ``up_and_down`` back down,
which shows bleaching or photobrightening as a down/up ratio != 1), then the stage moves
``background_offset_um`` along x off the emitter and the background (substrate light + dark
counts) is measured at every power of the up sweep; the stage returns to the emitter at the
end. Measuring the background last moves the open-loop piezo off the emitter only once,
after the emitter's points (its hysteresis would otherwise leave the focus beside the emitter
for the rest of the sweep).

**Background subtraction.** Rate of acquisition j at power i: ``(N_ij - N_bg,i t/t_bg)/t``,
error ``sqrt(N_ij + N_bg,i (t/t_bg)^2) / t`` (Poisson, both counts). The background is common
to the repeats of one power; it is a small fraction of the counts of a bright emitter.

Run file (``data/saturation``): ``set_power_W`` (n_points), ``power_W`` (measured, or the set
point), ``counts`` (n_points, repeats) total of both SPADs, ``counts_a``, ``counts_b``,
``direction`` (+1 up, -1 down), ``background_set_power_W``, ``background_power_W``,
``background_counts`` (n_powers), attributes ``acquisition_s``, ``background_s``,
``power_axis``; written after every point, so an aborted or killed sweep keeps its points.
``truth/`` on the simulator: the truth at the first point plus ``sweep_laser_power_W``,
``sweep_emitter_rate_cps`` (bright state), ``sweep_emitter_rate_avg_cps`` per point.
``analysis/saturation``: A, P_sat_W, B, I_sat_W_um2, P_sat_set_W with ``_err``, chi2_red,
gof_p_value, converged, identifiable, at_bound, message, the fitted points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pymeasure.experiment import BooleanParameter, FloatParameter, IntegerParameter, Parameter

from hbtscope.analysis import saturation_fit, saturation_model
from hbtscope.procedures.base import AnalysisOutput, HbtProcedure, Measurement
from hbtscope.procedures.live_plots import LivePlot
from hbtscope.storage import layout as L
from hbtscope.storage.emitter_book import EmitterBookError, check_name
from hbtscope.storage.reading import read_calibrations
from hbtscope.storage.runfile import read_parameters, read_values
from hbtscope.units import PS_PER_S

#: the background spot must be this far from the emitter (several focus radii)
MIN_BACKGROUND_OFFSET_UM = 1.0


def sweep_powers(power_min_W: float, power_max_W: float, n: int, up_and_down: bool) -> tuple:
    """(set powers, direction) of the emitter points: ``n`` log-spaced powers up and, with
    ``up_and_down``, the same powers back down without repeating the top one."""
    up = np.geomspace(power_min_W, power_max_W, n)
    if not up_and_down:
        return up, np.ones(n, np.int8)
    down = up[-2::-1]
    return np.concatenate([up, down]), np.concatenate(
        [np.ones(n, np.int8), -np.ones(down.size, np.int8)]
    )


class SaturationSweep(HbtProcedure):
    """Saturation sweep: count rate vs power, fit A(1-exp(-P/P_sat)) + B P (D'Amato et al.)."""

    NAME = "saturation"

    power_min_W = FloatParameter(
        "Lowest laser set point", units="W", minimum=1e-12, maximum=1e-2, default=2e-9
    )
    power_max_W = FloatParameter(
        "Highest laser set point", units="W", minimum=1e-12, maximum=1e-2, default=1.5e-7
    )
    n_powers = IntegerParameter("Number of powers", minimum=4, maximum=200, default=12)
    repeats = IntegerParameter(
        "Acquisitions per power (the brightest is kept)", minimum=1, maximum=50, default=3
    )
    acquisition_s = FloatParameter(
        "Counting time per acquisition", units="s", minimum=0.01, maximum=3600.0, default=1.0
    )
    background_s = FloatParameter(
        "Counting time of the background per power",
        units="s",
        minimum=0.01,
        maximum=3600.0,
        default=1.0,
    )
    background_offset_um = FloatParameter(
        "Background spot, offset along x from the emitter",
        units="um",
        minimum=-100.0,
        maximum=100.0,
        default=2.0,
    )
    up_and_down = BooleanParameter("Sweep back down (bleaching / hysteresis)", default=False)
    measure_power = BooleanParameter("Read the power meter at every point", default=True)
    blinking_robust = BooleanParameter(
        "Drop acquisitions caught in a blinking dip (robust fit)", default=True
    )
    rep_rate_Hz = FloatParameter(
        "Repetition rate", units="Hz", minimum=1e5, maximum=1e8, default=5e6
    )
    emitter = Parameter("Emitter name (remember P_sat in the emitter book)", default="")
    x_um = FloatParameter("Stage x (NaN = stay)", units="um", default=float("nan"))
    y_um = FloatParameter("Stage y (NaN = stay)", units="um", default=float("nan"))
    z_um = FloatParameter("Stage z (NaN = stay)", units="um", default=float("nan"))

    NAN_MEANS = {"x_um": "stay", "y_um": "stay", "z_um": "stay"}

    # --- validation ----------------------------------------------------------------------

    def check_setup(self, setup) -> None:
        if not self.power_min_W < self.power_max_W:
            self.fail("power_max_W", f"must exceed power_min_W = {self.power_min_W} W")
        if self.power_max_W / self.power_min_W < 10.0:
            self.fail("power_max_W", "must be at least 10 x power_min_W to show saturation")
        self.check_laser(setup, "power_max_W", "rep_rate_Hz")
        if abs(self.background_offset_um) < MIN_BACKGROUND_OFFSET_UM:
            self.fail(
                "background_offset_um",
                f"um is too close to the emitter (|offset| >= {MIN_BACKGROUND_OFFSET_UM} um)",
            )
        self.check_stage_target(setup, x_um=self.x_um, y_um=self.y_um, z_um=self.z_um)
        start_x = self.x_um if not math.isnan(self.x_um) else setup.stage.position_um[0]
        bg_x = start_x + self.background_offset_um
        travel = getattr(setup.stage, "travel_um", {}).get("x", (-math.inf, math.inf))
        if not travel[0] <= bg_x <= travel[1]:
            self.fail(
                "background_offset_um",
                f"puts the background spot at x = {bg_x} um, outside the stage travel "
                f"{list(travel)} um",
            )
        if self.emitter:
            try:
                check_name(str(self.emitter))
            except EmitterBookError as exc:
                self.fail("emitter", str(exc))
        total_s = self._n_points() * self.repeats * self.acquisition_s
        total_s += self.n_powers * self.background_s
        if total_s > 86400.0:
            self.fail("acquisition_s", f"makes the sweep {total_s:.0f} s long (at most 1 day)")
        setup.tagger  # noqa: B018 - a missing tagger role is reported now, not after moving

    def _n_points(self) -> int:
        return self.n_powers * (2 if self.up_and_down else 1) - (1 if self.up_and_down else 0)

    # --- acquisition ---------------------------------------------------------------------

    def startup(self) -> None:
        self.move_if_given(self.x_um, self.y_um, self.z_um)
        laser = self.setup.laser
        laser.rep_rate_Hz = self.rep_rate_Hz
        laser.power_W = self.power_min_W
        laser.enable()

    def _power_meter(self):
        if self.measure_power and "powermeter" in self.setup.instruments:
            return self.setup.powermeter
        return None

    def _count(self, counter, seconds: float) -> tuple[int, int]:
        counter.startFor(int(round(seconds * PS_PER_S)))
        self.setup.clock.sleep(seconds)
        counter.waitUntilFinished()
        a, b = counter.getCountsTotal()
        return int(a), int(b)

    def _set_power(self, set_W: float) -> float:
        """Set the laser; the power at the sample (power meter, else the set point)."""
        self.setup.laser.power_W = float(set_W)
        meter = self._power_meter()
        return float(meter.read_power_W()) if meter is not None else float(set_W)

    def execute(self) -> None:
        setup = self.setup
        tagger = setup.tagger
        counter = tagger.api.Countrate(tagger.device, list(tagger.spad_channels))
        set_p, direction = sweep_powers(
            self.power_min_W, self.power_max_W, self.n_powers, self.up_and_down
        )
        n, m = set_p.size, self.repeats
        self.publish_values(
            "saturation",
            {
                "acquisition_s": self.acquisition_s,
                "background_s": self.background_s,
                "power_axis": "power meter" if self._power_meter() else "set point",
            },
        )
        counts_a = np.full((n, m), -1, np.int64)
        counts_b = np.full((n, m), -1, np.int64)
        power = np.full(n, np.nan)
        truth: dict[str, list[float]] = {k: [] for k in ("power", "rate", "avg")}
        steps = n * m + self.n_powers
        step = 0
        for i in range(n):
            power[i] = self._set_power(set_p[i])
            if setup.is_simulated:
                t = setup.truth()
                if i == 0:
                    self.publish_truth(t)
                truth["power"].append(float(t.get("laser_power_W", math.nan)))
                truth["rate"].append(float(t.get("emitter_rate_cps", 0.0)))
                truth["avg"].append(float(t.get("emitter_rate_avg_cps", 0.0)))
            for j in range(m):
                self.check_stop()
                counts_a[i, j], counts_b[i, j] = self._count(counter, self.acquisition_s)
                step += 1
                self.progress(100.0 * step / steps)
            rate = (counts_a[i] + counts_b[i]).max() / self.acquisition_s
            self.emit("results", {"set_power_W": set_p[i], "power_W": power[i], "rate_cps": rate})
            self._publish_points(
                set_p[: i + 1],
                power[: i + 1],
                direction[: i + 1],
                counts_a[: i + 1],
                counts_b[: i + 1],
            )
            if truth["power"]:
                self.publish_truth(
                    {
                        "sweep_laser_power_W": np.array(truth["power"]),
                        "sweep_emitter_rate_cps": np.array(truth["rate"]),
                        "sweep_emitter_rate_avg_cps": np.array(truth["avg"]),
                    }
                )
        self._background(counter, set_p[: self.n_powers], step, steps)

    def _publish_points(self, set_p, power, direction, counts_a, counts_b) -> None:
        self.publish_array("saturation/set_power_W", set_p, units="W")
        self.publish_array("saturation/power_W", power, units="W")
        self.publish_array("saturation/direction", direction)
        self.publish_array("saturation/counts_a", counts_a, units="counts")
        self.publish_array("saturation/counts_b", counts_b, units="counts")
        self.publish_array("saturation/counts", counts_a + counts_b, units="counts")

    def _background(self, counter, set_p: np.ndarray, step: int, steps: int) -> None:
        """The background at every power of the up sweep, off the emitter."""
        stage = self.setup.stage
        here = stage.position_um
        stage.move_to(here[0] + self.background_offset_um, here[1], here[2])
        bg_power = np.full(set_p.size, np.nan)
        bg_counts = np.full(set_p.size, -1, np.int64)
        for i, p in enumerate(set_p):
            self.check_stop()
            bg_power[i] = self._set_power(p)
            bg_counts[i] = sum(self._count(counter, self.background_s))
            step += 1
            self.progress(100.0 * step / steps)
            self.publish_array("saturation/background_set_power_W", set_p[: i + 1], units="W")
            self.publish_array("saturation/background_power_W", bg_power[: i + 1], units="W")
            self.publish_array("saturation/background_counts", bg_counts[: i + 1], units="counts")
        self.setup.laser.disable()
        stage.move_to(*here)

    def shutdown(self) -> None:
        if self.setup is not None and "laser" in self.setup.instruments:
            self.setup.laser.disable()


# ----------------------------------------------------------------------------- analysis


def _dataset(group: h5py.Group, name: str) -> np.ndarray | None:
    ds = group.get(name)
    return ds[()] if isinstance(ds, h5py.Dataset) else None


def background_subtracted(
    counts: np.ndarray,
    t_s: float,
    bg_counts: np.ndarray,
    t_bg_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Rates (cps) and their Poisson errors after subtracting the background (module doc).

    ``counts`` (n, repeats), ``bg_counts`` (n,) at the same powers."""
    scale = t_s / t_bg_s
    c = counts.astype(float)
    bg = bg_counts.astype(float)[:, None]
    rate = (c - bg * scale) / t_s
    err = np.sqrt(np.maximum(c, 1.0) + bg * scale**2) / t_s
    return rate, err


def laser_power_law(set_W: np.ndarray, measured_W: np.ndarray) -> tuple[float, float]:
    """(ln c, gamma) of P_meas = c P_set^gamma, least squares in log-log (module doc)."""
    ok = (set_W > 0) & (measured_W > 0) & np.isfinite(measured_W)
    if np.unique(set_W[ok]).size < 2:
        return 0.0, 1.0
    gamma, ln_c = np.polyfit(np.log(set_W[ok]), np.log(measured_W[ok]), 1)
    return float(ln_c), float(gamma)


def _down_up_ratio(power_set, direction, rate, err) -> tuple[float, float]:
    """Weighted mean of (down / up) brightest rate at the powers swept both ways."""
    up = {float(p): i for i, p in enumerate(power_set) if direction[i] > 0}
    ratios, errs = [], []
    for i, p in enumerate(power_set):
        j = up.get(float(p))
        if direction[i] < 0 and j is not None and rate[j] > 0 and rate[i] > 0:
            r = rate[i] / rate[j]
            ratios.append(r)
            errs.append(r * math.hypot(err[i] / rate[i], err[j] / rate[j]))
    if not ratios:
        return math.nan, math.nan
    w = 1.0 / np.square(errs)
    return float(np.sum(w * ratios) / np.sum(w)), float(1.0 / math.sqrt(np.sum(w)))


def dropped_a_trend(power: np.ndarray, inlier: np.ndarray) -> bool:
    """True when the robust fit dropped two points at neighbouring powers.

    Blinking dips are random: with several acquisitions per power, a power whose every
    acquisition was caught in a dip is rare, and two such powers side by side rarer still.
    Neighbouring rejected points are the curve itself bending away from eq. 1 (e.g. the
    blinking-averaged rate of an emitter whose ON fraction falls with power, measured in
    acquisitions much longer than its blinking), so they must be fitted, not dropped."""
    order = np.argsort(power, kind="stable")
    out = ~np.asarray(inlier, dtype=bool)[order]
    return bool(np.any(out[1:] & out[:-1]))


def analyse(run: h5py.File) -> AnalysisOutput:
    """The saturation fit of a run file, from the file alone (module doc).

    The up sweep is fitted (:func:`hbtscope.analysis.saturation_fit`, several acquisitions
    per power: the brightest kept with its bias corrected; robust to acquisitions caught in a
    dip) on the background-subtracted rates versus the measured power at the sample. When
    the robust fit drops points at neighbouring powers (:func:`dropped_a_trend`) every point
    is fitted instead (``robust_rejection_undone``).
    """
    params, _ = read_parameters(run)
    group = run.get(f"{L.DATA}/saturation")
    if not isinstance(group, h5py.Group) or _dataset(group, "counts") is None:
        summary = {"P_sat_W": math.nan, "P_sat_W_err": math.nan}
        return AnalysisOutput("saturation", {"error": "no saturation points"}, {}, summary)
    acq = read_values(group)
    t = float(acq.get("acquisition_s", params.get("acquisition_s", 1.0)))
    t_bg = float(acq.get("background_s", params.get("background_s", 1.0)))
    counts = group["counts"][()]
    set_p = group["set_power_W"][()]
    power = group["power_W"][()]
    direction = group["direction"][()]
    n = min(counts.shape[0], set_p.size, power.size)
    counts, set_p, power, direction = counts[:n], set_p[:n], power[:n], direction[:n]
    complete = np.all(counts >= 0, axis=1)
    bg_set = _dataset(group, "background_set_power_W")
    bg_counts = _dataset(group, "background_counts")
    values: dict[str, Any] = {
        "power_axis": str(acq.get("power_axis", "set point")),
        "rep_rate_Hz": float(params.get("rep_rate_Hz", math.nan)),
        "acquisition_s": t,
        "n_points": int(complete.sum()),
    }
    # background at each point: the background measured at the same set point
    bg_at = np.full(n, np.nan)
    if bg_set is not None and bg_counts is not None:
        lookup = {float(p): int(c) for p, c in zip(bg_set, bg_counts, strict=False) if c >= 0}
        bg_at = np.array([lookup.get(float(p), np.nan) for p in set_p])
    has_bg = np.isfinite(bg_at)
    values["background_subtracted"] = bool(np.all(has_bg[complete]))
    bg_used = np.where(has_bg, bg_at, 0.0)
    rate, err = background_subtracted(np.where(counts >= 0, counts, 0), t, bg_used, t_bg)
    rate = np.where(counts >= 0, rate, np.nan)
    ln_c, gamma = laser_power_law(set_p[complete], power[complete])
    values.update(laser_power_exponent=gamma, laser_power_log_prefactor=ln_c)
    up = complete & (direction > 0)
    errors: dict[str, Any] = {}
    best = np.nanmax(rate, axis=1)
    best_err = err[np.arange(n), np.nanargmax(np.where(np.isnan(rate), -np.inf, rate), axis=1)]
    values.update(
        point_power_W=power,
        point_rate_cps=best,
        point_rate_cps_err=best_err,
        point_direction=direction.astype(np.int64),
    )
    ratio, ratio_err = _down_up_ratio(set_p, direction, best, best_err)
    values["down_up_ratio"] = ratio
    errors["down_up_ratio"] = ratio_err
    robust = bool(params.get("blinking_robust", True))
    try:
        fit = saturation_fit(power[up], rate[up], counts_err=err[up], blinking_robust=robust)
        values["blinking_robust"] = robust
        values["robust_rejection_undone"] = False
        if robust and dropped_a_trend(fit.power, fit.inlier):
            # neighbouring powers all "dipped": a trend of the curve (e.g. an ON fraction
            # falling with power), not blinking dips -- fit every point
            fit = saturation_fit(power[up], rate[up], counts_err=err[up], blinking_robust=False)
            values["robust_rejection_undone"] = True
    except ValueError as exc:
        values["error"] = str(exc)
        values["converged"] = False
        summary = {"P_sat_W": math.nan, "P_sat_W_err": math.nan, "error": str(exc)}
        return AnalysisOutput("saturation", values, errors, summary)
    fitted = fit.as_dict()
    for name in ("A", "P_sat", "B"):
        fitted.pop(f"{name}_err", None)
    fitted.pop("P_sat")
    values.update(fitted)
    errors.update(A=fit.A_err, B=fit.B_err)
    values["P_sat_W"] = fit.P_sat
    errors["P_sat_W"] = fit.P_sat_err
    values["fit_power_W"] = fit.power
    values["fit_rate_cps"] = fit.counts
    values["fit_rate_cps_err"] = fit.counts_err
    values["fit_inlier"] = fit.inlier.astype(np.int8)
    # the laser set point that gives P_sat at the sample (power law of this sweep)
    values["P_sat_set_W"] = math.exp((math.log(fit.P_sat) - ln_c) / gamma)
    errors["P_sat_set_W"] = values["P_sat_set_W"] * fit.P_sat_err / fit.P_sat / gamma
    area = read_calibrations(run).get("spot_area_um2")
    if area:
        values["spot_area_um2"] = float(area)
        values["I_sat_W_um2"] = fit.P_sat / float(area)
        errors["I_sat_W_um2"] = fit.P_sat_err / float(area)
    else:
        values["I_sat_W_um2"] = math.nan
        errors["I_sat_W_um2"] = math.nan
    summary = {
        k: values[k]
        for k in ("P_sat_W", "P_sat_set_W", "I_sat_W_um2", "A", "B", "chi2_red", "gof_p_value")
    }
    summary.update(
        {f"{k}_err": errors[k] for k in ("P_sat_W", "P_sat_set_W", "I_sat_W_um2", "A", "B")}
    )
    summary.update(
        converged=fit.converged,
        identifiable=fit.identifiable,
        at_bound=fit.at_bound,
        n_outliers=fit.n_outliers,
        power_axis=values["power_axis"],
        laser_power_exponent=gamma,
        down_up_ratio=ratio,
        down_up_ratio_err=ratio_err,
    )
    if fit.message:
        summary["message"] = fit.message
    return AnalysisOutput("saturation", values, errors, summary)


def figure(run: h5py.File, path: Path) -> Path | None:
    """Count rate versus power at the sample with the fit, log x (Pierini et al. Fig. 2b,
    D'Amato et al. Fig. 5a, red): brightest acquisition per power (background subtracted) with
    its error, dropped points hollow, the down sweep as triangles, P_sat marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    group = run.get(f"{L.ANALYSIS}/saturation")
    values = read_values(group) if isinstance(group, h5py.Group) else {}
    if "point_power_W" not in values:
        values = dict(analyse(run).values)
    if "point_power_W" not in values:
        return None
    fig = Figure(figsize=(6, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    p = np.asarray(values["point_power_W"], float)
    r = np.asarray(values["point_rate_cps"], float)
    e = np.asarray(values["point_rate_cps_err"], float)
    d = np.asarray(values["point_direction"])
    up, down = d > 0, d < 0
    ax.errorbar(
        p[up] * 1e9,
        r[up] * 1e-3,
        e[up] * 1e-3,
        fmt="o",
        ms=4,
        color="tab:green",
        label="brightest of the repeats",
    )
    if np.any(down):
        ax.errorbar(
            p[down] * 1e9,
            r[down] * 1e-3,
            e[down] * 1e-3,
            fmt="v",
            ms=4,
            color="tab:gray",
            label="sweep back down",
        )
    if "P_sat_W" in values and math.isfinite(float(values["P_sat_W"])):
        fp = np.asarray(values["fit_power_W"], float)
        inl = np.asarray(values["fit_inlier"]).astype(bool)
        if np.any(~inl):
            ax.plot(
                fp[~inl] * 1e9,
                np.asarray(values["fit_rate_cps"])[~inl] * 1e-3,
                "o",
                mfc="none",
                color="tab:red",
                label="dropped (blinking dip)",
            )
        grid = np.geomspace(p[p > 0].min(), p.max(), 200)
        a, ps, b = (float(values[k]) for k in ("A", "P_sat_W", "B"))
        ax.plot(
            grid * 1e9,
            saturation_model(grid, a, ps, b) * 1e-3,
            color="k",
            lw=1.2,
            label="A(1−e^(−P/P_sat)) + B·P",
        )
        ax.plot(
            grid * 1e9,
            a * -np.expm1(-grid / ps) * 1e-3,
            color="k",
            lw=0.8,
            ls=":",
            label="A(1−e^(−P/P_sat))",
        )
        ax.axvline(ps * 1e9, color="tab:orange", lw=0.8, ls="--")
        err = values.get("P_sat_W_err", math.nan)
        text = (
            f"P_sat = {ps * 1e9:.2f} ± {float(err) * 1e9:.2f} nW ({values['power_axis']})\n"
            f"A = {a * 1e-3:.1f} kcps, B = {b * 1e-9 * 1e-3:.3g} kcps/nW\n"
            f"χ²_red = {float(values['chi2_red']):.2f}"
        )
        if math.isfinite(float(values.get("I_sat_W_um2", math.nan))):
            text += f"\nI_sat = {float(values['I_sat_W_um2']) * 1e6:.3g} µW/µm²"
        ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"power at the sample (nW, {values.get('power_axis', '')})")
    ax.set_ylabel("count rate (kcps)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"{Path(run.filename).name}", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def fit_curve(values, power_W: np.ndarray) -> np.ndarray:
    """The fitted P = A (1 - exp(-I/I_sat)) + B I at the live panel's powers (live view)."""
    return saturation_model(power_W, values["A"], values["P_sat_W"], values["B"])


LIVE_PLOTS = (
    LivePlot(
        "saturation curve",
        y="rows:rate_cps",
        x="rows:power_W",
        x_label="power [W]",
        y_label="rate [counts/s]",
        fit=fit_curve,
        fit_points=("fit_power_W", "fit_rate_cps"),
    ),
)

MEASUREMENT = Measurement("saturation", SaturationSweep, analyse, figure, live_plots=LIVE_PLOTS)


# ------------------------------------------------------------------ "at k x P_sat" for later runs


@dataclass(frozen=True)
class PowerAtPsat:
    """The laser set point that puts ``factor`` x P_sat of an emitter on the sample."""

    set_point_W: float
    at_sample_W: float
    P_sat_W: float
    P_sat_W_err: float
    laser_power_exponent: float
    run: str


def power_at_p_sat(book, emitter: str, factor: float, rep_rate_Hz: float) -> PowerAtPsat:
    """Resolve "``factor`` x P_sat of ``emitter``" from its saturation result in ``book``.

    ``P_sat_W`` is a power at the sample (see the module doc); the set point is
    ``P_sat_set_W * factor**(1/gamma)`` with the sweep's laser power law P_meas = c P_set^gamma
    (exact under that law, extrapolated beyond the sweep's powers). A result without the
    calibration (older, or no power meter) is used as a set point (gamma = 1).
    Raises :class:`EmitterBookError` for an unknown emitter or result, and when the sweep
    ran at another repetition rate (P_sat is a per-pulse fluence: it scales with f).
    """
    record = book.require(check_name(str(emitter)))
    p_sat, p_err = record.value("saturation.P_sat_W")
    result = record.results["saturation"]
    vals = result.get("values", {})
    rep = vals.get("rep_rate_Hz")
    if isinstance(rep, int | float) and math.isfinite(rep) and abs(rep / rep_rate_Hz - 1) > 0.01:
        raise EmitterBookError(
            f"emitter {emitter}: P_sat was measured at {rep:.4g} Hz, not at {rep_rate_Hz:.4g} Hz "
            "(P_sat depends on the repetition rate): run a saturation sweep at this rate"
        )
    gamma = float(vals.get("laser_power_exponent", 1.0) or 1.0)
    set_sat = float(vals.get("P_sat_set_W", p_sat))
    if not (math.isfinite(p_sat) and p_sat > 0 and math.isfinite(set_sat) and gamma > 0):
        raise EmitterBookError(f"emitter {emitter}: saturation result has no usable P_sat")
    return PowerAtPsat(
        set_point_W=set_sat * float(factor) ** (1.0 / gamma),
        at_sample_W=float(factor) * p_sat,
        P_sat_W=p_sat,
        P_sat_W_err=p_err,
        laser_power_exponent=gamma,
        run=str(result.get("run", "")),
    )
