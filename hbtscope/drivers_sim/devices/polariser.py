"""Simulated motorised rotating analyser in the detection path."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbtscope.drivers_sim.devices._options import options
from hbtscope.instruments.optics import Polariser
from hbtscope.instruments.registry import DriverInfo

if TYPE_CHECKING:
    from hbtscope.drivers_sim.world import World


class SimPolariser(Polariser):
    """Motorised rotating analyser in the detection path."""

    def __init__(self, world: World, deg_per_s: float = 25.0):
        self._world = world
        self._angle = 0.0
        self._in_path = False
        self.deg_per_s = deg_per_s

    def _read_angle(self) -> float:
        self._world.faults.before_io("polariser")
        return self._angle

    def _write_angle(self, value: float) -> None:
        self._world.faults.before_io("polariser")
        travel = abs((value - self._angle + 180.0) % 360.0 - 180.0)
        self._world.clock.sleep(travel / self.deg_per_s)
        self._angle = value
        if self._in_path:
            self._world.set_analyser(value)

    def _read_in_path(self) -> bool:
        self._world.faults.before_io("polariser")
        return self._in_path

    def _write_in_path(self, value: bool) -> None:
        self._world.faults.before_io("polariser")
        self._in_path = value
        self._world.set_analyser(self._angle if value else None)


def _build(setup, spec, sim=None) -> SimPolariser:
    return SimPolariser(setup.world, **options(setup, "polariser"))


DRIVERS = [
    DriverInfo(
        "polariser",
        "RotatingPolariser",
        ("sim",),
        (),
        _build,
        "motorised rotating analyser in the detection path, simulated",
    )
]
