"""Fixtures of the dashboard tests: offscreen Qt, a temporary settings file, the simulated
microscope with an ideal stage (the demo emitter at (10, 10) µm stays in focus) and the window.

Screenshots of the views go to ``$HBTSCOPE_GUI_SCREENSHOTS`` if set, else the test's tmp_path.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

pytest.importorskip("pytestqt")

from PyQt5.QtCore import QSettings  # noqa: E402

from hbtscope.setup import open_setup  # noqa: E402


@pytest.fixture(autouse=True)
def _gc_in_gui_thread(qapp):
    """As in ``hbtscope gui``: cycles are collected in the GUI thread only (a collection in a
    run's or the run browser's thread freeing a closed view's Qt objects crashes Qt)."""
    from hbtscope.gui.gc_guard import collect_in_gui_thread

    with collect_in_gui_thread():
        yield


@pytest.fixture(autouse=True)
def _no_user_settings(tmp_path):
    """Every QSettings of a test, also the default one of ``hbtscope gui``, lives in tmp_path."""
    for fmt in (QSettings.NativeFormat, QSettings.IniFormat):
        QSettings.setPath(fmt, QSettings.UserScope, str(tmp_path / "user-settings"))
        QSettings.setPath(fmt, QSettings.SystemScope, str(tmp_path / "system-settings"))


@pytest.fixture()
def settings(tmp_path) -> QSettings:
    """Settings on a temporary INI file: the user's own settings are never touched."""
    return QSettings(str(tmp_path / "gui-settings.ini"), QSettings.IniFormat)


@pytest.fixture()
def data_dir(tmp_path) -> Path:
    return tmp_path / "runs"


@pytest.fixture()
def setup(ideal_stage_setup_path, data_dir):
    s = open_setup(ideal_stage_setup_path, data_dir=data_dir)
    yield s
    s.close()


@pytest.fixture()
def screenshot_dir(tmp_path) -> Path:
    d = Path(os.environ.get("HBTSCOPE_GUI_SCREENSHOTS", tmp_path / "screenshots"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def _close(qtbot, window) -> None:
    """Close ``window`` (stopping a run first) and wait until it has closed."""
    if window.isVisible():
        window.close()
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=60_000)


@pytest.fixture()
def close_window(qtbot):
    """``close_window(window)``: close it (a run stops first) and wait until it is closed."""
    return lambda window: _close(qtbot, window)


@pytest.fixture()
def make_window(qtbot, setup, data_dir, settings):
    """``make_window()``: a shown MainWindow on the setup; closed at the end of the test."""
    from hbtscope.gui.main_window import MainWindow

    made = []

    def make(**kwargs):
        window = MainWindow(setup, out_dir=data_dir, settings=settings, **kwargs)
        window.show()
        qtbot.waitExposed(window)
        made.append(window)
        return window

    yield make
    for window in made:
        _close(qtbot, window)
