"""Simulated picosecond pulsed diode laser (can run CW) on the world."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbtscope.drivers_sim.devices._options import options
from hbtscope.instruments.laser import ExcitationLaser
from hbtscope.instruments.registry import DriverInfo, LimitRule

if TYPE_CHECKING:
    from hbtscope.drivers_sim.world import World

SIM_REP_RATES_HZ = (1.0e6, 80.0e6)


class SimPulsedLaser(ExcitationLaser):
    """A picosecond diode laser in the simulated world; ``cw = True`` runs it continuous-wave
    (as a PicoQuant LDH head can, and as Baronnier et al.'s CW excitation needs)."""

    @property
    def cw(self) -> bool:
        return self._world.laser.cw

    @cw.setter
    def cw(self, value: bool) -> None:
        self._world.faults.before_io("laser")
        self._world.set_laser(cw=bool(value))

    def snapshot(self):
        snap = super().snapshot()
        snap["cw"] = self.cw
        return snap

    def __init__(self, world: World, max_power_W: float, rep_rate_Hz: float = 5.0e6):
        super().__init__(max_power_W, SIM_REP_RATES_HZ)
        self._world = world
        self.rep_rate_Hz = rep_rate_Hz

    def _read_power_W(self) -> float:
        self._world.faults.before_io("laser")
        return self._world.laser.set_power_W  # the set point: emitted power is not linear

    def _write_power_W(self, value: float) -> None:
        self._world.faults.before_io("laser")
        self._world.set_laser(power_W=value)

    def _read_rep_rate_Hz(self) -> float:
        self._world.faults.before_io("laser")
        return self._world.laser.rep_rate_Hz

    def _write_rep_rate_Hz(self, value: float) -> None:
        self._world.faults.before_io("laser")
        self._world.set_laser(rep_rate_Hz=value)

    def _read_emission(self) -> bool:
        self._world.faults.before_io("laser")
        return self._world.laser.on

    def _write_emission(self, on: bool) -> None:
        self._world.faults.before_io("laser")
        self._world.set_laser(on=on)


def _build(setup, spec, sim=None) -> SimPulsedLaser:
    opts = options(setup, "laser")
    return SimPulsedLaser(
        setup.world, opts["max_power_W"], rep_rate_Hz=opts.get("rep_rate_Hz", 5.0e6)
    )


DRIVERS = [
    DriverInfo(
        "laser",
        "PulsedLaser",
        ("sim",),
        (LimitRule("max_power_W", "value", 1e-12, 1e-2, unit="W"),),
        _build,
        "picosecond pulsed diode laser (simulated)",
        settings=(LimitRule("rep_rate_Hz", "value", 1.0e6, 80.0e6, required=False, unit="Hz"),),
    )
]
