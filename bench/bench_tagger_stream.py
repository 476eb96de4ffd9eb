"""Throughput of the simulated Swabian tagger: tags/s through a TimeTagStream and a Correlation
running together on the default simulated microscope (~77 kcps on the two SPADs, 5 MHz laser)
in `fast` clock mode, read out every `--readout` virtual seconds.

Two runs: the SPAD channels only (the HBT g2 configuration, `tags_per_s`), and the same plus
the 5 MHz laser sync in the stream (`tags_per_s_with_sync`, a FLIM-like load). Wall time
includes generating the photons in the world; a warm-up run first loads the numba kernels.
Prints exactly one JSON line.

    python bench/bench_tagger_stream.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import numpy as np

import hbtscope


def run(setup, seconds: float, readout: float, channels: list[int]) -> tuple[int, float]:
    """(tags delivered to the stream, wall seconds) for `seconds` of virtual time."""
    api, dev = setup.tagger.api, setup.tagger.device
    group = api.SynchronizedMeasurements(dev)
    stream = api.TimeTagStream(group.getTagger(), 50_000_000, channels)
    corr = api.Correlation(group.getTagger(), 2, 3, binwidth=100, n_bins=20_000)
    n = 0
    t0 = time.perf_counter()
    group.startFor(int(round(seconds * 1e12)))
    while True:
        setup.clock.sleep(readout)
        running = group.isRunning()
        n += stream.getData().size
        if not running:
            break
    corr.getData()
    wall = time.perf_counter() - t0
    return n, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0, help="virtual seconds per run")
    ap.add_argument("--readout", type=float, default=0.1, help="read-out interval (virtual s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, hbtscope.open_setup(data_dir=tmp) as setup:
        setup.stage.move_to(10.0, 10.0, 0.0)
        setup.laser.power_W = 24e-9
        setup.laser.enable()
        run(setup, 0.5, args.readout, [1, 2, 3])  # warm-up: numba kernels
        n_spad, wall_spad = run(setup, args.seconds, args.readout, [2, 3])
        n_sync, wall_sync = run(setup, args.seconds, args.readout, [1, 2, 3])
        overflows = setup.tagger.device.getOverflows()
    print(
        json.dumps(
            {
                "bench": "tagger_stream_correlation",
                "tags_per_s": round(n_spad / wall_spad, 1),
                "tags": int(n_spad),
                "virtual_s": args.seconds,
                "wall_s": round(wall_spad, 4),
                "x_real_time": round(args.seconds / wall_spad, 1),
                "tags_per_s_with_sync": round(n_sync / wall_sync, 1),
                "tags_with_sync": int(n_sync),
                "wall_s_with_sync": round(wall_sync, 4),
                "readout_s": args.readout,
                "overflows": int(overflows),
                "numpy": np.__version__,
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
