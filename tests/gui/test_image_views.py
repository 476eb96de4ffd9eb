"""The image views in the real window (pytest-qt, offscreen, simulated microscope with its fast
clock and an ideal stage): a confocal scan started from the dock is drawn line by line while
it is acquired, per detector and as FLIM, with its emitters marked; a click on the image moves
the stage there; the scan's emitters become points of interest, refocused (drift history) and
characterised by a queue built from the list; the camera's live view follows the LED.

Truth (hbtscope/config/sim.yaml): single emitters at (10, 10) µm (tau 10.2 ns) and (20, 10) µm
(tau 8.0 ns) in focus at z = 0, nothing else within the scanned field (x 8-22, y 8-12 µm).
"""

from __future__ import annotations

import numpy as np
import pytest
from PyQt5.QtCore import QPointF, Qt

from hbtscope.queue.journal import Journal, item_states

RUN_TIMEOUT_MS = 120_000  # the first run of a process compiles the numba kernels
EMITTERS_UM = np.array([[10.0, 10.0], [20.0, 10.0]])
#: 0.25 µm pixels over both emitters; at 100 nW, 20 MHz and 2 ms dwell an emitter's centre
#: pixel holds ~500 photons, the background ~2 per pixel (measured on the simulator)
SCAN = {
    "plane": "xy",
    "centre_x_um": 15.0,
    "centre_y_um": 10.0,
    "centre_z_um": 0.0,
    "width_um": 14.0,
    "height_um": 4.0,
    "pixels_x": 56,
    "pixels_y": 16,
    "dwell_s": 2e-3,
    "laser_power_W": 1e-7,
    "rep_rate_Hz": 2e7,
    "readout_s": 0.02,
}
#: one short g2 per point (each fills in the point's position and name)
QUICK = {
    "items": [{"measurement": "g2", "parameters": {"duration_s": 0.5}}],
    "exclude_if": None,
    "refocus": None,
}


def click(qtbot, button) -> None:
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.LeftButton)


def run_scan(qtbot, window) -> dict:
    """Start the scan from the dock and wait for its end; what the scan view drew meanwhile."""
    dock, view = window.measurement_dock, window.scan_view
    dock.select("confocal_scan")
    form = dock.form("confocal_scan")
    for name, value in SCAN.items():
        form.set_value(name, value)
    seen = {"while_running": 0, "lines": set()}

    def updated() -> None:
        if dock.running and view.live is not None and view.live.frame is not None:
            seen["while_running"] += 1
            rows = view.live.frame.sum(axis=(0, 2))
            seen["lines"].add(int(np.count_nonzero(rows)))

    view.image_updated.connect(updated)
    dock.start()
    assert dock.running
    qtbot.waitUntil(lambda: view.isVisible(), timeout=5_000)  # a scan raises the scan view
    qtbot.waitUntil(lambda: not dock.running, timeout=RUN_TIMEOUT_MS)
    view.image_updated.disconnect(updated)
    assert dock.last_outcome is not None, dock.status.text()
    assert dock.last_outcome.status == "finished"
    return seen


def nearest_um(points: np.ndarray, target: np.ndarray) -> float:
    return float(np.min(np.hypot(*(points - target).T))) if len(points) else np.inf


