"""``hbtscope catalog update|query`` and ``hbtscope analyse DIR...``: the run archive's commands
(docs/archive.md).

``catalog update DIR...`` indexes the run files below the directories (incrementally);
``catalog query [--where EXPR]...`` prints the runs passing every filter as a table, or writes
them as JSON, CSV or Parquet; ``analyse DIR... [--workers N] [--scheduler ADDRESS]``
re-analyses every run below the directories on dask.distributed and stores the results in the
catalogue (never in the run files).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: the catalogue used when --catalog is not given (the environment variable, else this file)
CATALOG_ENV = "HBTSCOPE_CATALOG"
DEFAULT_CATALOG = "hbtscope-catalog.sqlite"

#: run columns a table shows by default (then the names the filters use, then the path)
TABLE_COLUMNS = ("measurement", "status", "emitter", "start_time")


class ArchiveUsageError(ValueError):
    """A catalogue command given wrongly: a bad filter, a missing catalogue or directory."""


def default_catalog() -> str:
    return os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG


def _catalog_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--catalog",
        default=None,
        help=f"the catalogue file (default: ${CATALOG_ENV}, else ./{DEFAULT_CATALOG})",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("catalog", help="the catalogue of run files: update, query")
    cs = p.add_subparsers(dest="catalog_command", required=True)
    u = cs.add_parser("update", help="index the run files below directories (incremental)")
    u.add_argument("dirs", nargs="+", metavar="DIR", help="directories of run files")
    _catalog_arg(u)
    u.add_argument("--json", action="store_true", help="print one JSON object")
    u.set_defaults(func=cmd_update)
    q = cs.add_parser("query", help="the runs passing filters: a table, JSON, CSV or Parquet")
    q.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help="a filter, e.g. 'measurement == \"g2\" and g2_0 < 0.2' (repeatable: all hold)",
    )
    _catalog_arg(q)
    out = q.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the runs as a JSON list")
    out.add_argument("--csv", metavar="FILE", help="write the runs as CSV")
    out.add_argument("--parquet", metavar="FILE", help="write the runs as Parquet (pyarrow)")
    q.add_argument(
        "--columns", help="comma-separated columns of the table (default: a few, and the filtered)"
    )
    q.set_defaults(func=cmd_query)


def add_archive_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``hbtscope analyse`` that only apply to directories."""
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="archive mode: workers of the local dask cluster (default: CPU count; 0: serial)",
    )
    p.add_argument(
        "--scheduler", help="archive mode: address of a running dask scheduler (tcp://host:8786)"
    )
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help="archive mode: only the runs passing this filter (repeatable; see catalog query)",
    )
    _catalog_arg(p)


def _open(path: str | None, *, create: bool):
    from hbtscope.archive.catalog import Catalog, CatalogError

    try:
        return Catalog(path or default_catalog(), create=create)
    except CatalogError as exc:
        raise ArchiveUsageError(str(exc)) from None


def cmd_update(args: argparse.Namespace) -> int:
    from hbtscope.archive.catalog import CatalogError

    with _open(args.catalog, create=True) as cat:
        try:
            report = cat.update(args.dirs)
        except CatalogError as exc:
            raise ArchiveUsageError(str(exc)) from None
        total = cat.count()
    if args.json:
        print(json.dumps({"catalog": str(cat.path), "runs": total, **report.as_dict()}))
        return EXIT_OK
    print(
        f"{cat.path}: {total} runs ({len(report.new)} new, {len(report.changed)} changed, "
        f"{len(report.removed)} removed, {report.unchanged} unchanged)"
    )
    for path, reason in report.problems.items():
        print(f"  {path}: {reason}" if not reason.startswith(path) else f"  {reason}")
    return EXIT_OK


def _filtered_names(filters: list[str]) -> list[str]:
    from hbtscope.archive.filters import COLUMNS, tokenize

    names: list[str] = []
    for text in filters:
        for tok in tokenize(text):
            if tok.kind == "name" and tok.text not in names and tok.text not in COLUMNS:
                names.append(tok.text)
    return names


