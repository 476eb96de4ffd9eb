"""Log-binned (arbitrary-edge) cross-correlation of two time-tag streams, and its g2.

Computed from the tags directly (Laurence, Fore & Huser, Opt. Lett. 31, 829 (2006)):
no intensity binning, no multi-tau approximation, exact integer pair counts for any
set of increasing bin edges (log spaced from 10 ns to 1 s, symmetric around zero,
linear, ...).

Definitions (shared by :func:`correlate_log` and :class:`LogCorrelationAccumulator`)::

    d         = t2[j] - t1[i]                       (every pair i, j)
    counts[k] = #{(i, j) : edges[k] <= d < edges[k+1]}      (half-open bins)

This is the convention of ``pycorrelate.pcorrelate(t1, t2, edges)``, which returns
``counts / diff(edges)`` when ``normalize=False``.

Algorithm: see :mod:`hbtscope.analysis._log_pairs` (Laurence et al.'s merge per edge, direct
enumeration of the pairs at small lags).

Normalisation (:func:`g2_log`). For two stationary, mutually independent streams with
N1, N2 tags recorded over the same interval of length T, the expected number of pairs
with lag in [a, b) is (each lag tau is realised over an overlap of length T - |tau|)::

    E_k = N1 * N2 / T**2 * integral_{a_k}^{b_k} max(T - |tau|, 0) d tau
        ~ N1 * N2 * (b_k - a_k) / T            for |tau| << T

and ``g2_k = counts_k / E_k``. The integral is evaluated exactly (bins up to 1 s are not
small compared with a 10 s record), which removes the finite-duration bias at long
lags. Errors: ``sqrt(counts_k) / E_k`` (Poisson) holds while a bin holds much less than
one partner per tag; wider bins carry the slow shot noise of the tag positions, see
:func:`g2_log_variance` (up to ~100x the Poisson error at 1 s lags in a 10 s record).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from hbtscope.analysis._log_pairs import add_pairs
from hbtscope.analysis._streaming import PairAccumulator
from hbtscope.analysis._validate import EDGE_LIMIT_PS, as_edges_ps, as_tags

__all__ = [
    "LogCorrelationAccumulator",
    "correlate_log",
    "expected_pairs",
    "g2_log",
    "g2_log_variance",
    "log_edges",
    "tau_centres",
]

# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------


def log_edges(start_ps: float = 10_000, stop_ps: float = 1e12, per_decade: int = 10) -> np.ndarray:
    """Log-spaced integer bin edges from ``start_ps`` to ``stop_ps`` (both included).

    Edges are ``round(start * 10**(k / per_decade))``, k = 0, 1, ..., up to the first
    value >= ``stop_ps`` (replaced by ``stop_ps`` itself), made strictly increasing
    (duplicates from rounding at tiny ``start_ps`` are dropped). int64 picoseconds.
    """
    if isinstance(per_decade, bool) or not isinstance(per_decade, numbers.Integral):
        raise TypeError(f"per_decade must be an integer, got {per_decade!r}")
    if per_decade < 1:
        raise ValueError(f"per_decade must be >= 1, got {per_decade}")
    start, stop = float(start_ps), float(stop_ps)
    if not (math.isfinite(start) and math.isfinite(stop)) or not 1 <= start < stop:
        raise ValueError(f"need 1 <= start_ps < stop_ps, got {start_ps!r}, {stop_ps!r}")
    if stop > EDGE_LIMIT_PS:
        raise ValueError(f"stop_ps must be <= {EDGE_LIMIT_PS}")
    n = math.ceil(per_decade * math.log10(stop / start) - 1e-9)
    e = np.round(start * 10.0 ** (np.arange(n + 1) / per_decade))
    e[-1] = round(stop)
    e = e[e <= round(stop)]
    return np.unique(e.astype(np.int64))


def tau_centres(edges_ps: np.ndarray) -> np.ndarray:
    """Representative lag of each bin: geometric mean of its edges when both have the
    same sign (log bins), arithmetic mean when the bin contains zero. float64 ps."""
    e = np.asarray(edges_ps, dtype=np.float64)
    a, b = e[:-1], e[1:]
    same = a * b > 0
    geo = np.sign(a) * np.sqrt(np.abs(a * b), where=same, out=np.zeros_like(a))
    return np.where(same, geo, 0.5 * (a + b))


def correlate_log(t1_ps: np.ndarray, t2_ps: np.ndarray, edges_ps: np.ndarray) -> np.ndarray:
    """Number of pairs with ``edges[k] <= t2[j] - t1[i] < edges[k+1]`` for every bin k.

    Parameters
    ----------
    t1_ps, t2_ps
        1-D integer (int64) time tags in ps, each sorted ascending (duplicates and
        negative values allowed).
    edges_ps
        Strictly increasing bin edges in ps (integers; may be negative, may start at 0,
        e.g. :func:`log_edges` or a symmetric ``np.r_[-e[::-1], e]``).

    Returns
    -------
    counts
        int64 array of length ``len(edges_ps) - 1``. Equal to
        ``pycorrelate.pcorrelate(t1, t2, edges) * diff(edges)``.

    Raises
    ------
    ValueError, TypeError
        Unsorted / non-integer tags, or edges not strictly increasing integers.
    """
    edges = as_edges_ps(edges_ps)
    t1 = as_tags(t1_ps, "t1_ps")
    t2 = as_tags(t2_ps, "t2_ps")
    counts = np.zeros(edges.size - 1, dtype=np.int64)
    add_pairs(t1, t2, edges, counts)
    return counts


def expected_pairs(edges_ps: np.ndarray, n1: int, n2: int, duration_ps: float) -> np.ndarray:
    """Expected pair counts per bin for independent stationary streams (see module doc).

    ``E_k = n1 * n2 / T**2 * integral_{a_k}^{b_k} max(T - |tau|, 0) d tau`` (float64).
    """
    e = np.asarray(edges_ps, dtype=np.float64)
    T = float(duration_ps)
    if not T > 0:
        raise ValueError(f"duration_ps must be > 0, got {duration_ps!r}")

    def prim(x: np.ndarray) -> np.ndarray:
        # primitive of max(T - |tau|, 0), odd in x, constant T**2/2 beyond |x| >= T
        y = np.clip(np.abs(x), 0.0, T)
        return np.sign(x) * (T * y - 0.5 * y * y)

    overlap = prim(e[1:]) - prim(e[:-1])
    return float(n1) * float(n2) / (T * T) * overlap


def _window_moments(edges: np.ndarray, T: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each bin B = [a, b): L = int_0^T w2(u) du and M_i = int_0^T w_i(x)^2 dx, with
    w2(u) = |(u + B) & [0, T)| (partner window of a channel-1 tag at u) and
    w1(v) = |(v - B) & [0, T)|. Both are piecewise linear, so Simpson's rule on the pieces
    between their breakpoints is exact for w and w^2."""
    e = np.asarray(edges, dtype=np.float64)
    a = e[:-1, None]
    b = e[1:, None]
    zero = np.zeros_like(a)
    full = np.full_like(a, T)

    def w2(u: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, np.minimum(u + b, T) - np.maximum(u + a, 0.0))

    def w1(v: np.ndarray) -> np.ndarray:
        return np.maximum(0.0, np.minimum(v - a, T) - np.maximum(v - b, 0.0))

    def simpson(w, bps: np.ndarray, power: int) -> np.ndarray:
        x = np.sort(np.clip(bps, 0.0, T), axis=1)
        x0, x1 = x[:, :-1], x[:, 1:]
        f0, fm, f1 = w(x0) ** power, w(0.5 * (x0 + x1)) ** power, w(x1) ** power
        return np.sum((x1 - x0) / 6.0 * (f0 + 4.0 * fm + f1), axis=1)

    bp2 = np.hstack((zero, full, -b, -a, T - b, T - a))
    bp1 = np.hstack((zero, full, a, b, T + a, T + b))
    return simpson(w2, bp2, 1), simpson(w1, bp1, 2), simpson(w2, bp2, 2)


