"""The main window: measurement, runs, queue and points-of-interest docks on the left; live
view, result figure, scan image and camera in the middle; instruments and count rate on the
right; all on one Setup.

Layout and settings: the dock layout (``saveState``), the window geometry, the chosen
measurement and the last text of every form field are saved in a ``QSettings`` when the window
closes and restored when it opens (:data:`ORGANISATION`/:data:`APPLICATION` by default; tests
pass a settings object on a temporary file). Closing the window during a run does not close it
at once: the run is asked to stop, ends ``aborted`` with the instruments in their safe state,
and the window closes when the worker thread has finished (the GUI thread never waits).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QSettings, Qt, QTimer
from PyQt5.QtGui import QCloseEvent
from PyQt5.QtWidgets import QDockWidget, QMainWindow, QWidget

from hbtscope.gui.bridge import EventBridge
from hbtscope.gui.camera_view import CameraView
from hbtscope.gui.device_worker import DeviceWorker
from hbtscope.gui.figure_view import FigureView
from hbtscope.gui.instrument_panel import InstrumentPanel
from hbtscope.gui.live_view import LiveView
from hbtscope.gui.measurement_dock import MeasurementDock
from hbtscope.gui.poi_list import POIList, start_refocus
from hbtscope.gui.queue_panel import QueuePanel
from hbtscope.gui.run_browser import RunBrowser
from hbtscope.gui.scan_view import SCAN, ScanView
from hbtscope.procedures.registry import runnable

ORGANISATION = "hbtscope"
APPLICATION = "hbtscope-gui"
#: bump when the docks change so that an old saved layout is not applied to new docks
LAYOUT_VERSION = 4


def default_settings() -> QSettings:
    """The user's settings of the dashboard (per user, per platform's usual place)."""
    return QSettings(ORGANISATION, APPLICATION)


class MainWindow(QMainWindow):
    """The dashboard on ``setup``; run files go to ``out_dir`` (default: the setup's)."""

    def __init__(
        self,
        setup: Any,
        *,
        out_dir: str | Path | None = None,
        settings: QSettings | None = None,
        count_rate_period_ms: int = 250,
    ):
        super().__init__()
        self.setup = setup
        self.settings = settings if settings is not None else default_settings()
        self.setWindowTitle(f"hbtscope — {setup.spec.name} ({setup.path})")
        self.setDockNestingEnabled(True)
        self.hardware_lock = threading.Lock()
        self.bridge = EventBridge(self)
        self.devices = DeviceWorker(self.hardware_lock, self)

        self.live = LiveView()
        self.live_dock = QDockWidget("Live", self)
        self.live_dock.setObjectName("dock-live")
        self.live_dock.setWidget(self.live)
        self.bridge.event.connect(self.live.on_event)

        self.measurement_dock = MeasurementDock(
            runnable(), setup, out_dir, self.bridge, self.hardware_lock, self
        )
        self.instruments = InstrumentPanel(
            setup,
            self.devices,
            period_ms=count_rate_period_ms,
            data_dir=out_dir if out_dir is not None else setup.data_dir,
            parent=self,
        )
        self.bridge.event.connect(self.instruments.on_event)  # count rates during a run
        placeholder = QWidget()
        placeholder.setMaximumSize(0, 0)
        self.setCentralWidget(placeholder)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.measurement_dock)
        self.addDockWidget(Qt.RightDockWidgetArea, self.live_dock)
        self.splitDockWidget(self.live_dock, self.instruments, Qt.Horizontal)
        self.splitDockWidget(self.instruments, self.instruments.rate_dock, Qt.Vertical)
        self.measurement_dock.run_started.connect(self._run_started)
        self.measurement_dock.run_ended.connect(self._run_ended)
        runs_dir = Path(out_dir) if out_dir is not None else Path(setup.data_dir)
        self.run_browser = RunBrowser(runs_dir, self)
        self.addDockWidget(Qt.LeftDockWidgetArea, self.run_browser)
        self.tabifyDockWidget(self.measurement_dock, self.run_browser)
        self.measurement_dock.raise_()
        self.run_browser.run_again.connect(self._run_again)
        self._add_queue_panel(runs_dir)
        self.figure_view = FigureView(self)  # the ended run's own figure, with its fits
        self.addDockWidget(Qt.RightDockWidgetArea, self.figure_view)
        self.tabifyDockWidget(self.live_dock, self.figure_view)
        self.live_dock.raise_()
        self.measurement_dock.run_ended.connect(self.figure_view.show_outcome)
        self.queue_panel.item_ended.connect(self.figure_view.show_journal_record)
        self._add_image_views(runs_dir)
        self._close_requested = False
        self.resize(1500, 900)
        self.restore_settings()
        self.statusBar().showMessage("ready")
        self.instruments.timer.start()

    # --- runs ---------------------------------------------------------------------------

    def _run_started(self, name: str) -> None:
        self.instruments.set_run_active(True)
        self.statusBar().showMessage(f"{name} running")

    def _run_again(self, measurement: str, parameters: dict) -> None:
        """The run browser's "run again": the measurement's form filled with those values."""
        if measurement not in runnable():
            self.statusBar().showMessage(f"{measurement} runs cannot be run again from here")
            return
        self.measurement_dock.select(measurement)
        form = self.measurement_dock.form(measurement)
        for name, value in parameters.items():
            form.set_value(name, value)
        self.measurement_dock.raise_()
        self.statusBar().showMessage(f"{measurement}: parameters of the chosen run loaded")

    def _add_queue_panel(self, runs_dir: Path) -> None:
        """The Queue dock (tabbed with the measurement dock), on the same lock and live view."""
        dock = self.measurement_dock
        self.queue_panel = QueuePanel(
            runnable(),
            self.setup,
            runs_dir,
            [self.bridge.display, dock.live_correlation.display, dock.live_count_rate.display],
            self.hardware_lock,
            events=self.bridge.event,
            parent=self,
        )
        self.addDockWidget(Qt.LeftDockWidgetArea, self.queue_panel)
        self.tabifyDockWidget(self.run_browser, self.queue_panel)
        dock.raise_()
        self.queue_panel.queue_started.connect(self._queue_started)
        self.queue_panel.queue_ended.connect(self._queue_ended)
        dock.run_started.connect(self.queue_panel.single_run_started)
        dock.run_ended.connect(self.queue_panel.single_run_ended)
        self.run_browser.add_to_queue.connect(self.queue_panel.requeue)
        self.queue_panel.item_ended.connect(self.run_browser.refresh)  # its runs as they end

    def _add_image_views(self, runs_dir: Path) -> None:
        """Scan image and camera (tabbed with the live view), points of interest (tabbed
        with the measurement dock); one crosshair: the instrument panel's stage readings."""
        self.scan_view = ScanView(self.setup, self.devices, runs_dir, parent=self)
        self.camera_view = CameraView(self.setup, self.devices, parent=self)
        for view in (self.scan_view, self.camera_view):
            self.addDockWidget(Qt.RightDockWidgetArea, view)
            self.tabifyDockWidget(self.live_dock, view)
            self.bridge.event.connect(view.on_event)
        self.instruments.stage_read.connect(self.scan_view.stage.set)
        dock = self.measurement_dock
        self.poi_list = POIList(
            self.setup,
            self.devices,
            self.scan_view.stage,
            scan_emitters=self.scan_view.emitter_positions_um,
            start_refocus=lambda name: start_refocus(dock, name),
            parent=self,
        )
        self.addDockWidget(Qt.LeftDockWidgetArea, self.poi_list)
        self.tabifyDockWidget(self.queue_panel, self.poi_list)
        self.poi_list.characterise_requested.connect(self.queue_panel.characterise)
        dock.run_started.connect(self._show_view_of)
        dock.run_ended.connect(self.scan_view.run_ended)
        dock.run_ended.connect(self.poi_list.run_ended)
        self.queue_panel.item_ended.connect(lambda _record: self.poi_list.refresh())
        self.queue_panel.item_ended.connect(self.scan_view.run_ended)
        dock.raise_()
        self.live_dock.raise_()

    def _show_view_of(self, name: str) -> None:
        """A confocal scan is followed in the scan view, every other run in the live view."""
        (self.scan_view if name == SCAN else self.live_dock).raise_()

    def _queue_started(self, name: str) -> None:
        """A queue holds the instruments: no single run, no instrument control meanwhile."""
        self.measurement_dock.start_button.setEnabled(False)
        self.measurement_dock.busy_reason = f"the queue {name!r} is running"
        self._run_started(f"queue {name}")

    def _queue_ended(self, outcome: Any) -> None:
        self.measurement_dock.start_button.setEnabled(True)
        self.measurement_dock.busy_reason = ""
        self._run_ended(outcome)

    def _run_ended(self, outcome: Any) -> None:
        self.run_browser.refresh()
        self.instruments.set_run_active(False)
        status = outcome.status if outcome is not None else "not run"
        self.statusBar().showMessage(f"last run: {status}")
        if self._close_requested:
            self.close()

    # --- settings -----------------------------------------------------------------------

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(LAYOUT_VERSION))
        s.setValue("measurement/current", self.measurement_dock.current)
        for name, form in self.measurement_dock.forms.items():
            for field, text in form.texts().items():
                s.setValue(f"parameters/{name}/{field}", text)
        s.sync()

    def restore_settings(self) -> None:
        s = self.settings
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        self._default_sizes_pending = state is None or not self.restoreState(state, LAYOUT_VERSION)
        dock = self.measurement_dock
        for name in dock.measurements:
            s.beginGroup(f"parameters/{name}")
            texts = {key: str(s.value(key)) for key in s.childKeys()}
            s.endGroup()
            if texts:
                dock.form(name).set_texts(texts)
        current = s.value("measurement/current")
        if current in dock.measurements:
            dock.select(str(current))

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        if getattr(self, "_default_sizes_pending", False):
            self._default_sizes_pending = False
            QTimer.singleShot(0, self._default_dock_sizes)  # once the shown window is laid out

    def _default_dock_sizes(self) -> None:
        """The first layout (no saved one): forms, live view and instruments side by side."""
        self.resizeDocks([self.instruments, self.instruments.rate_dock], [600, 300], Qt.Vertical)
        self.resizeDocks(
            [self.measurement_dock, self.live_dock, self.instruments],
            [430, 600, 470],
            Qt.Horizontal,
        )

    # --- closing ------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        """Stop a running measurement or queue first (it ends ``aborted``), then close."""
        if self.queue_panel.running:
            self._close_requested = True
            self.queue_panel.abort()
            self.statusBar().showMessage("aborting the queue before closing…")
            event.ignore()
            return
        if self.measurement_dock.running:
            self._close_requested = True
            self.measurement_dock.stop()
            self.statusBar().showMessage("stopping the run before closing…")
            event.ignore()
            return
        self.instruments.timer.stop()
        self.camera_view.set_live(False)
        self.run_browser.wait_idle()
        self.scan_view.wait_idle()
        self.save_settings()
        self.devices.shutdown()
        event.accept()
