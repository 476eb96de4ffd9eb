"""``hbtscope queue check|run|status`` and ``hbtscope report``: the queue engine's commands.

``check FILE`` validates a queue file against the measurements and the setup without moving
anything; ``run FILE --out DIR`` runs it into a queue directory (``queue.yaml``, the journal,
``queue.log``, the run files, the emitter book), showing the current item, the emitter, the
progress and the time left; ``run --resume DIR`` continues a queue after a crash or a power
cut; ``status DIR`` reads the journal alone (also while the queue runs in another process);
``report DIR`` rebuilds the survey report from the journal and the run files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from hbtscope.queue.journal import FINAL, Journal, item_states

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class QueueUsageError(ValueError):
    """A queue command given wrongly (missing directory, nothing to resume)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("queue", help="overnight queues: check, run, resume, status")
    qs = p.add_subparsers(dest="queue_command", required=True)
    c = qs.add_parser("check", help="validate a queue file (nothing moves)")
    c.add_argument("file", help="the queue file (.yaml)")
    c.add_argument("--setup", help="setup file (default: the bundled simulated microscope)")
    c.set_defaults(func=cmd_check)
    r = qs.add_parser("run", help="run a queue file, or --resume a queue directory")
    r.add_argument("file", help="the queue file (.yaml), or with --resume the queue directory")
    r.add_argument("--setup", help="setup file (default: the bundled simulated microscope)")
    r.add_argument("--out", help="queue directory (default: <data_dir>/queues/<name>-<time>)")
    r.add_argument("--resume", action="store_true", help="continue the queue in FILE (a dir)")
    r.add_argument("--json", action="store_true", help="print one JSON object at the end")
    r.set_defaults(func=cmd_run)
    s = qs.add_parser("status", help="what a queue did and is doing (from its journal)")
    s.add_argument("dir", help="the queue directory")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_status)
    for name, helptext in (
        ("pause", "pause a running queue after its current item"),
        ("resume", "resume a paused queue"),
        ("stop", "stop a running queue after its current item"),
        ("abort", "abort a running queue now (its current run ends 'aborted')"),
    ):
        c = qs.add_parser(name, help=helptext)
        c.add_argument("dir", help="the queue directory")
        c.set_defaults(func=cmd_control, request=name)
    rep = sub.add_parser(
        "report", help="(re)build a survey report: of a queue directory, or from a catalogue"
    )
    rep.add_argument("dir", help="the queue directory (with --catalog: where to write it)")
    rep.add_argument("--catalog", help="build it from this run catalogue (hbtscope catalog)")
    rep.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help="with --catalog: only the runs passing this filter (repeatable)",
    )
    rep.add_argument("--json", action="store_true", help="print one JSON object")
    rep.set_defaults(func=cmd_report)


def cmd_control(args: argparse.Namespace) -> int:
    """Ask the queue running in DIR (any process) to pause, resume, stop or abort."""
    from hbtscope.queue.engine import CONTROL_FILE

    queue_dir = Path(args.dir)
    if not Journal(queue_dir).path.is_file():
        raise QueueUsageError(f"{queue_dir}: no queue journal there")
    path = queue_dir / CONTROL_FILE
    try:
        flags = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        flags = {}
    change = {
        "pause": {"pause": True},
        "resume": {"pause": False},
        "stop": {"stop_after_current": True},
        "abort": {"abort": True},
    }[args.request]
    flags.update(change)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(flags))
    os.replace(tmp, path)
    print(f"{queue_dir}: {args.request} requested")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from hbtscope.queue.report import write_report

    queue_dir = Path(args.dir)
    if args.catalog:
        from hbtscope.archive.filters import FilterError
        from hbtscope.archive.schema import CatalogError
        from hbtscope.queue.report import collect_from_catalog

        if not Path(args.catalog).is_file():
            raise QueueUsageError(f"--catalog {args.catalog}: no such catalogue")
        try:
            data = collect_from_catalog(args.catalog, args.where)
        except (FilterError, CatalogError) as exc:
            raise QueueUsageError(str(exc)) from None
        queue_dir.mkdir(parents=True, exist_ok=True)
        paths = write_report(queue_dir, data)
    else:
        if not Journal(queue_dir).path.is_file():
            raise QueueUsageError(f"{queue_dir}: no queue journal there")
        paths = write_report(queue_dir)
    if args.json:
        print(json.dumps({k: str(v) for k, v in paths.items()}))
    else:
        print(f"report: {paths['html']}  (table: {paths['csv']}, {paths['json']})")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from hbtscope.queue.check import check_queue
    from hbtscope.queue.spec import load_queue_file
    from hbtscope.setup import open_setup

    spec, text = load_queue_file(args.file)
    with open_setup(args.setup) as setup:
        notes = check_queue(spec, text, args.file, setup)
    print(f"{args.file}: ok, {len(spec.items)} entries")
    for note in notes:
        print(f"  {note}")
    return EXIT_OK


