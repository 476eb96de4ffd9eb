"""Run one procedure on a Setup into one HDF5 run file (used by the CLI, later the queue and GUI).

The procedure publishes events (:mod:`hbtscope.events`) on one stream; the run file
(:class:`~hbtscope.storage.recorder.RunFileRecorder`) and any ``subscribers`` (the command
line's progress display, later the queue journal and the dashboard) consume the same events.

Order: the parameters are checked; ``startup()`` sets the instruments; then
:class:`~hbtscope.events.RunStarted` carries the instrument snapshot *as set up* (laser on, at
its power), which creates the run file; ``execute()`` publishes the data; the measurement's
``analyse(run)`` reads the run file and its result is published; :class:`~hbtscope.events.RunEnded`
carries the final snapshot and the status: ``finished``; ``aborted`` (stop requested, Ctrl+C);
``failed`` (an exception, its message in the ``error`` attribute). Whatever happens the
procedure's ``shutdown()`` runs and the instruments are put in their safe state; then the
measurement's ``figure(run, path)`` draws the run from its file. A finished run of a procedure
with a non-empty ``emitter`` parameter is remembered in the data directory's emitter book
(:mod:`hbtscope.storage.emitter_book`), where later runs find e.g. that emitter's P_sat.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hbtscope import events as ev
from hbtscope.procedures.base import AbortRequested, HbtProcedure, Measurement
from hbtscope.procedures.errors import OutputDirError
from hbtscope.storage import new_run_path, open_run
from hbtscope.storage.emitter_book import EmitterBook
from hbtscope.storage.recorder import RunFileRecorder


@dataclass
class RunOutcome:
    """Where the run landed and how it ended."""

    path: Path
    status: str
    procedure: HbtProcedure
    error: str = ""
    figure: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def measurement_of(procedure: HbtProcedure) -> Measurement | None:
    """The registered measurement whose procedure class ``procedure`` is (None if none)."""
    from hbtscope.procedures.registry import all_measurements

    for m in all_measurements().values():
        if m.procedure is type(procedure):
            return m
    return None


def _writable_dir(directory: str | Path) -> Path:
    """``directory``, created if needed; :class:`OutputDirError` if it cannot hold run files."""
    d = Path(directory).expanduser()
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"data directory {d}: cannot create it ({exc.strerror})") from None
    if not d.is_dir() or not os.access(d, os.W_OK | os.X_OK):
        raise OutputDirError(f"data directory {d}: not a writable directory")
    return d


def _legacy_emit(on_event: Callable[[str, Any], None]) -> Callable[[Any], None]:
    """A subscriber calling ``on_event(topic, record)`` as pymeasure's ``emit`` would."""

    def subscriber(event: Any) -> None:
        if isinstance(event, ev.Progress):
            on_event("progress", event.percent)
        elif isinstance(event, ev.Emitted):
            on_event(event.topic, event.record)

    return subscriber


