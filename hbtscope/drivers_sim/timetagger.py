"""A simulated Swabian Time Tagger with the Swabian Python API, on the simulated world.

Same names and signatures as the real SDK (``from Swabian import TimeTagger``), so procedure code
cannot tell the two apart: ``createTimeTagger()``, ``freeTimeTagger()``, measurements that start
when constructed (``Countrate``, ``Correlation``, ``Histogram``, ``TimeTagStream``) with
``start/startFor/stop/clear/isRunning/waitUntilFinished/getCaptureDuration/getData``; times are
int64 picoseconds and histograms int32, as on the real device.

Time flows with the world's :class:`~hbtscope.clock.VirtualClock`: every call that needs data
first brings the tagger up to ``clock.now``; ``waitUntilFinished`` waits on that clock (instantly
in ``fast`` mode). Simulated hardware is "attached" with :func:`attach_world`, the way a real
tagger is plugged into USB; ``createTimeTagger(serial)`` then finds it.
"""

from __future__ import annotations

import threading
from enum import IntEnum

import numpy as np
from numba import njit

from hbtscope.analysis.correlation import CorrelationAccumulator
from hbtscope.drivers_sim._kernels import apply_dead_time

CHANNEL_UNUSED = -134217728
_MODEL = "Time Tagger 20 (simulated)"
_MIN_DEADTIME_PS = 2000
_TRIGGER_RANGE_V = (-2.5, 2.5)
_TEST_SIGNAL_HZ = 800_000.0


class Resolution(IntEnum):
    Standard = 0
    HighResA = 1
    HighResB = 2
    HighResC = 3


class TagType(IntEnum):
    """Event types of a TimeTagStream buffer (Swabian ``TagType``)."""

    TimeTag = 0
    Error = 1
    OverflowBegin = 2
    OverflowEnd = 3
    MissedEvents = 4


_DEVICES: dict[str, object] = {}
_OPEN: dict[str, TimeTagger] = {}


def attach_world(world, serial: str = "SIM-TT20-0001") -> str:
    """Plug a simulated tagger, fed by ``world``, into this "computer"; returns its serial."""
    _DEVICES[serial] = world
    return serial


def detach_world(serial: str) -> None:
    _DEVICES.pop(serial, None)
    _OPEN.pop(serial, None)


def scanTimeTagger() -> list[str]:  # noqa: N802 - Swabian API name
    """Serial numbers of the attached (simulated) taggers."""
    return list(_DEVICES)


def createTimeTagger(serial: str = "", resolution: Resolution = Resolution.Standard):  # noqa: N802
    """Open the tagger with this serial (empty: the first one found), like the real SDK."""
    if not _DEVICES:
        raise RuntimeError("No time tagger found")
    if not serial:
        serial = next(iter(_DEVICES))
    if serial not in _DEVICES:
        raise RuntimeError(f"Time tagger with serial {serial!r} not found; found {list(_DEVICES)}")
    if serial in _OPEN:
        raise RuntimeError(f"Time tagger {serial} is already in use")
    tagger = TimeTagger(serial, _DEVICES[serial], Resolution(resolution))
    _OPEN[serial] = tagger
    return tagger


def freeTimeTagger(tagger: TimeTagger) -> bool:  # noqa: N802
    """Release the tagger; its measurements stop."""
    if tagger is None or tagger._serial not in _OPEN:
        return False
    for m in list(tagger._measurements):
        m.stop()
    tagger._measurements.clear()
    _OPEN.pop(tagger._serial, None)
    return True


