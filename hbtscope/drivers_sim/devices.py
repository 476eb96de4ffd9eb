"""Simulated laser and stage: the same interfaces as real drivers, acting on the World."""

from __future__ import annotations

from hbtscope.drivers_sim.world import World
from hbtscope.instruments.laser import PulsedLaser
from hbtscope.instruments.stage import Stage

SIM_REP_RATES_HZ = (1.0e6, 80.0e6)


class SimPulsedLaser(PulsedLaser):
    """A picosecond diode laser in the simulated world."""

    def __init__(self, world: World, max_power_W: float, rep_rate_Hz: float = 5.0e6):
        super().__init__(max_power_W, SIM_REP_RATES_HZ)
        self._world = world
        self.rep_rate_Hz = rep_rate_Hz

    def _read_power_W(self) -> float:
        return self._world.laser.power_W

    def _write_power_W(self, value: float) -> None:
        self._world.set_laser(power_W=value)

    def _read_rep_rate_Hz(self) -> float:
        return self._world.laser.rep_rate_Hz

    def _write_rep_rate_Hz(self, value: float) -> None:
        self._world.set_laser(rep_rate_Hz=value)

    def _read_emission(self) -> bool:
        return self._world.laser.on

    def _write_emission(self, on: bool) -> None:
        self._world.set_laser(on=on)


class SimPiezoStage(Stage):
    """A closed-loop piezo stage; moving takes ``settle_s`` on the setup clock."""

    def __init__(self, world: World, travel_um, settle_s: float = 0.005):
        super().__init__(travel_um)
        self._world = world
        self.settle_s = settle_s

    def _read_position_um(self) -> tuple[float, float, float]:
        x, y, z = self._world.focus_um
        return float(x), float(y), float(z)

    def _write_position_um(self, xyz) -> None:
        self._world.move_focus(*xyz)
        self._world.clock.sleep(self.settle_s)
