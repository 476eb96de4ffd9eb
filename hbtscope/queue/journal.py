"""The queue's journal: an append-only record of everything the queue did, fsync'd per line.

One JSON object per line in ``<queue_dir>/journal.jsonl``: ``queue_started``,
``emitters_selected``, ``item_started``, ``item_ended`` (status, run file, summary, error,
wall time), ``item_skipped``, ``queue_ended``. Each line is written with one ``write`` and
``fsync``'d before the queue goes on, so after a crash or a power cut the journal holds every
item that ended; a last line cut short by the crash is ignored when read. ``--resume`` and
``hbtscope queue status`` / ``hbtscope report`` read nothing else than this file and the run
files it names.
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

JOURNAL_NAME = "journal.jsonl"
#: item statuses after which an item is not run again on --resume
FINAL = ("finished", "failed", "skipped")


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy scalars and arrays to Python, NaN/inf to strings."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist()) if value.size <= 64 else f"<array {value.shape}>"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


class Journal:
    """Append-only JSON-lines journal of one queue directory."""

    def __init__(self, queue_dir: str | os.PathLike):
        self.path = Path(queue_dir) / JOURNAL_NAME

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Write one record (with the UTC time) and fsync it; returns the record."""
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        record.update(_plain(fields))
        line = json.dumps(record, allow_nan=False) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # a line cut short by a crash
                line = "\n" + line  # ends there; this record starts on its own line
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return record

    def records(self) -> list[dict[str, Any]]:
        """Every complete record, in order (a line cut short by a crash is skipped)."""
        if not self.path.is_file():
            return []
        out = []
        with self.path.open("rb") as fh:
            for raw in fh:
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict) and "event" in record:
                    out.append(record)
        return out


def item_states(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per item key, its last ``item_started``/``item_ended``/``item_skipped`` record."""
    states: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["event"] in ("item_started", "item_ended", "item_skipped") and "key" in r:
            states[r["key"]] = r
    return states
