"""The scan view: confocal scan images, live while acquired, per detector and as FLIM, with the
stage's crosshair, click-to-go, emitter markers and the scan history.

Two panes in stage µm: the last **xy** scan and the last **section** (xz or yz, the scan's
``plane``; that pane appears with the first section). The images come from the run's events
through the window's :class:`~hbtscope.gui.bridge.EventBridge`: ``scan/fast_um`` and
``scan/slow_um`` (pixel centres) set the axes, the ``scan_lines`` rows the procedure emits as
lines complete fill the image line by line, each ``scan/counts/frame_NNN`` checkpoint replaces
the frame, ``scan/tcspc`` gives the per-pixel lifetime estimate (mean arrival time) and the
analysis gives the emitters found and the fitted FLIM image. **Detector**: ``sum``, one SPAD,
or ``FLIM`` (hue = lifetime, brightness = counts). The colour scale is the image's percentiles
(default 1-99.5 %).

One crosshair: the stage's position (:attr:`ScanView.stage`; the window feeds it the instrument
panel's readings, and the view reads it itself when it opens and after each run), drawn in both
panes on their axes. A left click on an image moves the stage there (the two scanned axes; the
third stays) through the :class:`~hbtscope.gui.device_worker.DeviceWorker`; a refusal (stage
travel, a run holding the instruments) is shown in the view's message line. **History**: this
session's scans and the ``confocal_scan`` run files of the data directory; choosing one shows
it (files are read in a worker thread).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QObject, QRectF, Qt, QThread, QTimer, pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from hbtscope import events as ev
from hbtscope.gui.device_worker import BUSY, DeviceWorker
from hbtscope.gui.file_lister import FileLister
from hbtscope.gui.image_tools import (
    DEFAULT_PERCENTILES,
    flim_rgb,
    lifetime_colours,
    mean_arrival_lifetime_ps,
    percentile_levels,
    pixel_rect,
)
from hbtscope.gui.live_count_rate import spad_names

SCAN = "confocal_scan"
AXES = ("x", "y", "z")
PLANE_AXES = {"xy": ("x", "y", "z"), "xz": ("x", "z", "y"), "yz": ("y", "z", "x")}
FRAME_NAME = re.compile(r"^scan/counts/frame_(\d+)$")
CHOICES = ("sum", "spad_a", "spad_b", "FLIM")


@dataclass
class ScanImage:
    """One scan as the view shows it: axes, counts per detector, lifetimes, emitters."""

    label: str
    plane: str = "xy"
    fast_um: np.ndarray | None = None
    slow_um: np.ndarray | None = None
    fixed_um: float = float("nan")
    #: (2, ny, nx) counts of the frames done, and of the frame being acquired
    done: np.ndarray | None = None
    frame: np.ndarray | None = None
    frame_index: int = 0
    tcspc_bin_ps: float = 400.0
    lifetime_ps: np.ndarray | None = None
    #: the lifetimes are the analysis's fitted ones (not replaced by a live estimate)
    lifetime_fitted: bool = False
    emitters_um: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    path: str = ""

    @property
    def counts(self) -> np.ndarray | None:
        """(2, ny, nx): every frame so far, the one being acquired included."""
        if self.frame is None:
            return None
        return self.frame if self.done is None else self.done + self.frame

    def axes(self) -> tuple[str, str, str]:
        return PLANE_AXES.get(self.plane, PLANE_AXES["xy"])


def read_scan_file(path: str | Path) -> ScanImage:
    """A ``confocal_scan`` run file as a :class:`ScanImage` (summed frames, lifetimes,
    emitters) — the file alone; runs in the history's worker thread."""
    import h5py

    from hbtscope.procedures.confocal_scan import read_frames
    from hbtscope.storage import layout as L
    from hbtscope.storage.runfile import read_parameters, read_values

    with h5py.File(path, "r", locking=False) as run:
        scan = run[f"{L.DATA}/scan"]
        info = read_values(scan)
        params, _ = read_parameters(run)
        image = ScanImage(Path(path).name, str(info.get("plane", params.get("plane", "xy"))))
        image.path = str(path)
        image.fast_um, image.slow_um = scan["fast_um"][()], scan["slow_um"][()]
        image.fixed_um = float(info.get("fixed_um", np.nan))
        frames = read_frames(run)
        image.frame = frames.sum(axis=0) if frames.shape[0] else None
        image.tcspc_bin_ps = float(params.get("tcspc_bin_ps") or 400.0)
        if "tcspc" in scan:
            image.lifetime_ps = mean_arrival_lifetime_ps(scan["tcspc"][()].sum(axis=0), 1.0)
            image.lifetime_ps *= image.tcspc_bin_ps
        group = run.get(f"{L.ANALYSIS}/{SCAN}")
        if isinstance(group, h5py.Group):
            _take_analysis(image, read_values(group))
    return image


