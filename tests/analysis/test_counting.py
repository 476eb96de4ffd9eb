"""Coverage of the exact Poisson interval (Garwood), by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hbtscope.analysis import poisson_interval


@pytest.mark.parametrize("mean", [0.05, 1.0, 5.0, 20.0, 1000.0])
def test_poisson_interval_covers_the_mean(mean):
    """20 000 Poisson draws: the 68.27 % interval contains the true mean in at least nominal
    - 3 binomial sigma (0.0099) of them -- Garwood's interval is conservative, so we also
    check it is not trivial (< 0.99 except at tiny means, where every draw is 0 and [0,
    1.84] always covers)."""
    rng = np.random.default_rng(int(mean * 100))
    n = rng.poisson(mean, 20_000)
    lo, hi = poisson_interval(n)
    cover = np.mean((lo <= mean) & (mean <= hi))
    assert cover >= 0.6827 - 3 * math.sqrt(0.68 * 0.32 / 20_000), cover
    if mean >= 1:
        assert cover < 0.99, cover


def test_zero_counts_give_an_upper_limit():
    lo, hi = poisson_interval(0)
    assert lo == 0.0 and hi == pytest.approx(-math.log(0.158655), rel=1e-6)  # 1.84
    with pytest.raises(ValueError):
        poisson_interval(-1)
