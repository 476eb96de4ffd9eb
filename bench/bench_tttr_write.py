"""Throughput of RunWriter.append_tags: 50 M time tags appended in 1 M blocks, flushed each time.

Prints one JSON line: {"bench": "hdf5_tttr_write", "tags_per_s": ..., "n_tags": ..., "chunk": ...}
(target: >= 20 M tags/s). Only ``append_tags`` + ``flush`` + ``finish`` are timed, not making
the tags. The file goes to a temporary directory (``--dir`` to choose) and is deleted.

    python bench/bench_tttr_write.py [--n-tags 50000000] [--block 1000000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from hbtscope.storage import RunWriter, layout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-tags", type=int, default=50_000_000)
    ap.add_argument("--block", type=int, default=1_000_000)
    ap.add_argument("--dir", default=None, help="directory for the temporary run file")
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    block = args.block
    # a realistic block: increasing timestamps (~ 1 MHz total rate), 2 detector channels
    base_ts = np.cumsum(rng.integers(1, 2_000_000, block)).astype(np.int64)
    span = int(base_ts[-1]) + 1
    base_ch = rng.integers(1, 3, block).astype(np.int32)
    ts = np.empty_like(base_ts)

    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = Path(d) / "bench.h5"
        elapsed = 0.0
        n = 0
        t0 = time.perf_counter()
        w = RunWriter(path, "bench_tttr_write", {"n_tags": args.n_tags, "block": block})
        elapsed += time.perf_counter() - t0
        k = 0
        while n < args.n_tags:
            m = min(block, args.n_tags - n)
            np.add(base_ts, k * span, out=ts)  # the next block of tags (not timed)
            t0 = time.perf_counter()
            w.append_tags(ts[:m], base_ch[:m])
            w.flush()
            elapsed += time.perf_counter() - t0
            n += m
            k += 1
        t0 = time.perf_counter()
        w.finish()
        elapsed += time.perf_counter() - t0
        with h5py.File(path, "r") as f:  # sanity check, not timed
            assert f[layout.TTTR_TIMESTAMPS].shape == (n,)
            assert f[layout.TTTR_TIMESTAMPS][-1] == base_ts[m - 1] + (k - 1) * span

    print(
        json.dumps(
            {
                "bench": "hdf5_tttr_write",
                "tags_per_s": round(n / elapsed),
                "n_tags": n,
                "chunk": layout.TTTR_CHUNK,
                "append_block": block,
            }
        )
    )


if __name__ == "__main__":
    main()
