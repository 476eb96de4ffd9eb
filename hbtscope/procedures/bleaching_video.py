"""Wide-field bleaching video: LED on the whole field, a camera frame every N s, survival curve.

As in Pierini et al. (Fig. 4b: fraction of CsPbBr3 nanocubes still emitting under the LED
versus time, per dilution) and D'Amato et al. (Fig. 2a: 1:10 ... 1:200 after 1 h of LED):
the LED illuminates the field continuously, the camera takes a frame of ``exposure_s`` every
``interval_s`` for ``duration_s``; the emitters are found in frame 0 and each one is followed
through the video.

Procedure: LED at ``led_power_fraction`` (laser off), frames streamed one by one into the run
file as they come (``data/video/frames``, one HDF5 chunk per frame: a video of hours never sits
in memory), their start times (``data/video/time_s``), LED off at the end (and on stop).

Analysis (:func:`analyse`, from the file alone, frame by frame):

1. emitters in frame 0: :func:`hbtscope.analysis.images.find_emitters` (difference of
   Gaussians, auto threshold, sub-pixel Gaussian fits; PSF sigma ``psf_sigma_um``);
2. the field's drift (open-loop piezo creep after the move to the field) followed by
   cross-correlation on frame 0 (:class:`hbtscope.analysis.bleaching.DriftFollower`);
3. per emitter an intensity trace (background-subtracted aperture sum) and its SNR in each
   frame; *emitting* when SNR >= ``alive_snr`` (:func:`~hbtscope.analysis.images.count_surviving`);
4. survival curve (:func:`~hbtscope.analysis.images.survival_curve`): ``survival_mode``
   ``not_bleached`` (default: an emitter is alive until the last frame it emits in, so a
   blinking OFF frame is not bleaching) or ``emitting`` (counted frame by frame, as the
   papers count), with a 68 % Clopper-Pearson interval. (Issue 12 asked for Wilson's score
   interval; the library's survival curve uses Clopper-Pearson because Wilson's under-covers at
   the tens of emitters of a video -- measured in tests/analysis/test_survival_coverage.py);
5. time to 50 % (:func:`hbtscope.analysis.bleaching.time_to_fraction`) and the fraction
   surviving after ``report_after_s``.

:func:`compare_survival` puts several runs side by side (dilutions: the run parameter
``sample_label``), :func:`compare_figure` overlays their curves.

Run file: ``data/video/frames`` (n, ny, nx) uint16 ADU, ``data/video/time_s`` (n,),
``data/video`` attributes (``pixel_um``, ``exposure_s``, ``n_frames``...); ``analysis/
bleaching_video`` (emitter table, traces, alive matrix, survival curve, t50); ``truth/`` on the
simulator (the field's emitters and their bleaching times).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pymeasure.experiment import FloatParameter, ListParameter, Parameter

from hbtscope import events as ev
from hbtscope.analysis.bleaching import DriftFollower, time_to_fraction
from hbtscope.analysis.images import count_surviving, find_emitters, survival_curve
from hbtscope.procedures.base import AnalysisOutput, HbtProcedure, Measurement
from hbtscope.procedures.live_plots import LivePlot
from hbtscope.storage import layout as L
from hbtscope.storage.runfile import read_parameters, read_values
from hbtscope.units import PS_PER_S

NAME = "bleaching_video"
FRAMES = "video/frames"
TIMES = "video/time_s"
#: frames read from the file at once by the analysis (256 x 256 uint16: 8 MiB)
BLOCK = 64


class BleachingVideo(HbtProcedure):
    """Wide-field bleaching video under the LED: survival curve (Pierini et al. Fig. 4b)."""

    NAME = NAME

    led_power_fraction = FloatParameter(
        "LED power (fraction of full)", minimum=0.0, maximum=1.0, default=1.0
    )
    interval_s = FloatParameter(
        "Frame every", units="s", minimum=0.01, maximum=3600.0, default=20.0
    )
    duration_s = FloatParameter(
        "Video duration", units="s", minimum=0.0, maximum=7 * 86400.0, default=3600.0
    )
    exposure_s = FloatParameter("Exposure", units="s", minimum=1e-5, maximum=100.0, default=0.1)
    sample_label = Parameter("Sample (e.g. dilution 1:20)", default="")
    psf_sigma_um = FloatParameter(
        "PSF Gaussian sigma (analysis)", units="um", minimum=0.01, maximum=5.0, default=0.11
    )
    aperture_px = FloatParameter(
        "Aperture radius (analysis)", units="px", minimum=0.5, maximum=20.0, default=2.0
    )
    alive_snr = FloatParameter(
        "Emitting when SNR above (analysis)", minimum=1.0, maximum=1000.0, default=5.0
    )
    survival_mode = ListParameter(
        "Survival counts", choices=["not_bleached", "emitting"], default="not_bleached"
    )
    report_after_s = FloatParameter(
        "Report the surviving fraction after", units="s", minimum=0.0, default=1200.0
    )
    x_um = FloatParameter("Stage x (NaN = stay)", units="um", default=float("nan"))
    y_um = FloatParameter("Stage y (NaN = stay)", units="um", default=float("nan"))
    z_um = FloatParameter("Stage z (NaN = stay)", units="um", default=float("nan"))

    NAN_MEANS = {"x_um": "stay", "y_um": "stay", "z_um": "stay"}
    #: at most this many frames in one video (a 256 x 256 uint16 frame is 128 KiB: 2.6 GB)
    MAX_FRAMES = 20_000

    def n_frames(self) -> int:
        return int(math.floor(self.duration_s / self.interval_s + 1e-9)) + 1

    def check_setup(self, setup) -> None:
        led, camera = setup.led, setup.camera  # a missing role is reported now
        max_fraction = float(getattr(led, "max_fraction", 1.0))
        if self.led_power_fraction > max_fraction:
            self.fail("led_power_fraction", f"exceeds the LED's max_fraction = {max_fraction}")
        lo, hi = camera.exposure_range_s
        if not lo <= self.exposure_s <= hi:
            self.fail("exposure_s", f"is outside the camera's exposure range [{lo}, {hi}] s")
        if self.exposure_s >= self.interval_s:
            self.fail("exposure_s", f"must be shorter than the frame interval {self.interval_s} s")
        if self.n_frames() > self.MAX_FRAMES:
            self.fail(
                "interval_s",
                f"with duration_s = {self.duration_s} gives {self.n_frames()} frames; at most "
                f"{self.MAX_FRAMES} allowed",
            )
        self.check_stage_target(setup, x_um=self.x_um, y_um=self.y_um, z_um=self.z_um)

    def startup(self) -> None:
        setup = self.setup
        if "laser" in setup.instruments:
            setup.laser.disable()  # wide field only: the LED's dose, not the laser's
        self.move_if_given(self.x_um, self.y_um, self.z_um)
        setup.camera.exposure_s = self.exposure_s
        setup.led.power_fraction = self.led_power_fraction
        setup.led.enable()

    def _wait_until(self, t_s: float) -> None:
        """Wait on the setup's clock until ``t_s``, in steps short enough to stop."""
        clock = self.setup.clock
        while (left := t_s - clock.now()) > 0:
            clock.sleep(min(left, 1.0))
            self.check_stop()

    def _field_um(self, shape: tuple[int, ...]) -> tuple[tuple[float, float], tuple[float, float]]:
        """The camera's field on the sample (simulator truth only)."""
        camera = self.setup.camera
        if hasattr(camera, "field_um"):
            return camera.field_um()
        x, y, _ = self.setup.world.focus_um  # the twin centres its ROI on the stage command
        p = float(camera.pixel_um)
        h, w = shape[-2:]
        return (x - w * p / 2, x + w * p / 2), (y - h * p / 2, y + h * p / 2)

    def execute(self) -> None:
        setup = self.setup
        camera, clock = setup.camera, setup.clock
        n = self.n_frames()
        t0_s, t0_ps = clock.now(), clock.now_ps()
        self.field: Any = None
        done = 0
        try:
            for k in range(n):
                self._wait_until(t0_s + k * self.interval_s)
                start_ps = clock.now_ps()
                frame = np.asarray(camera.acquire())
                self.publish(ev.ArrayAppended(FRAMES, frame, "ADU"))
                self.publish(ev.ArrayAppended(TIMES, np.float64((start_ps - t0_ps) / PS_PER_S)))
                done = k + 1
                if k == 0 and setup.is_simulated:
                    self.field = self._field_um(frame.shape)
                self.progress(100.0 * done / n)
                row = {"frame": k, "time_s": (start_ps - t0_ps) / PS_PER_S}
                if k == 0:
                    live = _LiveSurvival(frame, camera.pixel_um, self)
                row.update(live.add(frame))
                self.emit("results", row)
                self.check_stop()
        finally:
            self.publish_values(
                "video",
                {
                    "n_frames": done,
                    "pixel_um": float(camera.pixel_um),
                    "exposure_s": float(camera.exposure_s),
                    "led_power_fraction": float(setup.led.power_fraction),
                },
            )
            if setup.is_simulated and self.field is not None:
                self._publish_field_truth(t0_ps)

    def _publish_field_truth(self, t0_ps: int) -> None:
        """The field's emitters, frame-0 pixel positions and bleaching times (from t0)."""
        (x0, x1), (y0, y1) = self.field
        truth = self.setup.world.widefield_truth((x0, x1), (y0, y1))
        p = float(self.setup.camera.pixel_um)
        bleach = np.asarray(truth["bleach_time_ps"], float)
        self.publish_truth(
            {
                "field_x0_um": float(x0),
                "field_y0_um": float(y0),
                "emitter_index": truth["index"],
                "emitter_species": list(truth["species"]),
                "emitter_x_um": truth["x_um"],
                "emitter_y_um": truth["y_um"],
                # pixel centres at integers (analysis.images): x_px = (x - x0)/p - 1/2
                "emitter_x_px": (truth["x_um"] - x0) / p - 0.5,
                "emitter_y_px": (truth["y_um"] - y0) / p - 0.5,
                "bleach_time_s": (bleach - t0_ps) / PS_PER_S,
                "now_s": (self.setup.clock.now_ps() - t0_ps) / PS_PER_S,
            }
        )

    def shutdown(self) -> None:
        if self.setup is not None and "led" in self.setup.instruments:
            self.setup.led.disable()


