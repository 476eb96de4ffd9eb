"""The scan clock (role ``daq``): a hardware-timed raster.

An NI-DAQ-style card drives the stage's analogue inputs from a buffered waveform on a sample
clock and sends one TTL pixel marker per pixel (and one at the end) into a time-tagger input,
so counts and TCSPC histograms can be gated per pixel in the tagger (``CountBetweenMarkers``,
``TimeDifferences``) with no software timing in the loop.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any

import numpy as np

from hbtscope.instruments.base import Instrument, LimitError


class ScanClock(Instrument):
    """Load a raster (positions per pixel and a dwell), start it, wait for it."""

    role = "daq"

    def __init__(
        self,
        travel_um: dict[str, tuple[float, float]],
        min_dwell_s: float = 1e-6,
        max_pixels: int = 4_000_000,
    ):
        self.travel_um = travel_um
        self.min_dwell_s = min_dwell_s
        self.max_pixels = max_pixels
        self._loaded: tuple[np.ndarray, float, int | None] | None = None

    def load_raster(
        self, xyz_um: np.ndarray, dwell_s: float, marker_channel: int | None = None
    ) -> None:
        """Positions (n_pixels, 3) in µm visited for ``dwell_s`` each, in order.

        Checked against the stage travel and the clock's limits before anything moves."""
        xyz = np.asarray(xyz_um, dtype=float)
        if xyz.ndim != 2 or xyz.shape[1] != 3 or xyz.shape[0] == 0:
            raise LimitError(f"raster must be an (n_pixels, 3) array of µm, got shape {xyz.shape}")
        if xyz.shape[0] > self.max_pixels:
            raise LimitError(f"{xyz.shape[0]} pixels exceed the buffer of {self.max_pixels}")
        if not (math.isfinite(dwell_s) and dwell_s >= self.min_dwell_s):
            raise LimitError(f"dwell {dwell_s!r} s below the minimum {self.min_dwell_s} s")
        if not np.all(np.isfinite(xyz)):
            raise LimitError("raster positions must be finite")
        for i, axis in enumerate(("x", "y", "z")):
            lo, hi = self.travel_um.get(axis, (-math.inf, math.inf))
            if xyz[:, i].min() < lo or xyz[:, i].max() > hi:
                raise LimitError(
                    f"raster {axis} spans [{xyz[:, i].min()}, {xyz[:, i].max()}] µm, outside "
                    f"the stage travel [{lo}, {hi}] µm"
                )
        self._loaded = (xyz, float(dwell_s), marker_channel)

    @abstractmethod
    def start(self) -> float:
        """Start the loaded raster; returns the time (setup clock, s) of the first pixel."""

    @abstractmethod
    def is_done(self) -> bool: ...

    @abstractmethod
    def wait_done(self) -> None: ...

    @abstractmethod
    def stop(self) -> None: ...

    def snapshot(self) -> dict[str, Any]:
        if self._loaded is None:
            return {"loaded_pixels": 0}
        xyz, dwell, marker = self._loaded
        return {
            "loaded_pixels": int(xyz.shape[0]),
            "dwell_s": dwell,
            "marker_channel": -1 if marker is None else int(marker),
        }
