"""Wall time of the polarisation sweep per simulated hour (sim.yaml, fast clock, one core).

The default sweep (12 angles there and back, 1 s each, 5 s of background) on a nanocube of the
survey field of sim.yaml at 0.5 P_sat, through ``run_procedure`` with analysis and figure. The
simulated time includes the analyser's rotation. Prints exactly one JSON line.

    python bench/bench_polarization.py
"""

from __future__ import annotations

import json
import platform
import tempfile
import time

import hbtscope
from hbtscope.procedures.polarization import Polarization
from hbtscope.procedures.runner import run_procedure

X_UM, Y_UM = 65.132, 38.207  # an isolated nanocube of the survey field (seed 20261121)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, hbtscope.open_setup(data_dir=tmp) as setup:
        proc = Polarization(x_um=X_UM, y_um=Y_UM, laser_power_W=30e-9)
        s0 = setup.clock.now()
        t0, c0 = time.perf_counter(), time.process_time()
        outcome = run_procedure(proc, setup)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        simulated_s = setup.clock.now() - s0
    hours = simulated_s / 3600.0
    print(
        json.dumps(
            {
                "bench": "polarization",
                "status": outcome.status,
                "simulated_s": round(simulated_s, 1),
                "points": outcome.summary.get("n_points"),
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "wall_s_per_simulated_hour": round(wall / hours, 1),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
