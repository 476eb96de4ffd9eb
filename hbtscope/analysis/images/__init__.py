"""Image analysis: emitter finding, bleaching survival, drift registration, Gaussian fits.

Pure numpy/scipy (``scipy.ndimage``, ``scipy.optimize``); no I/O.

Coordinates
-----------
Pixel coordinates follow ``scipy.ndimage``: ``x`` is the column index, ``y`` the row index,
and the *centre* of pixel ``[i, j]`` is at ``(x, y) = (j, i)``. A position on a camera frame
rendered by :func:`hbtscope.drivers_sim.render.render_widefield_frame` with ``origin_um``
``(x0, y0)`` and pitch ``p`` is therefore ``x_um = x0 + (x + 0.5) * p`` (its origin is the outer
corner of pixel ``[0, 0]``). Shifts are ``(dy, dx)`` in pixels, in ``scipy.ndimage`` order.

One module per job: :mod:`.refocus` (Gaussian 1-D/2-D fits), :mod:`.spots` (background,
emitter finding), :mod:`.survival` (bleaching survival), :mod:`.registration` (drift); each
module's docstring describes its method.
"""

from hbtscope.analysis.images._gaussian import gauss2d as _gauss2d  # noqa: F401  (old test import)
from hbtscope.analysis.images.refocus import (
    Gaussian1DFit,
    Gaussian2DFit,
    gaussian1d_fit,
    gaussian2d_fit,
    gaussian_fit_objective,
)
from hbtscope.analysis.images.registration import (
    RegisteredSum,
    drift_by_cross_correlation,
    register_and_sum,
)
from hbtscope.analysis.images.spots import (
    EMITTER_DTYPE,
    auto_threshold,
    estimate_background,
    find_emitters,
)
from hbtscope.analysis.images.survival import (
    SurvivalCounts,
    SurvivalCurve,
    count_surviving,
    survival_curve,
)

__all__ = [
    "EMITTER_DTYPE",
    "Gaussian1DFit",
    "Gaussian2DFit",
    "RegisteredSum",
    "SurvivalCounts",
    "SurvivalCurve",
    "auto_threshold",
    "count_surviving",
    "drift_by_cross_correlation",
    "estimate_background",
    "find_emitters",
    "gaussian1d_fit",
    "gaussian2d_fit",
    "gaussian_fit_objective",
    "register_and_sum",
    "survival_curve",
]
