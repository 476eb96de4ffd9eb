"""Laser power as a multiple of the current emitter's P_sat (instrument panel).

The emitter list is the data directory's emitter book (``<data_dir>/emitters/``, where a
saturation sweep with an ``emitter`` name records its P_sat); the set point is resolved as the
g2 measurement does (:func:`hbtscope.procedures.saturation.power_at_p_sat`: the sweep's laser
power law, its repetition rate). Everything here runs in the device worker, never in the GUI
thread: the book is a file read, the laser a device call.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from PyQt5.QtWidgets import QComboBox

from hbtscope.procedures.saturation import power_at_p_sat
from hbtscope.storage.emitter_book import EmitterBook, EmitterBookError


class EmitterChoice(QComboBox):
    """The emitters of the book, re-read each time the list is opened."""

    def __init__(self, data_dir: str | Path):
        super().__init__()
        self.setObjectName("laser-emitter")
        self.book = EmitterBook(data_dir)
        self.reload()

    def reload(self) -> None:
        current = self.currentText()
        try:
            names = self.book.names()
        except OSError:
            names = []
        self.clear()
        self.addItems(names)
        if current in names:
            self.setCurrentText(current)

    def showPopup(self) -> None:  # noqa: N802 - Qt's name
        self.reload()
        super().showPopup()


def set_power_in_p_sat(laser: Any, book: EmitterBook, emitter: str, factor: float) -> float:
    """Set ``laser`` to ``factor`` x P_sat of ``emitter``; the set point in W.

    Raises :class:`EmitterBookError` (or ``ValueError``) with the message to show: no emitter,
    no saturation result, a sweep at another repetition rate, or a set point beyond the
    laser's ``max_power_W``.
    """
    if not emitter:
        raise EmitterBookError("choose an emitter (the emitter book has none yet)")
    if not (math.isfinite(factor) and factor >= 0):
        raise ValueError(f"× P_sat must be a finite number ≥ 0, not {factor}")
    resolved = power_at_p_sat(book, emitter, factor, float(laser.rep_rate_Hz))
    power_W = resolved.set_point_W
    if power_W > laser.max_power_W:
        raise ValueError(
            f"{factor:g} × P_sat of {emitter} is {power_W:.4g} W, above the laser's "
            f"max_power_W = {laser.max_power_W:g} W"
        )
    laser.power_W = power_W
    return power_W
