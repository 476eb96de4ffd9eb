"""The run browser: any run file of the data directory, re-read and re-drawn from the file alone.

Choosing a run loads it in a worker thread (never in the GUI thread): its status, the parameters
it ran with, the instrument snapshot, the analysis recomputed from its stored data
(:func:`hbtscope.reanalyse.analyse_run`, numbers with their uncertainties) and its figure drawn
by the measurement's own ``figure(run, path)`` into a temporary PNG. A file still being written
by another process is read as far as it is flushed (:func:`hbtscope.storage.open_run`).
"Run again" hands the run's measurement and parameters to the measurement dock, "Add to queue"
to the queue panel (``add_to_queue``).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt, QThread, pyqtSignal
from PyQt5.QtGui import QPixmap
from PyQt5.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPushButton,
    QSplitter,
    QTabWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hbtscope.gui.file_lister import FileLister


def load_run(path: str | Path) -> dict[str, Any]:
    """Everything the browser shows of one run file (called in a worker thread)."""
    from hbtscope.procedures.registry import all_measurements
    from hbtscope.reanalyse import analyse_run
    from hbtscope.storage import layout as L
    from hbtscope.storage import open_run, read_parameters
    from hbtscope.storage.runfile import read_values

    path = Path(path)
    out: dict[str, Any] = {"path": str(path), "error": ""}
    try:
        with open_run(path) as f:
            out["measurement"] = str(f.attrs.get("procedure", ""))
            out["status"] = str(f.attrs.get(L.ATTR_STATUS, ""))
            out["parameters"], out["units"] = read_parameters(f)
            snap = f.get(L.SNAPSHOT)
            out["snapshot"] = _nested(snap, read_values) if snap is not None else {}
            m = all_measurements().get(out["measurement"])
            if m is not None and m.figure is not None:
                png = Path(tempfile.mkdtemp(prefix="hbtscope-browser-")) / f"{path.stem}.png"
                try:
                    out["figure"] = str(m.figure(f, png) or "")
                except Exception as exc:  # noqa: BLE001 - a figure must not hide the rest
                    out["figure_error"] = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - shown in place: a corrupt or foreign file
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    try:
        result = analyse_run(path)
        result.pop("arrays", None)
        out["analysis"] = result
    except Exception as exc:  # noqa: BLE001 - e.g. a run still being written, nothing yet
        out["analysis_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _nested(group: Any, read_values: Any) -> dict[str, Any]:
    """A group's values and, as dicts, those of its sub-groups (an instrument snapshot)."""
    import h5py

    out = read_values(group)
    for name, member in group.items():
        if isinstance(member, h5py.Group):
            out[name] = _nested(member, read_values)
    return out


