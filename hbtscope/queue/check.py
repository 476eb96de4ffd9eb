"""Checking a queue against the measurements (and the setup) before anything moves.

:func:`check_queue` goes through every item of a parsed queue file: the measurement must be
runnable (``hbtscope procedures``), every parameter must be one of its parameters, every
literal value must pass the parameter's type and range (pymeasure's own check) and be finite;
an item whose values are all literal and that gets no emitter position is validated in full
against the setup (laser limit, stage travel, memory), as the runner will. Values from
expressions, and items inside ``foreach_emitter`` blocks (their position comes from the
emitter), are validated again when they start (:mod:`hbtscope.queue.engine`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hbtscope.procedures.errors import ParameterError
from hbtscope.queue.expressions import is_expression
from hbtscope.queue.spec import ForeachSpec, ItemSpec, QueueFileError, QueueSpec
from hbtscope.storage.emitter_book import EmitterBook
from hbtscope.strict_yaml import line_map, nearest_line


def _procedures() -> dict[str, type]:
    from hbtscope.procedures.registry import runnable

    return {name: m.procedure for name, m in runnable().items()}


def build_procedure(cls: type, parameters: dict[str, Any]) -> Any:
    """A procedure of class ``cls`` with ``parameters`` set through pymeasure's Parameters
    (type and range); ValueError/TypeError naming the parameter otherwise."""
    proc = cls()
    known = proc._parameters
    for name, value in parameters.items():
        if name not in known:
            raise ParameterError(
                f"{cls.NAME} has no parameter {name!r}; parameters: {', '.join(sorted(known))}"
            )
        p = known[name]
        if isinstance(value, float) and not math.isfinite(value):
            raise ParameterError(f"{cls.NAME}: {name} = {value} is not a finite number")
        try:
            p.value = value
        except (ValueError, TypeError) as exc:
            lo, hi = getattr(p, "minimum", None), getattr(p, "maximum", None)
            allowed = f" (allowed [{lo}, {hi}] {getattr(p, 'units', '') or ''})".rstrip()
            raise ParameterError(f"{cls.NAME}: {name} = {value!r}: {exc}{allowed}") from None
        setattr(proc, name, p.value)
    return proc


def _items(spec: QueueSpec):
    """(location in the file, item, inside a foreach block) of every item."""
    for i, entry in enumerate(spec.items):
        if isinstance(entry, ForeachSpec):
            for j, item in enumerate(entry.items):
                yield ("items", i, "items", j), item, True
        else:
            yield ("items", i), entry, False
    if spec.refocus is not None:
        refocus = ItemSpec(measurement=spec.refocus.measurement, parameters=spec.refocus.parameters)
        yield ("refocus",), refocus, True


def check_queue(spec: QueueSpec, text: str, path: str | Path, setup: Any = None) -> list[str]:
    """Raise :class:`QueueFileError` (file, line, item) for the first item that cannot run;
    returns notes on what can only be checked when an item starts."""
    procedures = _procedures()
    lines = line_map(text)
    notes: list[str] = []
    needs_refocus = spec.refocus is not None and any(isinstance(e, ForeachSpec) for e in spec.items)
    for loc, item, per_emitter in _items(spec):
        where = ".".join(map(str, loc))
        line = nearest_line(lines, loc + ("measurement",))
        if loc == ("refocus",) and not needs_refocus:
            continue
        cls = procedures.get(item.measurement)
        if cls is None:
            raise QueueFileError(
                path,
                line,
                where,
                f"unknown measurement {item.measurement!r}; runnable: {', '.join(procedures)}",
            )
        literal = {k: v for k, v in item.parameters.items() if not is_expression(v)}
        deferred = sorted(set(item.parameters) - set(literal))
        unknown = sorted(set(item.parameters) - set(cls()._parameters))
        if unknown:
            raise QueueFileError(
                path,
                nearest_line(lines, loc + ("parameters", unknown[0])),
                where,
                f"{item.measurement} has no parameter {unknown[0]!r}; parameters: "
                f"{', '.join(sorted(cls()._parameters))}",
            )
        try:
            proc = build_procedure(cls, literal)
            if setup is not None and not deferred and not per_emitter:
                proc.book = EmitterBook(setup.data_dir)  # read only: nothing is written
                proc.validate(setup)
        except ParameterError as exc:
            bad = next((k for k in literal if f" {k} " in f" {exc} "), None)
            at = nearest_line(lines, loc + ("parameters", bad)) if bad else line
            raise QueueFileError(path, at, where, str(exc)) from None
        if deferred:
            notes.append(f"{where}: {', '.join(deferred)} computed and checked when it starts")
    return notes
