"""Query results out of the catalogue: flat rows for CSV and Parquet (pandas, polars), JSON.

A flat row has the run's columns, its results under their own names (``g2_0``,
``g2_0_err``), and ``parameters.<key>``, ``truth.<key>``, ``reanalysis.<key>``: the same
names the filter grammar reads. Parquet needs pyarrow (``pip install pyarrow``); without it
:func:`write_parquet` raises :class:`ExportError` saying so.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
from collections.abc import Sequence
from typing import Any

from hbtscope.archive.filters import COLUMNS

_NESTED = ("results", "parameters", "truth", "reanalysis")


class ExportError(ValueError):
    """An output that cannot be written (a missing optional package, an unwritable file)."""


def flatten(run: dict[str, Any]) -> dict[str, Any]:
    """One run of :meth:`Catalog.query` as one flat row."""
    row = {k: v for k, v in run.items() if k not in _NESTED}
    for key, value in run.get("results", {}).items():
        row[key if key not in row else f"results.{key}"] = value
    for nested in ("parameters", "truth", "reanalysis"):
        for key, value in run.get(nested, {}).items():
            row[f"{nested}.{key}"] = value
    return row


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The union of the rows' keys: run columns first, then the rest in order of appearance."""
    seen = dict.fromkeys(k for k in COLUMNS if any(k in r for r in rows))
    for r in rows:
        for k in r:
            seen.setdefault(k, None)
    return list(seen)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def to_json(runs: Sequence[dict[str, Any]]) -> str:
    """Strict JSON (NaN as null, infinities as "inf"/"-inf"): a list of runs."""
    return json.dumps([_json_safe(r) for r in runs], allow_nan=False)


def _open_for_writing(path: str | os.PathLike) -> pathlib.Path:
    p = pathlib.Path(path)
    if p.is_dir():
        raise ExportError(f"{p}: a directory (give a file name)")
    if not p.parent.is_dir():
        raise ExportError(f"{p}: its directory {p.parent} does not exist")
    return p


def write_csv(runs: Sequence[dict[str, Any]], path: str | os.PathLike) -> pathlib.Path:
    """The runs as one CSV row each (empty cell: the run has no such value)."""
    p = _open_for_writing(path)
    rows = [flatten(r) for r in runs]
    try:
        with p.open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=columns_of(rows), restval="")
            w.writeheader()
            w.writerows(rows)
    except OSError as exc:
        raise ExportError(f"{p}: cannot write ({exc.strerror})") from None
    return p


def write_parquet(runs: Sequence[dict[str, Any]], path: str | os.PathLike) -> pathlib.Path:
    """The runs as a Parquet table (one column per key; mixed text/number columns as text)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError(
            "--parquet needs pyarrow, which is not installed (pip install pyarrow); "
            "--csv FILE and --json need nothing more"
        ) from None
    p = _open_for_writing(path)
    rows = [flatten(r) for r in runs]
    names = columns_of(rows)
    arrays = {}
    for name in names:
        col = [r.get(name) for r in rows]
        kinds = {type(v) for v in col if v is not None}
        if kinds - {int, float, bool}:
            col = [None if v is None else str(v) for v in col]
        arrays[name] = col
    try:
        pq.write_table(pa.table(arrays), p)
    except (OSError, pa.ArrowException) as exc:
        raise ExportError(f"{p}: cannot write Parquet ({exc})") from None
    return p
