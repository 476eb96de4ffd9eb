"""Simulated power meter at the sample plane."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hbtscope.drivers_sim.devices._options import options
from hbtscope.instruments.optics import PowerMeter
from hbtscope.instruments.registry import DriverInfo

if TYPE_CHECKING:
    from hbtscope.drivers_sim.world import World


class SimPowerMeter(PowerMeter):
    """Thermal/photodiode power meter at the sample: the laser's power with 0.5 % noise."""

    def __init__(self, world: World, noise_rel: float = 0.005):
        self._world = world
        self.noise_rel = noise_rel
        self._n = 0

    def read_power_W(self) -> float:
        self._world.faults.before_io("powermeter")
        self._world.clock.sleep(0.1)  # one reading takes ~100 ms
        self._n += 1
        laser = self._world.laser
        p = laser.power_W if laser.on else 0.0
        rng = np.random.default_rng([self._world.seed, 0x504D, self._n])
        return float(p * (1.0 + self.noise_rel * rng.standard_normal()) + 1e-12 * rng.random())


def _build(setup, spec, sim=None) -> SimPowerMeter:
    return SimPowerMeter(setup.world, **options(setup, "powermeter"))


DRIVERS = [
    DriverInfo(
        "powermeter",
        "PowerMeter",
        ("sim",),
        (),
        _build,
        "power meter at the sample plane, simulated",
    )
]
