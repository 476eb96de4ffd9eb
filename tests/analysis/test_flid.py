"""FLID: kernel density of (intensity, lifetime) with 50 % / 68 % highest-density contours.

Reference distribution: a correlated 2-D Gaussian (intensity 150 +- 20 counts per bin,
lifetime 8 +- 2 ns, correlation 0.8 as in type-A blinking). For a 2-D Gaussian the region
of highest density holding probability p is the ellipse of Mahalanobis radius
sqrt(-2 ln(1 - p)).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtscope.analysis.flid import FLIDResult, contour_lines, flid

MEAN = np.array([150.0, 8.0])
COV = np.array([[400.0, 0.8 * 20 * 2], [0.8 * 20 * 2, 4.0]])


def _sample(rng, n):
    return rng.multivariate_normal(MEAN, COV, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_levels_enclose_50_and_68_percent_of_fresh_samples(seed):
    """The 50 %/68 % regions of a FLID built from n = 4000 bins contain 50 %/68 % of
    50 000 fresh samples of the same distribution. Sampling error: the level is a quantile
    of n points (sd sqrt(p(1-p)/n) = 0.008 in coverage) plus the fresh-sample binomial
    sd (0.002); we allow 4 combined sd."""
    rng = np.random.default_rng(seed)
    x = _sample(rng, 4000)
    r = flid(x[:, 0], x[:, 1])
    assert isinstance(r, FLIDResult)
    fresh = _sample(rng, 50_000)
    d = r.density_at(fresh[:, 0], fresh[:, 1])
    for p, level in ((0.5, r.level_50), (0.68, r.level_68)):
        cover = np.mean(d >= level)
        sd = math.sqrt(p * (1 - p) / 4000 + p * (1 - p) / 50_000)
        assert abs(cover - p) < 4 * sd, (p, cover)
        # the data points themselves: exactly p by construction
        assert r.fraction_inside[p] == pytest.approx(p, abs=2 / 4000)
    assert r.level_50 > r.level_68 > 0


def test_contours_are_the_gaussian_ellipses():
    """The contours are closed curves at Mahalanobis radius sqrt(-2 ln(1 - p)) (1.177 and
    1.510), widened by the kernel: radius^2 (1 + f^2), f = n^(-1/6) (Scott), i.e. +1.1 % at
    n = 20 000. Tolerance 3 %: level sampling error (~1 %) plus grid interpolation."""
    rng = np.random.default_rng(5)
    n = 20_000
    x = _sample(rng, n)
    r = flid(x[:, 0], x[:, 1], grid=(160, 160))
    ci = np.linalg.inv(COV)
    f2 = n ** (-1 / 3)
    for p in (0.5, 0.68):
        paths = r.contour_paths[p]
        assert len(paths) == 1
        line = paths[0]
        np.testing.assert_allclose(line[0], line[-1])  # closed
        d = line - MEAN
        radius = np.sqrt(np.einsum("ij,jk,ik->i", d, ci, d))
        expected = math.sqrt(-2 * math.log(1 - p)) * math.sqrt(1 + f2)
        assert np.mean(radius) == pytest.approx(expected, rel=0.03)
        assert np.std(radius) < 0.03 * expected


def test_density_mode_integrates_to_one_and_density_levels():
    rng = np.random.default_rng(7)
    x = _sample(rng, 3000)
    r = flid(x[:, 0], x[:, 1], levels_from="density")
    dx = np.diff(r.x_edges)[0]
    dy = np.diff(r.y_edges)[0]
    assert r.density.sum() * dx * dy == pytest.approx(1.0, abs=1e-3)
    assert r.density.shape == (r.x_edges.size - 1, r.y_edges.size - 1)
    # "density" levels hold p of the KDE mass (to the grid's discreteness)
    assert r.mass_inside[0.5] == pytest.approx(0.5, abs=0.01)
    assert r.mass_inside[0.68] == pytest.approx(0.68, abs=0.01)
    # ... and, being smoothed by the kernel, slightly more than p of the points
    assert r.fraction_inside[0.5] > 0.5


def test_kde_matches_direct_sum():
    """The binned FFT KDE agrees with the direct Gaussian-kernel sum at the grid nodes."""
    rng = np.random.default_rng(9)
    x = _sample(rng, 300)
    r = flid(x[:, 0], x[:, 1], grid=(96, 96))
    h = r.bandwidth
    hinv = np.linalg.inv(h)
    norm = 1 / (2 * math.pi * math.sqrt(np.linalg.det(h)))
    xc, yc = r.x_centres[::8], r.y_centres[::8]
    gx, gy = np.meshgrid(xc, yc, indexing="ij")
    d = np.stack([gx.ravel()[:, None] - x[:, 0], gy.ravel()[:, None] - x[:, 1]], axis=-1)
    q = np.einsum("nmi,ij,nmj->nm", d, hinv, d)
    direct = (norm * np.exp(-0.5 * q)).mean(axis=1).reshape(gx.shape)
    binned = r.density[::8, ::8]
    assert np.max(np.abs(binned - direct)) < 0.01 * direct.max()


def test_empty_bins_are_dropped_and_bandwidth_options():
    rng = np.random.default_rng(11)
    x = _sample(rng, 500)
    life = x[:, 1].copy()
    life[::10] = np.nan  # bins without photons
    r = flid(x[:, 0], life, bandwidth=0.3)
    assert r.n_points == 450
    r2 = flid(x[:, 0], x[:, 1], bandwidth=(5.0, 0.5))
    np.testing.assert_allclose(r2.bandwidth, np.diag([25.0, 0.25]))
    r3 = flid(x[:, 0], x[:, 1], bandwidth="silverman", probs=(0.9,))
    assert set(r3.contour_paths) == {0.5, 0.68, 0.9}


def test_contour_lines_on_a_circle():
    xc = np.linspace(-3, 3, 121)
    yc = np.linspace(-3, 3, 121)
    gx, gy = np.meshgrid(xc, yc, indexing="ij")
    f = np.exp(-0.5 * (gx**2 + gy**2))
    lines = contour_lines(f, 0.5, xc, yc)
    assert len(lines) == 1
    r = np.hypot(lines[0][:, 0], lines[0][:, 1])
    np.testing.assert_allclose(r, math.sqrt(2 * math.log(2)), rtol=2e-3)
    # two separate blobs give two closed lines; a level above the maximum gives none
    f2 = np.exp(-0.5 * ((gx - 1.5) ** 2 + gy**2) / 0.2) + np.exp(
        -0.5 * ((gx + 1.5) ** 2 + gy**2) / 0.2
    )
    assert len(contour_lines(f2, 0.5, xc, yc)) == 2
    assert contour_lines(f2, 5.0, xc, yc) == []
    # a level cut by the grid edge gives an open line
    open_lines = contour_lines(gx, 0.0, xc, yc)
    assert len(open_lines) == 1 and not np.allclose(open_lines[0][0], open_lines[0][-1])


def test_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        flid([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no bins"):
        flid([], [])
    with pytest.raises(ValueError, match="NaN"):
        flid([1.0, np.nan, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="at least 3"):
        flid([1.0, 2.0, 3.0], [1.0, np.nan, np.nan])
    with pytest.raises(ValueError, match="degenerate"):
        flid([1.0, 2.0, 3.0, 4.0], [5.0, 5.0, 5.0, 5.0])
    with pytest.raises(ValueError, match="bandwidth"):
        flid([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0], bandwidth="wide")
    with pytest.raises(ValueError, match="levels_from"):
        flid([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0], levels_from="mass")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))),
            st.one_of(st.floats(-1e6, 1e6), st.just(float("nan"))),
        ),
        max_size=20,
    )
)
def test_flid_never_crashes(pairs):
    a = np.array([p[0] for p in pairs], dtype=float)
    b = np.array([p[1] for p in pairs], dtype=float)
    try:
        r = flid(a, b, grid=(16, 16))
    except ValueError:
        return
    assert np.all(np.isfinite(r.density)) and r.level_68 <= r.level_50
