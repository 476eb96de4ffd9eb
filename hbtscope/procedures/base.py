"""What every hbtscope procedure shares on top of pymeasure's ``Procedure``.

A procedure is given a :class:`~hbtscope.setup.Setup` (``self.setup``) and a run-file writer
(``self.writer``) by :func:`hbtscope.procedures.runner.run_procedure` (or the queue, or the GUI);
it waits only through ``self.setup.clock`` and never imports the GUI.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pymeasure.experiment import Procedure


class AbortRequested(Exception):
    """Raised inside a procedure when the user asked it to stop; the run ends 'aborted'."""


class HbtProcedure(Procedure):
    """Base class: name, units of each parameter, and stop handling."""

    NAME: ClassVar[str] = ""
    DATA_COLUMNS: ClassVar[list[str]] = []

    setup: Any = None
    writer: Any = None

    def parameter_units(self) -> dict[str, str]:
        units = {}
        for name, p in self._parameters.items():
            unit = getattr(p, "units", None)
            if unit:
                units[name] = unit
        return units

    def check_stop(self) -> None:
        """Raise :class:`AbortRequested` if the user asked to stop."""
        try:
            stop = self.should_stop()
        except NotImplementedError:
            stop = False
        if stop:
            raise AbortRequested("stopped by the user")

    def progress(self, percent: float) -> None:
        self.emit("progress", float(min(100.0, max(0.0, percent))))

    def move_if_given(self, x_um: float, y_um: float, z_um: float) -> None:
        """Move the stage to the coordinates that are given (NaN: stay)."""
        given = [None if (v is None or math.isnan(v)) else v for v in (x_um, y_um, z_um)]
        if any(v is not None for v in given):
            self.setup.stage.move_to(*given)
