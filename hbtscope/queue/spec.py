"""Queue files: what an overnight queue runs, read strictly and checked before anything moves.

A queue file (YAML, read by :mod:`hbtscope.strict_yaml`: no aliases, bounded, duplicate keys
refused) lists items in order::

    name: night of 4 December
    refocus: {before_each_emitter: true, every_min: 30}
    items:
      - {measurement: confocal_scan, id: scan, parameters: {size_um: 40}, on_failure: stop}
      - foreach_emitter:
          from: scan                 # the emitters an earlier scan found (or points: [...])
          limit: 30
          min_snr: 5
          min_separation_um: 1.0
          exclude_if: "{g2.g2_0} + 2 * {g2.g2_0_err} >= 0.5"
        items:
          - {measurement: saturation}
          - measurement: g2
            parameters: {laser_power_W: "{saturation.P_sat_W}"}
            retry: 1
            on_failure: skip_emitter

An item names a measurement (``hbtscope procedures``) and its parameters (numbers, or
expressions on earlier results, :mod:`hbtscope.queue.expressions`); ``retry`` (0-10) runs a
failed item again; ``on_failure``: ``skip`` (go on with the next item), ``skip_emitter`` (the
rest of this emitter's items), ``stop`` (end the queue). :func:`load_queue_file` returns the
checked :class:`QueueSpec` or raises :class:`QueueFileError` naming file, line and what is
allowed. The measurement's own parameter ranges are checked here for literal values; values
from expressions, and the setup's limits, are checked again when each item starts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from hbtscope.queue.expressions import ExpressionError, is_expression, parse
from hbtscope.strict_yaml import StrictYAMLError, line_map, load_text, nearest_line, read_text

#: a queue file is a page or two of YAML
MAX_QUEUE_BYTES = 1_000_000
#: an item id or a points entry's name: used in emitter names and file names
ID_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,31}$"


class QueueFileError(ValueError):
    """A queue file that cannot be run; the message names file, line and what is allowed."""

    def __init__(self, path: str | Path, line: int | None, where: str, message: str) -> None:
        self.path, self.line, self.where, self.problem = str(path), line, where, message
        loc = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{loc}{f' ({where})' if where else ''}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_values(parameters: dict[str, Any]) -> dict[str, Any]:
    for name, value in parameters.items():
        if is_expression(value):
            parse(value)  # ExpressionError -> a validation error at this parameter
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"parameter {name} = {value} is not a finite number")
        elif not isinstance(value, bool | int | float | str):
            raise ValueError(f"parameter {name} = {value!r}: a number, a word or an expression")
    return parameters


class ItemSpec(_Strict):
    """One measurement run (``retry`` more times if it fails; then ``on_failure``)."""

    measurement: str
    id: Annotated[str, Field(pattern=ID_PATTERN)] | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    retry: Annotated[int, Field(ge=0, le=10)] = 0
    on_failure: Literal["skip", "skip_emitter", "stop"] = "skip"

    @field_validator("parameters")
    @classmethod
    def _values(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_values(v)


class PointSpec(_Strict):
    """A point of interest given by hand (the GUI's list, or positions from another tool)."""

    name: Annotated[str, Field(pattern=ID_PATTERN)]
    x_um: float
    y_um: float
    z_um: float = 0.0


class EmitterSelection(_Strict):
    """Which emitters a ``foreach_emitter`` block runs over."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True
    )

    from_: str | None = Field(default=None, alias="from")
    points: list[PointSpec] | None = None
    limit: Annotated[int, Field(ge=1, le=10_000)] = 30
    min_brightness_cps: Annotated[float, Field(ge=0)] = 0.0
    min_snr: Annotated[float, Field(ge=0)] = 0.0
    min_separation_um: Annotated[float, Field(ge=0, le=1000)] = 0.0
    exclude_if: str | None = None

    @field_validator("exclude_if")
    @classmethod
    def _condition(cls, v: str | None) -> str | None:
        if v is not None:
            parse(v)
        return v

    @model_validator(mode="after")
    def _one_source(self) -> EmitterSelection:
        if (self.from_ is None) == (self.points is None):
            raise ValueError("give either from: (the id of an earlier scan) or points: [...]")
        if self.points is not None:
            names = [p.name for p in self.points]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"point names must differ: {', '.join(twice)} given twice")
        return self


class ForeachSpec(_Strict):
    """Items run once per selected emitter, with the emitter's name and position."""

    foreach_emitter: EmitterSelection
    items: Annotated[list[ItemSpec], Field(min_length=1)]


class RefocusSpec(_Strict):
    """Refocus on the emitter before its items and every ``every_min`` minutes."""

    measurement: str = "refocus"
    before_each_emitter: bool = True
    every_min: Annotated[float, Field(gt=0, le=1440)] | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("parameters")
    @classmethod
    def _values(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _check_values(v)


class NotifySpec(_Strict):
    """What to do when the queue ends or stops: run a command (argument list, no shell; the
    queue's status and directory are in ``HBTSCOPE_QUEUE_STATUS``/``_DIR``), send mail through
    the setup's SMTP server to ``mail_to``."""

    command: list[str] | None = None
    mail_to: list[str] | None = None


def _entry_kind(value: Any) -> str:
    if isinstance(value, dict) and "foreach_emitter" in value:
        return "foreach"
    return "item"


Entry = Annotated[
    Annotated[ItemSpec, Tag("item")] | Annotated[ForeachSpec, Tag("foreach")],
    Discriminator(_entry_kind),
]


class QueueSpec(_Strict):
    """A whole queue file."""

    name: str = "queue"
    items: Annotated[list[Entry], Field(min_length=1)]
    refocus: RefocusSpec | None = None
    notify: NotifySpec | None = None

    @model_validator(mode="after")
    def _references(self) -> QueueSpec:
        ids: dict[str, int] = {}
        for i, entry in enumerate(self.items):
            inner = entry.items if isinstance(entry, ForeachSpec) else [entry]
            if isinstance(entry, ForeachSpec) and entry.foreach_emitter.from_ is not None:
                if entry.foreach_emitter.from_ not in ids:
                    raise ValueError(
                        f"items.{i}: foreach_emitter from: {entry.foreach_emitter.from_!r} is "
                        "not the id of an earlier item"
                        + (f" (ids: {', '.join(ids)})" if ids else " (give the scan an id:)")
                    )
            for item in inner:
                if item.id is not None:
                    if item.id in ids:
                        raise ValueError(f"id {item.id!r} given twice (items {ids[item.id]}, {i})")
                    ids[item.id] = i
        return self


def _describe(err: dict) -> str:
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        return "unknown field; see docs/queue.md"
    if err["type"] == "missing":
        return "required field is missing"
    got = err.get("input")
    if got is not None and not isinstance(got, dict | list) and err["type"] != "value_error":
        return f"{msg} (got {got!r})"
    return msg


def parse_queue_text(text: str, path: str | Path = "<queue>") -> QueueSpec:
    """Validate queue-file text; :class:`QueueFileError` naming file, line and field."""
    try:
        data = load_text(text)
    except StrictYAMLError as exc:
        raise QueueFileError(path, exc.line, "", exc.problem) from None
    if not isinstance(data, dict):
        raise QueueFileError(path, 1, "", "a queue file is a YAML mapping with 'items:'")
    try:
        return QueueSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if p not in ("item", "foreach"))
        message = _describe(err)
        if err["type"] == "value_error" and message.startswith("items."):  # from _references
            head, _, message = message.partition(": ")
            loc = tuple(int(p) if p.isdigit() else p for p in head.split("."))
        line = nearest_line(line_map(text), tuple("from" if p == "from_" else p for p in loc))
        n_more = len(exc.errors()) - 1
        more = f" (and {n_more} more problem(s))" if n_more else ""
        raise QueueFileError(path, line, ".".join(map(str, loc)), message + more) from None
    except ExpressionError as exc:  # pragma: no cover - pydantic wraps it as a ValueError
        raise QueueFileError(path, None, "", str(exc)) from None


def load_queue_file(path: str | Path) -> tuple[QueueSpec, str]:
    """Read and validate a queue file; returns the spec and the file's text."""
    try:
        text = read_text(path, MAX_QUEUE_BYTES, "queue file")
    except StrictYAMLError as exc:
        raise QueueFileError(path, None, "", exc.problem) from None
    return parse_queue_text(text, path), text
