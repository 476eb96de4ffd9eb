"""Interfaces of the simpler roles: LED, power meter, polariser, flip mirror.

Each enforces its hard limits here, so no driver subclass and no procedure can bypass them.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

from hbtscope.instruments.base import Instrument, LimitError


class LED(Instrument):
    """Wide-field LED illumination (Pierini et al. and D'Amato et al.: CoolLED pE-100, 400 nm);
    power in 0..1."""

    role = "led"

    def __init__(self, max_fraction: float = 1.0):
        if not 0 < max_fraction <= 1:
            raise LimitError(f"LED max_fraction must be in (0, 1], got {max_fraction!r}")
        self.max_fraction = float(max_fraction)

    @property
    def power_fraction(self) -> float:
        """Output as a fraction of full power (0..1)."""
        return self._read_fraction()

    @power_fraction.setter
    def power_fraction(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and 0.0 <= value <= self.max_fraction):
            raise LimitError(
                f"LED power {value!r} outside [0, {self.max_fraction}] (max_fraction in the "
                "setup file)"
            )
        self._write_fraction(value)

    @property
    def on(self) -> bool:
        return self._read_on()

    def enable(self) -> None:
        self._write_on(True)

    def disable(self) -> None:
        self._write_on(False)

    def safe_state(self) -> None:
        self._write_on(False)

    def snapshot(self) -> dict[str, Any]:
        return {
            "power_fraction": self.power_fraction,
            "on": self.on,
            "max_fraction": self.max_fraction,
        }

    @abstractmethod
    def _read_fraction(self) -> float: ...
    @abstractmethod
    def _write_fraction(self, value: float) -> None: ...
    @abstractmethod
    def _read_on(self) -> bool: ...
    @abstractmethod
    def _write_on(self, on: bool) -> None: ...


class PowerMeter(Instrument):
    """Optical power meter at the sample plane (W)."""

    role = "powermeter"

    @abstractmethod
    def read_power_W(self) -> float:
        """One power reading in W."""

    def snapshot(self) -> dict[str, Any]:
        return {"power_W": self.read_power_W()}


class Polariser(Instrument):
    """Rotating linear analyser in the detection path (Farrow et al.), angle in degrees."""

    role = "polariser"

    @property
    def angle_deg(self) -> float:
        return self._read_angle()

    @angle_deg.setter
    def angle_deg(self, value: float) -> None:
        value = float(value)
        if not math.isfinite(value):
            raise LimitError(f"polariser angle must be a finite number of degrees, got {value!r}")
        self._write_angle(value % 360.0)

    @property
    def in_path(self) -> bool:
        return self._read_in_path()

    @in_path.setter
    def in_path(self, value: bool) -> None:
        self._write_in_path(bool(value))

    def snapshot(self) -> dict[str, Any]:
        return {"angle_deg": self.angle_deg, "in_path": self.in_path}

    @abstractmethod
    def _read_angle(self) -> float: ...
    @abstractmethod
    def _write_angle(self, value: float) -> None: ...
    @abstractmethod
    def _read_in_path(self) -> bool: ...
    @abstractmethod
    def _write_in_path(self, value: bool) -> None: ...


class FlipMirror(Instrument):
    """Sends the collected light to one of its ``positions`` (e.g. SPADs or spectrometer)."""

    role = "flip_mirror"
    positions: tuple[str, ...] = ("spads", "spectrometer")

    @property
    def position(self) -> str:
        return self._read_position()

    @position.setter
    def position(self, value: str) -> None:
        if value not in self.positions:
            raise LimitError(
                f"flip mirror position {value!r}; allowed: {', '.join(self.positions)}"
            )
        self._write_position(value)

    def snapshot(self) -> dict[str, Any]:
        return {"position": self.position}

    @abstractmethod
    def _read_position(self) -> str: ...
    @abstractmethod
    def _write_position(self, value: str) -> None: ...