# ----------------------------------------------------------------------------- analysis


class _LiveSurvival:
    """The live view's survival: the emitters of frame 0 followed frame by frame (drift by
    cross-correlation), the fraction *emitting* in each frame (SNR >= ``alive_snr``, as the
    papers count). The analysis redoes it from the file (also ``not_bleached`` mode, which
    needs the frames to come and drops emitters the drift takes out of the field)."""

    def __init__(self, frame0: np.ndarray, pixel_um: float, procedure: Any):
        self.radius_px = float(procedure.aperture_px)
        self.threshold = float(procedure.alive_snr)
        frame0 = np.asarray(frame0, dtype=np.float64)
        border = int(math.ceil(self.radius_px + 4.0)) + 1
        sigma_px = float(procedure.psf_sigma_um) / float(pixel_um)
        found = find_emitters(frame0, sigma_px=sigma_px, exclude_border_px=border)
        self.positions = np.column_stack([found["x"], found["y"]]).reshape(-1, 2)
        self.follower = DriftFollower(frame0)
        self.first = True

    def add(self, frame: np.ndarray) -> dict[str, float]:
        """``n_emitters`` (of frame 0) and the fraction ``emitting`` in ``frame``."""
        n = len(self.positions)
        if n == 0:
            return {"n_emitters": 0, "emitting_fraction": math.nan}
        frame = np.asarray(frame, dtype=np.float64)
        shift = np.zeros(2) if self.first else self.follower.shift(frame)
        self.first = False
        counts = count_surviving(
            frame[None],
            self.positions,
            radius_px=self.radius_px,
            threshold=self.threshold,
            shifts=np.asarray(shift, dtype=np.float64).reshape(1, 2),
        )
        return {"n_emitters": n, "emitting_fraction": float(np.mean(counts.alive[0]))}


