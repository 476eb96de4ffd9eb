"""Malus fit (Farrow et al.): recovery of DOLP and theta0 with Poisson noise, honest errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtscope.analysis.polarisation import MalusResult, malus_fit, malus_model

THETA = np.arange(0.0, 360.0, 15.0)  # 24 analyser angles over a full turn


def _curve(rng, *, i_mean=2000.0, dolp=0.4, theta0=130.0, theta=THETA):
    i_max = i_mean * (1 + dolp)
    i_min = i_mean * (1 - dolp)
    mu = malus_model(theta, i_min, i_max, theta0)
    return rng.poisson(mu).astype(float), (i_min, i_max)


def _dtheta(a, b):
    """Difference of two polarisation angles modulo 180 deg, in (-90, 90]."""
    return (a - b + 90.0) % 180.0 - 90.0


def test_noise_free_curve_is_exact():
    mu = malus_model(THETA, 600.0, 1400.0, 37.0)
    r = malus_fit(THETA, mu)
    assert isinstance(r, MalusResult)
    assert r.I_min == pytest.approx(600.0, rel=1e-9)
    assert r.I_max == pytest.approx(1400.0, rel=1e-9)
    assert r.theta0_deg == pytest.approx(37.0, abs=1e-7)
    assert r.dolp == pytest.approx(0.4, rel=1e-9)
    np.testing.assert_allclose(r.model(THETA), mu, rtol=1e-9)


def test_dolp_and_angle_within_errors_over_seeds():
    """DOLP 40 % (Farrow et al.). Over 40 seeds the pulls (fit - truth)/error must be within
    3.5 sigma each and have unit spread: sd in [0.7, 1.35] (the sd of 40 unit-normal
    pulls is 1 +- 0.11) and mean within 3/sqrt(40) = 0.47 of zero."""
    pulls_d, pulls_t, pulls_max = [], [], []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        y, (i_min, i_max) = _curve(rng)
        r = malus_fit(THETA, y)
        pulls_d.append((r.dolp - 0.4) / r.dolp_err)
        pulls_t.append(_dtheta(r.theta0_deg, 130.0) / r.theta0_deg_err)
        pulls_max.append((r.I_max - i_max) / r.I_max_err)
        assert 0.0 <= r.theta0_deg < 180.0
    for p in (pulls_d, pulls_t, pulls_max):
        p = np.asarray(p)
        assert np.all(np.abs(p) < 3.5), p
        assert 0.7 < np.std(p) < 1.35
        assert abs(np.mean(p)) < 0.47


@pytest.mark.parametrize("theta0", [0.5, 179.5, 90.0, -45.0, 400.0])
def test_theta0_wraps_around(theta0):
    rng = np.random.default_rng(3)
    y, _ = _curve(rng, theta0=theta0, dolp=0.6)
    r = malus_fit(THETA, y)
    assert 0.0 <= r.theta0_deg < 180.0
    assert abs(_dtheta(r.theta0_deg, theta0)) < 4 * r.theta0_deg_err


def test_given_errors_are_used():
    rng = np.random.default_rng(5)
    y, _ = _curve(rng)
    r1 = malus_fit(THETA, y)
    r2 = malus_fit(THETA, y, counts_err=np.sqrt(np.maximum(y, 1)))
    assert r2.dolp == pytest.approx(r1.dolp, abs=2 * r1.dolp_err)
    # 10x larger errors -> chi2_red < 1 -> covariance not scaled down: 10x larger errors
    r3 = malus_fit(THETA, y, counts_err=10 * np.sqrt(np.maximum(y, 1)))
    assert r3.dolp_err == pytest.approx(10 * r2.dolp_err, rel=0.05)


def test_half_turn_is_enough_and_unpolarised_light():
    theta = np.arange(0.0, 180.0, 10.0)
    rng = np.random.default_rng(11)
    y = rng.poisson(np.full(theta.size, 5000.0)).astype(float)
    r = malus_fit(theta, y)
    # DOLP of unpolarised light: only the (Rice-biased) noise floor, ~ 2/sqrt(N_total)
    assert r.dolp < 4 * np.sqrt(2.0 / (5000 * theta.size))


def test_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        malus_fit([0, 45, 90, 135], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        malus_fit([0, 45, 90, 135], [1, np.nan, 3, 4])
    with pytest.raises(ValueError, match="empty"):
        malus_fit([], [])
    with pytest.raises(ValueError, match="distinct"):
        malus_fit([0, 180, 360, 0], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="counts_err"):
        malus_fit([0, 45, 90, 135], [1, 2, 3, 4], counts_err=[1, 1, 0, 1])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-1e9, max_value=1e9),
            st.sampled_from([np.nan, np.inf, -np.inf]),
        ),
        min_size=0,
        max_size=12,
    ),
    st.integers(min_value=0, max_value=12),
)
def test_bad_input_hypothesis(values, n_theta):
    """Whatever the input, malus_fit either fits or raises a ValueError (never crashes
    with another exception or returns NaN silently for finite data)."""
    theta = np.linspace(0, 170, n_theta)
    counts = np.asarray(values, dtype=float)
    try:
        r = malus_fit(theta, counts)
    except ValueError:
        return
    assert counts.size == theta.size and np.all(np.isfinite(counts))
    assert np.isfinite(r.I_max) and np.isfinite(r.I_min)


def test_unpolarised_emitter_has_no_dipole_angle():
    """DOLP 0 (an unpolarised spot): the fitted modulation is noise, the angle is not
    determined -- reported as such, with an infinite error, not as a number +- 40 deg."""
    rng = np.random.default_rng(4)
    theta = np.arange(0.0, 360.0, 15.0)
    counts = rng.poisson(np.full(theta.size, 5000.0))
    r = malus_fit(theta, counts)
    assert not r.identifiable and math.isinf(r.theta0_deg_err) and "theta0" in r.message
    assert 0 <= r.gof_p_value <= 1
    polarised = rng.poisson(malus_model(theta, 1000.0, 9000.0, 30.0))
    assert malus_fit(theta, polarised).identifiable
