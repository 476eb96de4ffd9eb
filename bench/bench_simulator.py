"""Simulator speed as a multiple of real time. Prints one JSON line per figure.

1. ``simulator_g2_stream`` (the design number): the DEFAULT setup (bundled ``sim.yaml``, its
   imperfections on: crosstalk, detector delay mismatch, open-loop stage, non-linear laser),
   the stage brought onto the demo emitter as ``hbtscope demo`` does (``find_spot`` twice,
   ``approach_as_scanned``), the laser set so that the two SPADs count ~``--rate`` cps in
   total, and the tags read exactly as the g2 procedure reads them
   (``hbtscope/procedures/_tag_stream.py``): a ``TimeTagStream`` on the two SPAD channels,
   a ``clock.sleep(readout_s)`` then ``getData()`` every 0.2 s of virtual time, overflow
   events dropped and the tags split by channel in one pass (``split_pair``),
   ``CorrelationAccumulator(1000 ps, 12 us)``. Wall time covers
   the whole loop (photon generation, tagger, stream, accumulator); a 0.5 s warm-up run
   first loads the numba kernels. Repeated ``--repeats`` times on the same emitter;
   ``x_real_time`` is virtual seconds / median wall seconds (the machine may be shared:
   look at ``x_real_time_runs``).
2. ``simulator_pulsed_emitter``: the former figure: stage at (10, 10) um as commanded
   (not on the emitter with the open-loop stage), 50 nW, stream only, no accumulator.

    python bench/bench_simulator.py [--seconds 20] [--rate 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

import numpy as np

import hbtscope
from hbtscope.analysis import CorrelationAccumulator
from hbtscope.analysis.tag_split import split_pair
from hbtscope.demo import approach_as_scanned, find_spot

READOUT_S = 0.2  # G2Measurement.readout_s default
BIN_WIDTH_PS = 1000  # G2Measurement.bin_width_ps default
MAX_LAG_PS = 12_000_000  # G2Measurement.max_lag_ps default
N_MAX = 4_000_000  # G2Measurement's stream buffer


def g2_loop(setup, seconds: float) -> tuple[int, float, np.ndarray]:
    """The read-out loop of G2Measurement.execute (without the HDF5 writer).

    Returns (tags, wall seconds, coincidence histogram).
    """
    tagger, clock = setup.tagger, setup.clock
    api = tagger.api
    ch_a, ch_b = tagger.spad_channels
    acc = CorrelationAccumulator(BIN_WIDTH_PS, MAX_LAG_PS)
    t0 = time.perf_counter()
    stream = api.TimeTagStream(tagger.device, N_MAX, [ch_a, ch_b])
    stream.startFor(int(round(seconds * 1e12)))
    n = 0
    elapsed = 0.0
    while True:
        wait = min(READOUT_S, max(seconds - elapsed, 0.0)) or READOUT_S
        clock.sleep(wait)
        running = stream.isRunning()
        buf = stream.getData()
        a, b = split_pair(
            buf.getTimestamps(),
            buf.getChannels(),
            buf.getEventTypes(),
            ch_a,
            ch_b,
            int(api.TagType.TimeTag),
        )
        n += a.size + b.size
        acc.add(a, b)
        elapsed = (buf.tGetData - buf.tStart) / 1e12 + elapsed
        if not running:
            break
    wall = time.perf_counter() - t0
    return n, wall, acc.counts


def spad_rate(setup, seconds: float = 0.2) -> float:
    n, _, _ = g2_loop(setup, seconds)
    return n / seconds


def bench_g2_stream(seconds: float, target_cps: float, repeats: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp, hbtscope.open_setup(data_dir=tmp) as setup:
        d = setup.spec.demo
        x, y = find_spot(setup, d.x_um, d.y_um, d.z_um)
        x, y = find_spot(setup, x, y, d.z_um, half_width_um=0.3, n=7, dwell_s=0.05)
        approach_as_scanned(setup, x, y, d.z_um, lead_um=0.3)
        laser = setup.laser
        laser.rep_rate_Hz = 5e6
        laser.enable()
        g2_loop(setup, 0.5)  # warm-up: numba kernels
        # set power for ~target_cps (bisection on log power; the emitter saturates)
        lo, hi = 1e-10, float(setup.spec.instruments["laser"].limits.get("max_power_W", 2e-6))
        for _ in range(14):
            mid = (lo * hi) ** 0.5
            laser.power_W = mid
            if spad_rate(setup) < target_cps:
                lo = mid
            else:
                hi = mid
        laser.power_W = (lo * hi) ** 0.5
        walls, tags = [], []
        for _ in range(repeats):
            n, wall, counts = g2_loop(setup, seconds)
            walls.append(wall)
            tags.append(n)
        overflows = setup.tagger.device.getOverflows()
        power = laser.power_W
    wall = float(np.median(walls))
    return {
        "bench": "simulator_g2_stream",
        "x_real_time": round(seconds / wall, 1),
        "x_real_time_runs": [round(seconds / w, 1) for w in walls],
        "virtual_s": seconds,
        "wall_s_median": round(wall, 4),
        "repeats": repeats,
        "rate_cps": round(float(np.median(tags)) / seconds, 1),
        "tags_per_s": round(float(np.median(tags)) / wall, 1),
        "laser_power_set_W": power,
        "rep_rate_Hz": 5e6,
        "readout_s": READOUT_S,
        "accumulator": [BIN_WIDTH_PS, MAX_LAG_PS],
        "coincidences_last_run": int(counts.sum()),
        "spot_um": [round(x, 4), round(y, 4)],
        "overflows": int(overflows),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def bench_pulsed_emitter(seconds: float, readout: float) -> dict:
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
        stream.startFor(int(seconds * 1e12))
        n = 0
        t0 = time.perf_counter()
        while True:
            setup.clock.sleep(readout)
            running = stream.isRunning()
            n += stream.getData().size
            if not running:
                break
        wall = time.perf_counter() - t0
    return {
        "bench": "simulator_pulsed_emitter",
        "virtual_s": seconds,
        "wall_s": round(wall, 4),
        "x_real_time": round(seconds / wall, 1),
        "rate_cps": round(n / seconds, 1),
        "rep_rate_Hz": 5e6,
        "tags": int(n),
        "tags_per_s_generated": round(n / wall, 1),
        "numpy": np.__version__,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0, help="virtual seconds per g2 run")
    ap.add_argument("--rate", type=float, default=100_000.0, help="target SPAD count rate (cps)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pulsed-seconds", type=float, default=60.0)
    args = ap.parse_args()
    print(json.dumps(bench_g2_stream(args.seconds, args.rate, args.repeats)), flush=True)
    print(json.dumps(bench_pulsed_emitter(args.pulsed_seconds, READOUT_S)))


if __name__ == "__main__":
    main()
