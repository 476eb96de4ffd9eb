"""Simulated NI-DAQ-like hardware-timed raster with pixel markers into the tagger."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbtscope.drivers_sim.devices._options import stage_travel_um
from hbtscope.instruments.registry import DriverInfo
from hbtscope.instruments.scanclock import ScanClock

if TYPE_CHECKING:
    from hbtscope.drivers_sim.world import World


class SimScanClock(ScanClock):
    """NI-DAQ-like hardware-timed raster on the simulated stage, with pixel markers into the
    simulated tagger (``marker_channel``). Starting takes ``latency_s`` (task start)."""

    def __init__(self, world: World, travel_um, latency_s: float = 1e-3):
        super().__init__(travel_um)
        self._world = world
        self.latency_s = latency_s
        self._end_ps: int | None = None

    def start(self) -> float:
        self._world.faults.before_io("daq")
        if self._loaded is None:
            raise RuntimeError("no raster loaded: call load_raster() first")
        xyz, dwell, marker = self._loaded
        t0 = self._world.clock.now_ps() + int(self.latency_s * 1e12)
        self._end_ps = self._world.schedule_scan(t0, int(round(dwell * 1e12)), xyz, marker)
        return t0 * 1e-12

    def is_done(self) -> bool:
        return self._end_ps is None or self._world.clock.now_ps() >= self._end_ps

    def wait_done(self) -> None:
        if self._end_ps is not None:
            self._world.clock.advance_to_ps(self._end_ps)

    def stop(self) -> None:
        if self._end_ps is not None and not self.is_done():
            self._world.cancel_scan()
        self._end_ps = None

    def safe_state(self) -> None:
        self.stop()


def _build(setup, spec, sim=None) -> SimScanClock:
    return SimScanClock(setup.world, stage_travel_um(setup))


DRIVERS = [
    DriverInfo(
        "daq",
        "ScanClock",
        ("sim",),
        (),
        _build,
        "NI-DAQ-like hardware-timed raster with pixel markers into the tagger, simulated",
    )
]
