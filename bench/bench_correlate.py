"""Benchmark of hbtscope.analysis.correlate (single core).

Two independent Poisson channels at 100 kcps each, histogram +-1 us in 100 ps bins
(20 000 bins). Throughput is the total number of tags of both channels divided by the
median wall time of one call, after a warm-up call (JIT compile excluded).

Peer: pycorrelate.pcorrelate on the same bins (20 000 edges) and on the same tags, but only
the first PYC_SECONDS of both channels (its cost is O(tags x bins): the full 20 s record
takes minutes per call). Its throughput is per tag of that prefix; the prefix is short
compared with the record but long compared with the 1 us lag window, so tags/s does not
depend on its length. Its counts on the prefix are checked against ours on the same
prefix (``pycorrelate_identical``). Prints exactly one JSON line.

    python bench/bench_correlate.py
"""

from __future__ import annotations

import json
import platform
import time

import numpy as np

from hbtscope.analysis import correlate

RATE_CPS = 100_000
DURATION_S = 20.0
BIN_WIDTH_PS = 100
MAX_LAG_PS = 1_000_000
REPEATS = 7
PYC_SECONDS = 0.5  # prefix of the record given to pycorrelate (same tags, same bins)
PYC_REPEATS = 3
SEED = 12345


def poisson_tags(rng: np.random.Generator, rate_cps: float, duration_s: float) -> np.ndarray:
    n = rng.poisson(rate_cps * duration_s)
    return np.sort(rng.integers(0, int(duration_s * 1e12), n, dtype=np.int64))


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_pycorrelate(t1: np.ndarray, t2: np.ndarray) -> dict:
    """pycorrelate.pcorrelate on the first PYC_SECONDS of both channels, same bins.

    Returns tags/s (per tag of the prefix), the prefix size and whether its counts equal
    ours bin for bin; None values when pycorrelate is not importable.
    """
    out = {"pycorrelate": None, "pycorrelate_n_tags": None, "pycorrelate_identical": None}
    try:
        import pycorrelate  # type: ignore[import-not-found]
    except ImportError:
        return out
    cut = int(PYC_SECONDS * 1e12)
    a, b = t1[t1 < cut], t2[t2 < cut]
    out["pycorrelate_n_tags"] = int(a.size + b.size)
    try:
        n_bins = -(-2 * MAX_LAG_PS // BIN_WIDTH_PS)
        edges = -MAX_LAG_PS + np.arange(n_bins + 1, dtype=np.int64) * BIN_WIDTH_PS

        def run():
            return pycorrelate.pcorrelate(a, b, edges)

        ref = run()  # warm-up (numba JIT inside pycorrelate)
        _, ours = correlate(a, b, BIN_WIDTH_PS, MAX_LAG_PS)
        out["pycorrelate_identical"] = bool(
            ours.size == n_bins and np.array_equal(np.rint(ref * BIN_WIDTH_PS), ours)
        )
        out["pycorrelate"] = (a.size + b.size) / median_time(run, PYC_REPEATS)
    except Exception as exc:  # an incompatible pycorrelate version must not break the bench
        out["pycorrelate_error"] = repr(exc)
    return out


def main() -> None:
    rng = np.random.default_rng(SEED)
    t1 = poisson_tags(rng, RATE_CPS, DURATION_S)
    t2 = poisson_tags(rng, RATE_CPS, DURATION_S)

    correlate(t1[:1000], t2[:1000], BIN_WIDTH_PS, MAX_LAG_PS)  # warm-up: JIT / cache load
    _, counts = correlate(t1, t2, BIN_WIDTH_PS, MAX_LAG_PS)
    seconds = median_time(lambda: correlate(t1, t2, BIN_WIDTH_PS, MAX_LAG_PS), REPEATS)
    n_tags = int(t1.size + t2.size)

    pyc = bench_pycorrelate(t1, t2)
    result = {
        "bench": "correlate_linear",
        "tags_per_s": n_tags / seconds,
        "n_tags": n_tags,
        "rate_cps": RATE_CPS,
        "bin_width_ps": BIN_WIDTH_PS,
        "max_lag_ps": MAX_LAG_PS,
        "n_bins": int(counts.size),
        "n_pairs": int(counts.sum()),
        "duration_s": DURATION_S,
        "seconds_median": seconds,
        "repeats": REPEATS,
        **pyc,
        "pycorrelate_seconds_of_record": PYC_SECONDS,
        "speedup_vs_pycorrelate": None
        if pyc["pycorrelate"] is None
        else n_tags / seconds / pyc["pycorrelate"],
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