def _param(params: dict[str, Any], name: str, default: Any) -> Any:
    value = params.get(name, default)
    return default if value is None else value


def _frames(run: h5py.File) -> tuple[h5py.Dataset, np.ndarray]:
    """The frames and their times (only frames whose time was stored: a file left by a killed
    writer may hold one more frame than times)."""
    data = run.get(L.DATA)
    if data is None or FRAMES not in data or TIMES not in data:
        raise ValueError(f"{run.filename}: no video (data/{FRAMES}, data/{TIMES})")
    frames, times = data[FRAMES], data[TIMES][()].astype(float)
    n = min(frames.shape[0], times.size)
    if n == 0:
        raise ValueError(f"{run.filename}: the video has no frame")
    return frames, times[:n]


def _survival_inputs(run: h5py.File, params: dict[str, Any]):
    """Emitters of frame 0, per-frame drift, and the per-emitter traces (frame by frame).

    Two passes over the frames: the drift first, then the apertures; an emitter whose
    aperture and background annulus leave the frame in any frame (the field drifted over it)
    is dropped (``n_left_field``): outside the frame it would look bleached."""
    frames, times = _frames(run)
    video = read_values(run[L.DATA]["video"]) if "video" in run[L.DATA] else {}
    pixel_um = float(video.get("pixel_um", 0.1625))
    sigma_px = float(_param(params, "psf_sigma_um", 0.11)) / pixel_um
    radius = float(_param(params, "aperture_px", 2.0))
    threshold = float(_param(params, "alive_snr", 5.0))
    n = times.size
    frame0 = frames[0].astype(np.float64)
    border = int(math.ceil(radius + 4.0)) + 1
    found = find_emitters(frame0, sigma_px=sigma_px, exclude_border_px=border)
    follower = DriftFollower(frame0)
    shifts = np.zeros((n, 2))
    for a in range(1, n, BLOCK):
        block = frames[a : min(a + BLOCK, n)].astype(np.float64)
        for j, frame in enumerate(block):
            shifts[a + j] = follower.shift(frame)
    ny, nx = frame0.shape
    xs = found["x"][None, :] + shifts[:, 1:2]
    ys = found["y"][None, :] + shifts[:, 0:1]
    inside = np.all(
        (xs >= border - 1) & (xs <= nx - border) & (ys >= border - 1) & (ys <= ny - border),
        axis=0,
    )
    emitters = found[inside]
    pos = np.column_stack([emitters["x"], emitters["y"]])
    alive, signal, snr = [], [], []
    for a in range(0, n, BLOCK):
        block = frames[a : min(a + BLOCK, n)].astype(np.float64)
        counts = count_surviving(
            block, pos, radius_px=radius, threshold=threshold, shifts=shifts[a : a + len(block)]
        )
        alive.append(counts.alive)
        signal.append(counts.signal)
        snr.append(counts.snr)
    return {
        "times": times,
        "emitters": emitters,
        "n_left_field": int((~inside).sum()),
        "shifts": shifts,
        "alive": np.concatenate(alive),
        "signal": np.concatenate(signal),
        "snr": np.concatenate(snr),
        "pixel_um": pixel_um,
        "shifts_refused": follower.n_refused,
    }


