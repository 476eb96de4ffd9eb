"""What a measurement's live view draws, declared without Qt (the GUI renders it).

A measurement module lists its panels in ``Measurement(..., live_plots=(LivePlot(...), ...))``;
``hbtscope.gui.live_plots`` lays out one panel per entry and feeds it from the run's events.
A measurement without a declaration gets the generic live view. Sources are named as the run
publishes them:

* ``"rows:<column>"``: a column of the ``results`` rows the procedure emits;
* any other name: the latest array published under that name (``publish_array``), e.g.
  ``"saturation/power_W"``. A 2-D array is drawn as an image. A name ending in ``/*`` is the
  latest array published under that prefix (``"spectrum_series/spectra/*"``: the newest
  spectrum); with ``stack=True`` all of them, one row each, drawn as an image (a drift map).

``fit(values, x)`` is a pure function of the analysis values (``AnalysisResult.values``) and
the x of the panel; it returns the model's y, drawn over the data once the analysis is there.
``fit_points=(x_key, y_key)`` names two arrays of the analysis values: the points the fit used
(after its own reduction, e.g. the maximum of repeats), drawn as open circles with the fit;
``band=(lower_key, upper_key)`` its interval, dashed. ``y=""``: a panel of analysis arrays only
(drawn at the end of the run, e.g. a survival curve computed from the whole video).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

Fit = Callable[[Mapping[str, Any], np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LivePlot:
    """One panel: ``y`` against ``x`` (``None``: the index), optionally log y and a fit."""

    title: str
    y: str
    x: str | None = None
    x_label: str = ""
    y_label: str = ""
    log_y: bool = False
    fit: Fit | None = None
    fit_points: tuple[str, str] | None = None
    stack: bool = False
    #: two arrays of the analysis values drawn dashed around ``fit_points`` (an interval)
    band: tuple[str, str] | None = None
    #: the histogram of the y values (an intensity histogram) instead of y against x
    histogram: bool = False
    #: a symbol at each point (False: a line only, for a spectrum's 1000 pixels)
    points: bool = True
    #: a line through the points (False: a scatter, e.g. a FLID's points per read-out)
    line: bool = True


def rows_column(name: str) -> str | None:
    """The results column a source names (``"rows:rate_cps"`` -> ``"rate_cps"``), else None."""
    return name.removeprefix("rows:") if name.startswith("rows:") else None
