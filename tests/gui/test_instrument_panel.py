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


def test_laser_power_as_a_multiple_of_an_emitters_p_sat(qtbot, make_window, setup, data_dir):
    """ "k x P_sat": the emitter's saturation sweep (simulated, at the demo emitter) is in the
    book; 1 and 2 x P_sat set the laser to the set points the sweep's power law gives, more
    light for 2 x; beyond max_power_W or without a sweep it is refused in place."""
    from hbtscope.procedures.runner import run_procedure
    from hbtscope.procedures.saturation import SaturationSweep, power_at_p_sat
    from hbtscope.storage.emitter_book import EmitterBook

    window = make_window(count_rate_period_ms=60_000)
    panel = window.instruments
    settle(qtbot, panel)
    panel.laser_p_sat.setText("1")
    panel.set_laser_power_in_p_sat()
    settle(qtbot, panel)
    assert "has none yet" in panel.messages["laser"].text()

    sweep = SaturationSweep(
        emitter="E1",
        x_um=10.0,
        y_um=10.0,
        z_um=0.0,
        n_powers=6,
        repeats=1,
        acquisition_s=0.2,
        background_s=0.2,
    )
    with window.hardware_lock:
        outcome = run_procedure(sweep, setup, data_dir, figure=False)
    assert outcome.status == "finished"
    book = EmitterBook(data_dir)
    rep = setup.laser.rep_rate_Hz
    panel.laser_emitter.reload()
    assert panel.laser_emitter.currentText() == "E1"

    set_points = {}
    for k in (1.0, 2.0):
        panel.laser_p_sat.setText(str(k))
        panel.set_laser_power_in_p_sat()
        settle(qtbot, panel)
        assert panel.messages["laser"].text() == ""
        set_points[k] = setup.laser.power_W
        expected = power_at_p_sat(book, "E1", k, rep).set_point_W
        assert set_points[k] == expected
        assert panel.laser_p_sat_W.text() == f"= {expected:.4g} W set"
    assert set_points[2.0] > set_points[1.0] > 0

    too_many = 1.5 * setup.laser.max_power_W / set_points[1.0]
    panel.laser_p_sat.setText(f"{too_many**1.5:.6g}")  # beyond max for a power-law exponent <= 1.5
    panel.set_laser_power_in_p_sat()
    settle(qtbot, panel)
    assert "max_power_W" in panel.messages["laser"].text()
    assert setup.laser.power_W == set_points[2.0]  # refused before anything was written


def test_the_count_rate_trace_goes_on_from_the_runs_tags(qtbot, make_window, data_dir):
    """While a g2 holds the tagger, the trace is fed from the tags the run publishes: the
    counts the sent rates stand for add up to the run's own count of each detector (all but
    the last stretch, shorter than one interval: >= 80 % of a 2 s run's counts)."""
    from hbtscope.gui.live_count_rate import CountRates
    from hbtscope.storage import open_run
    from hbtscope.storage.reading import read_values

    window = make_window(count_rate_period_ms=60_000)
    panel = window.instruments
    settle(qtbot, panel)
    sent: list[CountRates] = []
    window.bridge.event.connect(lambda e: sent.append(e) if isinstance(e, CountRates) else None)
    n0 = len(panel.rates["spad_a"])
    dock = window.measurement_dock
    dock.live_count_rate.min_wall_s = 0.0  # the fast clock: every 0.25 s of tag time
    dock.select("g2")
    form = dock.form("g2")
    for name, value in {"duration_s": 2.0, "readout_s": 0.1, "x_um": 10.0, "y_um": 10.0}.items():
        form.set_value(name, value)
    qtbot.mouseClick(dock.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dock.thread is None, timeout=120_000)
    assert dock.last_outcome.status == "finished"
    with open_run(dock.last_outcome.path) as run:
        g2 = read_values(run["analysis/g2"])
    assert len(sent) >= 3
    assert len(panel.rates["spad_a"]) == n0 + len(sent)
    for name, key in (("spad_a", "counts_a"), ("spad_b", "counts_b")):
        counted = sum(c.rates[name] * c.span_s for c in sent)
        assert 0.8 * g2[key] <= counted <= g2[key] + 0.5, (name, counted, g2[key])
    assert "from the run's tags" in panel.rate_label.text()


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


def test_the_count_rate_trace_goes_on_from_a_scans_pixel_counts(qtbot, make_window):
    """A confocal scan publishes no tags: each block of lines it emits gives the detectors'
    rates; the counts they stand for (rate x lines x pixels x dwell) add up exactly to the
    scan's own counts of each detector."""
    from hbtscope.gui.live_count_rate import CountRates
    from hbtscope.procedures.confocal_scan import read_frames
    from hbtscope.storage import open_run

    window = make_window(count_rate_period_ms=60_000)
    panel = window.instruments
    settle(qtbot, panel)
    sent: list[CountRates] = []
    window.bridge.event.connect(lambda e: sent.append(e) if isinstance(e, CountRates) else None)
    dock = window.measurement_dock
    dock.live_count_rate.min_wall_s = 0.0  # every block of lines (the fast clock)
    dock.select("confocal_scan")
    form = dock.form("confocal_scan")
    scan = {
        "centre_x_um": 10.0,
        "centre_y_um": 10.0,
        "centre_z_um": 0.0,
        "width_um": 2.0,
        "height_um": 2.0,
        "pixels_x": 20,
        "pixels_y": 20,
        "dwell_s": 2e-3,
        "readout_s": 0.02,
    }
    for name, value in scan.items():
        form.set_value(name, value)
    qtbot.mouseClick(dock.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dock.thread is None, timeout=120_000)
    assert dock.last_outcome.status == "finished"
    with open_run(dock.last_outcome.path) as run:
        per_detector = read_frames(run).sum(axis=(0, 2, 3))
    assert len(sent) >= 2 and all(c.source == "pixel counts" for c in sent)
    for k, name in enumerate(("spad_a", "spad_b")):
        counted = sum(c.rates[name] * c.span_s for c in sent)
        assert counted == pytest.approx(per_detector[k], rel=1e-9), name
    # the scan is centred on the demo emitter (a spot of sigma ~0.1 um): the lines through it
    # count several times more than those 1 um away (background only)
    rates = [c.rates["spad_a"] + c.rates["spad_b"] for c in sent]
    assert max(rates) > 3 * min(rates), rates
    assert "from the run's pixel counts" in panel.rate_label.text()
