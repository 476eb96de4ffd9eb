"""The lookup-table binning of correlate_log's directly enumerated lags equals the binary
search it replaces, pair for pair (edges of every kind, including 1 ps wide bins)."""

from __future__ import annotations

import numpy as np
import pytest

from hbtscope.analysis import _log_pairs as lp
from hbtscope.analysis import correlation_log as cl


def _direct(a, b, w, use_lut):
    b_pad = np.empty(b.size + 2, np.int64)
    b_pad[: b.size] = b
    b_pad[b.size :] = np.iinfo(np.int64).max
    n = w.size - 1
    n_pow = 1
    while n_pow < n:
        n_pow <<= 1
    win = np.full(n_pow + 1, np.iinfo(np.int64).max, np.int64)
    win[: n + 1] = w
    lut, shift = lp._bin_lut(w) if use_lut else (np.empty(0, np.int64), 0)
    counts = np.zeros(n, np.int64)
    lp._direct_pairs(a, b_pad, b.size, w[0], w[-1], win, n_pow, lut, shift, counts)
    return counts, lut.size


@pytest.mark.parametrize(
    "w",
    [
        cl.log_edges(10_000, 10_000_000, 10),
        cl.log_edges(1, 50_000, 25),
        np.r_[-cl.log_edges(100, 1e6, 7)[::-1], cl.log_edges(100, 1e6, 7)],
        np.arange(-5000, 5001, 1),
        np.array([-7, -3, 0, 1, 2, 900, 901, 50_000]),
    ],
)
def test_lut_binning_equals_binary_search(w):
    rng = np.random.default_rng(3)
    a = np.sort(rng.integers(0, 10**9, 20_000))
    b = np.sort(np.r_[rng.integers(0, 10**9, 20_000), a[:5000] + rng.integers(-3000, 3000, 5000)])
    ref, _ = _direct(a, b, np.asarray(w, np.int64), False)
    got, n_lut = _direct(a, b, np.asarray(w, np.int64), True)
    assert n_lut > 0
    assert ref.sum() > 0
    np.testing.assert_array_equal(got, ref)


def test_lut_too_large_falls_back():
    lut, _ = lp._bin_lut(np.array([0, 1, 2, 10**9], np.int64))
    assert lut.size == 0
