"""Polarisation of one emitter's emission: analyser sweep, Malus fit, degree of linear
polarisation (Farrow et al., DOLP 40 % of CsPbI3 nanocrystals).

Procedure: the stage goes to the emitter with a short last step (``approach_um``: an open-loop
piezo creeps by a fraction of its last step per decade of time), laser on at
``laser_power_W``, the analyser (role ``polariser``) put in the
detection path and stepped over ``n_angles`` angles from ``start_deg`` by ``step_deg``; at each
angle both SPADs count for ``dwell_s`` (tagger ``Countrate``). ``passes = 2`` sweeps there and
back, so that a slow drift of the brightness (photobrightening, a creeping focus) is not taken
for a modulation. Then, if ``background_offset_um`` is given, the stage moves that far in x off
the emitter and counts ``background_s`` (substrate light and dark counts: unpolarised, as far as
the analysis assumes); the analyser is taken out of the path at the end.

Analysis (:func:`analyse`, from the file alone): counts per angle minus the background
expected in the dwell, with Poisson errors of both, fitted by
:func:`hbtscope.analysis.polarisation.malus_fit`::

    I(theta) = I_min + (I_max - I_min) cos^2(theta - theta0),
    DOLP = (I_max - I_min) / (I_max + I_min)

a weighted linear least-squares fit of a + b cos 2theta + c sin 2theta (unique, no start
values); errors from its covariance, inflated by sqrt(chi2_red) when the points scatter more
than Poisson (blinking). The fit says when the modulation is not significant (theta0 then
undetermined). Without background subtraction the DOLP is diluted by the unpolarised
background: DOLP_measured = DOLP S / (S + B).

Run file: ``data/polarization/angle_deg``, ``counts`` (n, 2: SPAD A, B), ``dwell_s`` (n), one
row appended per angle as it is measured,
``data/polarization`` attributes (background counts and time); ``analysis/polarization``;
``truth/`` on the simulator (``dolp``, ``dipole_deg`` of the emitters at the focus).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pymeasure.experiment import FloatParameter, IntegerParameter, Parameter

from hbtscope import events as ev
from hbtscope.analysis.polarisation import malus_fit, malus_model
from hbtscope.instruments.base import LimitError
from hbtscope.procedures.base import AnalysisOutput, HbtProcedure, Measurement
from hbtscope.procedures.live_plots import LivePlot
from hbtscope.storage import layout as L
from hbtscope.storage.runfile import read_parameters, read_values
from hbtscope.units import PS_PER_S

NAME = "polarization"


class Polarization(HbtProcedure):
    """Analyser sweep on the emitter at the focus: Malus fit and DOLP (Farrow et al.)."""

    NAME = NAME

    laser_power_W = FloatParameter(
        "Laser power", units="W", minimum=0.0, maximum=1e-2, default=24e-9
    )
    rep_rate_Hz = FloatParameter(
        "Repetition rate", units="Hz", minimum=1e5, maximum=1e8, default=5e6
    )
    start_deg = FloatParameter("First analyser angle", units="deg", default=0.0)
    step_deg = FloatParameter(
        "Analyser step", units="deg", minimum=0.1, maximum=180.0, default=15.0
    )
    n_angles = IntegerParameter("Number of angles", minimum=4, maximum=720, default=12)
    passes = IntegerParameter("Sweeps (2 = there and back)", minimum=1, maximum=20, default=2)
    dwell_s = FloatParameter(
        "Counting time per angle", units="s", minimum=0.01, maximum=3600.0, default=1.0
    )
    background_offset_um = FloatParameter(
        "Background point, x offset from the emitter (NaN = none)",
        units="um",
        default=3.0,
    )
    background_s = FloatParameter(
        "Background counting time", units="s", minimum=0.01, maximum=3600.0, default=5.0
    )
    approach_um = FloatParameter(
        "Last approach step to the emitter (open-loop creep)",
        units="um",
        minimum=0.0,
        maximum=10.0,
        default=0.5,
    )
    emitter = Parameter("Emitter name (emitter book)", default="")
    x_um = FloatParameter("Stage x (NaN = stay)", units="um", default=float("nan"))
    y_um = FloatParameter("Stage y (NaN = stay)", units="um", default=float("nan"))
    z_um = FloatParameter("Stage z (NaN = stay)", units="um", default=float("nan"))

    NAN_MEANS = {
        "x_um": "stay",
        "y_um": "stay",
        "z_um": "stay",
        "background_offset_um": "no background measurement",
    }

    def angles_deg(self) -> np.ndarray:
        """The sweep: ``n_angles`` from ``start_deg``, then back (alternate passes)."""
        one = self.start_deg + self.step_deg * np.arange(self.n_angles)
        sweeps = [one if p % 2 == 0 else one[::-1] for p in range(self.passes)]
        return np.concatenate(sweeps)

    def check_setup(self, setup) -> None:
        self.check_laser(setup, "laser_power_W", "rep_rate_Hz")
        self.check_stage_target(setup, x_um=self.x_um, y_um=self.y_um, z_um=self.z_um)
        polariser = setup.polariser
        setup.tagger  # noqa: B018 - a missing tagger role is reported now, not after moving
        one = self.angles_deg()[: self.n_angles]
        if np.unique(np.round(np.mod(one, 180.0), 6)).size < 3:
            self.fail("step_deg", "gives fewer than 3 distinct angles modulo 180 deg")
        slot_for = getattr(polariser, "slot_for", None)  # a wheel of fixed polarisers
        if slot_for is not None:
            for angle in one:
                try:
                    slot_for(float(angle) % 360.0)
                except LimitError as exc:
                    self.fail("step_deg", f"asks for an angle the analyser cannot take: {exc}")
        if math.isfinite(self.background_offset_um):
            x = self.x_um if math.isfinite(self.x_um) else setup.stage.position_um[0]
            lo, hi = getattr(setup.stage, "travel_um", {}).get("x", (-math.inf, math.inf))
            if not lo <= x + self.background_offset_um <= hi:
                self.fail(
                    "background_offset_um",
                    f"puts the background point at x = {x + self.background_offset_um} um, "
                    f"outside the stage travel [{lo}, {hi}] um of {setup.path}",
                )

    def _approach(self) -> None:
        """Go to the emitter in two steps, the last one ``approach_um`` long: an open-loop
        piezo creeps by a fixed fraction of its *last* step per decade of time, so after a
        long move straight to the emitter the focus would drift off it during the sweep."""
        if not (math.isfinite(self.x_um) or math.isfinite(self.y_um)):
            self.move_if_given(self.x_um, self.y_um, self.z_um)
            return
        x0, y0, _ = self.setup.stage.position_um
        x = self.x_um if math.isfinite(self.x_um) else x0
        y = self.y_um if math.isfinite(self.y_um) else y0
        a = self.approach_um
        travel = getattr(self.setup.stage, "travel_um", {})
        xa = max(x - a, travel.get("x", (-math.inf, math.inf))[0])
        ya = max(y - a, travel.get("y", (-math.inf, math.inf))[0])
        if a > 0:
            self.move_if_given(xa, ya, self.z_um)
        self.move_if_given(x, y, self.z_um)

    def startup(self) -> None:
        self._approach()
        polariser = self.setup.polariser
        polariser.angle_deg = float(self.angles_deg()[0]) % 360.0
        polariser.in_path = True
        laser = self.setup.laser
        laser.rep_rate_Hz = self.rep_rate_Hz
        laser.power_W = self.laser_power_W
        laser.enable()

    def _count(self, seconds: float) -> np.ndarray:
        """Counts of both SPADs over ``seconds`` (the tagger's Countrate)."""
        tagger = self.setup.tagger
        rate = tagger.api.Countrate(tagger.device, list(tagger.spad_channels))
        rate.startFor(int(round(seconds * PS_PER_S)))
        self.setup.clock.sleep(seconds)
        rate.waitUntilFinished()
        return np.asarray(rate.getCountsTotal(), dtype=np.int64)

    def execute(self) -> None:
        setup = self.setup
        if setup.is_simulated:
            self.publish_truth(setup.truth())
        angles = self.angles_deg()
        for k, angle in enumerate(angles):
            setup.polariser.angle_deg = float(angle) % 360.0
            c = self._count(self.dwell_s)
            # one row per angle, streamed: a run killed mid-sweep keeps the angles done
            self.publish(ev.ArrayAppended("polarization/angle_deg", np.float64(angle), "deg"))
            self.publish(ev.ArrayAppended("polarization/counts", c, "counts"))
            self.publish(ev.ArrayAppended("polarization/dwell_s", np.float64(self.dwell_s), "s"))
            self.progress(100.0 * (k + 1) / (angles.size + 1))
            self.emit("results", {"angle_deg": float(angle), "counts": int(c.sum())})
            self.check_stop()
        if math.isfinite(self.background_offset_um):
            x, y, z = setup.stage.position_um
            setup.stage.move_to(x + self.background_offset_um, y, z)
            b = self._count(self.background_s)
            self.publish_values(
                "polarization",
                {
                    "background_counts": int(b.sum()),
                    "background_s": float(self.background_s),
                    "background_x_um": float(x + self.background_offset_um),
                },
            )
        self.progress(100.0)

    def shutdown(self) -> None:
        if self.setup is None:
            return
        if "laser" in self.setup.instruments:
            self.setup.laser.disable()
        if "polariser" in self.setup.instruments:
            try:
                self.setup.polariser.in_path = False
            except LimitError:  # a wheel without an empty slot: the analyser stays in
                pass


# ----------------------------------------------------------------------------- analysis


def _data(run: h5py.File) -> dict[str, Any]:
    group = run.get(f"{L.DATA}/polarization")
    if not isinstance(group, h5py.Group) or "counts" not in group:
        raise ValueError(f"{run.filename}: no polarisation sweep (data/polarization)")
    return read_values(group)


def analyse(run: h5py.File) -> AnalysisOutput:
    """Malus fit and DOLP of the sweep, background subtracted (module doc)."""
    d = _data(run)
    n = min(np.size(d["angle_deg"]), np.shape(d["counts"])[0], np.size(d["dwell_s"]))
    angles = np.asarray(d["angle_deg"], float)[:n]  # (a killed run: rows flushed so far)
    counts = np.asarray(d["counts"], np.int64)[:n].reshape(n, -1).sum(axis=1).astype(float)
    dwell = np.asarray(d["dwell_s"], float)[:n]
    b_counts = float(d.get("background_counts", 0.0))
    b_time = float(d.get("background_s", 0.0))
    values: dict[str, Any] = {
        "n_points": int(angles.size),
        "angle_deg": angles,
        "counts": counts,
        "background_subtracted": bool(b_time > 0),
    }
    errors: dict[str, Any] = {}
    if b_time > 0:
        b_rate = b_counts / b_time
        signal = counts - b_rate * dwell
        # Poisson variance of the counts plus that of the background scaled to the dwell
        var = np.maximum(counts, 1.0) + (dwell / b_time) ** 2 * max(b_counts, 1.0)
        values["background_cps"] = b_rate
        errors["background_cps"] = math.sqrt(max(b_counts, 1.0)) / b_time
        values["signal"] = signal
        errors["signal"] = np.sqrt(var)
    else:
        signal, var = counts, None
    summary: dict[str, Any] = {"n_points": int(angles.size)}
    truth = run.get(L.TRUTH)
    if isinstance(truth, h5py.Group):
        t = read_values(truth)
        if isinstance(t.get("dolp"), list) and len(t["dolp"]) == 1:
            summary["truth_dolp"] = float(t["dolp"][0])
            summary["truth_dipole_deg"] = float(t["dipole_deg"][0]) % 180.0
    try:
        res = malus_fit(angles, signal, None if var is None else np.sqrt(var))
    except ValueError as exc:
        values["error"] = str(exc)
        summary.update(error=str(exc), dolp=math.nan, dolp_err=math.nan)
        return AnalysisOutput(NAME, values, errors, summary)
    fit = res.as_dict()
    for key in ("I_min", "I_max", "theta0_deg", "dolp"):
        values[key] = fit[key]
        errors[key] = fit[f"{key}_err"]
    for key in ("chi2_red", "dof", "gof_p_value", "identifiable", "message"):
        values[key] = fit[key]
    summary.update(
        dolp=res.dolp,
        dolp_err=res.dolp_err,
        theta0_deg=res.theta0_deg,
        theta0_deg_err=res.theta0_deg_err,
        I_min=res.I_min,
        I_min_err=res.I_min_err,
        I_max=res.I_max,
        I_max_err=res.I_max_err,
        chi2_red=res.chi2_red,
        identifiable=res.identifiable,
        message=res.message,
        background_subtracted=values["background_subtracted"],
    )
    return AnalysisOutput(NAME, values, errors, summary)


def figure(run: h5py.File, path: Path) -> Path | None:
    """Counts versus analyser angle with the Malus fit, cartesian and polar (Farrow et al.
    2023, the polar plot of the emission), from the run file alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    try:
        out = analyse(run)
    except ValueError:
        return None
    v = out.values
    if "dolp" not in v:
        return None
    params, _ = read_parameters(run)
    theta = np.asarray(v["angle_deg"], float)
    y = np.asarray(v.get("signal", v["counts"]), float)
    yerr = np.asarray(out.errors.get("signal", np.sqrt(np.maximum(y, 1.0))), float)
    grid = np.linspace(0.0, 360.0, 361)
    model = malus_model(grid, v["I_min"], v["I_max"], v["theta0_deg"])
    fig = Figure(figsize=(10, 4.2))
    FigureCanvasAgg(fig)
    ax0 = fig.add_subplot(1, 2, 1)
    ax0.errorbar(theta % 360.0, y, yerr=yerr, fmt="o", ms=4, label="counts")
    ax0.plot(grid, model, "-", label="Malus fit")
    ax0.set_xlabel("analyser angle (deg)")
    ylabel = "counts - background" if v.get("background_subtracted") else "counts"
    ax0.set_ylabel(f"{ylabel} per {float(params.get('dwell_s', 1.0)):g} s")
    ax0.set_xlim(0, 360)
    ax0.legend(fontsize=8)
    ax0.set_title(
        f"DOLP = {v['dolp']:.3f} ± {out.errors['dolp']:.3f}, "
        f"θ0 = {v['theta0_deg']:.1f} ± {out.errors['theta0_deg']:.1f}°",
        fontsize=9,
    )
    ax1 = fig.add_subplot(1, 2, 2, projection="polar")
    ax1.plot(np.deg2rad(theta), y, "o", ms=4)
    ax1.plot(np.deg2rad(grid), model, "-")
    ax1.set_rlabel_position(250)
    ax1.tick_params(labelsize=7)
    ax1.set_title("polar", fontsize=9)
    fig.suptitle(Path(run.filename).name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def malus_curve(values, angle_deg: np.ndarray) -> np.ndarray:
    """The fitted I_min + (I_max - I_min) cos^2(theta - theta0) (live view; counts per dwell,
    background subtracted)."""
    return malus_model(angle_deg, values["I_min"], values["I_max"], values["theta0_deg"])


LIVE_PLOTS = (
    LivePlot(
        "Malus curve (circles, red: background subtracted, fit)",
        y="rows:counts",
        x="rows:angle_deg",
        x_label="analyser angle [deg]",
        y_label="counts per angle",
        fit=malus_curve,
        fit_points=("angle_deg", "signal"),
    ),
)

MEASUREMENT = Measurement(NAME, Polarization, analyse, figure, live_plots=LIVE_PLOTS)
