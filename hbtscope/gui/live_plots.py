"""The live panels a measurement declares (``Measurement.live_plots``), fed by its events.

One ``pg.PlotWidget`` per :class:`~hbtscope.procedures.live_plots.LivePlot`: its y against its
x from the latest arrays or the ``results`` rows of the run, log y where declared, a 2-D array
as an image, and the declared fit drawn over the data once the analysis arrives.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtWidgets import QVBoxLayout, QWidget

from hbtscope import events as ev
from hbtscope.procedures.live_plots import LivePlot, rows_column


def histogram_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of ``values`` in about sqrt(n) bins (5 to 50)."""
    values = np.asarray(values, dtype=np.float64)
    bins = int(min(50, max(5, round(np.sqrt(max(values.size, 1))))))
    counts, edges = np.histogram(values, bins=bins)
    return counts.astype(np.float64), edges


class LivePanel:
    """One declared plot: a data curve (or image) and a fit curve."""

    def __init__(self, spec: LivePlot):
        self.spec = spec
        self.widget = pg.PlotWidget(title=spec.title)
        self.widget.setObjectName(f"live-panel:{spec.title}")
        self.widget.setLabel("bottom", spec.x_label or (spec.x or "index"))
        self.widget.setLabel("left", spec.y_label or spec.y)
        self.widget.setLogMode(y=spec.log_y)
        symbol = {"symbol": "o", "symbolSize": 5} if spec.points else {}
        pen = pg.mkPen("#1f77b4", width=1) if spec.line else None
        self.curve = self.widget.plot([], [], pen=pen, **symbol)
        self.fit_curve = self.widget.plot([], [], pen=pg.mkPen("#d62728", width=2))
        self.fit_points = self.widget.plot(
            [], [], pen=None, symbol="o", symbolSize=9, symbolPen="#ff7f0e", symbolBrush=None
        )
        dashed = pg.mkPen("#ff7f0e", width=1, style=Qt.DashLine)
        self.band = (self.widget.plot([], [], pen=dashed), self.widget.plot([], [], pen=dashed))
        self.image: pg.ImageItem | None = None

    def draw(self, source: dict[str, np.ndarray]) -> None:
        """Redraw from the current sources (name -> array)."""
        y = source.get(("stack:" if self.spec.stack else "") + self.spec.y)
        if y is None:
            return
        if self.spec.stack or y.ndim == 2:
            if y.ndim != 2:
                return
            if self.image is None:
                self.image = pg.ImageItem()
                self.widget.addItem(self.image)
                # pixels without an x axis (a camera frame, a raster) are square
                self.widget.setAspectLocked(self.spec.x is None)
            lo, hi = np.percentile(y, [1.0, 99.5])  # a few hot pixels do not set the scale
            self.image.setImage(y.T, levels=(float(lo), float(max(hi, lo + 1e-12))))
            x = source.get(self.spec.x) if self.spec.x else None
            if x is not None and x.ndim == 1 and x.size == y.shape[1] and x.size > 1:
                # x along the rows (e.g. wavelength), one row per array along y
                self.image.setRect(float(x[0]), 0.0, float(x[-1] - x[0]), float(y.shape[0]))
            return
        if self.spec.histogram:
            counts, edges = histogram_of(y)
            self.curve.setData(edges, counts, stepMode="center", symbol=None)
            return
        x = source.get(self.spec.x) if self.spec.x else np.arange(y.size)
        if x is None or x.size != y.size:
            x = np.arange(y.size)
        y = y.astype(np.float64)
        if self.spec.log_y:  # log of 0 counts: leave the point out
            keep = y > 0
            x, y = x[keep], y[keep]
        self.curve.setData(np.asarray(x, dtype=np.float64), y)

    def draw_fit(self, values: dict[str, Any]) -> None:
        """The declared fit at 200 points over the data's x range, and the points it used."""
        if self.spec.fit_points is not None:
            px, py = (np.asarray(values.get(k, []), dtype=np.float64) for k in self.spec.fit_points)
            if px.ndim == 1 and px.shape == py.shape:
                self.fit_points.setData(px, py)
                for curve, key in zip(self.band, self.spec.band or (), strict=False):
                    edge = np.asarray(values.get(key, []), dtype=np.float64)
                    if edge.shape == px.shape:
                        curve.setData(px, edge)
        x, _ = self.curve.getData()
        if self.spec.fit is None or x is None or len(x) < 2:
            return
        grid = np.linspace(float(np.min(x)), float(np.max(x)), 200)
        try:
            model = np.asarray(self.spec.fit(values, grid), dtype=np.float64)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return  # analysis without the fit (e.g. it failed): only the data
        self.fit_curve.setData(grid, model)


