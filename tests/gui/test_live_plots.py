"""The live panels a measurement declares (``Measurement.live_plots``): a saturation sweep run
from the dock shows its saturation curve with the run's points and, at the end, the fitted
model; a polarisation run its Malus curve; a measurement without a declaration the generic view.
"""

from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import Qt

from hbtscope.analysis import saturation_model
from hbtscope.analysis.polarisation import malus_model
from hbtscope.procedures.registry import all_measurements
from hbtscope.storage import open_run, read_values

RUN_TIMEOUT_MS = 90_000


def _run(qtbot, window, name: str, values: dict) -> object:
    dock = window.measurement_dock
    dock.select(name)
    form = dock.form(name)
    for key, value in values.items():
        form.set_value(key, value)
    qtbot.mouseClick(dock.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: dock.thread is None, timeout=RUN_TIMEOUT_MS)
    assert dock.last_outcome.status == "finished", dock.last_outcome.error
    return dock.last_outcome


def test_saturation_shows_its_curve_and_the_fitted_model(qtbot, make_window, screenshot_dir):
    window = make_window(count_rate_period_ms=60_000)
    values = {"x_um": 10.0, "y_um": 10.0, "n_powers": 6, "repeats": 1}
    values |= {"acquisition_s": 0.2, "background_s": 0.2, "measure_power": False}
    outcome = _run(qtbot, window, "saturation", values)
    live = window.live
    assert live.declared is not None and live.plot.isHidden() and live.results_plot.isHidden()
    (panel,) = live.declared.panels
    x, y = panel.curve.getData()
    with open_run(outcome.path) as run:
        power = np.asarray(run["data/saturation/power_W"])
        analysis = read_values(run["analysis/saturation"])
    # the points are the run's measured powers (one row per power, as they came)
    np.testing.assert_allclose(np.sort(x), np.sort(power))
    assert len(y) == 6 and np.all(y > 0)
    # the fit: the saturation model at the run's fitted A, P_sat, B over the measured range
    fx, fy = panel.fit_curve.getData()
    assert fx[0] == x.min() and fx[-1] == x.max()
    np.testing.assert_allclose(
        fy, saturation_model(fx, analysis["A"], analysis["P_sat_W"], analysis["B"]), rtol=1e-12
    )
    px, py = panel.fit_points.getData()  # the points the fit used, from the analysis
    np.testing.assert_array_equal(px, analysis["fit_power_W"])
    np.testing.assert_array_equal(py, analysis["fit_rate_cps"])
    qtbot.wait(50)
    window.live.grab().save(str(screenshot_dir / "live-saturation.png"))


def test_polarization_shows_its_malus_curve(qtbot, make_window, screenshot_dir):
    window = make_window(count_rate_period_ms=60_000)
    values = {"x_um": 10.0, "y_um": 10.0, "n_angles": 8, "passes": 1}
    values |= {"dwell_s": 0.05, "background_s": 0.05}
    outcome = _run(qtbot, window, "polarization", values)
    (panel,) = window.live.declared.panels
    x, y = panel.curve.getData()
    assert len(x) == 8 and np.all(np.diff(x) > 0)  # one point per analyser angle
    assert np.all(y >= 0) and y.max() > y.min()  # the demo emitter is polarised
    with open_run(outcome.path) as run:
        analysis = read_values(run["analysis/polarization"])
    np.testing.assert_array_equal(x, analysis["angle_deg"])
    np.testing.assert_array_equal(y, analysis["counts"])
    fx, fy = panel.fit_curve.getData()
    model = malus_model(fx, analysis["I_min"], analysis["I_max"], analysis["theta0_deg"])
    np.testing.assert_allclose(fy, model, rtol=1e-12)
    px, py = panel.fit_points.getData()
    np.testing.assert_array_equal(py, analysis["signal"])
    assert "polarization" in all_measurements()
    window.live.grab().save(str(screenshot_dir / "live-polarization.png"))


def test_g2_without_a_declaration_keeps_the_generic_view(qtbot, make_window):
    window = make_window(count_rate_period_ms=60_000)
    _run(qtbot, window, "g2", {"duration_s": 0.2, "x_um": 10.0, "y_um": 10.0})
    assert window.live.declared is None and not window.live.plot.isHidden()


