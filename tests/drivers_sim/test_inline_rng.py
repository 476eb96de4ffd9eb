"""The simulator kernels' inline generator (xoshiro256** + numpy's ziggurat samplers)."""

import numpy as np
import pytest
from scipy import stats

from hbtscope.drivers_sim._kernels import rng_draws, rng_state

N = 1_000_000


@pytest.mark.parametrize(("kind", "dist"), [(0, stats.uniform), (1, stats.expon), (2, stats.norm)])
def test_inline_draws_follow_their_distribution(kind, dist):
    # KS at 1e6 draws (sensitive to a 0.1 % distortion), and the ziggurat's tail branch:
    # P(x > 7.697) (exponential) / P(|x| > 3.654) (normal) within 5 sigma of the binomial
    x = rng_draws(rng_state(20261121 + kind), N, kind)
    assert stats.kstest(x, dist.cdf).pvalue > 1e-3
    tail = {0: 0.99, 1: 7.69711747013104972, 2: 3.6541528853610088}[kind]
    p = dist.sf(tail) * (2 if kind == 2 else 1)
    n_tail = np.count_nonzero(np.abs(x) > tail)
    assert abs(n_tail - N * p) < 5 * np.sqrt(N * p)


def test_inline_generator_is_deterministic_per_seed():
    a = rng_draws(rng_state(7), 1000, 2)
    assert np.array_equal(a, rng_draws(rng_state(7), 1000, 2))
    assert not np.array_equal(a, rng_draws(rng_state(8), 1000, 2))
