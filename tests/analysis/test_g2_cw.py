"""CW antibunching fit (Baronnier et al. eq. 4).

Synthetic CW data: a two-level emitter under CW excitation is a renewal process whose
inter-emission times are Exp(k_exc) + Exp(k_rad) (wait for the excitation, then the
emission), so g2 = 1 - exp(-|tau|/tau0) with tau0 = 1/(k_exc + k_rad). Detection with
efficiency eta keeps one emission in Geom(eta): the detected intervals are exactly
Gamma(G, 1/k_exc) + Gamma(G, 1/k_rad), G ~ Geom(eta), drawn directly. A 50:50 beam
splitter, Gaussian jitter per detector and uncorrelated background photons (C = rho1 rho2,
rho the signal fraction of each detector) complete the HBT arm.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hbtscope.analysis.correlation import correlate
from hbtscope.analysis.g2_cw import G2CWResult, g2_cw_fit

K_EXC = 1 / 30e3  # per ps
K_RAD = 1 / 15e3
TAU0 = 1 / (K_EXC + K_RAD)  # 10 ns
JITTER = 50.0  # ps per detector; coincidence IRF sigma = sqrt(2) * 50 ps


def cw_hbt(rng, T_s=5.0, eta=0.018, bg_cps=30e3):
    T = T_s * 1e12
    n = int(T / (1 / K_EXC + 1 / K_RAD) * eta * 1.1) + 1_000
    g = rng.geometric(eta, n)
    t = np.cumsum(rng.gamma(g, 1 / K_EXC) + rng.gamma(g, 1 / K_RAD))
    t = t[t < T]
    det = rng.random(t.size) < 0.5
    out = []
    for d in (det, ~det):
        sig = t[d] + rng.normal(0.0, JITTER, d.sum())
        bg = rng.uniform(0, T, rng.poisson(bg_cps * T_s))
        out.append(np.sort(np.round(np.r_[sig, bg]).astype(np.int64)))
    rs = t.size / 2 / T_s
    rho = rs / (rs + bg_cps)
    return out[0], out[1], rho * rho


def model_counts(lag, A, C, tau0, off, sigma, bw):
    """Bin-averaged A [1 - C exp(-|t-off|/tau0) (x) N(0, sigma)] by brute-force quadrature."""
    out = []
    for x in lag:
        t = np.linspace(x - bw / 2, x + bw / 2, 41)
        s = np.linspace(-8 * sigma, 8 * sigma, 801)
        w = np.exp(-0.5 * (s / sigma) ** 2)
        w /= w.sum()
        k = np.exp(-np.abs(t[:, None] - s[None, :] - off) / tau0) @ w
        out.append(A * (1 - C * np.trapezoid(k, t) / bw))
    return np.array(out)


def test_noise_free_model_is_recovered_exactly():
    """Expected counts of the model (independent brute-force convolution) are fitted back
    to the generating parameters: the analytic ex-Gaussian bin averages are right."""
    bw = 500.0
    lag = -100_000 + (np.arange(400) + 0.5) * bw
    mu = model_counts(lag, 200.0, 0.77, 12_000.0, 800.0, 300.0, bw)
    r = g2_cw_fit(lag, mu, irf=300.0, data="counts")
    assert r.converged and r.method == "poisson_mle" and r.irf == "gaussian"
    assert r.C == pytest.approx(0.77, rel=1e-5)
    assert r.tau0_ps == pytest.approx(12_000.0, rel=1e-5)
    assert r.tau_offset_ps == pytest.approx(800.0, abs=0.05)
    assert r.baseline == pytest.approx(200.0, rel=1e-6)
    assert r.g2_0 == pytest.approx(0.23, rel=1e-4)
    assert r.g2_0_convolved > r.g2_0  # the IRF fills the dip
    # a measured IRF (the Gaussian sampled on the bins, centre = zero) gives the same
    # answer up to the discretisation of a 300 ps IRF on 500 ps bins
    k = np.arange(-6, 7)
    irf = np.exp(-0.5 * (k * bw / 300.0) ** 2)
    ra = g2_cw_fit(lag, mu, irf=irf, data="counts")
    assert ra.irf == "array"
    assert ra.tau0_ps == pytest.approx(12_000.0, rel=0.01)
    assert ra.C == pytest.approx(0.77, rel=0.01)


def test_no_irf_exact_two_sided_exponential():
    bw = 1000.0
    lag = -80_000 + (np.arange(160) + 0.5) * bw
    a, b = lag - bw / 2, lag + bw / 2

    def prim(t):
        return np.sign(t) * 5000.0 * (1 - np.exp(-np.abs(t) / 5000.0))

    mu = 50.0 * (1 - 0.9 * (prim(b - 300.0) - prim(a - 300.0)) / bw)
    r = g2_cw_fit(lag, mu, data="counts")
    assert r.irf == "none"
    assert (r.C, r.tau0_ps, r.tau_offset_ps) == pytest.approx((0.9, 5000.0, 300.0), rel=1e-5)


def test_cw_fit_recovers_simulated_antibunching():
    """One 5 s acquisition at 2 x 200 kcps signal + 30 kcps background per detector
    (~130 coincidences per 500 ps bin): tau0 and C within 3 sigma of their errors."""
    rng = np.random.default_rng(2024)
    t1, t2, C = cw_hbt(rng)
    lag, counts = correlate(t1, t2, 500, 200_000)
    r = g2_cw_fit(lag, counts, irf=math.sqrt(2) * JITTER)
    assert isinstance(r, G2CWResult) and r.converged
    assert abs(r.tau0_ps - TAU0) < 3 * r.tau0_ps_err
    assert abs(r.C - C) < 3 * r.C_err
    assert abs(r.g2_0 - (1 - C)) < 3 * r.g2_0_err
    assert abs(r.tau_offset_ps) < 3 * r.tau_offset_ps_err
    assert r.tau0_ps_err / r.tau0_ps < 0.08
    assert 0.85 < r.chi2_red < 1.15  # Pearson chi2 of 800 bins: sd 0.05
    d = r.as_dict()
    assert d["C"] == r.C and d["method"] == "poisson_mle" and "g2" not in d
    assert r.g2.shape == r.model_g2.shape == r.lag_ps.shape == (800,)

    # normalised input with its errors: least squares with data-based errors sqrt(n)
    # (Neyman weights) pulls the model towards low bins by ~1 count of ~130 per bin, i.e.
    # ~1 % or ~0.4 sigma of C here: agreement within 0.6 sigma, and the reason the
    # Poisson likelihood is preferred for counts
    g = counts / r.baseline
    rg = g2_cw_fit(
        lag, g, irf=math.sqrt(2) * JITTER, data="g2", g2_err=np.sqrt(counts) / r.baseline
    )
    assert rg.method == "least_squares"
    assert abs(rg.tau0_ps - r.tau0_ps) < 0.6 * r.tau0_ps_err
    assert abs(rg.C - r.C) < 0.6 * r.C_err
    assert rg.C_err == pytest.approx(r.C_err, rel=0.1)

    # baseline fixed by a long-delay window: equals the window mean, parameters agree
    rn = g2_cw_fit(lag, counts, irf=math.sqrt(2) * JITTER, normalise_by=(100_000, 200_000))
    win = (np.abs(lag) >= 100_000) & (np.abs(lag) < 200_000)
    assert rn.normalised_by_window
    assert rn.baseline == pytest.approx(counts[win].mean())
    assert abs(rn.C - r.C) < r.C_err and abs(rn.tau0_ps - r.tau0_ps) < r.tau0_ps_err
    # the baseline error is propagated: C uncertainty not smaller than with A fitted
    assert rn.C_err > 0.9 * r.C_err


@pytest.mark.slow
def test_cw_fit_errors_are_honest_over_30_seeds():
    """30 independent acquisitions: the spread of tau0 and C over seeds equals the mean
    reported error (ratio in 0.7 - 1.3: the standard deviation of 30 samples is known to
    1/sqrt(58) = 13 %), and the mean pull is unbiased (|mean pull| < 3/sqrt(30))."""
    rng = np.random.default_rng(99)
    rows = []
    for _ in range(30):
        t1, t2, C = cw_hbt(rng)
        lag, counts = correlate(t1, t2, 500, 200_000)
        r = g2_cw_fit(lag, counts, irf=math.sqrt(2) * JITTER)
        assert r.converged
        rows.append((r.tau0_ps, r.tau0_ps_err, r.C, r.C_err, C))
    tau, tau_err, c, c_err, c_true = np.array(rows).T
    for est, err, truth in ((tau, tau_err, TAU0), (c, c_err, c_true)):
        ratio = est.std(ddof=1) / err.mean()
        assert 0.7 < ratio < 1.3, ratio
        pull = (est - truth) / err
        assert abs(pull.mean()) < 3 / math.sqrt(30)
        assert np.all(np.abs(pull) < 4)


def test_bad_inputs():
    lag = np.arange(10.0)
    with pytest.raises(ValueError, match="uniformly"):
        g2_cw_fit(np.r_[lag[:-1], 20.0], np.ones(10))
    with pytest.raises(ValueError, match="odd"):
        g2_cw_fit(lag, np.ones(10) * 5, irf=np.ones(4), data="counts")
    with pytest.raises(ValueError, match="same length"):
        g2_cw_fit(lag, np.ones(9))
    with pytest.raises(ValueError, match="sigma"):
        g2_cw_fit(lag, np.ones(10) * 5, irf=-1.0, data="counts")
    # a float histogram is never guessed to be counts or g2 from its values
    with pytest.raises(ValueError, match="data='counts'"):
        g2_cw_fit(lag, np.ones(10) * 5.0)


def test_sparse_float_counts_are_fitted_as_counts_when_told():
    """The review's case: a sparse histogram (0/1 coincidences per bin, e.g. read back from
    HDF5 as float) was taken for a normalised g2 and gave C = 35.5 +- 0. Told it is counts,
    the Poisson fit either identifies C within [0, 1] with a positive error, or says it
    cannot identify it."""
    rng = np.random.default_rng(5)
    lag = np.arange(-200, 201) * 1000.0
    mu = 0.3 * (1 - 0.8 * np.exp(-np.abs(lag) / 5000.0))
    counts = rng.poisson(mu).astype(float)
    assert counts.max() <= 3
    r = g2_cw_fit(lag, counts, data="counts")
    assert r.method == "poisson_mle"
    if r.identifiable:
        assert r.C_err > 0 and abs(r.C - 0.8) < 4 * r.C_err
    else:
        assert math.isinf(r.C_err) and r.message != "ok"


def test_flat_histogram_is_not_identifiable():
    """No antibunching dip at all (a Poisson source): the contrast is ~0 and tau0 is
    unconstrained; the result must say so rather than report errors of 1e9."""
    rng = np.random.default_rng(6)
    lag = np.arange(-200, 201) * 1000.0
    counts = rng.poisson(np.full(lag.size, 50.0))
    r = g2_cw_fit(lag, counts)
    assert not r.identifiable
    assert "unconstrained" in r.message or "singular" in r.message
    assert math.isinf(r.tau0_ps_err)


def test_goodness_of_fit_p_value_is_uniform_under_the_model():
    """Counts drawn from the fitted model itself (30 coincidences per bin at the plateau,
    where the deviance is close to chi-square): over 60 histograms the p-values are roughly
    uniform -- the fraction below 0.1 is 0.1 +- 3 sqrt(0.09 / 60) = 0.1 +- 0.12 -- and a
    wrong model (a dip with a second, slower component) gives p < 1e-3."""
    lag = np.arange(-150, 151) * 1000.0
    mu = 30.0 * (1 - 0.7 * np.exp(-np.abs(lag) / 8000.0))
    rng = np.random.default_rng(8)
    p = np.array([g2_cw_fit(lag, rng.poisson(mu)).gof_p_value for _ in range(60)])
    assert np.mean(p < 0.1) < 0.22 and np.mean(p) > 0.35
    wrong = 300.0 * (1 - 0.5 * np.exp(-np.abs(lag) / 3000.0) - 0.3 * np.exp(-np.abs(lag) / 40000.0))
    assert g2_cw_fit(lag, rng.poisson(wrong)).gof_p_value < 1e-3


@pytest.mark.parametrize(
    ("seed", "A", "C", "tau0", "sigma"),
    [
        (0, 30.0, 0.8, 8000.0, 300.0),
        (1, 2.0, 0.7, 12000.0, 400.0),  # a few coincidences per bin
        (2, 100.0, 0.3, 3000.0, 500.0),  # shallow dip, tau0 close to the IRF
        (3, 5.0, 0.95, 20000.0, 200.0),
    ],
)
def test_cw_fit_is_at_least_as_likely_as_the_truth(seed, A, C, tau0, sigma):
    """Optimiser-independent check (as for two_level_fit): on counts drawn from the model
    itself, the Poisson log-likelihood at the fit's optimum is not below the one at the
    generating parameters (slack 1e-6 relative for the optimiser's tolerance)."""
    from scipy.special import gammaln

    from hbtscope.analysis import g2_cw_model

    lag = np.arange(-200, 201) * 500.0
    rng = np.random.default_rng(seed)
    mu = g2_cw_model(lag, A, C, tau0, 700.0, irf_sigma_ps=sigma)
    y = rng.poisson(mu)
    r = g2_cw_fit(lag, y, irf=sigma)

    def loglik(m):
        return float(np.sum(y * np.log(m) - m - gammaln(y + 1.0)))

    at_fit = loglik(g2_cw_model(lag, r.baseline, r.C, r.tau0_ps, r.tau_offset_ps, sigma))
    assert at_fit == pytest.approx(r.log_likelihood, rel=1e-9)  # the model is the fit's
    truth = loglik(mu)
    assert at_fit >= truth - 1e-6 * abs(truth), (at_fit, truth)
