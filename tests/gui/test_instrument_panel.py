"""The instrument panel (pytest-qt, offscreen): every control drives the setup's instruments
through the device worker, refusals of the drivers' limits are shown in place, the count-rate
trace follows the light, and a running measurement keeps the instruments to itself."""

from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from hbtscope.gui.device_worker import BUSY


def settle(qtbot, panel) -> None:
    """Wait until every device call submitted so far has come back."""
    qtbot.waitUntil(lambda: panel.worker.pending == 0, timeout=10_000)


def test_laser_on_off_and_power_within_the_drivers_limit(qtbot, make_window, setup):
    panel = make_window(count_rate_period_ms=60_000).instruments
    settle(qtbot, panel)
    qtbot.mouseClick(panel.laser_button, Qt.LeftButton)
    settle(qtbot, panel)
    assert setup.laser.emission_on and panel.laser_button.isChecked()
    assert panel.laser_state.text().startswith("on")

    panel.laser_power.setText("2e-8")
    qtbot.keyClick(panel.laser_power, Qt.Key_Return)
    settle(qtbot, panel)
    assert setup.laser.power_W == 2e-8
    assert panel.messages["laser"].text() == ""

    too_much = 10 * setup.laser.max_power_W
    panel.laser_power.setText(repr(too_much))
    panel.set_laser_power()
    settle(qtbot, panel)
    message = panel.messages["laser"].text()
    assert "outside the allowed range" in message and str(setup.laser.max_power_W) in message
    assert setup.laser.power_W == 2e-8  # refused before anything was written

    panel.laser_power.setText("lots")
    panel.set_laser_power()
    assert "not a number" in panel.messages["laser"].text()

    qtbot.mouseClick(panel.laser_button, Qt.LeftButton)
    settle(qtbot, panel)
    assert not setup.laser.emission_on and not panel.laser_button.isChecked()


def test_stage_go_to_and_a_target_outside_the_travel(qtbot, make_window, setup, screenshot_dir):
    window = make_window(count_rate_period_ms=60_000)
    panel = window.instruments
    settle(qtbot, panel)
    for axis, value in zip("xyz", ("12.5", "7.25", "0.5"), strict=True):
        panel.stage_fields[axis].setText(value)
    panel.go_to()
    settle(qtbot, panel)
    np.testing.assert_allclose(setup.stage.position_um, (12.5, 7.25, 0.5))
    assert "x = 12.500" in panel.stage_state.text()

    _, hi = setup.stage.travel_um["x"]
    panel.stage_fields["x"].setText(str(hi + 100))
    panel.go_to()
    settle(qtbot, panel)
    assert "outside the travel" in panel.messages["stage"].text()
    np.testing.assert_allclose(setup.stage.position_um, (12.5, 7.25, 0.5))
    assert window.grab().save(str(screenshot_dir / "instrument_panel_refusal.png"))


def test_led_on_and_off(qtbot, make_window, setup):
    panel = make_window(count_rate_period_ms=60_000).instruments
    settle(qtbot, panel)
    qtbot.mouseClick(panel.led_button, Qt.LeftButton)
    settle(qtbot, panel)
    assert setup.led.on
    qtbot.mouseClick(panel.led_button, Qt.LeftButton)
    settle(qtbot, panel)
    assert not setup.led.on


def test_the_count_rate_trace_follows_the_light(qtbot, make_window, setup):
    panel = make_window(count_rate_period_ms=20).instruments
    assert set(panel.rates) == {"spad_a", "spad_b"}  # detectors only: no sync, no marker
    qtbot.waitUntil(lambda: len(panel.rates["spad_a"]) >= 3, timeout=20_000)
    panel.timer.stop()
    settle(qtbot, panel)
    dark = np.mean(panel.rates["spad_a"]) + np.mean(panel.rates["spad_b"])

    def light_on() -> None:
        setup.stage.move_to(10.0, 10.0, 0.0)  # the demo emitter
        setup.laser.power_W = 24e-9
        setup.laser.enable()

    panel.worker.submit(light_on, lambda result, error: None)
    settle(qtbot, panel)
    n = len(panel.rates["spad_a"])
    panel.timer.start()
    qtbot.waitUntil(lambda: len(panel.rates["spad_a"]) >= n + 3, timeout=20_000)
    panel.timer.stop()
    settle(qtbot, panel)
    lit = np.mean(list(panel.rates["spad_a"])[n:]) + np.mean(list(panel.rates["spad_b"])[n:])
    assert lit > 5 * dark, (lit, dark)
    x, y = panel.curves["spad_a"].getData()
    assert len(x) == len(y) == len(panel.rates["spad_a"])
    assert np.all(np.diff(x) > 0)  # wall seconds since the panel opened
    assert "kcounts/s" in panel.rate_label.text()


def test_the_instruments_belong_to_a_running_measurement(qtbot, make_window, setup):
    window = make_window(count_rate_period_ms=60_000)
    panel = window.instruments
    settle(qtbot, panel)
    with window.hardware_lock:  # what a run holds from start to end
        panel.set_laser_emission(True)
        settle(qtbot, panel)
    assert panel.messages["laser"].text() == BUSY
    assert not setup.laser.emission_on