def _queue_dir(args: argparse.Namespace, spec: Any, setup: Any) -> Path:
    if args.out:
        return Path(args.out)
    stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in spec.name)[:40]
    return Path(setup.data_dir) / "queues" / f"{safe}-{stamp}"


def cmd_run(args: argparse.Namespace) -> int:
    from hbtscope.queue.check import check_queue
    from hbtscope.queue.engine import QUEUE_FILE_NAME, QueueEngine
    from hbtscope.queue.spec import load_queue_file
    from hbtscope.setup import open_setup

    if args.resume:
        queue_dir = Path(args.file)
        if not (queue_dir / QUEUE_FILE_NAME).is_file():
            raise QueueUsageError(f"--resume {queue_dir}: no {QUEUE_FILE_NAME} there to resume")
        spec, text = load_queue_file(queue_dir / QUEUE_FILE_NAME)
        path = str(queue_dir / QUEUE_FILE_NAME)
    else:
        spec, text = load_queue_file(args.file)
        path = args.file
    with open_setup(args.setup) as setup:
        check_queue(spec, text, path, setup)  # before anything moves
        if not args.resume:
            queue_dir = _queue_dir(args, spec, setup)
            if (queue_dir / "journal.jsonl").exists():
                raise QueueUsageError(
                    f"--out {queue_dir}: holds a queue already; resume it with "
                    f"`hbtscope queue run --resume {queue_dir}` or choose another directory"
                )
        display = _Display(quiet=args.json)
        engine = QueueEngine(
            spec,
            setup,
            queue_dir,
            queue_text=text,
            queue_path=path,
            resume=args.resume,
            displays=[display.on_event],
            on_status=display.on_status,
        )
        try:
            outcome = engine.run()
        finally:
            display.close()
    counts = _counts(outcome.items)
    if args.json:
        print(json.dumps({"status": outcome.status, "dir": str(queue_dir), **counts}))
    else:
        print(f"queue {spec.name}: {outcome.status} {outcome.error}".rstrip())
        print(f"  {counts}  ({queue_dir})")
    return EXIT_OK if outcome.status == "finished" else EXIT_FAILED


def _counts(items: dict[str, dict[str, Any]]) -> dict[str, int]:
    out = {"finished": 0, "failed": 0, "skipped": 0, "interrupted": 0, "aborted": 0}
    for state in items.values():
        status = state.get("status", "running")
        out[status] = out.get(status, 0) + 1
    return out


def cmd_status(args: argparse.Namespace) -> int:
    queue_dir = Path(args.dir)
    journal = Journal(queue_dir)
    records = journal.records()
    if not records:
        raise QueueUsageError(f"{queue_dir}: no queue journal ({journal.path.name}) there")
    states = item_states(records)
    started = [r for r in records if r["event"] == "queue_started"]
    ended = [r for r in records if r["event"] == "queue_ended"]
    last_start = started[-1] if started else {}
    running = not ended or (started and records.index(started[-1]) > records.index(ended[-1]))
    pid = last_start.get("pid")
    if running and pid and not _alive(int(pid)):
        state = "crashed (resume it with `hbtscope queue run --resume DIR`)"
    elif running:
        state = "running"
    else:
        state = ended[-1]["status"]
    current = [k for k, s in states.items() if s["event"] == "item_started"]
    walls: dict[str, list[float]] = {}
    for r in records:
        if r["event"] == "item_ended" and isinstance(r.get("wall_s"), int | float):
            walls.setdefault(r["measurement"], []).append(r["wall_s"])
    failures = [
        {"key": k, "measurement": s.get("measurement"), "error": s.get("error") or s.get("reason")}
        for k, s in states.items()
        if s.get("status") in ("failed", "skipped")
    ]
    out = {
        "dir": str(queue_dir),
        "name": last_start.get("name", ""),
        "state": state,
        "current": current,
        **_counts({k: s for k, s in states.items() if s.get("status") in (*FINAL, "aborted")}),
        "mean_wall_s": {m: sum(v) / len(v) for m, v in walls.items()},
        "eta_s": _eta_s(queue_dir, records, states, walls) if running else 0.0,
        "failures": failures,
    }
    if args.json:
        print(json.dumps(out))
        return EXIT_OK
    print(f"queue {out['name']} in {queue_dir}: {state}")
    print(f"  finished {out['finished']}, failed {out['failed']}, skipped {out['skipped']}")
    eta = out["eta_s"]
    if running:
        left = "unknown (a measurement not run yet)" if eta is None else f"{eta / 60:.1f} min"
        print(f"  time left: {left}")
    for key in current:
        print(f"  running: {key} {states[key].get('measurement')}")
    for f in failures:
        print(f"  {f['key']} {f['measurement']}: {f['error']}")
    return EXIT_OK


