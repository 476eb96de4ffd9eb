"""The queue engine: runs a queue file's items in order on one Setup, for the CLI and the GUI.

Every item runs through :func:`hbtscope.procedures.runner.run_procedure` into its own run file
under the queue directory; its start and end go to the journal (:mod:`hbtscope.queue.journal`)
before the next item begins. What the engine guarantees:

* **Order and policy.** Items run in file order; a ``foreach_emitter`` block expands, when it is
  reached, into the emitters an earlier scan found (or the points given), each emitter's items
  in order with its name and position filled in (parameters ``emitter``, ``x_um``, ``y_um``,
  ``z_um`` of the procedure, unless the item sets them). Expressions are evaluated when their
  item starts, from earlier items' results (by ``id``) and the emitter's own results (by
  measurement). A failed item runs again up to ``retry`` times, then ``on_failure`` decides:
  go on, skip the rest of the emitter, or stop the queue. An emitter whose ``exclude_if`` holds
  is skipped from then on.
* **Refocus.** Before each emitter's items and every ``every_min`` minutes (virtual time) the
  refocus measurement runs on the emitter; its result (the emitter book's position history)
  gives the position of the next items.
* **Resume.** With ``resume=True`` items whose last journal record is final (finished, failed
  after its retries, skipped) are not run again; an item that was running when the process
  died is re-run and its partial file is marked ``interrupted``.
* **Control.** :class:`QueueControl` pauses between items, resumes, stops after the current
  item, or aborts the current one (its run ends ``aborted``).
* **Safe.** Whatever happens -- an exception, Ctrl+C, SIGTERM (the CLI turns it into
  KeyboardInterrupt) -- the setup ends in ``safe_state()`` and the journal says how the queue
  ended.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hbtscope.procedures.errors import ParameterError
from hbtscope.procedures.registry import runnable
from hbtscope.procedures.runner import run_procedure
from hbtscope.queue.check import build_procedure
from hbtscope.queue.expressions import ExpressionError, is_expression, parse
from hbtscope.queue.journal import FINAL, Journal, item_states
from hbtscope.queue.spec import ForeachSpec, ItemSpec, QueueSpec
from hbtscope.storage import mark_interrupted, open_run, run_status
from hbtscope.storage.emitter_book import EmitterBook

log = logging.getLogger("hbtscope.queue")

QUEUE_FILE_NAME = "queue.yaml"
#: requests from another process: {"pause": bool, "stop_after_current": bool, "abort": bool}
CONTROL_FILE = "control.json"


class QueueStopped(Exception):
    """The queue ended early: stopped by its failure policy or by the user."""


@dataclass
class QueueControl:
    """Thread-safe controls of a running queue (the GUI's buttons, the CLI's signals)."""

    paused: threading.Event = field(default_factory=threading.Event)
    stop_after_current: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)

    def pause(self) -> None:
        self.paused.set()

    def resume(self) -> None:
        self.paused.clear()


@dataclass(frozen=True)
class Emitter:
    """One emitter a ``foreach_emitter`` block runs over."""

    name: str
    x_um: float
    y_um: float
    z_um: float
    brightness_cps: float = math.nan
    snr: float = math.nan


@dataclass
class QueueOutcome:
    """How the queue ended and what each item gave."""

    status: str  # finished | stopped | aborted | failed
    queue_dir: Path
    items: dict[str, dict[str, Any]]
    error: str = ""


@dataclass
class _Work:
    """One item to run: its journal key, spec, location in the file and emitter."""

    key: str
    item: ItemSpec
    where: str
    emitter: Emitter | None = None


def select_emitters(candidates: Iterable[Emitter], selection) -> list[Emitter]:
    """The emitters of a scan that a ``foreach_emitter`` block keeps: bright and clear enough
    (``min_brightness_cps``, ``min_snr``), brightest first, none closer than
    ``min_separation_um`` to a brighter one kept, at most ``limit``."""
    ok = [
        e
        for e in candidates
        if not (e.brightness_cps < selection.min_brightness_cps) and not (e.snr < selection.min_snr)
    ]
    ok.sort(key=lambda e: -(e.brightness_cps if math.isfinite(e.brightness_cps) else -1.0))
    kept: list[Emitter] = []
    for e in ok:
        if all(
            math.hypot(e.x_um - k.x_um, e.y_um - k.y_um) >= selection.min_separation_um
            for k in kept
        ):
            kept.append(e)
        if len(kept) >= selection.limit:
            break
    return kept


class QueueEngine:
    """Runs one queue (see the module docstring)."""

    def __init__(
        self,
        spec: QueueSpec,
        setup: Any,
        queue_dir: str | os.PathLike,
        *,
        queue_text: str = "",
        queue_path: str = "",
        resume: bool = False,
        control: QueueControl | None = None,
        displays: Iterable[Callable[[Any], None]] = (),
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.spec = spec
        self.setup = setup
        self.queue_dir = Path(queue_dir)
        self.queue_path = queue_path or str(self.queue_dir / QUEUE_FILE_NAME)
        self.queue_text = queue_text
        self.resume = resume
        self.control = control or QueueControl()
        self.displays = list(displays)
        self.on_status = on_status
        self.journal = Journal(self.queue_dir)
        self.book = EmitterBook(self.queue_dir)
        self.results: dict[str, dict[str, Any]] = {}  # item id -> values and errors
        self.runs: dict[str, str] = {}  # item id -> run file
        self._states: dict[str, dict[str, Any]] = {}
        self._last_refocus_s: dict[str, float] = {}
        self._durations: dict[str, list[float]] = {}
        self._current: str = ""
        self._running_path: str | None = None
        self._stop_event = threading.Event()
        self.report: Path | None = None
        self.safe_state_error = ""

    # ------------------------------------------------------------------ public
    def run(self) -> QueueOutcome:
        """Run (or resume) the queue; always ends with the setup in its safe state."""
        self._prepare()
        status, error = "finished", ""
        handler = self._log_to_file()
        try:
            self.journal.append(
                "queue_started", name=self.spec.name, resume=self.resume, pid=os.getpid()
            )
            self._run_entries()
        except QueueStopped as exc:
            status, error = ("aborted" if self.control.abort.is_set() else "stopped"), str(exc)
        except KeyboardInterrupt as exc:
            status, error = "aborted", f"interrupted ({exc.args[0] if exc.args else 'Ctrl+C'})"
            self._end(status, error)
            raise
        except Exception as exc:  # noqa: BLE001 - journalled, then re-raised
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            self._end(status, error)
            raise
        finally:
            try:
                self._safe_state()
            finally:
                logging.getLogger("hbtscope").removeHandler(handler)
                handler.close()
        self._end(status, error)
        return QueueOutcome(status, self.queue_dir, item_states(self.journal.records()), error)

    def status(self) -> dict[str, Any]:
        """What the queue is doing: current item, counts, time left (learned)."""
        states = self._states
        done = sum(1 for s in states.values() if s.get("status") in FINAL)
        return {
            "name": self.spec.name,
            "current": self._current,
            "done": done,
            "paused": self.control.paused.is_set(),
            "eta_s": self._eta_s(),
        }

    # ------------------------------------------------------------------ set-up
    def _prepare(self) -> None:
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        (self.queue_dir / CONTROL_FILE).unlink(missing_ok=True)  # old requests do not apply
        copy = self.queue_dir / QUEUE_FILE_NAME
        if self.queue_text and not (self.resume and copy.exists()):
            copy.write_text(self.queue_text, encoding="utf-8")
        if not self.resume:
            return
        records = self.journal.records()
        self._states = item_states(records)
        for key, state in self._states.items():
            if state["event"] == "item_started":  # the process died during this item
                run = state.get("run")
                if run and Path(run).exists() and run_status(run) == "finished":
                    self._adopt(key, state, run)  # it ended; only its journal line was lost
                    continue
                if run and Path(run).exists():
                    mark_interrupted(run)
                self.journal.append(
                    "item_ended",
                    key=key,
                    measurement=state.get("measurement"),
                    status="interrupted",
                    run=run,
                    final=False,
                )
                self._states[key] = {"event": "item_ended", "status": "interrupted"}
            elif state.get("status") == "finished" and state.get("id"):
                self.results[state["id"]] = state.get("values", {})
                self.runs[state["id"]] = state.get("run", "")
        for r in records:
            if r["event"] == "item_ended" and r.get("wall_s") is not None:
                self._durations.setdefault(r.get("measurement", ""), []).append(r["wall_s"])

    def _adopt(self, key: str, state: dict[str, Any], run: str) -> None:
        """An item whose run finished but whose end the crash kept out of the journal: its
        result is taken from its run file instead of measuring again."""
        measurement = runnable().get(state.get("measurement", ""))
        summary: dict[str, Any] = {}
        if measurement is not None:
            try:
                with open_run(run) as f:
                    summary = dict(measurement.analyse(f).summary)
            except Exception:  # noqa: BLE001 - the file holds its data; the summary is a copy
                log.exception("could not re-analyse %s", run)
        values = self._result_of(run)
        record = {k: state.get(k) for k in ("measurement", "emitter", "attempt", "id")}
        self._states[key] = self.journal.append(
            "item_ended",
            key=key,
            **record,
            status="finished",
            run=run,
            error="",
            summary=summary,
            values=values,
            final=True,
            adopted=True,
        )
        if state.get("id"):
            self.results[state["id"]] = values
            self.runs[state["id"]] = run
        if state.get("emitter") and values:
            self._remember(state["emitter"], state.get("measurement", ""), values, run)

    def _log_to_file(self) -> logging.Handler:
        handler = logging.FileHandler(self.queue_dir / "queue.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger = logging.getLogger("hbtscope")
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        return handler

    def _safe_state(self) -> None:
        """Every instrument to its safe state; a device that cannot (disconnected) is logged
        and journalled, the others are still switched off (Setup.safe_state tries them all)."""
        try:
            self.setup.safe_state()
        except Exception as exc:  # noqa: BLE001 - the queue must still end and say so
            self.safe_state_error = f"{type(exc).__name__}: {exc}"
            log.error("safe state incomplete: %s", self.safe_state_error)

    def _end(self, status: str, error: str) -> None:
        self.journal.append(
            "queue_ended", status=status, error=error, safe_state_error=self.safe_state_error
        )
        log.info("queue %s ended: %s %s", self.spec.name, status, error)
        try:
            from hbtscope.queue.report import write_report

            self.report = write_report(self.queue_dir)["html"]
            log.info("survey report: %s", self.report)
        except Exception:  # noqa: BLE001 - the runs are safe; `hbtscope report` can retry
            log.exception("the survey report could not be written")
        self._notify(status)

    # ------------------------------------------------------------------ running
    def _run_entries(self) -> None:
        for i, entry in enumerate(self.spec.items):
            if isinstance(entry, ForeachSpec):
                self._run_foreach(i, entry)
            else:
                self._run_item(_Work(str(i), entry, f"items.{i}"))

    def _run_foreach(self, i: int, block: ForeachSpec) -> None:
        emitters = self._emitters_of(i, block)
        for emitter in emitters:
            skip_reason = ""
            for j, item in enumerate(block.items):
                work = _Work(f"{i}/{emitter.name}/{j}", item, f"items.{i}.items.{j}", emitter)
                if skip_reason:
                    self._skip(work, skip_reason)
                    continue
                if self._done(work.key):
                    continue
                self._refocus_if_due(i, emitter, first=j == 0)
                ok = self._run_item(work)
                if not ok and item.on_failure == "skip_emitter":
                    skip_reason = f"an earlier item of {emitter.name} failed ({work.where})"
                elif self._excluded(block, emitter):
                    skip_reason = f"excluded: {block.foreach_emitter.exclude_if}"

    def _emitters_of(self, i: int, block: ForeachSpec) -> list[Emitter]:
        sel = block.foreach_emitter
        for r in reversed(self.journal.records()):  # on resume: the same emitters as before
            if r["event"] == "emitters_selected" and r.get("block") == i:
                return [Emitter(**e) for e in r["emitters"]]
        if sel.points is not None:
            candidates = [Emitter(p.name, p.x_um, p.y_um, p.z_um) for p in sel.points]
        else:
            candidates = self._scan_emitters(sel.from_)
        chosen = select_emitters(candidates, sel)
        self.journal.append(
            "emitters_selected",
            block=i,
            source=sel.from_ or "points",
            n_candidates=len(candidates),
            emitters=[e.__dict__ for e in chosen],
        )
        for e in chosen:
            if self.book.get(e.name) is None or self.book.get(e.name).position_um() is None:
                self.book.add_position(e.name, (e.x_um, e.y_um, e.z_um), "selected")
        return chosen

    def _scan_emitters(self, item_id: str) -> list[Emitter]:
        run = self.runs.get(item_id)
        if not run:
            raise QueueStopped(f"foreach_emitter from {item_id!r}: that item has no finished run")
        with open_run(run) as f:
            measurement = str(f.attrs.get("procedure", ""))
            finder = getattr(runnable().get(measurement), "emitters", None)
            if finder is None:
                raise QueueStopped(
                    f"foreach_emitter from {item_id!r}: a {measurement} run lists no emitters"
                )
            found = finder(f)
        return [
            Emitter(
                f"{item_id}-{k:03d}",
                float(e["x_um"]),
                float(e["y_um"]),
                float(e.get("z_um", 0.0)),
                float(e.get("brightness_cps", math.nan)),
                float(e.get("snr", math.nan)),
            )
            for k, e in enumerate(found)
        ]

    def _done(self, key: str) -> bool:
        state = self._states.get(key)
        return bool(state) and state.get("status") in FINAL and state.get("final", True)

    def _skip(self, work: _Work, reason: str) -> None:
        if self._done(work.key):
            return
        self._states[work.key] = self.journal.append(
            "item_skipped",
            key=work.key,
            measurement=work.item.measurement,
            emitter=work.emitter.name if work.emitter else None,
            status="skipped",
            reason=reason,
        )
        log.info("skipped %s (%s): %s", work.key, work.item.measurement, reason)

    def _poll_control_file(self) -> None:
        """``hbtscope queue pause|resume|stop|abort DIR`` write ``control.json`` in the queue
        directory (another process, another terminal); its flags set the controls."""
        path = self.queue_dir / CONTROL_FILE
        try:
            flags = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        except (OSError, ValueError):
            return
        if not isinstance(flags, dict):
            return
        if flags.get("abort"):
            self.control.abort.set()
        if flags.get("stop_after_current"):
            self.control.stop_after_current.set()
        if "pause" in flags:
            (self.control.pause if flags["pause"] else self.control.resume)()

    def _between_items(self) -> None:
        self._poll_control_file()
        if self.control.abort.is_set():
            raise QueueStopped("aborted by the user")
        if self.control.stop_after_current.is_set():
            raise QueueStopped("stopped after the current item, as asked")
        if self.control.paused.is_set():
            log.info("paused")
            self._publish_status()
        while self.control.paused.is_set():
            if self.control.abort.is_set():
                raise QueueStopped("aborted by the user")
            time.sleep(0.05)
            self._poll_control_file()

    def _run_item(self, work: _Work) -> bool:
        """Run one item with its retries; True if it finished."""
        if self._done(work.key):
            return self._states[work.key].get("status") == "finished"
        attempts = work.item.retry + 1
        for attempt in range(1, attempts + 1):
            self._between_items()
            status = self._attempt(work, attempt, final=attempt == attempts)
            if status == "finished":
                return True
            if status == "aborted":
                raise QueueStopped(f"{work.where} ({work.item.measurement}) was aborted")
        if work.item.on_failure == "stop":
            raise QueueStopped(f"{work.where} ({work.item.measurement}) failed; on_failure: stop")
        return False

    def _attempt(self, work: _Work, attempt: int, final: bool) -> str:
        item, emitter = work.item, work.emitter
        self._current = f"{work.key} {item.measurement}"
        common = {
            "key": work.key,
            "measurement": item.measurement,
            "emitter": emitter.name if emitter else None,
            "attempt": attempt,
            "id": item.id,
        }
        t0 = time.monotonic()
        try:
            proc = self._procedure(work)
        except (ParameterError, ExpressionError, LookupError) as exc:
            reason = f"{self.queue_path} ({work.where}): {exc}"
            self._states[work.key] = self.journal.append(
                "item_ended", **common, status="failed", error=reason, final=final, wall_s=0.0
            )
            log.warning("%s failed before it started: %s", work.key, reason)
            return "failed"
        self._stop_event = threading.Event()
        watcher = threading.Thread(target=self._watch_abort, daemon=True)
        watcher.start()
        self._running_path = None
        self._states[work.key] = self.journal.append(
            "item_started", **common, parameters=proc.parameter_values(), run=None
        )
        self._publish_status()
        try:
            outcome = run_procedure(
                proc,
                self.setup,
                self.queue_dir,
                stop_event=self._stop_event,
                displays=self.displays,
                queue_item_id=work.key,
                on_file=lambda path: self._record_run_path(common, path),
            )
            status, error, run = outcome.status, outcome.error, str(outcome.path)
            summary = outcome.summary
        except ParameterError as exc:
            status, run, summary = "failed", None, {}
            error = f"{self.queue_path} ({work.where}): {exc}"
        except KeyboardInterrupt:
            self._states[work.key] = self.journal.append(
                "item_ended", **common, status="aborted", run=self._running_path, final=False
            )
            raise
        except Exception as exc:  # noqa: BLE001 - the run file already says what happened
            out = getattr(exc, "run_outcome", None)
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            run, summary = (str(out.path) if out else None), (out.summary if out else {})
        finally:
            self._stop_event.set()
        wall_s = time.monotonic() - t0
        values = self._result_of(run) if status == "finished" and run else {}
        if status == "finished" and item.id:
            self.results[item.id] = values
            self.runs[item.id] = run
        if status == "finished" and emitter is not None and values:
            self._remember(emitter.name, item.measurement, values, run)
        self._durations.setdefault(item.measurement, []).append(wall_s)
        self._states[work.key] = self.journal.append(
            "item_ended",
            **common,
            status=status,
            run=run,
            error=error,
            summary=summary,
            values=values,
            final=final or status == "finished",
            wall_s=wall_s,
        )
        log.info("%s %s: %s %s", work.key, item.measurement, status, error)
        self._publish_status()
        return status

    def _remember(self, emitter: str, measurement: str, values: dict[str, Any], run: str) -> None:
        """The emitter's result of ``measurement`` into the book (``<key>_err`` as errors)."""
        errors = {k[:-4]: v for k, v in values.items() if k.endswith("_err") and k[:-4] in values}
        plain = {k: v for k, v in values.items() if not (k.endswith("_err") and k[:-4] in errors)}
        self.book.remember(emitter, measurement, plain, errors, run=run)

    def _record_run_path(self, common: dict[str, Any], path: Path) -> None:
        """The run file exists: journal it, so a crash from now on can mark it interrupted."""
        self._running_path = str(path)
        self._states[common["key"]] = self.journal.append("item_started", **common, run=str(path))

    def _watch_abort(self) -> None:
        n = 0
        while not self._stop_event.is_set():
            if n % 5 == 0:
                self._poll_control_file()
            n += 1
            if self.control.abort.is_set():
                self._stop_event.set()
                return
            self.control.abort.wait(0.05)

    def _procedure(self, work: _Work) -> Any:
        """The item's procedure with its parameters: literals, evaluated expressions, and the
        emitter's name and position where the procedure has such parameters."""
        cls = runnable()[work.item.measurement].procedure
        if cls is None:
            raise LookupError(f"{work.item.measurement} is not a runnable measurement")
        values: dict[str, Any] = {}
        for name, value in work.item.parameters.items():
            if is_expression(value):
                value = parse(value).evaluate(lambda n, k: self._resolve(n, k, work.emitter))
                if isinstance(value, float) and not math.isfinite(value):
                    raise ExpressionError(f"{name} = {work.item.parameters[name]!r} is {value}")
            values[name] = value
        params = cls()._parameters
        if work.emitter is not None:
            if "emitter" in params:
                values.setdefault("emitter", work.emitter.name)
            record = self.book.get(work.emitter.name)
            pos = record.position_um() if record else None
            x, y, z = pos or (work.emitter.x_um, work.emitter.y_um, work.emitter.z_um)
            for axis, v in (("x_um", x), ("y_um", y), ("z_um", z)):
                if axis in params:
                    values.setdefault(axis, v)
        return build_procedure(cls, values)

    def _resolve(self, name: str, key: str, emitter: Emitter | None) -> float:
        """``{name.key}``: an earlier item's result by its id, else the emitter's own result
        of the measurement ``name`` (``key_err``: the uncertainty)."""
        if name in self.results:
            values = self.results[name]
            if key not in values:
                raise LookupError(f"item {name!r} has no result {key!r}")
            return float(values[key])
        if emitter is not None:
            base, is_err = (key[:-4], True) if key.endswith("_err") else (key, False)
            value, err = self.book.require(emitter.name).value(f"{name}.{base}")
            return err if is_err else value
        raise LookupError(f"no earlier item with id {name!r}")

    def _result_of(self, run: str) -> dict[str, Any]:
        """The run's scalar analysis values, uncertainties as ``<key>_err`` (for expressions,
        the journal and the report); {} if the file cannot be read."""
        from hbtscope.storage.runfile import read_values

        out: dict[str, Any] = {}
        try:
            with open_run(run) as f:
                group = f.get("analysis")
                for name in group or {}:
                    for k, v in read_values(group[name]).items():
                        if isinstance(v, int | float | bool | str) or getattr(v, "ndim", 1) == 0:
                            out[k] = v
        except Exception:  # noqa: BLE001 - a result that cannot be read is just not there
            return {}
        return out

    def _excluded(self, block: ForeachSpec, emitter: Emitter) -> bool:
        condition = block.foreach_emitter.exclude_if
        if not condition:
            return False
        try:
            return bool(parse(condition).evaluate(lambda n, k: self._resolve(n, k, emitter)))
        except ExpressionError:  # a result it needs is not there (yet)
            return False

    def _refocus_if_due(self, block: int, emitter: Emitter, first: bool) -> None:
        spec = self.spec.refocus
        if spec is None:
            return
        now_s = self.setup.clock.now_ps() / 1e12
        last = self._last_refocus_s.get(emitter.name)
        # before the emitter's first item; and on a resume before the first item this
        # process runs for it (the sample drifted while nobody was watching)
        before = spec.before_each_emitter and (first or last is None)
        due = before or (
            spec.every_min is not None and last is not None and now_s - last >= 60 * spec.every_min
        )
        if not due:
            return
        item = ItemSpec(measurement=spec.measurement, parameters=spec.parameters)
        n = sum(1 for k in self._states if k.startswith(f"{block}/{emitter.name}/refocus"))
        key = f"{block}/{emitter.name}/refocus{n}"
        self._run_item(_Work(key, item, "refocus", emitter))
        self._last_refocus_s[emitter.name] = self.setup.clock.now_ps() / 1e12

    # ------------------------------------------------------------------ status
    def _eta_s(self) -> float | None:
        remaining = 0.0
        for i, entry in enumerate(self.spec.items):
            items = entry.items if isinstance(entry, ForeachSpec) else [entry]
            n = entry.foreach_emitter.limit if isinstance(entry, ForeachSpec) else 1
            for item in items:
                mean = self._mean_duration(item.measurement)
                if mean is None:
                    return None
                done = sum(
                    1
                    for k, s in self._states.items()
                    if k.split("/")[0] == str(i)
                    and s.get("measurement") == item.measurement
                    and s.get("status") in FINAL
                )
                remaining += max(n - done, 0) * mean
        return remaining

    def _mean_duration(self, measurement: str) -> float | None:
        seen = self._durations.get(measurement)
        return sum(seen) / len(seen) if seen else None

    def _publish_status(self) -> None:
        if self.on_status is not None:
            try:
                self.on_status(self.status())
            except Exception:  # noqa: BLE001 - a display must never stop the queue
                log.exception("queue status display failed")

    def _notify(self, status: str) -> None:
        """Tell the lab the queue ended: run ``notify.command`` and/or mail ``notify.mail_to``
        through the setup file's SMTP server. A failure to notify is logged, never raised."""
        notify = self.spec.notify
        if notify is None:
            return
        if notify.command:
            env = dict(
                os.environ, HBTSCOPE_QUEUE_STATUS=status, HBTSCOPE_QUEUE_DIR=str(self.queue_dir)
            )
            exe = shutil.which(notify.command[0]) or notify.command[0]
            try:
                subprocess.run([exe, *notify.command[1:]], env=env, timeout=60, check=False)  # noqa: S603
            except (OSError, subprocess.SubprocessError) as exc:
                log.warning("notify command %s failed: %s", notify.command, exc)
        if notify.mail_to:
            try:
                self._mail(status, notify.mail_to)
            except Exception as exc:  # noqa: BLE001 - the queue's end must not fail on mail
                log.warning("notify mail to %s failed: %s", notify.mail_to, exc)

    def _mail(self, status: str, to: list[str]) -> None:
        import smtplib
        from email.message import EmailMessage

        server = getattr(getattr(self.setup, "spec", None), "notify", None)
        if server is None:
            log.warning("notify mail_to given but the setup file names no SMTP server (notify:)")
            return
        states = item_states(self.journal.records())
        counts: dict[str, int] = {}
        for state in states.values():
            counts[state.get("status", "?")] = counts.get(state.get("status", "?"), 0) + 1
        failures = [
            f"  {k} {s.get('measurement')}: {s.get('error') or s.get('reason')}"
            for k, s in states.items()
            if s.get("status") == "failed"
        ]
        msg = EmailMessage()
        msg["Subject"] = f"hbtscope queue {self.spec.name}: {status}"
        msg["From"] = server.sender
        msg["To"] = ", ".join(to)
        body = [
            f"The queue {self.spec.name} ended: {status}.",
            f"Queue directory: {self.queue_dir.resolve()}",
            f"Items: {', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}",
        ]
        if self.report is not None:
            body.append(f"Report: {Path(self.report).resolve()}")
        if failures:
            body += ["Failures:", *failures]
        msg.set_content("\n".join(body) + "\n")
        with smtplib.SMTP(server.smtp_host, server.smtp_port, timeout=server.timeout_s) as smtp:
            if server.starttls:
                smtp.starttls()
            if server.username:
                smtp.login(server.username, os.environ.get(server.password_env, ""))
            smtp.send_message(msg)
        log.info("notified %s", ", ".join(to))