class _Loader(QThread):
    loaded = pyqtSignal(object)

    def __init__(self, path: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.path = path

    def run(self) -> None:
        self.loaded.emit(load_run(self.path))


def _tree_items(parent: QTreeWidgetItem | QTreeWidget, mapping: dict[str, Any]) -> None:
    for key, value in mapping.items():
        item = QTreeWidgetItem([str(key), "" if isinstance(value, dict) else _fmt(value)])
        if isinstance(parent, QTreeWidget):
            parent.addTopLevelItem(item)
        else:
            parent.addChild(item)
        if isinstance(value, dict):
            _tree_items(item, value)


def _fmt(value: Any, err: Any = None) -> str:
    if isinstance(value, float):
        text = f"{value:.6g}"
        if isinstance(err, float) and math.isfinite(err):
            text += f" ± {err:.2g}"
        return text
    return str(value)


class _ScaledImage(QLabel):
    """A figure scaled to the space it has (a pixmap label otherwise forces the dock's width
    to the figure's)."""

    def __init__(self) -> None:
        super().__init__("")
        self.setAlignment(Qt.AlignCenter)
        self.setMinimumSize(120, 90)
        self.original = QPixmap()

    def set_figure(self, pixmap: QPixmap) -> None:
        self.original = pixmap
        self._fit()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        if self.original.isNull():
            self.setPixmap(QPixmap())
            return
        self.setPixmap(
            self.original.scaled(self.size(), Qt.KeepAspectRatio, Qt.SmoothTransformation)
        )


class RunBrowser(QDockWidget):
    """Dock listing the run files of ``data_dir``, newest first (see the module doc)."""

    #: (measurement name, parameters) of a run to set up again in the measurement dock
    run_again = pyqtSignal(str, object)
    #: (measurement name, parameters) of a run to append to the queue
    add_to_queue = pyqtSignal(str, object)
    #: emitted when a run has been shown (its load dict)
    shown = pyqtSignal(object)
    #: emitted when the list of run files has been (re)filled
    listed = pyqtSignal()

    def __init__(self, data_dir: str | Path, parent: QWidget | None = None):
        super().__init__("Runs", parent)
        self.setObjectName("dock-runs")
        self.data_dir = Path(data_dir)
        self.current: dict[str, Any] | None = None
        self._loaders: list[_Loader] = []
        self.files = QListWidget()
        self.files.currentTextChanged.connect(self._chosen)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh)
        self.again = QPushButton("Run again")
        self.again.setToolTip("the measurement's form filled with this run's parameters")
        self.again.setEnabled(False)
        self.again.clicked.connect(self._run_again)
        self.requeue = QPushButton("Add to queue")
        self.requeue.setObjectName("add-to-queue")
        self.requeue.setEnabled(False)
        self.requeue.clicked.connect(self._add_to_queue)
        self.header = QLabel("")
        self.header.setWordWrap(True)
        self.figure = _ScaledImage()
        self.parameters = QTreeWidget()
        self.parameters.setHeaderLabels(["parameter", "value"])
        self.analysis = QTreeWidget()
        self.analysis.setHeaderLabels(["result", "value ± uncertainty"])
        self.snapshot = QTreeWidget()
        self.snapshot.setHeaderLabels(["instrument", "setting"])
        tabs = QTabWidget()
        tabs.addTab(self.figure, "Figure")
        tabs.addTab(self.analysis, "Analysis")
        tabs.addTab(self.parameters, "Parameters")
        tabs.addTab(self.snapshot, "Instruments")
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addWidget(self.files)
        buttons = QHBoxLayout()
        buttons.addWidget(refresh)
        buttons.addWidget(self.again)
        buttons.addWidget(self.requeue)
        lv.addLayout(buttons)
        right = QWidget()
        rv = QVBoxLayout(right)
        rv.addWidget(self.header)
        rv.addWidget(tabs)
        split = QSplitter(Qt.Vertical)  # list above, the chosen run below: fits a narrow dock
        split.addWidget(left)
        split.addWidget(right)
        self.setWidget(split)
        self.lister = FileLister(self.data_dir, "*.h5", self)
        self.lister.listed.connect(self._listed)
        self.refresh()

    def refresh(self) -> None:
        """List the run files of the data directory again, newest first (in a worker
        thread: :mod:`hbtscope.gui.file_lister`; :attr:`listed` when shown)."""
        self.lister.request()

    def _listed(self, runs: list[Path]) -> None:
        chosen = self.files.currentItem().text() if self.files.currentItem() else None
        self.files.blockSignals(True)
        self.files.clear()
        self.files.addItems([str(p) for p in runs])
        for row in range(self.files.count()):  # the run shown stays chosen
            if self.files.item(row).text() == chosen:
                self.files.setCurrentRow(row)
        self.files.blockSignals(False)
        self.listed.emit()

    def open_run(self, path: str | Path) -> None:
        """Show ``path`` (also one outside the data directory)."""
        self._chosen(str(path))

    def _chosen(self, path: str) -> None:
        if not path:
            return
        self.header.setText(f"loading {Path(path).name} ...")
        loader = _Loader(path, self)
        loader.loaded.connect(self._show)
        loader.finished.connect(lambda: self._loaders.remove(loader))
        self._loaders.append(loader)
        loader.start()

    def _show(self, info: dict[str, Any]) -> None:
        self.current = info
        name = Path(info["path"]).name
        if info["error"]:
            self.header.setText(f"{name}: {info['error']}")
            self.again.setEnabled(False)
            self.requeue.setEnabled(False)
            self.shown.emit(info)
            return
        note = info.get("analysis_error") or info.get("figure_error") or ""
        self.header.setText(
            f"{name}: {info['measurement']} run, status {info['status']}"
            + (f" — {note}" if note else "")
        )
        self.parameters.clear()
        units = info.get("units") or {}
        _tree_items(
            self.parameters,
            {k: f"{_fmt(v)} {units.get(k, '')}".strip() for k, v in info["parameters"].items()},
        )
        self.snapshot.clear()
        _tree_items(self.snapshot, info.get("snapshot") or {})
        self.analysis.clear()
        result = info.get("analysis") or {}
        for key, value in result.items():
            if key.endswith("_err") and key[:-4] in result:
                continue
            self.analysis.addTopLevelItem(
                QTreeWidgetItem([key, _fmt(value, result.get(f"{key}_err"))])
            )
        png = info.get("figure")
        self.figure.set_figure(QPixmap(png) if png else QPixmap())
        self.again.setEnabled(bool(info.get("measurement")))
        self.requeue.setEnabled(bool(info.get("measurement")))
        self.shown.emit(info)

    def _run_again(self) -> None:
        if self.current and self.current.get("measurement"):
            self.run_again.emit(self.current["measurement"], dict(self.current["parameters"]))

    def _add_to_queue(self) -> None:
        if self.current and self.current.get("measurement"):
            self.add_to_queue.emit(self.current["measurement"], dict(self.current["parameters"]))

    def wait_idle(self) -> None:
        """Wait for the loads in flight (closing the window, tests)."""
        self.lister.wait()
        for loader in list(self._loaders):
            loader.wait()
