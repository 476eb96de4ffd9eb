"""Clocks: every wait in hbtscope goes through ``setup.clock``.

Real hardware uses :class:`WallClock`. The simulated microscope uses a :class:`VirtualClock`
whose time is kept in integer picoseconds (the time tagger's unit) and which runs

* ``mode="fast"``: as fast as possible; ``sleep(s)`` advances virtual time at once (CI, demo);
* ``mode="realtime"``: virtual time follows the wall clock;
* ``mode="scaled"`` with ``speed=N``: virtual time runs N× faster than the wall clock.

The same procedure code runs on both: it only ever calls ``clock.now()`` and ``clock.sleep(s)``.
"""

from __future__ import annotations

import threading
import time
from typing import Literal, Protocol

from hbtscope.units import PS_PER_S

ClockMode = Literal["fast", "realtime", "scaled"]


class Clock(Protocol):
    """What procedures may call on a clock."""

    def now(self) -> float:
        """Seconds since the clock's epoch."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""


class WallClock:
    """The real wall clock (monotonic), for real hardware."""

    is_virtual = False

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self._t0

    def now_ps(self) -> int:
        return int(round(self.now() * PS_PER_S))

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def __repr__(self) -> str:
        return "WallClock()"


class VirtualClock:
    """Simulated time in integer picoseconds; see the module docstring for the modes.

    ``speed`` is the ratio virtual/wall time in ``scaled`` mode (``realtime`` is ``speed=1``).
    Thread-safe: the GUI thread may read ``now()`` while a procedure thread sleeps.
    """

    is_virtual = True

    def __init__(self, mode: ClockMode = "fast", speed: float = 1.0) -> None:
        if mode not in ("fast", "realtime", "scaled"):
            raise ValueError(f"clock mode must be 'fast', 'realtime' or 'scaled', not {mode!r}")
        if mode == "realtime":
            speed = 1.0
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0, not {speed!r}")
        self.mode: ClockMode = mode
        self.speed = float(speed)
        self._lock = threading.Lock()
        self._t_ps = 0  # virtual time at the last anchor
        self._wall_anchor = time.monotonic()

    def _now_ps_locked(self) -> int:
        if self.mode == "fast":
            return self._t_ps
        elapsed = time.monotonic() - self._wall_anchor
        return self._t_ps + int(elapsed * self.speed * PS_PER_S)

    def now_ps(self) -> int:
        """Virtual time in picoseconds."""
        with self._lock:
            return self._now_ps_locked()

    def now(self) -> float:
        return self.now_ps() / PS_PER_S

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.mode == "fast":
            with self._lock:
                self._t_ps += int(round(seconds * PS_PER_S))
            return
        time.sleep(seconds / self.speed)

    def advance_to_ps(self, t_ps: int) -> None:
        """Wait until virtual time reaches ``t_ps`` (no-op if it already has)."""
        remaining = t_ps - self.now_ps()
        if remaining > 0:
            if self.mode == "fast":
                with self._lock:
                    self._t_ps = max(self._t_ps, t_ps)
            else:
                time.sleep(remaining / PS_PER_S / self.speed)

    def __repr__(self) -> str:
        return f"VirtualClock(mode={self.mode!r}, speed={self.speed})"
