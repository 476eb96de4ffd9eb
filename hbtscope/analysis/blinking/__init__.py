"""Blinking analysis of a photon stream: intensity trace, ON fraction, change points.

Everything works on photon time tags in picoseconds (``t_ps``, sorted ascending, int64
from a time tagger or float). Functions:

* :func:`intensity_trace` / :func:`intensity_histogram` -- binned trace (D'Amato et al. Fig. 4a:
  10 ms bins; Pierini et al. Fig. 5a: 50 ms) and its histogram of counts per bin.
* :func:`on_fraction` -- fraction of bins above a threshold; ``threshold="auto"`` places it
  midway between the levels of a fitted two-level model (see :func:`two_level_fit`).
* :func:`change_points` -- Watkins & Yang (J. Phys. Chem. B 109, 617 (2005)) change-point
  analysis on the individual arrival times, with :func:`cluster_levels` for the number of
  intensity states.
* :func:`mean_arrival_time_per_bin` -- mean delay after the laser sync per bin (the lifetime
  axis of a FLID, D'Amato et al. SI VI), :func:`window_mask` / :func:`photons_in_windows` to pick
  the photons of high- or low-intensity windows (D'Amato et al. Fig. 4b).

One module per job: :mod:`.trace` (trace, histogram, mean delay per bin), :mod:`.on_off`
(two-level fit, ON fraction, windows), :mod:`.change_points` (Watkins & Yang test and its
critical values), :mod:`.levels` (clustering of the segments into intensity states); each
module's docstring describes its method.
"""

from hbtscope.analysis.blinking.change_points import (
    ChangePointResult,
    change_points,
    cpa_critical_value,
    simulate_cpa_null,
)
from hbtscope.analysis.blinking.levels import LevelsResult, cluster_levels
from hbtscope.analysis.blinking.on_off import (
    OnFraction,
    TwoLevelFit,
    on_fraction,
    photons_in_windows,
    two_level_fit,
    two_level_nll,
    window_mask,
)
from hbtscope.analysis.blinking.trace import (
    intensity_histogram,
    intensity_trace,
    mean_arrival_time_per_bin,
)

__all__ = [
    "ChangePointResult",
    "LevelsResult",
    "OnFraction",
    "TwoLevelFit",
    "change_points",
    "cluster_levels",
    "cpa_critical_value",
    "intensity_histogram",
    "intensity_trace",
    "mean_arrival_time_per_bin",
    "on_fraction",
    "photons_in_windows",
    "simulate_cpa_null",
    "two_level_fit",
    "two_level_nll",
    "window_mask",
]
