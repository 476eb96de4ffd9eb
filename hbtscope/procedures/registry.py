"""The catalogue of measurements, found like the drivers: no central list to edit.

A measurement module declares ``MEASUREMENT = Measurement(...)``
(:class:`hbtscope.procedures.base.Measurement`). :func:`all_measurements` collects

* every module of the package :mod:`hbtscope.procedures` that declares one, and
* every module named by an entry point of the group ``hbtscope.measurements`` of any
  installed distribution (a lab's own package: ``[project.entry-points."hbtscope.measurements"]
  my_scan = "mylab.my_scan"`` in its ``pyproject.toml``).

The command line (``run``, ``procedures``, ``analyse``), the run figures, the re-analysis and
later the queue and the run browser all look measurements up here.
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points
from types import ModuleType

from hbtscope.procedures.base import Measurement

ENTRY_POINT_GROUP = "hbtscope.measurements"


class UnknownMeasurementError(LookupError):
    """No measurement of that name is installed."""


def _declared(module: ModuleType, where: str) -> Measurement | None:
    m = getattr(module, "MEASUREMENT", None)
    if m is None:
        return None
    if not isinstance(m, Measurement):
        raise TypeError(f"{where}: MEASUREMENT must be a hbtscope Measurement, got {type(m)}")
    return m


def all_measurements() -> dict[str, Measurement]:
    """Name -> :class:`Measurement` of every built-in and installed measurement."""
    import hbtscope.procedures as pkg

    found: dict[str, Measurement] = {}

    def add(m: Measurement, where: str) -> None:
        if m.name in found:
            raise RuntimeError(f"measurement {m.name!r} declared twice ({where})")
        found[m.name] = m

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        name = f"{pkg.__name__}.{info.name}"
        m = _declared(importlib.import_module(name), name)
        if m is not None:
            add(m, name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        loaded = ep.load()
        m = loaded if isinstance(loaded, Measurement) else _declared(loaded, ep.value)
        if m is None:
            raise TypeError(f"entry point {ep.name} = {ep.value} declares no MEASUREMENT")
        add(m, f"entry point {ep.name} = {ep.value}")
    return found


def measurement(name: str) -> Measurement:
    """The measurement called ``name``; :class:`UnknownMeasurementError` lists the known ones."""
    found = all_measurements()
    if name not in found:
        raise UnknownMeasurementError(
            f"unknown measurement {name!r}; available: {', '.join(sorted(found)) or 'none'}"
        )
    return found[name]


def runnable() -> dict[str, Measurement]:
    """The measurements that have a procedure (``hbtscope run``, the queue)."""
    return {n: m for n, m in all_measurements().items() if m.procedure is not None}
