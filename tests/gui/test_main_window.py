"""The dashboard's window (pytest-qt, offscreen): docks, generated forms, a g2 run from the
dock with its live result, refusals in place, layout and settings restored, closing mid-run."""

from __future__ import annotations

import math
import re
import threading

import numpy as np
from PyQt5.QtCore import QSettings, Qt
from PyQt5.QtWidgets import QCheckBox, QComboBox, QDockWidget, QLineEdit

from hbtscope import events as ev
from hbtscope.gui.parameter_form import declared_parameters
from hbtscope.procedures.g2 import G2Measurement
from hbtscope.procedures.registry import runnable
from hbtscope.storage import open_run, read_values, run_status

RUN_TIMEOUT_MS = 90_000  # the first run of a process compiles the numba kernels


def same_values(a: dict, b: dict) -> bool:
    """Equal parameter values, NaN equal to NaN ("stay where the stage is")."""

    def same(x, y):
        if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
            return True
        return x == y

    return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)


def run_files(data_dir):
    return sorted(data_dir.rglob("*.h5")) if data_dir.exists() else []


def start_g2(qtbot, window, **values):
    dock = window.measurement_dock
    dock.select("g2")
    form = dock.form("g2")
    for name, value in values.items():
        form.set_value(name, value)
    qtbot.mouseClick(dock.start_button, Qt.LeftButton)
    return dock, form


def test_window_opens_with_its_docks(make_window, screenshot_dir):
    window = make_window()
    docks = {d.objectName(): d for d in window.findChildren(QDockWidget)}
    assert {"dock-measurement", "dock-live", "dock-instruments", "dock-count-rate"} <= set(docks)
    assert window.measurement_dock.current == "g2"  # the default choice
    assert all(d.isVisible() for d in docks.values())
    chooser = window.measurement_dock.chooser
    listed = [chooser.itemText(i) for i in range(chooser.count())]
    assert listed == list(runnable())
    assert "sim" in window.windowTitle().lower() or str(window.setup.path) in window.windowTitle()
    assert window.grab().save(str(screenshot_dir / "main_window.png"))


def test_the_g2_dock_is_generated_from_its_parameters(make_window):
    window = make_window()
    window.measurement_dock.select("g2")
    form = window.measurement_dock.form("g2")
    declared = declared_parameters(G2Measurement)
    assert list(form.fields) == list(declared)
    assert isinstance(form.fields["record_tags"], QCheckBox)
    combo = form.fields["excitation"]
    assert isinstance(combo, QComboBox)
    assert [combo.itemText(i) for i in range(combo.count())] == ["pulsed", "cw"]
    assert isinstance(form.fields["duration_s"], QLineEdit)
    assert form.fields["duration_s"].text() == str(G2Measurement.duration_s.default)
    assert "[0.01, 86400.0] s" in form.fields["duration_s"].placeholderText()
    assert same_values(form.values(), G2Measurement().parameter_values())


def test_every_runnable_measurement_gets_a_form_without_gui_code(make_window):
    window = make_window()
    dock = window.measurement_dock
    for name, m in runnable().items():
        dock.select(name)
        form = dock.form(name)
        assert dock.stack.currentWidget() is form
        assert list(form.fields) == list(declared_parameters(m.procedure))
        assert same_values(form.values(), m.procedure().parameter_values()), name