def test_spectrum_series_shows_the_latest_spectrum_and_the_drift_map(
    qtbot, make_window, screenshot_dir
):
    window = make_window(count_rate_period_ms=60_000)
    values = {"x_um": 10.0, "y_um": 10.0, "n_spectra": 4, "interval_s": 1.0}
    values |= {"integration_s": 0.5}
    outcome = _run(qtbot, window, "spectrum_series", values)
    spectrum, drift = window.live.declared.panels
    with open_run(outcome.path) as run:
        group = run["data/spectrum_series"]
        wavelength = np.asarray(group["wavelength_nm"])
        spectra = np.stack([group["spectra"][n][()] for n in sorted(group["spectra"])])
    x, y = spectrum.curve.getData()
    np.testing.assert_array_equal(x, wavelength)
    np.testing.assert_array_equal(y, spectra[-1])  # the newest spectrum
    assert spectra[-1].max() > 0
    # the drift map: every spectrum, one row each, along the wavelength axis
    np.testing.assert_array_equal(drift.image.image, spectra.T)
    assert drift.image.width() == wavelength.size and drift.image.height() == 4
    window.live.grab().save(str(screenshot_dir / "live-spectrum_series.png"))


def test_bleaching_video_shows_its_frames_and_the_survival_curve(
    qtbot, make_window, screenshot_dir
):
    window = make_window(count_rate_period_ms=60_000)
    values = {"x_um": 10.0, "y_um": 10.0, "interval_s": 1.0, "duration_s": 4.0}
    values |= {"report_after_s": 2.0}
    outcome = _run(qtbot, window, "bleaching_video", values)
    frame, emitting, survival = window.live.declared.panels
    with open_run(outcome.path) as run:
        frames = np.asarray(run["data/video/frames"])
        analysis = read_values(run["analysis/bleaching_video"])
    assert frame.image is not None and frame.image.image.ndim == 2
    np.testing.assert_array_equal(frame.image.image, frames[-1].T)  # the last frame
    # the live fraction emitting, frame by frame, is the analysis's own count of the same
    # emitters followed through the same frames (none left the field in 4 s)
    assert analysis["n_left_field"] == 0 and analysis["n_emitters"] >= 2
    t_live, f_live = emitting.curve.getData()
    np.testing.assert_allclose(t_live, analysis["times_s"])
    np.testing.assert_allclose(f_live, np.asarray(analysis["alive"]).mean(axis=1))
    t, f = survival.fit_points.getData()
    np.testing.assert_array_equal(t, analysis["times_s"])
    np.testing.assert_array_equal(f, analysis["fraction"])
    lo, hi = survival.band[0].getData()[1], survival.band[1].getData()[1]
    assert np.all(lo <= f) and np.all(f <= hi)  # the interval around the curve
    window.live.grab().save(str(screenshot_dir / "live-bleaching_video.png"))


def test_g2_power_shows_its_histograms_and_g2_0_against_power(qtbot, make_window, screenshot_dir):
    window = make_window(count_rate_period_ms=60_000)
    values = {"x_um": 10.0, "y_um": 10.0, "factors": "0.5, 1, 2", "P_sat_set_W": 2e-8}
    values |= {"duration_s": 0.3, "equalise_counts": False}
    outcome = _run(qtbot, window, "g2_power", values)
    histograms, live_g2, g2_0 = window.live.declared.panels
    with open_run(outcome.path) as run:
        coincidences = np.asarray(run["data/g2_power/coincidences"])
        analysis = read_values(run["analysis/g2_power"])
    assert coincidences.shape[0] == 3
    np.testing.assert_array_equal(histograms.image.image, coincidences.T)
    # each step's g2(0) as the step ended: the analysis's own value (one function for both)
    x_live, g_live = live_g2.curve.getData()
    np.testing.assert_allclose(x_live, analysis["power_over_P_sat"], rtol=1e-12)
    np.testing.assert_allclose(g_live, analysis["g2_0"], rtol=1e-12)
    x, g = g2_0.fit_points.getData()
    np.testing.assert_array_equal(x, analysis["power_over_P_sat"])
    np.testing.assert_array_equal(g, analysis["g2_0"])
    window.live.grab().save(str(screenshot_dir / "live-g2_power.png"))


