"""What the catalogue keeps of one run file: read it safely, never fail.

:func:`read_run_record` opens a run file with :func:`~hbtscope.storage.open_run` (SWMR read,
no lock: safe while a queue writes it) and returns a :class:`RunRecord`. A file whose writer is
alive is recorded with ``problem`` "still being written" and read again at the next update; a
file that cannot be read (not HDF5, truncated, not a run file) is recorded with the reason.
Nothing here raises for a bad file.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any, Final

import h5py
import numpy as np

from hbtscope.storage import layout as L
from hbtscope.storage.reading import RunFileError, open_run_checked, text_attr
from hbtscope.storage.runfile import read_parameters, read_values, writer_alive

#: ``problem`` of a run file whose writer is alive (a queue is recording it)
STILL_BEING_WRITTEN = "still being written (a live writer holds the file)"

Scalar = float | str | None


@dataclass
class RunRecord:
    """One run file as the catalogue holds it."""

    path: str
    size_bytes: int
    mtime_ns: int
    attrs: dict[str, str] = field(default_factory=dict)
    emitter: str = ""
    problem: str = ""
    #: (kind, analysis, key, value): value a float (NaN allowed) or a str
    values: list[tuple[str, str, str, Scalar]] = field(default_factory=list)


#: what :func:`scalar` returns for an array, a list or a dict
NOT_SCALAR: Final = object()


def scalar(value: Any) -> Scalar | object:
    """A stored value as a float or a str (None stays None); :data:`NOT_SCALAR` for arrays,
    lists, dicts."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return float(value)
    if value is None:
        return None
    return NOT_SCALAR


def _values(kind: str, analysis: str, mapping: dict[str, Any], out: list) -> None:
    for key, value in mapping.items():
        v = scalar(value)
        if v is not NOT_SCALAR:
            out.append((kind, analysis, str(key), v))


def _parameter_values(params: dict[str, Any], out: list) -> None:
    for key, value in params.items():
        v = scalar(value)
        if v is NOT_SCALAR:  # lists and dicts: kept as JSON text, filterable by equality
            v = json.dumps(value, default=str, sort_keys=True)
        out.append(("parameter", "", str(key), v))


def read_run_record(path: str | os.PathLike) -> RunRecord:
    """The catalogue record of the run file ``path`` (its size and mtime taken *before* it is
    read, so that a file changing meanwhile is read again next time)."""
    path = pathlib.Path(path)
    st = path.stat()
    rec = RunRecord(str(path), st.st_size, st.st_mtime_ns)
    alive = False
    try:
        alive = writer_alive(path)
    except OSError:  # its lock file unreadable: treated as not being written (read as is)
        pass
    try:
        with open_run_checked(path) as f:
            rec.attrs = {a: text_attr(f.attrs.get(a, "")) for a in L.ROOT_ATTRS}
            if alive:
                rec.problem = STILL_BEING_WRITTEN
                rec.attrs[L.ATTR_STATUS] = L.STATUS_RUNNING
                return rec
            if rec.attrs[L.ATTR_STATUS] == L.STATUS_RUNNING:
                rec.attrs[L.ATTR_STATUS] = L.STATUS_INTERRUPTED  # as run_status() says
            params, _units = read_parameters(f)
            emitter = params.get("emitter", "")
            rec.emitter = emitter if isinstance(emitter, str) else str(emitter)
            _parameter_values(params, rec.values)
            analysis = f.get(L.ANALYSIS)
            if isinstance(analysis, h5py.Group):
                for name in sorted(analysis):
                    group = analysis[name]
                    if isinstance(group, h5py.Group):
                        _values("result", name, read_values(group), rec.values)
            truth = f.get(L.TRUTH)
            if isinstance(truth, h5py.Group):
                _values("truth", "", read_values(truth), rec.values)
    except RunFileError as exc:
        rec.problem = str(exc)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:  # h5py on damage
        text = " ".join(str(exc).split())
        rec.problem = f"{path}: unreadable run file ({type(exc).__name__}: {text})"
    if alive and not rec.problem:
        rec.problem = STILL_BEING_WRITTEN
    return rec


def sql_number(value: float) -> float | None:
    """NaN as NULL (SQLite has no NaN); infinities stay."""
    return None if math.isnan(value) else value
