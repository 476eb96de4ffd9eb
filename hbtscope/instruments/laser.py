"""The excitation laser: the interface procedures use, with its hard power limit.

One interface for every laser that excites the sample: a picosecond pulsed diode (PicoQuant
Sepia II, the simulated ``PulsedLaser``) and a CW diode, free-running or digitally modulated
(Toptica iBeam smart: ``rep_rate_Hz`` then reads its modulation frequency, 0 for CW).

The limit is enforced here, in the interface every driver inherits, so no procedure and no
driver subclass can set more than ``max_power_W`` from the setup file.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

from hbtscope.instruments.base import Instrument, LimitError


class ExcitationLaser(Instrument):
    """A laser with settable average power (W) and repetition rate (Hz; 0 for CW)."""

    role = "laser"

    def __init__(self, max_power_W: float, rep_rates_Hz: tuple[float, float]):
        if not (math.isfinite(max_power_W) and max_power_W > 0):
            raise LimitError(f"max_power_W must be a positive number, got {max_power_W!r}")
        self.max_power_W = float(max_power_W)
        self.rep_rate_range_Hz = rep_rates_Hz

    # ---- interface
    @property
    def power_W(self) -> float:
        """Average output power setpoint in W."""
        return self._read_power_W()

    @power_W.setter
    def power_W(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and 0.0 <= value <= self.max_power_W):
            raise LimitError(
                f"laser power {value!r} W outside the allowed range [0, {self.max_power_W}] W "
                "(max_power_W in the setup file)"
            )
        self._write_power_W(value)

    @property
    def rep_rate_Hz(self) -> float:
        return self._read_rep_rate_Hz()

    @rep_rate_Hz.setter
    def rep_rate_Hz(self, value: float) -> None:
        lo, hi = self.rep_rate_range_Hz
        value = float(value)
        if not (math.isfinite(value) and lo <= value <= hi):
            raise LimitError(f"repetition rate {value!r} Hz outside [{lo}, {hi}] Hz")
        self._write_rep_rate_Hz(value)

    @property
    def emission_on(self) -> bool:
        return self._read_emission()

    def enable(self) -> None:
        self._write_emission(True)

    def disable(self) -> None:
        self._write_emission(False)

    def safe_state(self) -> None:
        self.disable()
        self._write_power_W(0.0)

    def snapshot(self) -> dict[str, Any]:
        return {
            "power_W": self.power_W,
            "rep_rate_Hz": self.rep_rate_Hz,
            "emission_on": self.emission_on,
            "max_power_W": self.max_power_W,
        }

    # ---- what a driver implements
    @abstractmethod
    def _read_power_W(self) -> float: ...
    @abstractmethod
    def _write_power_W(self, value: float) -> None: ...
    @abstractmethod
    def _read_rep_rate_Hz(self) -> float: ...
    @abstractmethod
    def _write_rep_rate_Hz(self, value: float) -> None: ...
    @abstractmethod
    def _read_emission(self) -> bool: ...
    @abstractmethod
    def _write_emission(self, on: bool) -> None: ...
