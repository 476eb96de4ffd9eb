"""Refocus on an emitter: xy then z scans around a point, bounded Gaussian fits, then a
closed loop on counts that corrects the open-loop piezo's hysteresis; move to the centre and
append the position to the emitter's drift history. One measurement (design section 6).

Why a closed loop: an open-loop piezo (Thorlabs MDT693B on a NanoMax) lags behind its command
along the direction of motion (hysteresis, up to ~0.15 µm after a long move) and creeps after
each step. The centre fitted on a raster is in *commanded* coordinates of that raster's
motion history; commanding it afterwards from elsewhere misses the emitter by ~0.1 µm. So,
after the coarse xy raster (hardware-timed, :mod:`hbtscope.procedures.confocal_scan`) and the
z raster, each axis is scanned again point by point with every point approached the same way
(from ``approach_um`` below it, then ``settle_s`` before counting), the 1-D Gaussian is fitted
(:func:`hbtscope.analysis.images.gaussian1d_fit`, bounded, Poisson) and the stage is sent to
the centre *the same way*: the lag at the centre is then the lag the scan saw, and cancels.
The count rate at the final position is compared with the fitted peak; below
``min_peak_fraction`` of it the loop is repeated (at most ``max_iterations``).

Run file: ``data/refocus/xy_image`` (counts, rows along y) with ``xy_x_um``, ``xy_y_um``,
``z_scan_um``/``z_scan_counts`` (coarse scans), ``data/refocus/line_<axis>_<iteration>_um`` and
``..._counts`` (closed-loop lines), ``data/refocus`` attributes: start, final position,
verification counts and count time; ``analysis/refocus``; ``truth/`` (simulator: the actual
focus and the emitter's true position). docs/measurements/refocus.md.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pymeasure.experiment import FloatParameter, IntegerParameter, Parameter

from hbtscope.analysis.images import gaussian1d_fit, gaussian2d_fit
from hbtscope.procedures.base import AnalysisOutput, HbtProcedure, Measurement
from hbtscope.procedures.confocal_scan import TaggerRaster, wait_for_tagger
from hbtscope.procedures.live_plots import LivePlot
from hbtscope.storage import layout as L
from hbtscope.storage.emitter_book import NAME_PATTERN
from hbtscope.storage.runfile import read_parameters, read_values
from hbtscope.units import PS_PER_S

AXES = ("x", "y", "z")
#: points approached before the first point of a line and before the final position, so that
#: the piezo's lag there is the one of the line's points (it relaxes by ~20 % per move)
PREROLL = 4


def fit_xy(image: np.ndarray, xs: np.ndarray, ys: np.ndarray):
    """Bounded 2-D Gaussian (Poisson) of the xy raster, in stage µm; None if no spot."""
    i, j = np.unravel_index(int(np.argmax(image)), image.shape)
    step = float(xs[1] - xs[0])
    try:
        fit = gaussian2d_fit(
            image,
            float(xs[j]),
            float(ys[i]),
            sigma=2 * step,
            x_coords=xs,
            y_coords=ys,
            sigma_bounds=(0.5 * step, float(xs[-1] - xs[0])),
            noise="poisson",
        )
    except (ValueError, np.linalg.LinAlgError):
        return None
    ok = fit.success and fit.identifiable and not fit.at_bound
    return fit if ok else None


def fit_line(positions: np.ndarray, counts: np.ndarray):
    """Bounded 1-D Gaussian (Poisson) of a line scan; None if it has no peak inside."""
    try:
        fit = gaussian1d_fit(positions, counts, noise="poisson")
    except (ValueError, np.linalg.LinAlgError):
        return None
    ok = fit.success and fit.identifiable and not fit.at_bound
    return fit if ok else None


class Refocus(HbtProcedure):
    """Refocus on an emitter: xy and z Gaussian fits, closed loop on counts against the
    piezo's hysteresis, drift history (design section 6)."""

    NAME = "refocus"

    emitter = Parameter("Emitter name (its last position; drift history)", default="")
    x_um = FloatParameter("Start x (NaN = emitter or stage)", units="um", default=float("nan"))
    y_um = FloatParameter("Start y (NaN = emitter or stage)", units="um", default=float("nan"))
    z_um = FloatParameter("Start z (NaN = emitter or stage)", units="um", default=float("nan"))
    xy_range_um = FloatParameter(
        "Coarse xy raster span", units="um", minimum=0.1, maximum=20.0, default=1.5
    )
    xy_pixels = IntegerParameter(
        "Coarse xy raster pixels per side", minimum=5, maximum=101, default=15
    )
    z_range_um = FloatParameter(
        "Coarse z scan span", units="um", minimum=0.2, maximum=20.0, default=3.0
    )
    z_points = IntegerParameter("Coarse z scan points", minimum=5, maximum=201, default=21)
    dwell_s = FloatParameter(
        "Coarse raster dwell per pixel", units="s", minimum=1e-5, maximum=1.0, default=0.01
    )
    line_range_um = FloatParameter(
        "Closed-loop line span (x, y; z twice)",
        units="um",
        minimum=0.05,
        maximum=5.0,
        default=0.5,
    )
    line_points = IntegerParameter(
        "Closed-loop points per line", minimum=5, maximum=101, default=11
    )
    count_time_s = FloatParameter(
        "Counting time per closed-loop point",
        units="s",
        minimum=1e-3,
        maximum=10.0,
        default=0.05,
    )
    approach_um = FloatParameter(
        "Every point approached from this far below",
        units="um",
        minimum=0.0,
        maximum=5.0,
        default=0.5,
    )
    settle_s = FloatParameter(
        "Settling time after each move", units="s", minimum=0.0, maximum=10.0, default=0.05
    )
    min_peak_fraction = FloatParameter(
        "Final rate must reach this fraction of the fitted peak",
        minimum=0.0,
        maximum=1.0,
        default=0.9,
    )
    max_iterations = IntegerParameter(
        "Closed-loop iterations at most", minimum=1, maximum=10, default=3
    )
    laser_power_W = FloatParameter(
        "Laser power", units="W", minimum=0.0, maximum=1e-2, default=24e-9
    )
    rep_rate_Hz = FloatParameter(
        "Repetition rate", units="Hz", minimum=1e5, maximum=1e8, default=5e6
    )

    NAN_MEANS = {
        a: "the emitter's last position, else the stage's" for a in ("x_um", "y_um", "z_um")
    }

    # --- validation ------------------------------------------------------------------

    def _start(self, setup) -> tuple[float, float, float]:
        given = (self.x_um, self.y_um, self.z_um)
        known = None
        if self.emitter and self.book is not None:
            record = self.book.get(str(self.emitter))
            known = record.position_um() if record is not None else None
        here = known if known is not None else setup.stage.position_um
        return tuple(g if math.isfinite(g) else h for g, h in zip(given, here, strict=True))

    def check_setup(self, setup) -> None:
        name = str(self.emitter or "")
        if name and not NAME_PATTERN.match(name):
            self.fail("emitter", "is not an emitter name (1-64 letters, digits, '_', '.', '-')")
        setup.tagger  # noqa: B018 - missing roles reported now, before anything moves
        setup.daq  # noqa: B018
        if "pixel_marker" not in setup.tagger.channels:
            self.fail("xy_pixels", f"needs a pixel_marker tagger channel ({setup.path})")
        self.check_laser(setup, "laser_power_W", "rep_rate_Hz")
        start = self._start(setup)
        reach = {
            "x": max(self.xy_range_um, self.line_range_um) / 2 + self.approach_um,
            "y": max(self.xy_range_um, self.line_range_um) / 2 + self.approach_um,
            "z": max(self.z_range_um, 2 * self.line_range_um) / 2 + self.approach_um,
        }
        for axis, value, name_ in zip(AXES, start, ("x_um", "y_um", "z_um"), strict=True):
            lo, hi = setup.stage.travel_um.get(axis, (-math.inf, math.inf))
            if value - reach[axis] < lo or value + reach[axis] > hi:
                self.fail(
                    name_,
                    f"(start {value:.3f} um) +- {reach[axis]:.3f} um of scans and "
                    f"approach leaves the stage travel [{lo}, {hi}] um of {setup.path}",
                )
        if self.dwell_s < setup.daq.min_dwell_s:
            self.fail("dwell_s", f"is below the scan clock's minimum {setup.daq.min_dwell_s} s")

    # --- acquisition -----------------------------------------------------------------

    def startup(self) -> None:
        self.start_um = self._start(self.setup)
        laser = self.setup.laser
        laser.rep_rate_Hz = self.rep_rate_Hz
        laser.power_W = self.laser_power_W
        laser.enable()

    def _raster(self, xyz: np.ndarray) -> np.ndarray:
        """Counts (both SPADs) per position of a hardware-timed raster."""
        setup = self.setup
        setup.stage.move_to(*xyz[0])
        setup.daq.load_raster(
            xyz, self.dwell_s, marker_channel=setup.tagger.channels["pixel_marker"]
        )
        raster = TaggerRaster.create(setup.tagger, xyz.shape[0])
        setup.daq.start()
        setup.daq.wait_done()
        wait_for_tagger(setup.clock, raster, self.check_stop)
        return raster.counts().sum(axis=1)

    def _approach(self, xyz: np.ndarray, axis: int, step_um: float = 0.0, preroll: int = 0):
        """Go to ``xyz`` coming from ``approach_um`` below along ``axis``; let it settle.

        With ``preroll`` > 0 the same way is first taken to the ``preroll`` points
        ``step_um`` apart before ``xyz``: the piezo's lag (a memory of the last moves) is
        then the one it had at every point of a line scan with that step."""
        stage = self.setup.stage
        for k in range(preroll, -1, -1):
            target = np.array(xyz, float)
            target[axis] -= k * step_um
            if self.approach_um > 0:
                before = target.copy()
                before[axis] -= self.approach_um
                stage.move_to(*before)
            stage.move_to(*target)
        self.setup.clock.sleep(self.settle_s)

    def _count(self, seconds: float) -> int:
        tagger = self.setup.tagger
        rate = tagger.api.Countrate(tagger.device, list(tagger.spad_channels))
        rate.startFor(int(round(seconds * PS_PER_S)))
        self.setup.clock.sleep(seconds)
        rate.waitUntilFinished()
        return int(np.sum(rate.getCountsTotal()))

    def _line(self, centre: np.ndarray, axis: int, it: int) -> np.ndarray:
        """Closed-loop line along ``axis``: every point approached the same way; returns the
        new centre (unchanged if no peak was found inside the line)."""
        span = self.line_range_um * (2 if axis == 2 else 1)
        pos = centre[axis] + np.linspace(-0.5, 0.5, self.line_points) * span
        counts = np.zeros(pos.size, np.int64)
        step = float(pos[1] - pos[0])
        for k, p in enumerate(pos):
            xyz = centre.copy()
            xyz[axis] = p
            self._approach(xyz, axis, step, PREROLL if k == 0 else 0)
            counts[k] = self._count(self.count_time_s)
            # the live view's point (display only: the line is stored when it is complete)
            a = AXES[axis]
            self.emit("results", {f"{a}_um": float(p), f"{a}_counts": int(counts[k]), "it": it})
            self.check_stop()
        name = f"refocus/line_{AXES[axis]}_{it}"
        self.publish_array(f"{name}_um", pos, units="um")
        self.publish_array(f"{name}_counts", counts, units="counts")
        fit = fit_line(pos, counts)
        new = centre.copy()
        if fit is not None:
            new[axis] = fit.centre
        else:  # no peak inside: go to the brightest point and look again
            new[axis] = pos[int(np.argmax(counts))]
        self._approach(new, axis, step, PREROLL)  # the way every point of the line was reached
        self._peak = (fit.amplitude + fit.background) if fit is not None else math.nan
        return new

    def execute(self) -> None:
        setup = self.setup
        x0, y0, z0 = self.start_um
        self.publish_values("refocus", {"start_x_um": x0, "start_y_um": y0, "start_z_um": z0})
        n = self.xy_pixels
        xs = x0 + np.linspace(-0.5, 0.5, n) * self.xy_range_um
        ys = y0 + np.linspace(-0.5, 0.5, n) * self.xy_range_um
        gx, gy = np.meshgrid(xs, ys)
        xyz = np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, z0)])
        image = self._raster(xyz).reshape(n, n)
        self.publish_array("refocus/xy_x_um", xs, units="um")
        self.publish_array("refocus/xy_y_um", ys, units="um")
        self.publish_array("refocus/xy_image", image, units="counts")
        self.progress(15)
        fit = fit_xy(image.astype(float), xs, ys)
        if fit is None:
            raise RuntimeError("no emitter in the xy raster (no bounded Gaussian fit inside it)")
        centre = np.array([fit.x, fit.y, z0])
        zs = z0 + np.linspace(-0.5, 0.5, self.z_points) * self.z_range_um
        zline = np.column_stack([np.full(zs.size, fit.x), np.full(zs.size, fit.y), zs])
        zcounts = self._raster(zline)
        self.publish_array("refocus/z_scan_um", zs, units="um")
        self.publish_array("refocus/z_scan_counts", zcounts, units="counts")
        zfit = fit_line(zs, zcounts)
        if zfit is not None:
            centre[2] = zfit.centre
        self.publish_values(
            "refocus",
            {"coarse_x_um": centre[0], "coarse_y_um": centre[1], "coarse_z_um": centre[2]},
        )
        self.progress(30)
        ratio, final_counts, it = math.nan, 0, 0
        for it in range(self.max_iterations):
            for axis in range(3):
                centre = self._line(centre, axis, it)
                self.progress(30 + 70 * (it * 3 + axis + 1) / (3 * self.max_iterations))
            final_counts = self._count(4 * self.count_time_s)
            ratio = final_counts / 4 / self._peak if self._peak > 0 else math.nan
            self.publish_values(
                "refocus",
                {
                    "iterations": it + 1,
                    "final_counts": final_counts,
                    "final_count_time_s": 4 * self.count_time_s,
                    "peak_fraction": ratio,
                },
            )
            if ratio >= self.min_peak_fraction:
                break
        x, y, z = setup.stage.position_um
        self.publish_values(
            "refocus",
            {
                "final_x_um": x,
                "final_y_um": y,
                "final_z_um": z,
                "converged": bool(ratio >= self.min_peak_fraction),
            },
        )
        if setup.is_simulated:
            self.publish_truth(self._truth())
        if self.emitter and self.book is not None:
            self.book.add_position(
                str(self.emitter), (x, y, z), "refocus", run=getattr(self, "run_path", "")
            )
        self.progress(100)

    def _truth(self) -> dict[str, Any]:
        """Simulator truth: the focus actually reached and the nearest emitter's position."""
        world = self.setup.world
        truth = dict(self.setup.truth())
        actual = np.asarray(world.actual_focus_um(), float)
        drift = np.asarray(world.drift_um(), float)
        em = np.array([[e.x_um, e.y_um, e.z_um] for e in world.emitters]).reshape(-1, 3) + drift
        i = int(np.argmin(np.sum((em - actual) ** 2, axis=1))) if em.size else -1
        truth.update(actual_x_um=actual[0], actual_y_um=actual[1], actual_z_um=actual[2])
        if i >= 0:
            truth.update(
                nearest_emitter=i,
                emitter_x_um=em[i, 0],
                emitter_y_um=em[i, 1],
                emitter_z_um=em[i, 2],
            )
        return truth

    def shutdown(self) -> None:
        if self.setup is None:
            return
        if "daq" in self.setup.instruments:
            self.setup.daq.stop()
        if "laser" in self.setup.instruments:
            self.setup.laser.disable()


