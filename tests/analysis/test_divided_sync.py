"""Photon delays from a divided sync and the alignment of two detectors (synthetic data)."""

from __future__ import annotations

import numpy as np
import pytest

from hbtscope.analysis.divided_sync import (
    align_delays,
    delays_from_divided_sync,
    rising_edge_ps,
    sync_period_ps,
)


def _pulses(n_pulses: int, period: float, phase: float = 1234.0) -> np.ndarray:
    return phase + np.round(np.arange(n_pulses) * period).astype(np.int64)


@pytest.mark.parametrize("divider", [1, 7, 1000])
def test_delays_are_those_after_the_exciting_pulse(divider):
    """Photons at pulse k + a known delay: the delay is recovered within the rounding of the
    pulse times (1 ps), with a non-integer period, sorted or not; photons before the first
    kept sync get -1, photons after the last one use the last stretch's period."""
    rng = np.random.default_rng(1)
    period = 200_000.4
    pulses = _pulses(20_000, period)
    sync = pulses[divider::divider]  # the first kept sync is not the first pulse
    k = np.sort(rng.integers(0, pulses.size, 5000))
    true = rng.exponential(10_000.0, k.size) % 150_000
    ph = pulses[k] + true.astype(np.int64)
    assert sync_period_ps(sync, divider) == pytest.approx(period, abs=1.0 / divider)
    for order in (np.arange(ph.size), rng.permutation(ph.size)):
        d = delays_from_divided_sync(ph[order], sync, divider)
        before = ph[order] < sync[0]
        assert np.all(d[before] == -1)
        np.testing.assert_allclose(d[~before], np.floor(true[order][~before]), atol=1.5)


def test_two_detectors_are_aligned_on_their_rising_edges():
    rng = np.random.default_rng(2)
    period = 200_000.0
    n = 200_000
    d_a = 2000.0 + rng.normal(0, 150, n) + rng.exponential(10_000.0, n)
    d_b = 4700.0 + rng.normal(0, 150, n) + rng.exponential(10_000.0, n)
    delay = np.mod(np.concatenate([d_a, d_b]), period)
    ch = np.repeat([2, 3], n)
    aligned, shifts = align_delays(delay, ch, period, reference=2)
    assert shifts[2] == 0.0
    assert shifts[3] == pytest.approx(-2700.0, abs=64.0)  # within two 32 ps histogram bins
    edges = [rising_edge_ps(aligned[ch == c], period) for c in (2, 3)]
    assert abs(edges[0] - edges[1]) <= 32.0
