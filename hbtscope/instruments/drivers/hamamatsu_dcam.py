"""Hamamatsu ORCA (DCAM) sCMOS camera through pylablib, as a :class:`Camera`.

Uses ``pylablib.devices.DCAM`` (PyPI ``pylablib``; docs pylablib.readthedocs.io
``devices/DCAM.html``, source ``AlexShkarin/pyLabLib`` ``pylablib/devices/DCAM/DCAM.py``),
imported lazily; it needs Hamamatsu's ``dcamapi.dll`` (the free DCAM-API installer, with the
driver of the camera's interface). Calls: ``DCAMCamera(idx)`` (``DCAMError`` if the index is
not available), ``properties["EXPOSURE TIME"].vmin/.vmax`` (s: the driver's exposure limits),
``get_detector_size()`` (``(width, height)`` px), ``set_roi(hstart, hend, vstart, vend, hbin,
vbin)`` / ``get_roi()`` (``(hstart, hend, vstart, vend, hbin, vbin)``; DCAM bins both axes
alike), ``set_exposure(s)`` (returns the exposure the camera set), ``snap(timeout=s)``
(one frame, rows x columns, uint16), ``get_device_info()`` (vendor, model, serial, version)
and ``close()``.

The seeds' camera is an ORCA-Flash 4.0 (2048 x 2048 px of 6.5 µm); ``pixel_um`` in the setup
file is its pixel in the sample plane (6.5 µm / magnification), times the binning. An optional
centred ROI (``roi_width_px`` x ``roi_height_px``) keeps frames small; the field of view is
centred on the optical axis. The simulated twin is the fake module
:mod:`hbtscope.drivers_sim.twins.dcam_twin` (same classes, calls and errors) rendering frames of
the emitters under the LED from the world; the same driver class runs on both.

The optional dependency ``pylablib`` is the ``camera`` extra (``pip install hbtscope[camera]``
once the project declares it).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.imaging import Camera
from hbtscope.instruments.registry import DriverInfo, LimitRule, SimConnector

INSTALL_HINT = (
    "pip install pylablib  (or pip install hbtscope[camera]), and install Hamamatsu's DCAM-API "
    "with the driver for the camera's interface (it provides dcamapi.dll)"
)


def load_dcam():
    """``pylablib.devices.DCAM``, imported now (not at hbtscope import)."""
    try:
        from pylablib.devices import DCAM
    except ImportError as exc:
        raise RuntimeError(f"pylablib is not installed ({exc}): {INSTALL_HINT}") from None
    return DCAM


class DCAMCameraDriver(Camera):
    """``dcam`` is ``pylablib.devices.DCAM`` (or its twin); ``idx`` the camera index."""

    def __init__(
        self,
        dcam,
        idx: int = 0,
        *,
        pixel_um: float,
        roi_px: tuple[int, int] | None = None,
        binning: int = 1,
    ):
        if not pixel_um > 0:
            raise LimitError(f"pixel_um must be positive, got {pixel_um!r}")
        if binning not in (1, 2, 4):
            raise LimitError(f"binning must be 1, 2 or 4 (DCAM), got {binning!r}")
        self.dcam = dcam
        try:
            self._cam = dcam.DCAMCamera(idx)
        except dcam.DCAMCamera.Error as exc:
            raise RuntimeError(
                f"no Hamamatsu DCAM camera at index {idx}: {exc} (is the camera on, its "
                "interface driver installed, and no other program using it?)"
            ) from None
        try:
            prop = self._cam.properties["EXPOSURE TIME"]
            super().__init__((float(prop.vmin), float(prop.vmax)))
            self._exposure_s = min(max(0.1, float(prop.vmin)), float(prop.vmax))
            width, height = self._cam.get_detector_size()
            self.detector_px = (int(width), int(height))
            if roi_px is None:
                roi_px = self.detector_px
            w, h = int(roi_px[0]), int(roi_px[1])
            if not (0 < w <= width and 0 < h <= height):
                raise LimitError(f"ROI {w} x {h} px does not fit the {width} x {height} px sensor")
            h0, v0 = (width - w) // 2, (height - h) // 2
            self.roi = tuple(
                int(v) for v in self._cam.set_roi(h0, h0 + w, v0, v0 + h, binning, binning)
            )
            self.binning = int(self.roi[4])
            self._base_pixel_um = float(pixel_um)
            self.device_info = tuple(str(v) for v in self._cam.get_device_info())
        except Exception:
            self._cam.close()
            raise
        self._set_exposure: float | None = None
        self._requested: float | None = None
        self._closed = False

    @property
    def pixel_um(self) -> float:
        return self._base_pixel_um * self.binning

    @property
    def actual_exposure_s(self) -> float | None:
        """The exposure the camera set last (DCAM rounds to its line time)."""
        return self._set_exposure

    def acquire(self) -> np.ndarray:
        if self._closed:
            raise RuntimeError("the camera has been closed")
        if self._requested != self.exposure_s:
            self._set_exposure = float(self._cam.set_exposure(self.exposure_s))
            self._requested = self.exposure_s
        frame = self._cam.snap(timeout=self.exposure_s + 5.0)
        return np.asarray(frame, dtype=np.uint16)

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        hstart, hend, vstart, vend, hbin, _vbin = self.roi
        snap.update(
            roi_hstart=hstart,
            roi_hend=hend,
            roi_vstart=vstart,
            roi_vend=vend,
            binning=hbin,
            model=self.device_info[1] if len(self.device_info) > 1 else "",
            serial=self.device_info[2] if len(self.device_info) > 2 else "",
        )
        if self._set_exposure is not None:
            snap["actual_exposure_s"] = self._set_exposure
        return snap

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cam.close()


# -------------------------------------------------------------------- catalogue
def _index(address: str) -> int:
    address = (address or "").strip()
    if not address or address.startswith("sim://"):
        return 0
    if not address.isdigit():
        raise LimitError(f"DCAM address must be a camera index (0, 1, ...), got {address!r}")
    return int(address)


def _build(setup, spec, sim: SimConnector | None = None) -> DCAMCameraDriver:
    """The camera role; ``sim(pixel_um=, collection_efficiency=)`` returns the stand-in of
    ``pylablib.devices.DCAM``."""
    settings = setup.settings["camera"]
    pixel_um = settings.get("pixel_um", 0.1625)
    binning = int(settings.get("binning", 1))
    roi = None
    if "roi_width_px" in settings or "roi_height_px" in settings:
        roi = (int(settings.get("roi_width_px", 2048)), int(settings.get("roi_height_px", 2048)))
    if sim is not None:
        kwargs = {}
        if "collection_efficiency" in settings:
            kwargs["collection_efficiency"] = settings["collection_efficiency"]
        dcam = sim(pixel_um=pixel_um, **kwargs)
    else:
        dcam = load_dcam()
    return DCAMCameraDriver(
        dcam, _index(spec.address), pixel_um=pixel_um, roi_px=roi, binning=binning
    )


DRIVERS = [
    DriverInfo(
        "camera",
        "HamamatsuDCAM",
        ("real", "sim"),
        (),
        _build,
        "Hamamatsu ORCA sCMOS via pylablib DCAM (seeds: ORCA-Flash 4.0); address: camera "
        "index; collection_efficiency shapes the simulated camera only",
        settings=(
            LimitRule("pixel_um", "value", 0.01, 10.0, required=False, unit="µm"),
            LimitRule("binning", "value", 1, 4, required=False),
            LimitRule("roi_width_px", "value", 4, 4096, required=False),
            LimitRule("roi_height_px", "value", 4, 4096, required=False),
            LimitRule("collection_efficiency", "value", 1e-6, 1.0, required=False),
        ),
    )
]