def _eta_s(queue_dir: Path, records: list, states: dict, walls: dict) -> float | None:
    """Time left: every item not yet final times the mean wall time of its measurement so
    far (a ``foreach_emitter`` block counts its selected emitters, else its limit); None
    while a measurement still to run has no duration yet."""
    from hbtscope.queue.engine import QUEUE_FILE_NAME
    from hbtscope.queue.spec import ForeachSpec, QueueFileError, load_queue_file

    try:
        spec, _ = load_queue_file(queue_dir / QUEUE_FILE_NAME)
    except QueueFileError:
        return None
    selected = {
        r.get("block"): len(r.get("emitters", []))
        for r in records
        if r["event"] == "emitters_selected"
    }
    final = {k for k, s in states.items() if s.get("status") in FINAL}
    left = 0.0
    for i, entry in enumerate(spec.items):
        items = entry.items if isinstance(entry, ForeachSpec) else [entry]
        n = selected.get(i, entry.foreach_emitter.limit) if isinstance(entry, ForeachSpec) else 1
        for j, item in enumerate(items):
            done = sum(
                1
                for k in final
                if (
                    k == str(i)
                    if not isinstance(entry, ForeachSpec)
                    else k.startswith(f"{i}/") and k.endswith(f"/{j}")
                )
            )
            todo = max(n - done, 0)
            if todo == 0:
                continue
            seen = walls.get(item.measurement)
            if not seen:
                return None
            left += todo * sum(seen) / len(seen)
    return left


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Display:
    """The live line: item (with its emitter), the item's progress, the count rate of the tags
    it records, the queue's time left (rich, to stderr; silent when not a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet or not sys.stderr.isatty()
        self.status: dict[str, Any] = {}
        self.percent = 0.0
        self.rate_cps = float("nan")
        self._sync: int | None = None
        self._live = None
        if not self.quiet:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(stderr=True), refresh_per_second=4, transient=True)
            self._live.start()

    def on_status(self, status: dict[str, Any]) -> None:
        self.status = status
        self.percent = 0.0
        self.rate_cps = float("nan")
        self._show()

    def on_event(self, event: Any) -> None:
        kind = type(event).__name__
        if kind == "Progress":
            self.percent = float(event.percent)
            self._show()
        elif kind == "TTTRInfo":
            self._sync = event.channel_map.get("sync")
        elif kind == "TagsRecorded" and len(event.timestamps_ps) > 1:
            ts, ch = event.timestamps_ps, event.channels
            span_s = (int(ts[-1]) - int(ts[0])) * 1e-12
            photons = int((ch != self._sync).sum()) if self._sync is not None else len(ts)
            if span_s > 0:
                self.rate_cps = photons / span_s

    def _show(self) -> None:
        if self._live is None:
            return
        eta = self.status.get("eta_s")
        left = "learning" if eta is None or not math.isfinite(eta) else f"{eta / 60:.1f} min"
        rate = f"{self.rate_cps / 1e3:7.1f} kcps" if math.isfinite(self.rate_cps) else ""
        self._live.update(
            f"[bold]{self.status.get('current', '')}[/]  {self.percent:5.1f} %  {rate}  "
            f"done {self.status.get('done', 0)}  queue left {left}"
        )

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
