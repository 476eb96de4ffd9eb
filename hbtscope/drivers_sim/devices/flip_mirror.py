"""Simulated flip mirror between the HBT SPADs and the spectrometer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbtscope.drivers_sim.devices._options import options
from hbtscope.instruments.optics import FlipMirror
from hbtscope.instruments.registry import DriverInfo

if TYPE_CHECKING:
    from hbtscope.drivers_sim.world import World


class SimFlipMirror(FlipMirror):
    """Flip mirror between the HBT SPADs and the spectrometer (0.5 s to flip)."""

    def __init__(self, world: World):
        self._world = world

    def _read_position(self) -> str:
        self._world.faults.before_io("flip_mirror")
        return self._world.light_path

    def _write_position(self, value: str) -> None:
        self._world.faults.before_io("flip_mirror")
        if value != self._world.light_path:
            self._world.clock.sleep(0.5)
        self._world.set_light_path(value)


def _build(setup, spec, sim=None) -> SimFlipMirror:
    return SimFlipMirror(setup.world, **options(setup, "flip_mirror"))


DRIVERS = [
    DriverInfo(
        "flip_mirror",
        "FlipMirror",
        ("sim",),
        (),
        _build,
        "flip mirror SPADs / spectrometer, simulated",
    )
]
