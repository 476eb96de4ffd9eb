"""How the simulation plugs in from outside: the catalogue of simulated devices and the twin
registry.

Two kinds of simulated device exist, and both are found by looking, not by a hand-kept table:

- **behaviour-level devices** (:mod:`hbtscope.drivers_sim.devices`, one module per device):
  the role interfaces implemented directly on the world. Each module lists its
  :class:`~hbtscope.instruments.registry.DriverInfo` in ``DRIVERS``, exactly as a real driver
  module in :mod:`hbtscope.instruments.drivers` does; :func:`simulated_drivers` collects them
  with the same :func:`~hbtscope.instruments.registry.all_drivers`.
- **twins of real devices** (:mod:`hbtscope.drivers_sim.twins`): each module lists in
  ``TWINS`` the real driver names it stands in for and a connector ``connect(world, ...)``
  returning what the real driver talks to — a factory of
  :class:`~hbtscope.drivers_sim.wire.SimAdapter` sessions on a wire-level twin, the stand-in of
  a vendor SDK module (nidaqmx, seabreeze, pylablib DCAM, Swabian) or of a DLL (Sepia2_Lib).
  :func:`twin_connector` gives it, bound to the world, to the Setup, which hands it to the
  driver for ``backend: sim``. A twin module may define ``release(world)`` to unplug what it
  attached; :func:`release` calls them when a Setup closes.

The real drivers never import this package; the Setup (the composition root) joins the two.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hbtscope.instruments.registry import DriverInfo, SimConnector, all_drivers

#: the package of the behaviour-level simulated devices
DEVICE_PACKAGE = "hbtscope.drivers_sim.devices"
#: the package of the twins of real devices
TWIN_PACKAGE = "hbtscope.drivers_sim.twins"


class NoTwinError(LookupError):
    """A driver asked for ``backend: sim`` has no simulated twin."""


def simulated_drivers() -> dict[tuple[str, str], DriverInfo]:
    """(role, driver name) -> DriverInfo of every behaviour-level simulated device."""
    return all_drivers(DEVICE_PACKAGE)


@functools.cache
def _twin_modules() -> tuple[ModuleType, ...]:
    pkg = importlib.import_module(TWIN_PACKAGE)
    return tuple(
        importlib.import_module(f"{TWIN_PACKAGE}.{m.name}")
        for m in pkgutil.iter_modules(pkg.__path__)
        if not m.name.startswith("_")
    )


def twins() -> dict[str, Callable[..., Any]]:
    """Real driver name -> its twin's connector ``connect(world, ...)``."""
    found: dict[str, Callable[..., Any]] = {}
    for module in _twin_modules():
        for name, connect in getattr(module, "TWINS", {}).items():
            if name in found:
                raise RuntimeError(f"twin of {name!r} registered twice ({module.__name__})")
            found[name] = connect
    return found


def twin_connector(driver: str, world) -> SimConnector:
    """The connector the driver ``driver`` gets with ``backend: sim``, bound to ``world``."""
    connect = twins().get(driver)
    if connect is None:
        raise NoTwinError(
            f"driver {driver} has no simulated twin (hbtscope.drivers_sim.twins); use backend: real"
        )
    if world is None:
        raise NoTwinError(
            f"driver {driver} with backend: sim needs a simulated world: add a 'simulation:' "
            "section to the setup file"
        )
    return functools.partial(connect, world)


def release(world) -> None:
    """Unplug whatever the twins attached for ``world`` (e.g. the simulated taggers)."""
    for module in _twin_modules():
        hook = getattr(module, "release", None)
        if hook is not None:
            hook(world)
