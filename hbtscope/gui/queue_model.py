"""The queue panel's queue as plain data: entries in the queue-file format, checked by spec.py.

A queue is held as ``header`` (``name``, and ``refocus``/``notify`` if given) and ``entries``
(the ``items:`` list of a queue file: ``{"measurement", "parameters", "id", "retry",
"on_failure"}`` or ``{"foreach_emitter": {...}, "items": [...]}``). :func:`queue_text` writes
them as a queue file, :func:`checked` reads that text back through
:func:`~hbtscope.queue.spec.parse_queue_text` and :func:`~hbtscope.queue.check.check_queue`
(without a setup), so what the panel shows, saves and runs is always a file the CLI accepts.
Also here: the characterisation template (default: the ``foreach_emitter`` items of the
bundled demo survey), points of interest made into a ``points:`` block, run parameters made
into queue parameters, and whether a queue directory can be resumed.
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from hbtscope.queue.journal import Journal
from hbtscope.queue.spec import ID_PATTERN, QueueSpec, load_queue_file

#: the bundled survey whose foreach items are the default characterisation template
DEMO_QUEUE = Path(__file__).resolve().parents[1] / "config" / "queues" / "demo.yaml"


class _NoAliases(yaml.SafeDumper):
    """A dumper that writes shared objects out again (queue files refuse YAML aliases)."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: D102 - PyYAML's hook
        return True


def flow(value: Any) -> str:
    """``value`` as one line of YAML flow style (the tree's editable cells)."""
    if value in ({}, None):
        return ""
    text = yaml.dump(value, Dumper=_NoAliases, default_flow_style=True, width=10_000)
    return text.strip().removesuffix("...").strip()


def queue_text(header: dict[str, Any], entries: list[dict[str, Any]]) -> str:
    """The queue as a queue file (what :func:`~hbtscope.queue.spec.load_queue_file` reads)."""
    data = {"name": header.get("name", "queue")}
    data.update({k: v for k, v in header.items() if k != "name" and v is not None})
    data["items"] = entries
    return yaml.dump(data, Dumper=_NoAliases, sort_keys=False, default_flow_style=None, width=100)


def checked(header: dict[str, Any], entries: list[dict[str, Any]]) -> tuple[QueueSpec, str]:
    """The queue validated as its file would be (QueueFileError naming line and item)."""
    from hbtscope.queue.check import check_queue
    from hbtscope.queue.spec import parse_queue_text

    text = queue_text(header, entries)
    spec = parse_queue_text(text, "queue panel")
    check_queue(spec, text, "queue panel", None)
    return spec, text


def from_spec(spec: QueueSpec) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(header, entries)`` of a parsed queue file: only what the file gave (no defaults)."""
    data = spec.model_dump(by_alias=True, exclude_unset=True, exclude={"items"})
    entries = [e.model_dump(by_alias=True, exclude_unset=True) for e in spec.items]
    data.setdefault("name", spec.name)
    return data, entries


def load(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read and check a queue file (without a setup), as ``hbtscope queue check`` does;
    QueueFileError: its message names the file, the line and what is allowed."""
    from hbtscope.queue.check import check_queue

    spec, text = load_queue_file(path)
    check_queue(spec, text, path, None)
    return from_spec(spec)


# --- characterisation template and points of interest ---------------------------------------


def template_of(path: str | Path = DEMO_QUEUE) -> dict[str, Any]:
    """The characterisation template of a queue file: its first ``foreach_emitter`` block's
    items and ``exclude_if``, and its ``refocus``; a file without such a block gives all its
    items (they must be plain items)."""
    header, entries = load(path)
    for entry in entries:
        if "foreach_emitter" in entry:
            sel = entry["foreach_emitter"]
            return {
                "items": entry["items"],
                "exclude_if": sel.get("exclude_if"),
                "refocus": header.get("refocus"),
            }
    return {"items": entries, "exclude_if": None, "refocus": header.get("refocus")}


