"""The run archive (issue 15): re-analysis runs/s against the number of dask workers, and
catalogue query time on 100 000 runs.

    python bench/bench_archive.py [--runs 40] [--duration-s 1.0] [--workers 1,2] [--rows 100000]

Re-analysis: ``--runs`` g2 runs of ``--duration-s`` simulated seconds at the default setup's
emitters are written once; then the whole set is re-analysed serially in this process and on a
LocalCluster of 1, 2, ... worker processes (one thread each). Each cluster first analyses one
file per worker (imports, numba compilation), which is not timed; the cluster's start-up is
reported apart. Query: ``--rows`` synthetic runs (6 values each) are inserted directly into a
fresh catalogue; each filter is timed as the median of 5 ``Catalog.paths`` calls.
Prints one JSON line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import hbtscope
from hbtscope.archive import Catalog
from hbtscope.archive.reanalysis import close_client, open_client, reanalyse
from hbtscope.procedures.g2 import G2Measurement
from hbtscope.procedures.runner import run_procedure

POSITIONS = ((10.0, 10.0), (20.0, 10.0), (30.0, 10.0), (10.0, 20.0))


def _line(**fields) -> None:
    print(json.dumps({**fields, "cpus": os.cpu_count(), "python": platform.python_version()}))


def make_runs(root: Path, n: int, duration_s: float) -> list[str]:
    paths = []
    with hbtscope.open_setup(data_dir=root) as setup:
        for i in range(n):
            x, y = POSITIONS[i % len(POSITIONS)]
            g2 = G2Measurement(duration_s=duration_s, x_um=x, y_um=y)
            paths.append(str(run_procedure(g2, setup, root, figure=False).path))
    return paths


def bench_reanalysis(paths: list[str], workers: list[int]) -> None:
    reanalyse(paths[:1])  # this process's imports and compilation
    t0 = time.perf_counter()
    serial = reanalyse(paths)
    wall = time.perf_counter() - t0
    _line(
        bench="archive_reanalysis",
        workers=0,
        mode="serial",
        runs=len(paths),
        wall_s=round(wall, 3),
        runs_per_s=round(len(paths) / wall, 2),
    )
    for n in workers:
        t0 = time.perf_counter()
        client = open_client(n, processes=True)
        startup = time.perf_counter() - t0
        try:
            client.wait_for_workers(n)
            reanalyse(paths[:n], client)  # warm every worker
            t0 = time.perf_counter()
            out = reanalyse(paths, client)
            wall = time.perf_counter() - t0
        finally:
            close_client(client)
        same = all(a.same_as(b) for a, b in zip(out, serial, strict=True))
        _line(
            bench="archive_reanalysis",
            workers=n,
            mode="LocalCluster",
            runs=len(paths),
            wall_s=round(wall, 3),
            runs_per_s=round(len(paths) / wall, 2),
            cluster_startup_s=round(startup, 2),
            equal_to_serial=same,
        )


def fill_catalog(cat: Catalog, rows: int) -> None:
    rng = random.Random(7)
    runs, values = [], []
    for i in range(1, rows + 1):
        m = "g2" if i % 3 else "saturation"
        runs.append(
            (
                i,
                f"/archive/{i // 1000:03d}/{i:06d}_{m}.h5",
                1000 + i,
                i,
                m,
                f"scan-{i % 500:03d}",
                "finished",
                "",
            )
        )
        values.append((i, "parameter", "x_um", rng.uniform(0, 80), None))
        values.append((i, "parameter", "emitter", None, f"scan-{i % 500:03d}"))
        values.append((i, "truth", "g2_0", rng.uniform(0, 1), None))
        if m == "g2":
            g = rng.uniform(0, 1)
            values += [(i, "result", "g2_0", g, None), (i, "result", "g2_0_err", g / 10, None)]
            values.append((i, "result", "counts_a", float(rng.randint(0, 10**6)), None))
        else:
            values += [
                (i, "result", "P_sat_W", rng.uniform(1e-8, 1e-7), None),
                (i, "result", "P_sat_W_err", 1e-9, None),
                (i, "result", "I_sat_W_um2", 1e-6, None),
            ]
    cat.con.executemany(
        "INSERT INTO runs (id, path, size_bytes, mtime_ns, measurement, emitter, status, "
        "indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        runs,
    )
    cat.con.executemany(
        "INSERT INTO run_values (run_id, kind, key, num, text) VALUES (?, ?, ?, ?, ?)", values
    )
    cat.commit()
    cat.con.execute("ANALYZE")


QUERIES = (
    'measurement == "g2"',
    "g2_0 < 0.2",
    'measurement == "g2" and g2_0 < 0.2 and g2_0_err < 0.05',
    'emitter == "scan-007"',
    "P_sat_W < 5e-8 or (g2_0 < 0.1 and truth.g2_0 < 0.5)",
    'measurement == "g2" and g2_0 + 2 * g2_0_err < 0.5',
)


def bench_query(root: Path, rows: int) -> None:
    with Catalog(root / "bench.sqlite") as cat:
        t0 = time.perf_counter()
        fill_catalog(cat, rows)
        _line(bench="archive_catalog_fill", rows=rows, wall_s=round(time.perf_counter() - t0, 2))
        for text in QUERIES:
            times, n = [], 0
            for _ in range(5):
                t0 = time.perf_counter()
                n = len(cat.paths([text]))
                times.append(time.perf_counter() - t0)
            _line(
                bench="archive_query",
                rows=rows,
                filter=text,
                matches=n,
                median_ms=round(1e3 * statistics.median(times), 2),
            )
        t0 = time.perf_counter()
        full = cat.query(['emitter == "scan-007"'])
        _line(
            bench="archive_query_full_rows",
            rows=rows,
            filter='emitter == "scan-007"',
            matches=len(full),
            wall_ms=round(1e3 * (time.perf_counter() - t0), 2),
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--duration-s", type=float, default=1.0)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--rows", type=int, default=100_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.runs:
            paths = make_runs(root / "runs", args.runs, args.duration_s)
            bench_reanalysis(paths, [int(w) for w in args.workers.split(",") if w])
        if args.rows:
            bench_query(root, args.rows)


if __name__ == "__main__":
    main()
