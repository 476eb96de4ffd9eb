"""The points-of-interest list: the emitter book (``<data_dir>/emitters/``) as a table, with
add, rename, remove, go to, refocus and the drift history of the chosen point.

A point is an emitter record of :class:`~hbtscope.storage.emitter_book.EmitterBook`; its
position is the last of its ``positions`` (the drift history). **Add at crosshair** takes the
stage's position (the scan view's crosshair); **Add scan emitters** adds every emitter the
scan shown found. **Go to** moves the stage through the device worker; **Refocus** runs the
``refocus`` measurement on the point through the measurement dock (its form filled with the
point's name), which appends the refocused position to the point's history; the plot shows
x, y, z relative to the first position against time. **Characterise all** emits
:attr:`POIList.characterise_requested` with every point (the queue panel builds a queue).
Refusals (a bad name, a run holding the instruments) are shown in the message line.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QGridLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hbtscope.gui.device_worker import DeviceWorker
from hbtscope.gui.scan_view import StagePosition
from hbtscope.storage.emitter_book import EmitterBook, EmitterBookError, EmitterRecord

COLUMNS = ("name", "x [µm]", "y [µm]", "z [µm]", "positions")
AXIS_PENS = {"x": "#1f77b4", "y": "#d62728", "z": "#2ca02c"}


def drift_history(record: EmitterRecord) -> dict[str, np.ndarray]:
    """``t_s`` (since the first position) and ``x_um``/``y_um``/``z_um`` relative to the
    first position, from a record's ``positions``."""
    times, xyz = [], []
    for p in record.positions:
        try:
            times.append(datetime.fromisoformat(str(p["time"])).timestamp())
            xyz.append([float(p["x_um"]), float(p["y_um"]), float(p["z_um"])])
        except (KeyError, ValueError, TypeError):
            continue
    if not times:
        return {k: np.zeros(0) for k in ("t_s", "x_um", "y_um", "z_um")}
    t = np.asarray(times) - times[0]
    a = np.asarray(xyz) - xyz[0]
    return {"t_s": t, "x_um": a[:, 0], "y_um": a[:, 1], "z_um": a[:, 2]}