def test_a_scan_is_drawn_live_with_its_emitters_and_a_click_moves_the_stage(
    qtbot, make_window, setup, screenshot_dir
):
    window = make_window()
    view = window.scan_view
    seen = run_scan(qtbot, window)

    # live: the image was redrawn while the scan ran, with a growing number of lines
    assert seen["while_running"] >= 2, seen
    assert len(seen["lines"]) >= 2 and min(seen["lines"]) < SCAN["pixels_y"], seen
    pane = view.panes["xy"]
    image = pane.shown
    assert image is not None and image.counts.shape == (2, 16, 56)
    # both detectors counted (a 50:50 beam splitter: each gets about half)
    per_detector = image.counts.sum(axis=(1, 2))
    assert per_detector.min() > 0.3 * per_detector.sum(), per_detector
    # the brightest pixels are at the emitters (within 2 pixels)
    counts = image.counts.sum(axis=0)
    for x_um, y_um in EMITTERS_UM:
        ix = int(np.argmin(abs(image.fast_um - x_um)))
        iy = int(np.argmin(abs(image.slow_um - y_um)))
        local = counts[max(iy - 2, 0) : iy + 3, max(ix - 2, 0) : ix + 3].max()
        assert local > 10 * np.median(counts), (x_um, local, np.median(counts))
    # the analysis's emitters are marked where the emitters are (0.25 µm pixels; a Gaussian
    # fit of ~2000 photons locates to ~10 nm: 0.15 µm is many sigma)
    marked = np.column_stack(pane.markers.getData())
    for truth in EMITTERS_UM:
        assert nearest_um(marked, truth) < 0.15, (truth, marked)
    # the colour scale is the image's percentiles (default 1-99.5 %)
    assert view.levels[1] == pytest.approx(np.percentile(counts, 99.5))
    assert pane.image.image.ndim == 2
    assert view.widget().grab().save(str(screenshot_dir / "scan_view.png"))

    # one detector at a time
    view.choice.setCurrentText(view.detector_labels[1])
    assert np.array_equal(pane.image.image, image.counts[1])

    # FLIM: lifetime-coloured intensity; the (10, 10) emitter (10.2 ns) is longer-lived than
    # the (20, 10) one (8.0 ns), as the per-pixel lifetimes show
    view.choice.setCurrentText("FLIM")
    assert pane.image.image.ndim == 3 and pane.image.image.shape[2] == 3
    tau = image.lifetime_ps
    taus = []
    for x_um, y_um in EMITTERS_UM:
        ix = int(np.argmin(abs(image.fast_um - x_um)))
        iy = int(np.argmin(abs(image.slow_um - y_um)))
        taus.append(np.nanmedian(tau[iy - 1 : iy + 2, ix - 1 : ix + 2]))
    # The shown lifetime is the analysis's intensity-weighted mean of a global bi-exponential
    # fit (taus shared by the whole image, so an 8 ns decay is drawn as a mixture of the
    # shared components) and includes the short biexciton photons: the physics check is the
    # order and rough size. ~2000 photons per 3 x 3 px give sigma ~ tau / sqrt(2000) ~ 0.2 ns,
    # the truths are 2.2 ns apart: the order holds by > 5 sigma.
    assert 4_000 < taus[1] < taus[0] < 12_000, taus
    assert taus[0] - taus[1] > 1_000, taus
    assert view.widget().grab().save(str(screenshot_dir / "scan_view_flim.png"))

    # click-to-go: a left click on the image at (10.4, 9.6) µm moves the stage there (x, y;
    # z stays); the crosshair follows
    z_before = setup.stage.position_um[2]
    target = QPointF(10.4, 9.6)
    at = pane.mapFromScene(pane.plot.vb.mapViewToScene(target))
    qtbot.mouseClick(pane.viewport(), Qt.LeftButton, pos=at)
    # one screen pixel of the pane is < 0.05 µm here: the click lands within it
    qtbot.waitUntil(
        lambda: np.allclose(setup.stage.position_um[:2], (10.4, 9.6), atol=0.06), timeout=10_000
    )
    assert setup.stage.position_um[2] == pytest.approx(z_before)
    qtbot.waitUntil(lambda: abs(pane.v_line.value() - setup.stage.position_um[0]) < 1e-9)
    assert pane.h_line.value() == pytest.approx(setup.stage.position_um[1])
    assert view.message.text() == ""

    # a click beside the image does not move the stage
    before = tuple(setup.stage.position_um)
    outside = pane.mapFromScene(pane.plot.vb.mapViewToScene(QPointF(30.0, 10.0)))
    if pane.viewport().rect().contains(outside):
        qtbot.mouseClick(pane.viewport(), Qt.LeftButton, pos=outside)
        qtbot.wait(200)
        assert tuple(setup.stage.position_um) == before

    # the history lists this session's scan and shows it again when chosen
    assert view.history.count() >= 1
    assert "this session" in view.history.item(0).text()


def test_a_click_while_a_run_holds_the_stage_is_refused_in_place(qtbot, make_window, setup):
    window = make_window()
    view = window.scan_view
    run_scan(qtbot, window)
    pane = view.panes["xy"]
    dock = window.measurement_dock
    dock.select("g2")
    for name, value in {"duration_s": 3600.0, "x_um": 20.0, "y_um": 10.0}.items():
        dock.form("g2").set_value(name, value)
    dock.start()
    qtbot.waitUntil(lambda: window.live.progress.value() > 0, timeout=RUN_TIMEOUT_MS)
    view.raise_()  # the g2 run raised the live view
    qtbot.waitUntil(pane.isVisible)
    qtbot.wait(200)  # the raised dock's layout settles (posted layout requests) before mapping
    at = pane.mapFromScene(pane.plot.vb.mapViewToScene(QPointF(10.0, 10.0)))
    qtbot.mouseClick(pane.viewport(), Qt.LeftButton, pos=at)
    qtbot.waitUntil(lambda: "refused" in view.message.text(), timeout=10_000)
    assert "measurement is running" in view.message.text()
    assert setup.stage.position_um[0] == pytest.approx(20.0)  # the run's position
    dock.stop()
    qtbot.waitUntil(lambda: not dock.running, timeout=RUN_TIMEOUT_MS)


