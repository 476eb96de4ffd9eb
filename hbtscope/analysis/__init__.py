"""Pure analysis layer (numpy/scipy/numba only): what a scientist calls from a notebook on
data from any instrument, and what every procedure calls.

No I/O, no GUI and no dependency on other hbtscope subpackages (only on the leaf module of
constants ``hbtscope.units``). Modules:

- ``correlation``: linear-bin cross-correlation of tag streams (``correlate``), streaming;
- ``correlation_log``: log-binned correlation 10 ns – 1 s, normalised g2 (Laurence 2006 style);
- ``g2``: pulsed g2(0) from peak areas (Pierini et al., D'Amato et al.); ``hbt_delays``: zero
  delay and breakdown-flash crosstalk peaks of an HBT histogram; ``g2_cw``: CW antibunching fit
  with IRF (Baronnier et al.); ``g2_long``: blinking bunching at long delays (D'Amato et al.
  Fig. 4d);
- ``decay_model``: the decay model (exponentials (x) IRF, periodic wrap, background), with
  ``irf`` (the Gaussian IRF) and ``_poisson_ml`` (the Poisson maximum-likelihood engine);
- ``lifetime``: TCSPC histograms and the one decay fit ``fit_decay``; ``mean_arrival``: the
  mean-arrival-time estimators;
- ``flim``: per-pixel lifetime maps (the same model and engine, all pixels in parallel);
- ``blinking`` (package: ``trace``, ``on_off``, ``change_points``, ``levels``), ``flid``:
  intensity traces, ON fraction, change points, intensity levels, FLID (Pierini et al.,
  D'Amato et al.);
- ``saturation``: D'Amato et al. eq. 1; ``spectra``: CEW/FWHM, series, blue-shift;
- ``images`` (package: ``refocus``, ``spots``, ``survival``, ``registration``): Gaussian
  refocus fits, emitter finding, survival curves, drift registration;
- ``polarisation``: Malus fit and DOLP (Farrow et al.).
"""

from hbtscope.analysis.blinking import (
    ChangePointResult,
    LevelsResult,
    OnFraction,
    TwoLevelFit,
    change_points,
    cluster_levels,
    cpa_critical_value,
    intensity_histogram,
    intensity_trace,
    mean_arrival_time_per_bin,
    on_fraction,
    photons_in_windows,
    two_level_fit,
    window_mask,
)
from hbtscope.analysis.correlation import CorrelationAccumulator, correlate
from hbtscope.analysis.correlation_log import (
    LogCorrelationAccumulator,
    correlate_log,
    expected_pairs,
    g2_log,
    g2_log_variance,
    log_edges,
    tau_centres,
)
from hbtscope.analysis.counting import poisson_interval
from hbtscope.analysis.decay_model import decay_deviance, decay_expectation
from hbtscope.analysis.flid import FLIDResult, contour_lines, flid
from hbtscope.analysis.flim import FlimResult, flim_fit, gaussian_irf, mean_arrival_lifetime
from hbtscope.analysis.g2 import BACKGROUND_METHODS, G2PulsedResult, g2_pulsed
from hbtscope.analysis.g2_cw import G2CWResult, g2_cw_fit, g2_cw_model
from hbtscope.analysis.g2_long import G2LongResult, g2_long_delays
from hbtscope.analysis.hbt_delays import (
    CrosstalkPeaks,
    ZeroDelay,
    find_crosstalk_peaks,
    find_zero_delay,
)
from hbtscope.analysis.images import (
    EMITTER_DTYPE,
    Gaussian1DFit,
    Gaussian2DFit,
    RegisteredSum,
    SurvivalCounts,
    SurvivalCurve,
    auto_threshold,
    count_surviving,
    drift_by_cross_correlation,
    estimate_background,
    find_emitters,
    gaussian1d_fit,
    gaussian2d_fit,
    register_and_sum,
    survival_curve,
)
from hbtscope.analysis.lifetime import DecayFitResult, decay_histogram, fit_decay, photon_delays
from hbtscope.analysis.mean_arrival import (
    histogram_mean_delay,
    lifetime_from_mean,
    mean_arrival_time,
)
from hbtscope.analysis.polarisation import MalusResult, malus_fit, malus_model
from hbtscope.analysis.saturation import (
    SaturationResult,
    intensity_from_power,
    saturation_fit,
    saturation_model,
)
from hbtscope.analysis.spectra import (
    PopulationResult,
    SeriesResult,
    SpectrumResult,
    cew_fwhm,
    line_model,
    population_stats,
    remove_cosmic_rays,
    spectrum_series,
)

__all__ = [
    "g2_cw_model",
    "poisson_interval",
    "CrosstalkPeaks",
    "ZeroDelay",
    "find_crosstalk_peaks",
    "find_zero_delay",
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
    "two_level_fit",
    "window_mask",
    "FLIDResult",
    "contour_lines",
    "flid",
    "MalusResult",
    "malus_fit",
    "malus_model",
    "SaturationResult",
    "intensity_from_power",
    "saturation_fit",
    "saturation_model",
    "PopulationResult",
    "SeriesResult",
    "SpectrumResult",
    "cew_fwhm",
    "line_model",
    "population_stats",
    "remove_cosmic_rays",
    "spectrum_series",
    "BACKGROUND_METHODS",
    "EMITTER_DTYPE",
    "CorrelationAccumulator",
    "DecayFitResult",
    "FlimResult",
    "G2CWResult",
    "G2LongResult",
    "G2PulsedResult",
    "Gaussian1DFit",
    "Gaussian2DFit",
    "LogCorrelationAccumulator",
    "RegisteredSum",
    "SurvivalCounts",
    "SurvivalCurve",
    "auto_threshold",
    "correlate",
    "correlate_log",
    "count_surviving",
    "decay_deviance",
    "decay_expectation",
    "decay_histogram",
    "drift_by_cross_correlation",
    "estimate_background",
    "expected_pairs",
    "find_emitters",
    "fit_decay",
    "flim_fit",
    "g2_cw_fit",
    "g2_log",
    "g2_log_variance",
    "g2_long_delays",
    "g2_pulsed",
    "gaussian1d_fit",
    "gaussian2d_fit",
    "gaussian_irf",
    "histogram_mean_delay",
    "lifetime_from_mean",
    "log_edges",
    "mean_arrival_lifetime",
    "mean_arrival_time",
    "photon_delays",
    "register_and_sum",
    "survival_curve",
    "tau_centres",
]
