"""The catalogue of run files: incremental indexing, queries, re-analysis results.

:class:`Catalog` wraps one SQLite file (:mod:`hbtscope.archive.schema`). ``update(dirs)``
walks the directories for ``*.h5`` run files and compares each with its row: a new file is
read, a file whose size or mtime changed is read again (its old re-analysis dropped), a file
gone from a scanned directory is removed, a file still being written is read again at every
update until its writer is gone. One transaction per update, WAL journal: a query in another
process sees the catalogue before or after an update, never half of it.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hbtscope.archive.extract import STILL_BEING_WRITTEN, RunRecord, read_run_record, sql_number
from hbtscope.archive.filters import COLUMNS, CompiledFilter, compile_filter
from hbtscope.archive.schema import VALUE_KINDS, CatalogError, connect

__all__ = ["Catalog", "CatalogError", "UpdateReport", "find_run_files"]

#: run files are HDF5 files ending in .h5 (Photon-HDF5 exports end in .hdf5 and are skipped)
RUN_SUFFIX = ".h5"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def find_run_files(directory: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Every ``*.h5`` below ``directory``, sorted (symbolic links to directories not followed)."""
    root = pathlib.Path(directory)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(RUN_SUFFIX):
                yield pathlib.Path(dirpath, name)


@dataclass
class UpdateReport:
    """What one ``update`` did: paths per outcome, and the files recorded with a problem."""

    new: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    #: path -> reason (still being written, corrupt, not a run file)
    problems: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "new": len(self.new),
            "changed": len(self.changed),
            "removed": len(self.removed),
            "unchanged": self.unchanged,
            "problems": dict(self.problems),
        }


