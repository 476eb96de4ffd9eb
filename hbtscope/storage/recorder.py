"""The run file as a subscriber of a run's event stream (:mod:`hbtscope.events`).

:class:`RunFileRecorder` turns each event into the matching :class:`RunWriter` call: the file
is created at :class:`~hbtscope.events.RunStarted` (with the instrument snapshot taken after
the procedure set the instruments), data events are appended, the analysis is written at
:class:`~hbtscope.events.AnalysisResult`, and :class:`~hbtscope.events.RunEnded` stores the
final snapshot (``setup/snapshot_end``) and closes the file with the run's status.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

from hbtscope import events as ev
from hbtscope.storage import layout as L
from hbtscope.storage.runfile import RunWriter


class RunFileRecorder:
    """Write one run file from one run's events. Call it with each event."""

    def __init__(self, path: str | os.PathLike, *, flush_interval_s: float = 1.0):
        self.path = pathlib.Path(path)
        self.flush_interval_s = flush_interval_s
        self.writer: RunWriter | None = None

    @property
    def started(self) -> bool:
        return self.writer is not None

    def flush(self) -> None:
        """Everything received so far to disk (readable by :func:`~hbtscope.storage.open_run`)."""
        if self.writer is not None and not self.writer.closed:
            self.writer.flush()

    def __call__(self, event: Any) -> None:
        if isinstance(event, ev.RunStarted):
            if self.writer is not None:
                raise RuntimeError(f"{self.path}: a second RunStarted for one run file")
            self.writer = RunWriter(
                self.path,
                event.procedure,
                dict(event.parameters),
                units=dict(event.units),
                setup_text=event.setup_text,
                setup_path=event.setup_path,
                snapshot=dict(event.snapshot),
                calibrations=dict(event.calibrations),
                queue_item_id=event.queue_item_id,
                hbtscope_version=event.hbtscope_version,
                flush_interval_s=self.flush_interval_s,
            )
            return
        w = self.writer
        if w is None:
            if isinstance(event, ev.Progress | ev.Emitted):
                return
            raise RuntimeError(f"{self.path}: {type(event).__name__} before RunStarted")
        if isinstance(event, ev.TagsRecorded):
            w.append_tags(event.timestamps_ps, event.channels)
        elif isinstance(event, ev.TTTRInfo):
            w.set_tttr_info(resolution_ps=event.resolution_ps, channel_map=dict(event.channel_map))
        elif isinstance(event, ev.ArrayRecorded):
            w.write_array(event.name, event.data, units=event.units)
        elif isinstance(event, ev.ArrayAppended):
            w.append_array(event.name, event.data, units=event.units)
        elif isinstance(event, ev.ValuesRecorded):
            w.write_values(event.name, dict(event.values))
        elif isinstance(event, ev.TruthRecorded):
            w.write_truth(dict(event.values))
        elif isinstance(event, ev.AnalysisResult):
            w.write_analysis(event.name, dict(event.values), errors=dict(event.errors))
        elif isinstance(event, ev.RunEnded):
            if event.snapshot:
                w.write_snapshot(dict(event.snapshot), group=L.SNAPSHOT_END)
            w.finish(event.status, error=event.error)