def interrupt_in_chain(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl+C / SIGTERM behind ``exc``, if any.

    A signal handler that raises while a numba kernel's dispatcher is returning makes Python
    raise ``SystemError("... returned a result with an exception set")`` chained to the
    ``KeyboardInterrupt``: that run was interrupted, it did not fail.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def run_procedure(
    procedure: HbtProcedure,
    setup,
    out_dir: str | Path | None = None,
    *,
    stop_event: threading.Event | None = None,
    on_event: Callable[[str, Any], None] | None = None,
    subscribers: Iterable[Callable[[Any], None]] = (),
    displays: Iterable[Callable[[Any], None]] = (),
    queue_item_id: str = "",
    figure: bool = True,
    safe_state_after: bool = True,
    on_file: Callable[[Path], None] | None = None,
) -> RunOutcome:
    """Run ``procedure`` on ``setup``; returns where its run file is and how it ended.

    ``subscribers`` receive every event of the run after the run file has (an exception in one
    fails the run, like one in the file writer); ``displays`` too, but one that raises is logged
    and dropped while the run goes on. ``on_event`` is the pymeasure-style ``(topic, record)``
    callback (``progress``, ``results``); it is a display. ``on_file(path)`` is called with
    the run file's path once the parameters are valid, before the file is created (the queue
    journals it, so that a crash from then on can mark the file interrupted).
    """
    stop_event = stop_event or threading.Event()
    measurement = measurement_of(procedure)
    procedure.setup = setup
    procedure.should_stop = stop_event.is_set
    procedure.is_last = lambda: True
    data_dir = out_dir if out_dir is not None else setup.data_dir
    procedure.book = EmitterBook(data_dir)
    procedure.check_parameters()
    procedure.validate(setup)  # before anything moves or fires, before a file exists
    path = new_run_path(_writable_dir(data_dir), procedure.NAME)
    procedure.run_path = path  # e.g. for the emitter book's position history
    if on_file is not None:
        on_file(path)
    stream = ev.EventStream()
    recorder = RunFileRecorder(path)
    stream.subscribe(recorder)
    for subscriber in subscribers:
        stream.subscribe(subscriber)
    for display in displays:
        stream.subscribe(display, critical=False)
    if on_event is not None:
        stream.subscribe(_legacy_emit(on_event), critical=False)
    procedure.events = stream
    procedure.emit = lambda topic, record: stream.publish(  # pymeasure's channel, kept
        ev.Progress(float(record)) if topic == "progress" else ev.Emitted(topic, record)
    )

    def start() -> None:
        stream.publish(
            ev.RunStarted(
                procedure.NAME,
                dict(procedure.parameter_values()),
                units=procedure.parameter_units(),
                setup_text=setup.text,
                setup_path=str(setup.path),
                snapshot=setup.snapshot(),
                calibrations=setup.calibrations(),
                queue_item_id=queue_item_id,
            )
        )

    status, error = "finished", ""
    interrupted: BaseException | None = None
    end_snapshot: dict[str, Any] = {}
    try:
        try:
            procedure.status = procedure.RUNNING
            procedure.startup()
            start()  # the snapshot as the procedure set the instruments
            procedure.execute()
        finally:
            try:
                if recorder.started:
                    end_snapshot = setup.snapshot()
            finally:
                try:
                    procedure.shutdown()
                finally:
                    if safe_state_after:
                        setup.safe_state()
    except AbortRequested:
        status = "aborted"
    except KeyboardInterrupt as exc:
        status, interrupted = "aborted", exc
    except Exception as exc:  # noqa: BLE001 - recorded in the run file, then re-raised
        signal_exc = interrupt_in_chain(exc)
        if signal_exc is not None:  # Ctrl+C / SIGTERM arrived inside a compiled kernel's call
            status, interrupted = "aborted", signal_exc
        else:
            status, error, interrupted = "failed", f"{type(exc).__name__}: {exc}", exc
    if not recorder.started and not path.exists():  # failed before it began: keep a record
        try:
            start()
        except Exception as exc:  # noqa: BLE001 - never hide why the run ended
            error = error or f"run file not written: {type(exc).__name__}: {exc}"
    summary: dict[str, Any] = {}
    if not recorder.started:  # the file was abandoned as it was created (it says why)
        measurement = None
    if measurement is not None and status != "failed":
        recorder.flush()
        try:
            with open_run(path) as run:
                output = measurement.analyse(run)
            stream.publish(ev.AnalysisResult(output.name, output.values, output.errors))
            summary = dict(output.summary)
            emitter = str(getattr(procedure, "emitter", "") or "")
            if emitter and status == "finished" and "error" not in output.values:
                procedure.book.remember(
                    emitter, output.name, dict(output.values), dict(output.errors), path
                )
        except Exception as exc:  # noqa: BLE001 - the data are safe; say what went wrong
            error = error or f"analysis failed: {type(exc).__name__}: {exc}"
    if recorder.started:
        stream.publish(ev.RunEnded(status, error, end_snapshot))
    fig_path = None
    if figure and measurement is not None and measurement.figure is not None:
        if status != "failed":
            try:
                with open_run(path) as run:
                    fig_path = measurement.figure(run, path.with_suffix(".png"))
            except Exception as exc:  # noqa: BLE001 - a figure must never lose the data
                summary["figure_error"] = f"{type(exc).__name__}: {exc}"
    procedure.status = {
        "finished": procedure.FINISHED,
        "aborted": procedure.ABORTED,
        "failed": procedure.FAILED,
    }[status]
    outcome = RunOutcome(path, status, procedure, error, fig_path, summary)
    if isinstance(interrupted, KeyboardInterrupt):
        raise interrupted
    if interrupted is not None:
        interrupted.run_outcome = outcome  # type: ignore[attr-defined]
        raise interrupted
    return outcome
