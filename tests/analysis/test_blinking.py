"""Blinking analysis on synthetic photon streams with known truth.

Streams are Poisson photons of a telegraph (two- or three-state) emitter whose switching
times are drawn from exponential dwell times; the realised switching times and state
durations are the ground truth.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtscope.analysis.blinking import (
    ChangePointResult,
    change_points,
    cluster_levels,
    cpa_critical_value,
    intensity_histogram,
    intensity_trace,
    mean_arrival_time_per_bin,
    on_fraction,
    photons_in_windows,
    simulate_cpa_null,
    two_level_fit,
    window_mask,
)

PS = 1e12


def telegraph(rng, duration_s, rates_cps, dwell_s, start_state=0, next_state=None):
    """Photon times (int64 ps) of an emitter hopping between states.

    ``dwell_s[s]``: mean dwell time in state s; ``next_state(s, rng)`` picks the next state
    (default: cycle). Returns (t_ps, switch_times_s, segments [(t0, t1, state)])."""
    n_states = len(rates_cps)
    if next_state is None:

        def next_state(s, _rng):
            return (s + 1) % n_states

    t, s = 0.0, start_state
    chunks, segs = [], []
    while t < duration_s:
        e = min(t + rng.exponential(dwell_s[s]), duration_s)
        n = rng.poisson(rates_cps[s] * (e - t))
        chunks.append(rng.uniform(t, e, n))
        segs.append((t, e, s))
        t, s = e, next_state(s, rng)
    times = np.sort(np.concatenate(chunks))
    t_ps = np.round(times * PS).astype(np.int64)
    switches = np.array([seg[1] for seg in segs[:-1]])
    return t_ps, switches, segs


def constant_stream(rng, n_photons, rate_cps=1e4):
    return np.cumsum(np.round(rng.exponential(PS / rate_cps, n_photons))).astype(np.int64) + 1


# ----------------------------------------------------------------------------- trace


def test_intensity_trace_counts_and_edges():
    t = np.array([0, 5, 9, 10, 19, 20, 29, 35], dtype=np.int64)
    starts, c = intensity_trace(t, 10, t_start_ps=0, t_stop_ps=30)
    np.testing.assert_array_equal(starts, [0, 10, 20])
    np.testing.assert_array_equal(c, [3, 2, 2])  # 35 is beyond the last whole bin
    # default span: first photon to last + 1 -> bins [0,10),[10,20),[20,30); 35 dropped
    starts, c = intensity_trace(t, 10)
    np.testing.assert_array_equal(c, [3, 2, 2])
    # an empty record with a known span
    starts, c = intensity_trace(np.array([], dtype=np.int64), 10, 0, 50)
    assert c.tolist() == [0] * 5
    edges, h = intensity_histogram(np.array([3, 2, 2, 0, 5]))
    assert h.sum() == 5 and edges[0] == -0.5 and h[2] == 2


def test_intensity_trace_is_exact_for_large_tags():
    base = np.int64(2**60)
    t = base + np.array([0, 999_999, 1_000_000, 2_999_999], dtype=np.int64)
    _, c = intensity_trace(t, 1_000_000, t_start_ps=base, t_stop_ps=base + 3_000_000)
    np.testing.assert_array_equal(c, [2, 1, 1])


# ----------------------------------------------------------------------------- ON fraction


def _on_truth(segs, on_state=1):
    total = segs[-1][1]
    return sum(e - s for s, e, st_ in segs if st_ == on_state) / total


def test_on_fraction_auto_matches_truth():
    """Two levels (OFF 1 kcps, ON 20 kcps), dwell 0.125 s OFF / 0.5 s ON -> ON 80 %, 10 ms
    bins over 120 s. Against the realised ON time, only bins straddling a switch can be
    misclassified, each by U(0,1) - 1{u > 1/2} of a bin (sd 1/sqrt(12)): tolerance 4 sd +
    one bin. Against the process mean 0.8: telegraph variance 2 p (1 - p) tau_c / T."""
    rng = np.random.default_rng(1)
    T = 120.0
    t, sw, segs = telegraph(rng, T, [1000.0, 20000.0], [0.125, 0.5])
    _, c = intensity_trace(t, 10e9, 0, T * PS)
    f, thr = on_fraction(c)
    n_bins = c.size
    f_real = _on_truth(segs)
    tol = (4 * math.sqrt(sw.size / 12) + 1) / n_bins
    assert abs(f - f_real) < tol, (f, f_real, tol)
    sd_proc = math.sqrt(2 * 0.8 * 0.2 * 0.1 / T)
    assert abs(f - 0.8) < 3 * sd_proc
    assert 10 < thr < 200
    fit = two_level_fit(c)
    assert fit.n_levels == 2
    assert fit.means[0] == pytest.approx(10, rel=0.15)
    assert fit.means[1] == pytest.approx(200, rel=0.03)


def test_on_fraction_rare_off_and_flickering_on_level():
    """98 % ON (Feld et al. and Baronnier et al. regime) with a flickering ON level (rate x U(0.8,
    1.2) per 10 ms) and background 0.5 kcps in OFF. The mixture threshold still finds the OFF bins;
    tolerance as above plus the rare Poisson tail of the OFF level."""
    rng = np.random.default_rng(2)
    T = 200.0
    t, sw, segs = telegraph(rng, T, [500.0, 15000.0], [0.02, 1.0])
    # flicker: thin the ON photons bin by bin
    bins = (t // np.int64(10e9)).astype(np.int64)
    keep_p = rng.uniform(0.8, 1.2, bins.max() + 1) / 1.2
    t = t[rng.random(t.size) < keep_p[bins]]
    _, c = intensity_trace(t, 10e9, 0, T * PS)
    f, thr = on_fraction(c)
    f_real = _on_truth(segs)
    assert f_real > 0.97
    tol = (4 * math.sqrt(sw.size / 12) + 2) / c.size
    assert abs(f - f_real) < tol, (f, f_real, tol)


def test_on_fraction_single_level_is_all_on():
    rng = np.random.default_rng(3)
    c = rng.poisson(150, 5000)
    fit = two_level_fit(c)
    assert fit.n_levels == 1
    f, thr = on_fraction(c)
    assert f > 0.999 and thr < 150 - 4 * math.sqrt(150)


def test_on_fraction_threshold_modes():
    c = np.array([0, 1, 2, 10, 11, 12, 13])
    assert tuple(on_fraction(c, 5)) == (4 / 7, 5.0)
    f, thr = on_fraction(c, "otsu")
    assert 2 < thr < 10 and f == pytest.approx(4 / 7)
    with pytest.raises(ValueError, match="threshold"):
        on_fraction(c, "median")


# ----------------------------------------------------------------------------- CPA


def test_critical_values_reproduce_the_null_distribution():
    """The cached tau_alpha(N) has exceedance probability alpha: 40 000 fresh constant-rate
    segments at N = 100 (between two table points) and N = 3000. Binomial tolerance
    4 sqrt(alpha (1 - alpha) / n) plus 0.003 for the table's smoothing."""
    for n_int, seed in ((100, 11), (3000, 12)):
        z = simulate_cpa_null(n_int, 40_000, seed=seed)
        for alpha in (0.05, 0.01):
            p = np.mean(z > cpa_critical_value(n_int, alpha))
            tol = 4 * math.sqrt(alpha * (1 - alpha) / z.size) + 0.003
            assert abs(p - alpha) < tol, (n_int, alpha, p)
    # monotone in N and in alpha; beyond the table it keeps growing slowly
    assert cpa_critical_value(10**8, 0.05) > cpa_critical_value(2**20, 0.05)
    assert cpa_critical_value(1000, 0.01) > cpa_critical_value(1000, 0.05)
    assert cpa_critical_value(1, 0.05) == math.inf
    with pytest.raises(ValueError, match="alpha"):
        cpa_critical_value(100, 0.2)


