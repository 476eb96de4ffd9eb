"""Input validation shared by the analysis modules (one helper per kind of input).

Each function checks one kind of argument, raises ``ValueError`` (``TypeError`` for a wrong
kind of number) naming the argument, and returns a clean array or number:

* :func:`as_tags` -- integer picosecond time tags (int64, sorted): correlation, lifetime;
* :func:`as_times` -- time tags that may also be float (int64 kept, float64 otherwise): blinking;
* :func:`as_edges_ps` -- integer picosecond histogram edges (log-binned correlation);
* :func:`finite_array` / :func:`finite_1d` -- a finite numeric array (vector) as float64
  (counts, angles, delays, spectra);
* :func:`positive` -- a positive finite scalar;
* :func:`as_image` -- a 2-D finite image as float64.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from numba import njit

__all__ = [
    "EDGE_LIMIT_PS",
    "as_edges_ps",
    "as_image",
    "as_int_ps",
    "as_tags",
    "as_times",
    "finite_1d",
    "finite_array",
    "positive",
]

#: largest |edge| accepted by :func:`as_edges_ps` (keeps tag +- edge far from int64 overflow)
EDGE_LIMIT_PS = 2**60


@njit(cache=True, nogil=True)
def _first_unsorted(t: np.ndarray) -> int:
    """Index of the first element smaller than its predecessor, or -1 if sorted."""
    for i in range(1, t.shape[0]):
        if t[i] < t[i - 1]:
            return i
    return -1


def as_tags(t: object, name: str) -> np.ndarray:
    """Validate a tag array: 1-D, integer dtype, sorted ascending; return C-contiguous int64."""
    a = np.asarray(t)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of time tags, got shape {a.shape}")
    if a.size == 0:
        return np.empty(0, dtype=np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integer picosecond tags (int64), got dtype {a.dtype}")
    if a.dtype == np.uint64 and a.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds tags that do not fit in int64")
    a = np.ascontiguousarray(a, dtype=np.int64)
    bad = _first_unsorted(a)
    if bad >= 0:
        raise ValueError(
            f"{name} must be sorted ascending: element {bad} ({a[bad]}) < element "
            f"{bad - 1} ({a[bad - 1]})"
        )
    return a


def as_times(name: str, t, *, allow_empty: bool = False) -> np.ndarray:
    """1-D, finite, ascending time tags; integer input stays int64, float becomes float64."""
    try:
        a = np.asarray(t)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} must be a 1-D array of times") from exc
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.size == 0:
        if allow_empty:
            return a.astype(np.int64)
        raise ValueError(f"{name} is empty")
    if a.dtype.kind in "iu":
        a = a.astype(np.int64)
    elif a.dtype.kind in "fb":
        a = a.astype(np.float64)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name} contains NaN or inf")
    else:
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    if a.size > 1 and np.any(a[1:] < a[:-1]):
        raise ValueError(f"{name} must be sorted ascending")
    return a


def as_int_ps(value: object, name: str) -> int:
    """A positive integer number of picoseconds (ints and integral floats such as 1e6)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of picoseconds, got {value!r}")
    if not float(value).is_integer():
        raise ValueError(f"{name} must be an integer number of picoseconds, got {value!r}")
    ivalue = int(value)
    if ivalue <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return ivalue


def as_edges_ps(edges_ps: object) -> np.ndarray:
    """Validate bin edges: 1-D, >= 2 entries, integral, strictly increasing; int64."""
    e = np.asarray(edges_ps)
    if e.ndim != 1 or e.size < 2:
        raise ValueError(f"edges_ps must be a 1-D array of at least 2 edges, got shape {e.shape}")
    if np.issubdtype(e.dtype, np.integer):
        ei = e.astype(np.int64)
    elif np.issubdtype(e.dtype, np.floating):
        if not np.all(np.isfinite(e)):
            raise ValueError("edges_ps must be finite")
        if np.any(e != np.round(e)):
            raise ValueError("edges_ps must be integer numbers of picoseconds")
        if np.max(np.abs(e)) > EDGE_LIMIT_PS:
            raise ValueError(f"edges_ps must be within +-{EDGE_LIMIT_PS} ps")
        ei = e.astype(np.int64)
    else:
        raise TypeError(f"edges_ps must be numeric, got dtype {e.dtype}")
    if np.max(np.abs(ei)) > EDGE_LIMIT_PS:
        raise ValueError(f"edges_ps must be within +-{EDGE_LIMIT_PS} ps")
    if np.any(np.diff(ei) <= 0):
        raise ValueError("edges_ps must be strictly increasing")
    return np.ascontiguousarray(ei)


def finite_array(name: str, x, ndim: int = 1, *, allow_empty: bool = False) -> np.ndarray:
    """A numeric ``ndim``-D array of finite values, as float64 (empty only if ``allow_empty``)."""
    a = np.asarray(x)
    if a.dtype.kind not in "iufb":
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {a.shape}")
    if a.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def finite_1d(name: str, x, *, allow_empty: bool = False) -> np.ndarray:
    """A 1-D numeric vector of finite values, as float64 (empty only if ``allow_empty``)."""
    return finite_array(name, x, 1, allow_empty=allow_empty)


def positive(name: str, value) -> float:
    """A positive finite number, as float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def as_image(image, name: str = "image") -> np.ndarray:
    """A non-empty 2-D image of finite values, as float64."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a
