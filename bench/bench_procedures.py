"""Wall time of every measurement per simulated hour, on the demo emitter (issue 12).

    python bench/bench_procedures.py [--only g2,saturation]

Each runnable measurement runs once through ``run_procedure`` on the default simulated setup
(sim.yaml, imperfections on, fast clock) at the demo emitter (10, 10) µm with the parameters
below (a few simulated minutes each; the analysis and the figure included, as a queue runs
it), in a fresh data directory. Simulated time is the setup clock's advance during the run.
Prints one JSON line per measurement: simulated seconds, wall seconds, and wall seconds per
simulated hour (linear scaling; for the per-pixel and per-frame measurements the work is
linear in the simulated time).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import hbtscope
from hbtscope.procedures.registry import runnable
from hbtscope.procedures.runner import run_procedure

AT = {"x_um": 10.0, "y_um": 10.0, "z_um": 0.0}
PARAMETERS = {
    "g2": {**AT, "duration_s": 120.0},
    "g2_power": {**AT, "duration_s": 30.0, "P_sat_set_W": 3.3e-8},
    "saturation": {**AT},
    "tttr_trace": {**AT, "duration_s": 120.0},
    "spectrum_series": {**AT, "n_spectra": 7, "interval_s": 60.0, "integration_s": 10.0},
    "refocus": {**AT},
    "polarization": {**AT},
    "confocal_scan": {
        "centre_x_um": 10.0,
        "centre_y_um": 10.0,
        "centre_z_um": 0.0,
        "pixels_x": 128,
        "pixels_y": 128,
        "dwell_s": 2e-3,
    },
    "bleaching_video": {**AT, "duration_s": 600.0, "interval_s": 10.0},
}


def bench(name: str) -> dict:
    cls = runnable()[name].procedure
    with tempfile.TemporaryDirectory() as tmp:
        with hbtscope.open_setup(data_dir=tmp) as setup:
            proc = cls(**PARAMETERS.get(name, AT))
            t_sim0 = setup.clock.now_ps()
            t0 = time.perf_counter()
            outcome = run_procedure(proc, setup, tmp)
            wall = time.perf_counter() - t0
            sim_s = (setup.clock.now_ps() - t_sim0) * 1e-12
    return {
        "bench": "procedure_wall_per_sim_hour",
        "measurement": name,
        "status": outcome.status,
        "sim_s": round(sim_s, 2),
        "wall_s": round(wall, 3),
        "wall_s_per_sim_hour": round(wall / sim_s * 3600.0, 1) if sim_s > 0 else None,
        "machine": platform.machine(),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated measurement names")
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n] or sorted(runnable())
    for name in names:
        print(json.dumps(bench(name)), flush=True)


if __name__ == "__main__":
    main()