def _fraction_after(curve, t: float) -> tuple[float, float, float, float, float]:
    """(time, fraction, err, lower, upper) at the last frame at or before ``t``."""
    k = int(np.searchsorted(curve.times_s, t + 1e-9, side="right")) - 1
    k = min(max(k, 0), curve.times_s.size - 1)
    return (
        float(curve.times_s[k]),
        float(curve.fraction[k]),
        float(curve.fraction_err[k]),
        float(curve.lower[k]),
        float(curve.upper[k]),
    )


def analyse(run: h5py.File) -> AnalysisOutput:
    """The bleaching video's survival analysis, from the run file alone (module doc)."""
    params, _ = read_parameters(run)
    mode = str(_param(params, "survival_mode", "not_bleached"))
    s = _survival_inputs(run, params)
    alive = s["alive"]
    curve = survival_curve(s["times"], alive, mode=mode)
    emitting = survival_curve(s["times"], alive, mode="emitting")
    em = s["emitters"]
    n_em = int(em.size)
    # the last frame each emitter emits in: its bleaching time (NaN if never, inf if to the end)
    any_alive = alive.any(axis=0)
    last = np.where(any_alive, alive.shape[0] - 1 - np.argmax(alive[::-1], axis=0), -1)
    bleached = any_alive & (last < alive.shape[0] - 1)
    last_time = np.where(any_alive, s["times"][np.maximum(last, 0)], np.nan)
    values: dict[str, Any] = {
        "survival_mode": mode,
        "n_frames": int(s["times"].size),
        "n_emitters": n_em,
        "n_left_field": s["n_left_field"],
        "pixel_um": s["pixel_um"],
        "times_s": s["times"],
        "fraction": curve.fraction,
        "fraction_lower": curve.lower,
        "fraction_upper": curve.upper,
        "n_alive": curve.n_alive.astype(np.int64),
        "fraction_emitting": emitting.fraction,
        "drift_px": s["shifts"],
        "drift_frames_refused": int(s["shifts_refused"]),
        "emitter_x_px": em["x"],
        "emitter_y_px": em["y"],
        "emitter_snr": em["snr"],
        "emitter_integrated": em["integrated"],
        "trace_signal": s["signal"],
        "trace_snr": s["snr"],
        "alive": alive.astype(np.uint8),
        "emitter_bleached": bleached.astype(np.uint8),
        "emitter_last_emitting_s": last_time,
        "interval": "68.27 % Clopper-Pearson",
    }
    errors: dict[str, Any] = {
        "fraction": curve.fraction_err,
        "emitter_x_px": em["x_err"],
        "emitter_y_px": em["y_err"],
    }
    summary: dict[str, Any] = {"n_emitters": n_em, "n_frames": values["n_frames"]}
    if n_em == 0:
        values["error"] = "no emitter found in frame 0"
        summary["error"] = values["error"]
        return AnalysisOutput(NAME, values, errors, summary)
    report_t = float(_param(params, "report_after_s", 1200.0))
    t_rep, f_rep, f_err, f_lo, f_hi = _fraction_after(curve, report_t)
    values.update(
        report_time_s=t_rep,
        fraction_at_report=f_rep,
        fraction_at_report_lower=f_lo,
        fraction_at_report_upper=f_hi,
        fraction_final=float(curve.fraction[-1]),
        duration_s=float(s["times"][-1]),
    )
    errors["fraction_at_report"] = f_err
    errors["fraction_final"] = float(curve.fraction_err[-1])
    half = time_to_fraction(s["times"], curve.fraction, curve.lower, curve.upper, 0.5)
    values.update(
        t50_s=half.time,
        t50_lower_s=half.lower,
        t50_upper_s=half.upper,
        t50_reached=half.reached,
    )
    errors["t50_s"] = half.error
    if not half.reached:
        values["t50_note"] = f"fewer than half bleached in {values['duration_s']:.0f} s"
    summary.update(
        sample_label=str(_param(params, "sample_label", "")),
        report_time_s=t_rep,
        fraction_at_report=f_rep,
        fraction_at_report_err=f_err,
        fraction_at_report_ci=[f_lo, f_hi],
        fraction_final=values["fraction_final"],
        fraction_final_err=errors["fraction_final"],
        t50_s=half.time,
        t50_s_err=half.error,
        t50_ci_s=[half.lower, half.upper],
    )
    truth = _truth_fraction(run, em, t_rep)
    if truth is not None:
        summary["truth_fraction_at_report"] = truth
    return AnalysisOutput(NAME, values, errors, summary)


