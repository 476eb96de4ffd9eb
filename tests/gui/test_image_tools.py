"""The image views' pure helpers (hbtscope/gui/image_tools.py): percentile levels, the per-pixel
mean-arrival lifetime on simulated decays with known lifetimes, the FLIM colouring."""

from __future__ import annotations

import numpy as np

from hbtscope.gui.image_tools import (
    flim_rgb,
    mean_arrival_lifetime_ps,
    percentile_levels,
    pixel_rect,
)


def test_percentile_levels_of_a_known_image_and_degenerate_ones():
    image = np.arange(10_000, dtype=float).reshape(100, 100)
    lo, hi = percentile_levels(image, 1.0, 99.0)
    assert abs(lo - 99.99) < 1e-6 and abs(hi - 9899.01) < 1e-6
    assert percentile_levels(np.full((4, 4), np.nan)) == (0.0, 1.0)
    lo, hi = percentile_levels(np.full((4, 4), 7.0))
    assert lo == 7.0 and hi > lo
    big = np.random.default_rng(1).exponential(100.0, size=(512, 512))  # subsampled
    lo, hi = percentile_levels(big, 1.0, 99.5)
    assert abs(lo - 100 * -np.log(0.99)) < 0.3 and abs(hi - 100 * -np.log(0.005)) < 25


def test_mean_arrival_lifetime_recovers_simulated_lifetimes_per_pixel():
    """Photons at the IRF peak plus Exp(tau), 100 ps bins, a 50 ns window, 20 000 photons per
    pixel: the estimate is the mean of floor(t / bin) * bin of the window-truncated
    exponential (computed exactly below) within 4 sigma (sigma = tau / sqrt(N))."""
    rng = np.random.default_rng(7)
    bin_ps, n_bins, peak, n = 100.0, 500, 20, 20_000
    taus = np.array([[1000.0, 3000.0], [6000.0, 10_200.0]])
    tcspc = np.zeros(taus.shape + (n_bins,))
    for idx, tau in np.ndenumerate(taus):
        k = peak + np.floor(rng.exponential(tau, n) / bin_ps).astype(int)
        tcspc[idx] = np.bincount(k[k < n_bins], minlength=n_bins)
    est = mean_arrival_lifetime_ps(tcspc, bin_ps)
    for idx, tau in np.ndenumerate(taus):
        k = np.arange(n_bins - peak)
        p = np.exp(-k * bin_ps / tau) - np.exp(-(k + 1) * bin_ps / tau)  # P(floor = k)
        expected = float((k * bin_ps * p).sum() / p.sum())
        assert abs(est[idx] - expected) < 4 * tau / np.sqrt(n), (tau, est[idx], expected)
    assert np.all(np.diff(est.ravel()) > 0)  # ordered as the lifetimes
    empty = mean_arrival_lifetime_ps(np.zeros((2, 3, n_bins)), bin_ps)
    assert np.isnan(empty).all()


def test_flim_colours_short_red_long_blue_no_lifetime_grey():
    counts = np.array([[100.0, 100.0, 100.0, 50.0]])
    tau = np.array([[1000.0, 5000.0, np.nan, 1000.0]])
    rgb = flim_rgb(counts, tau, (0.0, 100.0), (1000.0, 5000.0))
    assert rgb.shape == (1, 4, 3) and rgb.dtype == np.uint8
    short, long_, none, dim = rgb[0]
    assert short[0] == 255 and short[2] == 0  # red
    assert long_[2] > long_[0]  # towards blue
    assert none[0] == none[1] == none[2] == 255  # grey at full brightness
    assert dim[0] < short[0]  # half the counts, darker


def test_pixel_rect_spans_the_pixel_edges():
    x0, y0, w, h = pixel_rect(np.array([0.0, 1.0, 2.0]), np.array([10.0, 12.0]))
    assert (x0, y0, w, h) == (-0.5, 9.0, 3.0, 4.0)
