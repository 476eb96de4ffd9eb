"""Events of a run, from the worker thread to the GUI thread as a Qt signal.

:func:`~hbtscope.procedures.runner.run_procedure` calls its ``displays`` in the thread that runs
the procedure. :class:`EventBridge` lives in the GUI thread; its :meth:`display` is such a
display: it emits :attr:`EventBridge.event`, and Qt queues the signal to the GUI thread's event
loop. Raw time tags are not forwarded (the run file keeps them; no view draws them), so the GUI
thread never copies the photon stream.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtCore import QObject, pyqtSignal

from hbtscope import events as ev

#: events no view draws: kept in the run file, not sent across threads
NOT_FORWARDED: tuple[type, ...] = (ev.TagsRecorded,)


class EventBridge(QObject):
    """``display(event)`` (any thread) -> ``event`` signal (delivered in the GUI thread)."""

    event = pyqtSignal(object)

    def display(self, event: Any) -> None:
        """A run display: forward ``event`` unless it is raw data no view draws."""
        if not isinstance(event, NOT_FORWARDED):
            self.event.emit(event)
