"""Instrument calls off the GUI thread: one worker thread serialises the panel's device calls.

The instrument panel never calls a driver in the GUI thread (a serial port or an SDK may block):
it hands a function to :meth:`DeviceWorker.submit` with a callback, the function runs in the
worker's ``QThread``, and the callback receives ``(result, error)`` back in the GUI thread
(``error`` is one line: the driver's refusal or the device's error, never a traceback). While
a measurement holds the setup's hardware lock the call is refused, not queued: the instruments
are the run's until it ends.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QObject, QThread, pyqtSignal, pyqtSlot

BUSY = "a measurement is running: the instruments are its own until it ends"


class _Executor(QObject):
    """Lives in the worker thread; runs each requested function under the hardware lock."""

    reply = pyqtSignal(int, object, str)

    def __init__(self, hardware_lock: threading.Lock):
        super().__init__()
        self.hardware_lock = hardware_lock

    @pyqtSlot(int, object)
    def execute(self, token: int, fn: Callable[[], Any]) -> None:
        if not self.hardware_lock.acquire(blocking=False):
            self.reply.emit(token, None, BUSY)
            return
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - shown in place, one line
            text = " ".join(str(exc).split()) or type(exc).__name__
            self.reply.emit(token, None, text)
        else:
            self.reply.emit(token, result, "")
        finally:
            self.hardware_lock.release()


class DeviceWorker(QObject):
    """Run instrument calls in one worker thread; results come back as callbacks."""

    _request = pyqtSignal(int, object)

    def __init__(self, hardware_lock: threading.Lock, parent: QObject | None = None):
        super().__init__(parent)
        self._thread = QThread()
        self._thread.setObjectName("hbtscope-devices")
        self._executor = _Executor(hardware_lock)
        self._executor.moveToThread(self._thread)
        self._request.connect(self._executor.execute)
        self._executor.reply.connect(self._reply)
        self._callbacks: dict[int, Callable[[Any, str], None]] = {}
        self._tokens = itertools.count()
        self._thread.start()

    def submit(self, fn: Callable[[], Any], callback: Callable[[Any, str], None]) -> None:
        """Run ``fn()`` in the worker; then ``callback(result, error)`` in the GUI thread."""
        token = next(self._tokens)
        self._callbacks[token] = callback
        self._request.emit(token, fn)

    @property
    def pending(self) -> int:
        """Calls submitted whose callback has not run yet."""
        return len(self._callbacks)

    def _reply(self, token: int, result: Any, error: str) -> None:
        callback = self._callbacks.pop(token, None)
        if callback is not None:
            callback(result, error)

    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Let the calls in flight finish, then end the worker thread."""
        self._thread.quit()
        self._thread.wait(timeout_ms)
