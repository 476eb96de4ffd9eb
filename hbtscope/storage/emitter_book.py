"""What the lab knows about each emitter across runs: where it is and its latest results.

A saturation sweep finds P_sat of emitter ``E07``; a later g2 run of ``E07`` asks for
"2 × P_sat" and a refocus appends to its drift history. The book is one small JSON file per
emitter under ``<data_dir>/emitters/<name>.json``, written atomically (temporary file, fsync,
rename) so that a crash or a second reader never sees half a record. It holds only JSON:
scalars, strings and short lists; the run files stay the source of the data (each result
names its run file).

Record layout::

    {"name": "E07",
     "results": {"saturation": {"values": {"P_sat_W": 2.1e-08, ...},
                                "errors": {"P_sat_W": 1.3e-09, ...},
                                "run": ".../123456_saturation_ab12cd34.h5",
                                "time": "2026-12-04T21:03:11+00:00"}},
     "positions": [{"time": ..., "x_um": 1.0, "y_um": 2.0, "z_um": 0.1,
                    "source": "refocus", "run": ...}, ...]}
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

#: an emitter's name: letters, digits, ``_ . -``, at most 64 characters, not starting with a dot
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: lists longer than this are not copied into the book (they stay in the run file)
MAX_LIST = 64
#: a record file larger than this is refused as corrupt
MAX_RECORD_BYTES = 4 * 2**20


class EmitterBookError(ValueError):
    """An emitter name that is not allowed, an unknown emitter or result, a corrupt record."""


def check_name(name: str) -> str:
    """``name`` if it is a valid emitter name, else :class:`EmitterBookError`."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise EmitterBookError(
            f"emitter name {name!r} is not allowed: 1-64 letters, digits, '_', '.', '-', "
            "not starting with '.' or '-'"
        )
    return name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON (numbers, strings, bools, short lists), or None to drop it."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value)
    if isinstance(value, str | bytes):
        return value.decode() if isinstance(value, bytes) else value
    if isinstance(value, list | tuple | np.ndarray):
        arr = value if isinstance(value, list) else list(np.asarray(value, dtype=object).ravel())
        if len(arr) > MAX_LIST:
            return None
        items = [_jsonable(v) for v in arr]
        return None if any(i is None for i in items) else items
    return None


def _plain(mapping: dict[str, Any] | None) -> dict[str, Any]:
    out = {}
    for key, value in (mapping or {}).items():
        v = _jsonable(value)
        if v is not None:
            out[str(key)] = v
    return out


@dataclass
class EmitterRecord:
    """One emitter: its latest result per measurement and its position history."""

    name: str
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    positions: list[dict[str, Any]] = field(default_factory=list)

    def position_um(self) -> tuple[float, float, float] | None:
        """The last known position (x, y, z) in µm, None if none is known."""
        if not self.positions:
            return None
        p = self.positions[-1]
        return float(p["x_um"]), float(p["y_um"]), float(p["z_um"])

    def value(self, key: str) -> tuple[float, float]:
        """``"measurement.name"`` → (value, uncertainty; NaN when none was recorded)."""
        measurement, _, name = key.partition(".")
        result = self.results.get(measurement)
        if result is None:
            known = ", ".join(sorted(self.results)) or "none"
            raise EmitterBookError(
                f"emitter {self.name}: no {measurement} result yet (results: {known})"
            )
        if name not in result.get("values", {}):
            known = ", ".join(sorted(result.get("values", {})))
            raise EmitterBookError(
                f"emitter {self.name}: the {measurement} result has no {name!r} ({known})"
            )
        value = result["values"][name]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise EmitterBookError(f"emitter {self.name}: {key} = {value!r} is not a number")
        err = result.get("errors", {}).get(name, math.nan)
        return float(value), float(err) if isinstance(err, int | float) else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "results": self.results, "positions": self.positions}


