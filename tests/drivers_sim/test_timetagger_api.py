"""Contract and physics checks of the simulated tagger's wider Swabian API.

Most tests drive the tagger from :class:`FakeWorld`, an input whose every tag is known, so the
expected histograms, counts and losses follow by arithmetic; a few use the default simulated
microscope where the statistics of real photon streams matter.
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hbtscope
from hbtscope.analysis import correlate
from hbtscope.clock import VirtualClock
from hbtscope.drivers_sim import timetagger as tt

PS_PER_S = 10**12
US = 1_000_000  # ps


class FakeWorld:
    """The minimum a tagger needs from a world: a clock, channels and a fixed list of tags."""

    def __init__(self, ts, ch, channels=(2, 3, 4, 5), sync_channel=1):
        self.clock = VirtualClock("fast")
        self.detectors = [SimpleNamespace(tagger_channel=c) for c in channels]
        self.sync_channel = sync_channel
        ts = np.asarray(ts, np.int64)
        ch = np.asarray(ch, np.int16)
        order = np.argsort(ts, kind="stable")
        self.ts, self.ch = ts[order], ch[order]
        self._pos = 0
        self.sync_enabled = False

    def clicks_until(self, t_ps):
        b = int(np.searchsorted(self.ts, t_ps, side="left"))
        a, self._pos = self._pos, max(self._pos, b)
        return self.ts[a:b], self.ch[a:b]

    def skip_until(self, t_ps):
        self._pos = max(self._pos, int(np.searchsorted(self.ts, t_ps, side="left")))

    def set_sync_enabled(self, enabled):
        self.sync_enabled = bool(enabled)


_serials = itertools.count()


@pytest.fixture()
def fake():
    """fake(ts, ch) -> (world, tagger); every tagger is freed and detached afterwards."""
    made = []

    def make(ts, ch, **kw):
        world = FakeWorld(ts, ch, **kw)
        serial = tt.attach_world(world, f"FAKE-{next(_serials)}")
        tagger = tt.createTimeTagger(serial)
        made.append((serial, tagger))
        return world, tagger

    yield make
    for serial, tagger in made:
        tt.freeTimeTagger(tagger)
        tt.detach_world(serial)


@pytest.fixture()
def setup(tmp_path, ideal_stage_setup_path):
    # the subject is not the stage: an ideal one puts the focus exactly on the emitter
    with hbtscope.open_setup(ideal_stage_setup_path, data_dir=tmp_path) as s:
        s.stage.move_to(10.0, 10.0, 0.0)
        s.laser.power_W = 24e-9
        s.laser.enable()
        yield s


def _regular(t0, period, n, channel):
    ts = t0 + period * np.arange(n, dtype=np.int64)
    return ts, np.full(n, channel)


def _merge(*pairs):
    ts = np.concatenate([p[0] for p in pairs])
    ch = np.concatenate([p[1] for p in pairs])
    order = np.argsort(ts, kind="stable")
    return ts[order], ch[order]


def _drain(stream):
    buf = stream.getData()
    return (
        buf.getTimestamps(),
        buf.getChannels(),
        buf.getEventTypes(),
        buf.getMissedEvents(),
        buf,
    )


# ----------------------------------------------------------------------------- Counter
def test_counter_totals_equal_countrate_on_the_same_stream(setup):
    """Counter and Countrate started together see the same photons; bins are Poissonian."""
    tagger = setup.tagger
    group = tt.SynchronizedMeasurements(tagger.device)
    counter = tt.Counter(group.getTagger(), [2, 3], binwidth=5 * 10**9, n_values=400)
    rate = tt.Countrate(group.getTagger(), [2, 3])
    group.startFor(2 * PS_PER_S)
    group.waitUntilFinished()
    data = counter.getData()
    assert data.dtype == np.int32 and data.shape == (2, 400)
    totals = rate.getCountsTotal()
    np.testing.assert_array_equal(counter.getDataTotalCounts(), totals)
    np.testing.assert_array_equal(data.sum(axis=1), totals)  # 2 s = exactly 400 full bins
    assert counter.getDataTotalCounts().dtype == np.uint64
    np.testing.assert_array_equal(counter.getIndex(), np.arange(400) * 5 * 10**9)
    np.testing.assert_allclose(counter.getDataNormalized(), data / 5e-3)
    # ~190 counts per 5 ms bin: variance/mean of a Poisson stream is 1 +- sqrt(2/399)
    for row in data.astype(float):
        assert abs(row.var(ddof=1) / row.mean() - 1.0) < 4 * np.sqrt(2 / 399)


def test_counter_rolling_buffer_holds_the_last_completed_bins(fake):
    # bin k of 1 us (starting at t=0) holds k+1 tags of channel 2, and one tag of channel 3
    ts2 = np.concatenate([k * US + np.arange(k + 1) * 10_000 + 500 for k in range(10)])
    ts3 = np.arange(10) * US + 700_000
    ts, ch = _merge((ts2, np.full(ts2.size, 2)), (ts3, np.full(ts3.size, 3)))
    world, tagger = fake(ts, ch)
    counter = tt.Counter(tagger, [3, 2], binwidth=US, n_values=4)
    world.clock.advance_to_ps(2 * US + 600)  # bins 0, 1 complete; bin 2 integrating
    assert counter.getData().tolist() == [[0, 0, 1, 1], [0, 0, 1, 2]]
    norm = counter.getDataNormalized()
    assert np.isnan(norm[:, :2]).all() and norm[1, 3] == 2 / 1e-6
    assert counter.getDataTotalCounts().tolist() == [2, 1 + 2 + 1]  # incl. integrating bin
    world.clock.advance_to_ps(7 * US)  # bins 0..6 complete: the last 4 are bins 3..6
    assert counter.getData().tolist() == [[1, 1, 1, 1], [4, 5, 6, 7]]
    # rolling=False: the raw circular buffer, bin k at position k % 4
    assert counter.getData(rolling=False).tolist() == [[1, 1, 1, 1], [5, 6, 7, 4]]
    obj = counter.getDataObject(remove=True)
    assert obj.size == 4 and obj.dropped_bins == 3 and not obj.overflow
    assert obj.getData().tolist() == [[1, 1, 1, 1], [4, 5, 6, 7]]
    np.testing.assert_array_equal(obj.getTime(), np.arange(3, 7) * US)
    world.clock.advance_to_ps(8 * US)
    obj = counter.getDataObject(remove=True)
    assert obj.size == 1 and obj.dropped_bins == 0 and obj.getData().tolist() == [[1], [8]]


# ----------------------------------------------------------------------------- CountBetweenMarkers
def test_count_between_markers_with_the_test_signal(setup):
    """Bins between test-signal edges are exactly one test period wide and hold every photon."""
    dev = setup.tagger.device
    dev.setTestSignal(4, True)
    group = tt.SynchronizedMeasurements(dev)
    cbm = tt.CountBetweenMarkers(group.getTagger(), 2, 4, n_values=4000)
    stream = tt.TimeTagStream(group.getTagger(), 10**6, [2, 4])
    group.start()
    assert cbm.waitUntilFinished() is True  # it stops by itself once full
    assert cbm.ready() and not cbm.isRunning()
    group.stop()
    ts, ch, *_ = _drain(stream)
    edges = ts[ch == 4]
    period = int(round(1e12 / 800e3))
    widths, begins, data = cbm.getBinWidths(), cbm.getIndex(), cbm.getData()
    assert data.dtype == np.int32 and widths.dtype == np.int64 and begins.dtype == np.int64
    assert np.all(widths == period)
    np.testing.assert_array_equal(begins, edges[:4000])
    photons = ts[ch == 2]
    expected = np.histogram(photons, bins=edges[:4001])[0]
    np.testing.assert_array_equal(data, expected)
    # ~38 kcps on channel 2 x 5 ms
    assert data.sum() > 100


def test_count_between_markers_with_an_end_channel(fake):
    begin = np.array([10, 100, 200, 300]) * US
    end = begin + 20 * US
    clicks = np.array([5, 12, 15, 29, 31, 105, 119, 121, 250, 301, 302, 303, 305]) * US
    ts, ch = _merge(
        (clicks, np.full(clicks.size, 2)),
        (begin, np.full(4, 4)),
        (end, np.full(4, 5)),
    )
    world, tagger = fake(ts, ch)
    cbm = tt.CountBetweenMarkers(tagger, 2, 4, end_channel=5, n_values=3)
    world.clock.advance_to_ps(400 * US)
    assert cbm.getData().tolist() == [3, 2, 0]  # gates [10,30), [100,120), [200,220)
    assert cbm.getBinWidths().tolist() == [20 * US] * 3
    assert cbm.getIndex().tolist() == [10 * US, 100 * US, 200 * US]
    assert cbm.ready() and not cbm.isRunning()  # full after three gates: the 4th is ignored


# ----------------------------------------------------------------------------- TimeDifferences
def _flim_scan(n_frames=3, n_pixels=5, pulses_per_pixel=20):
    """Laser sync (ch 1) every 200 ns, pixel markers (ch 4), frame markers (ch 5) and one
    photon (ch 2) per pulse at a delay that encodes the pixel: (pixel + 1) * 10 ns."""
    period = 200_000
    pixel = pulses_per_pixel * period
    frame_gap = 3 * pixel
    sync, photons, markers, frames = [], [], [], []
    t = 1 * US
    for _ in range(n_frames):
        frames.append(t - 1000)
        for p in range(n_pixels):
            markers.append(t - 500)
            pulses = t + period * np.arange(pulses_per_pixel)
            sync.append(pulses)
            photons.append(pulses + (p + 1) * 10_000)
            t += pixel
        t += frame_gap
    sync = np.concatenate(sync)
    photons = np.concatenate(photons)
    return (
        _merge(
            (sync, np.full(sync.size, 1)),
            (photons, np.full(photons.size, 2)),
            (np.array(markers), np.full(len(markers), 4)),
            (np.array(frames), np.full(len(frames), 5)),
        ),
        t,
    )


def test_time_differences_flim_scan_puts_each_pixel_in_its_histogram(fake):
    (ts, ch), t_end = _flim_scan()
    world, tagger = fake(ts, ch)
    td = tt.TimeDifferences(
        tagger, 2, start_channel=1, next_channel=4, sync_channel=5,
        binwidth=1000, n_bins=100, n_histograms=5,
    )  # fmt: skip
    assert td.getHistogramIndex() == -2  # waiting for the frame sync
    world.clock.advance_to_ps(t_end)
    data = td.getData()
    assert data.dtype == np.int32 and data.shape == (5, 100)
    expected = np.zeros((5, 100), np.int32)
    for p in range(5):
        expected[p, (p + 1) * 10] = 3 * 20  # 3 frames x 20 pulses, one photon each
    np.testing.assert_array_equal(data, expected)
    np.testing.assert_array_equal(td.getIndex(), np.arange(100) * 1000)
    # frames 1 and 2 were ended by the next frame sync, frame 3 is still open
    assert td.getCounts() == 2 and td.getHistogramIndex() == 4


def test_time_differences_multiple_starts_next_rollover_and_max_counts(fake):
    # starts every 3 ns, clicks every 7 ns: each click pairs with every start < 9 ns before it
    starts = np.arange(1, 400) * 3000
    clicks = np.arange(1, 170) * 7000 + 1
    nexts = np.array([100, 300, 500, 700, 900]) * 1000 + 2
    ts, ch = _merge(
        (starts, np.full(starts.size, 1)),
        (clicks, np.full(clicks.size, 2)),
        (nexts, np.full(nexts.size, 4)),
    )
    world, tagger = fake(ts, ch)
    tagger.setDeadtime(1, 0)  # the 2 ns minimum: keeps every start
    td = tt.TimeDifferences(tagger, 2, 1, next_channel=4, binwidth=1000, n_bins=9, n_histograms=2)
    td.setMaxCounts(2)
    assert td.waitUntilFinished() is True and td.ready()
    expected = np.zeros((2, 9), np.int64)
    idx = -1
    for t, c in zip(ts, ch, strict=True):
        if c == 4:
            idx = (idx + 1) % 2
            if t == nexts[4]:
                break  # the 2nd rollover completes max counts: stop
        if c == 2 and idx >= 0:
            for s in starts[(starts <= t) & (t - starts < 9000)]:
                expected[idx, (t - s) // 1000] += 1
    np.testing.assert_array_equal(td.getData(), expected)
    assert td.getCounts() == 2 and not td.isRunning()


# ----------------------------------------------------------------------------- HistogramLogBins
def test_histogram_log_bins_of_independent_poisson_streams_is_flat(fake):
    """Uncorrelated streams: counts per unit delay are the same in every log bin (chi2)."""
    rng = np.random.default_rng(7)
    rate, seconds = 2.0e5, 5.0
    n = rng.poisson(rate * seconds, 2)
    a = np.sort(rng.integers(0, int(seconds * PS_PER_S), n[0]))
    b = np.sort(rng.integers(0, int(seconds * PS_PER_S), n[1]))
    world, tagger = fake(*_merge((a, np.full(a.size, 2)), (b, np.full(b.size, 3))))
    hlb = tt.HistogramLogBins(tagger, 3, 2, exp_start=-9, exp_stop=-5, n_bins=16)
    world.clock.advance_to_ps(int(seconds * PS_PER_S))
    edges = hlb.getBinEdges()
    assert edges.dtype == np.int64 and edges.size == 17
    assert edges[0] == 1000 and edges[-1] == 10_000_000
    np.testing.assert_allclose(np.diff(np.log10(edges)), 0.25, atol=1e-3)
    counts = hlb.getData().astype(float)
    assert hlb.getData().dtype == np.uint64
    widths = np.diff(edges).astype(float)
    density = counts.sum() / widths.sum()  # fitted counts per ps
    chi2 = np.sum((counts - density * widths) ** 2 / (density * widths))
    assert chi2 < 15 + 5 * np.sqrt(2 * 15)  # 16 bins - 1 fitted parameter
    np.testing.assert_allclose(hlb.getDataNormalizedCountsPerPs(), counts / widths)
    obj = hlb.getDataObject()
    g2 = obj.getG2()
    assert np.all(np.abs(g2 - 1) < 5 / np.sqrt(counts))
    # normalisation = what uncorrelated streams give: N_clicks * start rate * bin width
    np.testing.assert_allclose(obj.getG2Normalization() * g2, counts)
    np.testing.assert_array_equal(hlb.getDataNormalizedG2(), g2)
    assert obj.accumulation_time_click == int(seconds * PS_PER_S) - 10_000_000


def test_histogram_log_bins_counts_every_pair_in_its_bin(fake):
    starts = np.array([0, 20_000, 50_000]) + 100 * US  # farther apart than the dead time
    clicks = np.array([25_000, 45_000, 60_000, 1_000_000]) + 100 * US
    ts, ch = _merge((starts, np.full(3, 2)), (clicks, np.full(4, 3)))
    world, tagger = fake(ts, ch)
    hlb = tt.HistogramLogBins(tagger, 3, 2, exp_start=-10, exp_stop=-6, n_bins=4)
    world.clock.advance_to_ps(200 * US)
    delays = [c - s for c in clicks for s in starts if 100 <= c - s < 1_000_000]
    expected = np.histogram(delays, bins=hlb.getBinEdges())[0]
    np.testing.assert_array_equal(hlb.getData(), expected)


# ----------------------------------------------------------------------------- Correlation
def test_correlation_sign_of_tau_and_bin_edges(fake):
    """Swabian semantics: tau = t(channel_2) - t(channel_1); n_bins bins of binwidth centred
    on zero delay, each left-closed, so tau = -n*bw/2 is in the first bin and +n*bw/2 in
    none; ``getIndex()`` is the bin centre.

    One channel-2 tag and one channel-3 tag per millisecond (no other pair within the range),
    at the delays below: each lands in the bin computed by hand.
    """
    delays = [2300, -5000, 5000, -1, 0, 4999, -2300]
    # bins [-5000, -4000), ..., [4000, 5000): index = floor((tau + 5000) / 1000)
    expected_bin = {2300: 7, -5000: 0, 5000: None, -1: 4, 0: 5, 4999: 9, -2300: 2}
    t0 = 10 * US + 1000 * US * np.arange(len(delays), dtype=np.int64)
    ts = np.concatenate([t0, t0 + np.array(delays, np.int64)])
    ch = np.concatenate([np.full(t0.size, 2), np.full(t0.size, 3)])
    world, tagger = fake(ts, ch)
    corr = tt.Correlation(tagger, 2, 3, binwidth=1000, n_bins=10)
    swapped = tt.Correlation(tagger, 3, 2, binwidth=1000, n_bins=10)
    world.clock.advance_to_ps(int(ts.max()) + 1000 * US)
    expected = np.zeros(10, np.int64)
    for k in expected_bin.values():
        if k is not None:
            expected[k] += 1
    np.testing.assert_array_equal(corr.getData(), expected)
    index = corr.getIndex()
    np.testing.assert_array_equal(index, np.arange(-4500, 5000, 1000))
    for tau, k in expected_bin.items():
        if k is not None:
            assert index[k] - 500 <= tau < index[k] + 500
    # swapped channels see -tau; the half-open edges are not mirror images: -5000 becomes
    # +5000 (out of range) and +5000 becomes -5000 (first bin)
    swapped_bin = {-2300: 2, 5000: None, -5000: 0, 1: 5, 0: 5, -4999: 0, 2300: 7}
    assert sorted(swapped_bin) == sorted(-d for d in delays)
    expected_swapped = np.zeros(10, np.int64)
    for k in swapped_bin.values():
        if k is not None:
            expected_swapped[k] += 1
    np.testing.assert_array_equal(swapped.getData(), expected_swapped)


# ---------------------------------------------------------------- SynchronizedMeasurements
def test_synchronized_measurements_start_all_children_on_the_same_tag(setup):
    dev = setup.tagger.device
    with tt.SynchronizedMeasurements(dev) as group:
        proxy = group.getTagger()
        assert proxy.getSerial() == dev.getSerial()
        stream = tt.TimeTagStream(proxy, 10**7, [2, 3])
        rate = tt.Countrate(proxy, [2, 3])
        corr = tt.Correlation(proxy, 2, 3, binwidth=1000, n_bins=2000)
        counter = tt.Counter(proxy, [2, 3], binwidth=10**10, n_values=10)
        assert not any(m.isRunning() for m in (stream, rate, corr, counter))
        setup.clock.sleep(0.05)  # nothing is recorded before the group starts
        assert stream.getData().size == 0
        group.startFor(int(0.2 * PS_PER_S))
        assert group.isRunning()
        assert group.waitUntilFinished() is True
        assert not group.isRunning()
    buf = stream.getData()
    ts, ch = buf.getTimestamps(), buf.getChannels()
    assert buf.tStart + int(0.2 * PS_PER_S) == buf.tGetData
    counts = np.array([np.sum(ch == 2), np.sum(ch == 3)])
    np.testing.assert_array_equal(rate.getCountsTotal(), counts)
    np.testing.assert_array_equal(counter.getDataTotalCounts(), counts)
    _, expected = correlate(ts[ch == 2], ts[ch == 3], 1000, 1_000_000)
    np.testing.assert_array_equal(corr.getData(), expected)
    assert {m.getCaptureDuration() for m in (stream, rate, corr, counter)} == {int(0.2e12)}


def test_synchronized_measurements_stop_clear_and_register(fake):
    ts, ch = _regular(0, 1000 * 1000, 1000, 2)
    world, tagger = fake(ts, ch)
    group = tt.SynchronizedMeasurements(tagger)
    a = tt.Countrate(group.getTagger(), [2])
    b = tt.Countrate(tagger, [2])  # started on its own ...
    b.stop()
    group.registerMeasurement(b)  # ... now controlled by the group
    group.start()
    world.clock.advance_to_ps(100 * US)
    group.stop()
    world.clock.advance_to_ps(200 * US)
    assert a.getCountsTotal()[0] == b.getCountsTotal()[0] == 100
    group.clear()
    assert a.getCountsTotal()[0] == b.getCountsTotal()[0] == 0
    group.unregisterMeasurement(b)
    group.start()
    world.clock.advance_to_ps(300 * US)
    assert a.getCountsTotal()[0] == 100 and b.getCountsTotal()[0] == 0
    with pytest.raises(RuntimeError, match="forever"):
        group.waitUntilFinished()


# ----------------------------------------------------------------------------- event divider
def test_event_divider_keeps_every_nth_sync_tag(fake):
    ts, ch = _regular(1000, 200_000, 5000, 1)  # a 5 MHz laser sync
    world, tagger = fake(ts, ch)
    assert tagger.getEventDivider(1) == 1
    tagger.setEventDivider(1, 4)
    assert tagger.getEventDivider(1) == 4
    stream = tt.TimeTagStream(tagger, 10**6, [1])
    assert world.sync_enabled  # the sync input is only switched on while somebody listens
    for _ in range(7):  # uneven read-outs: the divider's phase must carry over
        world.clock.sleep(0.000137)
    world.clock.advance_to_ps(int(ts[-1]) + 1)
    got, *_ = _drain(stream)
    np.testing.assert_array_equal(got, ts[::4])
    with pytest.raises(ValueError, match="divider"):
        tagger.setEventDivider(1, 0)
    with pytest.raises(ValueError, match="divider"):
        tagger.setEventDivider(1, 70000)


def test_event_divider_on_the_simulated_laser_sync(setup):
    dev = setup.tagger.device
    dev.setEventDivider(1, 5)
    rate = tt.Countrate(dev, [1])
    rate.startFor(int(0.01 * PS_PER_S))
    rate.waitUntilFinished()
    assert abs(int(rate.getCountsTotal()[0]) - 10_000) <= 1  # 5 MHz / 5 for 10 ms


# ----------------------------------------------------------------------------- overflows
def _leaky_bucket(ts, rate_per_s, capacity, resume_fraction):
    """Reference model, one tag at a time: (kept mask, [(begin, end)])."""
    rate = rate_per_s * 1e-12
    fill, t_last, in_ovf, resume_t = 0.0, 0, False, 0
    kept, intervals = [], []
    for t in ts.tolist():
        if in_ovf and t >= resume_t:
            fill = max(0.0, fill - rate * (resume_t - t_last))
            t_last, in_ovf = resume_t, False
            intervals[-1][1] = resume_t
        fill = max(0.0, fill - rate * (t - t_last))
        t_last = t
        if in_ovf:
            kept.append(False)
        elif fill + 1 > capacity:
            in_ovf = True
            resume_t = t + int(np.ceil((fill - capacity * resume_fraction) / rate))
            intervals.append([t, None])
            kept.append(False)
        else:
            fill += 1
            kept.append(True)
    return np.array(kept), intervals


def test_overflow_above_the_max_rate_accounts_for_every_lost_tag(fake):
    rng = np.random.default_rng(3)
    # 2 ms at 5 Mtags/s on two channels, spaced > the 2 ns minimum dead time per channel
    ts = np.sort(rng.choice(np.arange(0, 2 * 10**9, 4000), 10_000, replace=False))
    ch = rng.choice([2, 3], ts.size)
    ts = np.concatenate([ts, 3 * 10**9 + np.arange(100) * US])  # then a slow tail
    ch = np.concatenate([ch, np.full(100, 3)])
    world, tagger = fake(ts, ch)
    for c in (2, 3):
        tagger.setDeadtime(c, 0)
    tagger._max_rate = 1.0e6
    with pytest.raises(ValueError, match="buffer size"):
        tagger.setHardwareBufferSize(0)
    tagger.setHardwareBufferSize(1000)
    assert tagger.getHardwareBufferSize() == 1000
    stream = tt.TimeTagStream(tagger, 10**6, [2, 3])
    rate = tt.Countrate(tagger, [2, 3])
    counter = tt.Counter(tagger, [2, 3], binwidth=100 * US, n_values=40)
    for _ in range(11):
        world.clock.sleep(0.000333)
    world.clock.advance_to_ps(4 * 10**9)
    t, c, ty, missed, buf = _drain(stream)
    assert buf.hasOverflows
    is_tag = ty == tt.TagType.TimeTag
    begins = t[ty == tt.TagType.OverflowBegin]
    ends = t[ty == tt.TagType.OverflowEnd]
    assert begins.size == ends.size == tagger.getOverflows() >= 2
    assert np.all(begins < ends) and np.all(ends[:-1] <= begins[1:])
    # every input tag is either delivered or counted as missed on its channel
    for chan in (2, 3):
        delivered = np.sum(is_tag & (c == chan))
        lost = missed[(ty == tt.TagType.MissedEvents) & (c == chan)].sum()
        assert delivered + lost == np.sum(ch == chan)
    # no delivered tag lies inside an overflow interval, every lost one does
    inside = np.zeros(ts.size, bool)
    for b, e in zip(begins, ends, strict=True):
        inside |= (ts >= b) & (ts < e)
    np.testing.assert_array_equal(np.sort(t[is_tag]), ts[~inside])
    # the same losses as the reference leaky bucket
    kept, intervals = _leaky_bucket(ts, 1.0e6, 1000, tt.DEFAULT_RESUME_FRACTION)
    assert [[int(b), int(e)] for b, e in zip(begins, ends, strict=True)] == intervals
    np.testing.assert_array_equal(t[is_tag], ts[kept])
    # other measurements see the same gap
    assert rate.getCountsTotal().sum() == is_tag.sum()
    norm = counter.getDataNormalized()
    bins = np.arange(40) * 100 * US
    overlaps = np.zeros(40, bool)
    for b, e in zip(begins, ends, strict=True):
        overlaps |= (bins < e) & (bins + 100 * US > b)
    np.testing.assert_array_equal(np.isnan(norm[0]), overlaps)
    # the data object flags the same bins (its window: the last n_values completed bins)
    obj = counter.getDataObject()
    assert obj.overflow
    np.testing.assert_array_equal(obj.getOverflowMask().astype(bool), overlaps)
    assert tagger.getOverflowsAndClear() == begins.size and tagger.getOverflows() == 0
    tagger._force_overflow(5 * 10**9, 6 * 10**9)
    world.clock.advance_to_ps(7 * 10**9)
    assert tagger.getOverflows() == 1
    tagger.clearOverflows()
    assert tagger.getOverflows() == 0


def test_forced_overflow_interval(fake):
    ts, ch = _merge(_regular(5000, 10_000, 100_000, 2), _regular(7000, 10_000, 100_000, 3))
    ts_start, ch_start = _regular(0, 200_000, 5000, 1)
    ts, ch = _merge((ts, ch), (ts_start, ch_start))
    world, tagger = fake(ts, ch)
    stream = tt.TimeTagStream(tagger, 10**6, [2])
    hist = tt.Histogram(tagger, 2, 1, binwidth=1000, n_bins=200)
    world.clock.sleep(100e-6)
    tagger.sync()
    assert not tagger._force_overflow(0, 50 * US)  # already streamed: cannot be undone
    assert tagger._force_overflow(300 * US, 400 * US + 5)
    world.clock.sleep(900e-6)
    t, c, ty, missed, buf = _drain(stream)
    assert tagger.getOverflows() == 1 and buf.hasOverflows
    assert t[ty == tt.TagType.OverflowBegin].tolist() == [300 * US]
    assert t[ty == tt.TagType.OverflowEnd].tolist() == [400 * US + 5]
    # MissedEvents only for the stream's own channel: 10_000 tags of channel 2 in the gap
    assert c[ty == tt.TagType.MissedEvents].tolist() == [2]
    assert missed[ty == tt.TagType.MissedEvents].tolist() == [10_000]
    tags = t[ty == tt.TagType.TimeTag]
    assert not np.any((tags >= 300 * US) & (tags < 400 * US + 5))
    assert tags.size == 100_000 - 10_000
    # the start-stop histogram forgets its start at the gap: the 20 clicks after the gap
    # and before the next start (every 200 ns) are not paired with a start before the gap
    assert hist.getData().sum() == tags.size - 20


def test_forced_and_rate_overflows_merge(fake):
    rng = np.random.default_rng(3)
    ts = np.sort(rng.choice(np.arange(0, 2 * 10**9, 4000), 10_000, replace=False))
    ch = rng.choice([2, 3], ts.size)
    world, tagger = fake(ts, ch)
    for c in (2, 3):
        tagger.setDeadtime(c, 0)
    tagger._max_rate = 1.0e6
    tagger._buffer_tags = 1000
    stream = tt.TimeTagStream(tagger, 10**6, [2, 3])
    # the first rate overflow would end ~500 us after it begins; a forced gap extends it
    _, intervals = _leaky_bucket(ts, 1.0e6, 1000, tt.DEFAULT_RESUME_FRACTION)
    b0, e0 = intervals[0]
    assert e0 < 900 * US
    tagger._force_overflow(e0 - 10 * US, 900 * US)
    tagger._force_overflow(2500 * US, 2600 * US)  # after the input: an empty gap
    world.clock.sleep(0.003)
    t, c, ty, missed, _ = _drain(stream)
    begins = t[ty == tt.TagType.OverflowBegin]
    ends = t[ty == tt.TagType.OverflowEnd]
    assert (begins[0], ends[0]) == (b0, 900 * US)
    assert (begins[-1], ends[-1]) == (2500 * US, 2600 * US)
    assert tagger.getOverflows() == begins.size == ends.size
    assert np.sum(ty == tt.TagType.TimeTag) + missed.sum() == ts.size


def test_missed_events_above_65535_are_split(fake):
    ts, ch = _regular(0, 10_000, 150_000, 2)
    world, tagger = fake(ts, ch)
    stream = tt.TimeTagStream(tagger, 10**6, [2])
    tagger._force_overflow(0, 2 * 10**9)
    world.clock.sleep(0.0021)  # the end events sit at 2 ms: they belong to the next block
    t, c, ty, missed, _ = _drain(stream)
    assert missed[ty == tt.TagType.MissedEvents].tolist() == [65535, 65535, 150_000 - 131070]
    assert np.sum(ty == tt.TagType.TimeTag) == 0


# ----------------------------------------------------------------------------- files
def _record_with_writer(tmp: Path, steps_us, with_split=False):
    rng = np.random.default_rng(11)
    ts = np.sort(rng.choice(np.arange(0, 20 * 10**9, 5000), 30_000, replace=False))
    ch = rng.choice([2, 3, 4], ts.size)
    world, tagger = FakeWorld(ts, ch), None
    serial = tt.attach_world(world, f"FAKE-FILE-{next(_serials)}")
    tagger = tt.createTimeTagger(serial)
    try:
        tagger.setDeadtime(2, 0)
        tagger.setInputDelay(3, 1234)
        group = tt.SynchronizedMeasurements(tagger)
        path = tmp / "run.htt"
        writer = tt.FileWriter(group.getTagger(), str(path), [2, 3])
        stream = tt.TimeTagStream(group.getTagger(), 10**7, [2, 3])
        group.start()
        tagger._force_overflow(7 * 10**9, 8 * 10**9)
        for i, step in enumerate(steps_us):
            world.clock.sleep(step * 1e-6)
            writer.getTotalEvents()  # the tagger catches up: one more record in the file
            if with_split and i == len(steps_us) // 2:
                writer.setMarker("half way")
                writer.split()
        world.clock.advance_to_ps(20 * 10**9)
        group.stop()
        assert writer.getTotalEvents() > 0
        writer.close()
        buf = stream.getData()
        ref = (buf.getTimestamps(), buf.getChannels(), buf.getEventTypes(), buf.getMissedEvents())
        return path, ref
    finally:
        tt.freeTimeTagger(tagger)
        tt.detach_world(serial)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    steps_us=st.lists(st.integers(1, 5000), min_size=1, max_size=12),
    reads=st.lists(st.integers(1, 20_000), min_size=1, max_size=8),
    with_split=st.booleans(),
)
def test_file_writer_reader_round_trip_is_exact(steps_us, reads, with_split):
    with tempfile.TemporaryDirectory() as d:
        path, ref = _record_with_writer(Path(d), steps_us, with_split)
        reader = tt.FileReader(str(path))
        got = [[], [], [], []]
        for n in itertools.cycle(reads):
            if not reader.hasData():
                break
            buf = reader.getData(n)
            assert 0 < buf.size <= n
            for lst, arr in zip(
                got,
                (
                    buf.getTimestamps(),
                    buf.getChannels(),
                    buf.getEventTypes(),
                    buf.getMissedEvents(),
                ),
                strict=True,
            ):
                lst.append(arr)
        assert reader.getData(10).size == 0
        for lst, expected in zip(got, ref, strict=True):
            arr = np.concatenate(lst)
            assert arr.dtype == expected.dtype
            np.testing.assert_array_equal(arr, expected)
        assert np.any(ref[2] == tt.TagType.OverflowBegin)
        conf = reader.getConfiguration()
        assert isinstance(conf, dict) and conf["channels"]["3"]["input_delay_ps"] == 1234
        assert reader.getChannelList() == [2, 3]
        assert reader.getLastMarker() == ("half way" if with_split else "")


def test_file_format_header_and_crash_tolerance(tmp_path):
    path, ref = _record_with_writer(tmp_path, [1000] * 20)
    raw = path.read_bytes()
    assert raw[:8] == b"HBTTAGS\x00"
    assert int.from_bytes(raw[8:10], "little") == tt.FILE_FORMAT_VERSION
    # a file cut in the middle of a record reads up to its last whole record
    cut = tmp_path / "cut.htt"
    cut.write_bytes(raw[: len(raw) - 100])
    buf = tt.FileReader([str(cut)]).getData(10**7)
    n = buf.size
    assert 0 < n < ref[0].size
    np.testing.assert_array_equal(buf.getTimestamps(), ref[0][:n])
    bad = tmp_path / "bad.htt"
    bad.write_bytes(b"NOTATAGS" + raw[8:])
    with pytest.raises(OSError, match="magic"):
        tt.FileReader(str(bad))


def test_file_writer_splits_at_the_maximum_file_size(fake, tmp_path):
    """Past ``setMaxFileSize`` bytes the writer continues in ``<stem>.<i><suffix>``; the reader
    follows the chain and ``getTotalSize`` is the bytes of all files on disk."""
    rng = np.random.default_rng(5)
    ts = np.sort(rng.choice(np.arange(0, 10 * 10**9, 10_000), 20_000, replace=False))
    world, tagger = fake(ts, rng.choice([2, 3], ts.size))
    group = tt.SynchronizedMeasurements(tagger)
    writer = tt.FileWriter(group.getTagger(), str(tmp_path / "run.htt"), [2, 3])
    stream = tt.TimeTagStream(group.getTagger(), 10**6, [2, 3])
    writer.setMaxFileSize(50_000)  # ~3300 tags of 15 bytes
    assert writer.getMaxFileSize() == 50_000
    group.start()
    for _ in range(40):
        world.clock.sleep(250e-6)  # 40 records of ~500 tags
        writer.getTotalEvents()
    group.stop()
    writer.close()
    files = sorted(tmp_path.glob("run*.htt"))
    assert len(files) >= 5
    assert writer.getTotalSize() == sum(f.stat().st_size for f in files)
    buf = tt.FileReader(str(tmp_path / "run.htt")).getData(10**6)
    np.testing.assert_array_equal(buf.getTimestamps(), stream.getData().getTimestamps())
    assert buf.size == ts.size == writer.getTotalEvents()
