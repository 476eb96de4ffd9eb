"""Confocal raster scan: counts image per detector, TCSPC per pixel and FLIM, repeat-and-sum
with drift correction, emitter list. One measurement (design section 6).

Acquisition (hardware-timed, no software timing per pixel): the scan clock (role ``daq``)
moves the stage through the raster on its sample clock and sends one pixel marker per pixel
(and one at the end) into the tagger. The tagger bins the SPAD clicks between consecutive
markers (``CountBetweenMarkers``, one per SPAD) and, with pulsed excitation, histograms the
delay of every click after its laser sync per pixel (``TimeDifferences`` with the marker as
``next_channel``: one TCSPC histogram per pixel). The procedure only polls the tagger once per
group of lines (``readout_s``), emits the completed lines as live data and checkpoints the
frame to the run file every ``checkpoint_s`` of scan time: the per-pixel work is numpy on
whole lines. With ``back_scan`` each line is also recorded on the way back (a bidirectional
raster; the back image is stored flipped into the forward orientation).

Repeat-and-sum (Baronnier et al. 2022): ``repeats`` frames; the analysis registers each frame
on the first by cross-correlation (:func:`hbtscope.analysis.images.register_and_sum`,
sub-pixel by upsampled DFT) and sums the aligned frames; the plain sum is kept to compare.

Analysis: emitters found on the drift-corrected sum (:func:`hbtscope.analysis.images.
find_emitters`: difference-of-Gaussians detection, bounded Gaussian fit per spot) with
positions in stage µm and their uncertainties, peak count rate and SNR; pulsed: the two
detectors' TCSPC stacks are aligned on their fitted IRF positions and summed, the FLIM image
is :func:`hbtscope.analysis.flim.flim_fit` (bi-exponential with a Gaussian IRF, lifetimes
global or per pixel, Poisson maximum likelihood; Pierini et al. eq. 2) and every emitter's
region (pixels within 2 PSF sigma) gets a mono-exponential lifetime with IRF
(:func:`hbtscope.analysis.lifetime.fit_decay`).

Run file: ``data/scan/fast_um``, ``slow_um`` (pixel centres), ``data/scan/counts/frame_NNN``
(2, ny, nx) int32 counts per detector (rows: slow axis), ``counts_back/frame_NNN`` (back
scan), ``data/scan/tcspc`` (2, ny, nx, n_bins) TCSPC per detector summed over frames,
attributes of ``data/scan`` (plane, frames done, dwell, fixed coordinate); ``analysis/
confocal_scan``; ``truth/`` the emitters in the field (simulator). docs/measurements/
confocal_scan.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pymeasure.experiment import (
    BooleanParameter,
    FloatParameter,
    IntegerParameter,
    ListParameter,
)

from hbtscope.analysis.flim import flim_fit
from hbtscope.analysis.images import find_emitters, gaussian2d_fit, register_and_sum
from hbtscope.analysis.lifetime import fit_decay
from hbtscope.procedures.base import AbortRequested, AnalysisOutput, HbtProcedure, Measurement
from hbtscope.storage import layout as L
from hbtscope.storage.runfile import read_parameters, read_values
from hbtscope.units import FWHM_PER_SIGMA, PS_PER_S

#: the scan planes: (fast axis, slow axis, fixed axis) as stage axis indices
PLANES = {"xy": (0, 1, 2), "xz": (0, 2, 1), "yz": (1, 2, 0)}
AXIS_NAMES = ("x", "y", "z")
#: the tagger's per-pixel TCSPC histograms of both SPADs may hold at most this (int32)
MAX_TCSPC_BYTES = 1 << 30
#: a scan (all frames) may last at most this long
MAX_SCAN_S = 24 * 3600.0
#: what the tagger may be behind the scan clock at the end of a frame before it is an error
TAGGER_CATCH_UP_S = 5.0


# ---------------------------------------------------------------------------- acquisition


def raster_positions(
    centre_um: tuple[float, float, float],
    plane: str,
    fast_um: np.ndarray,
    slow_um: np.ndarray,
    back_scan: bool,
) -> np.ndarray:
    """The (n, 3) stage positions of one frame, in the order the scan clock visits them.

    Line ``i`` (slow coordinate ``slow_um[i]``) runs along ``fast_um``; with ``back_scan`` it
    runs back along ``fast_um[::-1]`` before the next line. Built by broadcasting (no loop).
    """
    f_ax, s_ax, _ = PLANES[plane]
    nx, ny = fast_um.size, slow_um.size
    fast = np.concatenate([fast_um, fast_um[::-1]]) if back_scan else fast_um
    per_line = fast.size
    xyz = np.empty((ny, per_line, 3))
    xyz[:] = np.asarray(centre_um, float)
    xyz[:, :, f_ax] = fast[None, :]
    xyz[:, :, s_ax] = slow_um[:, None]
    assert per_line == nx * (2 if back_scan else 1)
    return xyz.reshape(-1, 3)


def split_lines(values: np.ndarray, nx: int, back_scan: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel values of whole lines in raster order -> (forward (n, nx), back (n, nx) in
    forward orientation, empty without back scan)."""
    per_line = nx * (2 if back_scan else 1)
    lines = values.reshape(-1, per_line, *values.shape[1:])
    fwd = lines[:, :nx]
    back = lines[:, nx:][:, ::-1] if back_scan else lines[:, :0]
    return fwd, back


