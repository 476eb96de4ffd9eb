"""The catalogue of instrument drivers a setup file may name.

Every driver module in :mod:`hbtscope.instruments.drivers` lists its :class:`DriverInfo` in a
module-level ``DRIVERS`` list; :func:`all_drivers` collects them, so adding a device is adding a
module (see docs/adding-a-driver.md) — no central file to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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
    build: Callable[[Any, Any], Any]  # (setup, instrument spec) -> Instrument
    doc: str
    settings: tuple[LimitRule, ...] = ()


def all_drivers() -> dict[tuple[str, str], DriverInfo]:
    """(role, driver name) -> DriverInfo for every driver module in instruments.drivers."""
    from hbtscope.instruments import drivers as pkg

    found: dict[tuple[str, str], DriverInfo] = {}
    for mod in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"{pkg.__name__}.{mod.name}")
        for info in getattr(module, "DRIVERS", []):
            key = (info.role, info.name)
            if key in found:
                raise RuntimeError(f"driver {key} registered twice ({module.__name__})")
            found[key] = info
    return found
