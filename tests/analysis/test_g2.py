"""Physics checks of the pulsed g2(0) analysis.

Two kinds of inputs are used:

* Monte-Carlo time tags of a pulsed single-emitter HBT experiment with known truth,
  analysed end-to-end with correlate() + g2_pulsed();
* hand-built coincidence histograms (comb + flat accidentals) whose peak areas are
  known exactly, to test integration, normalisation and the background corrections.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from hbtscope.analysis import G2PulsedResult, correlate, g2_pulsed

PERIOD_PS = 200_000  # 5 MHz repetition, long compared with the 10 ns emitter lifetime
BIN_PS = 1_000
MAX_LAG_PS = 12_000_000  # reaches the reference band 10 +- 2 us


# --- Monte-Carlo source ------------------------------------------------------------------


#: the normalisation band the expected peak counts below were worked out for (10 +- 2 µs),
#: given explicitly: the library's default band is the g2 measurement's (NORM_HALFWIDTH_PS)
BAND = {"norm_delay_ps": 10_000_000, "norm_halfwidth_ps": 2_000_000}


def simulate_pulsed_hbt(
    rng: np.random.Generator,
    *,
    g2_true: float | None,
    mean_photons: float = 0.5,
    efficiency: float = 0.1,
    n_pulses: int = 4_000_000,
    lifetime_ps: float = 10_000.0,
    dark_cps: float = 0.0,
    period_ps: int = PERIOD_PS,
) -> tuple[np.ndarray, np.ndarray]:
    """Time tags (ps) of the two HBT detectors for a pulsed source.

    Each pulse emits n photons, n in {0, 1, 2} with P(2) = g2*m^2/2, P(1) = m - 2 P(2)
    (mean m), so that the true g2(0) = E[n(n-1)]/E[n]^2 = 2 P(2)/m^2 = g2_true. With
    ``g2_true=None`` n is Poissonian (coherent light, g2(0) = 1). Each photon goes to
    either detector with probability 1/2 and is detected with ``efficiency``, after an
    exponential emission delay (lifetime). Each detector also has uniform dark counts.
    No dead time, so every pair counts and the centre/side area ratio is exactly g2(0).
    """
    if g2_true is None:
        n = rng.poisson(mean_photons, n_pulses)
    else:
        p2 = g2_true * mean_photons**2 / 2
        p1 = mean_photons - 2 * p2
        p0 = 1 - p1 - p2
        assert min(p0, p1, p2) >= 0
        u = rng.random(n_pulses)
        n = (u >= p0).astype(np.int64) + (u >= p0 + p1)
    pulse = np.repeat(np.arange(n_pulses, dtype=np.int64), n)
    u = rng.random(pulse.size)
    duration_ps = n_pulses * period_ps
    tags = []
    for det in (0, 1):
        hit = (u >= det * efficiency / 2) & (u < (det + 1) * efficiency / 2)
        delay = np.rint(rng.exponential(lifetime_ps, hit.sum())).astype(np.int64)
        dark = rng.integers(0, duration_ps, rng.poisson(dark_cps * duration_ps * 1e-12))
        tags.append(np.sort(np.concatenate((pulse[hit] * period_ps + delay, dark))))
    return tags[0], tags[1]


def measure(seed: int, *, method: str = "linear", **kwargs) -> G2PulsedResult:
    t1, t2 = simulate_pulsed_hbt(np.random.default_rng(seed), **kwargs)
    lag, counts = correlate(t1, t2, BIN_PS, MAX_LAG_PS)
    return g2_pulsed(lag, counts, PERIOD_PS, background=method, **BAND)


@pytest.mark.parametrize(
    "g2_true,dark_cps,method",
    [
        (0.05, 0.0, "linear"),
        (0.05, 5_000.0, "linear"),
        (0.2, 0.0, "none"),
        (0.2, 5_000.0, "linear"),
        (0.5, 5_000.0, "linear"),
        (None, 5_000.0, "linear"),  # Poissonian light: g2(0) = 1
    ],
)
def test_g2_recovers_truth_within_3_sigma(g2_true, dark_cps, method):
    res = measure(11, g2_true=g2_true, dark_cps=dark_cps, method=method)
    truth = 1.0 if g2_true is None else g2_true
    assert res.g2_0_err > 0
    assert abs(res.g2_0 - truth) < 3 * res.g2_0_err, (res.g2_0, res.g2_0_err, truth)
    # both signs of tau, 10 +- 2 us at T = 200 ns: |k| = 40..60, the |k| = 60 peaks have
    # their background window cut by max_lag = 12 us and are dropped -> 2 * 20 peaks.
    assert res.n_side_peaks == 40
    # side peaks are g2 = 1 away from zero delay (no blinking in this source)
    far = np.abs(res.peak_delays_ps) > 1_000_000
    assert np.mean(res.peak_areas_norm[far]) == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(
    "g2_true,dark_cps,method",
    [(0.2, 10_000.0, "linear"), (0.05, 0.0, "linear"), (0.5, 25_000.0, "sqrt")],
)
def test_g2_error_bar_is_honest(g2_true, dark_cps, method):
    """The scatter of g2_0 over independent runs matches the reported g2_0_err.

    Tolerance: for n = 40 runs, (n-1) s^2 / sigma^2 follows chi^2 with 39 degrees of
    freedom, so s/sigma has a relative spread of about 1/sqrt(2*39) = 11 %. Accepting
    0.7 < s/sigma < 1.3 means chi^2_39 in [0.49*39, 1.69*39]; a correct error estimate
    fails this with probability ~0.8 % (0.3 % low tail + 0.45 % high tail), while an
    error bar wrong by a factor 1.5 or more is rejected with high probability.
    (The per-run g2_0_err itself varies by only a few % between runs, so using its mean
    as sigma adds negligible spread.)
    """
    n_runs = 40
    results = [
        measure(1_000 + s, g2_true=g2_true, dark_cps=dark_cps, method=method) for s in range(n_runs)
    ]
    values = np.array([r.g2_0 for r in results])
    errors = np.array([r.g2_0_err for r in results])
    ratio = values.std(ddof=1) / errors.mean()
    assert 0.7 < ratio < 1.3, ratio
    assert errors.std() < 0.2 * errors.mean()


def test_dark_counts_linear_unbiased_none_biased_up():
    """Dark counts add a flat accidental floor (dark x signal, dark x dark).

    Expected floor per peak window relative to a side peak, for signal rate r and dark
    rate d per detector: B/S = (2 d/r + d^2/r^2) * W/T. Without correction the measured
    value is (g2 + B/S) / (1 + B/S); the linear correction removes it.
    """
    g2_true, dark_cps = 0.2, 25_000.0
    mean_photons, efficiency = 0.5, 0.1
    r_cps = mean_photons * efficiency / 2 / (PERIOD_PS * 1e-12)  # 125 kcps signal
    b_over_s = (2 * dark_cps / r_cps + (dark_cps / r_cps) ** 2) * 0.8
    biased = (g2_true + b_over_s) / (1 + b_over_s)  # ~0.41 for these numbers

    n_runs = 8
    lin, lin_err, raw, raw_err = [], [], [], []
    for seed in range(n_runs):
        t1, t2 = simulate_pulsed_hbt(
            np.random.default_rng(500 + seed), g2_true=g2_true, dark_cps=dark_cps
        )
        lag, counts = correlate(t1, t2, BIN_PS, MAX_LAG_PS)
        a = g2_pulsed(lag, counts, PERIOD_PS, background="linear", **BAND)
        b = g2_pulsed(lag, counts, PERIOD_PS, background="none", **BAND)
        lin.append(a.g2_0)
        lin_err.append(a.g2_0_err)
        raw.append(b.g2_0)
        raw_err.append(b.g2_0_err)
    lin_sigma = np.sqrt(np.sum(np.square(lin_err))) / n_runs  # error of the mean
    raw_sigma = np.sqrt(np.sum(np.square(raw_err))) / n_runs
    assert abs(np.mean(lin) - g2_true) < 3 * lin_sigma
    assert np.mean(raw) > g2_true + 10 * raw_sigma  # strongly biased upward ...
    assert abs(np.mean(raw) - biased) < 3 * raw_sigma  # ... by the expected floor


# --- hand-built histograms ---------------------------------------------------------------


def comb_histogram(
    *,
    bin_ps: int = 3_000,
    max_lag_ps: int = MAX_LAG_PS,
    period_ps: int = PERIOD_PS,
    centre_counts: int = 30,
    side_counts: int = 100,
    bunching: float = 0.0,
    blink_time_ps: float = 1_000_000.0,
    floor: float = 0.0,
    peak_halfwidth_ps: float = 30_000.0,
    zero_delay_ps: float = 0.0,
):
    """Expected-value coincidence histogram: flat floor + rectangular peaks.

    Peak k fills the bins whose centre lies within +-peak_halfwidth of zero + k*T with
    c_k counts each, c_0 = centre_counts and
    c_k = round(side_counts * (1 + bunching * exp(-|k| T / blink_time))) (blinking shoulder).
    bin_ps = 3 ns divides neither W = 160 ns nor T, so windows cut bins. Returns
    (lag, counts, exact peak areas by k).
    """
    n_bins = -(-2 * max_lag_ps // bin_ps)
    lag = -max_lag_ps + (np.arange(n_bins) + 0.5) * bin_ps
    counts = np.full(n_bins, floor, dtype=np.float64)
    areas = {}
    for k in range(-(max_lag_ps // period_ps) - 1, max_lag_ps // period_ps + 2):
        inside = np.abs(lag - zero_delay_ps - k * period_ps) <= peak_halfwidth_ps
        c = (
            centre_counts
            if k == 0
            else round(side_counts * (1 + bunching * np.exp(-abs(k) * period_ps / blink_time_ps)))
        )
        counts[inside] += c
        areas[k] = c * np.count_nonzero(inside)
    return lag, counts, areas


def test_exact_comb_with_flat_floor_and_partial_bins():
    floor = 7.0
    lag, counts, areas = comb_histogram(floor=floor)
    res = g2_pulsed(lag, counts, PERIOD_PS, background="linear", **BAND)
    ref = [areas[k] for k in range(-59, 60) if 40 <= abs(k) <= 59]
    assert res.n_side_peaks == len(ref) == 40
    assert res.g2_0 == pytest.approx(areas[0] / np.mean(ref), rel=1e-9)
    # the floor under a W = 160 ns window is floor * W / bin exactly, despite partial bins
    assert res.centre_background == pytest.approx(floor * 160_000 / 3_000, rel=1e-9)
    assert res.centre_area == pytest.approx(areas[0], rel=1e-9)
    # without subtraction the floor biases g2 upward
    raw = g2_pulsed(lag, counts, PERIOD_PS, background="none", **BAND)
    assert raw.g2_0 > res.g2_0 + 0.1


def test_reference_at_10us_avoids_blinking_shoulder():
    """With bunching of the near side peaks (blinking), normalising on k = +-1 gives a
    g2(0) too low by the shoulder factor; the 10 us reference gives the true value."""
    lag, counts, areas = comb_histogram(bunching=0.5, blink_time_ps=1_000_000.0)
    far = g2_pulsed(lag, counts, PERIOD_PS, **BAND)
    true_g2 = areas[0] / areas[50]  # shoulder is exp(-10) ~ 5e-5 at 10 us: rounded away
    assert far.g2_0 == pytest.approx(true_g2, rel=1e-9)
    near = g2_pulsed(lag, counts, PERIOD_PS, norm_delay_ps=PERIOD_PS, norm_halfwidth_ps=0)
    assert near.n_side_peaks == 2
    assert near.g2_0 == pytest.approx(true_g2 / (1 + 0.5 * np.exp(-0.2)), rel=0.02)
    # the normalised comb shows the shoulder: k = +-1 above 1, far peaks at 1
    k = far.peak_index
    assert np.all(far.peak_areas_norm[np.abs(k) == 1] > 1.3)
    np.testing.assert_allclose(far.peak_areas_norm[np.abs(k) >= 40], 1.0, rtol=1e-9)
    np.testing.assert_allclose(far.peak_delays_ps, k * PERIOD_PS)


def test_zero_delay_offset():
    offset = 65_000.0  # peaks span offset +- 30 ns: mostly outside [-80, 80) ns
    lag, counts, areas = comb_histogram(floor=2.0, zero_delay_ps=offset)
    res = g2_pulsed(lag, counts, PERIOD_PS, zero_delay_ps=offset, **BAND)
    assert res.g2_0 == pytest.approx(areas[0] / areas[50], rel=1e-9)
    # ignoring the offset puts part of the peaks outside their windows / in the background
    assert g2_pulsed(lag, counts, PERIOD_PS, **BAND).g2_0 != pytest.approx(res.g2_0, rel=1e-2)


@pytest.mark.parametrize("method", ["linear", "sqrt"])
def test_error_propagation_matches_poisson_scatter_of_histogram(method):
    """Sample each bin of an expected histogram as Poisson and compare the scatter of
    g2_0 to the reported error (400 samples: s/sigma known to ~3.5 %, tolerance 15 %)."""
    lag, mu, _ = comb_histogram(
        bin_ps=BIN_PS, centre_counts=2, side_counts=8, floor=0.3, peak_halfwidth_ps=20_000
    )
    rng = np.random.default_rng(7)
    values, errors = [], []
    for _ in range(400):
        res = g2_pulsed(lag, rng.poisson(mu), PERIOD_PS, background=method, **BAND)
        values.append(res.g2_0)
        errors.append(res.g2_0_err)
    assert np.std(values, ddof=1) / np.mean(errors) == pytest.approx(1.0, abs=0.15)


def test_sqrt_correction_relations():
    # no accidentals: every correction gives the same answer
    lag, counts, _ = comb_histogram(floor=0.0)
    r = {m: g2_pulsed(lag, counts, PERIOD_PS, background=m) for m in ("linear", "sqrt", "none")}
    assert r["sqrt"].g2_0 == pytest.approx(r["linear"].g2_0, rel=1e-12)
    assert r["none"].g2_0 == pytest.approx(r["linear"].g2_0, rel=1e-12)
    # with a floor: (sqrt(M) - sqrt(Mb))^2 <= M - Mb for M >= Mb
    lag, counts, _ = comb_histogram(floor=5.0)
    lin = g2_pulsed(lag, counts, PERIOD_PS, background="linear", **BAND)
    s01 = g2_pulsed(lag, counts, PERIOD_PS, background="sqrt", **BAND)
    assert s01.centre_background == lin.centre_background > 0
    assert s01.centre_area < lin.centre_area
    assert s01.side_mean < lin.side_mean
    # an empty centre peak sitting on a dip of the floor: M < Mb -> the square-root
    # correction clips the area to 0, says so, and keeps the linear correction's error
    # (it used to report 0 +- 0 here, which passes every purity cut)
    lag, counts, _ = comb_histogram(floor=5.0, centre_counts=0)
    centre = np.abs(lag) < 80_000
    counts[centre] -= 1.0
    s01 = g2_pulsed(lag, counts, PERIOD_PS, background="sqrt", **BAND)
    lin = g2_pulsed(lag, counts, PERIOD_PS, background="linear", **BAND)
    assert lin.centre_area < 0
    assert s01.centre_area == 0.0 and s01.g2_0 == 0.0 and s01.centre_area_clipped
    assert not lin.centre_area_clipped
    assert s01.centre_area_err == pytest.approx(lin.centre_area_err, rel=1e-12)
    assert s01.g2_0_err > 0 and s01.g2_0_upper > 0
    # the old name of the correction still reads (run files written before the rename)
    assert g2_pulsed(lag, counts, PERIOD_PS, background="seed001").method == "sqrt"


def test_histogram_must_reach_reference_peaks():
    lag, counts, _ = comb_histogram(max_lag_ps=5_000_000)
    with pytest.raises(ValueError, match="reference"):
        g2_pulsed(lag, counts, PERIOD_PS, **BAND)
    # a reference band the histogram does reach is fine
    res = g2_pulsed(lag, counts, PERIOD_PS, norm_delay_ps=3_000_000, norm_halfwidth_ps=1_000_000)
    assert res.n_side_peaks == 2 * 11
    # a range a little beyond 12 us keeps the outermost |k| = 60 peaks too
    lag, counts, _ = comb_histogram(max_lag_ps=12_200_000)
    assert g2_pulsed(lag, counts, PERIOD_PS, **BAND).n_side_peaks == 42


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_ps": 1.1 * PERIOD_PS},
        {"window_ps": 0.0},
        {"window_ps": 0.95 * PERIOD_PS},  # + default background window 0.1 T > T
        {"background": "quadratic"},
        {"background_window_ps": -1.0},
        # no peak within 10.1 us +- 10 ns at T = 200 ns
        {"norm_delay_ps": 10_100_000.0, "norm_halfwidth_ps": 10_000.0},
    ],
)
def test_bad_parameters_raise(kwargs):
    lag, counts, _ = comb_histogram()
    with pytest.raises(ValueError):
        g2_pulsed(lag, counts, PERIOD_PS, **{**BAND, **kwargs})


def test_full_period_window_allowed_without_background():
    lag, counts, areas = comb_histogram()
    res = g2_pulsed(lag, counts, PERIOD_PS, window_ps=PERIOD_PS, background="none", **BAND)
    assert res.g2_0 == pytest.approx(areas[0] / areas[50], rel=1e-9)


def test_non_uniform_bins_rejected():
    lag, counts, _ = comb_histogram()
    lag = lag.copy()
    lag[10] += 500.0
    with pytest.raises(ValueError, match="uniform"):
        g2_pulsed(lag, counts, PERIOD_PS, **BAND)


def test_result_is_frozen_and_serialisable():
    lag, counts, _ = comb_histogram(floor=1.0)
    res = g2_pulsed(lag, counts, PERIOD_PS, **BAND)
    with pytest.raises(AttributeError):
        res.g2_0 = 1.0  # type: ignore[misc]
    d = res.as_dict()
    json.dumps(d)
    assert all(type(v) in (float, int, str, bool, list) for v in d.values())
    assert d["method"] == "linear" and d["n_side_peaks"] == 40
    assert d["window_ps"] == pytest.approx(0.8 * PERIOD_PS)
    assert res.peak_delays_ps.shape == res.peak_areas_norm.shape == res.peak_index.shape
