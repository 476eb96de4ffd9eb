"""The camera view: the wide-field camera (role ``camera``; the LED lights the field) live,
and the frames a ``bleaching_video`` run publishes.

**Live** grabs a frame every ``period_ms`` on a ``QTimer`` through the window's
:class:`~hbtscope.gui.device_worker.DeviceWorker` (one grab in flight at a time: the GUI
thread never waits on the camera). While a run holds the instruments the grab is refused and
the view says so; the run's own frames (``video/frames`` rows) are shown instead. Colour scale
by the frame's percentiles; axes in camera pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QTimer
from PyQt5.QtWidgets import (
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from hbtscope import events as ev
from hbtscope.gui.device_worker import BUSY, DeviceWorker
from hbtscope.gui.image_tools import DEFAULT_PERCENTILES, percentile_levels
from hbtscope.gui.scan_view import percentile_spin

#: the rows of a bleaching video in the event stream
VIDEO_FRAMES = "video/frames"


class CameraView(QDockWidget):
    """Wide-field camera frames: live grabs and a run's video."""

    def __init__(
        self,
        setup: Any,
        devices: DeviceWorker,
        *,
        period_ms: int = 100,
        parent: QWidget | None = None,
    ):
        super().__init__("Camera", parent)
        self.setObjectName("dock-camera")
        self.setup = setup
        self.devices = devices
        self.frames_shown = 0
        self._in_flight = False
        self.has_camera = "camera" in setup.instruments

        body = QWidget()
        layout = QVBoxLayout(body)
        row = QHBoxLayout()
        self.live_button = QPushButton("Live")
        self.live_button.setObjectName("camera-live")
        self.live_button.setCheckable(True)
        self.live_button.setEnabled(self.has_camera)
        self.live_button.toggled.connect(self.set_live)
        self.low = percentile_spin("camera-low-percentile", DEFAULT_PERCENTILES[0])
        self.high = percentile_spin("camera-high-percentile", DEFAULT_PERCENTILES[1])
        row.addWidget(self.live_button)
        row.addWidget(QLabel("colour scale [%]"))
        row.addWidget(self.low)
        row.addWidget(self.high)
        row.addStretch(1)
        layout.addLayout(row)
        self.view = pg.GraphicsLayoutWidget()
        self.plot = self.view.addPlot()
        self.plot.setAspectLocked(True)
        self.plot.setLabel("bottom", "x [px]")
        self.plot.setLabel("left", "y [px]")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        layout.addWidget(self.view, 1)
        self.info = QLabel("camera: live off" if self.has_camera else "no camera in this setup")
        self.info.setObjectName("camera-info")
        self.message = QLabel("")
        self.message.setObjectName("camera-message")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #b00000;")
        layout.addWidget(self.info)
        layout.addWidget(self.message)
        self.setWidget(body)
        self.frame: np.ndarray | None = None
        self.timer = QTimer(self)
        self.timer.setInterval(period_ms)
        self.timer.timeout.connect(self.grab)

    def set_live(self, on: bool) -> None:
        """Start or stop grabbing frames."""
        if on and self.has_camera:
            self.timer.start()
            self.grab()
        else:
            self.timer.stop()
            self.info.setText("camera: live off")

    def grab(self) -> None:
        """Timer tick: one frame in the device worker (none while one is being grabbed)."""
        if self._in_flight:
            return
        self._in_flight = True
        camera = self.setup.camera
        self.devices.submit(lambda: np.asarray(camera.acquire()), self._grabbed)

    def _grabbed(self, frame: Any, error: str) -> None:
        self._in_flight = False
        if error:
            self.message.setText(("live paused: " if error == BUSY else "camera: ") + error)
            return
        self.message.setText("")
        self.show_frame(frame, "live")

    def show_frame(self, frame: np.ndarray, source: str) -> None:
        """Show ``frame`` with the percentile colour scale."""
        self.frame = np.asarray(frame)
        levels = percentile_levels(self.frame, self.low.value(), self.high.value())
        self.image.setImage(self.frame, autoLevels=False, levels=levels)
        self.frames_shown += 1
        ny, nx = self.frame.shape[:2]
        self.info.setText(
            f"{source}: frame {self.frames_shown}, {nx} × {ny} px, "
            f"scale {levels[0]:.4g} … {levels[1]:.4g}"
        )

    def on_event(self, event: Any) -> None:
        """A run's events: its video frames are shown as they come."""
        if isinstance(event, ev.ArrayAppended) and event.name == VIDEO_FRAMES:
            self.show_frame(event.data, "bleaching video")