def test_scan_emitters_become_points_refocused_and_characterised_by_a_queue(
    qtbot, make_window, screenshot_dir
):
    window = make_window()
    run_scan(qtbot, window)
    poi = window.poi_list
    poi.raise_()
    click(qtbot, poi.buttons["add-scan"])
    points = poi.points()
    positions = np.array([[p["x_um"], p["y_um"]] for p in points])
    for truth in EMITTERS_UM:
        assert nearest_um(positions, truth) < 0.15, positions
    assert poi.table.rowCount() == len(points) >= 2
    # keep the two points at the emitters (a spurious spot would be removed by the operator)
    names = [p["name"] for p in points]
    keep = [names[int(np.argmin(np.hypot(*(positions - t).T)))] for t in EMITTERS_UM]
    for name in set(names) - set(keep):
        poi.select(name)
        click(qtbot, poi.buttons["remove"])
    assert sorted(p["name"] for p in poi.points()) == sorted(keep)

    # rename the first, then refocus it: a second position in its drift history, drawn
    poi.select(keep[0])
    poi.name_edit.setText("bright_one")
    click(qtbot, poi.buttons["rename"])
    assert poi.selected() == "bright_one"
    click(qtbot, poi.buttons["refocus"])
    dock = window.measurement_dock
    assert dock.current == "refocus" and dock.running, poi.message.text()
    qtbot.waitUntil(lambda: not dock.running, timeout=RUN_TIMEOUT_MS)
    assert dock.last_outcome is not None, dock.status.text()
    assert dock.last_outcome.status == "finished"
    poi.select("bright_one")
    record = poi.book.require("bright_one")
    assert len(record.positions) == 2
    refocused = np.array(record.position_um())
    # the refocus finds the emitter (ideal stage): within 0.1 µm of (10, 10, 0) in x, y
    assert np.hypot(*(refocused[:2] - EMITTERS_UM[0])) < 0.1, refocused
    x_curve = poi.drift_curves["x"].getData()
    assert len(x_curve[0]) == 2 and x_curve[1][0] == 0.0
    assert poi.widget().grab().save(str(screenshot_dir / "poi_list.png"))

    # "characterise all": a queue over both points, run to the end
    panel = window.queue_panel
    panel.set_template(QUICK)
    poi.raise_()
    click(qtbot, poi.buttons["characterise"])
    (block,) = panel.entries
    assert sorted(p["name"] for p in block["foreach_emitter"]["points"]) == sorted(
        ["bright_one", keep[1]]
    )
    click(qtbot, panel.run_button)
    qtbot.waitUntil(lambda: not panel.running, timeout=RUN_TIMEOUT_MS)
    out = panel.last_outcome
    assert out.status == "finished"
    states = item_states(Journal(out.queue_dir).records())
    assert len(states) == 2 and all(s["status"] == "finished" for s in states.values())
    for state in states.values():
        # both are single emitters: antibunched beyond 3 sigma (see test_queue_panel.py)
        values = state["values"]
        assert values["g2_0"] + 3 * values["g2_0_err"] < 1.0, values
    assert window.grab().save(str(screenshot_dir / "poi_characterised.png"))