def g2_log_variance(
    edges_ps: np.ndarray,
    n1: int,
    n2: int,
    duration_ps: float,
    g2: np.ndarray | float = 1.0,
) -> np.ndarray:
    """Variance of the :func:`g2_log` estimate per bin (two Poisson streams).

    The naive Poisson error sqrt(counts)/E_k is right only while a bin holds much less
    than one partner per tag. At long lags (wide bins) the pair counts share the slow
    shot noise of the tag positions; for independent homogeneous Poisson streams with
    N1, N2 tags over T (rates r_i = N_i/T), to first order in 1/N::

        var(g2_k) = g2_k / E_k + (1/r1) (M2_k / L_k^2 - 1/T) + (1/r2) (M1_k / L_k^2 - 1/T)

    with L_k = integral (T - |tau|) over the bin, and M2_k (M1_k) the integral over the
    record of the squared partner-window length of a channel-1 (channel-2) tag (see
    ``_window_moments``); the -1/T terms are the part removed by normalising with the
    measured N1, N2. For |tau|, width << T the excess is ~ (1/r1 + 1/r2)(a + W/3)/T^2.
    ``g2`` (measured or model values) scales the shot-noise term.
    """
    edges = as_edges_ps(edges_ps)
    T = float(duration_ps)
    if not T > 0:
        raise ValueError(f"duration_ps must be > 0, got {duration_ps!r}")
    L, M1, M2 = _window_moments(edges, T)
    E = expected_pairs(edges, n1, n2, T)
    with np.errstate(divide="ignore", invalid="ignore"):
        excess = (T / max(n1, 1)) * (M2 / L**2 - 1.0 / T) + (T / max(n2, 1)) * (M1 / L**2 - 1.0 / T)
        var = np.asarray(g2, dtype=np.float64) / E + np.maximum(excess, 0.0)
    return np.where(E > 0, var, np.nan)


