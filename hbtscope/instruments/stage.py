"""Sample scanning stage (focus position in µm) with hard travel limits."""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

from hbtscope.instruments.base import Instrument, LimitError

AXES = ("x", "y", "z")


class Stage(Instrument):
    """An xyz stage; ``travel_um`` maps each axis to its allowed (min, max) in µm."""

    role = "stage"

    def __init__(self, travel_um: dict[str, tuple[float, float]]):
        self.travel_um = {a: (float(lo), float(hi)) for a, (lo, hi) in travel_um.items()}

    @property
    def position_um(self) -> tuple[float, float, float]:
        """Current (x, y, z) in µm."""
        return self._read_position_um()

    def move_to(
        self, x_um: float | None = None, y_um: float | None = None, z_um: float | None = None
    ) -> None:
        """Move to an absolute position; raises :class:`LimitError` before moving if outside."""
        current = self.position_um
        target = list(current)
        for i, (axis, value) in enumerate(zip(AXES, (x_um, y_um, z_um), strict=True)):
            if value is None:
                continue
            value = float(value)
            lo, hi = self.travel_um.get(axis, (-math.inf, math.inf))
            if not (math.isfinite(value) and lo <= value <= hi):
                raise LimitError(
                    f"stage {axis} = {value!r} µm outside the travel [{lo}, {hi}] µm "
                    f"({axis}_um limits in the setup file)"
                )
            target[i] = value
        self._write_position_um(tuple(target))

    def snapshot(self) -> dict[str, Any]:
        x, y, z = self.position_um
        snap: dict[str, Any] = {"x_um": x, "y_um": y, "z_um": z}
        for axis, (lo, hi) in self.travel_um.items():
            snap[f"{axis}_travel_um"] = [lo, hi]
        return snap

    @abstractmethod
    def _read_position_um(self) -> tuple[float, float, float]: ...
    @abstractmethod
    def _write_position_um(self, xyz: tuple[float, float, float]) -> None: ...