def _take_analysis(image: ScanImage, values: dict[str, Any]) -> None:
    """Emitters and the fitted FLIM image of an analysis into ``image``."""
    fast = np.atleast_1d(np.asarray(values.get("emitters_fast_um", []), float))
    slow = np.atleast_1d(np.asarray(values.get("emitters_slow_um", []), float))
    if fast.size == slow.size:
        image.emitters_um = np.column_stack([fast, slow]).reshape(-1, 2)
    tau = values.get("flim_tau_mean_ps")
    if tau is not None and np.ndim(tau) == 2:
        image.lifetime_ps = np.asarray(tau, float)
        image.lifetime_fitted = True


def percentile_spin(name: str, value: float) -> QDoubleSpinBox:
    """A colour-scale percentile box (0-100 %, 0.1 % resolution); the camera view's too."""
    spin = QDoubleSpinBox()
    spin.setObjectName(name)
    spin.setRange(0.0, 100.0)
    spin.setDecimals(1)
    spin.setSingleStep(0.5)
    spin.setValue(value)
    return spin


class _FileReader(QThread):
    """Reads one scan run file off the GUI thread."""

    loaded = pyqtSignal(object, str)

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def run(self) -> None:  # noqa: D102 - QThread's entry point
        try:
            self.loaded.emit(read_scan_file(self.path), "")
        except Exception as exc:  # noqa: BLE001 - shown in place, one line
            self.loaded.emit(None, f"{Path(self.path).name}: {' '.join(str(exc).split())}")


class _LifetimeJob(QThread):
    """The per-pixel lifetimes of a TCSPC stack off the GUI thread (a 512 x 512 x 100-bin
    stack takes ~0.4 s: the GUI thread stalled that long at each frame's checkpoint)."""

    done = pyqtSignal(object, object)  # (ScanImage, lifetimes ps)

    def __init__(self, image: ScanImage, stack: np.ndarray):
        super().__init__()
        self.image, self.stack = image, stack

    def run(self) -> None:  # noqa: D102 - QThread's entry point
        tau = mean_arrival_lifetime_ps(self.stack.sum(axis=0), self.image.tcspc_bin_ps)
        self.done.emit(self.image, tau)


class StagePosition(QObject):
    """The stage's last known position (µm): the one crosshair every view draws."""

    moved = pyqtSignal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.xyz_um: tuple[float, float, float] | None = None

    def set(self, xyz_um: Any) -> None:
        xyz = tuple(float(v) for v in xyz_um)
        if xyz != self.xyz_um:
            self.xyz_um = xyz
            self.moved.emit(xyz)


