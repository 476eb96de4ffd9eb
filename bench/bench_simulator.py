"""Simulator speed: a pulsed emitter at ~100 kcps (5 MHz), TTTR streamed through the simulated
Swabian tagger in `fast` clock mode. Prints one JSON line: speed as a multiple of real time.

    python bench/bench_simulator.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import hbtscope


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0, help="virtual seconds to simulate")
    ap.add_argument("--readout", type=float, default=0.2, help="read-out interval (virtual s)")
    args = ap.parse_args()
    with hbtscope.open_setup() as setup:
        setup.stage.move_to(10.0, 10.0, 0.0)
        setup.laser.rep_rate_Hz = 5e6
        setup.laser.power_W = 50e-9
        setup.laser.enable()
        tt = setup.tagger
        # warm-up (numba compilation)
        warm = tt.api.TimeTagStream(tt.device, 10_000_000, list(tt.spad_channels))
        setup.clock.sleep(0.5)
        warm.getData()
        warm.stop()
        stream = tt.api.TimeTagStream(tt.device, 10_000_000, list(tt.spad_channels))
        stream.startFor(int(args.seconds * 1e12))
        n = 0
        t0 = time.perf_counter()
        while True:
            setup.clock.sleep(args.readout)
            running = stream.isRunning()
            n += stream.getData().size
            if not running:
                break
        wall = time.perf_counter() - t0
        rate = n / args.seconds
    print(
        json.dumps(
            {
                "bench": "simulator_pulsed_emitter",
                "virtual_s": args.seconds,
                "wall_s": round(wall, 4),
                "x_real_time": round(args.seconds / wall, 1),
                "rate_cps": round(rate, 1),
                "rep_rate_Hz": 5e6,
                "tags": int(n),
                "tags_per_s_generated": round(n / wall, 1),
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
