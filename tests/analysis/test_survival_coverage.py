"""Coverage of the survival curve's interval, by simulation.

Each "frame" of the alive matrix is an independent experiment: n emitters each alive with
probability p. Over 4000 experiments the 68.27 % Clopper-Pearson interval must contain p
in at least nominal - 3 binomial sigma (3 sqrt(0.68 * 0.32 / 4000) = 0.022) of them; it is
conservative by construction, so above nominal we only require that it is not trivial
(< 0.99): for a binomial of tens of emitters it is very discrete (measured up to 0.94 at
n = 30, p = 0.97, where 40 % of experiments see all 30 alive).
"""

from __future__ import annotations

import numpy as np
import pytest

from hbtscope.analysis import survival_curve

N_EXP = 4000


@pytest.mark.parametrize("n", [10, 30, 100])
@pytest.mark.parametrize("p", [0.0, 0.02, 0.1, 0.3, 0.5, 0.8, 0.97, 1.0])
def test_survival_interval_covers(n, p):
    rng = np.random.default_rng(1000 * n + int(100 * p))
    alive = rng.random((N_EXP, n)) < p
    curve = survival_curve(np.arange(float(N_EXP)), alive)
    inside = (curve.lower <= p) & (p <= curve.upper)
    cover = inside.mean()
    assert cover >= 0.6827 - 3 * np.sqrt(0.6827 * 0.3173 / N_EXP), cover
    assert np.all(curve.fraction_err > 0)
    if 0 < p < 1:
        assert cover < 0.99, cover
