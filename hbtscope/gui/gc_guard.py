"""Python's garbage collector runs in the GUI thread only, while the dashboard is open.

The collector runs in whichever thread happens to allocate when a generation's threshold is
crossed: a run's worker thread, the run browser's loader. If it then frees a Qt object of a
closed view (a pyqtgraph ``ViewBox`` in a reference cycle), Qt is called from the wrong
thread and the process crashes (seen in the dashboard's tests: a segmentation fault inside a
``ViewBox`` callback while the run browser drew a figure in its thread). As pyqtgraph
recommends, automatic collection is switched off and a timer in the GUI thread collects,
generation by generation, whenever the thresholds are crossed
(``pyqtgraph.GarbageCollector``). Reference counting still frees everything that is not in a
cycle at once, in any thread.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from pyqtgraph.util.garbage_collector import GarbageCollector


@contextmanager
def collect_in_gui_thread(interval_s: float = 1.0) -> Iterator[None]:
    """While open, cycles are collected only by a timer of the calling (GUI) thread; after,
    automatic collection is back as it was, and one full collection runs here."""
    was_enabled = gc.isenabled()
    collector = GarbageCollector(interval=interval_s)
    try:
        yield
    finally:
        collector.timer.stop()
        gc.collect()
        if was_enabled:
            gc.enable()
