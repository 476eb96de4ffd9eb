"""``hbtscope gui``: open the setup (default: the simulated microscope) and the main window.

Ctrl+C, SIGTERM and SIGHUP close the window as its close button does: a running measurement is
stopped (it ends ``aborted``), then the setup is closed with every instrument in its safe
state; the exit code is then 130, as for an interrupted ``hbtscope run``.

An exception that escapes a Qt slot (a bug) would make PyQt5 abort the process, mid-run, with
the instruments as they are: while the window is open it is logged with its traceback
(logger ``hbtscope.gui``) and named in one line in the window's status bar instead, and the
window goes on (:func:`keep_running_on_slot_errors`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PyQt5.QtCore import QSettings, QTimer
from PyQt5.QtWidgets import QApplication

from hbtscope.gui.gc_guard import collect_in_gui_thread
from hbtscope.gui.main_window import APPLICATION, ORGANISATION, MainWindow
from hbtscope.setup import open_setup

EXIT_INTERRUPTED = 130
SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


@contextlib.contextmanager
def close_on_signals(window: MainWindow, received: list[str]) -> Iterator[None]:
    """While inside: a termination signal closes ``window`` (cleanly) and is noted in
    ``received``. Qt's event loop runs in C; a short timer lets Python see the signal."""
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        received.append(signal.Signals(signum).name)
        QTimer.singleShot(0, window.close)

    if threading.current_thread() is threading.main_thread():
        for name in SIGNALS:
            if hasattr(signal, name):
                signum = getattr(signal, name)
                previous[signum] = signal.signal(signum, handler)
    wake = QTimer()
    wake.setInterval(200)
    wake.timeout.connect(lambda: None)
    wake.start()
    try:
        yield
    finally:
        wake.stop()
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def keep_running_on_slot_errors(window: MainWindow) -> Iterator[None]:
    """While inside: an exception escaping a slot is logged and shown in the status bar (PyQt5
    would otherwise abort the whole process, run included)."""
    log = logging.getLogger("hbtscope.gui")
    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        if issubclass(kind, KeyboardInterrupt):
            previous(kind, exc, tb)
            return
        log.error("unexpected error in the dashboard", exc_info=(kind, exc, tb))
        text = " ".join(str(exc).split()) or kind.__name__
        with contextlib.suppress(RuntimeError):  # the window may be gone
            window.statusBar().showMessage(f"internal error ({kind.__name__}): {text}")

    sys.excepthook = hook
    try:
        yield
    finally:
        sys.excepthook = previous


def run_gui(
    setup_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    settings: QSettings | None = None,
) -> int:
    """Show the dashboard until the window closes; the instruments end in their safe state.

    A bad setup file raises :class:`~hbtscope.config_schema.SetupFileError` before any window
    opens (the command line prints it in one line).
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    received: list[str] = []
    with open_setup(setup_path, data_dir=out_dir) as setup, collect_in_gui_thread():
        window = MainWindow(setup, out_dir=out_dir, settings=settings)
        with close_on_signals(window, received), keep_running_on_slot_errors(window):
            window.show()
            code = app.exec_()
    if received:
        print(f"hbtscope: {received[0]} received; instruments left in safe state", file=sys.stderr)
        return EXIT_INTERRUPTED
    return int(code)