def test_the_camera_live_view_follows_the_led(qtbot, make_window, setup, screenshot_dir):
    """At the stage's home (0, 0) the 41.6 µm field holds the four single emitters of the
    sample; under the LED they glow above the camera's offset, with the LED off only the
    offset and read noise remain. An LED power beyond the driver's limit is refused in place."""
    window = make_window()
    camera = window.camera_view
    camera.raise_()
    panel = window.instruments

    def frame_after_new_frames(n: int = 3) -> np.ndarray:
        start = camera.frames_shown
        qtbot.waitUntil(lambda: camera.frames_shown >= start + n, timeout=20_000)
        return np.asarray(camera.frame, float)

    def signal(frame: np.ndarray) -> float:
        """Photo-electrons above the offset in the brightest 0.1 % of pixels (the spots)."""
        top = np.sort(frame.ravel())[-frame.size // 1000 :]
        return float(np.sum(top - np.median(frame)))

    panel.led_power.setText("2")
    click(qtbot, panel.findChild(type(panel.led_button), "led-set-power"))
    qtbot.waitUntil(lambda: "outside [0, 1.0]" in panel.messages["led"].text(), timeout=10_000)
    assert setup.led.power_fraction == 0.0
    panel.led_power.setText("1")
    click(qtbot, panel.findChild(type(panel.led_button), "led-set-power"))
    qtbot.waitUntil(lambda: setup.led.power_fraction == 1.0, timeout=10_000)
    click(qtbot, panel.led_button)
    qtbot.waitUntil(lambda: setup.led.on, timeout=10_000)
    qtbot.waitUntil(lambda: panel.led_state.text() == "on, 100 % power", timeout=10_000)
    click(qtbot, camera.live_button)
    lit = frame_after_new_frames()
    assert lit.ndim == 2 and lit.size > 100
    assert camera.widget().grab().save(str(screenshot_dir / "camera_live.png"))
    click(qtbot, panel.led_button)
    qtbot.waitUntil(lambda: not setup.led.on, timeout=10_000)
    dark = frame_after_new_frames()
    # dark: the top 0.1 % of pure read noise (sigma ~3.5 counts) sits ~3.3 sigma above the
    # median (~750 counts over 65 pixels); the spots add thousands of photo-electrons
    assert signal(lit) > 3 * signal(dark), (signal(lit), signal(dark))
    click(qtbot, camera.live_button)
    assert not camera.timer.isActive()


def test_an_xz_section_appears_beside_the_xy_image_with_the_same_crosshair(
    qtbot, make_window, setup, screenshot_dir
):
    """An xz scan through the demo emitter (truth x = 10, z = 0 µm): the section pane appears
    with x and z axes, the brightest pixel at the emitter (PSF sigma ~0.1 µm laterally,
    ~0.35 µm axially: within 2 pixels of 0.1 / 0.2 µm); one crosshair in both panes at the
    stage's x, y and z; a click on the section moves x and z, y stays."""
    window = make_window()
    view = window.scan_view
    run_scan(qtbot, window)  # the xy image first
    dock = window.measurement_dock
    dock.select("confocal_scan")
    form = dock.form("confocal_scan")
    xz = {**SCAN, "plane": "xz", "centre_x_um": 10.0, "centre_y_um": 10.0, "width_um": 2.0}
    xz |= {"centre_z_um": 0.0, "height_um": 3.0, "pixels_x": 20, "pixels_y": 15}
    for name, value in xz.items():
        form.set_value(name, value)
    dock.start()
    qtbot.waitUntil(lambda: not dock.running, timeout=RUN_TIMEOUT_MS)
    assert dock.last_outcome is not None and dock.last_outcome.status == "finished"
    section, xy = view.panes["section"], view.panes["xy"]
    assert section.isVisible() and xy.isVisible()
    assert section.plot.getAxis("bottom").labelText == "x [µm]"
    assert section.plot.getAxis("left").labelText == "z [µm]"
    image = section.shown
    counts = image.counts.sum(axis=0)
    iz, ix = np.unravel_index(np.argmax(counts), counts.shape)
    assert abs(image.fast_um[ix] - 10.0) <= 0.25 and abs(image.slow_um[iz]) <= 0.45
    # one crosshair: the stage's x in both, y in the xy pane, z in the section
    qtbot.waitUntil(lambda: view.stage.xyz_um is not None, timeout=10_000)
    window.instruments.refresh()
    qtbot.waitUntil(lambda: np.allclose(view.stage.xyz_um, setup.stage.position_um), timeout=10_000)
    x, y, z = view.stage.xyz_um
    assert xy.v_line.value() == pytest.approx(x) and section.v_line.value() == pytest.approx(x)
    assert xy.h_line.value() == pytest.approx(y) and section.h_line.value() == pytest.approx(z)
    assert view.widget().grab().save(str(screenshot_dir / "scan_view_xy_and_xz.png"))
    # click-to-go on the section: x and z move, y stays
    y_before = setup.stage.position_um[1]
    qtbot.wait(200)  # layout settled
    at = section.mapFromScene(section.plot.vb.mapViewToScene(QPointF(10.2, 0.5)))
    qtbot.mouseClick(section.viewport(), Qt.LeftButton, pos=at)
    qtbot.waitUntil(
        lambda: np.allclose(np.take(setup.stage.position_um, [0, 2]), (10.2, 0.5), atol=0.06),
        timeout=10_000,
    )
    assert setup.stage.position_um[1] == pytest.approx(y_before)
