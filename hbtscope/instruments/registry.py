"""The catalogue of instrument drivers a setup file may name.

Every driver module in :mod:`hbtscope.instruments.drivers` lists its :class:`DriverInfo` in a
module-level ``DRIVERS`` list; :func:`all_drivers` collects them, so adding a device is adding a
module (see docs/adding-a-driver.md) — no central file to edit. The simulated behaviour-level
devices (:mod:`hbtscope.drivers_sim.devices`) are catalogued the same way, by the same function.

How a driver is built: ``info.build(setup, spec, sim)``. With ``backend: real`` ``sim`` is
``None`` and the driver opens its port or SDK itself. With ``backend: sim`` the Setup (the
composition root) looks the driver's name up in the twin registry
(:mod:`hbtscope.drivers_sim.registry`) and passes a :data:`SimConnector`; the driver calls it
with the device as it sees it (the keyword arguments its module documents) and gets back what it
would otherwise have opened: a factory of pymeasure adapter sessions on the wire-level twin, the
stand-in of the vendor SDK module, or the stand-in of the vendor DLL. So a driver module never
imports the simulation.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: what a driver's build gets for ``backend: sim``: called with the device's description
#: (keyword arguments), it returns the connection the driver talks to (see the module docstring)
SimConnector = Callable[..., Any]

#: the package of the real drivers
DRIVER_PACKAGE = "hbtscope.instruments.drivers"


@dataclass(frozen=True)
class LimitRule:
    """A hard limit a driver needs from the setup file and the range the hardware allows."""

    name: str
    kind: str  # "value" or "range"
    lo: float
    hi: float
    required: bool = True
    unit: str = ""

    def describe(self) -> str:
        what = "a number" if self.kind == "value" else "{min: ..., max: ...}"
        return f"{self.name}: {what} within [{self.lo}, {self.hi}] {self.unit}".rstrip()


@dataclass(frozen=True)
class DriverInfo:
    role: str
    name: str
    backends: tuple[str, ...]
    limits: tuple[LimitRule, ...]
    #: (setup, instrument spec, sim connector or None) -> Instrument
    build: Callable[[Any, Any, SimConnector | None], Any]
    doc: str
    settings: tuple[LimitRule, ...] = ()


def all_drivers(package: str = DRIVER_PACKAGE) -> dict[tuple[str, str], DriverInfo]:
    """(role, driver name) -> DriverInfo of every module of ``package`` with a ``DRIVERS`` list.

    Modules whose name starts with ``_`` are helpers, not drivers, and are skipped.
    """
    pkg = importlib.import_module(package)
    found: dict[tuple[str, str], DriverInfo] = {}
    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"{pkg.__name__}.{mod.name}")
        for info in getattr(module, "DRIVERS", []):
            key = (info.role, info.name)
            if key in found:
                raise RuntimeError(f"driver {key} registered twice ({module.__name__})")
            found[key] = info
    return found