def test_a_short_g2_run_from_the_dock_shows_g2_0_with_its_error(
    qtbot, make_window, data_dir, screenshot_dir
):
    window = make_window()
    gui_thread = threading.get_ident()
    seen: list[tuple[type, bool]] = []

    def record(event):
        seen.append((type(event), threading.get_ident() == gui_thread))

    window.bridge.event.connect(record)
    dock, _ = start_g2(qtbot, window, duration_s=0.2, x_um=10.0, y_um=10.0)
    assert dock.running
    assert not window.instruments.controls.isEnabled()
    qtbot.waitUntil(lambda: dock.thread is None, timeout=RUN_TIMEOUT_MS)

    outcome = dock.last_outcome
    assert outcome.status == "finished"
    assert run_files(data_dir) == [outcome.path]
    with open_run(outcome.path) as run:
        analysis = read_values(run["analysis/g2"])
        coincidences = run["data/g2/coincidences"][()]
        lag_ps = run["data/g2/lag_ps"][()]
    headline = window.live.headline.text()
    match = re.fullmatch(r"g2\(0\) = (-?[\d.]+|nan) ± ([\d.]+)", headline)
    assert match, headline
    assert math.isclose(float(match.group(1)), analysis["g2_0"], rel_tol=0.05, abs_tol=0.01)
    assert math.isclose(float(match.group(2)), analysis["g2_0_err"], rel_tol=0.05, abs_tol=0.01)
    # the live histogram is the run's histogram, against the delay in ns
    x, y = window.live.curve.getData()
    np.testing.assert_array_equal(y, coincidences)
    np.testing.assert_allclose(x, lag_ps / 1000.0)
    assert window.live.progress.value() == 1000
    # events arrived in the GUI thread, without the raw tags, in the run's order
    kinds = [k for k, _ in seen]
    assert all(in_gui for _, in_gui in seen)
    assert ev.TagsRecorded not in kinds
    assert kinds[0] is ev.RunStarted and kinds[-1] is ev.RunEnded
    assert ev.AnalysisResult in kinds and ev.Progress in kinds
    assert window.instruments.controls.isEnabled()
    assert window.grab().save(str(screenshot_dir / "g2_run.png"))
    # the measurement's own figure of the run, saved beside its file, in the figure dock
    figure = window.figure_view
    assert outcome.figure is not None and figure.path == outcome.figure
    assert figure.path.with_suffix(".h5") == outcome.path
    assert not figure.picture.pixmap().isNull()
    assert outcome.path.name in figure.caption.text() and "finished" in figure.caption.text()
    figure.raise_()
    assert window.grab().save(str(screenshot_dir / "g2_run_figure.png"))


def test_a_field_its_parameter_refuses_is_shown_in_place_and_nothing_runs(
    qtbot, make_window, data_dir
):
    window = make_window()
    dock, form = start_g2(qtbot, window, duration_s="abc")
    assert not dock.running
    assert "duration_s" in form.refusal.text() and "[0.01, 86400.0] s" in form.refusal.text()
    assert form.fields["duration_s"].styleSheet()
    assert run_files(data_dir) == []
    # fixed: the mark goes away at the next start
    form.set_value("duration_s", 0.2)
    form.clear_refusal()
    assert form.refusal.text() == ""


def test_a_value_the_setup_refuses_comes_back_in_place_before_any_file(
    qtbot, make_window, data_dir, setup, screenshot_dir
):
    window = make_window()
    dock, form = start_g2(qtbot, window, laser_power_W=5e-3, duration_s=0.2)
    qtbot.waitUntil(lambda: dock.thread is None, timeout=RUN_TIMEOUT_MS)
    assert "max_power_W" in form.refusal.text()
    assert "laser_power_W" in form.refusal.text()
    assert form.fields["laser_power_W"].styleSheet()
    assert "refused" in dock.status.text() and "max_power_W" in dock.status.text()
    assert run_files(data_dir) == []
    assert not setup.laser.emission_on
    assert window.grab().save(str(screenshot_dir / "refused_parameter.png"))


def test_closing_the_window_mid_run_aborts_it_and_leaves_the_laser_off(
    qtbot, make_window, data_dir, setup, close_window
):
    window = make_window()
    laser_on_during_run: list[bool] = []

    def during(event):
        if isinstance(event, ev.Progress) and not laser_on_during_run:
            laser_on_during_run.append(bool(setup.laser.emission_on))

    window.bridge.event.connect(during)
    dock, _ = start_g2(qtbot, window, duration_s=3600.0, x_um=10.0, y_um=10.0)
    qtbot.waitUntil(lambda: window.live.progress.value() > 0, timeout=RUN_TIMEOUT_MS)
    window.close()
    assert window.isVisible()  # the GUI thread does not wait: it closes when the run ended
    close_window(window)
    (path,) = run_files(data_dir)
    assert run_status(path) == "aborted"
    assert not setup.laser.emission_on
    assert laser_on_during_run == [True]


