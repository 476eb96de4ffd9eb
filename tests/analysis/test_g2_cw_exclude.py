"""g2_cw_fit(exclude_ps=...): narrow crosstalk spikes left out of a CW antibunching fit."""

from __future__ import annotations

import numpy as np
import pytest

from hbtscope.analysis.g2_cw import g2_cw_fit, g2_cw_model


def _histogram(seed: int, spikes: bool):
    lag = np.arange(-100_000, 100_001, 500, dtype=np.float64)
    mu = g2_cw_model(lag, 400.0, 0.8, 10_000.0, 2700.0, irf_sigma_ps=210.0)
    if spikes:  # breakdown-flash crosstalk: +-8 ns around the zero delay, ~10 x the baseline
        for centre in (2700.0 - 8000.0, 2700.0 + 8000.0):
            mu = mu + 4000.0 * (np.abs(lag - centre) < 300)
    return lag, np.random.default_rng(seed).poisson(mu)


def test_excluding_the_spikes_recovers_the_antibunching():
    """Truth C = 0.8, tau0 = 10 ns. With the spikes fitted, the dip is filled and C is
    biased by many sigma; with the two windows excluded C and tau0 are within 4 sigma."""
    lag, counts = _histogram(3, spikes=True)
    windows = [(2700.0 - 9000.0, 2700.0 - 7000.0), (2700.0 + 7000.0, 2700.0 + 9000.0)]
    res = g2_cw_fit(lag, counts, irf=210.0, data="counts", exclude_ps=windows)
    assert abs(res.C - 0.8) < 4 * res.C_err
    assert abs(res.tau0_ps - 10_000.0) < 4 * res.tau0_ps_err
    biased = g2_cw_fit(lag, counts, irf=210.0, data="counts")
    assert abs(biased.C - 0.8) > 4 * biased.C_err
    assert res.n_bins == biased.n_bins - 8  # the bins of the two windows


def test_exclusion_is_refused_with_a_measured_irf_and_bad_windows():
    lag, counts = _histogram(4, spikes=False)
    irf = np.exp(-0.5 * (np.arange(-5, 6) * 500.0 / 210.0) ** 2)
    with pytest.raises(ValueError, match="needs a Gaussian IRF"):
        g2_cw_fit(lag, counts, irf=irf, data="counts", exclude_ps=[(0.0, 1000.0)])
    with pytest.raises(ValueError, match="lo < hi"):
        g2_cw_fit(lag, counts, irf=210.0, data="counts", exclude_ps=[(1000.0, 0.0)])