class ScanPane(pg.GraphicsLayoutWidget):
    """One image in stage µm with the crosshair and emitter markers; clicks report µm."""

    clicked = pyqtSignal(float, float)

    def __init__(self, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.plot = self.addPlot(title=title)
        self.plot.setAspectLocked(True)
        self.plot.invertY(False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        pen = pg.mkPen("#00e5ff", width=1)
        self.v_line = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.h_line = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        for line in (self.v_line, self.h_line):
            line.setVisible(False)
            self.plot.addItem(line, ignoreBounds=True)
        self.markers = pg.ScatterPlotItem(
            size=14, pen=pg.mkPen("#7CFC00", width=1.5), brush=None, symbol="o"
        )
        self.plot.addItem(self.markers)
        self.shown: ScanImage | None = None
        self.scene().sigMouseClicked.connect(self._clicked)

    def set_axes(self, fast: str, slow: str) -> None:
        self.plot.setLabel("bottom", f"{fast} [µm]")
        self.plot.setLabel("left", f"{slow} [µm]")

    def set_crosshair(self, fast_um: float, slow_um: float) -> None:
        self.v_line.setPos(fast_um)
        self.h_line.setPos(slow_um)
        self.v_line.setVisible(True)
        self.h_line.setVisible(True)

    def inside(self, fast_um: float, slow_um: float) -> bool:
        """Is (fast, slow) on the image shown?"""
        if self.shown is None or self.shown.fast_um is None:
            return False
        x0, y0, w, h = pixel_rect(self.shown.fast_um, self.shown.slow_um)
        return QRectF(x0, y0, w, h).normalized().contains(fast_um, slow_um)

    def _clicked(self, event: Any) -> None:
        if event.button() != Qt.LeftButton or event.double():
            return
        point = self.plot.vb.mapSceneToView(event.scenePos())
        if self.inside(point.x(), point.y()):
            self.clicked.emit(point.x(), point.y())


class ScanView(QDockWidget):
    """The confocal scan dock (see the module docstring)."""

    #: the image on screen changed (a live line, a frame, a choice): for tests and benches
    image_updated = pyqtSignal()

    def __init__(
        self,
        setup: Any,
        devices: DeviceWorker,
        runs_dir: str | Path,
        *,
        parent: QWidget | None = None,
    ):
        super().__init__("Scan", parent)
        self.setObjectName("dock-scan")
        self.setup = setup
        self.devices = devices
        self.runs_dir = Path(runs_dir)
        self.stage = StagePosition(self)
        self.live: ScanImage | None = None
        self.session: list[ScanImage] = []
        self.updates = 0
        self._dirty: set[str] = set()
        self._reader: _FileReader | None = None
        self._poll_in_flight = False
        self._lifetime_job: _LifetimeJob | None = None
        self._threads: set[QThread] = set()  # workers running (see _start)
        self._lifetime_next: tuple[ScanImage, np.ndarray] | None = None
        #: (lifetime image, its scale, its hues) per (image, colour-scale percentiles) drawn
        self._flim_cache: dict[tuple, tuple[np.ndarray, tuple[float, float], np.ndarray]] = {}
        self.detector_labels = spad_names(setup)  # in the order of the scan's detectors

        body = QWidget()
        layout = QVBoxLayout(body)
        controls = QHBoxLayout()
        self.choice = QComboBox()
        self.choice.setObjectName("scan-detector")
        self.choice.addItems(["sum", *self.detector_labels, "FLIM"])
        self.low = percentile_spin("scan-low-percentile", DEFAULT_PERCENTILES[0])
        self.high = percentile_spin("scan-high-percentile", DEFAULT_PERCENTILES[1])
        controls.addWidget(QLabel("detector"))
        controls.addWidget(self.choice)
        controls.addWidget(QLabel("colour scale [%]"))
        controls.addWidget(self.low)
        controls.addWidget(self.high)
        controls.addStretch(1)
        layout.addLayout(controls)
        panes = self.splitter = QSplitter(Qt.Horizontal)
        self.panes = {"xy": ScanPane("xy"), "section": ScanPane("xz / yz")}
        self.panes["xy"].set_axes("x", "y")
        self.panes["section"].set_axes("x", "z")
        for pane in self.panes.values():
            panes.addWidget(pane)
            pane.clicked.connect(lambda f, s, p=pane: self.go_to(p, f, s))
        self.panes["section"].hide()  # shown with the first xz or yz scan
        layout.addWidget(panes, 1)
        self.info = QLabel("no scan yet")
        self.info.setObjectName("scan-info")
        self.message = QLabel("")
        self.message.setObjectName("scan-message")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00000;")
        layout.addWidget(self.info)
        layout.addWidget(self.message)
        history_row = QHBoxLayout()
        self.history = QListWidget()
        self.history.setObjectName("scan-history")
        self.history.setMaximumHeight(110)
        refresh = QPushButton("Refresh")
        refresh.setObjectName("scan-history-refresh")
        refresh.clicked.connect(self.refresh_history)
        history_row.addWidget(self.history, 1)
        history_row.addWidget(refresh)
        layout.addWidget(QLabel("scan history (this session, then run files)"))
        layout.addLayout(history_row)
        self.setWidget(body)

        self.choice.currentTextChanged.connect(lambda _: self._redraw_all())
        self.low.valueChanged.connect(lambda _: self._redraw_all())
        self.high.valueChanged.connect(lambda _: self._redraw_all())
        self.history.itemActivated.connect(self.choose)
        self.history.itemClicked.connect(self.choose)
        self.stage.moved.connect(self._draw_crosshair)
        self._scan_files: list[Path] = []
        self.lister = FileLister(self.runs_dir, f"*_{SCAN}_*.h5", self)
        self.lister.listed.connect(self._fill_history)
        self.refresh_history()
        self.poll_stage()

    # --- events of a run ----------------------------------------------------------------

    def on_event(self, event: Any) -> None:
        """A run event (GUI thread): follow a confocal scan as it is acquired."""
        if isinstance(event, ev.RunStarted):
            if event.procedure == SCAN:
                params = event.parameters
                self.live = ScanImage(f"scan {len(self.session) + 1} (this session)")
                self.live.plane = str(params.get("plane", "xy"))
                self.live.tcspc_bin_ps = float(params.get("tcspc_bin_ps") or 400.0)
            else:
                self.live = None
            return
        live = self.live
        if live is None:
            return
        if isinstance(event, ev.ArrayRecorded):
            self._on_array(live, event)
        elif isinstance(event, ev.ValuesRecorded) and event.name == "scan":
            live.plane = str(event.values.get("plane", live.plane))
            live.fixed_um = float(event.values.get("fixed_um", np.nan))
        elif isinstance(event, ev.Emitted) and event.topic == "scan_lines":
            self._on_lines(live, event.record)
        elif isinstance(event, ev.AnalysisResult) and event.name == SCAN:
            _take_analysis(live, dict(event.values))
            self._schedule(live)
        elif isinstance(event, ev.RunEnded):
            if live.frame is not None:
                self.session.append(live)
                self.refresh_history()
            self.live = None
            self.poll_stage()

    def _on_array(self, live: ScanImage, event: ev.ArrayRecorded) -> None:
        name = event.name
        if name == "scan/fast_um":
            live.fast_um = np.asarray(event.data, float)
        elif name == "scan/slow_um":
            live.slow_um = np.asarray(event.data, float)
        elif name == "scan/tcspc":
            self._lifetimes_of(live, np.asarray(event.data))
            return
        elif (m := FRAME_NAME.match(name)) is not None:
            self._start_frame(live, int(m.group(1)))
            live.frame = np.asarray(event.data, np.int64).copy()
        else:
            return
        if live.fast_um is not None and live.slow_um is not None and live.frame is None:
            live.frame = np.zeros((2, live.slow_um.size, live.fast_um.size), np.int64)
        self._schedule(live)

    def _lifetimes_of(self, image: ScanImage, stack: np.ndarray) -> None:
        """Lifetimes of a TCSPC stack in a worker thread (the newest stack waits while one is
        computed; older ones are skipped)."""
        if self._lifetime_job is not None:
            self._lifetime_next = (image, stack)
            return
        job = _LifetimeJob(image, stack)
        job.done.connect(self._lifetimes_done)
        self._lifetime_job = job
        self._start(job)

    def _start(self, thread: QThread) -> None:
        """Start a worker thread, held until it has finished (its result signal comes while
        ``run`` is still returning: dropping the last reference then would destroy a running
        QThread)."""
        self._threads.add(thread)
        thread.finished.connect(lambda t=thread: self._threads.discard(t))
        thread.start()

    def _lifetimes_done(self, image: ScanImage, tau: np.ndarray) -> None:
        self._lifetime_job = None
        if not image.lifetime_fitted:
            image.lifetime_ps = tau
        if image is self.live or any(p.shown is image for p in self.panes.values()):
            self._schedule(image)
        if self._lifetime_next is not None:
            (image, stack), self._lifetime_next = self._lifetime_next, None
            self._lifetimes_of(image, stack)

    def _start_frame(self, live: ScanImage, k: int) -> None:
        """Frame ``k`` begins: the previous frame joins the sum of the frames done."""
        if k > live.frame_index and live.frame is not None:
            live.done = live.frame.copy() if live.done is None else live.done + live.frame
            live.frame = np.zeros_like(live.frame)
        live.frame_index = k

    def _on_lines(self, live: ScanImage, record: dict[str, Any]) -> None:
        if live.frame is None:
            return
        self._start_frame(live, int(record.get("frame", 0)))
        first = int(record["first_line"])
        lines = record.get("detectors")
        if lines is None:  # an older procedure: the sum only, on the first detector
            lines = np.stack([record["counts"], np.zeros_like(record["counts"])])
        lines = np.asarray(lines)
        live.frame[:, first : first + lines.shape[1], :] = lines
        self._schedule(live)

    # --- drawing ------------------------------------------------------------------------

    def pane_of(self, image: ScanImage) -> ScanPane:
        return self.panes["xy" if image.plane == "xy" else "section"]

    def _schedule(self, image: ScanImage) -> None:
        """Redraw ``image`` once the events queued now are handled (lines coalesce)."""
        key = "xy" if image.plane == "xy" else "section"
        self.panes[key].shown = image
        if not self._dirty:
            QTimer.singleShot(0, self._flush)
        self._dirty.add(key)

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            pane = self.panes[key]
            if pane.shown is not None:
                self.draw(pane, pane.shown)

    def _redraw_all(self) -> None:
        for pane in self.panes.values():
            if pane.shown is not None:
                self.draw(pane, pane.shown)

    def displayed(self, image: ScanImage) -> np.ndarray | None:
        """The counts image the detector choice shows of ``image`` ((ny, nx); FLIM: sum)."""
        counts = image.counts
        if counts is None:
            return None
        choice = self.choice.currentText()
        if choice in self.detector_labels:
            return counts[self.detector_labels.index(choice)]
        return counts.sum(axis=0)

    def draw(self, pane: ScanPane, image: ScanImage) -> None:
        """Show ``image`` in ``pane``: axes in µm, percentile levels, markers, crosshair."""
        counts = self.displayed(image)
        if counts is None or image.fast_um is None or image.slow_um is None:
            return
        pane.shown = image
        if pane.isHidden():  # the first section: the two panes side by side, equal
            pane.show()
            half = max(self.splitter.width() // 2, 1)
            self.splitter.setSizes([half, half])
        levels = percentile_levels(counts, self.low.value(), self.high.value())
        tau = image.lifetime_ps
        if self.choice.currentText() == "FLIM" and tau is not None and tau.shape == counts.shape:
            tau_levels, colours = self._lifetime_colours(tau, counts, levels)
            rgb = flim_rgb(counts, tau, levels, tau_levels, colours)
            pane.image.setImage(rgb, autoLevels=False, levels=(0, 255))
            self.lifetime_levels_ps = tau_levels
        else:
            pane.image.setImage(counts, autoLevels=False, levels=levels)
        pane.image.setRect(QRectF(*pixel_rect(image.fast_um, image.slow_um)))
        fast, slow, fixed = image.axes()
        pane.set_axes(fast, slow)
        pane.plot.setTitle(f"{image.label} — {image.plane}, {fixed} = {image.fixed_um:.2f} µm")
        e = image.emitters_um
        pane.markers.setData(e[:, 0], e[:, 1]) if e.size else pane.markers.clear()
        self.levels = levels
        self.info.setText(
            f"{image.label}: {counts.shape[1]} × {counts.shape[0]} px, {int(counts.sum())} "
            f"counts, scale {levels[0]:.4g} … {levels[1]:.4g}, {len(e)} emitters"
        )
        self._draw_crosshair(self.stage.xyz_um)
        self.updates += 1
        self.image_updated.emit()

    def _lifetime_colours(
        self, tau: np.ndarray, counts: np.ndarray, levels: tuple[float, float]
    ) -> tuple[tuple[float, float], np.ndarray]:
        """The lifetime scale (5-95 % of the bright pixels' lifetimes) and the pixels' hues,
        computed once per lifetime image (lines come far more often than lifetimes)."""
        key = (id(tau), self.low.value(), self.high.value())
        cached = self._flim_cache.get(key)
        if cached is not None and cached[0] is tau:
            return cached[1], cached[2]
        bright = counts >= levels[0] + 0.2 * (levels[1] - levels[0])
        tau_levels = percentile_levels(np.where(bright, tau, np.nan), 5.0, 95.0)
        colours = lifetime_colours(tau, tau_levels)
        if len(self._flim_cache) >= 4:  # the two panes' current images, and a little more
            self._flim_cache.pop(next(iter(self._flim_cache)))
        self._flim_cache[key] = (tau, tau_levels, colours)
        return tau_levels, colours

    def _draw_crosshair(self, xyz_um: Any) -> None:
        if xyz_um is None:
            return
        at = dict(zip(AXES, xyz_um, strict=True))
        for pane in self.panes.values():
            fast, slow, _ = pane.shown.axes() if pane.shown is not None else ("x", "y", "z")
            if pane is self.panes["section"] and pane.shown is None:
                fast, slow = "x", "z"
            pane.set_crosshair(at[fast], at[slow])

    # --- stage --------------------------------------------------------------------------

    def poll_stage(self) -> None:
        """Read the stage's position in the device worker (one reading at a time)."""
        if self._poll_in_flight or "stage" not in self.setup.instruments:
            return
        self._poll_in_flight = True
        stage = self.setup.stage

        def done(xyz: Any, error: str) -> None:
            self._poll_in_flight = False
            if not error:
                self.stage.set(xyz)

        self.devices.submit(lambda: tuple(stage.position_um), done)

    def go_to(self, pane: ScanPane, fast_um: float, slow_um: float) -> None:
        """Click-to-go: move the stage to (fast, slow) of ``pane``'s scan plane."""
        if "stage" not in self.setup.instruments:
            self.message.setText("no stage in this setup")
            return
        image = pane.shown
        fast, slow, _ = image.axes() if image is not None else ("x", "y", "z")
        target = {f"{fast}_um": float(fast_um), f"{slow}_um": float(slow_um)}
        stage = self.setup.stage
        self.message.setText(f"moving to {fast} = {fast_um:.3f}, {slow} = {slow_um:.3f} µm…")

        def move() -> tuple[float, ...]:
            stage.move_to(**target)
            return tuple(stage.position_um)

        def done(xyz: Any, error: str) -> None:
            if error:
                prefix = "click-to-go refused: " if error == BUSY else "click-to-go: "
                self.message.setText(prefix + error)
                return
            self.message.setText("")
            self.stage.set(xyz)

        self.devices.submit(move, done)

    # --- history ------------------------------------------------------------------------

    def run_ended(self, outcome: Any) -> None:
        """A run ended (the dock's outcome, or a queue's journal record): a scan of this
        session learns its run file."""
        if isinstance(outcome, dict):
            path, measurement = outcome.get("run"), outcome.get("measurement")
        else:
            from hbtscope.procedures.runner import measurement_of

            path = getattr(outcome, "path", None)
            m = measurement_of(outcome.procedure) if outcome is not None else None
            measurement = m.name if m is not None else None
        if path and measurement == SCAN and self.session and not self.session[-1].path:
            self.session[-1].path = str(path)
        self.refresh_history()

    def refresh_history(self) -> None:
        """This session's scans now; the ``confocal_scan`` run files of the data directory
        when the worker thread has listed them (:mod:`hbtscope.gui.file_lister`)."""
        self._fill_history()
        self.lister.request()

    def _fill_history(self, files: list[Path] | None = None) -> None:
        if files is not None:
            self._scan_files = files
        self.history.clear()
        known = {s.path for s in self.session}
        for i, image in reversed(list(enumerate(self.session))):
            item = QListWidgetItem(f"{image.label} [{image.plane}]")
            item.setData(Qt.UserRole, ("session", i))
            self.history.addItem(item)
        for path in self._scan_files:
            if str(path) in known:
                continue
            item = QListWidgetItem(f"{path.parent.name}/{path.name}")
            item.setData(Qt.UserRole, ("file", str(path)))
            self.history.addItem(item)

    def choose(self, item: QListWidgetItem) -> None:
        """Show the scan of a history entry (a file is read in a worker thread)."""
        kind, key = item.data(Qt.UserRole)
        if kind == "session":
            image = self.session[int(key)]
            self._schedule(image)
            return
        if self._reader is not None and self._reader.isRunning():
            return
        self.message.setText(f"reading {Path(key).name}…")
        reader = _FileReader(str(key))
        reader.loaded.connect(self._loaded)
        self._reader = reader
        self._start(reader)

    def _loaded(self, image: ScanImage | None, error: str) -> None:
        self._reader = None
        if image is None or image.frame is None:
            self.message.setText(error or "that run file holds no frame")
            return
        self.message.setText("")
        self._schedule(image)

    def wait_idle(self) -> None:
        """Let a history read in flight finish (the window closes after it)."""
        self.lister.wait()
        self._lifetime_next = None
        for thread in list(self._threads):
            thread.wait(5000)

    # --- for the POI list ---------------------------------------------------------------

    def emitter_positions_um(self) -> list[tuple[float, float, float]]:
        """The emitters of the scans shown (x, y, z µm; the fixed axis from the scan)."""
        out = []
        for pane in self.panes.values():
            image = pane.shown
            if image is None:
                continue
            fast, slow, fixed = image.axes()
            for f, s in image.emitters_um:
                at = {fast: float(f), slow: float(s), fixed: image.fixed_um}
                out.append((at["x"], at["y"], at["z"]))
        return out