def test_tttr_trace_shows_its_intensity_trace_histogram_decay_and_flid(
    qtbot, make_window, screenshot_dir
):
    window = make_window(count_rate_period_ms=60_000)
    values = {"x_um": 10.0, "y_um": 10.0, "duration_s": 1.0, "readout_s": 0.1}
    _run(qtbot, window, "tttr_trace", values)
    trace, histogram, decay, flid = window.live.declared.panels
    rows = window.live.declared.rows
    t, rate = trace.curve.getData()
    assert len(t) == len(rows) >= 5 and np.all(np.diff(t) > 0)
    # every photon of both SPADs in exactly one read-out: sum(rate * dt) = the total counts
    dt = np.diff(np.concatenate([[0.0], t]))
    total = rows[-1]["counts_a"] + rows[-1]["counts_b"]
    assert np.sum(rate * dt) == pytest.approx(total, rel=1e-9)
    assert total > 0
    edges, counts = histogram.curve.getData()
    assert counts.sum() == len(rows)  # one entry per read-out

    # the decay of SPAD A so far: over one laser period as the syncs measure it (5 MHz set:
    # 200 ns within the laser's 1 % accuracy), every photon of A after the first kept sync
    # (1 in 1000 pulses kept: the first 200 us, ~10 photons of A, have no sync before them)
    delay_ns, photons = decay.curve.getOriginalDataset()  # not the log10 drawn (log y)
    assert delay_ns[-1] == pytest.approx(200.0, rel=0.01)
    assert rows[-1]["counts_a"] - 40 <= photons.sum() <= rows[-1]["counts_a"]
    # its slope is the demo emitter's lifetime (truth 10.2 ns): counts 5-15 ns and 15-25 ns
    # after the rising edge are in the ratio e^(10 / tau); ~25 000 photons give tau to ~2 %,
    # the flat background (< 1 % of the window) and the biexciton's 0.8 ns photons (gone
    # 5 ns after the edge) bias it by less: 8.5-12.5 ns is a > 5 sigma band
    edge = delay_ns[np.argmax(photons)] - 0.5
    early = photons[(delay_ns >= edge + 5) & (delay_ns < edge + 15)].sum()
    late = photons[(delay_ns >= edge + 15) & (delay_ns < edge + 25)].sum()
    tau_ns = 10.0 / np.log(early / late)
    assert 8.5 < tau_ns < 12.5, (tau_ns, early, late)

    # FLID: one point per read-out with photons after a sync: its rate and mean arrival time
    # after the rising edge (an exponential's mean is tau, plus the IRF and sub-ns biexciton
    # photons: between 5 and 14 ns)
    x, y = flid.curve.getData()
    finite = np.isfinite(y)
    assert finite.sum() >= len(rows) - 1
    assert np.all((y[finite] > 5.0) & (y[finite] < 14.0)), y
    assert np.array_equal(x[finite], np.array([r["rate_cps"] for r in rows])[finite])
    window.live.grab().save(str(screenshot_dir / "live-tttr_trace.png"))


def test_refocus_shows_its_raster_z_scan_and_closed_loop_lines(qtbot, make_window, screenshot_dir):
    """Refocus from 0.3 µm beside the demo emitter (truth: (10, 10, 0) µm, ideal stage): the
    coarse raster as an image, the z scan, and every point of the closed-loop lines as it is
    counted; the brightest point of each line is at the emitter (lines of 0.05 µm steps
    around a ~0.25 µm wide spot: the peak lies within a few steps)."""
    window = make_window(count_rate_period_ms=60_000)
    seen_while_running = []
    panels = {}

    def on_event(event):
        if window.measurement_dock.running and window.live.declared is not None:
            panels.update({p.spec.title: p for p in window.live.declared.panels})
            seen_while_running.append(len(window.live.declared.rows))

    window.bridge.event.connect(on_event)
    _run(qtbot, window, "refocus", {"x_um": 10.3, "y_um": 9.8, "z_um": 0.0})
    assert max(seen_while_running) > 3  # line points arrived while the run went on
    raster, z_scan, *lines = window.live.declared.panels
    assert raster.image is not None and raster.image.image.ndim == 2
    z, zc = z_scan.curve.getData()
    assert len(z) >= 5 and np.all(np.diff(z) > 0)
    for axis, panel, truth in zip("xyz", lines, (10.0, 10.0, 0.0), strict=True):
        pos, counts = panel.curve.getData()
        assert len(pos) >= 5, axis
        best = pos[np.argmax(counts)]
        assert abs(best - truth) < (0.5 if axis == "z" else 0.2), (axis, best)
    window.live.grab().save(str(screenshot_dir / "live-refocus.png"))