def test_repetition_rate_within_the_lasers_range(qtbot, make_window, setup):
    panel = make_window(count_rate_period_ms=60_000).instruments
    settle(qtbot, panel)
    lo, hi = setup.laser.rep_rate_range_Hz
    target = lo + 0.5 * (hi - lo)
    panel.laser_rate.setText(repr(target))
    qtbot.keyClick(panel.laser_rate, Qt.Key_Return)
    settle(qtbot, panel)
    assert setup.laser.rep_rate_Hz == target
    assert f"{target / 1e6:.4g} MHz" in panel.laser_state.text()
    panel.laser_rate.setText(repr(2 * hi))
    panel.set_laser_rep_rate()
    settle(qtbot, panel)
    assert "outside" in panel.messages["laser"].text() and "Hz" in panel.messages["laser"].text()
    assert setup.laser.rep_rate_Hz == target


def test_stage_jog_by_the_step_and_not_past_the_travel(qtbot, make_window, setup):
    panel = make_window(count_rate_period_ms=60_000).instruments
    settle(qtbot, panel)
    panel.worker.submit(lambda: setup.stage.move_to(40.0, 40.0, 0.0), lambda r, e: None)
    settle(qtbot, panel)
    panel.jog_step.setText("0.25")
    qtbot.mouseClick(panel.jog_buttons["+x"], Qt.LeftButton)
    settle(qtbot, panel)
    qtbot.mouseClick(panel.jog_buttons["−y"], Qt.LeftButton)
    settle(qtbot, panel)
    np.testing.assert_allclose(setup.stage.position_um, (40.25, 39.75, 0.0))
    _, z_hi = setup.stage.travel_um["z"]
    panel.jog_step.setText(str(2 * z_hi + 1))
    qtbot.mouseClick(panel.jog_buttons["+z"], Qt.LeftButton)
    settle(qtbot, panel)
    assert "outside the travel" in panel.messages["stage"].text()
    np.testing.assert_allclose(setup.stage.position_um, (40.25, 39.75, 0.0))
    panel.jog_step.setText("a bit")
    panel.jog("x", +1)
    assert "not a number" in panel.messages["stage"].text()


def test_flip_mirror_positions(qtbot, make_window, setup):
    panel = make_window(count_rate_period_ms=60_000).instruments
    settle(qtbot, panel)
    positions = list(setup.flip_mirror.positions)
    assert [panel.flip_mirror.itemText(i) for i in range(panel.flip_mirror.count())] == positions
    other = next(p for p in positions if p != setup.flip_mirror.position)
    panel.set_flip_mirror(other)
    settle(qtbot, panel)
    assert setup.flip_mirror.position == other == panel.flip_mirror.currentText()


def test_power_as_a_multiple_of_an_emitters_p_sat(
    qtbot, make_window, setup, data_dir, screenshot_dir
):
    from hbtscope.storage.emitter_book import EmitterBook

    book = EmitterBook(data_dir)
    rep = float(setup.laser.rep_rate_Hz)
    # a sweep with the laser power law P_meas = c P_set^gamma (gamma = 1.25): the set point of
    # f x P_sat is P_sat_set f^(1/gamma)
    book.remember(
        "qd7",
        "saturation",
        {"P_sat_W": 2e-8, "P_sat_set_W": 1e-8, "laser_power_exponent": 1.25, "rep_rate_Hz": rep},
        {"P_sat_W": 1e-9},
    )
    book.remember("qd8", "g2", {"g2_0": 0.1})  # no saturation result
    panel = make_window(count_rate_period_ms=60_000).instruments
    settle(qtbot, panel)
    choice = panel.laser_emitter
    assert [choice.itemText(i) for i in range(choice.count())] == ["qd7", "qd8"]

    choice.setCurrentText("qd7")
    panel.laser_p_sat.setText("2")
    qtbot.keyClick(panel.laser_p_sat, Qt.Key_Return)
    settle(qtbot, panel)
    expected = 1e-8 * 2 ** (1 / 1.25)
    assert setup.laser.power_W == pytest.approx(expected, rel=1e-12)
    assert panel.messages["laser"].text() == ""
    assert panel.laser_p_sat_W.text() == f"= {expected:.4g} W set"
    panel.widget().grab().save(str(screenshot_dir / "instruments-p-sat.png"))

    # beyond max_power_W: refused with the W it would be, the power unchanged
    factor = 2 * (setup.laser.max_power_W / 1e-8) ** 1.25
    panel.laser_p_sat.setText(repr(factor))
    panel.set_laser_power_in_p_sat()
    settle(qtbot, panel)
    assert "max_power_W" in panel.messages["laser"].text()
    assert setup.laser.power_W == pytest.approx(expected, rel=1e-12)
    assert panel.laser_p_sat_W.text() == ""

    # an emitter without a saturation result: refused, named
    choice.setCurrentText("qd8")
    panel.laser_p_sat.setText("1")
    panel.set_laser_power_in_p_sat()
    settle(qtbot, panel)
    message = panel.messages["laser"].text()
    assert "qd8" in message and "no saturation result" in message
    assert setup.laser.power_W == pytest.approx(expected, rel=1e-12)

    panel.laser_p_sat.setText("half")
    panel.set_laser_power_in_p_sat()
    assert "not a number" in panel.messages["laser"].text()
