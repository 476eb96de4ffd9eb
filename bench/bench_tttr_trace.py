"""Wall time of the TTTRTrace procedure and its analysis per simulated hour, demo emitter.

    python bench/bench_tttr_trace.py [--seconds 120]

Runs TTTRTrace on the default simulated setup (sim.yaml, its imperfections on) at the demo
emitter, found near the setup's ``demo:`` position as ``hbtscope demo`` does (24 nW, 5 MHz,
sync divided by 1000), for ``--seconds`` of simulated time through ``run_procedure`` (tags
streamed into the run file, analysis at the end, no figure), then times a second ``analyse``
of the file alone. Prints one JSON line: record length, photons, wall times (record +
analysis, analysis alone) and both scaled linearly to one simulated hour (every step but the
change points, capped at 3 M photons, is O(N)).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import h5py

import hbtscope
from hbtscope.demo import find_spot
from hbtscope.procedures.runner import run_procedure
from hbtscope.procedures.tttr_trace import TTTRTrace, analyse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d, hbtscope.open_setup(data_dir=d) as setup:
        d = setup.spec.demo
        x, y = find_spot(setup, d.x_um, d.y_um, d.z_um)  # as `hbtscope demo` does
        proc = TTTRTrace(x_um=x, y_um=y, z_um=d.z_um, duration_s=args.seconds)
        t0 = time.perf_counter()
        outcome = run_procedure(proc, setup, figure=False)
        wall = time.perf_counter() - t0
        with h5py.File(outcome.path, "r") as f:
            t1 = time.perf_counter()
            out = analyse(f)
            wall_analysis = time.perf_counter() - t1
    per_hour = 3600.0 / args.seconds
    print(
        json.dumps(
            {
                "bench": "tttr_trace",
                "status": outcome.status,
                "virtual_s": args.seconds,
                "photons": int(out.values["n_photons"]),
                "mean_rate_cps": round(float(out.values["mean_rate_cps"])),
                "wall_s_record_and_analysis": round(wall, 2),
                "wall_s_analysis": round(wall_analysis, 2),
                "wall_s_per_simulated_hour": round(wall * per_hour, 1),
                "wall_s_analysis_per_simulated_hour": round(wall_analysis * per_hour, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
