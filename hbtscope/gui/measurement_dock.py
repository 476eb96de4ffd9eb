"""The measurement dock: pick any runnable measurement, its generated form, Start and Stop.

The list comes from :func:`hbtscope.procedures.registry.runnable` (built-in and installed
measurements), each form from the procedure's Parameters (:mod:`hbtscope.gui.parameter_form`),
so a new measurement appears here without GUI code. Start converts the form (a refused field is
shown in place), builds the procedure and runs it in a :class:`~hbtscope.gui.run_worker.RunThread`;
its events go through the :class:`~hbtscope.gui.bridge.EventBridge` to the live view. A
:class:`~hbtscope.procedures.errors.ParameterError` from the run's own checks (against the
setup: laser limit, stage travel, ...) comes back before any file exists and is shown in place
too. Stop asks the run to stop; it ends ``aborted`` with the instruments in their safe state.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from hbtscope.gui.bridge import EventBridge
from hbtscope.gui.live_correlation import LiveCorrelation
from hbtscope.gui.live_count_rate import LiveCountRate, spad_names
from hbtscope.gui.parameter_form import FormError, ParameterForm
from hbtscope.gui.run_worker import RunThread

#: the measurement shown first (until the settings remember another)
DEFAULT = "g2"


class MeasurementDock(QDockWidget):
    """Choose, parameterise, start and stop a measurement."""

    run_started = pyqtSignal(str)
    #: the run is over (outcome, or None if it was refused or crashed)
    run_ended = pyqtSignal(object)

    def __init__(
        self,
        measurements: dict[str, Any],
        setup: Any,
        out_dir: str | Path | None,
        bridge: EventBridge,
        hardware_lock: threading.Lock,
        parent: QWidget | None = None,
    ):
        super().__init__("Measurement", parent)
        self.setObjectName("dock-measurement")
        self.measurements = measurements
        self.setup = setup
        self.out_dir = out_dir
        self.bridge = bridge
        self.hardware_lock = hardware_lock
        self.thread: RunThread | None = None
        self.last_outcome: Any = None
        #: why no measurement can start now ("" when one can): set while a queue runs
        self.busy_reason = ""
        self.forms: dict[str, ParameterForm] = {}
        #: the g2 histogram while tags are recorded (snapshots straight to the GUI thread)
        self.live_correlation = LiveCorrelation(bridge.event.emit)
        self.live_count_rate = LiveCountRate(bridge.event.emit, scan_detectors=spad_names(setup))

        body = QWidget()
        layout = QVBoxLayout(body)
        self.chooser = QComboBox()
        self.chooser.setObjectName("measurement-chooser")
        for name, m in measurements.items():
            self.chooser.addItem(name)
            self.chooser.setItemData(self.chooser.count() - 1, m.describe(), 3)  # tooltip
        self.description = QLabel("")
        self.description.setWordWrap(True)
        self.stack = QStackedWidget()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.stack)
        self.scroll = scroll
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("start")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("stop")
        self.stop_button.setEnabled(False)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.stop_button)
        self.status = QLabel("idle")
        self.status.setObjectName("run-status")
        self.status.setWordWrap(True)
        for w in (self.chooser, self.description, scroll):
            layout.addWidget(w)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.setWidget(body)

        self.chooser.currentTextChanged.connect(self.select)
        self.start_button.clicked.connect(self.start)
        self.stop_button.clicked.connect(self.stop)
        if measurements:
            self.select(DEFAULT if DEFAULT in measurements else self.chooser.currentText())

    # --- forms --------------------------------------------------------------------------

    def form(self, name: str) -> ParameterForm:
        """The generated form of measurement ``name`` (built on first use)."""
        if name not in self.forms:
            form = ParameterForm(self.measurements[name].procedure)
            form.setObjectName(f"form-{name}")
            self.forms[name] = form
            self.stack.addWidget(form)
        return self.forms[name]

    def select(self, name: str) -> None:
        """Show measurement ``name``'s form."""
        if name not in self.measurements:
            return
        if self.chooser.currentText() != name:
            self.chooser.setCurrentText(name)
        self.stack.setCurrentWidget(self.form(name))
        self.description.setText(self.measurements[name].describe())

    @property
    def current(self) -> str:
        return self.chooser.currentText()

    @property
    def running(self) -> bool:
        """From ``start`` until ``run_ended`` was emitted (the outcome known): not only while
        the worker thread runs, whose end comes before its queued ``ended`` signal."""
        return self.thread is not None

    # --- running ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the chosen measurement with the form's values (refusals shown in place)."""
        if self.running:
            return
        if self.busy_reason:  # e.g. a queue holds the instruments: refuse, do not wait
            self.status.setText(f"refused: {self.busy_reason}; nothing was moved or switched on")
            return
        name = self.current
        form = self.form(name)
        form.clear_refusal()
        try:
            values = form.values()
        except FormError as exc:
            self._show_refusal(form, str(exc), exc.name)
            self.status.setText(f"refused: {exc}; nothing was moved or switched on")
            return
        try:
            procedure = self.measurements[name].procedure(**values)
        except (ValueError, TypeError) as exc:  # a procedure's own constructor checks
            self._show_refusal(form, f"{name}: {exc}")
            self.status.setText(f"refused: {exc}; nothing was moved or switched on")
            return
        self.last_outcome = None
        thread = RunThread(
            procedure,
            self.setup,
            self.out_dir,
            [self.bridge.display, self.live_correlation.display, self.live_count_rate.display],
            self.hardware_lock,
        )
        thread.ended.connect(self._ended)
        thread.refused.connect(self._refused)
        thread.crashed.connect(self._crashed)
        thread.finished.connect(self._thread_done)
        self.thread = thread
        self.start_button.setEnabled(False)
        self.stop_button.setEnabled(True)
        self.chooser.setEnabled(False)
        self.status.setText(f"{name}: running")
        self.run_started.emit(name)
        thread.start()

    def stop(self) -> None:
        """Ask the running measurement to stop (it ends ``aborted``)."""
        if self.thread is not None:
            self.thread.request_stop()
            self.status.setText(f"{self.current}: stopping")

    def _ended(self, outcome: Any) -> None:
        self.last_outcome = outcome
        text = f"{self.current}: {outcome.status} — {outcome.path}"
        self.status.setText(text + (f"\n{outcome.error}" if outcome.error else ""))

    def _show_refusal(self, form: ParameterForm, message: str, name: str | None = None) -> None:
        """The message below the form and the field marked and scrolled into view."""
        field = form.show_refusal(message, name)
        if field is not None:
            self.scroll.ensureWidgetVisible(field)

    def _refused(self, message: str) -> None:
        self._show_refusal(self.forms[self.current], message)
        self.status.setText(f"refused: {message}; nothing was moved or switched on, no run file")

    def _crashed(self, message: str) -> None:
        self.status.setText(f"failed: {message}")

    def _thread_done(self) -> None:
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.wait(1000)  # finished was emitted as run() returned: the thread is exiting
            thread.deleteLater()
        self.start_button.setEnabled(True)
        self.stop_button.setEnabled(False)
        self.chooser.setEnabled(True)
        self.run_ended.emit(self.last_outcome)
