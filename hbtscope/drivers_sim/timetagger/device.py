"""The simulated Time Tagger 20 itself: inputs, FIFO, USB link, and plugging it in.

The path of a tag, as on a Time Tagger 20: input (world clicks, test signal) -> dead time ->
event divider -> on-device FIFO drained over USB at ``_max_rate`` tags/s (overflows lose tags,
see :class:`TimeTagger`) -> software input delay -> the running measurements. Only the channels
some running measurement uses are streamed (as on the device), so only they count against the
USB rate.

Simulated hardware is "attached" with :func:`attach_world`, the way a real tagger is plugged
into USB; ``createTimeTagger(serial)`` then finds it. The measurements that consume the tags
live in :mod:`.base` and the modules next to it; this module knows them only through the hooks
``_running``, ``_channels``, ``_chan_arr``, ``_feed`` and ``stop``.
"""

from __future__ import annotations

import json
import threading
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

from hbtscope.drivers_sim._kernels import apply_dead_time
from hbtscope.drivers_sim.timetagger import _kernels as _k

if TYPE_CHECKING:
    from hbtscope.drivers_sim.timetagger.base import _Measurement

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
    """Selector of ``getChannelList`` (the simulation only has rising edges).

    API completeness: used by no procedure, only in the getChannelList signature.
    """

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
    """Unplug the simulated tagger ``serial`` (no error if it is not attached)."""
    _DEVICES.pop(serial, None)
    _OPEN.pop(serial, None)


def scanTimeTagger() -> list[str]:  # noqa: N802 - Swabian API name
    """Serial numbers of the attached (simulated) taggers.

    API completeness: used by no procedure, only by tests.
    """
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
        # device FIFO state (see _kernels.device_buffer)
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
        """Picoseconds per tick of the time base: 1, times are already ps.

        API completeness: used by no procedure and by no test.
        """
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
        at_source = getattr(self._world, "set_sync_divider", None)
        if c == self._world.sync_channel and at_source is not None:
            at_source(divider)  # the world generates only the kept syncs
            self._sync_divided_at_source = True

    def getEventDivider(self, channel: int) -> int:  # noqa: N802
        return int(self._divider[self._check_channel(channel)])

    def setTestSignal(self, channels, state: bool) -> None:  # noqa: N802
        self._catch_up()
        for c in [channels] if isinstance(channels, int) else channels:
            self._test_signal[self._check_channel(c)] = bool(state)

    def getTestSignal(self, channel: int) -> bool:  # noqa: N802
        """Whether the channel gets the built-in test signal.

        API completeness: used by no procedure, only by tests.
        """
        return self._test_signal[self._check_channel(channel)]

    def setHardwareBufferSize(self, size: int) -> None:  # noqa: N802
        """Size of the on-device FIFO in tags (the overflow model's capacity).

        API completeness: used by no procedure, only by tests.
        """
        self._catch_up()
        if int(size) < 1:
            raise ValueError("hardware buffer size must be >= 1 tag")
        self._buffer_tags = int(size)

    def getHardwareBufferSize(self) -> int:  # noqa: N802
        """Size of the on-device FIFO in tags.

        API completeness: used by no procedure, only by tests.
        """
        return int(self._buffer_tags)

    def getOverflows(self) -> int:  # noqa: N802
        """Number of overflow intervals since creation or the last ``clearOverflows``.

        API completeness: used by no procedure, only by tests.
        """
        self._catch_up()
        return self._overflows

    def clearOverflows(self) -> None:  # noqa: N802
        """Reset the ``getOverflows`` count to 0.

        API completeness: used by no procedure, only by tests.
        """
        self._catch_up()
        self._overflows = 0

    def getOverflowsAndClear(self) -> int:  # noqa: N802
        """``getOverflows`` then ``clearOverflows``, atomically.

        API completeness: used by no procedure, only by tests.
        """
        with self._lock:
            self._catch_up()
            n, self._overflows = self._overflows, 0
            return n

    def getConfiguration(self) -> str:  # noqa: N802
        """JSON text of the tagger's settings (the SDK's is a JSON string too, richer).

        API completeness: used by no procedure, only by tests.
        """
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
        """Make sure every tag up to now has reached the measurements.

        API completeness: used by no procedure, only by tests.
        """
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
        divider = self._divider
        if getattr(self, "_sync_divided_at_source", False):
            divider = divider.copy()
            divider[self._world.sync_channel] = 1  # divided at the source (set_sync_divider)
        if ts.size == 0 or not (divider > 1).any():
            return ts, ch
        keep = _k.event_divider(ch, divider, self._divider_count)
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
