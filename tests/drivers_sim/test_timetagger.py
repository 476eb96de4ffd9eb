"""The simulated time tagger keeps the Swabian API contract and the world's statistics."""

from __future__ import annotations

import numpy as np
import pytest

import hbtscope
from hbtscope.drivers_sim import timetagger as simtt


@pytest.fixture()
def setup(tmp_path, ideal_stage_setup_path):
    # the subject is not the stage: an ideal one puts the focus exactly on the emitter
    with hbtscope.open_setup(ideal_stage_setup_path, data_dir=tmp_path) as s:
        s.stage.move_to(10.0, 10.0, 0.0)
        s.laser.power_W = 24e-9
        s.laser.enable()
        yield s


def _record(setup, seconds, readout_s=None, channels=(2, 3)):
    tt = setup.tagger
    stream = tt.api.TimeTagStream(tt.device, 50_000_000, list(channels))
    stream.startFor(int(seconds * 1e12))
    parts_t, parts_c = [], []
    if readout_s is None:
        stream.waitUntilFinished()
    while True:
        if readout_s is not None:
            setup.clock.sleep(readout_s)
        running = stream.isRunning()
        buf = stream.getData()
        parts_t.append(buf.getTimestamps())
        parts_c.append(buf.getChannels())
        if not running:
            break
    return np.concatenate(parts_t), np.concatenate(parts_c)


def test_api_types_and_lifecycle(setup):
    tt = setup.tagger
    assert tt.api is simtt
    dev = tt.device
    assert dev.getSerial() in simtt.scanTimeTagger()
    with pytest.raises(RuntimeError, match="already in use"):
        simtt.createTimeTagger(dev.getSerial())
    stream = simtt.TimeTagStream(dev, 1_000_000, [2, 3])
    assert stream.isRunning()  # measurements start when constructed
    setup.clock.sleep(0.1)
    buf = stream.getData()
    ts, ch, ev = buf.getTimestamps(), buf.getChannels(), buf.getEventTypes()
    assert ts.dtype == np.int64 and ts.size == buf.size > 0
    assert set(np.unique(ch)) <= {2, 3}
    assert np.all(np.diff(ts) >= 0)
    assert np.all(ev == simtt.TagType.TimeTag)
    assert buf.tGetData - buf.tStart == pytest.approx(0.1e12, rel=1e-6)
    corr = simtt.Correlation(dev, 2, 3, binwidth=1000, n_bins=2000)
    corr.startFor(int(0.5e12))
    assert corr.waitUntilFinished() is True
    assert not corr.isRunning()
    assert corr.getData().dtype == np.int32 and corr.getData().size == 2000
    idx = corr.getIndex()
    assert idx.dtype == np.int64 and idx[0] == -999_500 and idx[-1] == 999_500
    assert corr.getCaptureDuration() == int(0.5e12)
    with pytest.raises(ValueError, match="Invalid channel"):
        simtt.Countrate(dev, [42])
    with pytest.raises(ValueError, match="trigger level"):
        dev.setTriggerLevel(2, 7.0)
    assert dev.setDeadtime(2, 100) == 2000  # clamped to the hardware minimum


def test_countrate_matches_truth(setup):
    """Mean count rate over 10 s equals the world's expected rate within 4 Poisson sigma."""
    tt = setup.tagger
    cr = tt.api.Countrate(tt.device, [2, 3])
    cr.startFor(int(10e12))
    cr.waitUntilFinished()
    truth = setup.truth()
    expected = truth["emitter_rate_cps"] + truth["background_rate_cps"] + truth["dark_rate_cps"]
    total = cr.getCountsTotal().sum()
    # dead time (22 ns) loses the second photon of a pulse only if both hit one SPAD:
    # a relative loss ~ g2(0) * rate / f_rep / 2 < 1e-3, below the 4-sigma band here
    assert abs(total - expected * 10.0) < 4 * np.sqrt(expected * 10.0)
    assert cr.getData().sum() == pytest.approx(total / 10.0)