class EmitterBook:
    """The emitter records of one data directory (``<data_dir>/emitters/``)."""

    def __init__(self, data_dir: str | os.PathLike):
        self.directory = Path(data_dir) / "emitters"

    def _path(self, name: str) -> Path:
        return self.directory / f"{check_name(name)}.json"

    def names(self) -> list[str]:
        """Every emitter with a record, sorted."""
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.json") if NAME_PATTERN.match(p.stem))

    def get(self, name: str) -> EmitterRecord | None:
        """The record of ``name`` (None if there is none); a corrupt record is an error."""
        path = self._path(name)
        if not path.is_file():
            return None
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise EmitterBookError(f"{path}: larger than {MAX_RECORD_BYTES} bytes, not a record")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            results = data.get("results", {})
            positions = data.get("positions", [])
            if not isinstance(results, dict) or not isinstance(positions, list):
                raise TypeError("results must be a mapping and positions a list")
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise EmitterBookError(f"{path}: not a readable emitter record ({exc})") from None
        return EmitterRecord(name, results, positions)

    def require(self, name: str) -> EmitterRecord:
        """The record of ``name``; :class:`EmitterBookError` naming the book if unknown."""
        record = self.get(name)
        if record is None:
            raise EmitterBookError(f"emitter {name}: no record in {self.directory}")
        return record

    def _write(self, record: EmitterRecord) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(record.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{record.name}.", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record.as_dict(), f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def remember(
        self,
        name: str,
        measurement: str,
        values: dict[str, Any],
        errors: dict[str, Any] | None = None,
        run: str | os.PathLike = "",
        time: str | None = None,
    ) -> EmitterRecord:
        """Store ``measurement``'s result of emitter ``name`` (replaces the previous one);
        only JSON scalars and short lists are kept."""
        record = self.get(name) or EmitterRecord(check_name(name))
        record.results[measurement] = {
            "values": _plain(values),
            "errors": _plain(errors),
            "run": str(run),
            "time": time or _now(),
        }
        self._write(record)
        return record

    def add_position(
        self,
        name: str,
        xyz_um: tuple[float, float, float],
        source: str,
        run: str | os.PathLike = "",
        time: str | None = None,
    ) -> EmitterRecord:
        """Append a position of emitter ``name`` (its drift history)."""
        x, y, z = (float(v) for v in xyz_um)
        if not all(math.isfinite(v) for v in (x, y, z)):
            raise EmitterBookError(f"emitter {name}: position {xyz_um} is not finite")
        record = self.get(name) or EmitterRecord(check_name(name))
        record.positions.append(
            {
                "time": time or _now(),
                "x_um": x,
                "y_um": y,
                "z_um": z,
                "source": source,
                "run": str(run),
            }
        )
        self._write(record)
        return record

    # --- points of interest (the dashboard's POI list) --------------------------------

    def create(
        self,
        name: str,
        xyz_um: tuple[float, float, float],
        source: str,
        run: str | os.PathLike = "",
    ) -> EmitterRecord:
        """A new emitter ``name`` at ``xyz_um`` (its first position); an existing name is an
        error (nothing is overwritten)."""
        if self.get(name) is not None:
            raise EmitterBookError(f"emitter {name}: already in {self.directory}")
        return self.add_position(name, xyz_um, source, run=run)

    def next_name(self, prefix: str = "P") -> str:
        """The first free name ``<prefix>01``, ``<prefix>02``, ... of the book."""
        taken = set(self.names())
        k = 1
        while f"{prefix}{k:02d}" in taken:
            k += 1
        return check_name(f"{prefix}{k:02d}")

    def rename(self, old: str, new: str) -> EmitterRecord:
        """Rename emitter ``old`` to ``new`` (its results and positions move with it); ``new``
        must be a free, valid name."""
        record = self.require(old)
        check_name(new)
        if new == old:
            return record
        if self.get(new) is not None:
            raise EmitterBookError(f"emitter {new}: already in {self.directory}")
        renamed = EmitterRecord(new, record.results, record.positions)
        self._write(renamed)
        self._path(old).unlink(missing_ok=True)
        return renamed

    def remove(self, name: str) -> None:
        """Delete the record of emitter ``name`` (an unknown one is an error)."""
        self.require(name)
        self._path(name).unlink()
