"""Benchmark of hbtscope.analysis.correlate_log (single core) against pycorrelate.

Two independent Poisson channels at 100 kcps each for 10 s, log bins from 10 ns to 1 s
(10 per decade, 80 bins). Throughput is the total number of tags of both channels
divided by the median wall time of one call, after a warm-up call (JIT compile
excluded). pycorrelate.pcorrelate (the Laurence et al. 2006 algorithm, numba) runs on
the same tags and edges; its counts are checked to be identical.

tttrlib.Correlator (when installed; null otherwise), two of its methods:

* ``method="wahl"`` (its default, multi-tau, Wahl et al. 2003) on the same full tags, with
  its own quasi-log lag axis in ps: ``n_bins = 3`` lags per cascade (one octave each, about
  10 per decade as ours), ``n_casc = 39`` cascades (0 ps to 1.6 s). Multi-tau coarsens the
  tags by 2**c in cascade c, so its value at lag x_j counts the pairs within +-w_j of x_j
  with a triangular weight (w_j = 2**c): it is not an exact pair count on any set of
  edges. It is compared with ours on the centred windows [x_j - w_j/2, x_j + w_j/2)
  (equal expectation for uncorrelated tags) for the lags 10 ns..1 s:
  ``tttrlib_wahl_ratio_median`` / ``_max_dev`` (statistical agreement only).
* ``method="laurence"`` (Laurence et al. 2006) with our edges given through
  ``curve.set_x_axis``: the same pair-count definition as ours, but it enumerates every
  pair (cost ~ number of pairs: ~1e11 pairs for the full record), so it runs on the first
  ``TTTRLIB_LAURENCE_S`` of both channels and is timed against ours on that prefix. In
  tttrlib 0.26.2 it takes ``t2 - t1`` in unsigned 64-bit arithmetic, so a partner before
  the tag wraps around and stops its pointer: the short-lag bins come out wrong
  (``tttrlib_laurence_identical``, ``_bins_differing``, and ``_agrees_from_ps``, the first
  edge from which every bin agrees). Shifting channel 2 and the edges by the same S
  (> the largest gap between channel-1 tags; lags and bins unchanged) avoids the wrap:
  that run is the one timed, and its counts are compared with ours bin by bin
  (``tttrlib_laurence_shifted_identical``).

Prints one JSON line.

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
TTTRLIB_WAHL_BINS, TTTRLIB_WAHL_CASC = 3, 39
TTTRLIB_REPEATS = 3
TTTRLIB_LAURENCE_S = 0.5


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


def _windows(t1, t2, lo, hi) -> np.ndarray:
    """Our exact pair counts in [lo_j, hi_j) for possibly overlapping windows."""
    all_e = np.unique(np.r_[lo, hi])
    cum = np.r_[0, np.cumsum(correlate_log(t1, t2, all_e))]
    return cum[np.searchsorted(all_e, hi)] - cum[np.searchsorted(all_e, lo)]


def bench_tttrlib(t1, t2, edges) -> dict:
    out = {
        "tttrlib_version": None,
        "tttrlib_wahl_tags_per_s": None,
        "tttrlib_wahl_n_lags": None,
        "tttrlib_wahl_ratio_median": None,
        "tttrlib_wahl_ratio_max_dev": None,
        "tttrlib_laurence_tags_per_s": None,
        "tttrlib_laurence_n_tags": None,
        "ours_on_laurence_prefix_tags_per_s": None,
        "tttrlib_laurence_identical": None,
        "tttrlib_laurence_shifted_identical": None,
        "tttrlib_laurence_bins_differing": None,
        "tttrlib_laurence_agrees_from_ps": None,
    }
    try:
        import tttrlib  # type: ignore[import-not-found]
    except ImportError:
        return out
    out["tttrlib_version"] = getattr(tttrlib, "__version__", "unknown")
    u1, u2 = t1.astype(np.uint64), t2.astype(np.uint64)
    w1, w2 = np.ones(t1.size), np.ones(t2.size)

    def wahl():
        c = tttrlib.Correlator(method="wahl", n_bins=TTTRLIB_WAHL_BINS, n_casc=TTTRLIB_WAHL_CASC)
        c.set_events(u1, w1, u2, w2)
        return np.asarray(c.get_x_axis()), np.asarray(c.get_corr())

    try:
        x, corr = wahl()
        ts = timings(wahl, TTTRLIB_REPEATS)
        out["tttrlib_wahl_tags_per_s"] = (t1.size + t2.size) / float(np.median(ts))
        out["tttrlib_wahl_n_lags"] = int(x.size)
        j = np.arange(x.size)
        w = np.where(j > 0, 2.0 ** np.floor(np.maximum(j - 1, 0) / TTTRLIB_WAHL_BINS), 1.0)
        lo = np.rint(x - w / 2).astype(np.int64)
        hi = np.rint(x + w / 2).astype(np.int64)
        sel = (lo >= edges[0]) & (hi <= edges[-1])
        ours = _windows(t1, t2, lo[sel], hi[sel])
        ratio = corr[sel] / np.maximum(ours, 1)
        out["tttrlib_wahl_ratio_median"] = float(np.median(ratio))
        out["tttrlib_wahl_ratio_max_dev"] = float(np.max(np.abs(ratio - 1)))
    except Exception as exc:  # an incompatible tttrlib version must not break the bench
        out["tttrlib_wahl_error"] = repr(exc)

    cut = int(TTTRLIB_LAURENCE_S * 1e12)
    a, b = t1[t1 < cut], t2[t2 < cut]
    out["tttrlib_laurence_n_tags"] = int(a.size + b.size)

    def laurence(shift=0):
        c = tttrlib.Correlator(method="laurence", n_bins=edges.size, n_casc=1)
        c.set_events(
            a.astype(np.uint64), np.ones(a.size), (b + shift).astype(np.uint64), np.ones(b.size)
        )
        c.curve.set_x_axis([int(e) + shift for e in edges])
        return np.rint(np.asarray(c.get_corr())[: edges.size - 1]).astype(np.int64)

    try:
        ref = laurence()
        shift = 10**10 + int(np.max(np.diff(a), initial=0)) + max(int(a[0] - b[0]), 0)
        shifted = laurence(shift)
        ts = timings(lambda: laurence(shift), TTTRLIB_REPEATS)
        out["tttrlib_laurence_tags_per_s"] = (a.size + b.size) / float(np.median(ts))
        ours = correlate_log(a, b, edges)
        ts = timings(lambda: correlate_log(a, b, edges), TTTRLIB_REPEATS)
        out["ours_on_laurence_prefix_tags_per_s"] = (a.size + b.size) / float(np.median(ts))
        out["tttrlib_laurence_shifted_identical"] = bool(np.array_equal(shifted, ours))
        bad = np.flatnonzero(ref != ours)
        out["tttrlib_laurence_identical"] = bool(bad.size == 0)
        out["tttrlib_laurence_bins_differing"] = int(bad.size)
        out["tttrlib_laurence_agrees_from_ps"] = int(edges[bad[-1] + 1] if bad.size else edges[0])
    except Exception as exc:  # as above: the figure says why it is missing
        out["tttrlib_laurence_error"] = repr(exc)
    return out


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
    tt = bench_tttrlib(t1, t2, edges)
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
        **tt,
        "python": platform.python_version(),
        "numpy": np.__version__,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
