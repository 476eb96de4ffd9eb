"""Log-binned correlation from the tags: exactness, pycorrelate agreement, streaming, and
the physics of its normalisation (flat for independent streams, telegraph bunching).

Reference: the definition. Every pair (i, j), d = t2[j] - t1[i], is counted in bin k
when edges[k] <= d < edges[k+1], evaluated by brute force on the N x M difference matrix.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hbtscope.analysis._log_pairs as lp
from hbtscope.analysis.correlation_log import (
    LogCorrelationAccumulator,
    correlate_log,
    expected_pairs,
    g2_log,
    g2_log_variance,
    log_edges,
    tau_centres,
)


def brute_force(t1, t2, edges):
    d = (np.asarray(t2, np.int64)[None, :] - np.asarray(t1, np.int64)[:, None]).ravel()
    e = np.asarray(edges, np.int64)
    k = np.searchsorted(e, d, side="right") - 1  # edges[k] <= d < edges[k+1]
    k = k[(k >= 0) & (k < e.size - 1)]
    return np.bincount(k, minlength=e.size - 1).astype(np.int64)


def poisson_tags(rng, rate_cps, duration_ps):
    n = rng.poisson(rate_cps * duration_ps / 1e12)
    return np.sort(rng.integers(0, int(duration_ps), n, dtype=np.int64))


# --- exactness ---------------------------------------------------------------------------

tag_values = st.integers(min_value=-3_000, max_value=3_000)


@st.composite
def log_case(draw):
    """Small sorted streams with duplicates and negatives, arbitrary increasing edges
    (negative, spanning zero, or log-like), and pairs placed exactly on edges."""
    edges = sorted(set(draw(st.lists(st.integers(-4_000, 4_000), min_size=2, max_size=25))))
    if len(edges) < 2:
        edges = [edges[0], edges[0] + 1]
    t1 = draw(st.lists(tag_values, max_size=50))
    t2 = draw(st.lists(tag_values, max_size=50))
    if t1 and draw(st.booleans()):
        picks = draw(
            st.lists(
                st.tuples(st.sampled_from(t1), st.sampled_from(edges), st.sampled_from([-1, 0, 1])),
                max_size=12,
            )
        )
        t2 = t2 + [a + e + o for a, e, o in picks]
    if draw(st.booleans()):
        t2 = t2 + t2[: draw(st.integers(0, len(t2)))]  # duplicated tags
    return (
        np.sort(np.asarray(t1, np.int64)),
        np.sort(np.asarray(t2, np.int64)),
        np.asarray(edges, np.int64),
    )


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_case(), st.sampled_from([0.0, 1.0, 1e9]))
def test_correlate_log_matches_brute_force(case, budget):
    # budget = partners per tag allowed in the directly enumerated window: 0 forces the
    # rank-sum path for every edge, 1e9 the widest direct window (both code paths).
    t1, t2, edges = case
    old = lp._DIRECT_PAIRS_PER_TAG
    lp._DIRECT_PAIRS_PER_TAG = budget
    try:
        counts = correlate_log(t1, t2, edges)
    finally:
        lp._DIRECT_PAIRS_PER_TAG = old
    assert counts.dtype == np.int64 and counts.shape == (edges.size - 1,)
    np.testing.assert_array_equal(counts, brute_force(t1, t2, edges))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n1,n2", [(300, 300), (900, 40), (40, 900), (0, 50), (50, 0)])
def test_random_streams_both_orientations(seed, n1, n2):
    # n1 >> n2 takes the mirrored loop (over the shorter stream)
    rng = np.random.default_rng(seed)
    t1 = np.sort(rng.integers(0, 200_000, n1))
    t2 = np.sort(rng.integers(0, 200_000, n2))
    edges = np.r_[-log_edges(10, 150_000, 6)[::-1], 0, log_edges(10, 150_000, 6)]
    np.testing.assert_array_equal(correlate_log(t1, t2, edges), brute_force(t1, t2, edges))


def test_large_tags_exact_and_edge_convention():
    base = 86_400 * 10**12 + 7  # ~1 day in ps
    t1 = np.array([base], np.int64)
    t2 = base + np.array([9, 10, 11, 99, 100], np.int64)
    # d = 10 belongs to [10, 100), d = 100 is out (half-open), d = 9 out
    np.testing.assert_array_equal(correlate_log(t1, t2, [10, 100]), [3])


def test_input_validation():
    t = np.array([0, 5, 10], np.int64)
    with pytest.raises(ValueError, match="sorted"):
        correlate_log(np.array([3, 1]), t, [0, 10])
    with pytest.raises(ValueError, match="increasing"):
        correlate_log(t, t, [0, 10, 10])
    with pytest.raises(ValueError, match="integer"):
        correlate_log(t, t, [0.5, 10])
    with pytest.raises(TypeError):
        correlate_log(t.astype(float), t, [0, 10])
    with pytest.raises(ValueError):
        correlate_log(t, t, [5])


def test_log_edges():
    e = log_edges()
    assert e[0] == 10_000 and e[-1] == 10**12 and e.dtype == np.int64
    assert e.size == 81  # 8 decades, 10 per decade
    assert np.all(np.diff(e) > 0)
    np.testing.assert_allclose(e[1:] / e[:-1], 10**0.1, rtol=1e-3)
    assert np.all(np.diff(log_edges(1, 100, 20)) > 0)  # rounding duplicates removed
    tc = tau_centres(np.array([-100, -10, 10, 1000]))
    np.testing.assert_allclose(tc, [-np.sqrt(1000), 0.0, 100.0])


# --- pycorrelate -------------------------------------------------------------------------


@pytest.mark.parametrize("symmetric", [False, True])
def test_matches_pycorrelate_bin_for_bin(symmetric):
    """pycorrelate.pcorrelate (Laurence et al. 2006) counts t2 - t1 in [edge_k, edge_k+1)
    and, with normalize=False, returns counts / diff(edges): identical floats expected."""
    pycorrelate = pytest.importorskip("pycorrelate")
    rng = np.random.default_rng(7)
    t1 = poisson_tags(rng, 100_000, 2e12)
    t2 = poisson_tags(rng, 100_000, 2e12)
    e = log_edges(10_000, 1e12, 10)
    edges = np.r_[-e[::-1], e] if symmetric else e
    counts = correlate_log(t1, t2, edges)
    ref = pycorrelate.pcorrelate(t1, t2, edges, normalize=False)
    np.testing.assert_array_equal(ref, counts / np.diff(edges))
    assert counts.sum() > 10**9  # long lags: ~1e5 partners per tag, never enumerated


# --- streaming ---------------------------------------------------------------------------


@st.composite
def chunked_case(draw):
    t1, t2, edges = draw(log_case())
    n = draw(st.integers(1, 6))
    c1 = sorted(draw(st.lists(st.integers(0, t1.size), min_size=n - 1, max_size=n - 1)))
    c2 = sorted(draw(st.lists(st.integers(0, t2.size), min_size=n - 1, max_size=n - 1)))
    return t1, t2, edges, np.split(t1, c1), np.split(t2, c2)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chunked_case())
def test_accumulator_equals_single_pass(case):
    t1, t2, edges, ch1, ch2 = case
    acc = LogCorrelationAccumulator(edges)
    for a, b in zip(ch1, ch2, strict=True):
        acc.add(a, b)
    np.testing.assert_array_equal(acc.counts, correlate_log(t1, t2, edges))
    assert acc.n_tags == (t1.size, t2.size)


def test_accumulator_realistic_chunks_with_t_end_and_bounded_history():
    rng = np.random.default_rng(3)
    T = 3e12
    t1, t2 = poisson_tags(rng, 50_000, T), poisson_tags(rng, 50_000, T)
    edges = log_edges(10_000, 1e11, 10)  # 10 ns .. 100 ms
    acc = LogCorrelationAccumulator(edges)
    cuts = np.linspace(0, T, 31)  # 100 ms chunks, cut at common times
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        acc.add(t1[(t1 >= lo) & (t1 < hi)], t2[(t2 >= lo) & (t2 < hi)], t_end_ps=int(hi))
        # history <= last edge (100 ms) of tags: ~5e3 tags at 50 kcps
        assert acc._hist1.size < 7_000 and acc._hist2.size < 7_000
    np.testing.assert_array_equal(acc.counts, correlate_log(t1, t2, edges))
    tau, g = acc.g2(T)
    tau1, g1 = g2_log(t1, t2, edges, T)
    np.testing.assert_array_equal(g, g1)
    np.testing.assert_array_equal(tau, tau1)


def test_accumulator_rejects_out_of_order_chunks():
    acc = LogCorrelationAccumulator([0, 10, 100])
    acc.add(np.array([5, 50]), np.array([7]), t_end_ps=60)
    with pytest.raises(ValueError, match="consecutive"):
        acc.add(np.array([40]), np.array([]))
    with pytest.raises(ValueError, match="t_end_ps"):
        acc.add(np.array([]), np.array([55]))


# --- normalisation -----------------------------------------------------------------------


def test_expected_pairs_is_the_overlap_integral():
    T = 1e6
    edges = np.array([-2e6, -5e5, -10, 0, 10, 3e5, 9e5, 2e6])
    got = expected_pairs(edges, 3, 5, T)
    # numerical integral of 15/T^2 * max(T - |tau|, 0)
    ref = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        x = np.linspace(a, b, 200_001)
        y = 15 / T**2 * np.maximum(T - np.abs(x), 0)
        ref.append(np.trapezoid(y, x))
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12)
    # no overlap beyond +-T: NaN g2
    t = np.array([0, 10, 20], np.int64)
    _, g = g2_log(t, t, [1e6 + 1, 2e6], 1e6)
    assert np.isnan(g).all()


def test_g2_log_of_independent_poisson_streams_is_one():
    """Two independent 100 kcps Poisson streams, 10 s, 10 ns - 1 s: g2 = 1 in every bin
    within its error. At long lags the Poisson error sqrt(counts)/E is far too small (a
    1 s bin holds 1e5 partners per tag and shares the slow shot noise of the tag
    positions); g2_log_variance gives the right error, checked in the next test."""
    rng = np.random.default_rng(11)
    T = 10e12
    t1, t2 = poisson_tags(rng, 100_000, T), poisson_tags(rng, 100_000, T)
    edges = log_edges()
    tau, g = g2_log(t1, t2, edges, T)
    var = g2_log_variance(edges, t1.size, t2.size, T)
    z = (g - 1.0) / np.sqrt(var)
    # 80 bins: P(max |z| > 4.5) ~ 80 * 7e-6 under N(0, 1)
    assert np.all(np.abs(z) < 4.5), z
    assert abs(np.mean(z)) < 1.0  # bins are positively correlated at long lags
    # the naive Poisson error would be violated at the longest lags
    exp = expected_pairs(edges, t1.size, t2.size, T)
    assert np.sqrt(var[-1]) > 30 * np.sqrt(exp[-1]) / exp[-1]
    assert np.all(np.diff(tau) > 0)


@pytest.mark.slow
def test_g2_log_variance_matches_ensemble_spread():
    """Spread of g2 over 300 independent realisations equals the predicted error in every
    bin (including negative lags, a bin across zero and bins comparable with T). With
    300 samples the ratio of standard deviations has a relative error 1/sqrt(600) = 4 %:
    tolerance 0.85 - 1.15 per bin (~3.7 sigma), 0.95 - 1.05 for the mean over bins."""
    rng = np.random.default_rng(5)
    T = 1e12
    e = log_edges(10_000, 8e11, 4)
    edges = np.r_[-e[::-1], e]
    edges = np.r_[edges[: e.size - 1], -5_000, edges[e.size :]]  # one bin across zero
    gs = []
    n1s, n2s = [], []
    for _ in range(300):
        t1, t2 = poisson_tags(rng, 20_000, T), poisson_tags(rng, 30_000, T)
        gs.append(g2_log(t1, t2, edges, T)[1])
        n1s.append(t1.size)
        n2s.append(t2.size)
    gs = np.array(gs)
    pred = np.sqrt(g2_log_variance(edges, np.mean(n1s), np.mean(n2s), T))
    ratio = gs.std(axis=0, ddof=1) / pred
    assert np.all((ratio > 0.85) & (ratio < 1.15)), ratio
    assert 0.95 < ratio.mean() < 1.05
    # unbiased: mean within 4 standard errors in every bin
    assert np.all(np.abs(gs.mean(axis=0) - 1) < 4 * pred / np.sqrt(300))


def telegraph_tags(rng, T_s, k_off, k_on, i_on, i_off):
    """Two detectors watching one emitter that switches ON <-> OFF (exponential dwell
    times 1/k_off in ON, 1/k_on in OFF), Poisson photons at i_on / i_off per detector.
    g2 = 1 + C exp(-tau/tau_c), C = p(1-p)(i_on - i_off)^2/<I>^2, p = k_on/(k_on+k_off),
    tau_c = 1/(k_on + k_off)."""
    p_on = k_on / (k_on + k_off)
    n = int(T_s * (k_on + k_off)) + 1_000
    state0 = rng.random() < p_on
    states = (np.arange(n) % 2 == 0) == state0
    dwell = rng.exponential(np.where(states, 1 / k_off, 1 / k_on))
    bounds = np.r_[0.0, np.cumsum(dwell)]
    assert bounds[-1] > T_s
    bounds = np.minimum(bounds, T_s)
    dur = np.diff(bounds)
    out = []
    for _ in range(2):
        k = rng.poisson(np.where(states, i_on, i_off) * dur)
        t = np.repeat(bounds[:-1], k) + rng.random(k.sum()) * np.repeat(dur, k)
        out.append(np.sort(np.round(t * 1e12).astype(np.int64)))
    mean_i = i_off + (i_on - i_off) * p_on
    C = p_on * (1 - p_on) * (i_on - i_off) ** 2 / mean_i**2
    return out[0], out[1], C, 1e12 / (k_on + k_off)


def test_g2_log_of_telegraph_source_follows_exponential_bunching():
    """Blinking emitter (D'Amato et al. Fig. 4d-like: bunching ~1.1 decaying in ~20 us): the
    log-binned g2 equals the bin average of 1 + C exp(-tau/tau_c) in every bin within
    its error (shot noise dominates; the telegraph contrast fluctuates by only
    ~C sqrt(tau_c/T) ~ 1e-4 over 5e5 blinking cycles)."""
    rng = np.random.default_rng(21)
    T_s = 10.0
    t1, t2, C, tau_c = telegraph_tags(rng, T_s, k_off=1e4, k_on=4e4, i_on=1e5, i_off=3e4)
    T = T_s * 1e12
    edges = log_edges()
    tau, g = g2_log(t1, t2, edges, T)
    a, b = edges[:-1].astype(float), edges[1:].astype(float)
    # exact bin average of (T - tau)(1 + C e^{-tau/tau_c}) / bin average of (T - tau)
    prim = (
        np.exp(-a / tau_c) * (tau_c**2 - tau_c * (T - a)),
        np.exp(-b / tau_c) * (tau_c**2 - tau_c * (T - b)),
    )
    L = expected_pairs(edges, 1, 1, T) * T * T
    truth = 1 + C * (prim[1] - prim[0]) / L
    var = g2_log_variance(edges, t1.size, t2.size, T, truth)
    z = (g - truth) / np.sqrt(var)
    assert np.all(np.abs(z) < 4.5), z
    # and it is clearly not flat: the first decade holds the full contrast C ~ 0.1
    assert np.mean(g[:10]) - 1 == pytest.approx(C, rel=0.05)
    assert abs(np.mean(g[tau > 1e9]) - 1) < 2e-3  # back to 1 beyond 1 ms