def point_name(name: str, taken: set[str]) -> str:
    """A point name the queue file allows (letters, digits, ``_``, ``-``; a letter first; at
    most 32), unique among ``taken``."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)).strip("_") or "P"
    if not base[0].isalpha():
        base = f"P{base}"
    base = base[:32]
    out, n = base, 2
    while out in taken:
        suffix = f"_{n}"
        out, n = base[: 32 - len(suffix)] + suffix, n + 1
    assert re.match(ID_PATTERN, out)
    return out


def characterisation(points: list[dict[str, Any]], template: dict[str, Any]) -> dict[str, Any]:
    """One ``foreach_emitter`` block over ``points`` ({name, x_um, y_um, z_um}) running the
    template's items on each (ValueError for a point without a finite position)."""
    taken: set[str] = set()
    plain = []
    for p in points:
        try:
            x, y, z = (float(p[k]) for k in ("x_um", "y_um", "z_um"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"point {p!r}: needs name, x_um, y_um, z_um ({exc})") from None
        if not all(math.isfinite(v) for v in (x, y, z)):
            raise ValueError(f"point {p.get('name')!r}: its position is not finite")
        name = point_name(p.get("name", "P"), taken)
        taken.add(name)
        plain.append({"name": name, "x_um": x, "y_um": y, "z_um": z})
    selection: dict[str, Any] = {"points": plain, "limit": max(len(plain), 1)}
    if template.get("exclude_if"):
        selection["exclude_if"] = template["exclude_if"]
    return {"foreach_emitter": selection, "items": copy.deepcopy(template["items"])}


# --- a run's parameters as a queue item ------------------------------------------------------


def queue_parameters(measurement: str, parameters: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A run's parameters as a queue item's: plain Python values of the procedure's current
    parameters. NaN (e.g. "stay where the stage is") and unknown names are left out (a queue
    file takes finite values only); the note says which."""
    from hbtscope.procedures.registry import runnable

    m = runnable().get(measurement)
    known = set(m.procedure()._parameters) if m is not None and m.procedure else set()
    out: dict[str, Any] = {}
    left: list[str] = []
    for name, value in parameters.items():
        if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
            value = value.item()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if name not in known or not isinstance(value, bool | int | float | str):
            left.append(name)
        elif isinstance(value, float) and not math.isfinite(value):
            left.append(name)
        else:
            out[name] = value
    note = f"left out (not finite or not a parameter any more): {', '.join(left)}" if left else ""
    return out, note


def changed_parameters(procedure_cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The form's values that differ from the procedure's defaults (NaN equals NaN)."""
    defaults = procedure_cls().parameter_values()
    out = {}
    for name, value in values.items():
        d = defaults.get(name)
        same = value == d or (
            isinstance(value, float)
            and isinstance(d, float)
            and math.isnan(value)
            and math.isnan(d)
        )
        if not same:
            out[name] = value
    return out


# --- resuming ----------------------------------------------------------------------------


def resumable(queue_dir: str | Path) -> str:
    """Why ``queue_dir`` cannot be resumed ("" if it can: a queue file and a journal whose
    last start has no end, from a process that is gone)."""
    from hbtscope.queue.engine import QUEUE_FILE_NAME

    queue_dir = Path(queue_dir)
    if not (queue_dir / QUEUE_FILE_NAME).is_file():
        return f"{queue_dir}: no {QUEUE_FILE_NAME} there, not a queue directory"
    records = Journal(queue_dir).records()
    starts = [i for i, r in enumerate(records) if r["event"] == "queue_started"]
    ends = [i for i, r in enumerate(records) if r["event"] == "queue_ended"]
    if not starts:
        return f"{queue_dir}: its journal holds no queue start; nothing to resume"
    if ends and ends[-1] > starts[-1]:
        status = records[ends[-1]].get("status", "?")
        return f"{queue_dir}: this queue ended ({status}); nothing to resume"
    pid = records[starts[-1]].get("pid")
    if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
        return f"{queue_dir}: still running in process {pid}; control it from there"
    return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def block_label(entry: dict[str, Any]) -> str:
    """What a ``foreach_emitter`` block runs over, for the tree."""
    sel = entry["foreach_emitter"]
    if sel.get("points") is not None:
        names = [p["name"] for p in sel["points"]]
        shown = ", ".join(names[:6]) + (" …" if len(names) > 6 else "")
        return f"each of {len(names)}: {shown}"
    return f"for each emitter of {sel.get('from')}"


def is_block(entry: dict[str, Any]) -> bool:
    return "foreach_emitter" in entry