def _truth_fraction(run: h5py.File, emitters: np.ndarray, t: float) -> float | None:
    """On the simulator: of the emitters the analysis follows, the fraction whose simulated
    counterpart (the truth emitter within 1.5 px of its frame-0 position) has not bleached at
    ``t``; None without truth or when none matches."""
    group = run.get(L.TRUTH)
    if not isinstance(group, h5py.Group) or "bleach_time_s" not in group:
        return None
    tx, ty = group["emitter_x_px"][()], group["emitter_y_px"][()]
    bleach = group["bleach_time_s"][()]
    if bleach.size == 0:
        return None
    alive = []
    for x, y in zip(emitters["x"], emitters["y"], strict=True):
        d = np.hypot(tx - x, ty - y)
        if d.min() < 1.5:
            alive.append(bleach[int(np.argmin(d))] > t)
    return float(np.mean(alive)) if alive else None


# ----------------------------------------------------------------------------- figures


def _analysis_values(run: h5py.File) -> dict[str, Any]:
    group = run.get(f"{L.ANALYSIS}/{NAME}")
    if isinstance(group, h5py.Group) and "fraction" in group:
        return read_values(group)
    out = analyse(run)
    values = dict(out.values)
    values.update({f"{k}_err": v for k, v in out.errors.items()})
    return values


