"""The interleaved merge of _log_pairs._rank_sums equals its definition,
S(e) = sum_i #{j : b[j] < a[i] + e}, for any number of edges (lanes padded by repeating
the last edge, lanes finishing at different steps), ties, equal timestamps, huge gaps,
single tags and empty streams; and add_pairs stays exact on the same kinds of input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hbtscope.analysis import _log_pairs as lp


def rank_sums_reference(a: np.ndarray, b: np.ndarray, e_val: np.ndarray) -> np.ndarray:
    return np.array([np.searchsorted(b, a + e).sum() for e in e_val], dtype=np.int64)


def pair_counts_reference(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> np.ndarray:
    d = (b[None, :] - a[:, None]).ravel()
    k = np.searchsorted(edges, d, side="right") - 1
    k = k[(k >= 0) & (k < edges.size - 1)]
    return np.bincount(k, minlength=edges.size - 1).astype(np.int64)


def padded(b: np.ndarray) -> np.ndarray:
    out = np.full(b.size + 2, np.iinfo(np.int64).max, dtype=np.int64)
    out[: b.size] = b
    return out


@st.composite
def streams(draw):
    """Two sorted streams: clustered values (many ties), occasional huge gaps."""
    scale = draw(st.sampled_from([1, 10, 1_000, 10**9]))
    vals = st.integers(-40, 40).map(lambda v: v * scale)
    a = draw(st.lists(vals, max_size=60))
    b = draw(st.lists(vals, max_size=60))
    if b and draw(st.booleans()):
        b = b + [b[0]] * draw(st.integers(0, 30))  # a burst of equal timestamps
    return np.sort(np.asarray(a, np.int64)), np.sort(np.asarray(b, np.int64)), scale


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.data())
def test_rank_sums_match_definition(ab, data):
    a, b, scale = ab
    e_val = np.asarray(
        data.draw(
            st.lists(st.integers(-100, 100).map(lambda v: v * scale), min_size=1, max_size=20)
        ),
        np.int64,
    )
    e_val = np.sort(e_val)  # increasing as in add_pairs (the kernel does not need it)
    got = lp._rank_sums(a, padded(b), b.size, e_val)
    np.testing.assert_array_equal(got, rank_sums_reference(a, b, e_val))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.data())
def test_add_pairs_matches_brute_force(ab, data):
    a, b, scale = ab
    edges = np.unique(
        np.asarray(
            data.draw(
                st.lists(st.integers(-100, 100).map(lambda v: v * scale), min_size=2, max_size=30)
            ),
            np.int64,
        )
    )
    if edges.size < 2:
        edges = np.array([edges[0], edges[0] + 1], np.int64)
    counts = np.zeros(edges.size - 1, np.int64)
    lp.add_pairs(a, b, edges, counts)
    np.testing.assert_array_equal(counts, pair_counts_reference(a, b, edges))


@pytest.mark.parametrize(
    "a,b",
    [
        (np.zeros(0, np.int64), np.arange(5, dtype=np.int64)),
        (np.arange(5, dtype=np.int64), np.zeros(0, np.int64)),
        (np.array([7], np.int64), np.array([7], np.int64)),
        (np.full(200, 3, np.int64), np.full(150, 3, np.int64)),  # all timestamps equal
        (np.array([0, 10**15], np.int64), np.array([5, 10**15 + 5], np.int64)),  # huge gap
        (np.arange(0, 10**6, 10_000, dtype=np.int64), np.arange(0, 10**6, 100, dtype=np.int64)),
        (np.arange(0, 10**6, 100, dtype=np.int64), np.arange(0, 10**6, 10_000, dtype=np.int64)),
    ],
)
def test_extreme_inputs(a, b):
    edges = np.r_[-np.arange(1, 20)[::-1] * 53_000, 0, 1, np.arange(1, 20) * 53_000]
    e_val = np.asarray(edges, np.int64)
    np.testing.assert_array_equal(
        lp._rank_sums(a, padded(b), b.size, e_val), rank_sums_reference(a, b, e_val)
    )
    counts = np.zeros(edges.size - 1, np.int64)
    lp.add_pairs(a, b, edges, counts)
    np.testing.assert_array_equal(counts, pair_counts_reference(a, b, edges))


def test_direct_window_ignores_long_pauses():
    # Two acquisitions 1e5 s apart: the mean rate over the whole span is ~1e5 times too
    # low and would open a direct window over every bin (every pair enumerated); the
    # window must be about that of a single acquisition.
    rng = np.random.default_rng(11)
    one = np.sort(rng.integers(0, 10**12, 100_000))
    two = np.r_[one, 10**17 + np.sort(rng.integers(0, 10**12, 100_000))]
    edges = np.round(10_000 * 10 ** (np.arange(81) / 10)).astype(np.int64)
    w_one = lp._direct_window(edges, lp._typical_rate(one))
    w_two = lp._direct_window(edges, lp._typical_rate(two))
    assert w_one[1] - w_one[0] > 2
    # (its rate comes from the median gap, a little above the mean rate of Poisson tags)
    assert w_two[0] == w_one[0] and abs(w_two[1] - w_one[1]) <= 1
    assert lp._typical_rate(np.full(5000, 3, np.int64)) == 0.0  # all equal: span 0
    ties = np.repeat(np.arange(0, 10**9, 10**6), 7)  # median gap 0
    assert lp._direct_window(edges, lp._typical_rate(ties)) == (0, 0)
