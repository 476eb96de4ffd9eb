"""Peak memory and speed of a 10-minute TTTR record (pulsed emitter ~100 kcps, 5 MHz) streamed
from the simulated tagger into an HDF5 run file, as the TTTR procedures will do.

    python bench/bench_tttr_record.py [--minutes 10]

Prints one JSON line: peak resident memory (MiB, ru_maxrss) before and after, wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import hbtscope
from hbtscope.storage import RunWriter


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    seconds = args.minutes * 60.0
    with tempfile.TemporaryDirectory() as d, hbtscope.open_setup(data_dir=d) as setup:
        setup.stage.move_to(10.0, 10.0, 0.0)
        setup.laser.power_W = 50e-9
        setup.laser.enable()
        tt = setup.tagger
        rss0 = _maxrss_mib()
        path = Path(d) / "tttr.h5"
        t0 = time.perf_counter()
        n = 0
        with RunWriter(path, "bench_tttr", {"duration_s": seconds}) as w:
            stream = tt.api.TimeTagStream(tt.device, 4_000_000, list(tt.spad_channels))
            stream.startFor(int(seconds * 1e12))
            while True:
                setup.clock.sleep(0.2)
                running = stream.isRunning()
                buf = stream.getData()
                w.append_tags(buf.getTimestamps(), buf.getChannels())
                n += buf.size
                if not running:
                    break
        wall = time.perf_counter() - t0
        size_mib = path.stat().st_size / 2**20
    print(
        json.dumps(
            {
                "bench": "tttr_record_10min",
                "virtual_s": seconds,
                "tags": n,
                "wall_s": round(wall, 2),
                "x_real_time": round(seconds / wall, 1),
                "peak_rss_mib_before": round(rss0, 1),
                "peak_rss_mib_after": round(_maxrss_mib(), 1),
                "file_mib": round(size_mib, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
