"""A simulated Swabian Time Tagger with the Swabian Python API, on the simulated world.

Same names and signatures as the real SDK (``from Swabian import TimeTagger``), so procedure code
cannot tell the two apart: ``createTimeTagger()``, ``freeTimeTagger()``, measurements that start
when constructed (``Countrate``, ``Counter``, ``Correlation``, ``Histogram``,
``HistogramLogBins``, ``TimeDifferences``, ``CountBetweenMarkers``, ``TimeTagStream``,
``FileWriter``) with ``start/startFor/stop/clear/isRunning/waitUntilFinished/
getCaptureDuration/getData``, ``SynchronizedMeasurements``, ``FileReader``; times are int64
picoseconds and histograms int32, as on the real device.

Time flows with the world's :class:`~hbtscope.clock.VirtualClock`: every call that needs data
first brings the tagger up to ``clock.now``; ``waitUntilFinished`` waits on that clock (instantly
in ``fast`` mode). Simulated hardware is "attached" with :func:`attach_world`, the way a real
tagger is plugged into USB; ``createTimeTagger(serial)`` then finds it.

The path of a tag, as on a Time Tagger 20: input (world clicks, test signal) -> dead time ->
event divider -> on-device FIFO drained over USB at ``_max_rate`` tags/s (overflows lose tags,
see :class:`TimeTagger`) -> software input delay -> the running measurements. Only the channels
some running measurement uses are streamed (as on the device), so only they count against the
USB rate.

Simplifications against the real SDK are listed in each class's docstring; the main ones:
virtual channels, conditional filter, reference clock, ``Flim`` and gating (``click_gate``,
``start_gate``) are not simulated; ``FileWriter`` writes this package's own documented format
(:data:`FILE_FORMAT_VERSION`), not Swabian's ``.ttbin``.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
import zlib
from enum import IntEnum
from pathlib import Path

import numpy as np
from numba import njit

from hbtscope.analysis.correlation import CorrelationAccumulator
from hbtscope.drivers_sim import _tagger_kernels as _k
from hbtscope.drivers_sim._kernels import apply_dead_time

CHANNEL_UNUSED = -134217728
_MODEL = "Time Tagger 20 (simulated)"
_MIN_DEADTIME_PS = 2000
_TRIGGER_RANGE_V = (-2.5, 2.5)
_TEST_SIGNAL_HZ = 800_000.0
_MAX_DIVIDER = 65535
_MISSED_MAX = 65535  # MissedEvents counts are uint16: larger losses take several tags

#: USB streaming limit of a Time Tagger 20 (USB 2.0): Swabian quote "about 9 MTags/s"
#: (knowledge base, "transfer rate limits for each Time Tagger model").
DEFAULT_MAX_RATE_TAGS_PER_S = 9.0e6
#: On-device FIFO in tags. Model choice: 64 Mi tags, the value user scripts report as the
#: default of ``setHardwareBufferSize``; the real TT20 memory may differ.
DEFAULT_BUFFER_TAGS = 64 * 2**20
#: After an overflow the device drops tags until its FIFO has drained to this fraction.
DEFAULT_RESUME_FRACTION = 0.5


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


class ChannelEdge(IntEnum):
    """Selector of ``getChannelList`` (the simulation only has rising edges)."""

    All = 0
    Rising = 1
    Falling = 2


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
    if hasattr(tagger._world, "remove_change_listener"):
        tagger._world.remove_change_listener(tagger._catch_up)
    _OPEN.pop(tagger._serial, None)
    return True


class _Markers:
    """Overflow events of the stream: time, TagType, channel and missed-event count."""

    __slots__ = ("t", "type", "ch", "missed")

    def __init__(self, t, type_, ch, missed):
        self.t = np.asarray(t, np.int64)
        self.type = np.asarray(type_, np.uint8)
        self.ch = np.asarray(ch, np.int32)
        self.missed = np.asarray(missed, np.uint16)

    @classmethod
    def empty(cls) -> _Markers:
        return cls([], [], [], [])

    @property
    def size(self) -> int:
        return int(self.t.size)

    def __getitem__(self, s) -> _Markers:
        return _Markers(self.t[s], self.type[s], self.ch[s], self.missed[s])

    @staticmethod
    def concat(a: _Markers, b: _Markers) -> _Markers:
        if a.size == 0:
            return b
        if b.size == 0:
            return a
        return _Markers(
            np.concatenate([a.t, b.t]),
            np.concatenate([a.type, b.type]),
            np.concatenate([a.ch, b.ch]),
            np.concatenate([a.missed, b.missed]),
        )


class TimeTagger:
    """The simulated hardware object returned by :func:`createTimeTagger`.

    Overflow model (private attributes, settable on an instance, not constructor arguments):
    ``_max_rate`` tags/s leave the device over USB (default
    :data:`DEFAULT_MAX_RATE_TAGS_PER_S`, a Time Tagger 20); the on-device FIFO holds
    ``_buffer_tags`` tags (default :data:`DEFAULT_BUFFER_TAGS`, also ``setHardwareBufferSize``).
    A leaky bucket per tag: when a tag finds the FIFO full the device enters overflow mode and
    drops every tag until the FIFO has drained to ``_resume_fraction`` of its size. Each overflow
    interval puts ``OverflowBegin`` (time of the first lost tag), then one ``MissedEvents`` tag
    per channel with the number of lost tags (several if above 65535) and ``OverflowEnd`` (both
    at the end time) into the stream; the channel of Begin/End is ``CHANNEL_UNUSED``.
    ``getOverflows()`` counts overflow intervals. ``_force_overflow(t_start_ps, t_stop_ps)``
    makes one regardless of the rate (fault injection).
    """

    _max_rate = DEFAULT_MAX_RATE_TAGS_PER_S
    _buffer_tags = DEFAULT_BUFFER_TAGS
    _resume_fraction = DEFAULT_RESUME_FRACTION

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
        self._n_ch = int(max(self._channels)) + 1
        self._trigger_V = dict.fromkeys(self._channels, 0.5)
        self._delay_ps = dict.fromkeys(self._channels, 0)
        self._deadtime_ps = dict.fromkeys(self._channels, 6000)
        self._test_signal = dict.fromkeys(self._channels, False)
        self._divider = np.ones(self._n_ch, np.int64)
        self._divider_count = np.zeros(self._n_ch, np.int64)
        self._held_ts = np.empty(0, np.int64)
        self._held_ch = np.empty(0, np.int32)
        self._held_mk = _Markers.empty()
        self._last_kept = {c: -(2**62) for c in self._channels}
        self._t_ps = self._clock.now_ps()
        self._overflows = 0
        # device FIFO state (see _tagger_kernels.device_buffer)
        self._dev_f = np.zeros(1, np.float64)
        self._dev_i = np.array([self._t_ps, 0, 0, 0, 0], np.int64)
        self._forced: list[tuple[int, int]] = []
        self._ovf_missed: dict[int, int] = {}
        faults = getattr(world, "faults", None)
        self._faults = faults
        if hasattr(world, "add_change_listener"):
            world.add_change_listener(self._catch_up)
        if faults is not None:  # overflows injected from the setup file
            for a, b in faults.overflow_intervals_ps():
                self._force_overflow(a, b)

    # -- device settings (Swabian names)
    def getSerial(self) -> str:  # noqa: N802
        return self._serial

    def getModel(self) -> str:  # noqa: N802
        return _MODEL

    def getChannelList(self, type=ChannelEdge.All) -> list[int]:  # noqa: N802, A002
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

    def setEventDivider(self, channel: int, divider: int) -> None:  # noqa: N802
        """Transmit only every ``divider``-th tag of the channel (hardware filter, 1..65535).

        The first tag after the call is transmitted, then every ``divider``-th one; applied
        after the dead time and before the USB link, so it lowers the streamed rate.
        """
        self._catch_up()
        c = self._check_channel(channel)
        divider = int(divider)
        if not 1 <= divider <= _MAX_DIVIDER:
            raise ValueError(f"event divider {divider} outside [1, {_MAX_DIVIDER}]")
        self._divider[c] = divider
        self._divider_count[c] = 0

    def getEventDivider(self, channel: int) -> int:  # noqa: N802
        return int(self._divider[self._check_channel(channel)])

    def setTestSignal(self, channels, state: bool) -> None:  # noqa: N802
        self._catch_up()
        for c in [channels] if isinstance(channels, int) else channels:
            self._test_signal[self._check_channel(c)] = bool(state)

    def getTestSignal(self, channel: int) -> bool:  # noqa: N802
        return self._test_signal[self._check_channel(channel)]

    def setHardwareBufferSize(self, size: int) -> None:  # noqa: N802
        """Size of the on-device FIFO in tags (the overflow model's capacity)."""
        self._catch_up()
        if int(size) < 1:
            raise ValueError("hardware buffer size must be >= 1 tag")
        self._buffer_tags = int(size)

    def getHardwareBufferSize(self) -> int:  # noqa: N802
        return int(self._buffer_tags)

    def getOverflows(self) -> int:  # noqa: N802
        """Number of overflow intervals since creation or the last ``clearOverflows``."""
        self._catch_up()
        return self._overflows

    def clearOverflows(self) -> None:  # noqa: N802
        self._catch_up()
        self._overflows = 0

    def getOverflowsAndClear(self) -> int:  # noqa: N802
        with self._lock:
            self._catch_up()
            n, self._overflows = self._overflows, 0
            return n

    def getConfiguration(self) -> str:  # noqa: N802
        """JSON text of the tagger's settings (the SDK's is a JSON string too, richer)."""
        chans = {
            str(c): {
                "trigger_level_V": self._trigger_V[c],
                "input_delay_ps": self._delay_ps[c],
                "deadtime_ps": self._deadtime_ps[c],
                "event_divider": int(self._divider[c]),
                "test_signal": self._test_signal[c],
            }
            for c in self._channels
        }
        return json.dumps(
            {
                "serial": self._serial,
                "model": _MODEL,
                "resolution": Resolution(self._resolution).name,
                "max_rate_tags_per_s": float(self._max_rate),
                "hardware_buffer_size": int(self._buffer_tags),
                "channels": chans,
            }
        )

    def sync(self, timeout: int = -1) -> None:
        """Make sure every tag up to now has reached the measurements."""
        self._catch_up()

    # -- fault injection
    def _force_overflow(self, t_start_ps: int, t_stop_ps: int) -> bool:
        """Lose every streamed tag in ``[t_start_ps, t_stop_ps)`` as in a device overflow.

        The part of the interval the device has already streamed cannot be undone and is
        clipped away; returns False if nothing is left. Overlapping intervals merge (also with
        rate overflows). The interval counts in ``getOverflows`` even if no measurement is
        running then (no tag is lost because none is streamed).
        """
        with self._lock:
            a = max(int(t_start_ps), int(self._dev_i[0]))
            b = int(t_stop_ps)
            if b <= a:
                return False
            merged = []
            for s, e in sorted([*self._forced, (a, b)]):
                if merged and s <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], e))
                else:
                    merged.append((s, e))
            self._forced = merged
            self._dev_i[3] = 0
            return True

    # -- data flow
    def _stream_position(self) -> int:
        """Stream time up to which data has been delivered to the measurements."""
        return self._t_ps + int(min(self._delay_ps.values()))

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
        """Test-signal edges in [a_ps, b_ps) on the channels that have it switched on."""
        period = int(round(1e12 / _TEST_SIGNAL_HZ))
        ts, ch = [], []
        for c, on in self._test_signal.items():
            if on:
                t = np.arange(-(-a_ps // period) * period, b_ps, period, dtype=np.int64)
                ts.append(t)
                ch.append(np.full(t.size, c, np.int32))
        if not ts:
            return np.empty(0, np.int64), np.empty(0, np.int32)
        return np.concatenate(ts), np.concatenate(ch)

    def _catch_up(self) -> None:
        """Bring every running measurement up to the clock's now."""
        if self._faults is not None:
            self._faults.before_io("tagger")  # an injected disconnect or timeout
        with self._lock:
            now = self._clock.now_ps()
            if now <= self._t_ps:
                return
            running = [m for m in self._measurements if m._running]
            if not running:
                self._world.skip_until(now)
                self._held_ts = self._held_ts[:0]
                self._held_ch = self._held_ch[:0]
                self._held_mk = _Markers.empty()
                self._device(np.empty(0, np.int64), np.empty(0, np.int32), now)
                self._t_ps = now
                return
            ts, ch16 = self._world.clicks_until(now)
            ch = ch16.astype(np.int32)
            tts, tch = self._test_tags(self._t_ps, now)
            if tts.size:
                ts, ch = np.concatenate([ts, tts]), np.concatenate([ch, tch])
                order = np.argsort(ts, kind="stable")
                ts, ch = ts[order], ch[order]
            # only the channels some running measurement uses are streamed
            used = np.zeros(self._n_ch, bool)
            for m in running:
                used[m._chan_arr] = True
            if ch.size and not used[self._channels].all():
                mask = used[ch]
                ts, ch = ts[mask], ch[mask]
            ts, ch = self._apply_deadtime(ts, ch)
            ts, ch = self._apply_divider(ts, ch)
            ts, ch, mk = self._device(ts, ch, now)
            # software input delays, then hold back what a later, less delayed tag could precede
            delays = np.zeros(self._n_ch, np.int64)
            for c, d in self._delay_ps.items():
                delays[c] = d
            if ts.size and delays.any():
                ts = ts + delays[ch]
            if self._held_ts.size or delays.any():
                ts = np.concatenate([self._held_ts, ts])
                ch = np.concatenate([self._held_ch, ch])
                order = np.argsort(ts, kind="stable")
                ts, ch = ts[order], ch[order]
            complete_until = now + int(min(self._delay_ps.values()))
            cut = int(np.searchsorted(ts, complete_until, side="left"))
            self._held_ts, self._held_ch = ts[cut:], ch[cut:]
            ts, ch = ts[:cut], ch[:cut]
            mk = _Markers.concat(self._held_mk, mk)
            mcut = int(np.searchsorted(mk.t, complete_until, side="left"))
            self._held_mk, mk = mk[mcut:], mk[:mcut]
            self._t_ps = now
            stopped = False
            for m in running:
                m._feed(ts, ch, mk, complete_until)
                stopped |= not m._running
            if stopped:
                self._update_sync()

    def _apply_deadtime(self, ts, ch):
        if ts.size == 0:
            return ts, ch
        dead = np.zeros(self._n_ch, np.int64)
        last = np.full(dead.size, -(2**62), np.int64)
        for c in self._channels:
            dead[c] = self._deadtime_ps[c]
            last[c] = self._last_kept[c]
        keep = apply_dead_time(ts, ch.astype(np.int64), dead, last)
        for c in self._channels:
            self._last_kept[c] = int(last[c])
        return ts[keep], ch[keep]

    def _apply_divider(self, ts, ch):
        if ts.size == 0 or not (self._divider > 1).any():
            return ts, ch
        keep = _k.event_divider(ch, self._divider, self._divider_count)
        return ts[keep], ch[keep]

    def _device(self, ts, ch, now):
        """The on-device FIFO: drop tags in overflow intervals, make the overflow markers."""
        if self._forced:
            fs = np.array([a for a, _ in self._forced], np.int64)
            fe = np.array([b for _, b in self._forced], np.int64)
        else:
            fs = fe = np.empty(0, np.int64)
        was_open = bool(self._dev_i[1])
        rate = float(self._max_rate) * 1e-12
        cap = float(self._buffer_tags)
        keep, eb, ee = _k.device_buffer(
            ts, int(now), fs, fe, rate, cap, cap * float(self._resume_fraction), self._dev_f,
            self._dev_i,
        )  # fmt: skip
        if self._forced:
            t_dev = int(self._dev_i[0])
            self._forced = [(a, b) for a, b in self._forced if b > t_dev]
            self._dev_i[3] = 0
        if eb.size == 0:
            return ts, ch, _Markers.empty()
        lost = ~keep
        per_interval: dict[int, dict[int, int]] = {}
        if lost.any():
            ovf_id = np.searchsorted(eb, ts[lost], side="right") - 1  # lost = inside intervals
            key = ovf_id * (1 << 32) + ch[lost].astype(np.int64)
            uk, counts = np.unique(key, return_counts=True)
            for kk, n in zip(uk.tolist(), counts.tolist(), strict=True):
                per_interval.setdefault(kk >> 32, {})[kk & 0xFFFFFFFF] = n
        t, ty, c, ms = [], [], [], []
        for k in range(eb.size):
            if k == 0 and was_open:
                missed = self._ovf_missed
            else:
                missed = {}
                self._overflows += 1
                t.append(int(eb[k]))
                ty.append(TagType.OverflowBegin)
                c.append(CHANNEL_UNUSED)
                ms.append(0)
            for chan, n in per_interval.get(k, {}).items():
                missed[chan] = missed.get(chan, 0) + n
            if ee[k] == _k.OPEN:
                self._ovf_missed = missed
                continue
            end = int(ee[k])
            for chan in sorted(missed):
                n = missed[chan]
                while n > 0:
                    part = min(n, _MISSED_MAX)
                    t.append(end)
                    ty.append(TagType.MissedEvents)
                    c.append(chan)
                    ms.append(part)
                    n -= part
            t.append(end)
            ty.append(TagType.OverflowEnd)
            c.append(CHANNEL_UNUSED)
            ms.append(0)
            self._ovf_missed = {}
        return ts[keep], ch[keep], _Markers(t, ty, c, ms)


class _TaggerProxy:
    """What ``SynchronizedMeasurements.getTagger()`` returns: measurements created on it join
    the group and do not start; everything else is forwarded to the real tagger."""

    def __init__(self, tagger: TimeTagger, group: SynchronizedMeasurements):
        self._tagger = tagger
        self._group = group

    def __getattr__(self, name):
        return getattr(self._tagger, name)


class SynchronizedMeasurements:
    """Start, stop and clear several measurements on the very same tag (Swabian API).

    Measurements created on :meth:`getTagger` (or added with :meth:`registerMeasurement`)
    are controlled together: every call acts on all of them at one stream position, so they
    process exactly the same tags. As a context manager it stops the group on exit.
    """

    def __init__(self, tagger):
        if isinstance(tagger, _TaggerProxy):
            tagger = tagger._tagger
        if not isinstance(tagger, TimeTagger):
            raise TypeError("first argument must be a TimeTagger from createTimeTagger()")
        self._tagger = tagger
        self._members: list[_Measurement] = []
        self._proxy = _TaggerProxy(tagger, self)

    def getTagger(self) -> _TaggerProxy:  # noqa: N802
        return self._proxy

    def registerMeasurement(self, measurement: _Measurement) -> None:  # noqa: N802
        if measurement._tagger is not self._tagger:
            raise ValueError("the measurement belongs to another tagger")
        if measurement not in self._members:
            self._members.append(measurement)

    def unregisterMeasurement(self, measurement: _Measurement) -> None:  # noqa: N802
        if measurement in self._members:
            self._members.remove(measurement)

    def start(self) -> None:
        t = self._tagger
        with t._lock:
            t._catch_up()
            t0 = t._stream_position()
            for m in self._members:
                m._start_at(t0)
            t._update_sync()

    def startFor(self, capture_duration: int, clear: bool = True) -> None:  # noqa: N802
        if capture_duration <= 0:
            raise ValueError("capture_duration must be > 0 ps")
        t = self._tagger
        with t._lock:
            t._catch_up()
            t0 = t._stream_position()
            for m in self._members:
                if clear:
                    m._clear_now()
                m._start_at(t0, t0 + int(capture_duration))
            t._update_sync()

    def stop(self) -> None:
        t = self._tagger
        with t._lock:
            t._catch_up()
            for m in self._members:
                m._running = False
            t._update_sync()
            for m in self._members:
                m._on_stop()

    def clear(self) -> None:
        t = self._tagger
        with t._lock:
            t._catch_up()
            for m in self._members:
                m._clear_now()

    def isRunning(self) -> bool:  # noqa: N802
        self._tagger._catch_up()
        return any(m._running for m in self._members)

    def waitUntilFinished(self, timeout: int = -1) -> bool:  # noqa: N802
        """Wait (on the setup clock) until every member has finished; timeout in ms."""
        return _wait(self._tagger, self._members, timeout)

    def __enter__(self) -> SynchronizedMeasurements:
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.stop()


def _wait(tagger: TimeTagger, members: list[_Measurement], timeout: int) -> bool:
    """Advance the clock until the running ``members`` finish (or ``timeout`` ms pass)."""
    clock = tagger._clock
    tagger._catch_up()
    running = [m for m in members if m._running]
    deadline = None if timeout < 0 else clock.now_ps() + int(timeout * 1e9)
    if any(m._t_stop is None and not m._can_finish() for m in running):
        if deadline is None:
            raise RuntimeError("waitUntilFinished() without startFor() would wait forever")
        clock.advance_to_ps(deadline)
        return not any(m.isRunning() for m in members)
    stops = [m._t_stop for m in running if m._t_stop is not None]
    if stops:
        end = max(stops)
        if deadline is not None:
            end = min(end, deadline)
        clock.advance_to_ps(end)
        tagger._catch_up()
    # measurements that finish on their own (filled buffers, max rollovers): poll the clock
    step = 1_000_000_000  # 1 ms
    while any(m._running for m in members):
        now = clock.now_ps()
        if deadline is not None and now >= deadline:
            break
        target = now + step if deadline is None else min(now + step, deadline)
        clock.advance_to_ps(target)
        tagger._catch_up()
        step = min(step * 2, 1_000_000_000_000)
    return not any(m._running for m in members)


class _Measurement:
    """Common measurement control (Swabian ``IteratorBase``).

    A measurement created on ``SynchronizedMeasurements.getTagger()`` joins that group and
    does not start; otherwise it starts when constructed.
    """

    def __init__(self, tagger, channels):
        group = None
        if isinstance(tagger, _TaggerProxy):
            group, tagger = tagger._group, tagger._tagger
        if not isinstance(tagger, TimeTagger):
            raise TypeError("first argument must be a TimeTagger from createTimeTagger()")
        chans = sorted({int(c) for c in channels if int(c) != CHANNEL_UNUSED})
        for c in chans:
            tagger._check_channel(c)
        self._tagger = tagger
        self._channels = set(chans)
        self._chan_arr = np.array(chans, np.int32)
        self._running = False
        self._t_start = 0
        self._t_stop: int | None = None
        self._t_fed = tagger._stream_position()
        self._capture_ps = 0
        self._overflow_ps = 0
        self._in_overflow = False
        self._finished = False
        tagger._register(self)
        if group is None:
            self.start()
        else:
            group.registerMeasurement(self)

    # Swabian control API
    def start(self) -> None:
        t = self._tagger
        with t._lock:
            t._catch_up()
            self._start_at(t._stream_position())
            t._update_sync()

    def startFor(self, capture_duration: int, clear: bool = True) -> None:  # noqa: N802
        if capture_duration <= 0:
            raise ValueError("capture_duration must be > 0 ps")
        t = self._tagger
        with t._lock:
            t._catch_up()
            if clear:
                self._clear_now()
            t0 = t._stream_position()
            self._start_at(t0, t0 + int(capture_duration))
            t._update_sync()

    def stop(self) -> None:
        t = self._tagger
        with t._lock:
            t._catch_up()
            self._running = False
            t._update_sync()
            self._on_stop()

    def clear(self) -> None:
        with self._tagger._lock:
            self._tagger._catch_up()
            self._clear_now()

    def isRunning(self) -> bool:  # noqa: N802
        self._tagger._catch_up()
        return self._running

    def getCaptureDuration(self) -> int:  # noqa: N802
        self._tagger._catch_up()
        return self._capture_ps

    def waitUntilFinished(self, timeout: int = -1) -> bool:  # noqa: N802
        """Wait (on the setup clock) until a ``startFor`` acquisition ends; timeout in ms."""
        return _wait(self._tagger, [self], timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def __del__(self):
        try:
            self._tagger._unregister(self)
        except Exception:  # interpreter shutdown
            return

    # internals shared with SynchronizedMeasurements
    def _start_at(self, t0: int, t_stop: int | None = None) -> None:
        self._t_start = t0
        self._t_fed = t0
        self._t_stop = t_stop
        self._running = True
        self._finished = False
        self._in_overflow = bool(self._tagger._dev_i[1])  # started inside an overflow
        self._on_start(t0)

    def _clear_now(self) -> None:
        self._capture_ps = 0
        self._overflow_ps = 0
        self._clear_data()

    def _feed(self, ts: np.ndarray, ch: np.ndarray, mk: _Markers, complete_until: int) -> None:
        lo = self._t_fed
        hi = complete_until if self._t_stop is None else min(complete_until, self._t_stop)
        if hi > lo:
            a, b = np.searchsorted(ts, [lo, hi], side="left")
            sel_ts, sel_ch = ts[a:b], ch[a:b]
            if sel_ch.size:
                table = np.zeros(self._tagger._n_ch, bool)
                table[self._chan_arr] = True
                mask = table[sel_ch]
                if not mask.all():
                    sel_ts, sel_ch = sel_ts[mask], sel_ch[mask]
            ma, mb = np.searchsorted(mk.t, [lo, hi], side="left") if mk.size else (0, 0)
            if mb == ma:
                self._segment(sel_ts, sel_ch, lo, hi)
            else:
                cur, ia = lo, 0
                for j in range(ma, mb):
                    tj = int(mk.t[j])
                    ib = int(np.searchsorted(sel_ts, tj, side="left"))
                    self._segment(sel_ts[ia:ib], sel_ch[ia:ib], cur, tj)
                    ia, cur = ib, tj
                    if self._finished:
                        break
                    typ, cj = int(mk.type[j]), int(mk.ch[j])
                    if typ == TagType.MissedEvents and cj not in self._channels:
                        continue
                    self._marker(typ, tj, cj, int(mk.missed[j]))
                if not self._finished:
                    self._segment(sel_ts[ia:], sel_ch[ia:], cur, hi)
            self._capture_ps += hi - lo
            self._t_fed = hi
            self._after_feed()
        if self._finished or (self._t_stop is not None and complete_until >= self._t_stop):
            self._running = False
            self._on_stop()

    def _segment(self, ts, ch, t_from, t_to) -> None:
        if self._finished or t_to <= t_from and ts.size == 0:
            return
        if self._in_overflow:
            self._overflow_ps += t_to - t_from
        self._process(ts, ch, t_from, t_to)

    def _marker(self, typ: int, t: int, ch: int, missed: int) -> None:
        if typ == TagType.OverflowBegin:
            self._in_overflow = True
            self._overflow_begin(t)
        elif typ == TagType.OverflowEnd:
            self._in_overflow = False
            self._overflow_end(t)

    # subclass hooks
    def _process(self, ts, ch, t_from, t_to) -> None:
        raise NotImplementedError

    def _clear_data(self) -> None:
        raise NotImplementedError

    def _on_start(self, t0: int) -> None:
        return None

    def _on_stop(self) -> None:
        return None

    def _after_feed(self) -> None:
        return None

    def _overflow_begin(self, t: int) -> None:
        return None

    def _overflow_end(self, t: int) -> None:
        return None

    def _can_finish(self) -> bool:
        """True if the measurement may stop on its own (then waitUntilFinished polls)."""
        return False

    def _role_table(self, roles: dict[int, int]) -> np.ndarray:
        table = np.zeros(self._tagger._n_ch, np.uint8)
        for c, r in roles.items():
            if c != CHANNEL_UNUSED:
                table[c] |= r
        return table


class Countrate(_Measurement):
    """Average count rate per channel since the start (counts/s, float64)."""

    def __init__(self, tagger, channels: list[int]):
        self._chan_list = [int(c) for c in channels]
        self._counts = np.zeros(len(self._chan_list), np.int64)
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
    """Histogram of t(channel_2) - t(channel_1), bins centred on zero delay (int32).

    Simplification: pairs that straddle an overflow gap are still counted (both tags are
    real); ``getDataNormalized`` uses the capture time minus the time spent in overflow.
    """

    def __init__(
        self,
        tagger,
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
        self._acc.add(t1, t2, t_to)

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
        t = (self._capture_ps - self._overflow_ps) * 1e-12
        n1, n2 = self._n1, self._n2
        if t <= 0 or n1 == 0 or n2 == 0:
            return np.zeros(self._n_bins)
        return data / (n1 * n2 * self._binwidth * 1e-12 / t)


class Histogram(_Measurement):
    """Start-stop histogram: time from the last start click to each click (int32).

    Simplification: each click is paired with the last start only (the SDK pairs it with
    every start in range; identical when the range is shorter than the start period).
    """

    def __init__(
        self,
        tagger,
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
        super().__init__(tagger, [self._click, self._start_ch])

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

    def _overflow_begin(self, t):
        self._last_start[0] = -1

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


class CounterData:
    """Return value of ``Counter.getDataObject``: the bins fetched by one call."""

    def __init__(self, counts, valid, t_bins, channels, binwidth, total, dropped, k_first):
        self._counts = counts
        self._valid = valid
        self._t = t_bins
        self._channels = channels
        self._bw = binwidth
        self._total = total
        self._k_first = k_first
        self.size = int(counts.shape[1])
        self.dropped_bins = int(dropped)
        self.overflow = bool((~valid).any())

    def getData(self) -> np.ndarray:  # noqa: N802
        return self._counts.astype(np.int32)

    def getDataNormalized(self) -> np.ndarray:  # noqa: N802
        out = self._counts / (self._bw * 1e-12)
        out[:, ~self._valid] = np.nan
        return out

    def getDataTotalCounts(self) -> np.ndarray:  # noqa: N802
        return self._total.astype(np.uint64)

    def getIndex(self) -> np.ndarray:  # noqa: N802
        return (self._k_first + np.arange(self.size, dtype=np.int64)) * self._bw

    def getTime(self) -> np.ndarray:  # noqa: N802
        return self._t.copy()

    def getOverflowMask(self) -> np.ndarray:  # noqa: N802
        return (~self._valid).astype(np.int8)

    def getChannels(self) -> np.ndarray:  # noqa: N802
        return np.array(self._channels, np.int32)


class Counter(_Measurement):
    """Counts per channel in consecutive bins of ``binwidth`` ps; a rolling buffer of the
    last ``n_values`` completed bins (Swabian ``Counter``).

    ``getData()`` is (n_channels, n_values) int32, oldest first, the last column the most
    recent *completed* bin; bins not yet acquired are 0 (NaN in ``getDataNormalized``, as are
    bins that overlap an overflow). Bins are aligned to the start: a restart after ``stop``
    drops the partial bin and aligns the next bins to the new start.
    """

    def __init__(self, tagger, channels: list[int], binwidth: int = 1_000_000_000, n_values=1):
        if int(binwidth) <= 0 or int(n_values) <= 0:
            raise ValueError("binwidth and n_values must be > 0")
        self._chan_list = [int(c) for c in channels]
        self._bw, self._n = int(binwidth), int(n_values)
        nch = len(self._chan_list)
        self._row = np.full(max(self._chan_list + [0]) + 1 if self._chan_list else 1, -1, np.int64)
        for i, c in enumerate(self._chan_list):
            self._row[c] = i
        self._ring = np.zeros((nch, self._n), np.int64)
        self._ring_valid = np.zeros(self._n, bool)
        self._ring_t = np.zeros(self._n, np.int64)
        self._cur = np.zeros(nch, np.int64)
        self._total = np.zeros(nch, np.int64)
        self._k = 0  # absolute index of the integrating bin = number of completed bins
        self._k0 = 0  # absolute index of the bin that starts at _t0
        self._t0 = 0
        self._cur_ovf = False
        self._removed = 0
        super().__init__(tagger, self._chan_list)

    def _on_start(self, t0):
        self._t0, self._k0 = t0, self._k
        self._cur[:] = 0
        self._cur_ovf = self._in_overflow

    def _clear_data(self):
        self._ring[:] = 0
        self._ring_valid[:] = False
        self._cur[:] = 0
        self._total[:] = 0
        self._k = self._k0 = self._removed = 0
        self._t0 = self._t_fed
        self._cur_ovf = False

    def _overflow_begin(self, t):
        self._cur_ovf = True

    def _process(self, ts, ch, t_from, t_to):
        nch, n, bw = len(self._chan_list), self._n, self._bw
        rows = self._row[ch]
        if rows.size:
            self._total += np.bincount(rows, minlength=nch)
        k_done = self._k0 + (t_to - self._t0) // bw  # bins below k_done are complete
        if k_done <= self._k:
            if rows.size:
                self._cur += np.bincount(rows, minlength=nch)
            self._cur_ovf |= self._in_overflow
            return
        kt = self._k0 + (ts - self._t0) // bw
        first = max(self._k, k_done - n)
        nb = int(k_done - first)
        done = kt < k_done
        sel = done & (kt >= first)
        flat = rows[sel] * nb + (kt[sel] - first)
        counts = np.bincount(flat, minlength=nch * nb).reshape(nch, nb)
        valid = np.full(nb, not self._in_overflow)
        if self._k >= first:
            counts[:, self._k - first] += self._cur
            valid[self._k - first] = not (self._cur_ovf or self._in_overflow)
        pos = (first + np.arange(nb)) % n
        self._ring[:, pos] = counts
        self._ring_valid[pos] = valid
        self._ring_t[pos] = self._t0 + (first - self._k0 + np.arange(nb)) * bw
        self._k = k_done
        rest = rows[~done]
        self._cur = np.bincount(rest, minlength=nch).astype(np.int64)
        self._cur_ovf = self._in_overflow

    def _window(self, rolling: bool):
        n = self._n
        if rolling:
            absk = self._k - n + np.arange(n)
        else:
            absk = np.arange(n) + (self._k - 1) // n * n
            absk = np.where(absk >= self._k, absk - n, absk)
        pos = absk % n
        have = absk >= 0
        counts = np.where(have, self._ring[:, pos], 0)
        valid = have & self._ring_valid[pos]
        return counts, valid

    def getData(self, rolling: bool = True) -> np.ndarray:  # noqa: N802
        self._tagger._catch_up()
        return self._window(rolling)[0].astype(np.int32)

    def getDataNormalized(self, rolling: bool = True) -> np.ndarray:  # noqa: N802
        """Count rate per bin in counts/s; NaN for bins not acquired or in overflow."""
        self._tagger._catch_up()
        counts, valid = self._window(rolling)
        out = counts / (self._bw * 1e-12)
        out[:, ~valid] = np.nan
        return out

    def getDataTotalCounts(self) -> np.ndarray:  # noqa: N802
        """Counts per channel since the last clear, including the bin being integrated."""
        self._tagger._catch_up()
        return self._total.astype(np.uint64)

    def getIndex(self) -> np.ndarray:  # noqa: N802
        return np.arange(self._n, dtype=np.int64) * self._bw

    def getDataObject(self, remove: bool = False) -> CounterData:  # noqa: N802
        """The completed bins not removed before (at most n_values); ``remove`` consumes them."""
        self._tagger._catch_up()
        first = max(self._removed, self._k - self._n)
        absk = np.arange(first, self._k)
        pos = absk % self._n
        data = CounterData(
            self._ring[:, pos].copy(),
            self._ring_valid[pos].copy(),
            self._ring_t[pos].copy(),
            self._chan_list,
            self._bw,
            self._total - self._cur,
            first - self._removed,
            first,
        )
        if remove:
            self._removed = self._k
        return data


class HistogramLogBinsData:
    """Return value of ``HistogramLogBins.getDataObject``."""

    def __init__(self, counts, g2_norm, t_start, t_click):
        self._counts = counts
        self._norm = g2_norm
        self.accumulation_time_start = int(t_start)
        self.accumulation_time_click = int(t_click)

    def getCounts(self) -> np.ndarray:  # noqa: N802
        return self._counts.astype(np.uint64)

    def getG2Normalization(self) -> np.ndarray:  # noqa: N802
        """Counts an uncorrelated pair of streams would give in each bin."""
        return self._norm.copy()

    def getG2(self) -> np.ndarray:  # noqa: N802
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self._norm > 0, self._counts / self._norm, np.nan)


class HistogramLogBins(_Measurement):
    """Multiple-start multiple-stop histogram of click - start delays with log-spaced bins
    from 10**exp_start to 10**exp_stop seconds (Swabian ``HistogramLogBins``).

    Every click counts once per earlier start at a delay in ``[edge_i, edge_i+1)``. As in the
    SDK, after a start (or an overflow) clicks are only accepted once the full histogram span
    has passed, so every accepted click sees a complete start history and the counts are
    balanced over all bins. ``getBinEdges()`` gives the n_bins + 1 edges in ps (int64).
    Counts are uint64 as in the SDK. Simplification: no ``click_gate``/``start_gate``; the
    g2 normalisation is ``N_clicks_accepted * (N_starts / T_starts) * bin width``.
    """

    def __init__(
        self,
        tagger,
        click_channel: int,
        start_channel: int,
        exp_start: float,
        exp_stop: float,
        n_bins: int,
        click_gate=None,
        start_gate=None,
    ):
        if click_gate is not None or start_gate is not None:
            raise NotImplementedError("gated HistogramLogBins is not simulated")
        if exp_start < -12 or exp_stop <= exp_start or int(n_bins) <= 0:
            raise ValueError("need -12 <= exp_start < exp_stop and n_bins > 0")
        self._click, self._start_ch = int(click_channel), int(start_channel)
        edges = np.round(np.logspace(exp_start, exp_stop, int(n_bins) + 1) * 1e12)
        self._edges = np.maximum.accumulate(np.maximum(edges, 1)).astype(np.int64)
        self._span = int(self._edges[-1])
        self._counts = np.zeros(int(n_bins), np.int64)
        self._starts = np.empty(0, np.int64)
        self._accept_from = 0
        self._n_click = self._n_start = 0
        self._t_click = self._t_startacc = 0
        super().__init__(tagger, [self._click, self._start_ch])

    def _on_start(self, t0):
        self._starts = np.empty(0, np.int64)
        self._accept_from = t0 + self._span

    def _overflow_begin(self, t):
        self._starts = np.empty(0, np.int64)

    def _overflow_end(self, t):
        self._accept_from = t + self._span

    def _clear_data(self):
        self._counts[:] = 0
        self._n_click = self._n_start = 0
        self._t_click = self._t_startacc = 0
        self._starts = np.empty(0, np.int64)
        self._accept_from = self._t_fed + self._span

    def _process(self, ts, ch, t_from, t_to):
        if self._in_overflow:
            return
        new_starts = ts[ch == self._start_ch]
        clicks = ts[ch == self._click]
        self._n_start += new_starts.size
        self._t_startacc += t_to - t_from
        starts = np.concatenate([self._starts, new_starts]) if self._starts.size else new_starts
        clicks = clicks[clicks >= self._accept_from]
        if clicks.size and starts.size:
            s = _k.log_bin_sums(clicks, starts, self._edges)
            self._counts += s[:-1] - s[1:]
        self._n_click += clicks.size
        self._t_click += max(0, t_to - max(t_from, self._accept_from))
        self._starts = starts[starts > t_to - self._span]

    def _norm(self) -> np.ndarray:
        widths = np.diff(self._edges).astype(float)
        if self._t_startacc <= 0:
            return np.zeros(widths.size)
        return self._n_click * (self._n_start / self._t_startacc) * widths

    def getData(self) -> np.ndarray:  # noqa: N802
        self._tagger._catch_up()
        return self._counts.astype(np.uint64)

    def getBinEdges(self) -> np.ndarray:  # noqa: N802
        return self._edges.copy()

    def getDataNormalizedCountsPerPs(self) -> np.ndarray:  # noqa: N802
        self._tagger._catch_up()
        return self._counts / np.diff(self._edges).astype(float)

    def getDataNormalizedG2(self) -> np.ndarray:  # noqa: N802
        return self.getDataObject().getG2()

    def getDataObject(self) -> HistogramLogBinsData:  # noqa: N802
        self._tagger._catch_up()
        return HistogramLogBinsData(
            self._counts.copy(), self._norm(), self._t_startacc, self._t_click
        )


class TimeDifferences(_Measurement):
    """Start-stop histograms stepped by a marker channel (Swabian ``TimeDifferences``).

    Each click adds one count per earlier start within ``n_bins * binwidth`` (multiple start,
    multiple stop; without a start channel the click channel is the start channel) to the
    histogram of the current index. Without ``next_channel`` there is one index, 0. With it,
    the measurement waits for the first next tag (index -1), then each next tag steps the
    index, wrapping to 0 (a rollover) after the last. With ``sync_channel`` too, it waits
    for a sync (index -2), then for a next; a sync resets the index to waiting-for-next and a
    rollover waits for the next sync. ``getCounts()`` counts rollovers and index resets while
    accumulating; ``setMaxCounts(n)`` stops the measurement when n is reached (``ready()``).
    On an overflow the start history is dropped and, with a sync channel, the index waits for
    the next sync (the SDK's recovery is not documented; this is the simulation's choice).
    """

    def __init__(
        self,
        tagger,
        click_channel: int,
        start_channel: int = CHANNEL_UNUSED,
        next_channel: int = CHANNEL_UNUSED,
        sync_channel: int = CHANNEL_UNUSED,
        binwidth: int = 1000,
        n_bins: int = 1000,
        n_histograms: int = 1,
    ):
        if int(binwidth) <= 0 or int(n_bins) <= 0 or int(n_histograms) <= 0:
            raise ValueError("binwidth, n_bins and n_histograms must be > 0")
        if sync_channel != CHANNEL_UNUSED and next_channel == CHANNEL_UNUSED:
            raise ValueError("sync_channel needs a next_channel")
        self._click = int(click_channel)
        self._start_ch = self._click if start_channel == CHANNEL_UNUSED else int(start_channel)
        self._next, self._sync = int(next_channel), int(sync_channel)
        self._bw, self._n_bins, self._n_hist = int(binwidth), int(n_bins), int(n_histograms)
        self._data = np.zeros((self._n_hist, self._n_bins), np.int32)
        self._has_next = next_channel != CHANNEL_UNUSED
        self._has_sync = sync_channel != CHANNEL_UNUSED
        self._st = np.array([self._idle_index(), 0, -1, 0, self._has_next, self._has_sync])
        self._starts = np.empty(0, np.int64)
        chans = [self._click, self._start_ch, self._next, self._sync]
        super().__init__(tagger, chans)
        self._roles = self._role_table(
            {self._click: 0, self._start_ch: 0, self._next: 0, self._sync: 0}
        )
        for c, r in (
            (self._click, _k.CLICK),
            (self._start_ch, _k.START),
            (self._next, _k.NEXT),
            (self._sync, _k.SYNC),
        ):
            if c != CHANNEL_UNUSED:
                self._roles[c] |= r

    def _idle_index(self) -> int:
        return -2 if self._has_sync else (-1 if self._has_next else 0)

    def _on_start(self, t0):
        self._st[0] = self._idle_index()
        self._starts = np.empty(0, np.int64)

    def _clear_data(self):
        self._data[:] = 0
        self._st[0] = self._idle_index()
        self._st[1] = 0
        self._starts = np.empty(0, np.int64)

    def _overflow_begin(self, t):
        self._starts = np.empty(0, np.int64)
        if self._has_sync:
            self._st[0] = -2

    def _process(self, ts, ch, t_from, t_to):
        if ts.size == 0:
            return
        role = self._roles[ch]
        new_starts = ts[(role & _k.START) != 0]
        n_old = self._starts.size
        starts = np.concatenate([self._starts, new_starts]) if n_old else new_starts
        self._st[3] = 0
        pos = _k.time_differences(ts, role, starts, n_old, self._bw, self._data, self._st)
        self._starts = starts[self._st[3] :]
        self._st[3] = 0
        if pos >= 0:
            self._finished = True

    def _can_finish(self) -> bool:
        return self._st[2] >= 0

    def getData(self) -> np.ndarray:  # noqa: N802
        """(n_histograms, n_bins) int32."""
        self._tagger._catch_up()
        return self._data.copy()

    def getIndex(self) -> np.ndarray:  # noqa: N802
        return np.arange(self._n_bins, dtype=np.int64) * self._bw

    def setMaxCounts(self, max_counts: int) -> None:  # noqa: N802
        self._tagger._catch_up()
        self._st[2] = int(max_counts)

    def getCounts(self) -> int:  # noqa: N802
        self._tagger._catch_up()
        return int(self._st[1])

    def getHistogramIndex(self) -> int:  # noqa: N802
        self._tagger._catch_up()
        return int(self._st[0])

    def ready(self) -> bool:
        self._tagger._catch_up()
        return bool(self._st[2] >= 0 and self._st[1] >= self._st[2])


class CountBetweenMarkers(_Measurement):
    """Counts of ``click_channel`` tags in bins opened by ``begin_channel`` tags and closed by
    the next begin tag, or by an ``end_channel`` tag if given (Swabian ``CountBetweenMarkers``).

    ``getData()`` int32 (n_values), ``getBinWidths()`` and ``getIndex()`` (begin time of each
    bin, tagger time in ps) int64; unfilled entries are 0. The measurement stops when all
    n_values are filled (``ready()``). On an overflow the bin being counted is abandoned and
    counting resumes at the next begin tag.
    """

    def __init__(
        self,
        tagger,
        click_channel: int,
        begin_channel: int,
        end_channel: int = CHANNEL_UNUSED,
        n_values: int = 1000,
    ):
        if int(n_values) <= 0:
            raise ValueError("n_values must be > 0")
        self._click, self._begin, self._end = int(click_channel), int(begin_channel), end_channel
        self._n = int(n_values)
        self._data = np.zeros(self._n, np.int32)
        self._widths = np.zeros(self._n, np.int64)
        self._begins = np.zeros(self._n, np.int64)
        self._st = np.array([0, 0, 0, 0, int(end_channel != CHANNEL_UNUSED)], np.int64)
        super().__init__(tagger, [self._click, self._begin, self._end])
        self._roles = self._role_table({self._click: _k.CLICK})
        self._roles[self._begin] |= _k.BEGIN
        if self._end != CHANNEL_UNUSED:
            self._roles[self._end] |= _k.END

    def _clear_data(self):
        self._data[:] = 0
        self._widths[:] = 0
        self._begins[:] = 0
        self._st[:4] = 0

    def _overflow_begin(self, t):
        self._st[0] = 0

    def _process(self, ts, ch, t_from, t_to):
        if ts.size == 0 or self._st[3] >= self._n:
            return
        pos = _k.count_between_markers(
            ts, self._roles[ch], self._data, self._widths, self._begins, self._st
        )
        if pos >= 0:
            self._finished = True

    def _can_finish(self) -> bool:
        return True

    def ready(self) -> bool:
        self._tagger._catch_up()
        return bool(self._st[3] >= self._n)

    def getData(self) -> np.ndarray:  # noqa: N802
        self._tagger._catch_up()
        return self._data.copy()

    def getBinWidths(self) -> np.ndarray:  # noqa: N802
        self._tagger._catch_up()
        return self._widths.copy()

    def getIndex(self) -> np.ndarray:  # noqa: N802
        self._tagger._catch_up()
        return self._begins.copy()


class TimeTagStreamBuffer:
    """The block of events returned by ``TimeTagStream.getData()`` / ``FileReader.getData()``.

    Events are time tags and overflow events (``getEventTypes()``: :class:`TagType`);
    ``getMissedEvents()`` holds the lost-tag count of ``MissedEvents`` events (uint16).
    ``hasOverflows`` is True if the block contains overflow events or the stream had to
    discard tags because its ``n_max_events`` buffer was full.
    """

    def __init__(self, ts, ch, types, missed, t_start, t_get, has_overflows=None):
        self._ts = ts
        self._ch = ch
        self._types = types
        self._missed = missed
        self.size = int(ts.size)
        self.tStart = int(t_start)
        self.tGetData = int(t_get)
        if has_overflows is None:
            has_overflows = bool(np.any(types != TagType.TimeTag))
        self.hasOverflows = bool(has_overflows)

    def getTimestamps(self) -> np.ndarray:  # noqa: N802
        return self._ts

    def getChannels(self) -> np.ndarray:  # noqa: N802
        return self._ch

    def getEventTypes(self) -> np.ndarray:  # noqa: N802
        return self._types

    def getOverflows(self) -> np.ndarray:  # noqa: N802 - deprecated SDK alias
        return self._types

    def getMissedEvents(self) -> np.ndarray:  # noqa: N802
        return self._missed


class _EventBuffer:
    """Time-ordered pieces of (timestamps, channels, types, missed) awaiting a reader."""

    def __init__(self):
        self.parts: list[tuple] = []
        self.n = 0

    def add_tags(self, ts, ch) -> None:
        if ts.size:
            self.parts.append((ts, ch, None, None))
            self.n += int(ts.size)

    def add_event(self, typ, t, ch, missed) -> None:
        self.parts.append(
            (
                np.array([t], np.int64),
                np.array([ch], np.int32),
                np.array([typ], np.uint8),
                np.array([missed], np.uint16),
            )
        )
        self.n += 1

    def take(self):
        """(ts int64, ch int32, types uint8, missed uint16) of everything; empties the buffer."""
        if not self.parts:
            out = (
                np.empty(0, np.int64),
                np.empty(0, np.int32),
                np.empty(0, np.uint8),
                np.empty(0, np.uint16),
            )
        else:
            ts = np.concatenate([p[0] for p in self.parts])
            ch = np.concatenate([p[1] for p in self.parts]).astype(np.int32, copy=False)
            types = np.concatenate(
                [p[2] if p[2] is not None else np.zeros(p[0].size, np.uint8) for p in self.parts]
            )
            missed = np.concatenate(
                [p[3] if p[3] is not None else np.zeros(p[0].size, np.uint16) for p in self.parts]
            )
            out = (ts, ch, types, missed)
        self.parts, self.n = [], 0
        return out


class TimeTagStream(_Measurement):
    """Raw tags of some channels; ``getData()`` returns and empties the buffer.

    At most ``n_max_events`` tags are buffered between two ``getData()`` calls; later ones are
    discarded (as on the real device: the buffer then reports ``hasOverflows``), so poll often
    enough. Overflow events of the device (with ``MissedEvents`` for this stream's channels)
    are always stored.
    """

    def __init__(self, tagger, n_max_events: int, channels: list[int]):
        if n_max_events <= 0:
            raise ValueError("n_max_events must be > 0")
        self._n_max = int(n_max_events)
        self._buf = _EventBuffer()
        self._n_discarded = 0
        self._t_last_get = 0
        super().__init__(tagger, list(channels))

    def _on_start(self, t0):
        if self._buf.n == 0:
            self._t_last_get = t0

    def _process(self, ts, ch, t_from, t_to):
        room = self._n_max - self._buf.n
        if ts.size > room:
            self._n_discarded += ts.size - max(room, 0)
            ts, ch = ts[: max(room, 0)], ch[: max(room, 0)]
        self._buf.add_tags(ts, ch)

    def _marker(self, typ, t, ch, missed):
        super()._marker(typ, t, ch, missed)
        self._buf.add_event(typ, t, ch, missed)

    def _clear_data(self):
        self._buf = _EventBuffer()
        self._n_discarded = 0

    def getCounts(self) -> int:  # noqa: N802
        """Number of events currently buffered."""
        self._tagger._catch_up()
        return self._buf.n

    def getData(self) -> TimeTagStreamBuffer:  # noqa: N802
        self._tagger._catch_up()
        ts, ch, types, missed = self._buf.take()
        t_get = self._t_fed
        has_ovf = bool(np.any(types != TagType.TimeTag)) or self._n_discarded > 0
        buf = TimeTagStreamBuffer(ts, ch, types, missed, self._t_last_get, t_get, has_ovf)
        self._t_last_get = t_get
        self._n_discarded = 0
        return buf


# ----------------------------------------------------------------------------- files
#: Version of the hbtscope time-tag file format written by :class:`FileWriter`.
FILE_FORMAT_VERSION = 1
FILE_MAGIC = b"HBTTAGS\x00"
_FILE_HEAD = struct.Struct("<8sHHI")  # magic, format version, flags (0), header JSON length
_REC_HEAD = struct.Struct("<4sQ")  # record tag, payload length
_REC_CRC = struct.Struct("<I")  # CRC-32 of the payload
_REC_TAGS, _REC_MARK, _REC_NEXT, _REC_END = b"TAGS", b"MARK", b"NEXT", b"END\x00"


class FileWriter(_Measurement):
    """Writes the tags of ``channels`` (and overflow events) to ``filename``.

    NOT Swabian's proprietary ``.ttbin``: the hbtscope time-tag format, version
    :data:`FILE_FORMAT_VERSION`, little-endian, no pickle:

    * file header: ``b"HBTTAGS\\0"``, uint16 format version, uint16 flags (0), uint32 length
      of a UTF-8 JSON object ``{"format": "hbtscope-timetags", "version", "channels",
      "configuration" (the tagger's settings), "file_index"}``;
    * then records: 4-byte tag, uint64 payload length, payload, uint32 CRC-32 of the payload.
      ``TAGS``: uint64 n, then int64 times[n], int32 channels[n], uint16 missed[n], uint8
      types[n] (:class:`TagType`); ``MARK``: a UTF-8 marker (``setMarker``); ``NEXT``: UTF-8
      name of the file that continues the stream (``split``); ``END``: uint64 number of
      events in the file, written when the file is closed cleanly.

    A record appears only when written whole, so a file cut short by a crash reads up to its
    last complete record. ``split()`` (or the automatic split at ``setMaxFileSize``) continues
    in ``<stem>.<i><suffix>`` next to the first file. Tags reach the file when the tagger
    catches up (any API call), and on ``stop()``.
    """

    def __init__(self, tagger, filename: str, channels: list[int]):
        self._path = Path(filename)
        self._chan_list = [int(c) for c in channels]
        self._buf = _EventBuffer()
        self._file = None
        self._file_index = 0
        self._total_events = 0
        self._total_size = 0
        self._max_size = 1 << 30
        inner = tagger._tagger if isinstance(tagger, _TaggerProxy) else tagger
        self._config = json.loads(inner.getConfiguration())
        self._open(self._path)
        super().__init__(tagger, self._chan_list)

    # file handling
    def _open(self, path: Path) -> None:
        header = json.dumps(
            {
                "format": "hbtscope-timetags",
                "version": FILE_FORMAT_VERSION,
                "channels": self._chan_list,
                "configuration": self._config,
                "file_index": self._file_index,
            }
        ).encode()
        self._file = open(path, "wb")  # noqa: SIM115 - lives as long as the measurement
        self._file_events = 0
        self._write(_FILE_HEAD.pack(FILE_MAGIC, FILE_FORMAT_VERSION, 0, len(header)) + header)
        self._file.flush()

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._total_size += len(data)

    def _record(self, tag: bytes, payload: bytes) -> None:
        self._write(_REC_HEAD.pack(tag, len(payload)))
        self._write(payload)
        self._write(_REC_CRC.pack(zlib.crc32(payload)))

    def _close_file(self, next_name: str | None) -> None:
        if self._file is None:
            return
        if next_name is not None:
            self._record(_REC_NEXT, next_name.encode())
        self._record(_REC_END, struct.pack("<Q", self._file_events))
        self._file.close()
        self._file = None

    def _split_path(self) -> Path:
        return self._path.with_name(f"{self._path.stem}.{self._file_index}{self._path.suffix}")

    # measurement hooks
    def _process(self, ts, ch, t_from, t_to):
        self._buf.add_tags(ts, ch)

    def _marker(self, typ, t, ch, missed):
        super()._marker(typ, t, ch, missed)
        self._buf.add_event(typ, t, ch, missed)

    def _after_feed(self):
        self._flush_events()

    def _on_stop(self):
        self._flush_events()

    def _clear_data(self):
        return None

    def _flush_events(self) -> None:
        if self._file is None or self._buf.n == 0:
            return
        ts, ch, types, missed = self._buf.take()
        payload = b"".join(
            [
                struct.pack("<Q", ts.size),
                ts.astype("<i8").tobytes(),
                ch.astype("<i4").tobytes(),
                missed.astype("<u2").tobytes(),
                types.astype("u1").tobytes(),
            ]
        )
        self._record(_REC_TAGS, payload)
        self._file.flush()
        self._file_events += int(ts.size)
        self._total_events += int(ts.size)
        if self._file.tell() >= self._max_size:
            self.split()

    # Swabian API
    def split(self, new_filename: str = "") -> None:
        """Close the current file and continue in a new one (``NEXT`` record links them)."""
        with self._tagger._lock:
            self._tagger._catch_up()
            self._flush_events()
            self._file_index += 1
            path = Path(new_filename) if new_filename else self._split_path()
            self._close_file(path.name if path.parent == self._path.parent else str(path))
            self._open(path)

    def setMaxFileSize(self, max_file_size: int) -> None:  # noqa: N802
        self._max_size = int(max_file_size)

    def getMaxFileSize(self) -> int:  # noqa: N802
        return self._max_size

    def getTotalEvents(self) -> int:  # noqa: N802
        self._tagger._catch_up()
        return self._total_events

    def getTotalSize(self) -> int:  # noqa: N802
        self._tagger._catch_up()
        return self._total_size

    def setMarker(self, marker: str) -> None:  # noqa: N802
        with self._tagger._lock:
            self._tagger._catch_up()
            self._flush_events()
            if self._file is not None:
                self._record(_REC_MARK, str(marker).encode())
                self._file.flush()

    def close(self) -> None:
        """Stop and close the file cleanly (simulation helper; the SDK closes on delete)."""
        with contextlib.suppress(Exception):
            self.stop()
        self._close_file(None)

    def __del__(self):
        with contextlib.suppress(Exception):
            self._close_file(None)
        super().__del__()


class FileReader:
    """Reads files written by :class:`FileWriter` (hbtscope format, see there).

    ``getData(n_events)`` returns a :class:`TimeTagStreamBuffer` with the next up to
    ``n_events`` events (fewer only at the end); ``tStart``/``tGetData`` are the times of its
    first and last event. ``getConfiguration()`` returns the header's tagger configuration as
    a dict (the SDK returns JSON text). Split files are followed through their ``NEXT``
    records; several file names are read one after the other.
    """

    def __init__(self, filenames):
        if isinstance(filenames, str | Path):
            filenames = [filenames]
        self._queue = [Path(f) for f in filenames]
        if not self._queue:
            raise ValueError("no file to read")
        self._file = None
        self._header: dict = {}
        self._pending: list[tuple] = []
        self._n_pending = 0
        self._last_marker = ""
        self._open(self._queue.pop(0))

    def _open(self, path: Path) -> None:
        f = open(path, "rb")  # noqa: SIM115 - closed at the end of the file
        head = f.read(_FILE_HEAD.size)
        if len(head) < _FILE_HEAD.size:
            f.close()
            raise OSError(f"{path}: not an hbtscope time-tag file (too short)")
        magic, version, _flags, n = _FILE_HEAD.unpack(head)
        if magic != FILE_MAGIC:
            f.close()
            raise OSError(f"{path}: not an hbtscope time-tag file (bad magic)")
        if version != FILE_FORMAT_VERSION:
            f.close()
            raise OSError(f"{path}: format version {version}, this reader reads 1")
        self._header = json.loads(f.read(n).decode())
        self._file, self._path = f, path

    def _read_record(self) -> bool:
        """Read the next record; False at the end of all files."""
        while self._file is not None:
            head = self._file.read(_REC_HEAD.size)
            if len(head) < _REC_HEAD.size:
                self._next_file(None)
                continue
            tag, n = _REC_HEAD.unpack(head)
            payload = self._file.read(n)
            crc = self._file.read(_REC_CRC.size)
            if len(payload) < n or len(crc) < _REC_CRC.size:
                self._next_file(None)  # cut short by a crash: stop at the last whole record
                continue
            if zlib.crc32(payload) != _REC_CRC.unpack(crc)[0]:
                raise OSError(f"{self._path}: corrupt record (CRC mismatch)")
            if tag == _REC_TAGS:
                (m,) = struct.unpack_from("<Q", payload)
                o = 8
                ts = np.frombuffer(payload, "<i8", m, o).astype(np.int64)
                o += 8 * m
                ch = np.frombuffer(payload, "<i4", m, o).astype(np.int32)
                o += 4 * m
                missed = np.frombuffer(payload, "<u2", m, o).astype(np.uint16)
                o += 2 * m
                types = np.frombuffer(payload, "u1", m, o).astype(np.uint8)
                if m:
                    self._pending.append((ts, ch, types, missed))
                    self._n_pending += m
                return True
            if tag == _REC_MARK:
                self._last_marker = payload.decode()
            elif tag == _REC_NEXT:
                self._next_file(payload.decode())
            elif tag == _REC_END:
                self._next_file(None)
            else:
                raise OSError(f"{self._path}: unknown record {tag!r}")
            return True
        return False

    def _next_file(self, name: str | None) -> None:
        self._file.close()
        self._file = None
        if name is not None:
            nxt = Path(name)
            if not nxt.is_absolute():
                nxt = self._path.parent / nxt
            self._queue = [q for q in self._queue if q.resolve() != nxt.resolve()]
            if nxt.exists():
                self._queue.insert(0, nxt)
        if self._queue:
            self._open(self._queue.pop(0))

    def hasData(self) -> bool:  # noqa: N802
        while self._n_pending == 0 and self._read_record():
            pass
        return self._n_pending > 0

    def getData(self, n_events: int) -> TimeTagStreamBuffer:  # noqa: N802
        n_events = int(n_events)
        while self._n_pending < n_events and self._read_record():
            pass
        parts, got = [], 0
        while self._pending and got < n_events:
            ts, ch, types, missed = self._pending[0]
            take = min(ts.size, n_events - got)
            parts.append((ts[:take], ch[:take], types[:take], missed[:take]))
            if take < ts.size:
                self._pending[0] = (ts[take:], ch[take:], types[take:], missed[take:])
            else:
                self._pending.pop(0)
            got += take
        self._n_pending -= got
        if parts:
            ts, ch, types, missed = (np.concatenate([p[i] for p in parts]) for i in range(4))
        else:
            ts, ch = np.empty(0, np.int64), np.empty(0, np.int32)
            types, missed = np.empty(0, np.uint8), np.empty(0, np.uint16)
        t0 = int(ts[0]) if ts.size else 0
        t1 = int(ts[-1]) if ts.size else 0
        return TimeTagStreamBuffer(ts, ch, types, missed, t0, t1)

    def getConfiguration(self) -> dict:  # noqa: N802
        return dict(self._header.get("configuration", {}))

    def getChannelList(self) -> list[int]:  # noqa: N802
        return list(self._header.get("channels", []))

    def getLastMarker(self) -> str:  # noqa: N802
        return self._last_marker
