"""numba kernels of the simulated detectors."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def apply_dead_time(ts, ch, dead_ps, last_ps):
    """Keep only clicks that come at least the channel's dead time after its previous kept click.

    ``ts`` sorted int64 ps, ``ch`` channel numbers (index into ``dead_ps``/``last_ps``);
    ``last_ps`` is updated in place so the dead time carries across calls.
    Returns a boolean mask of kept clicks.
    """
    keep = np.empty(ts.shape[0], dtype=np.bool_)
    for i in range(ts.shape[0]):
        c = ch[i]
        if ts[i] - last_ps[c] >= dead_ps[c]:
            keep[i] = True
            last_ps[c] = ts[i]
        else:
            keep[i] = False
    return keep