def _pair_histogram(t1, t2, binwidth, n_bins):
    """Brute force, O(n1 * n2): every pair's tau = t2 - t1 into bins of ``binwidth`` ps
    covering [-n_bins * binwidth / 2, +n_bins * binwidth / 2), left-closed."""
    half = n_bins * binwidth // 2
    counts = np.zeros(n_bins, np.int64)
    for a in np.array_split(t1, max(1, t1.size // 256)):
        tau = (t2[None, :] - a[:, None]).ravel()
        tau = tau[(tau >= -half) & (tau < half)]
        counts += np.bincount((tau + half) // binwidth, minlength=n_bins)
    return counts


def test_correlation_counts_every_pair_of_the_stream(setup):
    """The tagger's Correlation equals a brute-force count of all pairs of the raw stream.

    The reference is written here, not taken from ``hbtscope.analysis``, so it catches the
    streaming accumulator (history pruning across read-outs every 7 ms) as well as the
    binning; 0.15 s of the emitter at ~30 kcps per SPAD give ~3000 pairs within +-10 us.
    """
    tt = setup.tagger
    stream = tt.api.TimeTagStream(tt.device, 10_000_000, [2, 3])
    corr = tt.api.Correlation(tt.device, 2, 3, binwidth=10_000, n_bins=2000)
    for _ in range(21):
        setup.clock.sleep(0.007)
        corr.getData()  # the tagger catches up: one more chunk for the accumulator
    corr.stop()
    stream.stop()
    buf = stream.getData()
    ts, ch = buf.getTimestamps(), buf.getChannels()
    expected = _pair_histogram(ts[ch == 2], ts[ch == 3], 10_000, 2000)
    assert expected.sum() > 2000
    np.testing.assert_array_equal(corr.getData(), expected)


def test_stream_is_reproducible_whatever_the_polling(tmp_path):
    """Same seed: identical tags whether read once or every 37 ms."""
    results = []
    for readout in (None, 0.037):
        with hbtscope.open_setup(data_dir=tmp_path) as s:
            s.stage.move_to(10.0, 10.0, 0.0)
            s.laser.power_W = 24e-9
            s.laser.enable()
            results.append(_record(s, 0.5, readout_s=readout))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])


def test_lifetime_from_sync_histogram(setup):
    """Start-stop histogram sync -> SPAD decays with the emitter's lifetime (10.2 ns).

    Maximum-likelihood estimate of an exponential (mean delay after the fixed 2 ns detector
    delay, tail beyond 3 ns to avoid the jitter): sigma_tau/tau = 1/sqrt(N), N ~ 1e5 -> 0.3 %;
    the 20 % of events that come from the 0.8 ns biexciton (cascade adds it to the X delay)
    and background shift the mean by < 3 %. Tolerance 5 %.
    """
    tt = setup.tagger
    hist = tt.api.Histogram(tt.device, 2, 1, binwidth=100, n_bins=2000)
    hist.startFor(int(3e12))
    hist.waitUntilFinished()
    data = hist.getData().astype(float)
    t = hist.getIndex() + 50.0
    sel = (t > 5000) & (t < 150_000)
    # truncated exponential MLE by a 1-D scan of the log-likelihood
    taus = np.linspace(8000, 12000, 801)
    span = 150_000 - 5000
    ll = [
        np.sum(data[sel] * (-(t[sel] - 5000) / tau))
        - data[sel].sum() * np.log(tau * (1 - np.exp(-span / tau)))
        for tau in taus
    ]
    tau_hat = taus[int(np.argmax(ll))]
    assert tau_hat == pytest.approx(10_200, rel=0.05)


def test_free_time_tagger_stops_measurements(tmp_path):
    with hbtscope.open_setup(data_dir=tmp_path) as s:
        tt = s.tagger
        cr = tt.api.Countrate(tt.device, [2])
        serial = tt.device.getSerial()
        assert simtt.freeTimeTagger(tt.device)
        assert not cr.isRunning()
        tt.device = None  # already freed
        # the serial is free again
        again = simtt.createTimeTagger(serial)
        assert simtt.freeTimeTagger(again)


def test_a_change_does_not_rewrite_the_past(setup):
    """Laser switched off while a measurement runs, without reading it first: the clicks of
    the second before the change keep the old (bright) conditions."""
    tt = setup.tagger
    cr = tt.api.Counter(tt.device, list(tt.spad_channels), binwidth=int(0.5e12), n_values=4)
    setup.clock.sleep(1.0)
    setup.laser.disable()  # no getData() in between
    setup.clock.sleep(1.0)
    per_bin = cr.getData().sum(axis=0)
    assert per_bin[0] > 20_000 and per_bin[1] > 20_000  # the laser was on
    assert per_bin[2] < 1_000 and per_bin[3] < 1_000  # dark counts only
