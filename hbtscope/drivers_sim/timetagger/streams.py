"""Raw tag streams of the simulated tagger: ``TimeTagStream`` and the buffer it (and
``FileReader``) returns, ``TimeTagStreamBuffer``."""

from __future__ import annotations

import numpy as np

from hbtscope.drivers_sim.timetagger.base import _Measurement, caught_up
from hbtscope.drivers_sim.timetagger.device import TagType


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
        """The event types, under the SDK's deprecated name (= ``getEventTypes``).

        API completeness: used by no procedure and by no test.
        """
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
        (self._n_max,) = self._positive(n_max_events=n_max_events)
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

    @caught_up
    def getCounts(self) -> int:  # noqa: N802
        """Number of events currently buffered.

        API completeness: used by no procedure, only by tests.
        """
        return self._buf.n

    @caught_up
    def getData(self) -> TimeTagStreamBuffer:  # noqa: N802
        ts, ch, types, missed = self._buf.take()
        t_get = self._t_fed
        has_ovf = bool(np.any(types != TagType.TimeTag)) or self._n_discarded > 0
        buf = TimeTagStreamBuffer(ts, ch, types, missed, self._t_last_get, t_get, has_ovf)
        self._t_last_get = t_get
        self._n_discarded = 0
        return buf
