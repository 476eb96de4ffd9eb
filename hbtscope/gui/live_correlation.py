"""The g2 histogram while a run is recording, from its time tags (not from its file).

A g2 run publishes its correlation histogram (``g2/lag_ps``, ``g2/coincidences``) once, at the
end. :class:`LiveCorrelation` is a run display that builds the same histogram as the tags come
(:class:`~hbtscope.analysis.CorrelationAccumulator` with the run's ``bin_width_ps`` and
``max_lag_ps``, the ``spad_a``/``spad_b`` channels of its :class:`~hbtscope.events.TTTRInfo`)
and hands a snapshot to the GUI at most every ``interval_s``: the live view draws it like the
final histogram, which replaces it at the end. It runs in the run's thread (a display), never in
the GUI thread; snapshots go to the GUI only, never into the run file. Only ``g2`` runs get
one (a ``g2_power`` run's tags span several powers), and only with at most
:data:`MAX_LIVE_BINS` bins (the run's own histogram may be far larger) and with their tags
published (``record_tags = true``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hbtscope import events as ev
from hbtscope.analysis import CorrelationAccumulator

#: procedures whose tags make one g2 histogram
PROCEDURES = frozenset({"g2"})
#: no live histogram beyond this many bins (memory and redraw time)
MAX_LIVE_BINS = 2_000_001


def live_bins(parameters: dict[str, Any]) -> int:
    """How many bins the run's histogram has (0: not a histogram this display can follow)."""
    try:
        bin_width, max_lag = int(parameters["bin_width_ps"]), int(parameters["max_lag_ps"])
    except (KeyError, TypeError, ValueError):
        return 0
    return 2 * max_lag // bin_width + 1 if bin_width > 0 and max_lag > 0 else 0


class LiveCorrelation:
    """A run display: ``display(event)``; snapshots go to ``send(ArrayRecorded)``."""

    def __init__(self, send: Callable[[Any], None], interval_s: float = 1 / 12):
        self.send = send
        self.interval_s = interval_s
        self.acc: CorrelationAccumulator | None = None
        self.channels: tuple[int, int] | None = None
        self._params: dict[str, Any] = {}
        self._last_sent = -float("inf")
        self.snapshots = 0

    def display(self, event: Any) -> None:
        if isinstance(event, ev.RunStarted):
            wanted = event.procedure in PROCEDURES
            self._params = dict(event.parameters) if wanted else {}
            self.acc, self.channels, self.snapshots = None, None, 0
        elif isinstance(event, ev.TTTRInfo):
            cmap = dict(event.channel_map)
            p = self._params
            if {"spad_a", "spad_b"} <= cmap.keys() and 0 < live_bins(p) <= MAX_LIVE_BINS:
                self.channels = (int(cmap["spad_a"]), int(cmap["spad_b"]))
                self.acc = CorrelationAccumulator(int(p["bin_width_ps"]), int(p["max_lag_ps"]))
        elif isinstance(event, ev.TagsRecorded) and self.acc is not None:
            ch_a, ch_b = self.channels  # type: ignore[misc]
            ts, ch = event.timestamps_ps, event.channels
            self.acc.add(ts[ch == ch_a], ts[ch == ch_b])
            now = time.monotonic()
            if now - self._last_sent >= self.interval_s:
                self._last_sent = now
                self.snapshots += 1
                self.send(ev.ArrayRecorded("g2/lag_ps", self.acc.lag_ps, "ps"))
                self.send(ev.ArrayRecorded("g2/coincidences", np.array(self.acc.counts), "counts"))
        elif isinstance(event, ev.RunEnded):
            self.acc = None