def g2_log(
    t1_ps: np.ndarray, t2_ps: np.ndarray, edges_ps: np.ndarray, duration_ps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Normalised cross-correlation g2 on arbitrary (log) lag bins.

    ``g2_k = counts_k / E_k`` with ``E_k`` of :func:`expected_pairs` (N1, N2 = numbers
    of tags, T = ``duration_ps`` = length of the common recording interval): 1 for
    uncorrelated streams at every lag, including lags comparable with T.

    Returns
    -------
    tau_ps
        Bin centres of :func:`tau_centres` (float64, geometric for log bins).
    g2
        float64; NaN for bins with no possible overlap (|tau| >= T).
    """
    edges = as_edges_ps(edges_ps)
    t1 = as_tags(t1_ps, "t1_ps")
    t2 = as_tags(t2_ps, "t2_ps")
    counts = np.zeros(edges.size - 1, dtype=np.int64)
    add_pairs(t1, t2, edges, counts)
    exp = expected_pairs(edges, t1.size, t2.size, duration_ps)
    with np.errstate(divide="ignore", invalid="ignore"):
        g2 = np.where(exp > 0, counts / exp, np.nan)
    return tau_centres(edges), g2


class LogCorrelationAccumulator(PairAccumulator):
    """Streaming version of :func:`correlate_log` for chunked acquisition.

    Feed consecutive chunks of both channels with :meth:`add`; ``counts`` is then
    exactly (integer for integer) the one-pass :func:`correlate_log` of the concatenated
    streams. Chunk checks and history are those of
    :class:`~hbtscope.analysis._streaming.PairAccumulator` with the lag window
    ``[edges[0], edges[-1])``: the history keeps about ``edges[-1] - edges[0]`` of tags; pass
    ``t_end_ps`` (a promise that later tags of both channels are >= it) to keep it bounded
    while one channel is silent.

    Chunk cost is O(n_edges * (chunk + history overlap)): each cross-product loops over
    the chunk and walks pointers over the part of the history in range.
    """

    def __init__(self, edges_ps: np.ndarray) -> None:
        self._edges = as_edges_ps(edges_ps)
        self._edges.setflags(write=False)
        self._tau = tau_centres(self._edges)
        self._tau.setflags(write=False)
        super().__init__(self._edges.size - 1, int(self._edges[0]), int(self._edges[-1]))

    def _count(self, t1: np.ndarray, t2: np.ndarray) -> None:
        add_pairs(t1, t2, self._edges, self._counts)

    @property
    def edges_ps(self) -> np.ndarray:
        return self._edges

    @property
    def tau_ps(self) -> np.ndarray:
        """Bin centres (read-only, :func:`tau_centres`)."""
        return self._tau

    def g2(self, duration_ps: float) -> tuple[np.ndarray, np.ndarray]:
        """(tau_ps, g2) normalised as in :func:`g2_log` with the tags added so far."""
        exp = expected_pairs(self._edges, self._n1, self._n2, duration_ps)
        with np.errstate(divide="ignore", invalid="ignore"):
            g2 = np.where(exp > 0, self._counts / exp, np.nan)
        return self._tau.copy(), g2
