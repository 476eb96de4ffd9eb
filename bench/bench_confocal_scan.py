"""Software overhead per pixel of ConfocalScan on the simulator (goal <= 20 µs/pixel at
512 x 512, design section 10).

One pulsed scan (counts per SPAD and a TCSPC histogram per pixel) through
:func:`hbtscope.procedures.runner.run_procedure` on the default simulated microscope, clock
``fast``, after a small warm-up scan that loads the numba kernels. The acquisition's wall
time (``execute``) is split into the simulated hardware -- the time spent inside the
simulated tagger bringing its measurements up to the clock (``TimeTagger._catch_up``: the
world generating the photons of every pixel, the tagger's counting and TCSPC kernels, which
a real tagger does in its own hardware and C++) -- and the rest, the procedure's software
overhead: loading the raster, polling the tagger per group of lines, reshaping lines,
emitting live lines, checkpointing and publishing to the run file. Analysis (drift
registration, emitter finding, FLIM of every pixel) and the figure are timed separately.
Prints exactly one JSON line.

    python bench/bench_confocal_scan.py [--pixels 512] [--dwell 1e-4]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import hbtscope
from hbtscope.drivers_sim.timetagger.device import TimeTagger
from hbtscope.procedures import confocal_scan
from hbtscope.procedures.confocal_scan import ConfocalScan
from hbtscope.procedures.runner import run_procedure
from hbtscope.storage import open_run


class Timer:
    """Wall time spent inside the wrapped functions (outermost calls only)."""

    def __init__(self) -> None:
        self.total = 0.0
        self.depth = 0

    def wrap(self, owner, name: str) -> None:
        original = getattr(owner, name)
        timer = self

        def timed(*args, **kwargs):
            if timer.depth:
                return original(*args, **kwargs)
            timer.depth += 1
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timer.total += time.perf_counter() - t
                timer.depth -= 1

        setattr(owner, name, timed)


def scan(n: int, dwell_s: float, out_dir: str) -> ConfocalScan:
    return ConfocalScan(
        centre_x_um=12.0,
        centre_y_um=12.0,
        centre_z_um=0.0,
        width_um=10.0,
        height_um=10.0,
        pixels_x=n,
        pixels_y=n,
        dwell_s=dwell_s,
        pulsed=True,
        tcspc_bins=64,
        tcspc_bin_ps=400,
        flim_model="mono",
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixels", type=int, default=512, help="pixels per side")
    ap.add_argument("--dwell", type=float, default=1e-4, help="pixel dwell (s, simulated)")
    args = ap.parse_args()
    hardware = Timer()
    hardware.wrap(TimeTagger, "_catch_up")
    acquisition_timer = Timer()
    acquisition_timer.wrap(ConfocalScan, "execute")
    with tempfile.TemporaryDirectory() as tmp, hbtscope.open_setup(data_dir=tmp) as setup:
        run_procedure(scan(16, args.dwell, tmp), setup)  # warm-up: numba kernels
        hardware.total = acquisition_timer.total = 0.0
        t0 = time.perf_counter()
        out = run_procedure(scan(args.pixels, args.dwell, tmp), setup, figure=False)
        wall = time.perf_counter() - t0
        with open_run(out.path) as run:  # the analysis and the figure again, timed alone
            t0 = time.perf_counter()
            confocal_scan.analyse(run)
            analysis = time.perf_counter() - t0
            t0 = time.perf_counter()
            confocal_scan.figure(run, out.path.with_suffix(".png"))
            drawing = time.perf_counter() - t0
    n_pix = args.pixels**2
    acquisition = acquisition_timer.total
    overhead = acquisition - hardware.total
    print(
        json.dumps(
            {
                "bench": "confocal_scan",
                "pixels": f"{args.pixels}x{args.pixels}",
                "dwell_s": args.dwell,
                "status": out.status,
                "overhead_us_per_pixel": round(overhead / n_pix * 1e6, 2),
                "goal_us_per_pixel": 20.0,
                "simulated_hardware_us_per_pixel": round(hardware.total / n_pix * 1e6, 2),
                "acquisition_wall_s": round(acquisition, 2),
                "analysis_wall_s": round(analysis, 2),
                "figure_wall_s": round(drawing, 2),
                "run_wall_s": round(wall, 2),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
