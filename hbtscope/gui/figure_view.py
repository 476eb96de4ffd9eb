"""The measurement's own figure of the run that just ended, with its fits.

Every measurement draws its figure from its run file (``figure(run, path)``: the g2 histogram
with its peak areas, the saturation curve with P = A(1 - exp(-P/P_sat)) + B P, the Malus fit,
the FLID with its contours, the spectral drift map, the survival curve with its intervals,
...), and the runner saves it as a PNG beside the run file. This dock shows that PNG when a run
from the measurement dock or the queue ends, so the fitted result of any measurement, also one
added later, is on screen without GUI code of its own. The picture is rescaled with the dock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QPixmap, QResizeEvent
from PyQt5.QtWidgets import QDockWidget, QLabel, QVBoxLayout, QWidget


class FigureView(QDockWidget):
    """A dock with the last run's figure (``show_figure``) and which run it is."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Result figure", parent)
        self.setObjectName("dock-result-figure")
        body = QWidget()
        layout = QVBoxLayout(body)
        self.caption = QLabel("no run has ended yet")
        self.caption.setObjectName("figure-caption")
        self.caption.setWordWrap(True)
        self.picture = QLabel("")
        self.picture.setObjectName("figure-picture")
        self.picture.setAlignment(Qt.AlignCenter)
        self.picture.setMinimumSize(200, 150)
        layout.addWidget(self.caption)
        layout.addWidget(self.picture, 1)
        self.setWidget(body)
        self.path: Path | None = None
        self._pixmap = QPixmap()

    def show_figure(self, png: str | Path | None, caption: str) -> None:
        """Show ``png`` (nothing if it is missing: the caption says why)."""
        self.path = Path(png) if png else None
        self._pixmap = QPixmap(str(self.path)) if self.path is not None else QPixmap()
        if self._pixmap.isNull():
            self.path = None
            self.picture.clear()
            self.caption.setText(f"{caption} (no figure)")
            return
        self.caption.setText(caption)
        self._rescale()

    def show_outcome(self, outcome: Any) -> None:
        """A run of the measurement dock ended (a ``RunOutcome``, or None if it never ran)."""
        if outcome is None:
            return
        caption = f"{Path(outcome.path).name}: {outcome.status}"
        self.show_figure(getattr(outcome, "figure", None), caption)

    def show_journal_record(self, record: dict) -> None:
        """A queue item ended (its journal record names the run file; the figure is beside)."""
        run = record.get("run")
        if not run:
            return
        png = Path(run).with_suffix(".png")
        self.show_figure(
            png if png.is_file() else None, f"{Path(run).name}: {record.get('status')}"
        )

    def _rescale(self) -> None:
        if not self._pixmap.isNull():
            self.picture.setPixmap(
                self._pixmap.scaled(
                    self.picture.size(), Qt.KeepAspectRatio, Qt.SmoothTransformation
                )
            )

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._rescale()
