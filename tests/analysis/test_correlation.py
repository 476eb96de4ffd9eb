"""Physics/consistency checks of the time-tag cross-correlation.

The reference is the definition itself: every pair (i, j), d = t2[j] - t1[i], counted
in bin floor((d + max_lag) / bin_width) when -max_lag <= d < max_lag, evaluated by
brute force on the full N x M difference matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hbtscope.analysis import CorrelationAccumulator, correlate


def brute_force(t1, t2, bin_width, max_lag):
    n_bins = int(np.ceil(2 * max_lag / bin_width))
    t1 = np.asarray(t1, dtype=np.int64)
    t2 = np.asarray(t2, dtype=np.int64)
    d = (t2[None, :] - t1[:, None]).ravel()
    d = d[(d >= -max_lag) & (d < max_lag)]
    idx = (d + max_lag) // bin_width
    return np.bincount(idx, minlength=n_bins).astype(np.int64)


def sorted_tags(values):
    return np.sort(np.asarray(values, dtype=np.int64))


# --- hypothesis strategies ---------------------------------------------------------------

tag_values = st.integers(min_value=-5_000, max_value=5_000)


@st.composite
def correlation_case(draw):
    """Small sorted int64 streams with duplicates/negatives/empties, plus exact-edge pairs."""
    max_lag = draw(st.integers(min_value=1, max_value=3_000))
    bin_width = draw(st.integers(min_value=1, max_value=2 * max_lag + 50))
    t1 = draw(st.lists(tag_values, max_size=40))
    t2 = draw(st.lists(tag_values, max_size=40))
    if t1 and draw(st.booleans()):
        # put some t2 exactly at / next to the edges of the lag window of some t1
        offsets = [-max_lag, -max_lag - 1, -max_lag + 1, max_lag, max_lag - 1, max_lag + 1, 0]
        picks = draw(
            st.lists(st.tuples(st.sampled_from(t1), st.sampled_from(offsets)), max_size=10)
        )
        t2 = t2 + [a + o for a, o in picks]
    if draw(st.booleans()):
        # duplicated tags
        t1 = t1 + t1[: draw(st.integers(0, len(t1)))]
    return sorted_tags(t1), sorted_tags(t2), bin_width, max_lag


# --- correlate ---------------------------------------------------------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(correlation_case())
def test_correlate_matches_brute_force(case):
    t1, t2, bw, ml = case
    lag, counts = correlate(t1, t2, bw, ml)
    expected = brute_force(t1, t2, bw, ml)
    assert counts.dtype == np.int64
    assert lag.dtype == np.float64
    assert counts.shape == expected.shape == lag.shape
    np.testing.assert_array_equal(counts, expected)
    # every pair inside the window lands in exactly one bin
    d = (t2[None, :] - t1[:, None]).ravel()
    assert counts.sum() == np.count_nonzero((d >= -ml) & (d < ml))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("bw,ml", [(7, 1_000), (1_000, 1_000), (333, 10_000), (3, 2)])
def test_correlate_random_against_brute_force(seed, bw, ml):
    rng = np.random.default_rng(seed)
    t1 = sorted_tags(rng.integers(-50_000, 50_000, size=rng.integers(0, 400)))
    t2 = sorted_tags(rng.integers(-50_000, 50_000, size=rng.integers(0, 400)))
    _, counts = correlate(t1, t2, bw, ml)
    np.testing.assert_array_equal(counts, brute_force(t1, t2, bw, ml))


def test_lag_axis_and_edges():
    # bin width does not divide 2*max_lag: 2*10/3 -> 7 bins, last one partially filled
    lag, counts = correlate(np.array([0]), np.array([-10, -9, 0, 9, 10]), 3, 10)
    assert lag.size == 7
    np.testing.assert_allclose(lag, -10 + (np.arange(7) + 0.5) * 3)
    # d = -10 is in (first bin), d = +10 is out (half-open), d = 9 is in the last bin
    np.testing.assert_array_equal(counts, [2, 0, 0, 1, 0, 0, 1])


def test_sign_convention_positive_lag_means_t2_later():
    lag, counts = correlate(np.array([1_000]), np.array([1_500]), 100, 1_000)
    assert lag[np.argmax(counts)] == pytest.approx(550.0)


def test_large_tags_exact_integer_arithmetic():
    # ~1 day in ps: float64 would lose the last ps digits of the differences
    base = 86_400 * 10**12 + 123_456_789
    t1 = np.array([base, base + 1], dtype=np.int64)
    t2 = np.array([base + 1, base + 2], dtype=np.int64)
    _, counts = correlate(t1, t2, 1, 3)
    np.testing.assert_array_equal(counts, brute_force(t1 - base, t2 - base, 1, 3))


@pytest.mark.parametrize(
    "t1,t2", [([], []), ([], [1, 2, 3]), ([1, 2, 3], []), (np.array([], np.int64), [5])]
)
def test_empty_inputs_give_zero_counts(t1, t2):
    lag, counts = correlate(np.asarray(t1, dtype=np.int64), np.asarray(t2, dtype=np.int64), 10, 100)
    assert lag.size == counts.size == 20
    assert counts.sum() == 0


def test_uncorrelated_poisson_streams_are_flat():
    # Two independent Poisson streams: expected pairs per bin = r1 * r2 * T * bin_width.
    rng = np.random.default_rng(1)
    rate, duration_ps = 1e5 / 1e12, 2e12  # 100 kcps, 2 s
    t1 = np.cumsum(rng.exponential(1 / rate, int(rate * duration_ps))).astype(np.int64)
    t2 = np.cumsum(rng.exponential(1 / rate, int(rate * duration_ps))).astype(np.int64)
    _, counts = correlate(t1, t2, 100_000, 1_000_000)
    expected = t1.size * t2.size / duration_ps * 100_000
    assert counts.mean() == pytest.approx(expected, rel=0.05)


@pytest.mark.parametrize(
    "t1,t2",
    [([3, 2, 5], [1, 2]), ([1, 2], [0, 4, 3])],
)
def test_unsorted_raises(t1, t2):
    with pytest.raises(ValueError, match="sorted"):
        correlate(np.array(t1, dtype=np.int64), np.array(t2, dtype=np.int64), 1, 10)


@pytest.mark.parametrize("bw,ml", [(0, 10), (-5, 10), (1, 0), (1, -10), (1.5, 10)])
def test_bad_bin_parameters_raise(bw, ml):
    with pytest.raises(ValueError):
        correlate(np.array([1], dtype=np.int64), np.array([2], dtype=np.int64), bw, ml)


def test_non_integer_tags_rejected():
    with pytest.raises(TypeError):
        correlate(np.array([1.0, 2.0]), np.array([1, 2], dtype=np.int64), 1, 10)


def test_integral_float_parameters_accepted():
    t = np.array([0, 10, 20], dtype=np.int64)
    np.testing.assert_array_equal(correlate(t, t, 1e1, 1e2)[1], correlate(t, t, 10, 100)[1])


# --- accumulator -------------------------------------------------------------------------


def split(t, cuts):
    return np.split(t, np.clip(np.sort(np.asarray(cuts, dtype=np.int64)), 0, t.size))


@st.composite
def chunked_case(draw):
    t1, t2, bw, ml = draw(correlation_case())
    n_chunks = draw(st.integers(min_value=1, max_value=6))
    # Independent cut points per channel: each channel only needs to be ordered in time.
    c1 = draw(st.lists(st.integers(0, t1.size), min_size=n_chunks - 1, max_size=n_chunks - 1))
    c2 = draw(st.lists(st.integers(0, t2.size), min_size=n_chunks - 1, max_size=n_chunks - 1))
    return t1, t2, bw, ml, split(t1, c1), split(t2, c2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked_case())
def test_accumulator_equals_single_pass(case):
    t1, t2, bw, ml, chunks1, chunks2 = case
    acc = CorrelationAccumulator(bw, ml)
    for a, b in zip(chunks1, chunks2, strict=True):
        acc.add(a, b)
    lag, counts = correlate(t1, t2, bw, ml)
    np.testing.assert_array_equal(acc.counts, counts)
    np.testing.assert_array_equal(acc.lag_ps, lag)
    assert acc.n_tags == (t1.size, t2.size)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(correlation_case(), st.lists(tag_values, max_size=5))
def test_accumulator_with_common_time_cuts_and_t_end(case, cut_times):
    """Acquisition-like chunking: both channels cut at the same times, t_end_ps given."""
    t1, t2, bw, ml = case
    cuts = sorted(cut_times)
    acc = CorrelationAccumulator(bw, ml)
    lo = None
    for c in [*cuts, None]:
        sel1 = np.ones(t1.size, bool) if lo is None else t1 >= lo
        sel2 = np.ones(t2.size, bool) if lo is None else t2 >= lo
        if c is not None:
            sel1 &= t1 < c
            sel2 &= t2 < c
        acc.add(t1[sel1], t2[sel2], t_end_ps=c)
        lo = c
    np.testing.assert_array_equal(acc.counts, correlate(t1, t2, bw, ml)[1])


def test_accumulator_history_stays_bounded():
    rng = np.random.default_rng(3)
    ml = 1_000_000
    acc = CorrelationAccumulator(1_000, ml)
    t1_all, t2_all = [], []
    for i in range(20):
        lo, hi = i * 10**9, (i + 1) * 10**9  # 1 ms chunks at ~1 Mcps
        t1 = np.sort(rng.integers(lo, hi, 1000))
        t2 = np.sort(rng.integers(lo, hi, 1000))
        acc.add(t1, t2, t_end_ps=hi)
        t1_all.append(t1)
        t2_all.append(t2)
        # history never exceeds max_lag of tags (~ 1 Mcps * 1 us = 1 tag, generous bound)
        assert acc._hist1.size < 50 and acc._hist2.size < 50
    expected = correlate(np.concatenate(t1_all), np.concatenate(t2_all), 1_000, ml)[1]
    np.testing.assert_array_equal(acc.counts, expected)


def test_accumulator_rejects_out_of_order_chunks():
    acc = CorrelationAccumulator(10, 100)
    acc.add(np.array([0, 50], dtype=np.int64), np.array([10], dtype=np.int64))
    with pytest.raises(ValueError, match="before"):
        acc.add(np.array([40], dtype=np.int64), np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="sorted"):
        acc.add(np.array([90, 80], dtype=np.int64), np.array([], dtype=np.int64))


def test_accumulator_empty_and_reset():
    acc = CorrelationAccumulator(10, 100)
    acc.add(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert acc.counts.sum() == 0 and acc.counts.size == 20
    acc.add(np.array([0], dtype=np.int64), np.array([5], dtype=np.int64))
    assert acc.counts.sum() == 1
    acc.reset()
    assert acc.counts.sum() == 0
