"""What every simulated measurement shares (Swabian ``IteratorBase``) and their synchronisation.

:class:`_Measurement` holds the control API (``start/startFor/stop/clear/isRunning/
waitUntilFinished/getCaptureDuration``), the feeding of tags and overflow markers from the
device, and the machinery the measurement classes used to repeat: validation of the
constructor's sizes (:meth:`_Measurement._positive`), bringing the tagger up to the clock's now
before any read (:func:`caught_up`), and binned histograms with a bin width
(:class:`_Binned`). :class:`SynchronizedMeasurements` starts, stops and clears several of them
on one tag.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable
from typing import TypeVar

import numpy as np

from hbtscope.drivers_sim.timetagger.device import CHANNEL_UNUSED, TagType, TimeTagger, _Markers

_F = TypeVar("_F", bound=Callable)


def caught_up(method: _F) -> _F:
    """Decorator of a measurement method: bring its tagger up to the clock's now first."""

    @functools.wraps(method)
    def caught_up(self, *args, **kwargs):
        self._tagger._catch_up()
        return method(self, *args, **kwargs)

    return caught_up  # type: ignore[return-value]


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

    API completeness: used by no procedure, only by tests.
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

    @caught_up
    def isRunning(self) -> bool:  # noqa: N802
        return self._running

    @caught_up
    def getCaptureDuration(self) -> int:  # noqa: N802
        """Time (ps) over which the measurement has accumulated since the last clear."""
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

    @staticmethod
    def _positive(**sizes: int) -> tuple[int, ...]:
        """The constructor's sizes as ints; ValueError naming them all if one is not > 0."""
        values = tuple(int(v) for v in sizes.values())
        if min(values) <= 0:
            names = list(sizes)
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            raise ValueError(f"{listed} must be > 0")
        return values

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

    def _role_table(self, roles: Iterable[tuple[int, int]]) -> np.ndarray:
        """Per-channel bit flags (``_kernels.CLICK``, ``START``...) from (channel, role) pairs;
        a channel in several pairs gets every role, ``CHANNEL_UNUSED`` is skipped."""
        table = np.zeros(self._tagger._n_ch, np.uint8)
        for c, r in roles:
            if c != CHANNEL_UNUSED:
                table[c] |= r
        return table


class _Binned(_Measurement):
    """A measurement that histograms into ``n_bins`` bins of ``binwidth`` ps.

    A subclass calls :meth:`_set_bins` first in its constructor (its data arrays need the
    sizes before :class:`_Measurement` starts it); ``getIndex`` gives the left edge of each
    bin, ``i * binwidth`` (start-stop histograms and ``Counter``; ``Correlation`` overrides it
    with centred bins).
    """

    _binwidth: int
    _n_bins: int

    def _set_bins(
        self, binwidth: int, n_bins: int, n_name: str = "n_bins", **more: int
    ) -> tuple[int, ...]:
        """Validate and keep the bin width (ps) and count; ``n_name`` is the SDK's name of the
        count, for the error message. Further sizes in ``more`` are validated with them and
        returned as ints."""
        sizes = self._positive(binwidth=binwidth, **{n_name: n_bins}, **more)
        self._binwidth, self._n_bins = sizes[:2]
        return sizes[2:]

    def getIndex(self) -> np.ndarray:  # noqa: N802
        """Time of each bin in ps (int64): its left edge, ``i * binwidth``."""
        return np.arange(self._n_bins, dtype=np.int64) * self._binwidth
