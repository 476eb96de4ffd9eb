"""``hbtscope demo``: the main job on the simulated microscope, no hardware needed.

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


def run_demo(setup_path=None, out_dir=None, as_json=False, report=None, progress=None) -> int:
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