@pytest.mark.parametrize(("alpha", "n_streams"), [(0.05, 600), (0.01, 1500)])
def test_false_positive_rate_on_constant_streams(alpha, n_streams):
    """Constant-intensity streams of 20-5000 photons: the fraction with any change point is
    alpha within 3 binomial sd (both sides: the test is neither liberal nor wasteful)."""
    rng = np.random.default_rng(int(alpha * 1000))
    hits = 0
    for _ in range(n_streams):
        t = constant_stream(rng, int(rng.integers(20, 5000)))
        hits += change_points(t, alpha).n_change_points > 0
    sd = math.sqrt(n_streams * alpha * (1 - alpha))
    assert abs(hits - n_streams * alpha) < 3 * sd, (hits, n_streams * alpha)


def test_single_change_point_located_within_its_interval():
    """2 kcps for 0.4 s then 4 kcps for 0.6 s (800 + 2400 photons), 300 records: the
    change is detected in nearly all, and the 95 % interval covers the true time in
    >= 95 % - 3 binomial sd (0.912) of them."""
    rng = np.random.default_rng(21)
    covered = detected = 0
    n = 300
    for _ in range(n):
        a = rng.uniform(0, 0.4, rng.poisson(800))
        b = rng.uniform(0.4, 1.0, rng.poisson(2400))
        t = np.round(np.sort(np.concatenate([a, b])) * PS).astype(np.int64)
        r = change_points(t, 0.05, ci_level=0.95)
        if r.n_change_points == 0:
            continue
        detected += 1
        j = int(np.argmin(np.abs(r.times_ps - 0.4 * PS)))
        covered += r.ci_lo_ps[j] <= 0.4 * PS <= r.ci_hi_ps[j]
    assert detected >= 0.97 * n
    assert covered / detected >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / detected)