def test_layout_and_last_settings_are_restored(qtbot, setup, data_dir, tmp_path, close_window):
    from hbtscope.gui.main_window import MainWindow

    path = str(tmp_path / "restore.ini")
    first = MainWindow(setup, out_dir=data_dir, settings=QSettings(path, QSettings.IniFormat))
    first.show()
    qtbot.waitExposed(first)
    first.measurement_dock.select("saturation")
    first.measurement_dock.select("g2")
    first.measurement_dock.form("g2").set_value("duration_s", 0.5)
    first.instruments.setFloating(True)
    first.resize(first.width() - 150, first.height() - 50)
    saved_size = (first.width(), first.height())
    close_window(first)

    second = MainWindow(setup, out_dir=data_dir, settings=QSettings(path, QSettings.IniFormat))
    second.show()
    qtbot.waitExposed(second)
    try:
        assert second.measurement_dock.current == "g2"
        assert second.measurement_dock.form("g2").fields["duration_s"].text() == "0.5"
        assert second.instruments.isFloating()
        assert (second.width(), second.height()) == saved_size != (1500, 900)
    finally:
        close_window(second)


def test_gui_command_refuses_a_bad_setup_file_in_one_line(tmp_path, capsys):
    from hbtscope.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ninstruments: 3\n")
    assert main(["gui", "--setup", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hbtscope: ") and str(bad) in err and "Traceback" not in err


def test_hbtscope_gui_opens_the_window_on_the_simulated_microscope(qtbot, tmp_path):
    """The command itself: the window opens on the default setup, closes, exit code 0, and
    its settings land in the (temporary) user settings location."""
    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication

    from hbtscope.cli import main
    from hbtscope.gui.main_window import MainWindow, default_settings

    seen: list[str] = []

    def close_it() -> None:
        # the window ``hbtscope gui`` opened (not one of an earlier test, closed and not yet
        # collected)
        windows = [
            w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()
        ]
        if not windows:
            QTimer.singleShot(50, close_it)
            return
        for w in windows:
            seen.append(w.windowTitle())
            w.close()

    QTimer.singleShot(50, close_it)
    assert main(["gui", "--out", str(tmp_path / "runs")]) == 0
    assert seen and "Simulated" in seen[0]
    stored = default_settings()
    assert str(tmp_path) in stored.fileName()
    assert stored.value("measurement/current") in runnable()


def test_the_g2_histogram_grows_live_and_ends_as_the_runs_own(qtbot, make_window, data_dir):
    window = make_window(count_rate_period_ms=60_000)
    window.measurement_dock.live_correlation.interval_s = 0.0  # a snapshot per read-out
    histograms: list[np.ndarray] = []
    ended: list[bool] = []

    def record(event):
        if isinstance(event, ev.ArrayRecorded) and event.name == "g2/coincidences":
            histograms.append(np.array(event.data))
        elif isinstance(event, ev.RunEnded):
            ended.append(True)

    window.bridge.event.connect(record)
    dock, _ = start_g2(qtbot, window, duration_s=2.0, readout_s=0.1, x_um=10.0, y_um=10.0)
    qtbot.waitUntil(lambda: dock.thread is None, timeout=RUN_TIMEOUT_MS)
    assert dock.last_outcome.status == "finished"
    with open_run(dock.last_outcome.path) as run:
        final = run["data/g2/coincidences"][()]
    live, last = histograms[:-1], histograms[-1]
    np.testing.assert_array_equal(last, final)  # the procedure's own, at the end
    assert len(live) >= 10  # one per read-out of 0.1 s over 2 s
    totals = [int(h.sum()) for h in live]
    assert totals == sorted(totals) and totals[0] < totals[-1]
    np.testing.assert_array_equal(live[-1], final)  # the live one had every tag
    # the procedure's results rows, drawn as they came
    assert len(window.live.rows) == len(live)
    assert window.live.results_plot.isVisible()
    # the live histograms converge to the simulated emitter's g2(0): the estimate of an early
    # snapshot is wider than the last one's, and the last one is within 3 sigma (plus 0.03 for
    # what the background and crosstalk corrections leave) of the truth with background
    from hbtscope.procedures.g2 import analyse_g2_histogram

    with open_run(dock.last_outcome.path) as run:
        lag_ps = run["data/g2/lag_ps"][()]
        truth = float(run.file["truth"].attrs["g2_0_with_background"])
        period_ps = 1e12 / float(run.file["truth"].attrs["rep_rate_Hz"])

    def g2_of(hist):
        res, _, _ = analyse_g2_histogram(
            lag_ps,
            hist,
            period_ps,
            norm_delay_ps=10e6,
            norm_halfwidth_ps=1.5e6,
            background="linear",
        )
        return res.g2_0, res.g2_0_err

    early, late = g2_of(live[len(live) // 5]), g2_of(live[-1])
    assert late[1] < early[1]
    assert abs(late[0] - truth) < 3 * late[1] + 0.03, (late, truth)


def test_sigterm_during_a_run_closes_the_dashboard_cleanly(qtbot, tmp_path, capsys):
    """``hbtscope gui`` receiving SIGTERM mid-run: the run ends ``aborted``, exit code 130."""
    import os
    import signal

    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication

    from hbtscope.cli import main
    from hbtscope.gui.main_window import MainWindow

    out = tmp_path / "runs"
    state = {"started": False, "signalled": False}

    def drive() -> None:
        # the window ``hbtscope gui`` opened (not one of an earlier test, closed and not yet
        # collected)
        windows = [
            w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()
        ]
        if windows and not state["started"]:
            state["started"] = True
            dock = windows[0].measurement_dock
            dock.select("g2")
            for name, value in {"duration_s": 3600.0, "x_um": 10.0, "y_um": 10.0}.items():
                dock.form("g2").set_value(name, value)
            dock.start()
        elif windows and windows[0].live.progress.value() > 0 and not state["signalled"]:
            state["signalled"] = True
            os.kill(os.getpid(), signal.SIGTERM)
            return
        QTimer.singleShot(20, drive)

    QTimer.singleShot(20, drive)
    assert main(["gui", "--out", str(out)]) == 130
    assert "SIGTERM received" in capsys.readouterr().err
    (path,) = run_files(out)
    assert run_status(path) == "aborted"


def test_run_browser_shows_a_run_from_its_file_and_runs_it_again(
    qtbot, make_window, setup, data_dir
):
    """A g2 run made outside the window: the browser lists it, shows its analysis (g2(0) with
    its uncertainty, as the file's own analysis), parameters, instrument snapshot and figure,
    all loaded off the GUI thread; "run again" fills the g2 form with its parameters."""
    from hbtscope.procedures.g2 import G2Measurement
    from hbtscope.procedures.runner import run_procedure
    from hbtscope.reanalyse import analyse_run

    outcome = run_procedure(
        G2Measurement(duration_s=0.3, x_um=10.0, y_um=10.0, z_um=0.0, laser_power_W=1.5e-8),
        setup,
        data_dir,
        figure=False,
    )
    window = make_window()
    browser = window.run_browser
    with qtbot.waitSignal(browser.listed, timeout=10_000):  # listed in a worker thread
        browser.refresh()
    assert browser.files.count() == 1
    with qtbot.waitSignal(browser.shown, timeout=60_000) as shown:
        browser.files.setCurrentRow(0)
    info = shown.args[0]
    assert info["error"] == "" and info["status"] == "finished"
    direct = analyse_run(outcome.path)
    assert info["analysis"]["g2_0"] == direct["g2_0"]
    items = {
        browser.analysis.topLevelItem(i).text(0): browser.analysis.topLevelItem(i).text(1)
        for i in range(browser.analysis.topLevelItemCount())
    }
    assert items["g2_0"].startswith(f"{direct['g2_0']:.6g} ± ")
    assert browser.parameters.topLevelItemCount() == len(info["parameters"])
    assert "laser" in info["snapshot"] and browser.snapshot.topLevelItemCount() > 0
    assert not browser.figure.pixmap().isNull()  # drawn by the measurement's own figure()
    browser.again.click()
    form = window.measurement_dock.form("g2")
    assert window.measurement_dock.current == "g2"
    assert form.values()["laser_power_W"] == 1.5e-8 and form.values()["duration_s"] == 0.3


def test_run_browser_says_what_is_wrong_with_a_broken_file(qtbot, make_window, data_dir):
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "broken.h5").write_bytes(b"not hdf5 at all")
    window = make_window()
    browser = window.run_browser
    with qtbot.waitSignal(browser.listed, timeout=10_000):
        browser.refresh()
    with qtbot.waitSignal(browser.shown, timeout=60_000) as shown:
        browser.files.setCurrentRow(0)
    assert shown.args[0]["error"] and "broken.h5" in browser.header.text()
    assert not browser.again.isEnabled()


def test_run_browser_opens_a_run_another_process_is_still_writing(
    qtbot, make_window, data_dir, tmp_path
):
    """``hbtscope run g2`` in another process on a real-time clock writes its run file; the
    browser opens it mid-run (status ``running``, parameters, and g2(0) with its error from
    the tags flushed so far, computed by the measurement's own analysis), and the writer is
    not disturbed: it finishes its run afterwards."""
    import signal

    from tests.conftest import start_cli_run, wait_for_rows

    proc, out = start_cli_run(
        tmp_path, "g2", "realtime", "duration_s=8", "x_um=10", "y_um=10", "laser_power_W=2e-8"
    )
    assert out == data_dir
    try:
        wait_for_rows(proc, out, "tttr/timestamps", 20_000)
        window = make_window()
        browser = window.run_browser
        with qtbot.waitSignal(browser.listed, timeout=10_000):
            browser.refresh()
        assert browser.files.count() == 1
        with qtbot.waitSignal(browser.shown, timeout=60_000) as shown:
            browser.files.setCurrentRow(0)
        info = shown.args[0]
        assert info["error"] == "" and info["status"] == "running", info
        assert info["parameters"]["duration_s"] == 8.0
        g2 = info["analysis"]
        # the demo emitter is antibunched; the >= 20 000 tags flushed so far (>= 0.2 s at
        # ~50 kcps per SPAD) give g2(0) to about +-0.1. The background-corrected estimate can
        # fall below zero by chance (CI saw -0.026): only a value more than 4 sigma below zero
        # would be wrong; above, antibunched beyond 3 sigma (1 s runs here: 0.11 +- 0.085,
        # largest of 40 start times 0.32, so the bound at ~0.8 is far from chance).
        assert 0 < g2["g2_0_err"] < 0.3, g2
        assert -4 * g2["g2_0_err"] < g2["g2_0"] < 1 - 3 * g2["g2_0_err"], g2
        assert "running" in browser.header.text()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    (path,) = run_files(data_dir)
    assert run_status(path) == "finished"


def test_an_error_escaping_a_slot_is_shown_not_fatal(qtbot, make_window, caplog):
    """A bug raising inside a Qt slot would abort the process under PyQt5's default hook;
    the dashboard's hook logs it and names it in the status bar, and the window goes on."""
    import sys

    from hbtscope.gui.app import keep_running_on_slot_errors

    window = make_window()
    with keep_running_on_slot_errors(window):
        try:
            raise ValueError("a bug in a slot")
        except ValueError:
            sys.excepthook(*sys.exc_info())
    assert "internal error (ValueError): a bug in a slot" in window.statusBar().currentMessage()
    assert "unexpected error in the dashboard" in caplog.text
    assert window.isVisible()