@dataclass
class TaggerRaster:
    """The tagger measurements of one hardware-timed raster: counts between pixel markers per
    SPAD and, when ``tcspc_bins`` > 0, a TCSPC histogram per pixel and SPAD."""

    counters: list[Any]
    tcspc: list[Any]

    @classmethod
    def create(
        cls, tagger, n_pixels: int, tcspc_bin_ps: int = 0, tcspc_bins: int = 0
    ) -> TaggerRaster:
        api, dev = tagger.api, tagger.device
        marker = tagger.channels["pixel_marker"]
        counters = [
            api.CountBetweenMarkers(dev, ch, marker, n_values=n_pixels)
            for ch in tagger.spad_channels
        ]
        tcspc = []
        if tcspc_bins > 0:
            for ch in tagger.spad_channels:
                td = api.TimeDifferences(
                    dev,
                    ch,
                    start_channel=tagger.sync_channel,
                    next_channel=marker,
                    binwidth=int(tcspc_bin_ps),
                    n_bins=int(tcspc_bins),
                    n_histograms=n_pixels,
                )
                td.setMaxCounts(1)  # stop at the rollover: the end-of-raster marker
                tcspc.append(td)
        return cls(counters, tcspc)

    def filled(self) -> int:
        """Pixels whose closing marker the tagger has seen (bins fill in order)."""
        return int(np.count_nonzero(self.counters[0].getBinWidths()))

    def counts(self) -> np.ndarray:
        """(n_pixels, n_spads) int32."""
        return np.stack([c.getData() for c in self.counters], axis=1)

    def ready(self) -> bool:
        return all(c.ready() for c in self.counters) and all(t.ready() for t in self.tcspc)

    def histograms(self) -> np.ndarray:
        """(n_pixels, n_spads, n_bins) int32."""
        return np.stack([t.getData() for t in self.tcspc], axis=1)

    def stop(self) -> None:
        for m in (*self.counters, *self.tcspc):
            m.stop()


def wait_for_tagger(clock, raster: TaggerRaster, check_stop) -> None:
    """After the scan clock is done: give the tagger time to close the last bins."""
    waited = 0.0
    while not raster.ready():
        if waited >= TAGGER_CATCH_UP_S:
            raise RuntimeError(
                f"the tagger did not see the end of the raster {TAGGER_CATCH_UP_S} s after the "
                "scan clock finished (pixel marker channel wired? tagger overflow?)"
            )
        clock.sleep(0.01)
        waited += 0.01
        check_stop()


def scan_truth(setup, box_um: np.ndarray) -> dict[str, Any]:
    """Simulator truth of a scan: the emitters inside ``box_um`` ((3, 2) lo/hi per axis,
    widened by 1 µm) at the current time (with the sample drift), their lifetimes, and the
    drift velocity. {} on real hardware."""
    world = getattr(setup, "world", None)
    if world is None:
        return {}
    drift = np.asarray(world.drift_um(), float)
    xyz = np.array([[e.x_um, e.y_um, e.z_um] for e in world.emitters]).reshape(-1, 3) + drift
    lo, hi = box_um[:, 0] - 1.0, box_um[:, 1] + 1.0
    inside = np.all((xyz >= lo) & (xyz <= hi), axis=1)
    idx = np.flatnonzero(inside)
    o = world.optics
    w_c = o.collection_w_xy_um or o.psf_w_xy_um
    return {
        "emitter_index": idx.astype(np.int64),
        "emitter_x_um": xyz[idx, 0],
        "emitter_y_um": xyz[idx, 1],
        "emitter_z_um": xyz[idx, 2],
        "emitter_tau_x_ns": np.array([world.emitters[i].tau_x_ns for i in idx], float),
        "emitter_cluster_size": np.array([world.emitters[i].cluster_size for i in idx], np.int64),
        "drift_velocity_um_s": np.asarray(world.drift_velocity_um_s, float),
        "confocal_sigma_um": float(0.5 / math.sqrt(1 / o.psf_w_xy_um**2 + 1 / w_c**2)),
        "time_s": world.clock.now_ps() * 1e-12,
    }


# ------------------------------------------------------------------------------ procedure


