"""The live view for any measurement: a saturation sweep run from the dock draws its rows and
its fit with uncertainties; the Stop button aborts a g2; 2-D arrays become an image."""

from __future__ import annotations

import numpy as np
from PyQt5.QtCore import Qt

from hbtscope import events as ev
from hbtscope.gui.live_view import LiveView, format_value, result_lines
from hbtscope.storage import open_run, read_values, run_status

RUN_TIMEOUT_MS = 90_000


def test_a_saturation_sweep_from_the_dock_draws_its_rows_and_its_fit(qtbot, make_window):
    window = make_window(count_rate_period_ms=60_000)
    dock = window.measurement_dock
    dock.select("saturation")
    form = dock.form("saturation")
    values = {"x_um": 10.0, "y_um": 10.0, "n_powers": 6, "repeats": 1}
    values |= {"acquisition_s": 0.2, "background_s": 0.2, "measure_power": False}
    for name, value in values.items():
        form.set_value(name, value)
    qtbot.mouseClick(dock.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dock.thread is None, timeout=RUN_TIMEOUT_MS)
    outcome = dock.last_outcome
    assert outcome.status == "finished", outcome.error
    live = window.live
    assert len(live.rows) == 6  # one results row per power, drawn as it came
    x, y = live.results_curve.getData()
    assert list(x) == [r["set_power_W"] for r in live.rows]
    assert list(y) == [r["rate_cps"] for r in live.rows]
    with open_run(outcome.path) as run:
        analysis = read_values(run["analysis/saturation"])
    text = live.result.toPlainText()
    expected = format_value(analysis["P_sat_W"], analysis.get("P_sat_W_err"))
    assert f"P_sat_W = {expected}" in text
    assert "±" in expected
    assert live.headline.text() == ""  # no g2 headline for a saturation sweep


def test_the_stop_button_aborts_a_run_and_the_laser_goes_off(qtbot, make_window, data_dir, setup):
    window = make_window(count_rate_period_ms=60_000)
    dock = window.measurement_dock
    dock.select("g2")
    for name, value in {"duration_s": 3600.0, "x_um": 10.0, "y_um": 10.0}.items():
        dock.form("g2").set_value(name, value)
    qtbot.mouseClick(dock.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: window.live.progress.value() > 0, timeout=RUN_TIMEOUT_MS)
    assert dock.stop_button.isEnabled() and not dock.start_button.isEnabled()
    qtbot.mouseClick(dock.stop_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dock.thread is None, timeout=RUN_TIMEOUT_MS)
    assert dock.last_outcome.status == "aborted"
    assert run_status(dock.last_outcome.path) == "aborted"
    assert not setup.laser.emission_on
    assert window.live.title.text().endswith("aborted")
    assert dock.start_button.isEnabled() and window.instruments.controls.isEnabled()


def test_a_2d_array_is_shown_as_an_image_and_a_1d_one_against_its_axis(qtbot):
    view = LiveView()
    qtbot.addWidget(view)
    view.on_event(ev.RunStarted("confocal_scan", {}))
    assert not view.plot.isVisibleTo(view) and not view.image_view.isVisibleTo(view)
    image = np.arange(12.0).reshape(3, 4)
    view.on_event(ev.ArrayRecorded("scan/counts", image, "counts"))
    assert view.image_view.isVisibleTo(view)
    np.testing.assert_array_equal(view.image_view.image, image.T)
    per_detector = np.stack([image, 2 * image])  # a scan's counts: (detectors, ny, nx)
    view.on_event(ev.ArrayRecorded("scan/counts/frame_000", per_detector, "counts"))
    np.testing.assert_array_equal(view.image_view.image, 3 * image.T)
    view.on_event(ev.ArrayRecorded("scan/tcspc", np.zeros((2, 3, 4, 100)), "counts"))
    np.testing.assert_array_equal(view.image_view.image, 3 * image.T)  # 4-D: not an image
    view.on_event(ev.ArrayRecorded("spectrum/wavelength_nm", np.array([500.0, 501.0]), "nm"))
    view.on_event(ev.ArrayRecorded("spectrum/counts", np.array([3, 4]), "counts"))
    x, y = view.curve.getData()
    assert view.plot.isVisibleTo(view)
    assert list(x) == [500.0, 501.0] and list(y) == [3.0, 4.0]
    view.on_event(ev.Progress(42.0))
    assert view.progress.value() == 420


