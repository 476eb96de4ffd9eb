"""FLIM: per-pixel lifetimes from simulated TCSPC stacks with known lifetime maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hbtscope.analysis.decay_model import decay_expectation
from hbtscope.analysis.flim import (
    decay_model,
    flim_fit,
    gaussian_irf,
    mean_arrival_lifetime,
)
from hbtscope.analysis.lifetime import fit_decay

K = 256
DT = 100.0  # ps; the histogram is one 25.6 ns period (39 MHz) unless said otherwise
IRF = (2000.0, 100.0)  # Gaussian IRF: centre, sigma (ps)


def photons_split(alpha1, taus, total):
    """Photons per component for amplitude fraction alpha1 (photons ~ a_i tau_i)."""
    w1, w2 = alpha1 * taus[0], (1 - alpha1) * taus[1]
    return total * w1 / (w1 + w2), total * w2 / (w1 + w2)


def simulate(rng, mean_hist):
    return rng.poisson(mean_hist).astype(float)


def test_model_is_normalised_and_matches_photon_monte_carlo():
    irf = gaussian_irf(K, DT, *IRF)
    assert irf.sum() == pytest.approx(1.0)
    for tau in (20.0, 800.0, 5000.0, 1e5):
        assert decay_model(K, DT, IRF, [tau], [1.0]).sum() == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(0)
    n = 300_000
    dt = 50.0
    for period_bins in (K, 1000):  # full period, and a window shorter than the period
        T = period_bins * dt
        t = (rng.normal(IRF[0], IRF[1], n) + rng.exponential(3000.0, n)) % T
        hist = np.bincount((t // dt).astype(int), minlength=period_bins)[:K]
        exp = decay_model(K, dt, IRF, [3000.0], [n], period_ps=T)
        chi2 = float(((hist - exp) ** 2 / exp).sum())
        assert chi2 < K + 5 * math.sqrt(2 * K), chi2  # consistent with Poisson scatter


def test_mono_lifetime_map_two_regions_1000_photons():
    rng = np.random.default_rng(1)
    ny, nx = 30, 40
    dt = DT
    tau_map = np.where(np.arange(nx)[None, :] < nx // 2, 2000.0, 4500.0) * np.ones((ny, 1))
    stack = np.stack(
        [
            simulate(rng, decay_model(K, dt, IRF, [t], [1000.0], background=0.1))
            for t in tau_map.ravel()
        ]
    ).reshape(ny, nx, K)
    res = flim_fit(stack, dt, IRF, model="mono")
    assert res.tau1_ps.shape == (ny, nx)
    assert (res.method == 2).all() and res.converged.all() and not res.at_bound.any()
    pull = (res.tau1_ps - tau_map) / res.tau1_ps_err
    assert abs(pull.mean()) < 0.2  # O(1/N) ML bias and the b >= 0 bound: ~ -0.08 sigma
    assert 0.9 < pull.std() < 1.12, pull.std()
    assert np.mean(np.abs(pull) > 3) < 0.01  # within 3 sigma (Gaussian: 0.27 %)
    for region in (tau_map == 2000.0, tau_map == 4500.0):
        t = tau_map[region][0]
        assert res.tau1_ps[region].mean() == pytest.approx(t, rel=0.01)  # ~4 SE
    np.testing.assert_allclose(res.tau_mean_ps, res.tau1_ps)
    assert np.isnan(res.tau2_ps).all()


def test_background_at_its_bound_gives_conservative_errors():
    """Long lifetime in a short period, no background: b sits at 0 in half the pixels. The
    errors (inverse Fisher information including b) then cover the scatter conservatively."""
    rng = np.random.default_rng(11)
    dt = 50.0  # a 12.8 ns period: the 5 ns tail wraps around
    mean = decay_model(K, dt, IRF, [5000.0], [1000.0], background=0.0)
    res = flim_fit(simulate(rng, np.broadcast_to(mean, (20, 30, K))), dt, IRF, model="mono")
    assert res.converged.all()
    pull = (res.tau1_ps - 5000.0) / res.tau1_ps_err
    assert 0.7 < pull.std() < 1.05
    assert np.mean(np.abs(pull) > 3) < 0.03


def test_lifetime_precision_at_the_cramer_rao_limit():
    """F-value (sigma_tau / tau * sqrt(N)) of the ML estimator at 1000 photons (design: <= 1.1)
    for a narrow IRF, negligible background and a period long against the lifetime."""
    rng = np.random.default_rng(2)
    n_bins = 1024
    dt = 1e5 / n_bins
    tau = 5000.0
    mean = decay_model(n_bins, dt, (3000.0, 100.0), [tau], [1000.0], background=1e-4)
    stack = simulate(rng, np.broadcast_to(mean, (40, 40, n_bins)))
    res = flim_fit(stack, dt, (3000.0, 100.0), model="mono")
    f_emp = res.tau1_ps.std() / tau * math.sqrt(res.photons.mean())
    f_rep = float(np.mean(res.tau1_ps_err / res.tau1_ps * np.sqrt(res.photons)))
    assert f_emp <= 1.1 and f_rep <= 1.1, (f_emp, f_rep)
    assert f_emp == pytest.approx(f_rep, rel=0.1)  # the reported error is the real scatter


def test_bi_exponential_free_per_pixel_high_counts():
    rng = np.random.default_rng(3)
    ny, nx = 12, 16
    taus = (800.0, 4000.0)
    alpha = np.where(np.arange(nx)[None, :] < nx // 2, 0.3, 0.7) * np.ones((ny, 1))
    stack = np.stack(
        [
            simulate(rng, decay_model(K, DT, IRF, taus, photons_split(a, taus, 20000.0), 0.5))
            for a in alpha.ravel()
        ]
    ).reshape(ny, nx, K)
    res = flim_fit(stack, DT, IRF, model="bi", taus="free")
    assert res.converged.all() and not res.at_bound.any()
    assert np.all(res.tau1_ps < res.tau2_ps)
    for name, truth in (("tau1", taus[0]), ("tau2", taus[1])):
        pull = (getattr(res, f"{name}_ps") - truth) / getattr(res, f"{name}_ps_err")
        # the ML bias of a bi-exponential is O(1/N): ~0.3 sigma at 20 000 photons (below)
        assert abs(pull.mean()) < 0.5 and 0.8 < pull.std() < 1.25, (name, pull.mean(), pull.std())
        assert np.mean(np.abs(pull) > 3) < 0.03
    pull = (res.fraction1 - alpha) / res.fraction1_err
    assert abs(pull.mean()) < 0.3 and 0.8 < pull.std() < 1.25
    tm = np.where(alpha == 0.3, 1, 0)
    tm_true = np.where(
        tm == 1,
        (0.3 * taus[0] ** 2 + 0.7 * taus[1] ** 2) / (0.3 * taus[0] + 0.7 * taus[1]),
        (0.7 * taus[0] ** 2 + 0.3 * taus[1] ** 2) / (0.7 * taus[0] + 0.3 * taus[1]),
    )
    pull = (res.tau_mean_ps - tm_true) / res.tau_mean_ps_err
    assert abs(pull.mean()) < 0.3 and 0.8 < pull.std() < 1.25


def test_bi_exponential_bias_vanishes_with_counts():
    rng = np.random.default_rng(13)
    taus = (800.0, 4000.0)
    mean = decay_model(K, DT, IRF, taus, photons_split(0.5, taus, 500_000.0), 12.5)
    res = flim_fit(simulate(rng, np.broadcast_to(mean, (10, 12, K))), DT, IRF, model="bi")
    assert res.converged.all()
    for name, truth in (("tau1", taus[0]), ("tau2", taus[1])):
        pull = (getattr(res, f"{name}_ps") - truth) / getattr(res, f"{name}_ps_err")
        assert abs(pull.mean()) < 0.3 and 0.75 < pull.std() < 1.25, (name, pull.mean())


def test_bi_exponential_global_lifetimes_fraction_map_1000_photons():
    rng = np.random.default_rng(4)
    ny, nx = 30, 40
    taus = (800.0, 4000.0)
    alpha = np.where(np.arange(nx)[None, :] < nx // 2, 0.3, 0.7) * np.ones((ny, 1))
    stack = np.stack(
        [
            simulate(rng, decay_model(K, DT, IRF, taus, photons_split(a, taus, 1000.0), 0.05))
            for a in alpha.ravel()
        ]
    ).reshape(ny, nx, K)
    res = flim_fit(stack, DT, IRF, model="bi", taus="global")
    g = res.global_fit
    assert g is not None and g.converged
    for t, e, truth in zip(g.taus_ps, g.taus_ps_err, taus, strict=True):
        assert abs(t - truth) < 3 * e
    np.testing.assert_allclose(res.global_taus_ps, g.taus_ps)
    assert res.converged.all()
    ok = ~res.at_bound  # an amplitude held at 0 has no two-sided error
    assert ok.mean() > 0.99
    pull = ((res.fraction1 - alpha) / res.fraction1_err)[ok]
    # the global lifetimes are held fixed: their own (small) error shifts all fractions alike
    assert abs(pull.mean()) < 0.3 and 0.85 < pull.std() < 1.15, (pull.mean(), pull.std())
    assert np.mean(np.abs(pull) > 3) < 0.01
    # the free per-pixel bi-exponential also runs at 1000 photons (most pixels converge)
    free = flim_fit(stack, DT, IRF, model="bi", taus="free")
    assert free.converged.mean() > 0.9
    # fixed lifetimes give the same maps as the global ones when they agree
    fixed = flim_fit(stack, DT, IRF, model="bi", taus=tuple(g.taus_ps))
    np.testing.assert_allclose(fixed.fraction1, res.fraction1, rtol=1e-5, atol=1e-6)
    assert fixed.taus_mode == "fixed" and res.taus_mode == "global"


def test_dim_pixels_use_the_mean_arrival_time():
    rng = np.random.default_rng(5)
    ny, nx = 20, 20
    counts = np.where(np.arange(nx)[None, :] < 10, 60.0, 1500.0) * np.ones((ny, 1))
    counts[0, 0] = 0.0  # a pixel without signal and background
    tau = 3000.0
    b = 0.02
    stack = np.stack(
        [
            simulate(rng, decay_model(K, DT, IRF, [tau], [c], background=b if c else 0.0))
            for c in counts.ravel()
        ]
    ).reshape(ny, nx, K)
    res = flim_fit(stack, DT, IRF, model="mono", min_photons=200)
    dim = counts == 60.0
    assert (res.method[dim & (res.photons > 0)] == 1).all()
    assert (res.method[counts == 1500.0] == 2).all()
    assert res.method[0, 0] == 0 and np.isnan(res.tau_mean_ps[0, 0])
    sel = dim & (res.photons > 0)
    pull = (res.tau_mean_ps[sel] - tau) / res.tau_mean_ps_err[sel]
    # the background per bin comes from the global fit and is shared by all dim pixels: its
    # own error shifts them together (not in the per-pixel errors), hence the wider mean
    assert abs(pull.mean()) < 0.6 and 0.75 < pull.std() < 1.3, (pull.mean(), pull.std())
    assert np.isnan(res.tau1_ps[sel]).all()
    # the mean-arrival estimator on its own, bright pixels: unbiased, honest errors
    t, e = mean_arrival_lifetime(stack[:, 10:], DT, IRF, background=b)
    pull = (t - tau) / e
    assert abs(pull.mean()) < 0.2 and 0.8 < pull.std() < 1.2


def test_measured_irf_and_period_longer_than_the_window():
    rng = np.random.default_rng(6)
    period_bins = 800  # 40 ns period, 12.8 ns window (typical of a TCSPC range setting)
    T = period_bins * DT
    # a "measured" IRF: histogram of 200 000 scattered-light photons, asymmetric
    irf_t = rng.normal(2000.0, 90.0, 200_000) + rng.exponential(60.0, 200_000)
    irf_hist = np.bincount((irf_t // DT).astype(int), minlength=K)[:K].astype(float)
    tau = 2500.0
    n = 40_000
    hists = []
    for _ in range(20):
        t = (rng.normal(2000.0, 90.0, n) + rng.exponential(60.0, n) + rng.exponential(tau, n)) % T
        hists.append(np.bincount((t // DT).astype(int), minlength=period_bins)[:K])
    stack = np.array(hists, dtype=float)[None]
    res = flim_fit(stack, DT, irf_hist, model="mono", period_ps=T)
    pull = (res.tau1_ps - tau) / res.tau1_ps_err
    assert res.converged.all()
    assert abs(pull.mean()) < 1.0 and pull.std() < 1.6
    with pytest.raises(ValueError, match="shorter"):
        flim_fit(stack, DT, irf_hist, period_ps=100 * DT)


def test_fit_decay_single_histogram():
    """The one decay fit with the FLIM spelling of a Gaussian IRF, (centre, sigma)."""
    rng = np.random.default_rng(7)
    taus = (600.0, 3500.0)
    y = simulate(rng, decay_expectation(K, DT, taus, [40_000.0, 60_000.0], 1.0, irf=IRF))
    fit = fit_decay(y, DT, n_exp=2, irf=IRF)
    assert fit.converged
    for t, e, truth in zip(fit.taus_ps, fit.taus_ps_err, taus, strict=True):
        assert abs(t - truth) < 3 * e
    assert abs(fit.fractions[0] - 0.4) < 0.05
    mono = fit_decay(y, DT, n_exp=1, irf=IRF)
    assert mono.taus_ps.size == 1 and mono.deviance > fit.deviance + 100


def test_bad_inputs():
    with pytest.raises(ValueError, match="model"):
        flim_fit(np.ones((2, 2, 16)), DT, IRF, model="tri")
    with pytest.raises(ValueError, match="taus"):
        flim_fit(np.ones((2, 2, 16)), DT, IRF, taus="local")
    with pytest.raises(ValueError, match="lifetimes"):
        flim_fit(np.ones((2, 2, 16)), DT, IRF, model="bi", taus=(100.0,))
    with pytest.raises(ValueError, match=">= 0"):
        flim_fit(-np.ones((2, 2, 16)), DT, IRF)
    with pytest.raises(ValueError, match="IRF"):
        flim_fit(np.ones((2, 2, 16)), DT, np.ones(7))
    empty = flim_fit(np.zeros((3, 3, 16)), DT, IRF)
    assert (empty.method == 0).all() and np.isnan(empty.tau_mean_ps).all()
