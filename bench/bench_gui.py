"""The dashboard, offscreen: the GUI thread's longest stall during a g2 run and a confocal scan,
how fast the g2 histogram redraws, and how often it is redrawn when fed 1 M tags/s (issue 14).

    QT_QPA_PLATFORM=offscreen python bench/bench_gui.py [--duration 30] [--clock realtime]

1. ``gui_g2_run``: a g2 of ``--duration`` simulated seconds at the demo emitter, started from
   the measurement dock of a shown main window (fast clock, live histogram snapshots every
   0.25 s). A 5 ms heartbeat QTimer in the GUI thread records the longest gap between its
   ticks while the run goes: the GUI thread's longest stall. Also: run wall time, live
   histogram redraws per second, results rows drawn. ``--clock realtime`` runs the simulated
   microscope in real time, as in the lab (the run then takes ``--duration`` wall seconds).
2. ``gui_g2_redraw``: the live plot given a new 24 001-bin histogram and repainted, N times;
   frames per second (the goal for the g2 plot is >= 10 Hz).
3. ``gui_g2_feed``: a g2 whose tags reach the GUI's live correlation at about 1 M tags/s of
   wall time: the simulated clock runs ``--feed-speed`` times faster than real time (scaled
   clock) at the demo emitter's ~100 kcps, read out every 0.05 s; live histograms drawn per
   wall second (goal >= 10 Hz) and the GUI thread's longest stall.
4. ``gui_scan_run``: a confocal scan (``--scan-pixels`` squared, 1 ms dwell, pulsed, fast
   clock) started from the dock: the GUI thread's longest stall while the image grows live.
5. ``gui_scan_redraw``: the scan view (a shown dock, 800 x 800) fed a 512 x 512 scan as the
   procedure's events, 8 lines per event as they complete, each followed by a repaint:
   frames per second with percentile colour scaling (``sum`` of the two detectors, and
   ``FLIM``: lifetime hue times intensity). Goal >= 20 fps.

One JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
from PyQt5.QtCore import QSettings, QTimer  # noqa: E402
from PyQt5.QtWidgets import QApplication  # noqa: E402

import hbtscope  # noqa: E402
from hbtscope import events as ev  # noqa: E402
from hbtscope.gui.main_window import MainWindow  # noqa: E402
from hbtscope.setup import default_setup_path  # noqa: E402


def setup_file(tmp: str, clock: str) -> str | None:
    """The default setup file, with its simulated clock in ``clock`` mode (None: as it is);
    ``scaled:N`` runs it N times faster than real time."""
    if clock == "fast":
        return None
    text = default_setup_path().read_text()
    assert "clock: {mode: fast}" in text
    mode = clock
    if clock.startswith("scaled:"):
        mode = f"scaled, speed: {float(clock.split(':', 1)[1])}"
    path = os.path.join(tmp, "sim-clock.yaml")
    with open(path, "w") as f:
        f.write(text.replace("clock: {mode: fast}", f"clock: {{mode: {mode}}}"))
    return path


def bench_run(
    app: QApplication,
    duration_s: float,
    clock: str = "fast",
    *,
    measurement: str = "g2",
    parameters: dict | None = None,
    figure: str = "gui_g2_run",
) -> dict:
    """Run ``measurement`` from the dock of a shown main window; heartbeat gaps, redraws."""
    if parameters is None:
        parameters = {"duration_s": duration_s, "x_um": 10.0, "y_um": 10.0}
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(os.path.join(tmp, "gui.ini"), QSettings.IniFormat)
        with hbtscope.open_setup(setup_file(tmp, clock), data_dir=tmp) as setup:
            window = MainWindow(setup, out_dir=tmp, settings=settings)
            window.show()
            redraws = []
            window.bridge.event.connect(
                lambda e: (
                    redraws.append(time.perf_counter())
                    if isinstance(e, ev.ArrayRecorded) and e.name == "g2/coincidences"
                    else None
                )
            )
            gaps: list[float] = []
            last = [time.perf_counter()]

            def beat() -> None:
                now = time.perf_counter()
                gaps.append(now - last[0])
                last[0] = now

            heartbeat = QTimer()
            heartbeat.setInterval(5)
            heartbeat.timeout.connect(beat)
            dock = window.measurement_dock
            dock.select(measurement)
            form = dock.form(measurement)
            for name, value in parameters.items():
                form.set_value(name, value)
            t0 = time.perf_counter()
            dock.start()
            last[0] = time.perf_counter()
            heartbeat.start()
            while dock.thread is not None:
                app.processEvents()
                time.sleep(0.001)
            wall = time.perf_counter() - t0
            heartbeat.stop()
            status = dock.last_outcome.status if dock.last_outcome else "not run"
            rows = len(window.live.rows)
            window.close()
            app.processEvents()
    return {
        "bench": figure,
        "clock": clock,
        "measurement": measurement,
        "parameters": parameters,
        "status": status,
        "wall_s": round(wall, 3),
        "gui_longest_stall_ms": round(1e3 * max(gaps), 1) if gaps else None,
        "gui_heartbeats": len(gaps),
        "live_histograms_per_s": round(len(redraws) / wall, 2),
        # between the first and the last live histogram (the analysis at the end excluded)
        "live_histograms_per_s_acquiring": (
            round((len(redraws) - 1) / (redraws[-1] - redraws[0]), 2)
            if len(redraws) > 2 and redraws[-1] > redraws[0]
            else None
        ),
        "results_rows": rows,
        "machine": platform.machine(),
    }


def bench_redraw(app: QApplication, n: int) -> dict:
    from hbtscope.gui.live_view import LiveView

    view = LiveView()
    view.resize(900, 700)
    view.show()
    lag = np.arange(-12_000_000, 12_000_001, 1000, dtype=np.float64)
    view.show_array("g2/lag_ps", lag, "ps")
    rng = np.random.default_rng(1)
    hist = rng.poisson(20, size=(n, lag.size))
    app.processEvents()
    t0 = time.perf_counter()
    for i in range(n):
        view.show_array("g2/coincidences", hist[i], "counts")
        view.plot.repaint()
        app.processEvents()
    wall = time.perf_counter() - t0
    view.close()
    return {
        "bench": "gui_g2_redraw",
        "bins": int(lag.size),
        "frames": n,
        "fps": round(n / wall, 1),
        "goal_fps": 10,
        "machine": platform.machine(),
    }


def bench_scan_redraw(app: QApplication, pixels: int = 512, lines_per_event: int = 8) -> list:
    """Frames per second of the scan view fed a ``pixels``-square scan line block by block."""
    import threading

    from hbtscope.gui.device_worker import DeviceWorker
    from hbtscope.gui.scan_view import ScanView

    out = []
    rng = np.random.default_rng(2)
    axis_um = np.linspace(0.0, 20.0, pixels)
    with tempfile.TemporaryDirectory() as tmp:
        with hbtscope.open_setup(default_setup_path(), data_dir=tmp) as setup:
            devices = DeviceWorker(threading.Lock())
            for choice in ("sum", "FLIM"):
                view = ScanView(setup, devices, tmp)
                view.resize(800, 800)
                view.show()
                view.choice.setCurrentText(choice)
                view.on_event(ev.RunStarted("confocal_scan", {"plane": "xy", "tcspc_bin_ps": 400}))
                view.on_event(ev.ArrayRecorded("scan/fast_um", axis_um, "um"))
                view.on_event(ev.ArrayRecorded("scan/slow_um", axis_um, "um"))
                frame = np.zeros((2, pixels, pixels), np.int64)
                view.on_event(ev.ArrayRecorded("scan/counts/frame_000", frame, "counts"))
                if choice == "FLIM":  # a lifetime per pixel, as after a first frame
                    view.live.lifetime_ps = rng.uniform(2e3, 12e3, (pixels, pixels))
                blocks = [
                    rng.poisson(5.0, (2, lines_per_event, pixels))
                    for _ in range(pixels // lines_per_event)
                ]
                app.processEvents()
                t0 = time.perf_counter()
                for k, lines in enumerate(blocks):
                    record = {
                        "frame": 0,
                        "first_line": k * lines_per_event,
                        "counts": lines.sum(axis=0),
                        "detectors": lines,
                    }
                    view.on_event(ev.Emitted("scan_lines", record))
                    app.processEvents()  # the coalesced redraw
                    view.panes["xy"].viewport().repaint()  # paints the image item
                wall = time.perf_counter() - t0
                out.append(
                    {
                        "bench": "gui_scan_redraw",
                        "pixels": f"{pixels}x{pixels}",
                        "detector": choice,
                        "colour_scale": "percentiles 1-99.5 %",
                        "frames": view.updates,
                        "fps": round(view.updates / wall, 1),
                        "goal_fps": 20,
                        "machine": platform.machine(),
                    }
                )
                view.close()
                app.processEvents()
            devices.shutdown()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="simulated seconds of g2")
    parser.add_argument("--frames", type=int, default=50, help="histogram redraws")
    parser.add_argument(
        "--clock", default="fast", help="simulated clock: fast, realtime or scaled:N"
    )
    parser.add_argument(
        "--feed-speed", type=float, default=10.0, help="clock speed of the 1 M tags/s feed"
    )
    parser.add_argument("--scan-pixels", type=int, default=128, help="scan side in pixels")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    for line in bench_scan_redraw(app):
        print(json.dumps(line), flush=True)
    print(json.dumps(bench_redraw(app, args.frames)), flush=True)
    print(json.dumps(bench_run(app, args.duration, args.clock)), flush=True)
    feed_s = 5.0 * args.feed_speed  # five wall seconds
    feed = bench_run(
        app,
        feed_s,
        f"scaled:{args.feed_speed}",
        parameters={"duration_s": feed_s, "x_um": 10.0, "y_um": 10.0, "readout_s": 0.05},
        figure="gui_g2_feed",
    )
    feed["goal_live_histograms_per_s"] = 10
    print(json.dumps(feed), flush=True)
    n = args.scan_pixels
    scan = {
        "centre_x_um": 10.0,
        "centre_y_um": 10.0,
        "centre_z_um": 0.0,
        "width_um": 10.0,
        "height_um": 10.0,
        "pixels_x": n,
        "pixels_y": n,
        "dwell_s": 1e-3,
        "pulsed": True,
    }
    print(
        json.dumps(
            bench_run(app, 0.0, measurement="confocal_scan", parameters=scan, figure="gui_scan_run")
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
