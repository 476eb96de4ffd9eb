"""The run files of a data directory, listed off the GUI thread.

A data directory of a year holds tens of thousands of run files: walking it (``rglob``) and
reading every file's modification time takes long enough to freeze the window if done in the
GUI thread. :class:`FileLister` does it in a worker thread and hands the list (newest first)
back through a Qt signal, delivered in the GUI thread. One listing at a time: a request made
while one runs is served by one more listing when it ends (the directory may have changed).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from PyQt5.QtCore import QObject, pyqtSignal


def list_run_files(directory: Path, pattern: str = "*.h5") -> list[Path]:
    """The files under ``directory`` matching ``pattern``, newest first; a file removed while
    listing is left out, a missing directory gives an empty list."""
    if not directory.is_dir():
        return []
    found: list[tuple[float, Path]] = []
    for path in directory.rglob(pattern):
        try:
            found.append((path.stat().st_mtime, path))
        except OSError:  # removed or unreadable meanwhile
            continue
    found.sort(key=lambda item: item[0], reverse=True)
    return [path for _, path in found]


class FileLister(QObject):
    """``request()`` lists ``directory`` in a worker thread; ``listed(list[Path])`` follows."""

    listed = pyqtSignal(object)

    def __init__(self, directory: str | os.PathLike, pattern: str = "*.h5", parent=None):
        super().__init__(parent)
        self.directory = Path(directory)
        self.pattern = pattern
        self._thread: threading.Thread | None = None
        self._again = False
        self._lock = threading.Lock()

    def request(self) -> None:
        """List the directory (again) in the background."""
        with self._lock:
            if self._thread is not None:
                self._again = True
                return
            self._thread = threading.Thread(target=self._work, name="hbtscope-lister", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        try:
            while True:
                try:
                    files = list_run_files(self.directory, self.pattern)
                except OSError:  # e.g. a network directory gone away: an empty list for now
                    files = []
                try:
                    self.listed.emit(files)  # queued to the GUI thread
                except RuntimeError:  # the view was deleted meanwhile
                    return
                with self._lock:
                    if not self._again:
                        return
                    self._again = False
        finally:
            with self._lock:  # whatever happened, the next request lists again
                self._thread = None
                self._again = False

    def wait(self, timeout_s: float = 5.0) -> None:
        """Let a listing in flight end (the window closes after it)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
