"""The one decay model and its fit: the two recursions of a piecewise-uniform IRF agree, the
fit with fixed lifetimes has honest amplitude errors, the mean-arrival-time helper reports
the scatter it has, and the FLIM global fit is the single-decay fit of the summed image."""

from __future__ import annotations

import numpy as np
import pytest

from hbtscope.analysis.decay_model import decay_expectation, make_grid_model
from hbtscope.analysis.flim import decay_model, flim_fit
from hbtscope.analysis.irf import gaussian_irf
from hbtscope.analysis.lifetime import DecayFitResult, fit_decay
from hbtscope.analysis.mean_arrival import histogram_mean_delay

K = 256


@pytest.mark.parametrize("tau", [50.0, 800.0, 5000.0, 40_000.0])
@pytest.mark.parametrize(("dt", "sigma"), [(100.0, 100.0), (50.0, 150.0), (200.0, 60.0)])
def test_shifted_array_and_period_grid_forms_are_the_same_convolution(tau, dt, sigma):
    """A measured IRF (here a binned Gaussian well inside the window) through the "array"
    form (shift 0, tails of earlier pulses by a geometric sum) and through the "grid" form
    (circular IRF, one recursion) is the same exact convolution: equal to rounding, and
    normalised to one photon per period."""
    h = gaussian_irf(K, dt, 2000.0, sigma)
    P = K * dt
    array = decay_expectation(K, dt, [tau], [1.0], 0.0, irf=h, t0_ps=0.0, period_ps=P)
    grid = make_grid_model(h, K, dt, None).expectation([tau], [1.0], 0.0, 0.0)
    np.testing.assert_allclose(array, grid, rtol=0, atol=1e-13 * grid.max())
    assert array.sum() == pytest.approx(1.0, abs=1e-12)


def test_fixed_lifetimes_give_honest_photon_errors():
    """Lifetimes held at the truth (``taus_ps``): over 200 bi-exponential decays of 2000
    photons the photon numbers of both components have pulls of mean 0 and width 1."""
    rng = np.random.default_rng(21)
    taus, photons, dt = [600.0, 3000.0], [800.0, 1200.0], 50.0
    mu = decay_expectation(K, dt, taus, photons, 0.2, irf={"gaussian": 80.0}, t0_ps=1500.0)
    pulls = []
    for _ in range(200):
        r = fit_decay(rng.poisson(mu), dt, n_exp=2, irf={"gaussian": 80.0}, taus_ps=taus)
        assert r.converged and np.all(np.isnan(r.taus_ps_err))
        pulls.append((r.photons - photons) / r.photons_err)
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.25), pulls.mean(axis=0)  # 3.5 SE
    assert np.all(np.abs(pulls.std(axis=0) - 1) < 0.15), pulls.std(axis=0)


def test_histogram_mean_delay_error_is_the_scatter_of_the_mean():
    """500 Poisson histograms of a decay with background: the background-subtracted mean
    delay scatters by the reported standard error (within 10 %), around the mean delay of
    the expected histogram."""
    rng = np.random.default_rng(4)
    dt = 100.0
    mu = decay_model(K, dt, (2000.0, 100.0), [2500.0], [3000.0], 0.5)
    Y = rng.poisson(np.broadcast_to(mu, (500, K))).astype(float)
    m, err = histogram_mean_delay(Y, dt, background=0.5, return_error=True)
    m_true = histogram_mean_delay(mu, dt, background=0.5)
    assert m.std() == pytest.approx(err.mean(), rel=0.1)
    assert abs(m.mean() - m_true) < 4 * m.std() / np.sqrt(m.size)


def test_flim_global_fit_is_the_decay_fit_of_the_summed_image():
    """The global fit of flim_fit is a DecayFitResult of the summed histogram (250 000
    photons); its lifetimes agree with fit_decay on the same sum (closed-form Gaussian IRF,
    same period) within half their errors. (The "grid" form of a Gaussian with sigma = bin
    differs from the closed form by ~0.1-0.2 % in the lifetimes: 0.5 sigma at 1e6 photons,
    measured on noise-free histograms.)"""
    rng = np.random.default_rng(9)
    dt, irf = 100.0, (2000.0, 100.0)
    mean = decay_model(K, dt, irf, [800.0, 4000.0], [4000.0, 6000.0], 0.5)
    stack = rng.poisson(np.broadcast_to(mean, (5, 5, K))).astype(float)
    res = flim_fit(stack, dt, irf, model="bi", taus="global")
    g = res.global_fit
    assert isinstance(g, DecayFitResult) and g.converged and g.n_exp == 2
    single = fit_decay(stack.sum(axis=(0, 1)), dt, n_exp=2, irf=irf, period_ps=K * dt)
    assert np.all(np.abs(g.taus_ps - single.taus_ps) < 0.5 * single.taus_ps_err)
    np.testing.assert_allclose(res.global_taus_ps, g.taus_ps)