class Catalog:
    """One catalogue file. Use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True):
        self.path = pathlib.Path(path)
        self.con = connect(self.path, create=create)
        self.con.row_factory = sqlite3.Row

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    # --- indexing --------------------------------------------------------------------------
    def update(
        self,
        dirs: Iterable[str | os.PathLike],
        *,
        on_file: Callable[[str], None] | None = None,
    ) -> UpdateReport:
        """Index the run files below ``dirs`` (see the module docstring)."""
        report = UpdateReport()
        roots = []
        for d in dirs:
            root = pathlib.Path(d).expanduser()
            if not root.is_dir():
                raise CatalogError(f"{root}: not a directory (give directories of run files)")
            roots.append(root.resolve())
        seen: set[str] = set()
        for root in roots:
            known = {
                row["path"]: row
                for row in self.con.execute(
                    "SELECT id, path, size_bytes, mtime_ns, problem FROM runs "
                    "WHERE path = ? OR path LIKE ? ESCAPE '\\'",
                    (str(root), _like_prefix(root)),
                )
            }
            for path in find_run_files(root):
                key = str(path)
                if key in seen:
                    continue
                seen.add(key)
                if on_file is not None:
                    on_file(key)
                try:
                    st = path.stat()
                except OSError:  # removed while walking: handled as removed below
                    seen.discard(key)
                    continue
                row = known.get(key)
                if (
                    row is not None
                    and row["size_bytes"] == st.st_size
                    and row["mtime_ns"] == st.st_mtime_ns
                    and row["problem"] != STILL_BEING_WRITTEN
                ):
                    report.unchanged += 1
                    if row["problem"]:
                        report.problems[key] = row["problem"]
                    continue
                try:
                    rec = read_run_record(path)
                except OSError:
                    seen.discard(key)
                    continue
                (report.changed if row is not None else report.new).append(key)
                if rec.problem:
                    report.problems[key] = rec.problem
                self._store(rec)
            for key in sorted(set(known) - seen):
                self.con.execute("DELETE FROM runs WHERE path = ?", (key,))
                report.removed.append(key)
        self.con.commit()
        return report

    def _store(self, rec: RunRecord) -> None:
        a = rec.attrs
        cur = self.con.execute("SELECT id FROM runs WHERE path = ?", (rec.path,)).fetchone()
        cols = (
            rec.size_bytes,
            rec.mtime_ns,
            a.get("uuid", ""),
            a.get("procedure", ""),
            a.get("start_time", ""),
            a.get("end_time", ""),
            a.get("status", ""),
            a.get("queue_item_id", ""),
            rec.emitter,
            a.get("error", ""),
            a.get("hbtscope_version", ""),
            rec.problem,
            _now(),
        )
        if cur is None:
            run_id = self.con.execute(
                "INSERT INTO runs (size_bytes, mtime_ns, uuid, measurement, start_time, "
                "end_time, status, queue_item_id, emitter, error, hbtscope_version, problem, "
                "indexed_at, path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*cols, rec.path),
            ).lastrowid
        else:
            run_id = cur["id"]
            self.con.execute(
                "UPDATE runs SET size_bytes = ?, mtime_ns = ?, uuid = ?, measurement = ?, "
                "start_time = ?, end_time = ?, status = ?, queue_item_id = ?, emitter = ?, "
                "error = ?, hbtscope_version = ?, problem = ?, indexed_at = ? WHERE id = ?",
                (*cols, run_id),
            )
            self.con.execute("DELETE FROM run_values WHERE run_id = ?", (run_id,))
            self.con.execute("DELETE FROM reanalysis WHERE run_id = ?", (run_id,))
        self._insert_values(run_id, rec.values)

    def _insert_values(self, run_id: int, values: Iterable[tuple[str, str, str, Any]]) -> None:
        rows = []
        for kind, analysis, key, v in values:
            if isinstance(v, str):
                rows.append((run_id, kind, analysis, key, None, v))
            elif v is not None:
                rows.append((run_id, kind, analysis, key, sql_number(v), None))
        self.con.executemany(
            "INSERT INTO run_values (run_id, kind, analysis, key, num, text) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )

    # --- re-analysis -----------------------------------------------------------------------
    def store_reanalysis(
        self, path: str, ok: bool, reason: str, values: dict[str, Any], *, commit: bool = True
    ) -> None:
        """Record the re-analysis of the indexed run ``path`` (its values replace the last)."""
        row = self.con.execute("SELECT id FROM runs WHERE path = ?", (path,)).fetchone()
        if row is None:
            raise CatalogError(f"{path}: not in the catalogue {self.path}")
        run_id = row["id"]
        self.con.execute(
            "DELETE FROM run_values WHERE run_id = ? AND kind = 'reanalysis'", (run_id,)
        )
        self.con.execute(
            "INSERT OR REPLACE INTO reanalysis (run_id, ok, reason, analysed_at) "
            "VALUES (?, ?, ?, ?)",
            (run_id, int(ok), reason, _now()),
        )
        self._insert_values(run_id, [("reanalysis", "", k, v) for k, v in values.items()])
        if commit:
            self.con.commit()

    def commit(self) -> None:
        self.con.commit()

    # --- queries ---------------------------------------------------------------------------
    def known_keys(self) -> dict[str, set[str]]:
        """Value kind -> the keys present in the catalogue (the filter's whitelist)."""
        out: dict[str, set[str]] = {k: set() for k in VALUE_KINDS}
        for kind, key in self.con.execute("SELECT DISTINCT kind, key FROM run_values"):
            out.setdefault(kind, set()).add(key)
        return out

    def compile(self, filters: Iterable[str]) -> CompiledFilter:
        """Several filters (all must hold) as one; no filter: every run."""
        known = self.known_keys()
        parts, params = [], []
        for text in filters:
            c = compile_filter(text, known)
            parts.append(c.sql)
            params.extend(c.params)
        return CompiledFilter(" AND ".join(parts) if parts else "1", tuple(params))

    def paths(self, filters: Iterable[str] = ()) -> list[str]:
        """The paths of the runs passing every filter, sorted."""
        c = self.compile(filters)
        sql = f"SELECT path FROM runs WHERE {c.sql} ORDER BY path"
        return [r[0] for r in self.con.execute(sql, c.params)]

    def query(self, filters: Iterable[str] = ()) -> list[dict[str, Any]]:
        """The runs passing every filter, sorted by path: each a dict of its columns and the
        dicts ``parameters``, ``results`` (``<key>_err`` the uncertainty), ``truth``,
        ``reanalysis`` (with ``reanalysis_ok`` / ``reanalysis_reason`` when re-analysed)."""
        c = self.compile(filters)
        cols = ", ".join(f"runs.{n}" for n in ("id", *COLUMNS, "indexed_at"))
        rows = self.con.execute(
            f"SELECT {cols}, r.ok AS r_ok, r.reason AS r_reason FROM runs "
            f"LEFT JOIN reanalysis r ON r.run_id = runs.id WHERE {c.sql} ORDER BY runs.path",
            c.params,
        ).fetchall()
        out: dict[int, dict[str, Any]] = {}
        for r in rows:
            d = {k: r[k] for k in (*COLUMNS, "indexed_at")}
            for kind in VALUE_KINDS:
                d[_plural(kind)] = {}
            if r["r_ok"] is not None:
                d["reanalysis_ok"] = bool(r["r_ok"])
                d["reanalysis_reason"] = r["r_reason"]
            out[r["id"]] = d
        ids = list(out)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for run_id, kind, key, num, text in self.con.execute(
                f"SELECT run_id, kind, key, num, text FROM run_values WHERE run_id IN ({marks})",
                chunk,
            ):
                target = out[run_id][_plural(kind)]
                if key not in target:  # two analyses with one key: the first (by name) wins
                    target[key] = (
                        text if text is not None else (num if num is not None else float("nan"))
                    )
        return list(out.values())

    def paths_under(self, dirs: Iterable[str | os.PathLike]) -> list[str]:
        """The indexed paths below the directories ``dirs``, sorted."""
        out: set[str] = set()
        for d in dirs:
            root = pathlib.Path(d).expanduser().resolve()
            out.update(
                r[0]
                for r in self.con.execute(
                    "SELECT path FROM runs WHERE path LIKE ? ESCAPE '\\'", (_like_prefix(root),)
                )
            )
        return sorted(out)

    def count(self) -> int:
        return self.con.execute("SELECT count(*) FROM runs").fetchone()[0]


def _plural(kind: str) -> str:
    return {"parameter": "parameters", "result": "results"}.get(kind, kind)


def _like_prefix(root: pathlib.Path) -> str:
    text = str(root).rstrip(os.sep) + os.sep
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
