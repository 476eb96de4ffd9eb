"""Pure analysis layer (numpy/scipy/numba only): time-tag correlation and g2.

No I/O, no GUI and no dependency on other hbtscope subpackages.
"""

from hbtscope.analysis.correlation import CorrelationAccumulator, correlate
from hbtscope.analysis.g2 import BACKGROUND_METHODS, G2PulsedResult, g2_pulsed

__all__ = [
    "BACKGROUND_METHODS",
    "CorrelationAccumulator",
    "G2PulsedResult",
    "correlate",
    "g2_pulsed",
]
