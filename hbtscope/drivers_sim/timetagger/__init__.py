"""A simulated Swabian Time Tagger with the Swabian Python API, on the simulated world.

Same names and signatures as the real SDK (``from Swabian import TimeTagger``), so procedure code
cannot tell the two apart: this package *is* the API module handed to the driver
(``setup.tagger.api``). ``createTimeTagger()``, ``freeTimeTagger()``, measurements that start
when constructed (``Countrate``, ``Counter``, ``Correlation``, ``Histogram``,
``HistogramLogBins``, ``TimeDifferences``, ``CountBetweenMarkers``, ``TimeTagStream``,
``FileWriter``) with ``start/startFor/stop/clear/isRunning/waitUntilFinished/
getCaptureDuration/getData``, ``SynchronizedMeasurements``, ``FileReader``; times are int64
picoseconds and histograms int32, as on the real device.

Time flows with the world's :class:`~hbtscope.clock.VirtualClock`: every call that needs data
first brings the tagger up to ``clock.now``; ``waitUntilFinished`` waits on that clock (instantly
in ``fast`` mode). Simulated hardware is "attached" with :func:`attach_world`, the way a real
tagger is plugged into USB; ``createTimeTagger(serial)`` then finds it.

One job per module: :mod:`.device` (the hardware: inputs, dead time, divider, FIFO and USB
overflows, the registry of attached taggers), :mod:`.base` (what every measurement shares, and
``SynchronizedMeasurements``), :mod:`.counting`, :mod:`.histograms` and :mod:`.streams` (the
measurements), :mod:`.fileio` (the file format), :mod:`._kernels` (their numba loops). This
file only re-exports the API surface.

Which of it production uses: the g2 procedure uses ``TimeTagStream``, the demo ``Countrate``;
the other measurements and ``FileWriter``/``FileReader`` are there for API completeness and
used by tests only (each says so in its docstring).

Simplifications against the real SDK are listed in each class's docstring; the main ones:
virtual channels, conditional filter, reference clock, ``Flim`` and gating (``click_gate``,
``start_gate``) are not simulated; ``FileWriter`` writes this package's own documented format
(:data:`FILE_FORMAT_VERSION`), not Swabian's ``.ttbin``.
"""

from __future__ import annotations

from hbtscope.drivers_sim.timetagger.base import SynchronizedMeasurements
from hbtscope.drivers_sim.timetagger.counting import (
    CountBetweenMarkers,
    Counter,
    CounterData,
    Countrate,
)
from hbtscope.drivers_sim.timetagger.device import (
    _DEVICES,
    _OPEN,
    CHANNEL_UNUSED,
    DEFAULT_BUFFER_TAGS,
    DEFAULT_MAX_RATE_TAGS_PER_S,
    DEFAULT_RESUME_FRACTION,
    ChannelEdge,
    Resolution,
    TagType,
    TimeTagger,
    attach_world,
    createTimeTagger,
    detach_world,
    freeTimeTagger,
    scanTimeTagger,
)
from hbtscope.drivers_sim.timetagger.fileio import (
    FILE_FORMAT_VERSION,
    FILE_MAGIC,
    FileReader,
    FileWriter,
)
from hbtscope.drivers_sim.timetagger.histograms import (
    Correlation,
    Histogram,
    HistogramLogBins,
    HistogramLogBinsData,
    TimeDifferences,
)
from hbtscope.drivers_sim.timetagger.streams import TimeTagStream, TimeTagStreamBuffer

__all__ = [
    "CHANNEL_UNUSED",
    "DEFAULT_BUFFER_TAGS",
    "DEFAULT_MAX_RATE_TAGS_PER_S",
    "DEFAULT_RESUME_FRACTION",
    "FILE_FORMAT_VERSION",
    "FILE_MAGIC",
    "ChannelEdge",
    "CountBetweenMarkers",
    "Counter",
    "CounterData",
    "Countrate",
    "Correlation",
    "FileReader",
    "FileWriter",
    "Histogram",
    "HistogramLogBins",
    "HistogramLogBinsData",
    "Resolution",
    "SynchronizedMeasurements",
    "TagType",
    "TimeDifferences",
    "TimeTagStream",
    "TimeTagStreamBuffer",
    "TimeTagger",
    "attach_world",
    "createTimeTagger",
    "detach_world",
    "freeTimeTagger",
    "scanTimeTagger",
    "_DEVICES",
    "_OPEN",
]