def test_result_lines_pair_each_value_with_its_error():
    lines = result_lines(
        {"A": 1234.5, "A_err": 12.3, "tau_ns": 2.5, "ok": True, "name": "x"},
        {"tau_ns": 0.04},
    )
    assert lines == ["A = 1234 ± 12", "tau_ns = 2.500 ± 0.040"]
    assert format_value(0.257, 0.113) == "0.26 ± 0.11"
    assert format_value(0.25, float("inf")) == "0.25"


def _feed(live, procedure: str, parameters: dict, chunks) -> None:
    live.display(ev.RunStarted(procedure, parameters))
    live.display(ev.TTTRInfo(1.0, {"sync": 1, "spad_a": 2, "spad_b": 3}))
    for ts, ch in chunks:
        live.display(ev.TagsRecorded(ts, ch))
    live.display(ev.RunEnded("finished"))


def test_the_live_correlation_is_the_histogram_of_the_tags_so_far():
    from hbtscope.analysis import correlate
    from hbtscope.gui.live_correlation import LiveCorrelation

    rng = np.random.default_rng(7)
    ts = np.cumsum(rng.integers(1, 200_000, size=4000)).astype(np.int64)
    ch = rng.choice(np.array([1, 2, 3]), size=ts.size)
    chunks = [(ts[i : i + 1000], ch[i : i + 1000]) for i in range(0, ts.size, 1000)]
    params = {"bin_width_ps": 1000, "max_lag_ps": 2_000_000}
    sent: list = []
    live = LiveCorrelation(sent.append, interval_s=0.0)
    _feed(live, "g2", params, chunks)
    histograms = [e.data for e in sent if e.name == "g2/coincidences"]
    assert len(histograms) == len(chunks)
    a, b = ts[ch == 2], ts[ch == 3]
    _, expected = correlate(a, b, 1000, 2_000_000)
    np.testing.assert_array_equal(histograms[-1], expected)
    assert histograms[0].sum() < histograms[-1].sum()

    for procedure, parameters in [
        ("g2_power", params),  # its tags span several powers
        ("g2", {"bin_width_ps": 1, "max_lag_ps": 1_000_000_000}),  # 2e9 bins: too many
        ("saturation", {}),
    ]:
        sent.clear()
        _feed(live, procedure, parameters, chunks)
        assert sent == [], procedure


def test_thousands_of_results_rows_are_drawn_as_a_line_all_of_them_at_the_end(qtbot):
    """A g2 read out every 50 ms emits a row per read: beyond a few hundred rows the plot is
    a line redrawn at most every 0.2 s (per-symbol pens stalled the GUI thread for 0.3 s), and
    the run's end draws every row."""
    from hbtscope import events as ev
    from hbtscope.gui.live_view import MAX_ROW_SYMBOLS, LiveView

    live = LiveView()
    qtbot.addWidget(live)
    live.on_event(ev.RunStarted("g2", {}))
    n = 3 * MAX_ROW_SYMBOLS
    for i in range(n):
        live.on_event(ev.Emitted("results", {"elapsed_s": 0.05 * i, "rate_cps": float(i)}))
    live.on_event(ev.RunEnded("finished", "", {}))
    x, y = live.results_curve.getData()
    assert len(x) == n and list(y) == [float(i) for i in range(n)]
    assert live.results_curve.opts["symbol"] is None
