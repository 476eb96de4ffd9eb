"""One TTTR acquisition of the two HBT detectors, correlated as it streams (shared by the g2
measurements; the registry skips ``_`` modules).

The Swabian ``TimeTagStream`` of the two SPAD channels runs for ``duration_s``; every
``readout_s`` its buffer is read, overflow events are counted and dropped (photons only), the
tags are published (if recorded) and added to a :class:`CorrelationAccumulator`. A stop request
ends the stream early (``aborted``); a buffer that fills up between two reads is an error (the
count rate is too high for the read-out interval).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hbtscope.analysis import CorrelationAccumulator
from hbtscope.analysis.tag_split import split_pair
from hbtscope.procedures.base import AbortRequested
from hbtscope.units import PS_PER_S

#: tags the stream buffers between two reads
STREAM_BUFFER_TAGS = 4_000_000


@dataclass
class PairTotals:
    """What one acquisition has recorded so far (valid also after an error or a stop)."""

    counts_a: int = 0
    counts_b: int = 0
    overflow_missed: int = 0
    elapsed_s: float = 0.0
    first_ps: int = -1
    last_ps: int = -1
    aborted: bool = False


def acquire_pair(
    proc: Any,
    acc: CorrelationAccumulator,
    duration_s: float,
    totals: PairTotals,
    *,
    readout_s: float,
    record_tags: bool,
    on_read: Callable[[PairTotals], None] | None = None,
) -> PairTotals:
    """Record ``duration_s`` of the two SPADs of ``proc.setup`` into ``acc`` and ``totals``
    (``on_read(totals)`` after every read: progress, live results)."""
    tagger = proc.setup.tagger
    ch_a, ch_b = tagger.spad_channels
    stream = tagger.api.TimeTagStream(tagger.device, STREAM_BUFFER_TAGS, [ch_a, ch_b])
    stream.startFor(int(round(duration_s * PS_PER_S)))
    try:
        while True:
            # the rest of the acquisition; a rounding rest (< 1 µs: the clock would sleep
            # 0 ps and the stream never end) waits a whole read-out interval
            left = duration_s - totals.elapsed_s
            proc.setup.clock.sleep(min(readout_s, left) if left > 1e-6 else readout_s)
            running = stream.isRunning()
            buf = stream.getData()
            if buf.size >= STREAM_BUFFER_TAGS:
                raise RuntimeError(
                    "time tag stream buffer overflowed: count rate too high for the "
                    f"read-out interval {readout_s} s"
                )
            types, ts, ch = buf.getEventTypes(), buf.getTimestamps(), buf.getChannels()
            time_tag = int(tagger.api.TagType.TimeTag)
            a, b = split_pair(ts, ch, types, ch_a, ch_b, time_tag)
            if a.size + b.size < ts.size:  # overflow events: photons only, note the loss
                totals.overflow_missed += int(buf.getMissedEvents().sum())
            if a.size + b.size:
                first = min(a[0] if a.size else b[0], b[0] if b.size else a[0])
                last = max(a[-1] if a.size else b[-1], b[-1] if b.size else a[-1])
                totals.first_ps = int(first) if totals.first_ps < 0 else totals.first_ps
                totals.last_ps = int(last)
                if record_tags:
                    real = types == time_tag
                    proc.publish_tags(ts[real], ch[real])
            totals.counts_a += int(a.size)
            totals.counts_b += int(b.size)
            acc.add(a, b)
            totals.elapsed_s += (buf.tGetData - buf.tStart) / PS_PER_S
            if on_read is not None:
                on_read(totals)
            if not running:
                break
            proc.check_stop()
    except AbortRequested:
        stream.stop()
        totals.aborted = True
    return totals
