"""No device call in the GUI thread: every read and write of the laser, stage and LED, and
every tagger measurement, made while the dashboard is used (panel controls, count-rate trace, a
g2 run from the dock), happens in a worker thread."""

from __future__ import annotations

import threading

import numpy as np
from PyQt5.QtCore import Qt

DEVICE_METHODS = {
    "laser": ("_read_power_W", "_write_power_W", "_read_emission", "_write_emission"),
    "stage": ("_read_position_um", "_write_position_um"),
    "led": ("_read_on", "_write_on"),
}


def _spy_on(setup, calls: list[tuple[str, bool]]) -> None:
    """Record, for each device call, whether it ran in the GUI (main) thread."""
    gui = threading.main_thread()

    def wrap(label: str, fn):
        def spy(*args, **kwargs):
            calls.append((label, threading.current_thread() is gui))
            return fn(*args, **kwargs)

        return spy

    for role, methods in DEVICE_METHODS.items():
        inst = setup.instruments[role]
        for name in methods:
            setattr(inst, name, wrap(f"{role}.{name}", getattr(inst, name)))
    api = setup.tagger.api
    for cls_name in ("Countrate", "TimeTagStream"):
        original = getattr(api, cls_name)

        class Spy(original):  # type: ignore[misc, valid-type]
            def __init__(self, *args, _label=f"tagger.{cls_name}", **kwargs):
                calls.append((_label, threading.current_thread() is gui))
                super().__init__(*args, **kwargs)

        setattr(api, cls_name, Spy)


def test_no_device_call_runs_in_the_gui_thread(qtbot, make_window, setup, monkeypatch):
    api = setup.tagger.api
    for cls_name in ("Countrate", "TimeTagStream"):  # restored after the test
        monkeypatch.setattr(api, cls_name, getattr(api, cls_name))
    calls: list[tuple[str, bool]] = []
    _spy_on(setup, calls)
    window = make_window(count_rate_period_ms=30)
    panel = window.instruments
    qtbot.mouseClick(panel.laser_button, Qt.LeftButton)
    panel.laser_power.setText("1e-8")
    panel.set_laser_power()
    for axis, value in zip("xyz", ("10", "10", "0"), strict=True):
        panel.stage_fields[axis].setText(value)
    panel.go_to()
    qtbot.mouseClick(panel.led_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: len(panel.rates["spad_a"]) >= 3, timeout=20_000)
    dock = window.measurement_dock
    dock.select("g2")
    for name, value in {"duration_s": 0.2, "x_um": 10.0, "y_um": 10.0}.items():
        dock.form("g2").set_value(name, value)
    qtbot.mouseClick(dock.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dock.thread is None, timeout=90_000)
    qtbot.waitUntil(lambda: panel.worker.pending == 0, timeout=10_000)
    assert dock.last_outcome.status == "finished"
    seen = {label for label, _ in calls}
    assert {"laser._write_emission", "laser._write_power_W", "stage._write_position_um"} <= seen
    assert {"led._write_on", "tagger.Countrate", "tagger.TimeTagStream"} <= seen
    in_gui = sorted({label for label, gui in calls if gui})
    assert in_gui == [], in_gui
    np.testing.assert_allclose(setup.stage.position_um, (10.0, 10.0, 0.0))
