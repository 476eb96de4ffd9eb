"""Saturation fit (D'Amato et al. eq. 1) on Poisson-noised curves with blinking dips.

Truth: counts(P) = A (1 - exp(-P/P_sat)) + B P with A = 4e4, P_sat = 1, B = 3e3 per unit
power, 14 log-spaced powers from 0.05 to 6 P_sat, 3 acquisitions per power (as the seeds).
Blinking: each acquisition independently falls (probability 0.25) into a dip that scales its
mean by U(0.1, 0.6).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtscope.analysis.saturation import (
    SaturationResult,
    intensity_from_power,
    max_of_normals,
    saturation_fit,
    saturation_model,
)

A, P_SAT, B = 4.0e4, 1.0, 3.0e3
POWERS = np.geomspace(0.05, 6.0, 14)


def _sweep(rng, n_repeats=3, p_dip=0.25):
    mu = saturation_model(POWERS, A, P_SAT, B)[:, None] * np.ones((1, n_repeats))
    dip = rng.random(mu.shape) < p_dip
    mu = np.where(dip, mu * rng.uniform(0.1, 0.6, mu.shape), mu)
    return rng.poisson(mu).astype(float)


def test_max_of_normals_constants():
    # closed forms: max of 2: mean 1/sqrt(pi), variance 1 - 1/pi; max of 3: mean
    # 3/(2 sqrt(pi)), variance 0.55947 (tabulated order statistics of the normal)
    assert max_of_normals(1) == (0.0, 1.0)
    e2, v2 = max_of_normals(2)
    assert e2 == pytest.approx(1 / math.sqrt(math.pi), rel=1e-6)
    assert v2 == pytest.approx(1 - 1 / math.pi, rel=1e-6)
    e3, v3 = max_of_normals(3)
    assert e3 == pytest.approx(1.5 / math.sqrt(math.pi), rel=1e-6)
    assert v3 == pytest.approx(0.55947, abs=1e-4)


def test_max_of_repeats_bias_is_removed():
    """Without blinking, the kept value (max of 3 minus e_3 sigma) is unbiased for the mean
    and its quoted error matches its scatter. 4000 rows at mu = 400: the mean of the kept
    values has sd ~ 0.75 * 20 / sqrt(4000) = 0.24; we allow 4 sd (+ the O(1) skewness of
    Poisson counts, ~ 0.3 for the maximum of 3 at mu = 400)."""
    rng = np.random.default_rng(0)
    mu = 400.0
    c = rng.poisson(mu, size=(4000, 3)).astype(float)
    raw_bias = np.mean(c.max(axis=1)) - mu
    assert raw_bias == pytest.approx(0.846 * 20, rel=0.05)  # the bias the seeds carry
    from hbtscope.analysis.saturation import _reduce_repeats

    val, sig, n_comp = _reduce_repeats(c, None)
    assert np.mean(n_comp == 3) > 0.99  # a 5-sigma gap within 3 normals is rare
    assert abs(np.mean(val) - mu) < 4 * 0.24 + 0.3
    assert np.std(val) == pytest.approx(np.mean(sig), rel=0.06)


def test_noise_free_curve_is_exact():
    y = saturation_model(POWERS, A, P_SAT, B)
    r = saturation_fit(POWERS, y, counts_err=np.sqrt(y), blinking_robust=False)
    assert isinstance(r, SaturationResult)
    assert r.P_sat == pytest.approx(P_SAT, rel=1e-6)
    assert r.A == pytest.approx(A, rel=1e-6)
    assert r.B == pytest.approx(B, rel=1e-5)
    assert r.counts_at_sat == pytest.approx(A * (1 - math.exp(-1)) + B * P_SAT, rel=1e-6)


def test_psat_recovered_with_honest_errors_over_30_seeds():
    """Max-of-3 with dips: P_sat, A and B within 3.5 sigma for every seed, and the pulls
    have unit spread (sd of 30 unit-normal pulls: 1 +- 0.13; we accept 0.65-1.4) and a
    mean within 3/sqrt(30) = 0.55 of zero (no bias)."""
    pulls = {"P_sat": [], "A": [], "B": []}
    for seed in range(30):
        rng = np.random.default_rng(100 + seed)
        r = saturation_fit(POWERS, _sweep(rng))
        pulls["P_sat"].append((r.P_sat - P_SAT) / r.P_sat_err)
        pulls["A"].append((r.A - A) / r.A_err)
        pulls["B"].append((r.B - B) / r.B_err)
        assert r.P_sat_err / r.P_sat < 0.05
    for name, p in pulls.items():
        p = np.asarray(p)
        assert np.all(np.abs(p) < 3.5), (name, p)
        assert 0.65 < np.std(p) < 1.4, (name, np.std(p))
        assert abs(np.mean(p)) < 0.55, (name, np.mean(p))


def test_single_acquisitions_with_dips_robust_fit():
    """One acquisition per power (20 powers), 4 of them in deep dips (x0.3): the robust
    fit flags them and recovers P_sat within 3.5 sigma (10 seeds: a 3.5 sigma excursion
    has probability 5e-3 per seed); a plain least-squares fit of the same data misfits
    them (chi2_red in the hundreds), and its errors, scaled by sqrt(chi2_red), are far
    larger."""
    powers = np.geomspace(0.05, 6.0, 20)
    ok_robust = 0
    for seed in range(10):
        rng = np.random.default_rng(200 + seed)
        mu = saturation_model(powers, A, P_SAT, B)
        dips = rng.choice(np.arange(4, 20), size=4, replace=False)
        mu[dips] *= 0.3
        y = rng.poisson(mu).astype(float)
        r = saturation_fit(powers, y)
        assert r.n_outliers >= 4 and not np.any(r.inlier[dips])
        ok_robust += abs(r.P_sat - P_SAT) < 3.5 * r.P_sat_err
        assert 0.3 < r.chi2_red < 3.0
        p = saturation_fit(powers, y, blinking_robust=False)
        assert p.chi2_red > 100 and p.n_outliers == 0
        assert p.P_sat_err > 5 * r.P_sat_err
    assert ok_robust == 10


def test_missing_repeats_as_nan():
    rng = np.random.default_rng(7)
    c = _sweep(rng)
    c[2, 1:] = np.nan  # only one acquisition at that power
    r = saturation_fit(POWERS, c)
    assert r.n_compatible[2] == 1
    assert abs(r.P_sat - P_SAT) < 3.5 * r.P_sat_err


def test_intensity_from_power():
    # 1 uW over 0.1 um^2 -> 1e-5 W/um^2
    assert intensity_from_power(1e-6, 0.1) == pytest.approx(1e-5)
    np.testing.assert_allclose(intensity_from_power([0.0, 2e-6], 0.5), [0.0, 4e-6])
    with pytest.raises(ValueError):
        intensity_from_power(1e-6, 0.0)
    with pytest.raises(ValueError):
        intensity_from_power([-1e-6], 0.1)


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        saturation_fit(POWERS, np.ones(POWERS.size - 1))
    with pytest.raises(ValueError, match="empty"):
        saturation_fit([], [])
    y = saturation_model(POWERS, A, P_SAT, B)
    y[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        saturation_fit(POWERS, y)
    with pytest.raises(ValueError, match="4 distinct"):
        saturation_fit([1, 1, 2, 2, 3], [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="power"):
        saturation_fit([-1, 1, 2, 3], [1, 2, 3, 4])
    c = np.ones((POWERS.size, 3))
    c[5] = np.nan
    with pytest.raises(ValueError, match="every repeat"):
        saturation_fit(POWERS, c)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.one_of(st.floats(min_value=0, max_value=1e6), st.sampled_from([np.nan, np.inf])),
        min_size=0,
        max_size=10,
    ),
    st.integers(min_value=0, max_value=10),
)
def test_bad_input_hypothesis(counts, n_powers):
    powers = np.linspace(0.1, 5, n_powers)
    c = np.asarray(counts, dtype=float)
    try:
        r = saturation_fit(powers, c)
    except ValueError:
        return
    assert c.size == powers.size and np.all(np.isfinite(c))
    assert np.isfinite(r.A) and r.P_sat > 0


def test_a_short_sweep_is_fitted_whole_and_its_dip_shows_in_the_goodness_of_fit():
    """Six powers (as a quick sweep): dropping a point would leave 2 degrees of freedom, with
    which the curve bends onto the other five (B < 0 was seen). So nothing is dropped; a deep
    dip (x0.3) instead shows as a goodness of fit no model of eq. 1 can reach (p < 1e-3),
    and without a dip the fit is the plain one. Seven powers: a dip can be dropped again."""
    rng = np.random.default_rng(7)
    powers = np.geomspace(0.1, 6.0, 6)
    mu = saturation_model(powers, A, P_SAT, B)
    clean = rng.poisson(mu).astype(float)
    r = saturation_fit(powers, clean)
    plain = saturation_fit(powers, clean, blinking_robust=False)
    assert r.n_outliers == 0 and r.P_sat == plain.P_sat
    dipped = clean.copy()
    dipped[3] = rng.poisson(0.3 * mu[3])
    r = saturation_fit(powers, dipped)
    assert r.n_outliers == 0 and r.dof == 3
    assert r.gof_p_value < 1e-3
    powers7 = np.geomspace(0.1, 6.0, 7)
    mu7 = saturation_model(powers7, A, P_SAT, B)
    y7 = rng.poisson(mu7).astype(float)
    y7[4] = rng.poisson(0.3 * mu7[4])
    r7 = saturation_fit(powers7, y7)
    assert r7.n_outliers == 1 and not r7.inlier[4]
    assert abs(r7.P_sat - P_SAT) < 3.5 * r7.P_sat_err
