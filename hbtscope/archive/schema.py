"""The catalogue's SQLite schema (versioned with ``PRAGMA user_version``) and how it is opened.

The catalogue is an index that can always be rebuilt from the run files, so a catalogue made
by another schema version is refused with a message saying to delete it, never migrated.

Tables:

``runs``
    one row per run file: ``path`` (absolute), the file's ``size_bytes`` and ``mtime_ns`` when
    it was read (the incremental update compares them), the root attributes (``uuid``,
    ``measurement``, ``start_time``, ``end_time``, ``status``, ``queue_item_id``, ``error``,
    ``hbtscope_version``), ``emitter`` (the run's ``emitter`` parameter), ``problem`` (why the
    file could not be read completely: still being written, corrupt; ``""`` when fine), and
    ``indexed_at``.
``run_values``
    the run's scalar values, one row each: ``kind`` is ``parameter``, ``result`` (the scalars
    of ``analysis/<analysis>``, uncertainties as ``<key>_err``), ``truth`` (the simulator's
    ``truth/``) or ``reanalysis`` (``hbtscope analyse DIR``); a number in ``num`` (NaN is
    stored as NULL, so it compares false), text in ``text``.
``reanalysis``
    the outcome of the last re-analysis of a run: ``ok``, ``reason`` (why it failed),
    ``analysed_at``.
"""

from __future__ import annotations

import os
import pathlib
import sqlite3

#: bump when the tables change; a catalogue of another version is refused (rebuild it)
SCHEMA_VERSION = 1

VALUE_KINDS = ("parameter", "result", "truth", "reanalysis")

_TABLES = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    size_bytes INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    uuid TEXT NOT NULL DEFAULT '',
    measurement TEXT NOT NULL DEFAULT '',
    start_time TEXT NOT NULL DEFAULT '',
    end_time TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '',
    queue_item_id TEXT NOT NULL DEFAULT '',
    emitter TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    hbtscope_version TEXT NOT NULL DEFAULT '',
    problem TEXT NOT NULL DEFAULT '',
    indexed_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_measurement ON runs (measurement);
CREATE INDEX IF NOT EXISTS runs_emitter ON runs (emitter);
CREATE TABLE IF NOT EXISTS run_values (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    analysis TEXT NOT NULL DEFAULT '',
    key TEXT NOT NULL,
    num REAL,
    text TEXT
);
CREATE INDEX IF NOT EXISTS run_values_num ON run_values (kind, key, num);
CREATE INDEX IF NOT EXISTS run_values_text ON run_values (kind, key, text);
CREATE INDEX IF NOT EXISTS run_values_run ON run_values (run_id);
CREATE TABLE IF NOT EXISTS reanalysis (
    run_id INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    ok INTEGER NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    analysed_at TEXT NOT NULL
);
"""


class CatalogError(ValueError):
    """A catalogue file that cannot be used (not SQLite, another schema version, unwritable)."""


def connect(path: str | os.PathLike, *, create: bool = True) -> sqlite3.Connection:
    """Open (and with ``create`` make) the catalogue at ``path``; :class:`CatalogError` with one
    line naming the file for anything wrong with it."""
    path = pathlib.Path(path)
    if not create and not path.is_file():
        raise CatalogError(
            f"{path}: no catalogue here (make one with `hbtscope catalog update DIR`)"
        )
    if path.exists() and not path.is_file():
        raise CatalogError(f"{path}: not a file (the catalogue is one SQLite file)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=30.0)
        con.execute("PRAGMA foreign_keys = ON")
        version = con.execute("PRAGMA user_version").fetchone()[0]
        tables = con.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except (sqlite3.DatabaseError, OSError) as exc:
        raise CatalogError(f"{path}: not a usable SQLite catalogue ({exc})") from None
    if version not in (0, SCHEMA_VERSION) or (version == 0 and tables):
        con.close()
        raise CatalogError(
            f"{path}: catalogue schema version {version}, this hbtscope reads version "
            f"{SCHEMA_VERSION}; delete the file and run `hbtscope catalog update DIR` again "
            "(the catalogue is rebuilt from the run files)"
        )
    if version == 0:
        try:
            con.execute("PRAGMA journal_mode = WAL")  # readers never block the updater
            con.executescript(_TABLES)
            con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            con.commit()
        except sqlite3.DatabaseError as exc:
            con.close()
            raise CatalogError(f"{path}: cannot create the catalogue ({exc})") from None
    return con
