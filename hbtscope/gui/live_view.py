"""The live view of a run, fed by its events (through the bridge's signal, in the GUI thread).

* progress bar from :class:`~hbtscope.events.Progress`;
* a 1-D plot of the latest 1-D array (:class:`~hbtscope.events.ArrayRecorded` or a row of
  :class:`~hbtscope.events.ArrayAppended`), drawn against the axis array of its group
  (``g2/coincidences`` against ``g2/lag_ps``: same group, same length, a unit of time,
  length, wavelength, power or angle); the g2 histogram is this view, with delay in ns;
* an image of the latest 2-D array (a camera frame), or of a 3-D one with a few channels first
  (a scan's counts per detector, shape (detectors, ny, nx)), summed over the channels;
* the rows a procedure emits as pymeasure ``results`` (:class:`~hbtscope.events.Emitted`): its
  last numeric column against its first (saturation: rate against set power; polarisation:
  counts against angle; g2: counts against elapsed time);
* the result with its uncertainties from :class:`~hbtscope.events.AnalysisResult`:
  ``g2(0) = 0.12 ± 0.03`` for g2, ``name = value ± error`` for every scalar of any measurement.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from hbtscope import events as ev
from hbtscope.gui.live_plots import LivePlots

#: units that make a 1-D array the x axis of the other arrays of its group
AXIS_UNITS = {"ps", "ns", "s", "um", "nm", "W", "deg", "Hz"}
#: a 3-D array with at most this many planes first is per-channel images (summed for the view)
MAX_CHANNELS = 8
#: results rows are redrawn at most this often (s) once there are more than a few
ROWS_REDRAW_S = 0.2
#: rows drawn with a symbol each up to this many, as a line beyond
MAX_ROW_SYMBOLS = 200


def format_value(value: float, error: float | None = None) -> str:
    """``value ± error`` with the error's two significant digits setting the precision."""
    if error is None or not math.isfinite(error) or error <= 0:
        return f"{value:.4g}"
    digits = max(0, 1 - int(math.floor(math.log10(error))))
    return f"{value:.{digits}f} ± {error:.{digits}f}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def error_of(key: str, values: dict[str, Any], errors: dict[str, Any]) -> float | None:
    """The uncertainty of ``values[key]``: ``errors[key]`` or the value ``<key>_err``."""
    err = errors.get(key, values.get(f"{key}_err"))
    return float(err) if _is_number(err) else None


def result_lines(values: dict[str, Any], errors: dict[str, Any]) -> list[str]:
    """One line per scalar of an analysis, with its error if it has one."""
    lines = []
    for key, value in values.items():
        if not _is_number(value):
            continue
        if key.endswith("_err") and key.removesuffix("_err") in values:
            continue  # shown with its value
        lines.append(f"{key} = {format_value(float(value), error_of(key, values, errors))}")
    return lines


def unnamed_image_view() -> pg.ImageView:
    """A ``pyqtgraph.ImageView`` whose views are not registered by name.

    ImageView registers its ViewBox (and its ROI plot's) under a name, and connects their
    ``destroyed`` signal to ``ViewBox.forgetView``, which then walks every ViewBox alive. When
    the window is freed by the cycle collector that walk meets half-freed views of the other
    docks and the process crashes (seen: a segmentation fault in ``gc.collect()`` after a
    window with the scan and camera views closed). Named views serve only the context menu's
    axis linking, which the dashboard does not use: they are unregistered and the connection
    dropped at once.
    """
    view = pg.ImageView()
    for box in (view.view, view.ui.roiPlot.getViewBox()):
        with contextlib.suppress(KeyError):
            box.unregister()
        box.name = None
        with contextlib.suppress(TypeError, RuntimeError):
            box.destroyed.disconnect()
    return view