class TimeTagger:
    """The simulated hardware object returned by :func:`createTimeTagger`."""

    def __init__(self, serial: str, world, resolution: Resolution):
        self._serial = serial
        self._world = world
        self._clock = world.clock
        self._resolution = resolution
        self._lock = threading.RLock()
        self._measurements: list[_Measurement] = []
        self._channels = sorted(
            {d.tagger_channel for d in world.detectors} | {world.sync_channel} | {1, 2, 3, 4}
        )
        self._trigger_V = dict.fromkeys(self._channels, 0.5)
        self._delay_ps = dict.fromkeys(self._channels, 0)
        self._deadtime_ps = dict.fromkeys(self._channels, 6000)
        self._test_signal = dict.fromkeys(self._channels, False)
        self._held_ts = np.empty(0, np.int64)
        self._held_ch = np.empty(0, np.int32)
        self._last_kept = {c: -(2**62) for c in self._channels}
        self._t_ps = self._clock.now_ps()
        self._overflows = 0

    # -- device settings (Swabian names)
    def getSerial(self) -> str:  # noqa: N802
        return self._serial

    def getModel(self) -> str:  # noqa: N802
        return _MODEL

    def getChannelList(self, type=None) -> list[int]:  # noqa: N802, A002
        return list(self._channels)

    def getPsPerClock(self) -> int:  # noqa: N802
        return 1

    def _check_channel(self, channel: int) -> int:
        if channel not in self._channels:
            raise ValueError(f"Invalid channel {channel}; this tagger has {self._channels}")
        return channel

    def setTriggerLevel(self, channel: int, voltage: float) -> None:  # noqa: N802
        lo, hi = _TRIGGER_RANGE_V
        if not lo <= voltage <= hi:
            raise ValueError(f"trigger level {voltage} V outside [{lo}, {hi}] V")
        self._trigger_V[self._check_channel(channel)] = float(voltage)

    def getTriggerLevel(self, channel: int) -> float:  # noqa: N802
        return self._trigger_V[self._check_channel(channel)]

    def setInputDelay(self, channel: int, delay: int) -> None:  # noqa: N802
        self._catch_up()
        self._delay_ps[self._check_channel(channel)] = int(delay)

    def getInputDelay(self, channel: int) -> int:  # noqa: N802
        return self._delay_ps[self._check_channel(channel)]

    def setDeadtime(self, channel: int, deadtime: int) -> int:  # noqa: N802
        """Set the channel's dead time (ps); returns the value actually set (>= hardware min)."""
        self._catch_up()
        actual = max(int(deadtime), _MIN_DEADTIME_PS)
        self._deadtime_ps[self._check_channel(channel)] = actual
        return actual

    def getDeadtime(self, channel: int) -> int:  # noqa: N802
        return self._deadtime_ps[self._check_channel(channel)]

    def setTestSignal(self, channels, state: bool) -> None:  # noqa: N802
        self._catch_up()
        for c in [channels] if isinstance(channels, int) else channels:
            self._test_signal[self._check_channel(c)] = bool(state)

    def getTestSignal(self, channel: int) -> bool:  # noqa: N802
        return self._test_signal[self._check_channel(channel)]

    def getOverflows(self) -> int:  # noqa: N802
        return self._overflows

    def sync(self) -> None:
        """Make sure every tag up to now has reached the measurements."""
        self._catch_up()

    # -- data flow
    def _register(self, m: _Measurement) -> None:
        with self._lock:
            self._catch_up()
            self._measurements.append(m)
            self._update_sync()

    def _unregister(self, m: _Measurement) -> None:
        with self._lock:
            if m in self._measurements:
                self._measurements.remove(m)
            self._update_sync()

    def _update_sync(self) -> None:
        sync = self._world.sync_channel
        wanted = any(m._running and sync in m._channels for m in self._measurements)
        self._world.set_sync_enabled(wanted)

    def _test_tags(self, a_ps: int, b_ps: int) -> tuple[np.ndarray, np.ndarray]:
        period = int(round(1e12 / _TEST_SIGNAL_HZ))
        ts, ch = [], []
        for c, on in self._test_signal.items():
            if on:
                t = np.arange((a_ps // period + 1) * period, b_ps, period, dtype=np.int64)
                ts.append(t)
                ch.append(np.full(t.size, c, np.int32))
        if not ts:
            return np.empty(0, np.int64), np.empty(0, np.int32)
        return np.concatenate(ts), np.concatenate(ch)

    def _catch_up(self) -> None:
        """Bring every running measurement up to the clock's now."""
        with self._lock:
            now = self._clock.now_ps()
            if now <= self._t_ps:
                return
            if not any(m._running for m in self._measurements):
                self._world.skip_until(now)
                self._held_ts = self._held_ts[:0]
                self._held_ch = self._held_ch[:0]
                self._t_ps = now
                return
            ts, ch16 = self._world.clicks_until(now)
            ch = ch16.astype(np.int32)
            tts, tch = self._test_tags(self._t_ps, now)
            if tts.size:
                ts, ch = np.concatenate([ts, tts]), np.concatenate([ch, tch])
            # input delays, then hold back what a later, less delayed tag could still precede
            delays = np.zeros(int(max(self._channels)) + 1, np.int64)
            for c, d in self._delay_ps.items():
                delays[c] = d
            ts = ts + delays[ch]
            ts = np.concatenate([self._held_ts, ts])
            ch = np.concatenate([self._held_ch, ch])
            order = np.argsort(ts, kind="stable")
            ts, ch = ts[order], ch[order]
            complete_until = now + int(min(self._delay_ps.values()))
            cut = int(np.searchsorted(ts, complete_until, side="left"))
            self._held_ts, self._held_ch = ts[cut:], ch[cut:]
            ts, ch = ts[:cut], ch[:cut]
            ts, ch = self._apply_deadtime(ts, ch)
            self._t_ps = now
            for m in list(self._measurements):
                if m._running:
                    m._feed(ts, ch, complete_until)

    def _apply_deadtime(self, ts, ch):
        if ts.size == 0:
            return ts, ch
        dead = np.zeros(int(max(self._channels)) + 1, np.int64)
        last = np.full(dead.size, -(2**62), np.int64)
        for c in self._channels:
            dead[c] = self._deadtime_ps[c]
            last[c] = self._last_kept[c]
        keep = apply_dead_time(ts, ch.astype(np.int64), dead, last)
        for c in self._channels:
            self._last_kept[c] = int(last[c])
        return ts[keep], ch[keep]


class _Measurement:
    """Common measurement control (Swabian ``IteratorBase``)."""

    def __init__(self, tagger: TimeTagger, channels: list[int]):
        if not isinstance(tagger, TimeTagger):
            raise TypeError("first argument must be a TimeTagger from createTimeTagger()")
        for c in channels:
            tagger._check_channel(c)
        self._tagger = tagger
        self._channels = set(channels)
        self._running = False
        self._t_start = 0
        self._t_stop: int | None = None
        self._t_fed = 0
        self._capture_ps = 0
        tagger._register(self)
        self.start()

    # Swabian control API
    def start(self) -> None:
        t = self._tagger
        with t._lock:
            t._catch_up()
            self._t_start = t._t_ps + int(min(t._delay_ps.values()))
            self._t_fed = self._t_start
            self._t_stop = None
            self._running = True
            t._update_sync()

    def startFor(self, capture_duration: int, clear: bool = True) -> None:  # noqa: N802
        if capture_duration <= 0:
            raise ValueError("capture_duration must be > 0 ps")
        if clear:
            self.clear()
        self.start()
        self._t_stop = self._t_start + int(capture_duration)

    def stop(self) -> None:
        t = self._tagger
        with t._lock:
            t._catch_up()
            self._running = False
            t._update_sync()

    def clear(self) -> None:
        with self._tagger._lock:
            self._tagger._catch_up()
            self._capture_ps = 0
            self._clear_data()

    def isRunning(self) -> bool:  # noqa: N802
        self._tagger._catch_up()
        return self._running

    def getCaptureDuration(self) -> int:  # noqa: N802
        self._tagger._catch_up()
        return self._capture_ps

    def waitUntilFinished(self, timeout: int = -1) -> bool:  # noqa: N802
        """Wait (on the setup clock) until a ``startFor`` acquisition ends; timeout in ms."""
        t = self._tagger
        if self._t_stop is None:
            if timeout < 0:
                raise RuntimeError("waitUntilFinished() without startFor() would wait forever")
            t._clock.sleep(timeout / 1000.0)
            return not self.isRunning()
        end = self._t_stop
        if timeout >= 0:
            end = min(end, t._clock.now_ps() + int(timeout * 1e9))
        t._clock.advance_to_ps(end)
        return not self.isRunning()

    def __del__(self):
        try:
            self._tagger._unregister(self)
        except Exception:  # interpreter shutdown
            return

    # subclass hooks
    def _feed(self, ts: np.ndarray, ch: np.ndarray, complete_until: int) -> None:
        lo = self._t_fed
        hi = complete_until if self._t_stop is None else min(complete_until, self._t_stop)
        if hi > lo:
            a, b = np.searchsorted(ts, [lo, hi], side="left")
            sel_ts, sel_ch = ts[a:b], ch[a:b]
            mask = np.isin(sel_ch, list(self._channels))
            self._process(sel_ts[mask], sel_ch[mask], lo, hi)
            self._capture_ps += hi - lo
            self._t_fed = hi
        if self._t_stop is not None and complete_until >= self._t_stop:
            self._running = False
            self._tagger._update_sync()

    def _process(self, ts, ch, t_from, t_to) -> None:
        raise NotImplementedError

    def _clear_data(self) -> None:
        raise NotImplementedError


class Countrate(_Measurement):
    """Average count rate per channel since the start (counts/s, float64)."""

    def __init__(self, tagger: TimeTagger, channels: list[int]):
        self._chan_list = list(channels)
        self._counts = np.zeros(len(channels), np.int64)
        super().__init__(tagger, self._chan_list)

    def _process(self, ts, ch, t_from, t_to):
        for i, c in enumerate(self._chan_list):
            self._counts[i] += int(np.count_nonzero(ch == c))

    def _clear_data(self):
        self._counts[:] = 0

    def getData(self) -> np.ndarray:  # noqa: N802
        self._tagger._catch_up()
        if self._capture_ps == 0:
            return np.zeros(len(self._chan_list))
        return self._counts / (self._capture_ps * 1e-12)

    def getCountsTotal(self) -> np.ndarray:  # noqa: N802
        self._tagger._catch_up()
        return self._counts.copy()


class Correlation(_Measurement):
    """Histogram of t(channel_2) - t(channel_1), bins centred on zero delay (int32)."""

    def __init__(
        self,
        tagger: TimeTagger,
        channel_1: int,
        channel_2: int = CHANNEL_UNUSED,
        binwidth: int = 1000,
        n_bins: int = 1000,
    ):
        if binwidth <= 0 or n_bins <= 0:
            raise ValueError("binwidth and n_bins must be > 0")
        if channel_2 == CHANNEL_UNUSED:
            channel_2 = channel_1
        self._c1, self._c2 = int(channel_1), int(channel_2)
        self._binwidth, self._n_bins = int(binwidth), int(n_bins)
        # bins [-n*bw/2, +n*bw/2): an integer edge needs n*bw even (true for every even n)
        self._half_ps = (self._n_bins * self._binwidth) // 2
        self._acc = CorrelationAccumulator(self._binwidth, self._half_ps)
        self._n1 = self._n2 = 0
        super().__init__(tagger, [self._c1, self._c2])

    def _process(self, ts, ch, t_from, t_to):
        t1, t2 = ts[ch == self._c1], ts[ch == self._c2]
        self._n1 += t1.size
        self._n2 += t2.size
        self._acc.add(t1, t2)

    def _clear_data(self):
        self._acc = CorrelationAccumulator(self._binwidth, self._half_ps)
        self._n1 = self._n2 = 0

    def getData(self) -> np.ndarray:  # noqa: N802
        self._tagger._catch_up()
        return self._acc.counts[: self._n_bins].astype(np.int32)

    def getIndex(self) -> np.ndarray:  # noqa: N802
        """Bin centres in ps (int64)."""
        i = np.arange(self._n_bins, dtype=np.int64)
        return -self._half_ps + i * self._binwidth + self._binwidth // 2

    def getDataNormalized(self) -> np.ndarray:  # noqa: N802
        """g2(tau): counts / (r1 r2 binwidth T), the uncorrelated expectation."""
        self._tagger._catch_up()
        data = self._acc.counts[: self._n_bins].astype(float)
        t = self._capture_ps * 1e-12
        n1, n2 = self._n1, self._n2
        if t <= 0 or n1 == 0 or n2 == 0:
            return np.zeros(self._n_bins)
        return data / (n1 * n2 * self._binwidth * 1e-12 / t)


class Histogram(_Measurement):
    """Start-stop histogram: time from the last start click to each click (int32)."""

    def __init__(
        self,
        tagger: TimeTagger,
        click_channel: int,
        start_channel: int = CHANNEL_UNUSED,
        binwidth: int = 1000,
        n_bins: int = 1000,
    ):
        if binwidth <= 0 or n_bins <= 0:
            raise ValueError("binwidth and n_bins must be > 0")
        self._click, self._start_ch = int(click_channel), int(start_channel)
        self._binwidth, self._n_bins = int(binwidth), int(n_bins)
        self._data = np.zeros(self._n_bins, np.int64)
        self._last_start = np.array([-1], np.int64)
        chans = [self._click] if start_channel == CHANNEL_UNUSED else [self._click, self._start_ch]
        super().__init__(tagger, chans)

    def _process(self, ts, ch, t_from, t_to):
        is_start = (
            (ch == self._start_ch) if self._start_ch != CHANNEL_UNUSED else np.zeros(ch.size, bool)
        )
        _start_stop(
            ts,
            is_start,
            ch == self._click,
            self._binwidth,
            self._data,
            self._last_start,
        )

    def _clear_data(self):
        self._data[:] = 0
        self._last_start[0] = -1

    def getData(self) -> np.ndarray:  # noqa: N802
        self._tagger._catch_up()
        return self._data.astype(np.int32)

    def getIndex(self) -> np.ndarray:  # noqa: N802
        return np.arange(self._n_bins, dtype=np.int64) * self._binwidth


@njit(cache=True)
def _start_stop(ts, is_start, is_click, binwidth, data, last_start):
    n_bins = data.shape[0]
    for i in range(ts.shape[0]):
        if is_start[i]:
            last_start[0] = ts[i]
        if is_click[i] and last_start[0] >= 0:
            k = (ts[i] - last_start[0]) // binwidth
            if k < n_bins:
                data[k] += 1


class TimeTagStreamBuffer:
    """The block of tags returned by ``TimeTagStream.getData()``."""

    def __init__(self, ts, ch, t_start, t_get, missed):
        self._ts = ts
        self._ch = ch
        self.size = int(ts.size)
        self.tStart = int(t_start)
        self.tGetData = int(t_get)
        self.hasOverflows = False
        self._missed = missed

    def getTimestamps(self) -> np.ndarray:  # noqa: N802
        return self._ts

    def getChannels(self) -> np.ndarray:  # noqa: N802
        return self._ch

    def getEventTypes(self) -> np.ndarray:  # noqa: N802
        return np.full(self.size, int(TagType.TimeTag), np.uint8)

    def getMissedEvents(self) -> np.ndarray:  # noqa: N802
        return np.zeros(self.size, np.uint16)


class TimeTagStream(_Measurement):
    """Raw tags of some channels; ``getData()`` returns and empties the buffer.

    At most ``n_max_events`` tags are buffered between two ``getData()`` calls; later ones are
    discarded (as on the real device), so poll often enough.
    """

    def __init__(self, tagger: TimeTagger, n_max_events: int, channels: list[int]):
        if n_max_events <= 0:
            raise ValueError("n_max_events must be > 0")
        self._n_max = int(n_max_events)
        self._buf_ts: list[np.ndarray] = []
        self._buf_ch: list[np.ndarray] = []
        self._n_buf = 0
        self._n_discarded = 0
        self._t_last_get = 0
        super().__init__(tagger, list(channels))
        self._t_last_get = self._t_start

    def _process(self, ts, ch, t_from, t_to):
        room = self._n_max - self._n_buf
        if ts.size > room:
            self._n_discarded += ts.size - room
            ts, ch = ts[:room], ch[:room]
        if ts.size:
            self._buf_ts.append(ts)
            self._buf_ch.append(ch)
            self._n_buf += ts.size

    def _clear_data(self):
        self._buf_ts, self._buf_ch, self._n_buf = [], [], 0

    def getData(self) -> TimeTagStreamBuffer:  # noqa: N802
        self._tagger._catch_up()
        if self._buf_ts:
            ts = np.concatenate(self._buf_ts)
            ch = np.concatenate(self._buf_ch)
        else:
            ts, ch = np.empty(0, np.int64), np.empty(0, np.int32)
        t_get = self._t_fed
        buf = TimeTagStreamBuffer(ts, ch, self._t_last_get, t_get, self._n_discarded)
        self._t_last_get = t_get
        self._clear_data()
        return buf