class ConfocalScan(HbtProcedure):
    """Confocal raster scan: counts per detector, TCSPC/FLIM, repeat-and-sum, emitters
    (Baronnier et al. 2022; Pierini et al.)."""

    NAME = "confocal_scan"

    plane = ListParameter("Scan plane (fast, slow axis)", choices=list(PLANES), default="xy")
    centre_x_um = FloatParameter("Centre x (NaN = stage)", units="um", default=float("nan"))
    centre_y_um = FloatParameter("Centre y (NaN = stage)", units="um", default=float("nan"))
    centre_z_um = FloatParameter("Centre z (NaN = stage)", units="um", default=float("nan"))
    width_um = FloatParameter(
        "Span along the fast axis", units="um", minimum=0.01, maximum=100.0, default=4.0
    )
    height_um = FloatParameter(
        "Span along the slow axis", units="um", minimum=0.01, maximum=100.0, default=4.0
    )
    pixels_x = IntegerParameter("Pixels along the fast axis", minimum=2, maximum=4096, default=64)
    pixels_y = IntegerParameter("Lines (slow axis)", minimum=2, maximum=4096, default=64)
    dwell_s = FloatParameter("Pixel dwell", units="s", minimum=1e-6, maximum=10.0, default=1e-3)
    back_scan = BooleanParameter("Record the back scan too", default=False)
    repeats = IntegerParameter("Frames to repeat and sum", minimum=1, maximum=1000, default=1)
    drift_correction = BooleanParameter(
        "Register frames by cross-correlation before summing", default=True
    )
    laser_power_W = FloatParameter(
        "Laser power", units="W", minimum=0.0, maximum=1e-2, default=24e-9
    )
    rep_rate_Hz = FloatParameter(
        "Repetition rate", units="Hz", minimum=1e5, maximum=1e8, default=5e6
    )
    pulsed = BooleanParameter("Pulsed (TCSPC histogram per pixel and FLIM)", default=True)
    tcspc_bin_ps = IntegerParameter(
        "TCSPC bin width", units="ps", minimum=1, maximum=100_000, default=400
    )
    tcspc_bins = IntegerParameter("TCSPC bins", minimum=8, maximum=65_536, default=100)
    irf_fwhm_ps = FloatParameter(
        "IRF FWHM (Gaussian) for the FLIM fits",
        units="ps",
        minimum=1.0,
        maximum=1e5,
        default=350.0,
    )
    flim_model = ListParameter("FLIM model", choices=["bi", "mono"], default="bi")
    flim_taus = ListParameter(
        "FLIM lifetimes, global (fitted on the sum) or per pixel",
        choices=["global", "free"],
        default="global",
    )
    flim_min_photons = IntegerParameter(
        "FLIM minimum photons for a fit (else mean arrival time)",
        minimum=1,
        maximum=10**9,
        default=200,
    )
    psf_sigma_um = FloatParameter(
        "Confocal spot Gaussian sigma (emitter finding)",
        units="um",
        minimum=0.01,
        maximum=10.0,
        default=0.1,
    )
    find_threshold = FloatParameter(
        "Emitter detection SNR threshold (NaN = automatic)", default=float("nan")
    )
    readout_s = FloatParameter(
        "Tagger read-out interval (whole lines)",
        units="s",
        minimum=1e-3,
        maximum=10.0,
        default=0.2,
    )
    checkpoint_s = FloatParameter(
        "Frame written to the run file every (scan time)",
        units="s",
        minimum=0.1,
        maximum=3600.0,
        default=10.0,
    )

    NAN_MEANS = {
        "centre_x_um": "the stage's position",
        "centre_y_um": "the stage's position",
        "centre_z_um": "the stage's position",
        "find_threshold": "automatic",
    }

    # --- geometry ---------------------------------------------------------------------

    def _centre(self, setup) -> tuple[float, float, float]:
        given = (self.centre_x_um, self.centre_y_um, self.centre_z_um)
        if all(math.isfinite(v) for v in given):
            return given
        here = setup.stage.position_um
        return tuple(g if math.isfinite(g) else h for g, h in zip(given, here, strict=True))

    def axes_um(self, centre) -> tuple[np.ndarray, np.ndarray]:
        f_ax, s_ax, _ = PLANES[self.plane]
        fast = centre[f_ax] + np.linspace(-0.5, 0.5, self.pixels_x) * self.width_um
        slow = centre[s_ax] + np.linspace(-0.5, 0.5, self.pixels_y) * self.height_um
        return fast, slow

    def n_raster(self) -> int:
        return self.pixels_x * self.pixels_y * (2 if self.back_scan else 1)

    # --- validation ------------------------------------------------------------------

    def check_setup(self, setup) -> None:
        setup.tagger  # noqa: B018 - missing roles reported now, before anything moves
        setup.daq  # noqa: B018
        if "pixel_marker" not in setup.tagger.channels:
            self.fail(
                "plane", f"needs a pixel_marker tagger channel (calibrations of {setup.path})"
            )
        self.check_laser(setup, "laser_power_W", "rep_rate_Hz")
        centre = self._centre(setup)
        fast, slow = self.axes_um(centre)
        f_ax, s_ax, _ = PLANES[self.plane]
        for name, axis, values in (
            ("width_um", f_ax, fast),
            ("height_um", s_ax, slow),
        ):
            travel = setup.stage.travel_um.get(AXIS_NAMES[axis], (-math.inf, math.inf))
            if values.min() < travel[0] or values.max() > travel[1]:
                self.fail(
                    name,
                    f"um around {AXIS_NAMES[axis]} = {centre[axis]} um spans "
                    f"[{values.min():.3f}, {values.max():.3f}] um, outside the stage travel "
                    f"[{travel[0]}, {travel[1]}] um of {setup.path}",
                )
        fixed = PLANES[self.plane][2]
        self.check_stage_target(setup, **{f"centre_{AXIS_NAMES[fixed]}_um": centre[fixed]})
        n = self.n_raster()
        daq = setup.daq
        if n > daq.max_pixels:
            self.fail(
                "pixels_x",
                f"x pixels_y = {n} raster pixels exceed the scan clock's "
                f"buffer of {daq.max_pixels}",
            )
        if self.dwell_s < daq.min_dwell_s:
            self.fail("dwell_s", f"is below the scan clock's minimum {daq.min_dwell_s} s")
        total_s = self.repeats * n * self.dwell_s
        if total_s > MAX_SCAN_S:
            self.fail(
                "repeats",
                f"frames of {n} pixels x {self.dwell_s} s last {total_s:.0f} s, "
                f"more than {MAX_SCAN_S:.0f} s",
            )
        if self.pulsed:
            if setup.tagger.sync_channel is None:
                self.fail("pulsed", "needs a laser sync channel on the tagger (calibrations)")
            period_ps = PS_PER_S / self.rep_rate_Hz
            if self.tcspc_bins * self.tcspc_bin_ps > period_ps:
                self.fail(
                    "tcspc_bins",
                    f"x tcspc_bin_ps = {self.tcspc_bins * self.tcspc_bin_ps}"
                    f" ps exceeds the laser period {period_ps:.0f} ps",
                )
            nbytes = 4 * 2 * n * self.tcspc_bins
            if nbytes > MAX_TCSPC_BYTES:
                self.fail(
                    "tcspc_bins",
                    f"x {n} pixels x 2 SPADs need {nbytes / 2**20:.0f} MiB "
                    f"of TCSPC histograms; at most {MAX_TCSPC_BYTES / 2**20:.0f} MiB "
                    "(fewer bins or pixels)",
                )

    # --- acquisition -----------------------------------------------------------------

    def startup(self) -> None:
        centre = self._centre(self.setup)
        self.centre_um = centre
        self.fast_um, self.slow_um = self.axes_um(centre)
        laser = self.setup.laser
        laser.rep_rate_Hz = self.rep_rate_Hz
        laser.power_W = self.laser_power_W
        laser.enable()

    def execute(self) -> None:
        setup = self.setup
        f_ax, s_ax, fixed = PLANES[self.plane]
        self.publish_array("scan/fast_um", self.fast_um, units="um")
        self.publish_array("scan/slow_um", self.slow_um, units="um")
        info = {
            "plane": self.plane,
            "fast_axis": AXIS_NAMES[f_ax],
            "slow_axis": AXIS_NAMES[s_ax],
            "fixed_axis": AXIS_NAMES[fixed],
            "fixed_um": float(self.centre_um[fixed]),
            "dwell_s": self.dwell_s,
            "frames_done": 0,
        }
        self.publish_values("scan", info)
        box = np.array([[v, v] for v in self.centre_um], float)
        box[f_ax] = self.fast_um[[0, -1]]
        box[s_ax] = self.slow_um[[0, -1]]
        if setup.is_simulated:
            self.publish_truth(scan_truth(setup, box))
        xyz = raster_positions(
            self.centre_um, self.plane, self.fast_um, self.slow_um, self.back_scan
        )
        tcspc_sum = None
        frame_start = []
        for k in range(self.repeats):
            self.check_stop()
            frame_start.append(setup.clock.now())
            hist = self._frame(k, xyz)
            if hist is not None:
                tcspc_sum = hist if tcspc_sum is None else tcspc_sum + hist
                self._publish_tcspc(tcspc_sum)
            info["frames_done"] = k + 1
            self.publish_values("scan", info)
            self.publish_array("scan/frame_start_s", np.asarray(frame_start), units="s")
        if setup.is_simulated:
            self.publish_truth({"time_end_s": setup.clock.now()})

    def _publish_tcspc(self, hist: np.ndarray) -> None:
        """(n_pixels, 2, bins) raster-order histograms -> data/scan/tcspc (2, ny, nx, bins)
        (forward lines; the back scan's photons are added to the same pixel)."""
        fwd, back = split_lines(hist, self.pixels_x, self.back_scan)
        img = fwd + back if self.back_scan else fwd
        img = np.moveaxis(img, 2, 0)  # (2, ny, nx, bins)
        dtype = np.uint16 if img.max(initial=0) < 2**16 else np.int32
        self.publish_array("scan/tcspc", img.astype(dtype), units="counts")

    def _frame(self, k: int, xyz: np.ndarray) -> np.ndarray | None:
        """One hardware-timed frame: counts published line by line (live) and every
        ``checkpoint_s``; returns the per-pixel TCSPC histograms (pulsed) or None."""
        setup, clock = self.setup, self.setup.clock
        ny = self.pixels_y
        per_line = xyz.shape[0] // ny
        line_s = per_line * self.dwell_s
        lines_per_poll = max(1, math.ceil(self.readout_s / line_s))
        setup.stage.move_to(*xyz[0])  # the raster starts where the stage already is
        setup.daq.load_raster(
            xyz, self.dwell_s, marker_channel=setup.tagger.channels["pixel_marker"]
        )
        raster = TaggerRaster.create(
            setup.tagger,
            xyz.shape[0],
            self.tcspc_bin_ps if self.pulsed else 0,
            self.tcspc_bins if self.pulsed else 0,
        )
        counts = np.zeros((xyz.shape[0], 2), np.int32)
        t0 = setup.daq.start()
        lines_done = 0
        last_checkpoint = t0
        name = f"scan/counts/frame_{k:03d}"
        try:
            while lines_done < ny:
                target = min(lines_done + lines_per_poll, ny)
                # until just after the marker that closes line `target` (tags at exactly
                # `now` are not delivered yet); at least a little, so a late tagger catches up
                wake = t0 + target * line_s + 0.5 * self.dwell_s
                clock.sleep(max(wake - clock.now(), min(line_s, self.readout_s)))
                complete = min(raster.filled() // per_line, ny)
                if complete > lines_done:
                    counts[: complete * per_line] = raster.counts()[: complete * per_line]
                    self._emit_lines(k, counts, lines_done, complete)
                    lines_done = complete
                self.progress(100.0 * (k + lines_done / ny) / self.repeats)
                if clock.now() - last_checkpoint >= self.checkpoint_s and lines_done < ny:
                    self._publish_counts(name, counts)
                    last_checkpoint = clock.now()
                if lines_done < ny and clock.now() > t0 + ny * line_s + TAGGER_CATCH_UP_S:
                    raise RuntimeError(
                        f"the tagger saw only {raster.filled()} of {xyz.shape[0]} pixel markers"
                    )
                self.check_stop()
            setup.daq.wait_done()
            wait_for_tagger(clock, raster, self.check_stop)
            counts[:] = raster.counts()
            hist = raster.histograms() if self.pulsed else None
        except AbortRequested:
            setup.daq.stop()
            raster.stop()
            self._publish_counts(name, counts)
            raise
        self._publish_counts(name, counts)
        return hist

    def _emit_lines(self, k: int, counts: np.ndarray, first: int, last: int) -> None:
        """Completed lines for live views (pymeasure ``emit``; not written to the file):
        ``counts`` (lines, nx) summed over the detectors, ``detectors`` (2, lines, nx)."""
        per_line = counts.shape[0] // self.pixels_y
        block = counts[first * per_line : last * per_line]
        fwd, _ = split_lines(block, self.pixels_x, self.back_scan)
        self.emit(
            "scan_lines",
            {
                "frame": k,
                "first_line": first,
                "counts": fwd.sum(axis=2),
                "detectors": np.ascontiguousarray(np.moveaxis(fwd, 2, 0)),
            },
        )

    def _publish_counts(self, name: str, counts: np.ndarray) -> None:
        fwd, back = split_lines(counts, self.pixels_x, self.back_scan)
        self.publish_array(name, np.ascontiguousarray(np.moveaxis(fwd, 2, 0)), units="counts")
        if self.back_scan:
            self.publish_array(
                name.replace("/counts/", "/counts_back/"),
                np.ascontiguousarray(np.moveaxis(back, 2, 0)),
                units="counts",
            )

    def shutdown(self) -> None:
        if self.setup is None:
            return
        if "daq" in self.setup.instruments:
            self.setup.daq.stop()
        if "laser" in self.setup.instruments:
            self.setup.laser.disable()


# ------------------------------------------------------------------------------- analysis


def _param(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    return getattr(ConfocalScan, name).default if value is None else value


def read_frames(run: h5py.File, group: str = "counts") -> np.ndarray:
    """(n_frames, 2, ny, nx) counts of the frames in ``data/scan/<group>`` (in order)."""
    g = run.get(f"{L.DATA}/scan/{group}")
    if not isinstance(g, h5py.Group) or not len(g):
        return np.zeros((0, 2, 0, 0), np.int32)
    return np.stack([g[name][()] for name in sorted(g)])


def _stage_position(fast_um: np.ndarray, slow_um: np.ndarray, x_px, y_px):
    """Pixel coordinates (column, row; pixel centres at integers) -> stage µm (fast, slow)."""
    df = (fast_um[-1] - fast_um[0]) / max(fast_um.size - 1, 1)
    ds = (slow_um[-1] - slow_um[0]) / max(slow_um.size - 1, 1)
    return fast_um[0] + np.asarray(x_px) * df, slow_um[0] + np.asarray(y_px) * ds, df, ds


def spot_width_um(image: np.ndarray, x_px: float, y_px: float, sigma_px: float, step_um: float):
    """Gaussian sigma (µm, with error) of the spot at (x_px, y_px): the sharpness measure of
    a summed image (a blurred sum is wider). NaN when the fit fails."""
    try:
        fit = gaussian2d_fit(
            image,
            x_px,
            y_px,
            sigma=sigma_px,
            window=max(3, int(math.ceil(4 * sigma_px))),
            max_shift=2.0,
            sigma_bounds=(0.3 * sigma_px, 5 * sigma_px),
            noise="poisson",
        )
    except (ValueError, np.linalg.LinAlgError):
        return math.nan, math.nan
    if not fit.success:
        return math.nan, math.nan
    return fit.sigma * step_um, fit.sigma_err * step_um


def registration_error_um(frames: np.ndarray, psf_sigma_um: float) -> np.ndarray:
    """Approximate 1-sigma error of each frame's registered shift (per axis, µm).

    The shift is a difference of two image positions, each known to ``sigma / sqrt(S)`` for
    a spot of Gaussian sigma ``sigma`` carrying ``S`` signal counts (the shot-noise limit of
    a position); ``S`` is the frame's counts above its median. So ``sqrt(sigma^2/S_k +
    sigma^2/S_0)``; 0 for the reference frame (its shift is 0 by definition). It ignores
    background noise and the drift within a frame, so it is a lower bound."""
    signal = np.array([max(float(np.sum(f - np.median(f))), 1.0) for f in frames])
    err = psf_sigma_um * np.sqrt(1.0 / signal + 1.0 / signal[0])
    err[0] = 0.0
    return err


def spot_photons(image: np.ndarray, found: np.ndarray, radius_px: float):
    """Background-subtracted counts of each emitter: the sum of ``image - background`` over
    the pixels within ``radius_px`` of its centre, and its Poisson error ``sqrt(sum image)``
    (the background per pixel comes from the fit over many more pixels; its error is
    neglected): the counts the SPADs collected from it while the focus swept over it."""
    ny, nx = image.shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    total, err = np.zeros(found.size), np.zeros(found.size)
    for k, row in enumerate(found):  # one mask per emitter, not per pixel
        mask = (xx - row["x"]) ** 2 + (yy - row["y"]) ** 2 <= radius_px**2
        raw = float(image[mask].sum())
        total[k] = raw - float(row["background"]) * int(mask.sum())
        err[k] = math.sqrt(max(raw, 1.0))
    return total, err


def align_detectors(stack: np.ndarray, bin_ps: float, irf_sigma_ps: float, period_ps: float):
    """Sum the TCSPC stacks of the two SPADs after shifting B onto A by the difference of
    their fitted IRF positions (whole bins; the SPADs' cable delays differ).

    ``stack`` (2, ny, nx, K). Returns (summed (ny, nx, K) float, t0 of A in ps, shift in
    bins, per-detector fits)."""
    fits = []
    for d in range(stack.shape[0]):
        total = stack[d].reshape(-1, stack.shape[-1]).sum(axis=0).astype(float)
        fits.append(
            fit_decay(total, bin_ps, n_exp=1, irf={"gaussian": irf_sigma_ps}, period_ps=period_ps)
            if total.sum() > 20
            else None
        )
    t0 = [f.t0_ps if f is not None else math.nan for f in fits]
    shift = int(round((t0[0] - t0[1]) / bin_ps)) if all(math.isfinite(t) for t in t0) else 0
    b = stack[1].astype(float)
    if shift > 0:
        b = np.concatenate([np.zeros_like(b[..., :shift]), b[..., :-shift]], axis=-1)
    elif shift < 0:
        b = np.concatenate([b[..., -shift:], np.zeros_like(b[..., :(-shift)])], axis=-1)
    return stack[0].astype(float) + b, t0[0], shift, fits


def _region_lifetimes(summed, emitters_px, radius_px, bin_ps, irf, period_ps):
    """Mono-exponential lifetime (ps, error, photons) of the pixels within ``radius_px`` of
    each emitter, from their summed TCSPC histogram."""
    ny, nx = summed.shape[:2]
    yy, xx = np.mgrid[0:ny, 0:nx]
    tau, err, photons = [], [], []
    for x, y in emitters_px:
        mask = (xx - x) ** 2 + (yy - y) ** 2 <= radius_px**2
        h = summed[mask].sum(axis=0)
        photons.append(float(h.sum()))
        try:
            fit = fit_decay(h, bin_ps, n_exp=1, irf=irf, period_ps=period_ps)
            ok = fit.converged and fit.identifiable
            tau.append(float(fit.taus_ps[0]) if ok else math.nan)
            err.append(float(fit.taus_ps_err[0]) if ok else math.nan)
        except ValueError:
            tau.append(math.nan)
            err.append(math.nan)
    return np.array(tau), np.array(err), np.array(photons)


def analyse(run: h5py.File) -> AnalysisOutput:
    """The scan's images, drift correction, emitter list and FLIM, from the run file alone."""
    params, _ = read_parameters(run)
    scan = run[f"{L.DATA}/scan"]
    fast_um, slow_um = scan["fast_um"][()], scan["slow_um"][()]
    frames = read_frames(run)
    values: dict[str, Any] = {"n_frames": int(frames.shape[0])}
    errors: dict[str, Any] = {}
    if frames.shape[0] == 0:
        values["error"] = "no frame was recorded"
        return AnalysisOutput("confocal_scan", values, errors, {"n_frames": 0})
    per_frame = frames.sum(axis=1).astype(float)  # both detectors
    plain = per_frame.sum(axis=0)
    values["image_plain"] = plain
    values["counts_per_detector"] = frames.sum(axis=(0, 2, 3)).astype(np.int64)
    if per_frame.shape[0] > 1 and bool(_param(params, "drift_correction")):
        reg = register_and_sum(per_frame, upsample=20)
        image = reg.image
        shifts_px = reg.shifts
    else:
        image = plain
        shifts_px = np.zeros((per_frame.shape[0], 2))
    _, _, df, ds = _stage_position(fast_um, slow_um, 0.0, 0.0)
    values["image"] = image
    values["drift_fast_um"] = shifts_px[:, 1] * df
    values["drift_slow_um"] = shifts_px[:, 0] * ds
    dwell = float(_param(params, "dwell_s"))
    sigma_px = float(_param(params, "psf_sigma_um")) / abs(df)
    shift_err = registration_error_um(per_frame, float(_param(params, "psf_sigma_um")))
    errors["drift_fast_um"] = errors["drift_slow_um"] = shift_err
    thr = float(_param(params, "find_threshold"))
    found = find_emitters(
        image,
        sigma_px=sigma_px,
        threshold="auto" if math.isnan(thr) else thr,
        background="global",
    )
    fx, fy, _, _ = _stage_position(fast_um, slow_um, found["x"], found["y"])
    n_f = per_frame.shape[0]
    values.update(
        n_emitters=int(found.size),
        emitters_fast_um=np.asarray(fx, float),
        emitters_slow_um=np.asarray(fy, float),
        emitters_x_px=found["x"],
        emitters_y_px=found["y"],
        emitters_peak_cps=found["amplitude"] / (dwell * n_f),
        emitters_background_cps=found["background"] / (dwell * n_f),
        emitters_snr=found["snr"],
        emitters_fit_ok=found["fit_ok"],
    )
    photons, photons_err = spot_photons(image, found, 2 * sigma_px)
    values["emitters_counts"] = photons
    errors["emitters_counts"] = photons_err
    # the peak rate's relative error taken as that of the spot's counts (Poisson)
    rel = np.divide(photons_err, photons, out=np.full(photons.size, np.inf), where=photons > 0)
    errors["emitters_peak_cps"] = np.abs(values["emitters_peak_cps"]) * rel
    errors["emitters_fast_um"] = found["x_err"] * abs(df)
    errors["emitters_slow_um"] = found["y_err"] * abs(ds)
    if found.size:
        best = found[0]
        for label, img in (("plain", plain), ("corrected", image)):
            w, w_err = spot_width_um(img, float(best["x"]), float(best["y"]), sigma_px, abs(df))
            values[f"spot_sigma_{label}_um"] = w
            errors[f"spot_sigma_{label}_um"] = w_err
    summary: dict[str, Any] = {
        "n_frames": n_f,
        "n_emitters": int(found.size),
        "emitters_fast_um": np.round(values["emitters_fast_um"][:10], 4).tolist(),
        "emitters_slow_um": np.round(values["emitters_slow_um"][:10], 4).tolist(),
        "emitters_fast_um_err": np.round(errors["emitters_fast_um"][:10], 4).tolist(),
        "emitters_slow_um_err": np.round(errors["emitters_slow_um"][:10], 4).tolist(),
        "drift_fast_um": np.round(values["drift_fast_um"], 4).tolist(),
        "drift_slow_um": np.round(values["drift_slow_um"], 4).tolist(),
        "drift_um_err": np.round(shift_err, 4).tolist(),
    }
    for key in ("spot_sigma_plain_um", "spot_sigma_corrected_um"):
        if key in values:
            summary[key], summary[f"{key}_err"] = values[key], errors[key]
    if "tcspc" in scan:
        _analyse_flim(params, scan["tcspc"][()], found, sigma_px, values, errors, summary)
    truth = run.get(L.TRUTH)
    if isinstance(truth, h5py.Group) and "emitter_x_um" in truth:  # simulator: for the JSON
        for key in ("emitter_x_um", "emitter_y_um", "emitter_z_um", "emitter_tau_x_ns"):
            summary[f"truth_{key}"] = np.round(truth[key][()][:10], 4).tolist()
    return AnalysisOutput("confocal_scan", values, errors, summary)


def _analyse_flim(params, stack, found, sigma_px, values, errors, summary) -> None:
    """FLIM image and per-emitter-region lifetimes into ``values``/``errors``/``summary``."""
    bin_ps = float(_param(params, "tcspc_bin_ps"))
    period_ps = PS_PER_S / float(_param(params, "rep_rate_Hz"))
    irf_sigma = float(_param(params, "irf_fwhm_ps")) / FWHM_PER_SIGMA
    summed, t0, shift, fits = align_detectors(stack, bin_ps, irf_sigma, period_ps)
    values.update(irf_t0_ps=t0, detector_b_shift_bins=shift)
    if not math.isfinite(t0):
        values["flim_error"] = "too few photons to locate the IRF"
        return
    irf = (t0, irf_sigma)
    res = flim_fit(
        summed,
        bin_ps,
        irf,
        model=str(_param(params, "flim_model")),
        taus=str(_param(params, "flim_taus")),
        period_ps=period_ps,
        min_photons=float(_param(params, "flim_min_photons")),
    )
    values["flim_tau_mean_ps"] = res.tau_mean_ps
    errors["flim_tau_mean_ps"] = res.tau_mean_ps_err
    values["flim_photons"] = res.photons
    values["flim_method"] = res.method
    values["flim_global_taus_ps"] = np.asarray(res.global_taus_ps, float)
    g = res.global_fit
    if g is not None:
        errors["flim_global_taus_ps"] = np.asarray(g.taus_ps_err, float)
        values["flim_global_fractions"] = np.asarray(g.fractions, float)
    xy = list(zip(found["x"], found["y"], strict=True))
    tau, tau_err, photons = _region_lifetimes(summed, xy, 2 * sigma_px, bin_ps, irf, period_ps)
    values["emitters_tau_ps"] = tau
    errors["emitters_tau_ps"] = tau_err
    values["emitters_tcspc_photons"] = photons
    summary["emitters_tau_ns"] = np.round(tau[:10] * 1e-3, 4).tolist()
    summary["emitters_tau_ns_err"] = np.round(tau_err[:10] * 1e-3, 4).tolist()
    summary["flim_global_taus_ns"] = np.round(res.global_taus_ps * 1e-3, 4).tolist()


# --------------------------------------------------------------------------------- figure


def figure(run: h5py.File, path: Path) -> Path | None:
    """The scan (style of the confocal maps of Baronnier et al. 2022): the drift-corrected
    image with the emitters found (circles, numbered by SNR) and, when pulsed, the FLIM image
    (intensity-weighted mean lifetime, ns, where there are photons). From the file alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    group = run.get(f"{L.ANALYSIS}/confocal_scan")
    if not isinstance(group, h5py.Group) or "image" not in group:
        return None
    v = read_values(group)
    scan = run[f"{L.DATA}/scan"]
    fast_um, slow_um = scan["fast_um"][()], scan["slow_um"][()]
    info = read_values(scan)
    _, _, df, ds = _stage_position(fast_um, slow_um, 0.0, 0.0)
    extent = [fast_um[0] - df / 2, fast_um[-1] + df / 2, slow_um[0] - ds / 2, slow_um[-1] + ds / 2]
    flim = "flim_tau_mean_ps" in v
    fig = Figure(figsize=(11 if flim else 6, 5), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 if flim else 1, squeeze=False)[0]
    dwell = float(info.get("dwell_s", 1.0))
    n_f = max(int(v.get("n_frames", 1)), 1)
    im = axes[0].imshow(
        v["image"] / (dwell * n_f) * 1e-3,
        origin="lower",
        extent=extent,
        cmap="magma",
        aspect="equal",
    )
    fig.colorbar(im, ax=axes[0], label="count rate (kcps)")
    xs, ys = np.asarray(v.get("emitters_fast_um", [])), np.asarray(v.get("emitters_slow_um", []))
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        axes[0].scatter([x], [y], s=120, facecolors="none", edgecolors="cyan", lw=1)
        axes[0].annotate(
            str(i), (x, y), xytext=(4, 4), textcoords="offset points", color="cyan", fontsize=8
        )
    title = f"{n_f} frame{'s' if n_f > 1 else ''}"
    if n_f > 1:
        title += ", drift-corrected sum"
    axes[0].set_title(f"{title}: {len(xs)} emitters")
    axes[0].set_xlabel(f"{info.get('fast_axis', 'x')} (µm)")
    axes[0].set_ylabel(f"{info.get('slow_axis', 'y')} (µm)")
    if flim:
        tau = np.asarray(v["flim_tau_mean_ps"], float) * 1e-3
        photons = np.asarray(v["flim_photons"], float)
        shown = np.where(photons >= 20, tau, np.nan)
        finite = shown[np.isfinite(shown)]
        lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        im2 = axes[1].imshow(
            shown, origin="lower", extent=extent, cmap="viridis", vmin=lo, vmax=hi, aspect="equal"
        )
        fig.colorbar(im2, ax=axes[1], label="mean lifetime (ns)")
        taus = np.asarray(v.get("emitters_tau_ps", []), float) * 1e-3
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            if i < taus.size and math.isfinite(taus[i]):
                axes[1].annotate(
                    f"{taus[i]:.1f} ns",
                    (x, y),
                    xytext=(5, 5),
                    textcoords="offset points",
                    color="w",
                    fontsize=8,
                )
        axes[1].set_title("FLIM (pixels with >= 20 photons)")
        axes[1].set_xlabel(f"{info.get('fast_axis', 'x')} (µm)")
    fig.suptitle(Path(run.filename).name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def emitters(run: h5py.File) -> list[dict[str, float]]:
    """The emitters the scan found, as the queue's ``foreach_emitter`` reads them: stage
    position (x, y, z µm; the scanned plane's two axes from the fit, the fixed one from the
    scan), peak rate (``brightness_cps``) and SNR, in the analysis' order. From the stored
    analysis, else analysed again from the file."""
    group = run.get(f"{L.ANALYSIS}/confocal_scan")
    values = read_values(group) if isinstance(group, h5py.Group) else {}
    if "emitters_fast_um" not in values:
        values = dict(analyse(run).values)
    if "emitters_fast_um" not in values:
        return []
    scan = read_values(run[f"{L.DATA}/scan"])
    plane = str(scan.get("plane", "xy"))
    f_ax, s_ax, fixed = PLANES.get(plane, PLANES["xy"])
    fast = np.atleast_1d(np.asarray(values["emitters_fast_um"], float))
    slow = np.atleast_1d(np.asarray(values["emitters_slow_um"], float))
    peak = np.atleast_1d(np.asarray(values.get("emitters_peak_cps", np.nan), float))
    snr = np.atleast_1d(np.asarray(values.get("emitters_snr", np.nan), float))
    out = []
    for i in range(fast.size):
        xyz = [math.nan, math.nan, math.nan]
        xyz[f_ax], xyz[s_ax] = float(fast[i]), float(slow[i])
        xyz[fixed] = float(scan.get("fixed_um", 0.0))
        out.append(
            {
                "x_um": xyz[0],
                "y_um": xyz[1],
                "z_um": xyz[2],
                "brightness_cps": float(peak[i]) if peak.size == fast.size else math.nan,
                "snr": float(snr[i]) if snr.size == fast.size else math.nan,
            }
        )
    return out


MEASUREMENT = Measurement("confocal_scan", ConfocalScan, analyse, figure, emitters=emitters)
