"""Simulated closed-loop xyz piezo stage on the world."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbtscope.drivers_sim.devices._options import stage_travel_um
from hbtscope.instruments.registry import DriverInfo, LimitRule
from hbtscope.instruments.stage import Stage

if TYPE_CHECKING:
    from hbtscope.drivers_sim.world import World


class SimPiezoStage(Stage):
    """A closed-loop piezo stage; moving takes ``settle_s`` on the setup clock."""

    def __init__(self, world: World, travel_um, settle_s: float = 0.005):
        super().__init__(travel_um)
        self._world = world
        self.settle_s = settle_s

    def _read_position_um(self) -> tuple[float, float, float]:
        self._world.faults.before_io("stage")
        x, y, z = self._world.focus_at()
        return float(x), float(y), float(z)

    def _write_position_um(self, xyz) -> None:
        self._world.faults.before_io("stage")
        self._world.move_focus(*xyz)
        self._world.clock.sleep(self.settle_s)


def _build(setup, spec, sim=None) -> SimPiezoStage:
    return SimPiezoStage(setup.world, stage_travel_um(setup))


DRIVERS = [
    DriverInfo(
        "stage",
        "PiezoStage",
        ("sim",),
        (
            LimitRule("x_um", "range", 0.0, 100.0, unit="µm"),
            LimitRule("y_um", "range", 0.0, 100.0, unit="µm"),
            LimitRule("z_um", "range", -50.0, 50.0, unit="µm"),
        ),
        _build,
        "closed-loop xyz piezo stage (simulated)",
    )
]
