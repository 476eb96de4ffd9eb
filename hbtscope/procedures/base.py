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
from pymeasure.experiment import FloatParameter, Procedure

from hbtscope import events as ev
from hbtscope.procedures.errors import ParameterError


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
    #: for a measurement that finds emitters (a scan): ``emitters(run)`` lists them from its
    #: run file as dicts with ``x_um``, ``y_um`` (``z_um``, ``brightness_cps``, ``snr``);
    #: the queue's ``foreach_emitter`` blocks run over them
    emitters: Callable[[Any], list[dict[str, float]]] | None = None
    #: the panels of its live view (:class:`~hbtscope.procedures.live_plots.LivePlot`);
    #: empty: the dashboard's generic view
    live_plots: tuple[Any, ...] = ()

    def describe(self) -> str:
        text = self.doc or (self.procedure.__doc__ if self.procedure else "") or ""
        return text.strip().splitlines()[0] if text.strip() else self.name


class HbtProcedure(Procedure):
    """Base class: name, units of each parameter, stop handling, publishing events."""

    NAME: ClassVar[str] = ""
    DATA_COLUMNS: ClassVar[list[str]] = []
    #: float parameters for which NaN has a meaning (e.g. "stay where the stage is"); every
    #: other float parameter must be finite
    NAN_MEANS: ClassVar[dict[str, str]] = {}

    setup: Any = None
    events: ev.EventStream | None = None
    #: the data directory's :class:`~hbtscope.storage.emitter_book.EmitterBook` (set by the
    #: runner before :meth:`validate`); a procedure with a non-empty ``emitter`` parameter has
    #: its finished result remembered there under the measurement's name
    book: Any = None

    def parameter_units(self) -> dict[str, str]:
        units = {}
        for name, p in self._parameters.items():
            unit = getattr(p, "units", None)
            if unit:
                units[name] = unit
        return units

    # --- validation, before anything is done ---------------------------------------------

    def _allowed(self, name: str) -> str:
        p = self._parameters[name]
        lo, hi = getattr(p, "minimum", None), getattr(p, "maximum", None)
        unit = getattr(p, "units", None) or ""
        return f"allowed [{lo}, {hi}] {unit}".rstrip()

    def fail(self, name: str, message: str) -> None:
        """Raise :class:`ParameterError` for parameter ``name`` with what is allowed."""
        value = getattr(self, name)
        raise ParameterError(f"{self.NAME}: {name} = {value!r} {message}")

    def validate(self, setup: Any) -> None:
        """Check every parameter against its own range and the setup's limits, before any
        hardware write and before the run file exists (:class:`ParameterError` otherwise).

        Here: every float parameter is finite (NaN only where :attr:`NAN_MEANS` gives it a
        meaning) and within its range; a measurement adds its cross-checks with the setup
        (laser power limit, stage travel, memory) in :meth:`check_setup`.
        """
        for name, p in self._parameters.items():
            value = getattr(self, name)
            if isinstance(p, FloatParameter) and isinstance(value, float):
                if math.isnan(value) and name in self.NAN_MEANS:
                    continue
                if not math.isfinite(value):
                    self.fail(name, f"is not a finite number ({self._allowed(name)})")
            lo, hi = getattr(p, "minimum", None), getattr(p, "maximum", None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                if (lo is not None and value < lo) or (hi is not None and value > hi):
                    self.fail(name, f"is out of range ({self._allowed(name)})")
        self.check_setup(setup)

    def check_setup(self, setup: Any) -> None:
        """Cross-checks of the parameters with the setup (override; raise via :meth:`fail`)."""

    def check_stage_target(self, setup: Any, **target_um: float) -> None:
        """The given (not NaN) stage coordinates lie within the stage's travel."""
        given = {a: v for a, v in target_um.items() if not math.isnan(v)}
        if not given:
            return
        travel = getattr(setup.stage, "travel_um", {})
        for name, value in given.items():
            lo, hi = travel.get(name.removesuffix("_um"), (-math.inf, math.inf))
            if not lo <= value <= hi:
                self.fail(name, f"is outside the stage travel [{lo}, {hi}] um of {setup.path}")

    def check_laser(self, setup: Any, power_W: str, rep_rate_Hz: str | None = None) -> None:
        """Power within the setup's ``max_power_W``, repetition rate within the laser's range."""
        laser = setup.laser
        max_W = float(getattr(laser, "max_power_W", math.inf))
        if getattr(self, power_W) > max_W:
            self.fail(power_W, f"exceeds the setup's max_power_W = {max_W} W ({setup.path})")
        if rep_rate_Hz is not None and getattr(laser, "rep_rate_range_Hz", None):
            lo, hi = laser.rep_rate_range_Hz
            if not lo <= getattr(self, rep_rate_Hz) <= hi:
                self.fail(rep_rate_Hz, f"is outside the laser's range [{lo}, {hi}] Hz")

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
