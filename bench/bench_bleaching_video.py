"""Wall time of the bleaching video per simulated hour (sim.yaml, fast clock, one core).

The default video (an hour of LED, a 0.1 s frame every 20 s: 181 frames of 256 x 256) on the
survey field of sim.yaml, run through ``run_procedure`` into a run file, with its analysis
(emitters, drift, traces, survival) and its figure. Prints exactly one JSON line: wall and CPU
seconds of the whole run and per simulated hour, frames, emitters found, the run file's size.

    python bench/bench_bleaching_video.py
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

import hbtscope
from hbtscope.procedures.bleaching_video import BleachingVideo
from hbtscope.procedures.runner import run_procedure


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, hbtscope.open_setup(data_dir=tmp) as setup:
        proc = BleachingVideo(x_um=60.0, y_um=40.0)
        t0, c0 = time.perf_counter(), time.process_time()
        outcome = run_procedure(proc, setup)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        size = Path(outcome.path).stat().st_size
    hours = proc.duration_s / 3600.0
    print(
        json.dumps(
            {
                "bench": "bleaching_video",
                "status": outcome.status,
                "simulated_hours": hours,
                "frames": outcome.summary.get("n_frames"),
                "emitters": outcome.summary.get("n_emitters"),
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "wall_s_per_simulated_hour": round(wall / hours, 2),
                "run_file_MB": round(size / 2**20, 1),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