def test_telegraph_change_points_states_and_intensities():
    """Two-state emitter (2 kcps / 20 kcps, mean dwell 0.5 s / 1 s) over 60 s. Every switch
    that leaves >= 30 photons on both sides is found, with its CI covering it in >= 90 % of
    cases; clustering finds 2 states with the true intensities (within 3 sigma + 2 % for
    the photons of misplaced change points)."""
    rng = np.random.default_rng(31)
    t, sw, segs = telegraph(rng, 60.0, [2000.0, 20000.0], [0.5, 1.0])
    r = change_points(t, 0.05)
    assert isinstance(r, ChangePointResult)
    assert r.seg_photons.sum() == t.size - 1
    assert np.all(np.diff(r.times_ps) > 0)
    found = covered = considered = 0
    for i, s_time in enumerate(sw):
        before = segs[i][1] - segs[i][0]
        after = segs[i + 1][1] - segs[i + 1][0]
        n_min = min(before * [2000, 20000][segs[i][2]], after * [2000, 20000][segs[i + 1][2]])
        if n_min < 30:
            continue
        considered += 1
        j = int(np.argmin(np.abs(r.times_ps - s_time * PS)))
        ok = r.ci_lo_ps[j] <= s_time * PS <= r.ci_hi_ps[j]
        found += abs(r.times_ps[j] - s_time * PS) < 0.05 * PS
        covered += ok
    assert found >= 0.95 * considered
    assert covered >= 0.9 * considered
    # false change points: each final segment is a test at alpha -> a few extra at most
    assert r.n_change_points <= sw.size + 3 * math.sqrt(0.05 * sw.size) + 3
    lv = cluster_levels(r, max_states=6)
    assert lv.n_states == 2
    for truth, got, err in zip([2000.0, 20000.0], lv.rates_cps, lv.rates_cps_err, strict=True):
        assert abs(got - truth) < 3 * err + 0.02 * truth
    on_time = _on_truth(segs)
    assert lv.time_fraction[1] == pytest.approx(on_time, abs=0.02)


def test_cluster_levels_three_states():
    rng = np.random.default_rng(41)

    def nxt(s, g):
        return int(g.choice([x for x in range(3) if x != s]))

    t, sw, segs = telegraph(rng, 60.0, [1000.0, 8000.0, 25000.0], [0.6, 0.6, 0.6], next_state=nxt)
    r = change_points(t, 0.05)
    lv = cluster_levels(r, max_states=6)
    assert lv.n_states == 3
    np.testing.assert_allclose(lv.rates_cps, [1000, 8000, 25000], rtol=0.08)
    # from (photons, duration) pairs too
    lv2 = cluster_levels((r.seg_photons, r.seg_duration_ps), max_states=6)
    assert lv2.n_states == 3


def test_constant_stream_has_one_level():
    rng = np.random.default_rng(51)
    t = constant_stream(rng, 20000)
    r = change_points(t, 0.01)
    lv = cluster_levels(r)
    assert lv.n_states == 1
    assert lv.rates_cps[0] == pytest.approx(1e4, rel=4 / math.sqrt(20000))


# ----------------------------------------------------------------------------- FLID inputs


