"""Simulated behaviour-level devices: the role interfaces implemented directly on the shared
:class:`~hbtscope.drivers_sim.world.World`, one module per device.

Behaviour only; the wire protocols and SDKs of real devices are put in front of the world
separately (:mod:`hbtscope.drivers_sim.twins`). Each module lists its
:class:`~hbtscope.instruments.registry.DriverInfo` in ``DRIVERS``, as a real driver module does;
:func:`hbtscope.drivers_sim.registry.simulated_drivers` collects them.
"""

from hbtscope.drivers_sim.devices.camera import SimCamera
from hbtscope.drivers_sim.devices.flip_mirror import SimFlipMirror
from hbtscope.drivers_sim.devices.laser import SIM_REP_RATES_HZ, SimPulsedLaser
from hbtscope.drivers_sim.devices.led import SimLED
from hbtscope.drivers_sim.devices.polariser import SimPolariser
from hbtscope.drivers_sim.devices.powermeter import SimPowerMeter
from hbtscope.drivers_sim.devices.scan_clock import SimScanClock
from hbtscope.drivers_sim.devices.spectrometer import SimSpectrometer
from hbtscope.drivers_sim.devices.stage import SimPiezoStage

__all__ = [
    "SIM_REP_RATES_HZ",
    "SimCamera",
    "SimFlipMirror",
    "SimLED",
    "SimPiezoStage",
    "SimPolariser",
    "SimPowerMeter",
    "SimPulsedLaser",
    "SimScanClock",
    "SimSpectrometer",
]
