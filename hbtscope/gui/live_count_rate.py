"""The detectors' count rates during a run, from the tags it publishes (not from the tagger).

While a run holds the instruments, the instrument panel cannot ask the tagger for its count
rates. :class:`LiveCountRate` is a run display (it runs in the run's thread) that counts the
tags of each photon channel of the run's :class:`~hbtscope.events.TTTRInfo` in every chunk the
run publishes (:class:`~hbtscope.events.TagsRecorded`) and sends their rates, in counts per
second of tag time, as a :class:`CountRates` to the GUI at most every ``interval_s`` of tag
time and ``min_wall_s`` of wall time; the panel's rolling trace goes on with them. A
confocal scan publishes pixel counts instead of tags: the blocks of lines it emits
(``scan_lines``, per detector), summed over at least ``min_wall_s`` of wall time, give the
rates ``counts / (lines x pixels x dwell_s)`` of the detectors named ``scan_detectors`` (the
tagger's SPADs in the scan's order). Other runs
without tags leave the trace paused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hbtscope import events as ev
from hbtscope.storage.reading import is_photon_name
from hbtscope.units import PS_PER_S

#: the measurement whose pixel counts give rates (its ``scan_lines`` and ``dwell_s``)
SCAN = "confocal_scan"


def spad_names(setup: Any) -> list[str]:
    """The names of the tagger's two SPADs of the HBT arm, in its ``spad_channels`` order (the
    order of a scan's detectors); the defaults without a tagger."""
    if "tagger" not in getattr(setup, "instruments", ()):
        return ["spad_a", "spad_b"]
    tagger = setup.tagger
    by_channel = {c: n for n, c in tagger.channels.items()}
    return [by_channel.get(c, f"channel {c}") for c in tagger.spad_channels]


@dataclass(frozen=True)
class CountRates:
    """Counts per second of each detector (name -> rate) over the last stretch of a run."""

    rates: dict[str, float]
    span_s: float
    #: what they were counted from: the run's "tags", or a scan's "pixel counts"
    source: str = "tags"


class LiveCountRate:
    """A run display: ``display(event)``; rates go to ``send(CountRates)``."""

    def __init__(
        self,
        send: Callable[[Any], None],
        interval_s: float = 0.25,
        min_wall_s: float = 0.1,
        scan_detectors: Sequence[str] = ("spad_a", "spad_b"),
    ):
        self.send = send
        self.interval_s = interval_s
        self.min_wall_s = min_wall_s
        self.scan_detectors = list(scan_detectors)
        self._dwell_s: float | None = None
        self._scan_counts: np.ndarray | None = None  # counts of the blocks not yet sent
        self._scan_span_s = 0.0
        self.channels: dict[int, str] = {}
        self._reset_window()
        self._last_sent_wall = -float("inf")

    def _reset_window(self) -> None:
        self._counts: dict[int, int] = dict.fromkeys(self.channels, 0)
        self._t_from_ps: int | None = None

    def display(self, event: Any) -> None:
        if isinstance(event, ev.RunStarted):
            self.channels = {}
            self._reset_window()
            dwell = event.parameters.get("dwell_s") if event.procedure == SCAN else None
            self._dwell_s = float(dwell) if dwell else None
            self._scan_counts, self._scan_span_s = None, 0.0
        elif isinstance(event, ev.Emitted) and event.topic == "scan_lines" and self._dwell_s:
            self._scan_lines(event.record)
        elif isinstance(event, ev.TTTRInfo):
            self.channels = {
                int(c): str(name)
                for name, c in dict(event.channel_map).items()
                if is_photon_name(str(name))
            }
            self._reset_window()
        elif isinstance(event, ev.TagsRecorded) and self.channels:
            ts, ch = event.timestamps_ps, event.channels
            if ts.size == 0:
                return
            if self._t_from_ps is None:
                self._t_from_ps = int(ts[0])
            for c in self.channels:
                self._counts[c] += int(np.count_nonzero(ch == c))
            span_s = (int(ts[-1]) - self._t_from_ps) / PS_PER_S
            now = time.monotonic()
            if span_s >= self.interval_s and now - self._last_sent_wall >= self.min_wall_s:
                rates = {self.channels[c]: n / span_s for c, n in self._counts.items()}
                self.send(CountRates(rates, span_s))
                self._last_sent_wall = now
                self._counts = dict.fromkeys(self.channels, 0)
                self._t_from_ps = int(ts[-1])

    def _scan_lines(self, record: Any) -> None:
        """Counts of a block of scan lines (``detectors``: (n_detectors, lines, pixels)),
        summed with the blocks before it until ``min_wall_s`` has passed, then sent as rates."""
        lines = np.asarray(record.get("detectors", ())) if isinstance(record, dict) else None
        if lines is None or lines.ndim != 3 or lines.shape[0] != len(self.scan_detectors):
            return
        self._scan_span_s += lines.shape[1] * lines.shape[2] * float(self._dwell_s)
        totals = lines.sum(axis=(1, 2))
        self._scan_counts = totals if self._scan_counts is None else self._scan_counts + totals
        now = time.monotonic()
        if self._scan_span_s <= 0 or now - self._last_sent_wall < self.min_wall_s:
            return
        span_s, counts = self._scan_span_s, self._scan_counts
        rates = {n: float(c) / span_s for n, c in zip(self.scan_detectors, counts, strict=True)}
        self.send(CountRates(rates, span_s, "pixel counts"))
        self._last_sent_wall = now
        self._scan_counts, self._scan_span_s = None, 0.0
