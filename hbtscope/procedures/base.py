"""What every hbtscope measurement shares: the declaration of a measurement module and the
procedure base class on top of pymeasure's ``Procedure``.

A measurement is one module that declares ``MEASUREMENT = Measurement(...)``: its pymeasure
``Procedure`` (``None`` for a kind of run that is imported, not measured), a pure
``analyse(run) -> AnalysisOutput`` that reads only the run file (an open h5py file) and calls
:mod:`hbtscope.analysis`, and ``figure(run, path)`` drawn from the run file alone.
:mod:`hbtscope.procedures.registry` discovers them (docs/adding-a-measurement.md).

A procedure is given a :class:`~hbtscope.setup.Setup` (``self.setup``) and an event stream
(``self.events``) by :func:`hbtscope.procedures.runner.run_procedure` (or the queue, or the
GUI). It waits only through ``self.setup.clock``, publishes what it measures as events
(:meth:`publish_tags`, :meth:`publish_array`, ...) and never writes a file nor imports the GUI.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pymeasure.experiment import Procedure

from hbtscope import events as ev


class AbortRequested(Exception):
    """Raised inside a procedure when the user asked it to stop; the run ends 'aborted'."""


@dataclass(frozen=True)
class AnalysisOutput:
    """What ``analyse(run)`` returns: ``analysis/<name>`` values and their uncertainties,
    and ``summary``, the handful of numbers the command line prints (JSON-ready)."""

    name: str
    values: Mapping[str, Any]
    errors: Mapping[str, Any] = field(default_factory=dict)
    summary: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Measurement:
    """One measurement (or imported kind of run): its name in run files and on the command
    line, its procedure class, its analysis and its figure."""

    name: str
    procedure: type[HbtProcedure] | None
    analyse: Callable[[Any], AnalysisOutput]
    figure: Callable[[Any, Path], Path | None] | None = None
    doc: str = ""

    def describe(self) -> str:
        text = self.doc or (self.procedure.__doc__ if self.procedure else "") or ""
        return text.strip().splitlines()[0] if text.strip() else self.name


class HbtProcedure(Procedure):
    """Base class: name, units of each parameter, stop handling, publishing events."""

    NAME: ClassVar[str] = ""
    DATA_COLUMNS: ClassVar[list[str]] = []

    setup: Any = None
    events: ev.EventStream | None = None

    def parameter_units(self) -> dict[str, str]:
        units = {}
        for name, p in self._parameters.items():
            unit = getattr(p, "units", None)
            if unit:
                units[name] = unit
        return units

    # --- events -------------------------------------------------------------------------

    def publish(self, event: Any) -> None:
        """Hand ``event`` to every subscriber of the run (nothing without a stream)."""
        if self.events is not None:
            self.events.publish(event)

    def publish_tags(self, timestamps_ps: np.ndarray, channels: np.ndarray) -> None:
        self.publish(ev.TagsRecorded(timestamps_ps, channels))

    def publish_tttr_info(self, resolution_ps: float, channel_map: Mapping[str, int]) -> None:
        self.publish(ev.TTTRInfo(resolution_ps, dict(channel_map)))

    def publish_array(self, name: str, data: np.ndarray, units: str | None = None) -> None:
        self.publish(ev.ArrayRecorded(name, np.asarray(data), units))

    def publish_values(self, name: str, values: Mapping[str, Any]) -> None:
        self.publish(ev.ValuesRecorded(name, dict(values)))

    def publish_truth(self, values: Mapping[str, Any]) -> None:
        self.publish(ev.TruthRecorded(dict(values)))

    def check_stop(self) -> None:
        """Raise :class:`AbortRequested` if the user asked to stop."""
        try:
            stop = self.should_stop()
        except NotImplementedError:
            stop = False
        if stop:
            raise AbortRequested("stopped by the user")

    def progress(self, percent: float) -> None:
        """Publish the progress (and pymeasure's ``emit('progress', ...)``)."""
        self.publish(ev.Progress(float(min(100.0, max(0.0, percent)))))

    def move_if_given(self, x_um: float, y_um: float, z_um: float) -> None:
        """Move the stage to the coordinates that are given (NaN: stay)."""
        given = [None if (v is None or math.isnan(v)) else v for v in (x_um, y_um, z_um)]
        if any(v is not None for v in given):
            self.setup.stage.move_to(*given)