def _label(run: h5py.File) -> str:
    params, _ = read_parameters(run)
    return str(_param(params, "sample_label", "")) or Path(run.filename).stem


def figure(run: h5py.File, path: Path) -> Path | None:
    """Frame 0 with the emitters found (green: still emitting at the end, red: bleached) and
    the survival curve with its 68 % interval (Pierini et al. Fig. 4b; D'Amato et al.
    2023 Fig. 2a), from the run file alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    try:
        frames, _ = _frames(run)
    except ValueError:
        return None
    v = _analysis_values(run)
    fig = Figure(figsize=(10, 4.2))
    FigureCanvasAgg(fig)
    ax0, ax1 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.25]})
    frame0 = frames[0].astype(float)
    lo, hi = np.percentile(frame0, [1, 99.7])
    ax0.imshow(frame0, cmap="gray", vmin=lo, vmax=hi, origin="lower")
    x, y = np.asarray(v.get("emitter_x_px", [])), np.asarray(v.get("emitter_y_px", []))
    gone = np.asarray(v.get("emitter_bleached", np.zeros(x.size)), bool)
    ax0.scatter(x[~gone], y[~gone], s=60, facecolors="none", edgecolors="lime", lw=1)
    ax0.scatter(x[gone], y[gone], s=60, facecolors="none", edgecolors="red", lw=1)
    ax0.set_title(f"frame 0: {x.size} emitters (red: bleached)")
    ax0.set_xlabel("x (px)")
    ax0.set_ylabel("y (px)")
    _draw_curve(ax1, v, _label(run))
    ax1.legend(loc="best", fontsize=8)
    fig.suptitle(Path(run.filename).name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


def _draw_curve(ax, v: dict[str, Any], label: str, color=None) -> None:
    t = np.asarray(v["times_s"], float) / 60.0
    f = np.asarray(v["fraction"], float)
    # one point per frame (the fraction at that frame), joined as the t50 interpolates
    (line,) = ax.plot(t, f, "-o", ms=3, color=color, label=label)
    ax.fill_between(
        t,
        np.asarray(v["fraction_lower"], float),
        np.asarray(v["fraction_upper"], float),
        alpha=0.25,
        color=line.get_color(),
    )
    t50 = float(v.get("t50_s", math.nan))
    if math.isfinite(t50):
        ax.axvline(t50 / 60.0, color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("time under the LED (min)")
    ax.set_ylabel(f"fraction surviving ({v.get('survival_mode', '')})")
    ax.set_ylim(-0.02, 1.05)


def _open_all(runs: Iterable[Any]) -> list[tuple[h5py.File, bool]]:
    from hbtscope.storage import open_run

    out = []
    for r in runs:
        out.append((r, False) if isinstance(r, h5py.File) else (open_run(r), True))
    return out


def compare_survival(runs: Iterable[Any], level: float = 0.5) -> list[dict[str, Any]]:
    """Several bleaching videos side by side (e.g. dilutions 1:10 ... 1:200, D'Amato et al.
    2023 Fig. 2a): per run (a path or an open run file) its label (``sample_label``), number
    of emitters, surviving fraction after the common time (the shortest video's last frame)
    with its error and interval, and the time to ``level`` with its interval.

    Read from each run's ``analysis/bleaching_video`` (analysed again if absent).
    """
    opened = _open_all(runs)
    try:
        vals = [(_label(f), _analysis_values(f)) for f, _ in opened]
    finally:
        for f, mine in opened:
            if mine:
                f.close()
    if not vals:
        return []
    common = min(float(np.asarray(v["times_s"])[-1]) for _, v in vals)
    out = []
    for label, v in vals:
        t = np.asarray(v["times_s"], float)
        f, lo, hi = (
            np.asarray(v[k], float) for k in ("fraction", "fraction_lower", "fraction_upper")
        )
        k = max(int(np.searchsorted(t, common + 1e-9, side="right")) - 1, 0)
        cross = time_to_fraction(t, f, lo, hi, level)
        out.append(
            {
                "label": label,
                "n_emitters": int(v["n_emitters"]),
                "common_time_s": float(t[k]),
                "fraction": float(f[k]),
                "fraction_err": float(max(hi[k] - f[k], f[k] - lo[k])),
                "fraction_ci": [float(lo[k]), float(hi[k])],
                "t_level_s": cross.time,
                "t_level_s_err": cross.error,
                "t_level_ci_s": [cross.lower, cross.upper],
                "level": level,
            }
        )
    return out


def compare_figure(runs: Iterable[Any], path: Path) -> Path | None:
    """Survival curves of several runs overlaid (D'Amato et al. Fig. 2a), from the files."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    opened = _open_all(runs)
    try:
        curves = [(_label(f), _analysis_values(f)) for f, _ in opened]
    finally:
        for f, mine in opened:
            if mine:
                f.close()
    if not curves:
        return None
    fig = Figure(figsize=(6, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for label, v in curves:
        _draw_curve(ax, v, f"{label} (n = {int(v['n_emitters'])})")
    ax.legend(loc="best", fontsize=8)
    ax.set_title("bleaching under the LED")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)


LIVE_PLOTS = (
    LivePlot("latest frame", y=FRAMES, x_label="x [px]", y_label="y [px]"),
    LivePlot(
        "emitting (of the emitters in frame 0), frame by frame",
        y="rows:emitting_fraction",
        x="rows:time_s",
        x_label="time [s]",
        y_label="fraction emitting",
    ),
    LivePlot(
        "survival curve (68 % interval, at the end)",
        y="",
        x_label="time [s]",
        y_label="fraction surviving",
        fit_points=("times_s", "fraction"),
        band=("fraction_lower", "fraction_upper"),
    ),
)

MEASUREMENT = Measurement(NAME, BleachingVideo, analyse, figure, live_plots=LIVE_PLOTS)

__all__ = [
    "BleachingVideo",
    "MEASUREMENT",
    "analyse",
    "compare_figure",
    "compare_survival",
    "figure",
]
