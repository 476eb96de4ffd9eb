"""hbtscope.analysis.bleaching: the half-life read off a survival curve, and the drift of a
bleaching video followed to the end (when the last spots go out, not thrown elsewhere)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hbtscope.analysis.bleaching import DriftFollower, time_to_fraction
from hbtscope.analysis.images import survival_curve


def test_half_life_of_an_exponential_population():
    """400 emitters with exponential bleaching times of half-life 300 s, a frame every 10 s:
    the crossing of 0.5 is within its interval of 300 s, and the interval is the band's."""
    rng = np.random.default_rng(1)
    bleach = rng.exponential(300.0 / math.log(2), 400)
    t = np.arange(0.0, 1200.0, 10.0)
    curve = survival_curve(t, bleach[None, :] > t[:, None])
    half = time_to_fraction(t, curve.fraction, curve.lower, curve.upper)
    assert half.reached and half.lower <= half.time <= half.upper
    # 3 sigma of the interval (68 %) plus a frame of interpolation
    assert abs(half.time - 300.0) < 3 * half.error + 10.0
    assert 0 < half.error < 60.0


def test_half_life_not_reached_is_nan_and_says_so():
    t = np.arange(5.0)
    f = np.array([1.0, 0.9, 0.8, 0.7, 0.6])
    half = time_to_fraction(t, f, f - 0.15, f + 0.05)
    assert not half.reached and math.isnan(half.time) and math.isnan(half.error)
    assert half.lower == pytest.approx(3.0 + (0.55 - 0.5) / 0.1)  # the lower bound crosses
    with pytest.raises(ValueError):
        time_to_fraction(t, f, f, f, level=1.5)


def _frame(rng, xy, amp, shift, shape=(128, 128), sigma=0.7, bg=20.0):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    lam = np.full(shape, bg)
    for (x, y), a in zip(xy, amp, strict=True):
        lam += a * np.exp(-((xx - x - shift[1]) ** 2 + (yy - y - shift[0]) ** 2) / (2 * sigma**2))
    return rng.poisson(lam).astype(float)


def test_drift_is_followed_while_the_field_bleaches_out():
    """A creep of log shape (8 px between the first two frames, then slower), emitters going
    out one after another until one is left, then none: the shift is followed to
    0.25 px (an eighth of the 2 px aperture; the steps add up, about 0.03 px each on these
    spots) while spots remain (also when a bright spot goes out beside the last, fainter one: on
    frame 0 that would match the wrong spot), and kept once nothing is left."""
    rng = np.random.default_rng(7)
    n = 20
    xy = rng.uniform(25, 103, size=(n, 2))
    xy[-1] = xy[-2] + (9.0, 4.0)  # the last two: a bright one goes out beside a fainter one
    amp = np.full(n, 300.0)
    amp[-2] = 900.0
    times = np.arange(1, 40)
    shifts = np.column_stack([-6 * np.log10(times / 0.1), -4 * np.log10(times / 0.1)])
    shifts = np.vstack([[0.0, 0.0], shifts - shifts[0] + (-6.0, -4.0)])
    out_at = np.append(np.linspace(2, 30, n - 1).astype(int), 35)  # frame where each goes out
    follower = DriftFollower(_frame(rng, xy, amp, shifts[0]))
    for k in range(1, len(shifts)):
        on = out_at > k
        got = follower.shift(_frame(rng, xy[on], amp[on], shifts[k]))
        if on.any():
            assert np.allclose(got, shifts[k], atol=0.25), (k, got, shifts[k])
        else:  # nothing to correlate: the last shift is kept
            assert np.allclose(got, shifts[34], atol=0.25), (k, got)
    assert follower.n_refused == len(shifts) - 35
