"""The one stream of events of a run: a procedure publishes, subscribers consume.

A procedure never writes its run file: it publishes typed events on an :class:`EventStream`
and subscribers do the rest — :class:`hbtscope.storage.recorder.RunFileRecorder` writes the
HDF5 run file, the command line prints progress, and later the queue journal and the
dashboard's Qt signals listen to the same stream. What a live view shows and what lands in the
file are therefore the same objects. The model is bluesky's documents and callbacks; pymeasure's
``emit(topic, record)`` survives as :class:`Emitted`.

Order of a run: :class:`RunStarted` (parameters, setup, the instrument snapshot taken *after*
the procedure set the instruments), then any number of data events (:class:`TTTRInfo`,
:class:`TagsRecorded`, :class:`ArrayRecorded`, :class:`ArrayAppended`, :class:`ValuesRecorded`,
:class:`TruthRecorded`), :class:`Progress` and :class:`Emitted`, then :class:`AnalysisResult`
(from the measurement's ``analyse(run)``) and :class:`RunEnded` (status, error, the final
snapshot). This module imports only the standard library and numpy, so storage, procedures
and the GUI can all use it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class RunStarted:
    """A run begins: what it is, how it was asked for, and the instruments as it starts."""

    procedure: str
    parameters: Mapping[str, Any]
    units: Mapping[str, str] = field(default_factory=dict)
    setup_text: str = ""
    setup_path: str = ""
    snapshot: Mapping[str, Any] = field(default_factory=dict)
    calibrations: Mapping[str, Any] = field(default_factory=dict)
    queue_item_id: str = ""
    hbtscope_version: str = ""


@dataclass(frozen=True)
class TTTRInfo:
    """Resolution and channel names of the time tags that follow."""

    resolution_ps: float
    channel_map: Mapping[str, int]


@dataclass(frozen=True)
class TagsRecorded:
    """A chunk of time tags (int64 ps, time-ordered) with their channels."""

    timestamps_ps: np.ndarray
    channels: np.ndarray


@dataclass(frozen=True)
class ArrayRecorded:
    """A named array of raw or accumulated data (``data/<name>`` in the run file)."""

    name: str
    data: np.ndarray
    units: str | None = None


@dataclass(frozen=True)
class ArrayAppended:
    """One more row of a growing array (``data/<name>``, extended along its first axis): e.g.
    one camera frame of a video. ``data`` is the row (a frame: (ny, nx)); rows of one name
    share shape and dtype. Streams data that must not sit in memory until the run ends."""

    name: str
    data: np.ndarray
    units: str | None = None


@dataclass(frozen=True)
class ValuesRecorded:
    """Named scalars describing the acquisition (``data/<name>`` attributes in the run file),
    e.g. the time actually acquired and the tags lost to overflows."""

    name: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class TruthRecorded:
    """Simulator ground truth of what the run looked at (``truth/``)."""

    values: Mapping[str, Any]


@dataclass(frozen=True)
class Progress:
    """How far the run is, in percent."""

    percent: float


@dataclass(frozen=True)
class Emitted:
    """A pymeasure ``emit(topic, record)`` call (e.g. ``results`` rows for a live plot)."""

    topic: str
    record: Any


@dataclass(frozen=True)
class AnalysisResult:
    """The measurement's analysis of the run (``analysis/<name>``): values, their
    uncertainties (stored as ``<key>_err``) and arrays."""

    name: str
    values: Mapping[str, Any]
    errors: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunEnded:
    """The run is over: ``finished``, ``aborted`` or ``failed`` (with ``error``)."""

    status: str
    error: str = ""
    snapshot: Mapping[str, Any] = field(default_factory=dict)


Event = (
    RunStarted
    | TTTRInfo
    | TagsRecorded
    | ArrayRecorded
    | ArrayAppended
    | ValuesRecorded
    | TruthRecorded
    | Progress
    | Emitted
    | AnalysisResult
    | RunEnded
)
Subscriber = Callable[[Any], None]

log = logging.getLogger(__name__)


class EventStream:
    """Publish events to every subscriber, in the order they subscribed.

    A *critical* subscriber (the run file) that raises stops the publication and the exception
    reaches the publisher: the writer failing must stop the run, not lose data silently. A
    non-critical one (a display) that raises is logged and dropped; the run goes on.
    """

    def __init__(self) -> None:
        self._subscribers: list[tuple[Subscriber, bool]] = []
        self._lock = threading.RLock()

    def subscribe(self, subscriber: Subscriber, *, critical: bool = True) -> Callable[[], None]:
        """Add ``subscriber`` (called with each event); returns a function that removes it."""
        entry = (subscriber, critical)
        with self._lock:
            self._subscribers.append(entry)

        def unsubscribe() -> None:
            with self._lock:
                if entry in self._subscribers:
                    self._subscribers.remove(entry)

        return unsubscribe

    def publish(self, event: Any) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for entry in subscribers:
            subscriber, critical = entry
            try:
                subscriber(event)
            except Exception:
                if critical:
                    raise
                log.exception("event subscriber %r failed; it receives no more events", subscriber)
                with self._lock:
                    if entry in self._subscribers:
                        self._subscribers.remove(entry)