def _cell(row: dict[str, Any], name: str) -> str:
    value = row.get(name, row.get(f"parameters.{name}"))
    if value is None:
        return ""
    err = row.get(f"{name}_err")
    if isinstance(value, float):
        if isinstance(err, float):
            return f"{value:.4g} ± {err:.2g}"
        return f"{value:.6g}"
    return str(value)


def _print_table(runs: list[dict[str, Any]], columns: list[str]) -> None:
    from rich.console import Console
    from rich.table import Table

    from hbtscope.archive.export import flatten

    table = Table(title=f"{len(runs)} runs")
    for c in columns:
        table.add_column(c, overflow="fold")
    for run in runs:
        row = flatten(run)
        table.add_row(*(_cell(row, c) for c in columns))
    Console().print(table)


def cmd_query(args: argparse.Namespace) -> int:
    from hbtscope.archive.export import ExportError, to_json, write_csv, write_parquet
    from hbtscope.archive.filters import FilterError

    with _open(args.catalog, create=False) as cat:
        try:
            runs = cat.query(args.where)
        except FilterError as exc:
            raise ArchiveUsageError(str(exc)) from None
    try:
        if args.json:
            print(to_json(runs))
        elif args.csv:
            print(f"{write_csv(runs, args.csv)}: {len(runs)} runs", file=sys.stderr)
        elif args.parquet:
            print(f"{write_parquet(runs, args.parquet)}: {len(runs)} runs", file=sys.stderr)
        else:
            columns = (
                [c.strip() for c in args.columns.split(",") if c.strip()]
                if args.columns
                else [*TABLE_COLUMNS, *_filtered_names(args.where), "path"]
            )
            _print_table(runs, columns)
    except ExportError as exc:
        raise ArchiveUsageError(str(exc)) from None
    return EXIT_OK


def cmd_analyse_archive(args: argparse.Namespace) -> int:
    """``hbtscope analyse DIR...``: index the directories, re-analyse every run below them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from hbtscope.archive.catalog import CatalogError
    from hbtscope.archive.filters import FilterError
    from hbtscope.archive.reanalysis import close_client, open_client, reanalyse

    dirs = [Path(d) for d in args.run]
    not_dirs = [str(d) for d in dirs if not d.is_dir()]
    if not_dirs:
        raise ArchiveUsageError(
            f"{', '.join(not_dirs)}: not a directory (give one run file, or directories)"
        )
    if args.workers is not None and args.workers < 0:
        raise ArchiveUsageError(f"--workers {args.workers}: give 0 (serial) or more")
    with _open(args.catalog, create=True) as cat:
        try:
            cat.update(dirs)
        except CatalogError as exc:
            raise ArchiveUsageError(str(exc)) from None
        paths = cat.paths_under(dirs)
        if args.where:
            try:
                chosen = set(cat.paths(args.where))
            except FilterError as exc:
                raise ArchiveUsageError(str(exc)) from None
            paths = [p for p in paths if p in chosen]
        client = None
        if args.scheduler or args.workers != 0:
            try:
                client = open_client(args.workers or os.cpu_count(), args.scheduler)
            except (OSError, TimeoutError, ValueError) as exc:
                where = f"--scheduler {args.scheduler}" if args.scheduler else "local cluster"
                raise ArchiveUsageError(f"{where}: cannot connect ({exc})") from None
        failed: dict[str, str] = {}
        try:
            with Progress(
                "{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=_stderr_console(),
                disable=args.json,
            ) as bar:
                task = bar.add_task("re-analysing", total=len(paths))

                def store(o) -> None:
                    cat.store_reanalysis(o.path, o.ok, o.reason, o.values, commit=False)
                    if not o.ok:
                        failed[o.path] = o.reason
                    bar.advance(task)

                outcomes = reanalyse(paths, client, on_outcome=store)
        finally:
            cat.commit()
            if client is not None:
                close_client(client)
    ok = sum(o.ok for o in outcomes)
    if args.json:
        print(
            json.dumps(
                {"catalog": str(cat.path), "runs": len(outcomes), "ok": ok, "failed": failed}
            )
        )
        return EXIT_OK
    print(f"{ok} of {len(outcomes)} runs re-analysed into {cat.path}")
    for path, reason in failed.items():
        print(f"  failed: {reason}" if reason.startswith(path) else f"  failed: {path}: {reason}")
    return EXIT_OK


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)
