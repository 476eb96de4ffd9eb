"""TCSPC histograms, IRF-convolved multi-exponential models and their Poisson
maximum-likelihood fits (Pierini et al. eq. 2, 001, 004 eq. 3).

Synthetic decays are drawn photon by photon: delay = t0 + N(0, sigma) + Exp(tau_i) for a
component i chosen with the intensity fractions, folded modulo the laser period when
the pile-up wrap-around is simulated, plus uniform background photons.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from hbtscope.analysis.decay_model import _shape_array, _shape_gauss, _shape_none
from hbtscope.analysis.lifetime import (
    DecayFitResult,
    decay_histogram,
    fit_decay,
    histogram_mean_delay,
    lifetime_from_mean,
    mean_arrival_time,
    photon_delays,
)


def simulate(
    rng, n, taus, fractions, *, bg=0.0, t0=3000.0, sigma=100.0, dt=200.0, nb=2000, period=None
):
    """Histogram of n photons (binomial background share bg, uniform over the range)."""
    rng_range = nb * dt
    n_bg = rng.binomial(n, bg)
    comp = rng.choice(len(taus), n - n_bg, p=fractions)
    t = t0 + rng.normal(0.0, sigma, comp.size) + rng.exponential(np.asarray(taus)[comp])
    if period is not None:
        t = t % period
    t = np.r_[t, rng.uniform(0.0, rng_range, n_bg)]
    t = t[(t >= 0) & (t < rng_range)]
    return np.bincount((t // dt).astype(np.int64), minlength=nb)[:nb]


# --- histogram and fast estimators ---------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-50, 2_000), max_size=60),
    st.lists(st.integers(0, 2_000), min_size=0, max_size=15),
    st.integers(1, 50),
    st.integers(1, 40),
)
def test_delays_and_histogram_match_a_loop(photons, syncs, bin_ps, n_bins):
    ph = np.asarray(photons, np.int64)
    sy = np.sort(np.asarray(syncs, np.int64))
    d = photon_delays(ph, sy)
    ref = []
    for p in ph:
        before = sy[sy <= p]
        ref.append(p - before[-1] if before.size else -1)
    np.testing.assert_array_equal(d, np.asarray(ref, np.int64).reshape(-1))
    h = decay_histogram(ph, sy, bin_ps, n_bins)
    ok = [x // bin_ps for x in ref if x >= 0 and x // bin_ps < n_bins]
    np.testing.assert_array_equal(h, np.bincount(np.asarray(ok, np.int64), minlength=n_bins))
    assert h.dtype == np.int64 and h.shape == (n_bins,)


def test_decay_histogram_rejects_bad_input():
    with pytest.raises(ValueError, match="sorted"):
        decay_histogram([5], [3, 1], 1, 4)
    with pytest.raises(ValueError):
        decay_histogram([5], [1], 0, 4)
    with pytest.raises(TypeError):
        decay_histogram([5.5], [1], 1, 4)


def test_mean_arrival_time_and_lifetime_from_mean():
    rng = np.random.default_rng(1)
    d = rng.exponential(5_000.0, 200_000).astype(np.int64)
    groups = rng.integers(0, 7, d.size)
    d[:10] = -1  # no preceding sync: ignored
    per = mean_arrival_time(d, groups, 8)
    for g in range(7):
        sel = (groups == g) & (d >= 0)
        assert per[g] == pytest.approx(d[sel].mean())
    assert np.isnan(per[7])
    # mean of Exp(5 ns) photons is tau within its statistical error tau/sqrt(N)
    assert abs(mean_arrival_time(d) - 5_000) < 4 * 5_000 / math.sqrt(d.size)
    # truncated exponential: <t> = tau - W/(e^{W/tau} - 1) is inverted exactly
    taus = np.array([500.0, 3_000.0, 9_000.0])
    W = 20_000.0
    means = taus - W / np.expm1(W / taus)
    np.testing.assert_allclose(lifetime_from_mean(means, window_ps=W), taus, rtol=1e-9)
    assert np.isnan(lifetime_from_mean(0.6 * W, window_ps=W))
    assert lifetime_from_mean(1234.0) == 1234.0


def test_mean_delay_minus_irf_centroid_estimates_tau():
    """Fast estimator: histogram mean delay minus IRF centroid = tau for a mono-exponential
    (Gaussian IRF, background subtracted, window 20 tau so truncation is < 1e-6)."""
    rng = np.random.default_rng(3)
    c = simulate(rng, 200_000, [5_000.0], [1.0], bg=0.005, t0=3_000.0, nb=2_000, dt=50.0)
    irf = simulate(rng, 200_000, [1e-3], [1.0], t0=3_000.0, nb=2_000, dt=50.0)
    B = c[-1000:].mean()  # beyond 9 tau: background (plus a 3 % tail excess)
    tau = histogram_mean_delay(c, 50.0, background=B) - histogram_mean_delay(irf, 50.0)
    # errors: tau/sqrt(N) = 11 ps, background estimate sqrt(500)/1000 per bin over 2000
    # bins at a ~42 ns lever arm = 10 ps, tail in the B window -7 ps: tolerance 60 ps
    assert tau == pytest.approx(5_000.0, abs=60.0)


# --- decay shapes ------------------------------------------------------------------------


@pytest.mark.parametrize("tau", [40.0, 800.0, 5_000.0, 60_000.0])
@pytest.mark.parametrize("sigma", [30.0, 150.0])
def test_gaussian_shape_is_the_exgaussian_bin_integral(tau, sigma):
    dt, nb = 100.0, 400
    edges = np.arange(nb + 1) * dt
    u, du, dt0 = _shape_gauss(edges, tau, 2_500.0, sigma, None)
    ref = np.diff(stats.exponnorm.cdf(edges, tau / sigma, loc=2_500.0, scale=sigma))
    np.testing.assert_allclose(u, ref, atol=1e-15)
    # periodic: the sum over the previous pulses and the next one
    P = nb * dt
    up, _, _ = _shape_gauss(edges, tau, 2_500.0, sigma, P)
    m = np.arange(-1, int(40 * tau / P) + 3)
    refp = sum(
        np.diff(stats.exponnorm.cdf(edges + k * P, tau / sigma, loc=2_500.0, scale=sigma))
        for k in m
    )
    np.testing.assert_allclose(up, refp, atol=1e-14)
    assert up.sum() == pytest.approx(1.0, abs=1e-12)
    # analytic derivatives against finite differences
    h = 1e-5
    fd = (
        _shape_gauss(edges, tau * math.exp(h), 2_500.0, sigma, P)[0]
        - _shape_gauss(edges, tau * math.exp(-h), 2_500.0, sigma, P)[0]
    ) / (2 * h)
    np.testing.assert_allclose(
        _shape_gauss(edges, tau, 2_500.0, sigma, P)[1], fd, atol=1e-7 * np.abs(fd).max()
    )
    fd = (
        _shape_gauss(edges, tau, 2_500.01, sigma, P)[0]
        - _shape_gauss(edges, tau, 2_499.99, sigma, P)[0]
    ) / 0.02
    np.testing.assert_allclose(
        _shape_gauss(edges, tau, 2_500.0, sigma, P)[2], fd, atol=1e-6 * np.abs(fd).max()
    )


def test_plain_exponential_shape_and_wrap():
    edges = np.arange(101) * 100.0
    u, du = _shape_none(edges, 700.0, 1_050.0, None)
    ref = np.diff(1 - np.exp(-np.maximum(edges - 1_050.0, 0) / 700.0))
    np.testing.assert_allclose(u, ref, atol=1e-15)
    up, _ = _shape_none(edges, 7_000.0, 1_050.0, 10_000.0)
    refp = sum(
        np.diff(1 - np.exp(-np.maximum(edges + k * 10_000.0 - 1_050.0, 0) / 7_000.0))
        for k in range(60)
    )
    np.testing.assert_allclose(up, refp, atol=1e-14)


def brute_array_shape(h, dt, tau, shift, period=None, sub=400):
    """IRF bin j spread uniformly over [j dt + shift, (j+1) dt + shift) (sub points, midpoint
    rule), each point feeding exp(-(t - s)/tau)/tau, integrated exactly over the bins."""
    nb = h.size
    edges = np.arange(nb + 1) * dt
    s = (np.arange(nb * sub) + 0.5) * (dt / sub) + shift
    w = np.repeat(h, sub) / sub
    out = np.zeros(nb)
    for m in range(1 if period is None else 20):  # e^(-20 P/tau) < 1e-20 here
        src = s - m * (period or 0.0)
        H = -np.exp(-np.maximum(edges[None, :] - src[:, None], 0.0) / tau)
        out += w @ np.diff(H, axis=1)
    return out


@pytest.mark.parametrize("tau", [60.0, 700.0, 6_000.0])
@pytest.mark.parametrize("shift", [0.0, 37.5, -130.0, 455.0])
def test_measured_irf_convolution_is_exact(tau, shift):
    """The closed-form kernel equals a brute-force convolution of the piecewise-uniform IRF
    (midpoint rule with 400 points per bin: relative error ~ (dt/400/tau)^2 < 1e-5)."""
    rng = np.random.default_rng(0)
    dt, nb = 100.0, 150
    h = np.zeros(nb)
    h[20:32] = rng.random(12)
    h /= h.sum()
    got = _shape_array(nb, dt, h, tau, shift, None)
    ref = brute_array_shape(h, dt, tau, shift)
    np.testing.assert_allclose(got, ref, atol=3e-5 * ref.max())
    if tau == 6_000.0 and shift == 37.5:
        P = nb * dt
        gp = _shape_array(nb, dt, h, tau, shift, P)
        np.testing.assert_allclose(
            gp, brute_array_shape(h, dt, tau, shift, P, sub=100), atol=3e-5 * gp.max()
        )
        assert gp.sum() == pytest.approx(1.0, abs=1e-9)


def test_measured_irf_shift_is_continuous_across_bins():
    h = np.zeros(60)
    h[10:14] = [1, 3, 2, 1]
    h /= h.sum()
    below = _shape_array(60, 100.0, h, 300.0, 100.0 - 1e-7, None)
    at = _shape_array(60, 100.0, h, 300.0, 100.0, None)
    np.testing.assert_allclose(below, at, atol=1e-9)
    # an integer shift by one bin is an exact one-bin translation
    np.testing.assert_allclose(
        at[1:], _shape_array(60, 100.0, h, 300.0, 0.0, None)[:-1], atol=1e-15
    )


# --- fits on noise-free data --------------------------------------------------------------


@pytest.mark.parametrize("period", [None, 400_000.0])
def test_noise_free_triexponential_is_recovered(period):
    """Expected counts of Pierini et al.'s tri-exponential (1.4, 6.1, 14.7 ns) + background are
    fitted back exactly (to the optimiser tolerance)."""
    dt, nb = 200.0, 2000
    edges = np.arange(nb + 1) * dt
    taus = np.array([1_400.0, 6_100.0, 14_700.0])
    a = np.array([2e5, 3e5, 5e5])
    mu = sum(
        ai * _shape_gauss(edges, t, 3_000.0, 80.0, period)[0] for ai, t in zip(a, taus, strict=True)
    )
    mu = mu + 20.0
    r = fit_decay(mu, dt, n_exp=3, irf={"gaussian": 80.0}, period_ps=period)
    assert isinstance(r, DecayFitResult) and r.converged
    np.testing.assert_allclose(r.taus_ps, taus, rtol=1e-5)
    np.testing.assert_allclose(r.photons, a, rtol=1e-4)
    np.testing.assert_allclose(r.fractions, a / a.sum(), rtol=1e-4)
    assert r.background == pytest.approx(20.0, rel=1e-4)
    assert r.t0_ps == pytest.approx(3_000.0, abs=0.1)
    # eq. 2 amplitudes: counts per bin at t0 of each component
    np.testing.assert_allclose(r.amplitudes, a * -np.expm1(-dt / taus), rtol=1e-4)
    assert r.tau_intensity_ps == pytest.approx(np.sum(a * taus) / a.sum(), rel=1e-5)
    d = r.as_dict()
    assert d["tau_2_ps"] == pytest.approx(6_100.0, rel=1e-5) and d["n_exp"] == 3
    assert "model" not in d and d["irf"] == "gaussian"
    np.testing.assert_allclose(r.model, mu, rtol=1e-6)


def test_noise_free_measured_irf_and_no_irf():
    dt, nb = 100.0, 600
    h = np.zeros(nb)
    h[30:36] = [1, 4, 6, 3, 1, 0.5]
    mu = 5e4 * _shape_array(nb, dt, h / h.sum(), 4_000.0, 230.0, None) + 3.0
    r = fit_decay(mu, dt, irf=h)
    assert r.irf == "array"
    assert r.tau_ps == pytest.approx(4_000.0, rel=1e-5)
    assert r.t0_ps == pytest.approx(230.0, abs=0.05)
    # no IRF: pure exponential from a given t0
    mu = 5e4 * _shape_none(np.arange(nb + 1) * dt, 4_000.0, 1_000.0, None)[0] + 3.0
    r = fit_decay(mu, dt, t0_ps=1_000.0)
    assert r.irf == "none" and np.isnan(r.t0_ps_err)
    assert r.tau_ps == pytest.approx(4_000.0, rel=1e-6)


def test_fit_decay_rejects_bad_input():
    c = np.ones(100)
    with pytest.raises(ValueError, match="n_exp"):
        fit_decay(c, 10.0, n_exp=4)
    with pytest.raises(ValueError, match="same bins"):
        fit_decay(c, 10.0, irf=np.ones(50))
    with pytest.raises(ValueError, match="gaussian"):
        fit_decay(c, 10.0, irf={"sigma": 3.0})
    with pytest.raises(ValueError):
        fit_decay(-c, 10.0)


# --- statistics of the maximum-likelihood estimator -----------------------------------------

F_TAU, F_P, F_DT, F_NB, F_SIGMA, F_BG, F_N = 10_000.0, 400_000.0, 200.0, 2000, 100.0, 0.005, 1000


@pytest.mark.slow
def test_f_value_at_1000_photons():
    """Design target: F = (sigma_tau / tau) sqrt(N) <= 1.1 at N = 1000 photons (D'Amato et al.
    numbers: tau = 10 ns, 2.5 MHz, full 400 ns period with wrap-around, 200 ps bins,
    Gaussian IRF sigma 100 ps, 0.5 % background, t0 and background fitted).

    The Cramer-Rao bound of this configuration is F = 1.024 (inverse Fisher information
    of the expected histogram), so F <= 1.1 leaves room for the finite-N inefficiency.
    With M = 1000 decays the empirical F is known to 1/sqrt(2M) = 2.2 % (1.1 is 3 sigma
    above the bound), the bias to sigma_tau/sqrt(M) (3 sigma tolerance), and the
    ratio empirical spread / mean reported error to 2.2 % (0.9 - 1.1: 4.5 sigma)."""
    rng = np.random.default_rng(1000)
    taus, errs = [], []
    for _ in range(1000):
        c = simulate(rng, F_N, [F_TAU], [1.0], bg=F_BG, sigma=F_SIGMA, dt=F_DT, nb=F_NB, period=F_P)
        r = fit_decay(c, F_DT, irf={"gaussian": F_SIGMA}, period_ps=F_P)
        assert r.converged
        taus.append(r.tau_ps)
        errs.append(r.tau_ps_err)
    taus, errs = np.array(taus), np.array(errs)
    sd = taus.std(ddof=1)
    F = sd / F_TAU * math.sqrt(F_N)
    assert F <= 1.1, F
    assert abs(taus.mean() - F_TAU) < 3 * sd / math.sqrt(taus.size)
    assert 0.9 < sd / errs.mean() < 1.1


def test_cramer_rao_f_value_of_the_f_test_configuration():
    """The inverse Fisher information of the noise-free histogram gives the Cramer-Rao F
    of the configuration above (F_CR = 1 for an ideal mono-exponential): 1.0 - 1.05."""
    edges = np.arange(F_NB + 1) * F_DT
    N = 1e6
    mu = N * (1 - F_BG) * _shape_gauss(edges, F_TAU, 3_000.0, F_SIGMA, F_P)[0] + N * F_BG / F_NB
    r = fit_decay(mu, F_DT, irf={"gaussian": F_SIGMA}, period_ps=F_P)
    F_cr = r.tau_ps_err / F_TAU * math.sqrt(mu.sum())
    assert 1.0 < F_cr < 1.05


@pytest.mark.parametrize(
    "taus,fractions,n,seed",
    [
        ((1_300.0, 10_200.0), (0.3, 0.7), 100_000, 1),  # D'Amato et al.: dim / bright
        ((1_400.0, 6_100.0, 14_700.0), (0.2, 0.3, 0.5), 1_000_000, 2),  # Pierini et al. eq. 2
    ],
)
def test_multiexponential_recovery_at_high_counts(taus, fractions, n, seed):
    """Bi- (1e5 photons) and tri-exponential (1e6 photons) decays with 1 % background,
    60 ps IRF, 5 MHz wrap-around: lifetimes and intensity fractions within 3 sigma of their
    reported errors, reduced chi2 ~1 (2000 bins: sd 0.03)."""
    rng = np.random.default_rng(seed)
    P = 200_000.0
    c = simulate(rng, n, taus, fractions, bg=0.01, sigma=60.0, dt=100.0, nb=2000, period=P)
    r = fit_decay(c, 100.0, n_exp=len(taus), irf={"gaussian": 60.0}, period_ps=P)
    assert r.converged
    assert np.all(np.abs(r.taus_ps - taus) < 3 * r.taus_ps_err), (r.taus_ps, r.taus_ps_err)
    assert np.all(np.abs(r.fractions - fractions) < 3 * r.fractions_err)
    assert np.all(r.taus_ps_err / r.taus_ps < 0.05)
    assert abs(r.background_fraction - 0.01) < 0.002
    assert 0.88 < r.chi2_red < 1.12


def test_agrees_with_independent_lmfit_maximum_likelihood():
    """Reference: lmfit least squares on Poisson deviance residuals (minimising the
    deviance is exactly the Poisson MLE) with an independent model built from
    scipy.stats.exponnorm. Same data -> same optimum to << 0.05 sigma, and the Gauss-Newton
    covariance of the deviance residuals matches the inverse Fisher errors to 10 %."""
    lmfit = pytest.importorskip("lmfit")
    rng = np.random.default_rng(17)
    dt, nb, sigma = 100.0, 1500, 120.0
    c = simulate(
        rng, 100_000, [2_000.0, 9_000.0], [0.4, 0.6], bg=0.02, t0=4_000.0, sigma=sigma, dt=dt, nb=nb
    )
    edges = np.arange(nb + 1) * dt
    r = fit_decay(c, dt, n_exp=2, irf={"gaussian": sigma})

    def model(p):
        out = np.full(nb, p["bg"].value)
        for i in (1, 2):
            tau = p[f"tau{i}"].value
            cdf = stats.exponnorm.cdf(edges, tau / sigma, loc=p["t0"].value, scale=sigma)
            out += p[f"n{i}"].value * np.diff(cdf)
        return out

    def residual(p):
        mu = model(p)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(c > 0, c * np.log(c / mu), 0.0)
        dev = np.maximum(2 * (mu - c + t), 0.0)
        return np.sign(c - mu) * np.sqrt(dev)

    p = lmfit.Parameters()
    p.add("tau1", 1_500.0, min=10)
    p.add("tau2", 8_000.0, min=10)
    p.add("n1", 4e4, min=0)
    p.add("n2", 6e4, min=0)
    p.add("bg", 1.0, min=0)
    p.add("t0", 3_900.0)
    out = lmfit.minimize(residual, p, method="leastsq", scale_covar=False)
    for i in (0, 1):
        ref = out.params[f"tau{i + 1}"]
        assert abs(r.taus_ps[i] - ref.value) < 0.05 * r.taus_ps_err[i]
        assert r.taus_ps_err[i] == pytest.approx(ref.stderr, rel=0.1)
    assert abs(r.t0_ps - out.params["t0"].value) < 0.05 * r.t0_ps_err
    assert r.background == pytest.approx(out.params["bg"].value, rel=1e-3)


def test_measured_irf_fit_on_simulated_data():
    """IRF measured as a 2e5-photon histogram (Gaussian + diffusion tail), decay 3.5 ns at
    2e4 photons: tau within 3 sigma, the fitted IRF shift recovers the 250 ps offset."""
    rng = np.random.default_rng(5)
    dt, nb = 50.0, 1200
    n_irf = 200_000
    irf_t = (
        2_000.0
        + rng.normal(0, 60.0, n_irf)
        + np.where(rng.random(n_irf) < 0.1, rng.exponential(300.0, n_irf), 0.0)
    )
    irf = np.bincount((irf_t // dt).astype(np.int64), minlength=nb)[:nb]
    m = 20_000
    t = (
        2_250.0
        + rng.normal(0, 60.0, m)
        + np.where(rng.random(m) < 0.1, rng.exponential(300.0, m), 0.0)
        + rng.exponential(3_500.0, m)
    )
    t = np.r_[t, rng.uniform(0, nb * dt, 200)]
    c = np.bincount((t[t < nb * dt] // dt).astype(np.int64), minlength=nb)[:nb]
    r = fit_decay(c, dt, irf=irf)
    assert abs(r.tau_ps - 3_500.0) < 3 * r.tau_ps_err
    assert abs(r.t0_ps - 250.0) < 3 * r.t0_ps_err + 5.0  # IRF shape known to ~1/sqrt(2e5)
    assert 0.85 < r.chi2_red < 1.15


def test_wrap_around_matters_and_is_modelled():
    """tau = 15 ns at 20 MHz (50 ns period): ~4 % of each decay arrives after the next
    pulse. With period_ps the fit is unbiased; ignoring the wrap biases tau by >> 3 sigma."""
    rng = np.random.default_rng(9)
    P, dt, nb = 50_000.0, 100.0, 500
    c = simulate(
        rng, 200_000, [15_000.0], [1.0], bg=0.005, t0=2_000.0, sigma=80.0, dt=dt, nb=nb, period=P
    )
    r = fit_decay(c, dt, irf={"gaussian": 80.0}, period_ps=P)
    assert abs(r.tau_ps - 15_000.0) < 3 * r.tau_ps_err
    assert 0.85 < r.chi2_red < 1.15
    bad = fit_decay(c, dt, irf={"gaussian": 80.0})
    assert abs(bad.tau_ps - 15_000.0) > 5 * bad.tau_ps_err or bad.chi2_red > 1.3