class LiveView(QWidget):
    """Progress, the latest 1-D and 2-D arrays, and the result of the run being shown."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.title = QLabel("no run yet")
        self.title.setObjectName("live-title")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("live-plot")
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#1f77b4", width=1))
        self.results_plot = pg.PlotWidget()
        self.results_plot.setObjectName("results-plot")
        self.results_curve = self.results_plot.plot(
            [], [], pen=pg.mkPen("#2ca02c", width=1), symbol="o", symbolSize=4
        )
        self.results_plot.hide()
        self.rows: list[dict[str, float]] = []
        self._rows_drawn_at = -float("inf")
        self.image_view = unnamed_image_view()
        self.image_view.setObjectName("live-image")
        self.image_view.hide()
        self.headline = QLabel("")
        self.headline.setObjectName("headline")
        self.headline.setStyleSheet("font-size: 16pt; font-weight: bold;")
        self.result = QPlainTextEdit()
        self.result.setObjectName("result")
        self.result.setReadOnly(True)
        split = self.splitter = QSplitter(Qt.Vertical)
        split.addWidget(self.plot)
        split.addWidget(self.results_plot)
        split.addWidget(self.image_view)
        split.addWidget(self.result)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 4)
        split.setStretchFactor(2, 4)
        split.setStretchFactor(3, 1)
        for w in (self.title, self.progress, self.headline):
            layout.addWidget(w)
        layout.addWidget(split, 1)
        self.arrays: dict[str, tuple[np.ndarray, str | None]] = {}
        self.analysis: ev.AnalysisResult | None = None
        self.status = ""
        #: the measurement's declared panels (``Measurement.live_plots``) of the current run
        self.declared: LivePlots | None = None

    # --- events -------------------------------------------------------------------------

    def on_event(self, event: Any) -> None:
        """Draw one event of the run (GUI thread)."""
        if isinstance(event, ev.RunStarted):
            self.reset(event.procedure)
        if self.declared is not None:  # the measurement's own panels, then the generic view
            self.declared.on_event(event)
        if isinstance(event, ev.Progress):
            self.progress.setValue(int(round(10 * event.percent)))
        elif isinstance(event, ev.ArrayRecorded | ev.ArrayAppended):
            self.show_array(event.name, np.asarray(event.data), event.units)
        elif isinstance(event, ev.Emitted) and event.topic == "results":
            self.add_row(event.record)
        elif isinstance(event, ev.AnalysisResult):
            self.show_result(event)
        elif isinstance(event, ev.RunEnded):
            self.draw_rows()  # the rows a throttled redraw has not shown yet
            self.status = event.status
            if event.status == "finished":
                self.progress.setValue(1000)
            text = f"{self.title.text().split(' — ')[0]} — {event.status}"
            self.title.setText(text + (f": {event.error}" if event.error else ""))

    def reset(self, procedure: str) -> None:
        self.title.setText(f"{procedure} — running")
        self.progress.setValue(0)
        self.headline.setText("")
        self.result.setPlainText("")
        self.arrays.clear()
        self.analysis = None
        self.status = "running"
        self.curve.setData([], [])
        for view in (self.plot, self.results_plot, self.image_view):
            view.hide()  # each comes back with its first data
        self.rows = []
        self._rows_drawn_at = -float("inf")
        self.results_curve.setData([], [])
        self._declare(procedure)

    def _declare(self, procedure: str) -> None:
        """Show the measurement's declared panels instead of the generic curves (if any)."""
        if self.declared is not None:
            self.declared.setParent(None)
            self.declared.deleteLater()
            self.declared = None
        from hbtscope.procedures.registry import all_measurements

        measurement = all_measurements().get(procedure)
        specs = tuple(getattr(measurement, "live_plots", ()) or ())
        if specs:
            self.declared = LivePlots(specs)
            self.splitter.insertWidget(0, self.declared)
            self._share_height()

    def show_array(self, name: str, data: np.ndarray, units: str | None) -> None:
        self.arrays[name] = (data, units)
        if data.ndim == 3 and data.shape[0] <= MAX_CHANNELS:
            data = data.sum(axis=0)
        if data.ndim == 2:
            if self.image_view.isHidden() and self.declared is None:
                self.image_view.show()
                self._share_height()
            self.image_view.setImage(data.T, autoLevels=True)
        elif data.ndim == 1 and (units or "") not in AXIS_UNITS:
            if self.plot.isHidden() and self.declared is None:
                self.plot.show()
                self._share_height()
            x, x_label = self._axis_for(name, data.size)
            self.curve.setData(x, data.astype(np.float64))
            self.plot.setLabel("bottom", x_label)
            self.plot.setLabel("left", f"{name} [{units}]" if units else name)

    def _share_height(self) -> None:
        """Share the height among the views shown: plots and image 3 parts, results 1."""
        weights = [self._weight(w) for w in self._views()]
        total = max(1, sum(self.splitter.sizes()))
        self.splitter.setSizes([int(total * w / max(1, sum(weights))) for w in weights])

    def _weight(self, view: QWidget) -> int:
        if view.isHidden():
            return 0
        return 1 if view is self.result else (6 if view is self.declared else 3)

    def _views(self) -> list[QWidget]:
        return [self.splitter.widget(i) for i in range(self.splitter.count())]

    def add_row(self, record: Any) -> None:
        """One ``results`` row: plot its last numeric column against its first."""
        if not isinstance(record, dict):
            return
        row = {k: float(v) for k, v in record.items() if _is_number(v)}
        if len(row) < 2:
            return
        self.rows.append(row)
        now = time.monotonic()
        if now - self._rows_drawn_at >= ROWS_REDRAW_S or len(self.rows) <= MAX_ROW_SYMBOLS:
            self.draw_rows()
            self._rows_drawn_at = now

    def draw_rows(self) -> None:
        """The rows so far: last column against first; symbols only while they are few
        (pyqtgraph builds a pen per symbol: thousands of rows stalled the GUI thread)."""
        if not self.rows:
            return
        keys = list(self.rows[-1])
        x_key, y_key = keys[0], keys[-1]
        rows = [r for r in self.rows if x_key in r and y_key in r]
        if self.results_plot.isHidden() and self.declared is None:
            self.results_plot.show()
            self._share_height()
        symbol = "o" if len(rows) <= MAX_ROW_SYMBOLS else None
        self.results_curve.setData(
            [r[x_key] for r in rows], [r[y_key] for r in rows], symbol=symbol, symbolSize=4
        )
        self.results_plot.setLabel("bottom", x_key)
        self.results_plot.setLabel("left", y_key)

    def _axis_for(self, name: str, size: int) -> tuple[np.ndarray, str]:
        group = name.rsplit("/", 1)[0] if "/" in name else ""
        for other, (data, units) in self.arrays.items():
            same_group = (other.rsplit("/", 1)[0] if "/" in other else "") == group
            if other != name and same_group and data.ndim == 1 and data.size == size:
                if units == "ps":
                    return data / 1000.0, f"{other.rsplit('/', 1)[-1].replace('_ps', '')} [ns]"
                if (units or "") in AXIS_UNITS:
                    return data, f"{other.rsplit('/', 1)[-1]} [{units}]"
        return np.arange(size), "index"

    def show_result(self, result: ev.AnalysisResult) -> None:
        self.analysis = result
        values, errors = dict(result.values), dict(result.errors)
        if "error" in values:
            self.headline.setText(f"analysis: {values['error']}")
        elif _is_number(values.get("g2_0")):  # one g2(0); a series (g2_power) has no headline
            err = error_of("g2_0", values, errors)
            self.headline.setText(f"g2(0) = {format_value(float(values['g2_0']), err)}")
        self.result.setPlainText("\n".join(result_lines(values, errors)))