# ------------------------------------------------------------------------------- analysis


def _lines(group: h5py.Group) -> dict[tuple[str, int], tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name in group:
        if name.startswith("line_") and name.endswith("_um"):
            _, axis, it, _ = name.split("_")
            counts = group.get(name.replace("_um", "_counts"))
            if isinstance(counts, h5py.Dataset):
                out[(axis, int(it))] = (group[name][()], counts[()])
    return out


def analyse(run: h5py.File) -> AnalysisOutput:
    """Fits of every scan of the refocus (coarse xy and z, the closed-loop lines) from the file;
    the final position with its uncertainty from the last line fit of each axis."""
    params, _ = read_parameters(run)
    group = run.get(f"{L.DATA}/refocus")
    if not isinstance(group, h5py.Group):
        return AnalysisOutput("refocus", {"error": "no refocus data"}, {}, {})
    info = read_values(group)
    values: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    if "xy_image" in group:
        fit = fit_xy(
            group["xy_image"][()].astype(float), group["xy_x_um"][()], group["xy_y_um"][()]
        )
        if fit is not None:
            values.update(coarse_fit_x_um=fit.x, coarse_fit_y_um=fit.y, spot_sigma_um=fit.sigma)
            errors.update(
                coarse_fit_x_um=fit.x_err, coarse_fit_y_um=fit.y_err, spot_sigma_um=fit.sigma_err
            )
    if "z_scan_um" in group:
        zfit = fit_line(group["z_scan_um"][()], group["z_scan_counts"][()])
        if zfit is not None:
            values.update(coarse_fit_z_um=zfit.centre, axial_sigma_um=zfit.sigma)
            errors.update(coarse_fit_z_um=zfit.centre_err, axial_sigma_um=zfit.sigma_err)
    last: dict[str, Any] = {}
    for (axis, _it), (pos, counts) in sorted(_lines(group).items(), key=lambda kv: kv[0][1]):
        f = fit_line(pos, counts)
        if f is not None:
            last[axis] = f
    for axis in AXES:
        key = f"{axis}_um"
        if f"final_{key}" in info:
            values[key] = float(info[f"final_{key}"])
            errors[key] = float(last[axis].centre_err) if axis in last else math.nan
    for key in ("iterations", "peak_fraction", "converged", "final_counts"):
        if key in info:
            values[key] = info[key]
    if "final_counts" in info and info.get("final_count_time_s"):
        t = float(info["final_count_time_s"])
        values["final_rate_cps"] = float(info["final_counts"]) / t
        errors["final_rate_cps"] = math.sqrt(float(info["final_counts"])) / t
    for axis in AXES:  # what the closed loop corrected relative to the coarse fits
        if f"{axis}_um" in values and f"coarse_{axis}_um" in info:
            values[f"correction_{axis}_um"] = values[f"{axis}_um"] - float(
                info[f"coarse_{axis}_um"]
            )
    if not values.get("converged", False):
        values["warning"] = (
            f"final rate below {float(params.get('min_peak_fraction', 0.9)):.2f} of the fitted "
            "peak after the last iteration"
        )
    summary = {
        k: values[k]
        for k in ("x_um", "y_um", "z_um", "peak_fraction", "iterations", "converged")
        if k in values
    }
    summary.update({f"{k}_err": errors[k] for k in ("x_um", "y_um", "z_um") if k in errors})
    truth = read_values(run[L.TRUTH]) if L.TRUTH in run else {}
    for key in (
        "actual_x_um",
        "actual_y_um",
        "actual_z_um",
        "emitter_x_um",
        "emitter_y_um",
        "emitter_z_um",
    ):
        if key in truth:  # simulator: where the focus really is, where the emitter is
            summary[f"truth_{key}"] = float(truth[key])
    return AnalysisOutput("refocus", values, errors, summary)


# --------------------------------------------------------------------------------- figure


def figure(run: h5py.File, path: Path) -> Path | None:
    """The refocus (design section 6): the coarse xy
    raster with the coarse fit and the final position, the z scan, and the closed-loop lines
    per axis with their fits. From the file alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    group = run.get(f"{L.DATA}/refocus")
    if not isinstance(group, h5py.Group) or "xy_image" not in group:
        return None
    info = read_values(group)
    fig = Figure(figsize=(13, 3.8), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    xs, ys = group["xy_x_um"][()], group["xy_y_um"][()]
    dx = float(xs[1] - xs[0])
    axes[0].imshow(
        group["xy_image"][()],
        origin="lower",
        cmap="magma",
        extent=[xs[0] - dx / 2, xs[-1] + dx / 2, ys[0] - dx / 2, ys[-1] + dx / 2],
    )
    if "coarse_x_um" in info:
        axes[0].plot(info["coarse_x_um"], info["coarse_y_um"], "c+", ms=12, label="coarse fit")
    if "final_x_um" in info:
        axes[0].plot(info["final_x_um"], info["final_y_um"], "gx", ms=10, label="final (commanded)")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[0].set_xlabel("x (µm)")
    axes[0].set_ylabel("y (µm)")
    axes[0].set_title("xy raster")
    if "z_scan_um" in group:
        axes[1].plot(group["z_scan_um"][()], group["z_scan_counts"][()], "o", ms=3)
        axes[1].set_xlabel("z (µm)")
        axes[1].set_title("z scan")
    lines = _lines(group)
    for k, axis in enumerate(AXES[:2]):
        ax = axes[2 + k]
        for (a, it), (pos, counts) in sorted(lines.items()):
            if a != axis:
                continue
            ax.plot(pos, counts, "o-", ms=3, lw=0.8, label=f"iteration {it + 1}")
            f = fit_line(pos, counts)
            if f is not None:
                fine = np.linspace(pos[0], pos[-1], 200)
                ax.plot(
                    fine,
                    f.background
                    + f.amplitude * np.exp(-((fine - f.centre) ** 2) / (2 * f.sigma**2)),
                    "k-",
                    lw=0.7,
                )
        ax.set_xlabel(f"{axis} (µm)")
        ax.set_title(f"closed loop, {axis}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    axes[1].set_ylabel("counts")
    frac = info.get("peak_fraction", math.nan)
    fig.suptitle(f"{Path(run.filename).name}: final rate {frac:.2f} of the fitted peak", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def _line_panel(axis: str) -> LivePlot:
    return LivePlot(
        f"closed-loop lines along {axis} (every iteration)",
        y=f"rows:{axis}_counts",
        x=f"rows:{axis}_um",
        x_label=f"{axis} [µm]",
        y_label="counts",
        line=False,
    )


LIVE_PLOTS = (
    LivePlot("xy raster (coarse)", y="refocus/xy_image", x_label="x [px]", y_label="y [px]"),
    LivePlot(
        "z scan (coarse)",
        y="refocus/z_scan_counts",
        x="refocus/z_scan_um",
        x_label="z [µm]",
        y_label="counts",
    ),
    *(_line_panel(a) for a in AXES),
)

MEASUREMENT = Measurement("refocus", Refocus, analyse, figure, live_plots=LIVE_PLOTS)
