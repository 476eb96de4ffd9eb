"""Simulated ``pylablib.devices.DCAM``: a fake of pylablib's DCAM module on the world.

:func:`make_module` returns an object that stands where ``from pylablib.devices import DCAM``
stands, with the API the Hamamatsu driver uses, as in pylablib (``AlexShkarin/pyLabLib``,
``pylablib/devices/DCAM/DCAM.py`` and the camera interface's ``snap``):
``get_cameras_number()``, ``DCAMCamera(idx=0)`` (``DCAMError`` "camera index N is not available
(M cameras exist)"), ``DCAMCamera.Error`` / ``.TimeoutError``, ``properties`` (name ->
property with ``vmin``/``vmax``), ``get_detector_size()`` -> ``(width, height)``,
``get_roi()`` / ``set_roi(hstart, hend, vstart, vend, hbin, vbin)`` (clamped to the sensor,
snapped to 4-px steps, binning 1/2/4 on both axes, as pylablib does), ``set_exposure(s)`` ->
the exposure set, ``get_exposure()``, ``snap(timeout=5., return_info=False)``,
``get_device_info()``, ``is_opened()``, ``close()``.

The simulated camera is an ORCA-Flash 4.0 (C13440: 2048 x 2048 px, 16 bit, exposure
1 ms..10 s; numbers illustrative) behind the microscope: its field of view is centred on the
stage position with ``pixel_um`` in the sample plane. Frames are those of
:class:`~hbtscope.drivers_sim.devices.SimCamera`: the emitters under the LED over the exposure
(``world.widefield_emission``) rendered by
:func:`~hbtscope.drivers_sim.render.render_widefield_frame`; a binned pixel is rendered as one
pixel of the binned size. Each ``snap`` takes the exposure on the setup clock.

Faults from the setup file (role ``camera``) raise ``DCAMTimeoutError`` (timeout, after the
snap timeout) or ``DCAMError`` (disconnect).
"""

from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

import numpy as np

from hbtscope.drivers_sim.render import SENSOR_PIXEL_UM, render_widefield_frame


class DCAMError(RuntimeError):
    """Stands for ``pylablib.devices.DCAM.DCAM.DCAMError``."""


class DCAMTimeoutError(DCAMError):
    """Stands for ``pylablib.devices.DCAM.DCAM.DCAMTimeoutError``."""


TDeviceInfo = namedtuple("TDeviceInfo", ["vendor", "model", "serial_number", "camera_version"])
_Property = namedtuple("_Property", ["name", "vmin", "vmax", "step", "default", "unit"])
_ROI_STEP = 4


class _SimCameraHead:
    """The simulated camera on the microscope (state shared by every open handle)."""

    def __init__(
        self,
        world,
        *,
        pixel_um: float,
        detector_px: tuple[int, int] = (2048, 2048),
        exposure_range_s: tuple[float, float] = (1e-3, 10.0),
        collection_efficiency: float = 0.05,
        cosmic_rate_per_cm2_s: float = 0.01,
        serial: str = "S/N: 301234",
    ):
        self.world = world
        self.pixel_um = float(pixel_um)
        self.detector_px = (int(detector_px[0]), int(detector_px[1]))
        self.exposure_range_s = exposure_range_s
        self.collection_efficiency = float(collection_efficiency)
        self.cosmic_rate_per_cm2_s = float(cosmic_rate_per_cm2_s)
        self.serial = serial
        self.opened = False
        self.n_frames = 0

    def render(self, roi, exposure_s: float) -> np.ndarray:
        hstart, hend, vstart, vend, binning, _ = roi
        width, height = self.detector_px
        p = self.pixel_um
        x, y, _z = self.world.focus_um
        x0 = x - width * p / 2 + hstart * p
        y0 = y - height * p / 2 + vstart * p
        nx, ny = (hend - hstart) // binning, (vend - vstart) // binning
        pb = p * binning
        clock = self.world.clock
        a = clock.now_ps()
        clock.sleep(exposure_s)
        b = clock.now_ps()
        xe, ye, rate = self.world.widefield_emission(a, b, (x0, x0 + nx * pb), (y0, y0 + ny * pb))
        self.n_frames += 1
        rng = np.random.default_rng([self.world.seed, 0xDCA, a & 0xFFFFFFFF, a >> 32])
        return render_widefield_frame(
            rng,
            shape_px=(ny, nx),
            pixel_um=pb,
            origin_um=(x0, y0),
            x_um=xe,
            y_um=ye,
            photons_per_s=rate * self.collection_efficiency,
            exposure_s=exposure_s,
            cosmic_rate_per_cm2_s=self.cosmic_rate_per_cm2_s,
            sensor_cm2=nx * ny * (SENSOR_PIXEL_UM * binning * 1e-4) ** 2,
        )