def test_mean_arrival_time_and_windows():
    """Bright state tau = 10 ns, dim state tau = 1.3 ns (D'Amato et al. Fig. 4b): per-bin mean
    delays follow the state; photons of the high-intensity window have mean delay 10 ns
    within 4 sigma (sigma = tau / sqrt(n) for exponential delays)."""
    rng = np.random.default_rng(61)
    t, sw, segs = telegraph(rng, 30.0, [3000.0, 30000.0], [0.3, 0.6])
    taus = np.empty(t.size)
    seg_start = np.array([s[0] for s in segs]) * PS
    state = np.array([s[2] for s in segs])[np.searchsorted(seg_start, t, side="right") - 1]
    taus = np.where(state == 1, 10_000.0, 1_300.0)
    delay = rng.exponential(taus) + 2_000.0  # IRF at 2 ns
    starts, counts, mean = mean_arrival_time_per_bin(t, delay, 10e9, 0, 30 * PS, t0_ps=2_000.0)
    _, counts2 = intensity_trace(t, 10e9, 0, 30 * PS)
    np.testing.assert_array_equal(counts, counts2)
    hi = window_mask(counts, low=200)
    lo = window_mask(counts, high=50)
    assert np.nanmean(mean[hi]) == pytest.approx(10_000, rel=0.05)
    sel = photons_in_windows(t, starts, hi)
    assert sel.sum() == counts[hi].sum()
    d_hi = delay[sel] - 2_000.0
    assert abs(d_hi.mean() - 10_000) < 4 * 10_000 / math.sqrt(d_hi.size) + 150
    sel_lo = photons_in_windows(t, starts, lo, bin_ps=10e9)
    assert sel_lo.sum() == counts[lo].sum()
    assert (delay[sel_lo] - 2_000).mean() < 3_000
    # an empty bin gives NaN
    _, c3, m3 = mean_arrival_time_per_bin(np.array([5, 25]), np.array([1.0, 2.0]), 10, 0, 30)
    assert c3.tolist() == [1, 0, 1] and math.isnan(m3[1])


# ----------------------------------------------------------------------------- bad input


def test_bad_input_messages():
    with pytest.raises(ValueError, match="empty"):
        intensity_trace(np.array([]), 10)
    with pytest.raises(ValueError, match="sorted"):
        intensity_trace(np.array([3, 1, 2]), 10)
    with pytest.raises(ValueError, match="NaN"):
        intensity_trace(np.array([1.0, np.nan]), 10)
    with pytest.raises(ValueError, match="bin_ps"):
        intensity_trace(np.array([1, 2]), 0)
    with pytest.raises(ValueError, match="differ in length"):
        mean_arrival_time_per_bin(np.array([1, 2, 3]), np.array([1.0, 2.0]), 10)
    with pytest.raises(ValueError, match="empty"):
        change_points(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="alpha"):
        change_points(np.arange(10), alpha=0.2)
    with pytest.raises(ValueError, match="NaN"):
        on_fraction(np.array([1.0, np.nan, 3.0]))
    with pytest.raises(ValueError, match="empty"):
        on_fraction(np.array([]))
    with pytest.raises(ValueError, match="per bin"):
        photons_in_windows(np.arange(5), np.array([0, 10]), np.array([True]))
    with pytest.raises(ValueError, match="low < high"):
        window_mask(np.arange(5), 3, 2)
    with pytest.raises(ValueError, match="differ in length"):
        cluster_levels((np.array([1, 2]), np.array([1.0])))


_values = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_values, max_size=30), st.sampled_from([1, 7, 1000, 0, -5]))
def test_trace_and_cpa_never_crash(values, bin_ps):
    """Random (possibly unsorted, NaN, empty) inputs: a valid result or a ValueError."""
    t = np.asarray(values)
    for fn in (lambda: intensity_trace(t, bin_ps), lambda: change_points(t)):
        try:
            fn()
        except ValueError:
            pass


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 500), st.just(float("nan"))), max_size=50))
def test_on_fraction_never_crashes(values):
    c = np.asarray(values, dtype=float)
    try:
        f, thr = on_fraction(c)
    except ValueError:
        assert c.size == 0 or not np.all(np.isfinite(c))
        return
    assert 0.0 <= f <= 1.0 and math.isfinite(thr)


# ----------------------------------------------------------------------------- fit quality


def _draw_two_level(rng, n, w, means, phi, bridge):
    """Counts per bin drawn from the two-level model itself (module doc): NB OFF / ON levels
    (Gamma-Poisson) and a bridge of bins straddling a switch (Poisson, uniform mix)."""
    kind = rng.choice(3, size=n, p=[w[0] * (1 - bridge), w[1] * (1 - bridge), bridge])
    mu = np.where(kind == 0, means[0], means[1]).astype(float)
    ph = np.where(kind == 0, phi[0], phi[1])
    rate = rng.gamma(1.0 / ph, mu * ph)
    u = rng.random(n)
    rate = np.where(kind == 2, means[0] + u * (means[1] - means[0]), rate)
    return rng.poisson(rate).astype(float)


