"""``hbtscope demo``: the main job on the simulated microscope, no hardware needed.

By default the demo is a whole **emitter survey**, the queue a lab runs overnight, in a few
minutes: the bundled queue ``hbtscope/config/queues/demo.yaml`` scans the demo field, takes
the brightest well-separated spots and characterises each (refocus, saturation, spectra, g2 at
P_sat, a TTTR trace for those that pass the purity cut), then records a wide-field bleaching
video; the queue directory ends with the survey report (``report.html``, ``.json``, ``.csv``)
and the demo says where it is, with how the survey's numbers compare with the simulator's
truth.

``hbtscope demo --quick`` is the one-emitter check of before (seconds):

1. open the setup (default: the bundled simulated microscope);
2. find the emitter near the setup's ``demo:`` position: a small confocal raster of count
   rates around it, then a finer one around the bright spot, and move to its
   intensity-weighted centre *approaching it as the raster did* (from lower x and y): an
   open-loop piezo lags behind the command along the direction of motion, so a position
   read off a raster is only reached again from the same direction;
3. measure its g2 (HBT antibunching) into one HDF5 run file with a PNG figure;
4. say where the run file and the figure are (and, on the simulator, the truth).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from hbtscope.procedures.g2 import G2Measurement
from hbtscope.procedures.runner import run_procedure
from hbtscope.setup import open_setup


def find_spot(
    setup,
    x0_um: float,
    y0_um: float,
    z_um: float,
    *,
    half_width_um: float = 1.0,
    n: int = 11,
    dwell_s: float = 0.02,
    power_W: float = 10e-9,
) -> tuple[float, float]:
    """Raster the count rate of both SPADs around (x0, y0); return the bright spot's centre.

    The centre is the count-weighted centroid of the pixels above half of the maximum (after
    subtracting the median as background), which is within a fraction of a pixel of a Gaussian
    fit for a single diffraction-limited spot.
    """
    tagger, laser, stage = setup.tagger, setup.laser, setup.stage
    xs = np.linspace(x0_um - half_width_um, x0_um + half_width_um, n)
    ys = np.linspace(y0_um - half_width_um, y0_um + half_width_um, n)
    image = np.zeros((n, n))
    laser.power_W = power_W
    laser.enable()
    try:
        counter = tagger.api.Countrate(tagger.device, list(tagger.spad_channels))
        for iy, y in enumerate(ys):
            for ix, x in enumerate(xs):
                stage.move_to(x, y, z_um)
                counter.clear()
                setup.clock.sleep(dwell_s)
                image[iy, ix] = counter.getData().sum()
        counter.stop()
    finally:
        laser.disable()
    signal = image - np.median(image)
    if signal.max() <= 0:
        return x0_um, y0_um
    mask = signal >= 0.5 * signal.max()
    w = signal * mask
    gx, gy = np.meshgrid(xs, ys)
    return float((w * gx).sum() / w.sum()), float((w * gy).sum() / w.sum())


def approach_as_scanned(setup, x_um: float, y_um: float, z_um: float, lead_um: float) -> None:
    """Move to (x, y) from (x - lead, y - lead), the direction the raster moved in, so an
    open-loop stage's hysteresis lag is the one it had while the raster was recorded."""
    setup.stage.move_to(x_um - lead_um, y_um - lead_um, z_um)
    setup.stage.move_to(x_um, y_um, z_um)


def run_quick_demo(setup_path=None, out_dir=None, as_json=False, report=None, progress=None) -> int:
    import sys

    log = (lambda *a: print(*a, file=sys.stderr)) if not as_json else (lambda *a: None)
    with open_setup(setup_path, data_dir=out_dir) as setup:
        d = setup.spec.demo
        log(f"hbtscope demo on {setup.spec.name} ({setup.path})")
        log(f"  looking for the emitter near ({d.x_um}, {d.y_um}) µm ...")
        x, y = find_spot(setup, d.x_um, d.y_um, d.z_um)
        x, y = find_spot(setup, x, y, d.z_um, half_width_um=0.3, n=7, dwell_s=0.05)
        approach_as_scanned(setup, x, y, d.z_um, lead_um=0.3)
        log(f"  bright spot at ({x:.3f}, {y:.3f}) µm; measuring g2 ...")
        proc = G2Measurement()  # stays where the stage is
        outcome = run_procedure(proc, setup, on_event=progress)
        truth = {}
        if setup.is_simulated:
            from hbtscope.storage.reading import read_truth

            truth = read_truth(outcome.path)
        if report is not None:
            report(outcome, truth, as_json, {"spot_x_um": x, "spot_y_um": y})
    return 0 if outcome.status == "finished" else 1


#: the bundled demo survey queue
DEMO_QUEUE = Path(__file__).parent / "config" / "queues" / "demo.yaml"


def run_survey(
    setup_path: str | Path | None = None,
    out_dir: str | Path | None = None,
    *,
    queue_path: str | Path = DEMO_QUEUE,
    displays: Iterable[Callable[[Any], None]] = (),
    on_status: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the demo survey queue into ``<data_dir>/demo-<time>/``; what it found, where the
    report is, and (on the simulator) the survey's numbers next to the truth."""
    from hbtscope.queue.check import check_queue
    from hbtscope.queue.engine import QueueEngine
    from hbtscope.queue.report import collect
    from hbtscope.queue.spec import load_queue_file

    spec, text = load_queue_file(queue_path)
    with open_setup(setup_path, data_dir=out_dir) as setup:
        check_queue(spec, text, queue_path, setup)
        stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
        queue_dir = Path(setup.data_dir) / f"demo-{stamp}"
        engine = QueueEngine(
            spec,
            setup,
            queue_dir,
            queue_text=text,
            queue_path=str(queue_path),
            displays=displays,
            on_status=on_status,
        )
        outcome = engine.run()
        simulated = setup.is_simulated
    data = collect(queue_dir)
    pop = data["population"]
    out: dict[str, Any] = {
        "status": outcome.status,
        "dir": str(queue_dir),
        "report": str(engine.report) if engine.report else None,
        "n_emitters": pop["n_emitters"],
        "n_single_photon": pop["n_single_photon"],
        "single_photon_fraction": pop["single_photon_fraction"],
        "single_photon_fraction_68": pop["single_photon_fraction_68"],
        "n_failures": len([f for f in data["failures"] if f["status"] != "skipped"]),
    }
    if simulated:
        out.update(survey_truth(queue_dir, data["emitters"]))
    return out


def survey_truth(queue_dir: Path, rows: list) -> dict[str, Any]:
    """On the simulator: per surveyed emitter, the truth its g2 run recorded (the emitters in
    the focus: how many, impurity or not, true g2(0)); how many impurities or clusters the
    purity cut rejected."""
    from hbtscope.storage.reading import read_truth

    n_single = n_multi = rejected_multi = accepted_single = 0
    for row in rows:
        run = row.runs.get("g2")
        if not run:
            continue
        truth = read_truth(queue_dir / run)
        g2_true = float(truth.get("g2_0_with_background", truth.get("g2_0", math.nan)))
        single = math.isfinite(g2_true) and g2_true < 0.5
        n_single += single
        n_multi += not single
        if row.single_photon is False and not single:
            rejected_multi += 1
        if row.single_photon and single:
            accepted_single += 1
    return {
        "truth_single_photon": n_single,
        "truth_not_single_photon": n_multi,
        "rejected_of_not_single_photon": rejected_multi,
        "accepted_of_single_photon": accepted_single,
    }
