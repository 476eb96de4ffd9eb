"""The live decay of a TTTR record, fed read-out by read-out: the same histogram as the whole
record at once, and the mean arrival time of an exponential decay is its lifetime."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hbtscope.analysis.divided_sync import delays_from_divided_sync
from hbtscope.analysis.live_decay import DecayAccumulator

PERIOD_PS = 200_000  # 5 MHz
DIVIDER = 1000


def record(tau_ps: float, n_photons: int, seed: int, offset_ps: int = 30_000):
    """Photons of an exponential decay (lifetime ``tau_ps``) ``offset_ps`` after random laser
    pulses, and the sync kept every ``DIVIDER`` pulses."""
    rng = np.random.default_rng(seed)
    n_pulses = 200_000_000  # 40 s of pulses
    pulses = np.sort(rng.choice(n_pulses, size=n_photons, replace=False)).astype(np.int64)
    delays = offset_ps + rng.exponential(tau_ps, n_photons)
    photons = pulses * PERIOD_PS + np.floor(delays).astype(np.int64)
    photons.sort()
    sync = np.arange(0, n_pulses, DIVIDER, dtype=np.int64) * PERIOD_PS + 7
    return photons, sync


def test_chunked_histogram_equals_the_whole_record():
    photons, sync = record(10_000.0, 50_000, seed=1)
    whole = delays_from_divided_sync(photons, sync, DIVIDER)
    whole = whole[whole >= 0]
    live = DecayAccumulator(DIVIDER, bin_ps=100.0)
    rng = np.random.default_rng(2)
    cuts = np.sort(rng.integers(0, photons[-1], 300))  # 300 read-outs of random lengths
    bounds = np.r_[-1, cuts, photons[-1] + 1]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        live.add(photons[(photons > lo) & (photons <= hi)], sync[(sync > lo) & (sync <= hi)])
    expected = np.bincount(
        np.minimum((whole // 100.0).astype(int), live.counts.size - 1),
        minlength=live.counts.size,
    )
    assert live.period_ps == pytest.approx(PERIOD_PS - 0.0, abs=1e-6)
    # the carried-over sync: a photon in a read-out without its own sync is not lost
    assert np.array_equal(live.counts, expected)
    assert live.counts.sum() == whole.size


@pytest.mark.parametrize("tau_ps", [2_000.0, 10_000.0, 25_000.0])
def test_mean_arrival_time_is_the_lifetime(tau_ps):
    """An exponential's mean delay after its onset is tau; with n photons the estimate has
    sd tau / sqrt(n) (1 % at 10 000 photons). The rising edge is found to a bin (100 ps; the
    onset here is 7 ps before a bin edge), and wrapping at 200 ns removes e^(-170/25) < 0.2 %
    of the tail: 4 sd + 150 ps."""
    photons, sync = record(tau_ps, 10_000, seed=3)
    live = DecayAccumulator(DIVIDER, bin_ps=100.0)
    live.add(photons[:100], sync[sync <= photons[99]])  # a first read-out builds the edge
    half = photons.size // 2
    live.add(photons[100:half], sync[(sync > photons[99]) & (sync <= photons[half - 1])])
    mean_ns = live.add(photons[half:], sync[sync > photons[half - 1]])
    n = photons.size - half
    tolerance_ns = (4 * tau_ps / math.sqrt(n) + 150 + 0.002 * tau_ps) / 1e3
    assert mean_ns == pytest.approx(tau_ps / 1e3, abs=tolerance_ns)
    assert live.rising_edge_ps() == pytest.approx(30_000, abs=200)


def test_no_period_before_two_syncs_and_bad_arguments():
    live = DecayAccumulator(DIVIDER)
    assert math.isnan(live.add(np.array([5, 9]), np.array([], dtype=np.int64)))
    assert live.counts.size == 0
    assert math.isnan(live.add(np.array([15]), np.array([10])))  # one sync: no period yet
    assert math.isnan(live.add(np.array([], dtype=np.int64), np.array([200_000_010])))
    assert live.period_ps == pytest.approx(200_000.0)  # (200_000_010 - 10) / 1000
    with pytest.raises(ValueError, match="divider"):
        DecayAccumulator(0)
    with pytest.raises(ValueError, match="bin_ps"):
        DecayAccumulator(10, bin_ps=float("nan"))