#: the shortest interval between two redraws of the declared panels
MIN_REDRAW_S = 0.2


class LivePlots(QWidget):
    """The panels of one measurement, one under the other."""

    def __init__(self, specs: tuple[LivePlot, ...], parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("live-plots")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.panels = [LivePanel(spec) for spec in specs]
        for panel in self.panels:
            layout.addWidget(panel.widget)
        self.arrays: dict[str, np.ndarray] = {}
        self.rows: list[dict[str, float]] = []
        #: every 1-D array published under a prefix ``group/*``, in order (stacked panels)
        self.stacks: dict[str, list[np.ndarray]] = {}
        # redraws are coalesced: at most one every MIN_REDRAW_S (a run publishing every 10 ms,
        # or with 100 000 rows, must not hold the GUI thread); the run's end draws at once
        self._pending: set[str | None] = set()
        self._drawn_at = -float("inf")
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.flush)

    def on_event(self, event: Any) -> None:
        """Feed one event of the run (GUI thread)."""
        if isinstance(event, ev.ArrayRecorded | ev.ArrayAppended):
            data = np.asarray(event.data)
            self.arrays[event.name] = data
            prefix = event.name.rsplit("/", 1)[0] + "/*" if "/" in event.name else ""
            if prefix:
                self.arrays[prefix] = data  # the latest under the prefix
                self.stacks.setdefault(prefix, []).append(data)
            self._request(event.name)
            if prefix:
                self._request(prefix)
        elif isinstance(event, ev.Emitted) and event.topic == "results":
            if isinstance(event.record, dict):
                self.rows.append(dict(event.record))
                self._request(None)
        elif isinstance(event, ev.AnalysisResult):
            self.flush()
            for panel in self.panels:
                panel.draw_fit(dict(event.values))
        elif isinstance(event, ev.RunEnded):
            self.flush()

    def _request(self, name: str | None) -> None:
        """Redraw the panels of ``name`` (None: the rows' panels) soon."""
        self._pending.add(name)
        if not self._timer.isActive():
            wait_s = max(self._drawn_at + MIN_REDRAW_S - time.monotonic(), 0.0)
            self._timer.start(int(1e3 * wait_s))

    def flush(self) -> None:
        """Draw what is pending now."""
        self._timer.stop()
        pending, self._pending = self._pending, set()
        if not pending:
            return
        self._drawn_at = time.monotonic()
        sources = self._sources()
        for panel in self.panels:
            names = (panel.spec.x, panel.spec.y)
            if None in pending or any(n in pending for n in names):
                panel.draw(sources)

    def _sources(self) -> dict[str, np.ndarray]:
        sources = dict(self.arrays)
        for panel in self.panels:
            stack = self.stacks.get(panel.spec.y) if panel.spec.stack else None
            if stack and all(a.shape == stack[0].shape and a.ndim == 1 for a in stack):
                sources["stack:" + panel.spec.y] = np.vstack(stack)
        names = {n for p in self.panels for n in (p.spec.x, p.spec.y) if n and rows_column(n)}
        for name in names:
            col = rows_column(name)
            rows = [r for r in self.rows if isinstance(r.get(col), int | float)]
            sources[name] = np.array([float(r[col]) for r in rows])
        return sources
