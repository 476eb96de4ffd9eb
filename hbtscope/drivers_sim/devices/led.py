"""Simulated wide-field LED on the world."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbtscope.drivers_sim.devices._options import options
from hbtscope.drivers_sim.presets import LED_REFERENCE_W_PER_CM2
from hbtscope.instruments.optics import LED
from hbtscope.instruments.registry import DriverInfo, LimitRule

if TYPE_CHECKING:
    from hbtscope.drivers_sim.world import World


class SimLED(LED):
    """Wide-field LED; full power gives the presets' reference illumination (Pierini et al. and
    D'Amato et al.)."""

    def __init__(
        self,
        world: World,
        max_fraction: float = 1.0,
        full_power_W_cm2: float = LED_REFERENCE_W_PER_CM2,
    ):
        super().__init__(max_fraction)
        self._world = world
        self._fraction = 0.0
        self.full_power_W_cm2 = full_power_W_cm2

    def _read_fraction(self) -> float:
        self._world.faults.before_io("led")
        return self._fraction

    def _write_fraction(self, value: float) -> None:
        self._world.faults.before_io("led")
        self._fraction = value
        self._world.set_led(intensity_W_cm2=value * self.full_power_W_cm2)

    def _read_on(self) -> bool:
        self._world.faults.before_io("led")
        return self._world.led.on

    def _write_on(self, on: bool) -> None:
        self._world.faults.before_io("led")
        self._world.set_led(on=on)


def _build(setup, spec, sim=None) -> SimLED:
    return SimLED(setup.world, **options(setup, "led"))


DRIVERS = [
    DriverInfo(
        "led",
        "WidefieldLED",
        ("sim",),
        (LimitRule("max_fraction", "value", 1e-6, 1.0, required=False),),
        _build,
        "wide-field LED, 400 nm (seeds: CoolLED pE-100), simulated",
    )
]
