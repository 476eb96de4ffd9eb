"""Run one procedure on a Setup into one HDF5 run file (used by the CLI, later the queue and GUI).

The run file's status says how it ended: ``finished``; ``aborted`` (stop requested, Ctrl+C);
``failed`` (an exception, its message in the ``error`` attribute). Whatever happens the
procedure's ``shutdown()`` runs and the instruments are put in their safe state.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hbtscope import __version__
from hbtscope.procedures.base import AbortRequested, HbtProcedure
from hbtscope.storage import RunWriter, new_run_path


@dataclass
class RunOutcome:
    """Where the run landed and how it ended."""

    path: Path
    status: str
    procedure: HbtProcedure
    error: str = ""
    figure: Path | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def _jsonable_parameters(proc: HbtProcedure) -> dict[str, Any]:
    return {k: v for k, v in proc.parameter_values().items()}


def run_procedure(
    procedure: HbtProcedure,
    setup,
    out_dir: str | Path | None = None,
    *,
    stop_event: threading.Event | None = None,
    on_event: Callable[[str, Any], None] | None = None,
    queue_item_id: str = "",
    figure: bool = True,
    safe_state_after: bool = True,
) -> RunOutcome:
    """Run ``procedure`` on ``setup``; returns where its run file is and how it ended."""
    stop_event = stop_event or threading.Event()
    procedure.setup = setup
    procedure.should_stop = stop_event.is_set
    procedure.emit = on_event or (lambda topic, record: None)
    procedure.is_last = lambda: True
    procedure.check_parameters()
    path = new_run_path(out_dir if out_dir is not None else setup.data_dir, procedure.NAME)
    status, error = "finished", ""
    writer = RunWriter(
        path,
        procedure.NAME,
        _jsonable_parameters(procedure),
        units=procedure.parameter_units(),
        setup_text=setup.text,
        setup_path=str(setup.path),
        snapshot=setup.snapshot(),
        calibrations=setup.calibrations(),
        queue_item_id=queue_item_id,
        hbtscope_version=__version__,
    )
    procedure.writer = writer
    interrupted: BaseException | None = None
    try:
        try:
            procedure.status = procedure.RUNNING
            procedure.startup()
            procedure.execute()
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
        status, error, interrupted = "failed", f"{type(exc).__name__}: {exc}", exc
    summary = procedure.summary() if hasattr(procedure, "summary") else {}
    fig_path = None
    if figure and status != "failed":
        try:
            from hbtscope.plots import figure_for_run

            fig_path = figure_for_run(writer, procedure)
        except Exception as exc:  # noqa: BLE001 - a figure must never lose the data
            error = error or f"figure not drawn: {exc}"
    writer.finish(status, error=error)
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
