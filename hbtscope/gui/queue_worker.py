"""A queue in a worker ``QThread``: the shared :class:`~hbtscope.queue.engine.QueueEngine`.

:class:`QueueThread` holds the window's hardware lock for the whole queue (the instrument panel
and the measurement dock cannot drive the instruments meanwhile), checks the queue against the
setup (:func:`~hbtscope.queue.check.check_queue`, before anything moves) and runs the engine
with the window's displays (the live view shows each run as the queue runs it). What it does
arrives in the GUI thread as signals: ``record`` (every journal line as it is written: the
journal is shown live without reading the file again), ``status`` (the engine's
``status()``: current item, items done, paused, time left), and how it ended: ``ended``
(the :class:`~hbtscope.queue.engine.QueueOutcome`), ``refused`` (the queue cannot run:
nothing moved) or ``crashed`` (one line). The buttons act through the engine's
:class:`~hbtscope.queue.engine.QueueControl`, which is thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QThread, pyqtSignal

from hbtscope.queue.engine import QueueControl, QueueEngine
from hbtscope.queue.journal import Journal
from hbtscope.queue.spec import QueueFileError, QueueSpec


class _SignallingJournal(Journal):
    """The queue's journal, each record also handed to ``send`` once it is on disk."""

    def __init__(self, queue_dir: Path, send: Callable[[dict[str, Any]], None]):
        super().__init__(queue_dir)
        self.send = send

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        record = super().append(event, **fields)
        self.send(dict(record))
        return record


class QueueThread(QThread):
    """Run ``spec`` (or resume it) into ``queue_dir`` on ``setup`` in this thread."""

    record = pyqtSignal(object)
    status = pyqtSignal(object)
    ended = pyqtSignal(object)
    refused = pyqtSignal(str)
    crashed = pyqtSignal(str)

    def __init__(
        self,
        spec: QueueSpec,
        text: str,
        queue_path: str,
        setup: Any,
        queue_dir: str | Path,
        *,
        resume: bool,
        displays: list[Callable[[Any], None]],
        hardware_lock: threading.Lock,
    ):
        super().__init__()
        self.spec, self.text, self.queue_path = spec, text, queue_path
        self.setup = setup
        self.queue_dir = Path(queue_dir)
        self.resume = resume
        self.displays = list(displays)
        self.hardware_lock = hardware_lock
        self.control = QueueControl()
        self.outcome: Any = None

    def run(self) -> None:  # noqa: D102 - QThread's entry point
        from hbtscope.queue.check import check_queue

        try:
            with self.hardware_lock:
                check_queue(self.spec, self.text, self.queue_path, self.setup)
                engine = QueueEngine(
                    self.spec,
                    self.setup,
                    self.queue_dir,
                    queue_text=self.text,
                    queue_path=self.queue_path,
                    resume=self.resume,
                    control=self.control,
                    displays=self.displays,
                    on_status=self.status.emit,
                )
                engine.journal = _SignallingJournal(self.queue_dir, self.record.emit)
                for old in engine.journal.records():  # a resumed queue: what it did before
                    self.record.emit(old)
                self.outcome = engine.run()
        except QueueFileError as exc:
            self.refused.emit(str(exc))
        except BaseException as exc:  # noqa: BLE001 - a worker must report, never die silently
            self.crashed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.ended.emit(self.outcome)