def make_module(world, **camera_kwargs):
    """A ``pylablib.devices.DCAM``-like namespace with one simulated ORCA on ``world``."""
    heads = [_SimCameraHead(world, **camera_kwargs)]

    def get_cameras_number() -> int:
        return len(heads)

    class DCAMCamera:
        """``pylablib.devices.DCAM.DCAMCamera`` on the simulated ORCA."""

        Error = DCAMError
        TimeoutError = DCAMTimeoutError

        def __init__(self, idx: int = 0):
            self.idx = idx
            self.handle = None
            ncams = get_cameras_number()
            if not 0 <= idx < ncams:
                raise DCAMError(f"camera index {idx} is not available ({ncams} cameras exist)")
            head = heads[idx]
            if head.opened:
                raise DCAMError("function 'dcamdev_open' raised error (DCAMERR_BUSY)")
            head.opened = True
            self.handle = head
            width, height = head.detector_px
            lo, hi = head.exposure_range_s
            self.properties = {
                "EXPOSURE TIME": _Property("EXPOSURE TIME", lo, hi, 1e-6, 0.01, "s"),
                "SUBARRAY HPOS": _Property("SUBARRAY HPOS", 0, width - _ROI_STEP, _ROI_STEP, 0, ""),
                "SUBARRAY VPOS": _Property(
                    "SUBARRAY VPOS", 0, height - _ROI_STEP, _ROI_STEP, 0, ""
                ),
                "SUBARRAY HSIZE": _Property(
                    "SUBARRAY HSIZE", _ROI_STEP, width, _ROI_STEP, width, ""
                ),
                "SUBARRAY VSIZE": _Property(
                    "SUBARRAY VSIZE", _ROI_STEP, height, _ROI_STEP, height, ""
                ),
                "BINNING": _Property("BINNING", 1, 4, 1, 1, ""),
            }
            self._roi = (0, width, 0, height, 1, 1)
            self._exposure = 0.01

        def _head(self) -> _SimCameraHead:
            if self.handle is None:
                raise DCAMError("camera is not opened")
            faults = getattr(self.handle.world, "faults", None)
            kind = faults.decide("camera") if faults is not None else None
            if kind == "disconnect":
                raise DCAMError("function 'dcamcap_start' raised error (DCAMERR_NOCAMERA)")
            if kind == "timeout":
                self.handle.world.clock.sleep(self._exposure + 5.0)
                raise DCAMTimeoutError("frame timeout")
            return self.handle

        def is_opened(self) -> bool:
            return self.handle is not None

        def close(self) -> None:
            if self.handle is not None:
                self.handle.opened = False
            self.handle = None

        def get_device_info(self):
            head = self._head()
            return TDeviceInfo("Hamamatsu", "C13440-20CU", head.serial, "4.20.B")

        def get_detector_size(self) -> tuple[int, int]:
            return self._head().detector_px

        def get_roi(self):
            self._head()
            return self._roi

        def set_roi(self, hstart=0, hend=None, vstart=0, vend=None, hbin=1, vbin=1):
            width, height = self._head().detector_px
            hend = max(0, min(hend, width)) if hend else width
            vend = max(0, min(vend, height)) if vend else height
            hbin = 1 if hbin <= 1 else 2 if hbin in (2, 3) else 4
            out = []
            for start, end in ((hstart, hend), (vstart, vend)):
                start = max(0, min(start, end - _ROI_STEP))
                start = (start // _ROI_STEP) * _ROI_STEP
                end = (end // _ROI_STEP) * _ROI_STEP
                size = max(end - start, _ROI_STEP)
                size -= size % hbin
                out += [start, start + size]
            self._roi = (out[0], out[1], out[2], out[3], hbin, hbin)
            return self.get_roi()

        def set_exposure(self, exposure):
            self._head()
            lo, hi = self.handle.exposure_range_s
            if not lo <= float(exposure) <= hi:
                raise DCAMError("function 'dcamprop_setgetvalue' raised error (DCAMERR_OUTOFRANGE)")
            self._exposure = round(float(exposure), 6)
            return self.get_exposure()

        def get_exposure(self) -> float:
            self._head()
            return self._exposure

        def snap(self, timeout=5.0, return_info=False):
            head = self._head()
            if timeout is not None and timeout < self._exposure:
                head.world.clock.sleep(timeout)
                raise DCAMTimeoutError("frame timeout")
            frame = head.render(self._roi, self._exposure)
            if return_info:
                return frame, SimpleNamespace(frame_index=head.n_frames - 1)
            return frame

    return SimpleNamespace(
        DCAMCamera=DCAMCamera,
        get_cameras_number=get_cameras_number,
        DCAMError=DCAMError,
        DCAMTimeoutError=DCAMTimeoutError,
        heads=heads,
        __name__="hbtscope.drivers_sim.twins.dcam_twin.DCAM",
    )


#: driver name -> connector (hbtscope.drivers_sim.registry): the stand-in of
#: ``pylablib.devices.DCAM`` with one simulated ORCA
TWINS = {"HamamatsuDCAM": make_module}
