"""Interfaces of the camera (wide-field frames) and the spectrometer."""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import numpy as np

from hbtscope.instruments.base import Instrument, LimitError


class Camera(Instrument):
    """A scientific camera: ``acquire()`` returns one frame (uint16 ADU) after the exposure."""

    role = "camera"

    def __init__(self, exposure_range_s: tuple[float, float]):
        self.exposure_range_s = exposure_range_s
        self._exposure_s = max(0.1, exposure_range_s[0])

    @property
    def exposure_s(self) -> float:
        return self._exposure_s

    @exposure_s.setter
    def exposure_s(self, value: float) -> None:
        lo, hi = self.exposure_range_s
        value = float(value)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise LimitError(f"exposure {value!r} s outside [{lo}, {hi}] s")
        self._exposure_s = value

    @abstractmethod
    def acquire(self) -> np.ndarray:
        """Expose for ``exposure_s`` and return the frame (rows, cols), uint16 ADU."""

    @property
    @abstractmethod
    def pixel_um(self) -> float:
        """Pixel size in the sample plane, µm."""

    def snapshot(self) -> dict[str, Any]:
        return {"exposure_s": self.exposure_s, "pixel_um": self.pixel_um}


class Spectrometer(Instrument):
    """A spectrometer: ``acquire()`` returns counts per pixel at ``wavelengths_nm``."""

    role = "spectrometer"

    def __init__(self, integration_range_s: tuple[float, float]):
        self.integration_range_s = integration_range_s
        self._integration_s = max(1.0, integration_range_s[0])

    @property
    def integration_s(self) -> float:
        return self._integration_s

    @integration_s.setter
    def integration_s(self, value: float) -> None:
        lo, hi = self.integration_range_s
        value = float(value)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise LimitError(f"integration time {value!r} s outside [{lo}, {hi}] s")
        self._integration_s = value

    @property
    @abstractmethod
    def wavelengths_nm(self) -> np.ndarray: ...

    @abstractmethod
    def acquire(self) -> np.ndarray:
        """Integrate for ``integration_s`` and return counts per pixel (float64, ADU)."""

    def snapshot(self) -> dict[str, Any]:
        w = self.wavelengths_nm
        return {
            "integration_s": self.integration_s,
            "wavelength_min_nm": float(w[0]),
            "wavelength_max_nm": float(w[-1]),
            "n_pixels": int(w.size),
        }