class POIList(QDockWidget):
    """The emitter book as the operator's list of points of interest."""

    #: "Characterise all": every point as ``{"name", "x_um", "y_um", "z_um"}``
    characterise_requested = pyqtSignal(list)

    def __init__(
        self,
        setup: Any,
        devices: DeviceWorker,
        stage: StagePosition,
        *,
        scan_emitters: Any = None,
        start_refocus: Any = None,
        parent: QWidget | None = None,
    ):
        super().__init__("Points of interest", parent)
        self.setObjectName("dock-poi")
        self.setup = setup
        self.devices = devices
        self.stage = stage
        self.book = EmitterBook(setup.data_dir)
        #: () -> [(x, y, z)]: the emitters of the scan shown
        self.scan_emitters = scan_emitters or (lambda: [])
        #: (name) -> str: start a refocus run of that point ("" or why it was refused)
        self.start_refocus = start_refocus

        body = QWidget()
        layout = QVBoxLayout(body)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("poi-table")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        layout.addWidget(self.table, 2)
        grid = QGridLayout()
        self.name_edit = QLineEdit()
        self.name_edit.setObjectName("poi-name")
        self.name_edit.setPlaceholderText("new name (rename)")
        self.buttons: dict[str, QPushButton] = {}
        for i, (key, text, slot) in enumerate(
            (
                ("add", "Add at crosshair", self.add_at_crosshair),
                ("add-scan", "Add scan emitters", self.add_scan_emitters),
                ("rename", "Rename", self.rename),
                ("remove", "Remove", self.remove),
                ("go", "Go to", self.go_to),
                ("refocus", "Refocus", self.refocus),
                ("characterise", "Characterise all", self.characterise_all),
            )
        ):
            button = QPushButton(text)
            button.setObjectName(f"poi-{key}")
            button.clicked.connect(lambda _=False, s=slot: s())
            self.buttons[key] = button
            grid.addWidget(button, i // 3, i % 3)
        grid.addWidget(self.name_edit, 3, 0, 1, 3)
        layout.addLayout(grid)
        self.message = QLabel("")
        self.message.setObjectName("poi-message")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00000;")
        layout.addWidget(self.message)
        self.drift_plot = pg.PlotWidget()
        self.drift_plot.setObjectName("poi-drift")
        self.drift_plot.setLabel("bottom", "time since the first position [s]")
        self.drift_plot.setLabel("left", "position − first [µm]")
        self.drift_plot.addLegend()
        self.drift_curves = {
            axis: self.drift_plot.plot(
                [], [], pen=pg.mkPen(pen, width=1.5), symbol="o", symbolSize=5, name=axis
            )
            for axis, pen in AXIS_PENS.items()
        }
        layout.addWidget(self.drift_plot, 2)
        self.setWidget(body)
        self.table.itemSelectionChanged.connect(self._show_drift)
        self.refresh()

    # --- the list -----------------------------------------------------------------------

    def records(self) -> list[EmitterRecord]:
        """The book's records (unreadable ones are named in the message line)."""
        out, bad = [], []
        for name in self.book.names():
            try:
                out.append(self.book.require(name))
            except EmitterBookError as exc:
                bad.append(str(exc))
        if bad:
            self.message.setText("; ".join(bad))
        return out

    def points(self) -> list[dict[str, Any]]:
        """Every point with a position: ``{"name", "x_um", "y_um", "z_um"}``."""
        out = []
        for record in self.records():
            xyz = record.position_um()
            if xyz is not None:
                out.append({"name": record.name, "x_um": xyz[0], "y_um": xyz[1], "z_um": xyz[2]})
        return out

    def refresh(self) -> None:
        """Re-read the book (keeps the selected point selected)."""
        selected = self.selected()
        records = self.records()
        self.table.setRowCount(len(records))
        for row, record in enumerate(records):
            xyz = record.position_um() or (math.nan,) * 3
            cells = (record.name, *(f"{v:.3f}" for v in xyz), str(len(record.positions)))
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
            if record.name == selected:
                self.table.selectRow(row)
        self.table.resizeColumnsToContents()
        self._show_drift()

    def selected(self) -> str | None:
        """The name of the selected point, if any."""
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 0)
        return item.text() if item is not None else None

    def select(self, name: str) -> None:
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).text() == name:
                self.table.selectRow(row)
                return

    def _need_selection(self) -> str | None:
        name = self.selected()
        if name is None:
            self.message.setText("choose a point first")
        return name

    def _show_drift(self) -> None:
        name = self.selected()
        record = self.book.get(name) if name else None
        history = drift_history(record) if record is not None else None
        for axis, curve in self.drift_curves.items():
            if history is None:
                curve.setData([], [])
            else:
                curve.setData(history["t_s"], history[f"{axis}_um"])
        self.drift_plot.setTitle(f"drift of {name}" if name else "drift (choose a point)")

    # --- actions ------------------------------------------------------------------------

    def _book_call(self, fn: Any, *args: Any) -> Any:
        self.message.setText("")
        try:
            return fn(*args)
        except (EmitterBookError, OSError) as exc:
            self.message.setText(str(exc))
            return None

    def add_at_crosshair(self) -> None:
        """A new point where the stage is (the crosshair)."""
        xyz = self.stage.xyz_um
        if xyz is None:
            self.message.setText("the stage's position is not known yet")
            return
        name = self.book.next_name()
        if self._book_call(self.book.create, name, xyz, "crosshair") is not None:
            self.refresh()
            self.select(name)

    def add_scan_emitters(self) -> None:
        """Every emitter of the scan shown becomes a point."""
        found = [p for p in self.scan_emitters() if all(math.isfinite(v) for v in p)]
        if not found:
            self.message.setText("the scan shown has no emitters")
            return
        for xyz in found:
            if self._book_call(self.book.create, self.book.next_name(), xyz, "scan") is None:
                break
        self.refresh()

    def rename(self) -> None:
        name = self._need_selection()
        if name is None:
            return
        new = self.name_edit.text().strip()
        if self._book_call(self.book.rename, name, new) is not None:
            self.refresh()
            self.select(new)

    def remove(self) -> None:
        name = self._need_selection()
        if name is not None:
            self._book_call(self.book.remove, name)
            self.refresh()

    def go_to(self) -> None:
        """Move the stage to the chosen point's last position (through the device worker)."""
        name = self._need_selection()
        record = self._book_call(self.book.require, name) if name else None
        if record is None or record.position_um() is None:
            return
        xyz = record.position_um()
        stage = self.setup.stage

        def move() -> tuple[float, ...]:
            stage.move_to(*xyz)
            return tuple(stage.position_um)

        def done(result: Any, error: str) -> None:
            self.message.setText(f"go to {name}: {error}" if error else "")
            if not error:
                self.stage.set(result)

        self.devices.submit(move, done)

    def refocus(self) -> None:
        """Run ``refocus`` on the chosen point (appends to its drift history)."""
        name = self._need_selection()
        if name is None or self.start_refocus is None:
            return
        refusal = self.start_refocus(name)
        self.message.setText(refusal or f"refocusing {name}…")

    def run_ended(self, _outcome: Any = None) -> None:
        """Any run may have written to the book (refocus, saturation): re-read it."""
        self.message.setText("")
        self.refresh()

    def characterise_all(self) -> None:
        points = self.points()
        if not points:
            self.message.setText("no points to characterise")
            return
        self.characterise_requested.emit(points)


def start_refocus(dock: Any, name: str) -> str:
    """Start ``refocus`` on point ``name`` through the measurement dock ``dock`` (its form
    filled: the emitter's name, start where the book has it); "" or why it did not start."""
    if dock.running:
        return "a measurement is running: refocus when it has ended"
    if dock.busy_reason:
        return f"{dock.busy_reason}: refocus when it has ended"
    if "refocus" not in dock.measurements:
        return "no refocus measurement is installed"
    dock.select("refocus")
    form = dock.form("refocus")
    form.set_value("emitter", name)
    for axis in ("x_um", "y_um", "z_um"):
        form.set_value(axis, math.nan)
    dock.start()
    return "" if dock.running else dock.status.text()
