"""Benchmark of hbtscope.analysis.correlate_log (single core) against pycorrelate.

Two independent Poisson channels at 100 kcps each for 10 s, log bins from 10 ns to 1 s
(10 per decade, 80 bins). Throughput is the total number of tags of both channels
divided by the median wall time of one call, after a warm-up call (JIT compile
excluded). pycorrelate.pcorrelate (the Laurence et al. 2006 algorithm, numba) runs on
the same tags and edges; its counts are checked to be identical. Prints one JSON line.

    python bench/bench_correlate_log.py
"""

from __future__ import annotations

import json
import platform
import time

import numpy as np

from hbtscope.analysis.correlation_log import correlate_log, log_edges

RATE_CPS = 100_000
DURATION_S = 10.0
REPEATS = 7
SEED = 12345


def poisson_tags(rng: np.random.Generator, rate_cps: float, duration_s: float) -> np.ndarray:
    n = rng.poisson(rate_cps * duration_s)
    return np.sort(rng.integers(0, int(duration_s * 1e12), n, dtype=np.int64))


def timings(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def bench_pycorrelate(t1, t2, edges, counts) -> tuple[float | None, bool | None]:
    try:
        import pycorrelate  # type: ignore[import-not-found]
    except ImportError:
        return None, None
    try:
        ref = pycorrelate.pcorrelate(t1, t2, edges)  # warm-up (JIT)
        same = bool(np.array_equal(ref, counts / np.diff(edges)))
        seconds = float(np.median(timings(lambda: pycorrelate.pcorrelate(t1, t2, edges), 3)))
        return (t1.size + t2.size) / seconds, same
    except Exception:  # an incompatible pycorrelate version must not break the bench
        return None, None


def main() -> None:
    rng = np.random.default_rng(SEED)
    t1 = poisson_tags(rng, RATE_CPS, DURATION_S)
    t2 = poisson_tags(rng, RATE_CPS, DURATION_S)
    edges = log_edges(10_000, 1e12, 10)

    correlate_log(t1[:1000], t2[:1000], edges)  # warm-up: JIT / cache load
    counts = correlate_log(t1, t2, edges)
    ts = timings(lambda: correlate_log(t1, t2, edges), REPEATS)
    n_tags = int(t1.size + t2.size)
    pyc, same = bench_pycorrelate(t1, t2, edges, counts)
    result = {
        "bench": "correlate_log",
        "tags_per_s": n_tags / float(np.median(ts)),
        "tags_per_s_best": n_tags / float(np.min(ts)),
        "n_tags": n_tags,
        "rate_cps": RATE_CPS,
        "duration_s": DURATION_S,
        "lag_range_ps": [int(edges[0]), int(edges[-1])],
        "n_bins": int(edges.size - 1),
        "n_pairs": int(counts.sum()),
        "seconds_median": float(np.median(ts)),
        "repeats": REPEATS,
        "pycorrelate_tags_per_s": pyc,
        "pycorrelate_identical": same,
        "speedup_vs_pycorrelate": None if pyc is None else n_tags / float(np.median(ts)) / pyc,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
