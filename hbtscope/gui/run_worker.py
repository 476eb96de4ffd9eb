"""One run in a worker ``QThread``: the GUI thread never waits on a measurement.

:class:`RunThread` calls :func:`~hbtscope.procedures.runner.run_procedure` with the GUI's
displays (the :class:`~hbtscope.gui.bridge.EventBridge`'s, the live correlation's) and a
``threading.Event`` to stop it, while
holding the setup's hardware lock (:attr:`RunThread.hardware_lock`) so that the instrument
panel does not drive the instruments the run is using. How the run ended arrives as one of
three signals: ``ended`` (the :class:`~hbtscope.procedures.runner.RunOutcome`), ``refused``
(a :class:`~hbtscope.procedures.errors.ParameterError` or
:class:`~hbtscope.procedures.errors.OutputDirError`: nothing was moved or switched on, no run
file) or ``crashed`` (any other exception, as one line, with the run file if there is one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QThread, pyqtSignal

from hbtscope.procedures.errors import OutputDirError, ParameterError
from hbtscope.procedures.runner import run_procedure


class RunThread(QThread):
    """Run ``procedure`` on ``setup`` into ``out_dir`` in this thread."""

    ended = pyqtSignal(object)
    refused = pyqtSignal(str)
    crashed = pyqtSignal(str)

    def __init__(
        self,
        procedure: Any,
        setup: Any,
        out_dir: str | Path | None,
        displays: list[Callable[[Any], None]],
        hardware_lock: threading.Lock,
    ):
        super().__init__()
        self.procedure = procedure
        self.setup = setup
        self.out_dir = out_dir
        self.displays = list(displays)
        self.hardware_lock = hardware_lock
        self.stop_event = threading.Event()

    def request_stop(self) -> None:
        """Ask the run to stop at its next check (it ends ``aborted``)."""
        self.stop_event.set()

    def run(self) -> None:  # noqa: D102 - QThread's entry point
        try:
            with self.hardware_lock:
                outcome = run_procedure(
                    self.procedure,
                    self.setup,
                    self.out_dir,
                    displays=self.displays,
                    stop_event=self.stop_event,
                )
        except (ParameterError, OutputDirError) as exc:
            self.refused.emit(str(exc))
        except BaseException as exc:  # noqa: BLE001 - a worker must report, never die silently
            outcome = getattr(exc, "run_outcome", None)
            where = f" (run file: {outcome.path})" if outcome is not None else ""
            self.crashed.emit(f"{type(exc).__name__}: {exc}{where}")
        else:
            self.ended.emit(outcome)
