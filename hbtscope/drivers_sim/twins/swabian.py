"""The Swabian Time Tagger's connection on ``backend: sim``: the simulated API module.

:mod:`hbtscope.drivers_sim.timetagger` has the names and signatures of the vendor's Python API
(``createTimeTagger``, ``TimeTagStream``, ``Countrate``, ...). Connecting plugs a simulated
tagger fed by the world into it under a serial number, as a USB tagger is plugged into a
computer; :func:`release` unplugs the taggers of a world when its Setup closes.
"""

from __future__ import annotations

from types import ModuleType

from hbtscope.drivers_sim import timetagger as simtt

#: the serial of the simulated tagger when the setup file gives none
DEFAULT_SERIAL = "SIM-TT20-0001"


def connect(world, *, serial: str = "") -> tuple[ModuleType, str]:
    """The API module and the serial of the tagger plugged in for ``world`` (``serial``, or
    :data:`DEFAULT_SERIAL` when empty)."""
    return simtt, simtt.attach_world(world, serial or DEFAULT_SERIAL)


def release(world) -> None:
    """Unplug every simulated tagger fed by ``world``."""
    for serial, attached in list(simtt._DEVICES.items()):
        if attached is world:
            simtt.detach_world(serial)


#: driver name -> connector (hbtscope.drivers_sim.registry)
TWINS = {"SwabianTimeTagger": connect}