@pytest.mark.parametrize(
    ("seed", "w_off", "means", "phi", "bridge"),
    [
        (0, 0.02, (5.0, 125.0), (0.01, 0.012), 0.001),  # the review's case: rare OFF, flicker
        (1, 0.2, (10.0, 200.0), (1e-4, 1e-4), 0.02),
        (2, 0.5, (2.0, 30.0), (0.05, 0.05), 0.05),
        (3, 0.05, (40.0, 60.0), (0.02, 0.01), 0.01),  # levels close together
        (4, 0.9, (1.0, 300.0), (1e-3, 0.05), 0.005),  # mostly OFF
    ],
)
def test_two_level_fit_is_at_least_as_likely_as_the_truth(seed, w_off, means, phi, bridge):
    """Optimiser-independent check: the maximum-likelihood fit can never be less likely than
    the parameters that generated the data. A local optimum (the SciPy >= 1.15 failure:
    138 units of -ln L worse than the global one) breaks this by far more than the 1e-6
    slack allowed for the optimiser's tolerance."""
    from hbtscope.analysis.blinking import two_level_nll

    rng = np.random.default_rng(seed)
    c = _draw_two_level(rng, 20000, (w_off, 1 - w_off), means, phi, bridge)
    fit = two_level_fit(c)
    assert fit.n_levels == 2
    truth = two_level_nll(c, (w_off, 1 - w_off), means, phi, bridge)
    assert fit.nll <= truth + 1e-6 * abs(truth), (fit.nll, truth, fit.start)


def _markov_bins(rng, n_bins, p_on, corr_bins, rate_off, rate_on):
    """Counts in 1-unit bins of a telegraph emitter with stationary ON probability ``p_on``
    and correlation time ``corr_bins`` (exponential dwell times), started in equilibrium."""
    k = 1.0 / corr_bins  # k_on + k_off
    dwell = (1.0 / (k * p_on), 1.0 / (k * (1 - p_on)))  # mean OFF (1/k_on), ON (1/k_off)
    t, s = 0.0, int(rng.random() < p_on)
    on_time = np.zeros(n_bins)
    while t < n_bins:
        e = min(t + rng.exponential(dwell[s]), n_bins)
        if s:
            i0, i1 = int(t), int(e)
            if i0 == i1:
                on_time[i0] += e - t
            else:
                on_time[i0] += i0 + 1 - t
                on_time[i0 + 1 : i1] += 1.0
                if i1 < n_bins:
                    on_time[i1] += e - i1
        t, s = e, 1 - s
    return rng.poisson(rate_off + (rate_on - rate_off) * on_time)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("p_on", "corr_bins", "n_bins"),
    [(0.8, 10.0, 2000), (0.98, 20.0, 20000), (0.5, 3.0, 500), (0.95, 5.0, 4000), (0.9, 1.0, 1000)],
)
def test_on_fraction_interval_covers_the_process_probability(p_on, corr_bins, n_bins):
    """Coverage by simulation: over 400 telegraph traces with a known stationary ON
    probability, the reported 68.27 % interval must contain it in a fraction of traces
    within 3 binomial sigma (3 * sqrt(0.68 * 0.32 / 400) = 0.07) of nominal, and may be
    conservative by up to 0.1 more. The records hold 40-180 switches (2 n p (1 - p) / tau_c);
    with only a few switches (a record shorter than a few dwell times) the interval
    under-covers, as documented in ``_on_fraction_result``."""
    rng = np.random.default_rng(int(p_on * 1000 + corr_bins))
    hits = 0
    n_rep = 400
    for _ in range(n_rep):
        c = _markov_bins(rng, n_bins, p_on, corr_bins, 2.0, 100.0)
        r = on_fraction(c, 51.0)
        hits += r.fraction_ci[0] <= p_on <= r.fraction_ci[1]
    cover = hits / n_rep
    assert 0.6827 - 0.07 <= cover <= 0.6827 + 0.07 + 0.1, cover


def test_on_fraction_error_is_never_zero():
    """All ON or all OFF: the fraction is 1 or 0, its interval is not a point."""
    for c in (np.full(500, 100.0), np.full(500, 1.0)):
        r = on_fraction(c, 50.0)
        assert r.fraction in (0.0, 1.0)
        assert r.fraction_err > 0 and r.fraction_ci[0] < r.fraction_ci[1]
