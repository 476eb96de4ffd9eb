"""Goodness of fit and identifiability of the fit results (issue 10).

Under the true model the reported statistic must be distributed as claimed: over N
independent fits the mean of ``chi2_red`` is 1 within 4 standard errors (the standard error
from the fits' own spread), and the fraction of ``gof_p_value < 0.05`` lies within the
central 99.9 % binomial interval of Binomial(N, 0.05). A wrong model must be rejected, and a
degenerate fit must say so (``identifiable`` false, a ``message``) instead of quoting
finite errors of 1e9.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from hbtscope.analysis import flim
from hbtscope.analysis.images import _gauss2d, gaussian1d_fit, gaussian2d_fit
from hbtscope.analysis.lifetime import decay_expectation, fit_decay
from hbtscope.analysis.saturation import saturation_fit, saturation_model


def _binomial_ok(k: int, n: int, p: float = 0.05, level: float = 0.999) -> bool:
    lo, hi = stats.binom.interval(level, n, p)
    return lo <= k <= hi


def _mean_is_one(x: np.ndarray) -> bool:
    return abs(float(np.mean(x)) - 1.0) <= 4.0 * float(np.std(x, ddof=1)) / math.sqrt(x.size)


# ------------------------------------------------------------------------------ lifetime


@pytest.mark.parametrize(
    ("photons", "bg"),
    [(5000.0, 0.5), (800.0, 0.05), (1e5, 5.0)],
    ids=["5k", "800_low_counts", "100k"],
)
def test_fit_decay_gof_is_calibrated_under_the_true_model(photons, bg):
    """200 mono-exponential fits of mono-exponential data: the deviance p-value is uniform
    (fraction below 0.05 within the binomial 99.9 % interval, also at 800 photons where
    most tail bins hold < 1 count), and Pearson chi2_red has mean 1 where the counts allow
    (at 800 photons a single count in a bin of mu ~ 1e-6 makes Pearson's chi2_red explode:
    that is why the p-value comes from the deviance)."""
    rng = np.random.default_rng(11)
    irf = {"gaussian": 60.0}
    mu = decay_expectation(256, 32.0, [2000.0], [photons], bg, irf=irf, t0_ps=1500.0)
    fits = [fit_decay(rng.poisson(mu), 32.0, irf=irf) for _ in range(200)]
    p = np.array([f.gof_p_value for f in fits])
    assert np.all((p >= 0) & (p <= 1))
    assert _binomial_ok(int(np.sum(p < 0.05)), p.size), np.sum(p < 0.05)
    assert all(f.dof == 256 - 4 for f in fits)
    if photons >= 5000:
        assert _mean_is_one(np.array([f.chi2_red for f in fits]))


@pytest.mark.parametrize("total", [1e4, 3e4, 1e5])
def test_fit_decay_gof_rejects_a_mono_exponential_fit_of_a_bi_exponential(total):
    """500 ps + 3000 ps, equal photons: a mono-exponential is rejected at p < 1e-6 from
    10^4 photons on (measured: p ~ 1e-70 at 10^4), while a bi-exponential fit is accepted
    (p > 1e-3: fails by chance with probability 1e-3)."""
    rng = np.random.default_rng(5)
    irf = {"gaussian": 60.0}
    mu = decay_expectation(
        256, 32.0, [500.0, 3000.0], [total / 2, total / 2], 1.0, irf=irf, t0_ps=1500.0
    )
    n = rng.poisson(mu)
    mono = fit_decay(n, 32.0, irf=irf)
    assert mono.gof_p_value < 1e-6
    assert mono.chi2_red > 1.5
    bi = fit_decay(n, 32.0, n_exp=2, irf=irf)
    assert bi.gof_p_value > 1e-3
    assert bi.identifiable, bi.message


def test_fit_decay_equal_lifetimes_are_flagged_unidentifiable():
    """A bi-exponential fitted to the noise-free expectation of a mono-exponential decay:
    the split between two equal lifetimes is not determined. The result says so and the
    errors of the undetermined lifetimes are infinite, not ~1e9."""
    irf = {"gaussian": 60.0}
    mu = decay_expectation(256, 32.0, [2000.0], [1e5], 1.0, irf=irf, t0_ps=1500.0)
    fit = fit_decay(mu, 32.0, n_exp=2, irf=irf)
    assert not fit.identifiable
    assert "not determined" in fit.message
    assert np.any(np.isinf(fit.taus_ps_err))
    finite = np.isfinite(fit.taus_ps_err)
    assert np.all(fit.taus_ps_err[finite] < 1e3 * fit.taus_ps[finite])
    assert fit.as_dict()["identifiable"] is False
    # the mono-exponential fit of the same data is fine
    mono = fit_decay(mu, 32.0, irf=irf)
    assert mono.identifiable and mono.message == ""
    assert mono.tau_ps == pytest.approx(2000.0, rel=1e-6)


# ---------------------------------------------------------------------------- saturation


@pytest.mark.parametrize("robust", [False, True])
@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_saturation_gof_is_calibrated_under_the_true_model(noise, robust):
    """200 sweeps of 12 powers (~1e4 counts): chi2_red has mean 1 and p < 0.05 in a binomial
    share. "gaussian": exact Gaussian errors given as counts_err; "poisson": Poisson counts
    with the default sqrt(counts) weights (Gaussian to 1 % at 1e4 counts). The robust
    rejection (4 sigma one-sided) must not distort the statistic on clean data."""
    rng = np.random.default_rng(3)
    p = np.linspace(0.1, 5.0, 12)
    mu = saturation_model(p, 1e4, 1.0, 500.0)
    s = np.sqrt(mu)
    fits = []
    for _ in range(200):
        if noise == "gaussian":
            y = mu + s * rng.standard_normal(p.size)
            fits.append(saturation_fit(p, y, counts_err=s, blinking_robust=robust))
        else:
            fits.append(saturation_fit(p, rng.poisson(mu), blinking_robust=robust))
    assert _mean_is_one(np.array([f.chi2_red for f in fits]))
    pv = np.array([f.gof_p_value for f in fits])
    assert _binomial_ok(int(np.sum(pv < 0.05)), pv.size)
    assert all(f.identifiable and not f.at_bound for f in fits)


@pytest.mark.parametrize("a", [1e5, 1e6])
def test_saturation_gof_rejects_a_hyperbolic_saturation(a):
    """Counts A P / (P + P_sat) (the two-level steady state without the exponential form)
    fitted with A (1 - exp(-P/P_sat)) + B P: rejected at p < 1e-6 from 1e5 counts
    (measured p ~ 1e-20 at 1e5; at 1e4 the two shapes are not distinguishable, p ~ 0.6)."""
    rng = np.random.default_rng(1)
    p = np.linspace(0.1, 5.0, 12)
    fit = saturation_fit(p, rng.poisson(a * p / (p + 1.0)), blinking_robust=False)
    assert fit.gof_p_value < 1e-6


def test_saturation_linear_sweep_is_flagged_unidentifiable():
    """Counts exactly proportional to the power (a sweep far below saturation, or a pure
    background): A, P_sat and B are not separately determined. The result says so and the
    errors are infinite, not 1e9."""
    p = np.linspace(0.1, 5.0, 12)
    fit = saturation_fit(p, 1000.0 * p)
    assert not fit.identifiable
    assert "not determined" in fit.message
    assert math.isinf(fit.P_sat_err)
    assert fit.as_dict()["identifiable"] is False
    # the model's prediction is still right
    np.testing.assert_allclose(fit.model(p), 1000.0 * p, rtol=1e-9)


# ---------------------------------------------------------------------------------- FLIM

_K, _DT, _IRF = 256, 100.0, (2000.0, 100.0)


@pytest.mark.parametrize(
    ("taus", "photons", "bg", "model"),
    [
        ([2500.0], [2000.0], 0.3, "mono"),
        ([2500.0], [300.0], 0.02, "mono"),
        ([800.0, 4000.0], [1e4, 1e4], 1.0, "bi"),
    ],
    ids=["mono_2000", "mono_300_low_counts", "bi_2e4"],
)
def test_flim_gof_is_calibrated_under_the_true_model(taus, photons, bg, model):
    """400 pixels of the true model: per-pixel deviance p-values below 0.05 in a binomial
    share of Binomial(400, 0.05) (99.9 % interval); Pearson chi2_red has mean 1 (4 standard
    errors) where counts allow. At 300 photons with 0.02 background counts per bin (most
    bins < 0.1 count) the p-value is conservative: measured 2.3 % below 0.05 over 1600
    pixels (the deviance's mean and variance match the prediction to 0.2 % and 7 %, but the
    moments are taken at the fitted mu, which follows the pixel's fluctuations). There it is
    asserted not anti-conservative (<= the upper 99.9 % bound of Binomial(400, 0.05)) and
    not degenerate (>= the lower bound of Binomial(400, 0.02))."""
    rng = np.random.default_rng(7)
    mu = flim.decay_model(_K, _DT, _IRF, taus, photons, bg)
    y = rng.poisson(np.broadcast_to(mu, (20, 20, _K))).astype(float)
    res = flim.flim_fit(y, _DT, _IRF, model=model, min_photons=50)
    assert np.all(res.method == 2)
    p = res.gof_p_value.ravel()
    assert np.all((p >= 0) & (p <= 1))
    k = int(np.sum(p < 0.05))
    if sum(photons) >= 2000:
        assert _binomial_ok(k, p.size), k
    else:
        assert stats.binom.interval(0.999, p.size, 0.02)[0] <= k
        assert k <= stats.binom.interval(0.999, p.size, 0.05)[1]
    assert res.dof == _K - (5 if model == "bi" else 3)
    if sum(photons) >= 2000:
        assert _mean_is_one(res.chi2_red.ravel())
    assert res.global_fit.gof_p_value > 1e-3  # the summed histogram fits too (1e-3 chance)


@pytest.mark.parametrize("total", [1e4, 1e5])
def test_flim_gof_rejects_a_mono_exponential_fit_of_a_bi_exponential(total):
    """800 ps + 4000 ps, equal photons: a mono-exponential fit_decay with the FLIM IRF
    (centre, sigma) gives p < 1e-6 from 10^4 photons on; the bi-exponential fit is accepted
    (p > 1e-3)."""
    rng = np.random.default_rng(3)
    mu = decay_expectation(_K, _DT, [800.0, 4000.0], [total / 2, total / 2], 0.5, irf=_IRF)
    y = rng.poisson(mu).astype(float)
    mono = fit_decay(y, _DT, n_exp=1, irf=_IRF)
    assert mono.gof_p_value < 1e-6 and mono.chi2_red > 1.2
    bi = fit_decay(y, _DT, n_exp=2, irf=_IRF)
    assert bi.gof_p_value > 1e-3 and bi.identifiable, bi.message


def test_flim_equal_lifetimes_are_flagged_unidentifiable():
    """A bi-exponential fitted to the noise-free expectation of a mono-exponential decay
    (fit_decay with the IRF as (centre, sigma)) and to pixels of it (flim_fit): the result
    says the two lifetimes are not determined, with infinite errors instead of ~1e9."""
    mu = decay_expectation(_K, _DT, [2500.0], [2e4], 0.5, irf=_IRF)
    fit = fit_decay(mu, _DT, n_exp=2, irf=_IRF)
    assert not fit.identifiable
    assert "not determined" in fit.message
    assert np.any(np.isinf(fit.taus_ps_err))
    mono = fit_decay(mu, _DT, n_exp=1, irf=_IRF)
    assert mono.identifiable and mono.message == ""
    assert mono.taus_ps[0] == pytest.approx(2500.0, rel=1e-5)
    mu = flim.decay_model(_K, _DT, _IRF, [2500.0], [2e4], 0.5)
    res = flim.flim_fit(np.broadcast_to(mu, (2, 2, _K)), _DT, _IRF, model="bi")
    assert not np.any(res.identifiable)
    unknown = np.isinf(res.tau1_ps_err) | np.isinf(res.tau2_ps_err)
    assert np.all(unknown)


# ------------------------------------------------------------------ Gaussian refocus fits


def _spot(x, y, s, a, b, n=15):
    c = np.arange(n, dtype=float)
    return _gauss2d(np.array([x, y, s, a, b]), c, c, 1.0, 1.0, False)[0].reshape(n, n)


@pytest.mark.parametrize(
    ("noise", "a", "b"),
    [("poisson", 200.0, 5.0), ("poisson", 20.0, 0.2), ((25.0, 1.0), 200.0, 0.0)],
    ids=["poisson", "poisson_low_counts", "var0_gain"],
)
def test_gaussian2d_gof_is_calibrated_under_the_true_model(noise, a, b):
    """200 fits of a 15 x 15 scan drawn from the model: chi2_red has mean 1 (4 standard
    errors) and p < 0.05 in a binomial share (99.9 % interval). "poisson": Poisson counts
    (deviance p-value; also at 0.2 background counts per pixel); (var0, gain): Gaussian
    noise of variance var0 + gain * signal (chi2(dof) p-value)."""
    rng = np.random.default_rng(0)
    mu = _spot(7.2, 6.8, 1.8, a, b)
    fits = []
    for _ in range(200):
        if noise == "poisson":
            data = rng.poisson(mu).astype(float)
        else:
            data = mu + np.sqrt(noise[0] + noise[1] * (mu - b)) * rng.standard_normal(mu.shape)
        fits.append(gaussian2d_fit(data, 7.0, 7.0, sigma=1.5, noise=noise))
    assert _mean_is_one(np.array([f.chi2_red for f in fits]))
    p = np.array([f.gof_p_value for f in fits])
    assert _binomial_ok(int(np.sum(p < 0.05)), p.size), np.sum(p < 0.05)
    assert all(f.identifiable and f.dof == 225 - 5 for f in fits)


@pytest.mark.parametrize("a", [200.0, 2000.0])
def test_gaussian2d_gof_rejects_an_elliptical_spot(a):
    """A spot with sigma_x = 1.4, sigma_y = 2.2 px fitted by a round Gaussian: p < 1e-6
    (measured ~1e-55 at 200 counts peak)."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:15, 0:15]
    mu = 5.0 + a * np.exp(-0.5 * ((xx - 7) / 1.4) ** 2 - 0.5 * ((yy - 7) / 2.2) ** 2)
    fit = gaussian2d_fit(rng.poisson(mu).astype(float), 7, 7, sigma=1.5, noise="poisson")
    assert fit.gof_p_value < 1e-6


@pytest.mark.parametrize("noise", ["poisson", "constant"])
@pytest.mark.parametrize("level", [0.5, 10.0, 1e4])
def test_gaussian_fits_of_a_flat_image_are_flagged_unidentifiable(noise, level):
    """No spot (an exactly flat image or scan): the amplitude goes to its bound 0 and the
    centre and width are not determined; the result says so and their errors are infinite
    instead of ~1e9 or spuriously small. (On a noisy flat image the fit may find a noise
    blob whose amplitude is more than 1 sigma above 0; it is then reported as that blob,
    which the goodness of fit cannot tell from a faint spot.)"""
    fit = gaussian2d_fit(np.full((15, 15), level), 7.0, 7.0, sigma=1.5, noise=noise)
    assert not fit.identifiable, fit
    assert "not determined" in fit.message
    assert np.isinf(fit.x_err) and np.isinf(fit.y_err) and np.isinf(fit.sigma_err)
    assert fit.as_dict()["identifiable"] is False
    fit1 = gaussian1d_fit(np.linspace(-3, 3, 31), np.full(31, level), noise=noise)
    assert not fit1.identifiable and np.isinf(fit1.centre_err), fit1
