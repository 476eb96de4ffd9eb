"""Change points of a photon stream (Watkins & Yang, J. Phys. Chem. B 109, 617 (2005)).

:func:`change_points` finds the changes of intensity on the individual arrival times (photon
time tags in ps, sorted ascending); :func:`cpa_critical_value` gives the critical values of
its test, :func:`simulate_cpa_null` regenerates them.

Change-point analysis (Watkins & Yang 2005)
-------------------------------------------
Inside a segment bounded by photons ``s_0 < s_1 < ... < s_N`` (``N`` inter-photon intervals)
the hypothesis "the rate changes at photon k" against "one rate" has the log likelihood
ratio (eq. of W&Y, with ``V_k = (s_k - s_0) / (s_N - s_0)``)::

    ln L_k = k ln(k / V_k) + (N - k) ln((N - k) / (1 - V_k)) - N ln N,   k = 1 .. N-1

The change point is at ``k_hat = argmax_k ln L_k`` and is accepted when
``Z = 2 ln L_k_hat`` exceeds the critical value ``tau_alpha(N)``. Under "one rate" the
``V_k`` are uniform order statistics, so the null distribution of ``Z`` depends on ``N``
only. We computed ``tau_alpha(N)`` by Monte-Carlo simulation of constant-rate segments
(1e4-2e5 per N, 2 <= N <= 2**20; :func:`simulate_cpa_null` regenerates any entry; no
network or file at run time) and cache the table in this module (``_CRIT_N``,
``_CRIT_TABLE``); between table points it is interpolated linearly in ``ln N``, beyond
``2**20`` it follows the Darling-Erdos asymptote of the maximal likelihood ratio (Csorgo &
Horvath 1997, Thm 1.3.1) shifted to match the last table point. Levels: alpha = 0.31,
0.1, 0.05, 0.01.

The segmentation is W&Y's recursive binary segmentation: test the whole record; if a change
is found, split there and test both halves, and so on. Each accepted change point is then
re-tested (and re-located) on the data between its two neighbours, repeatedly until nothing
moves; a change point that fails the re-test is dropped. On a constant-rate record the first
test is the only one, so the probability of reporting any change point is alpha.

Confidence interval of a change point: the likelihood-ratio confidence set (Siegmund 1988)
``{k : Z_k_hat - Z_k <= 2 x}``. Near the true change the log likelihood ratio against the true
location is, on either side, a random walk whose exponential is a martingale (it is a
likelihood ratio), so ``P(max > x) <= exp(-x)`` per side and the set covers the truth with
probability ``>= (1 - e^-x)^2``; we take ``x = -ln(1 - sqrt(level))`` (3.68 for 95 %), which
is exact for small jumps and conservative for large ones. The interval reported is the hull of
the set widened by one photon on each side (the change happens between two photons).

"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numba import njit

from hbtscope.analysis._validate import as_times
from hbtscope.units import PS_PER_S

__all__ = [
    "RESOLUTION_PS",
    "ChangePointResult",
    "change_points",
    "cpa_critical_value",
    "simulate_cpa_null",
]

RESOLUTION_PS = 1.0  # time-tag resolution assumed by the change-point scan (equal tags)


@njit(cache=True, nogil=True)
def _glr_scan(t: np.ndarray, i0: int, i1: int, resolution: float) -> tuple[int, float]:
    """Best change point k (1..N-1) in photons t[i0..i1] and Z = 2 ln L_k there.

    ``V_k`` is kept half a ``resolution`` (of the time axis) away from 0 and 1, which only
    matters for equal time tags. Returns (-1, -1.0) when the segment has fewer than two
    intervals or zero duration.
    """
    n = i1 - i0
    if n < 2:
        return -1, -1.0
    t_0 = t[i0]
    dur = t[i1] - t_0
    if dur <= 0.0:
        return -1, -1.0
    eps = max(0.5 * resolution / dur, 1e-12)  # 1 - eps stays representable
    nln = n * math.log(n)
    best = -1.0
    kb = -1
    for k in range(1, n):
        v = (t[i0 + k] - t_0) / dur
        if v < eps:
            v = eps
        elif v > 1.0 - eps:
            v = 1.0 - eps
        z = k * math.log(k / v) + (n - k) * math.log((n - k) / (1.0 - v)) - nln
        if z > best:
            best = z
            kb = k
    return kb, 2.0 * best


@njit(cache=True, nogil=True)
def _glr_profile(t: np.ndarray, i0: int, i1: int, resolution: float) -> np.ndarray:
    """Z_k = 2 ln L_k for k = 1..N-1 (index k-1) in photons t[i0..i1]."""
    n = i1 - i0
    out = np.empty(max(n - 1, 0))
    dur = t[i1] - t[i0]
    eps = max(0.5 * resolution / dur, 1e-12)  # 1 - eps stays representable
    nln = n * math.log(n)
    for k in range(1, n):
        v = (t[i0 + k] - t[i0]) / dur
        if v < eps:
            v = eps
        elif v > 1.0 - eps:
            v = 1.0 - eps
        out[k - 1] = 2.0 * (k * math.log(k / v) + (n - k) * math.log((n - k) / (1.0 - v)) - nln)
    return out


@njit(cache=True, nogil=True)
def _zmax_rows(cum: np.ndarray) -> np.ndarray:
    """Z = max_k 2 ln L_k of each row of cumulative interval sums (row = one segment)."""
    out = np.empty(cum.shape[0])
    for m in range(cum.shape[0]):
        out[m] = _glr_scan(cum[m], 0, cum.shape[1] - 1, 0.0)[1]
    return out


def simulate_cpa_null(n_intervals: int, n_sim: int = 100_000, seed: int = 0) -> np.ndarray:
    """Null distribution of Z = max_k 2 ln L_k for a constant-rate segment of N intervals.

    This is how the cached critical values were computed (their 1 - alpha quantiles).
    """
    n = int(n_intervals)
    if n < 2:
        raise ValueError("n_intervals must be >= 2")
    if int(n_sim) < 1:
        raise ValueError("n_sim must be >= 1")
    rng = np.random.default_rng(seed)
    n_sim = int(n_sim)
    out = np.empty(n_sim)
    chunk = max(1, 4_000_000 // n)
    for a in range(0, n_sim, chunk):
        b = min(a + chunk, n_sim)
        cum = np.zeros((b - a, n + 1))
        np.cumsum(rng.exponential(1.0, (b - a, n)), axis=1, out=cum[:, 1:])
        out[a:b] = _zmax_rows(cum)
    return out


_CRIT_ALPHAS = (0.31, 0.1, 0.05, 0.01)
# Monte-Carlo critical values tau_alpha(N) (columns: alpha = 0.31, 0.1, 0.05, 0.01) of
# Z = max_k 2 ln L_k for a constant-rate segment of N intervals (simulate_cpa_null).
# N = 2..19: 2e5 segments per N, raw 1 - alpha quantiles. N >= 20: quantiles from 1e5
# segments per N (N <= 16384; 60 log-spaced N) and 1e4 (10 N up to 2**20), smoothed by a
# weighted quadratic fit of sqrt(tau) in ln ln N (residual sd 0.01-0.05, the Monte-Carlo
# noise) and tabulated at 40 log-spaced N. Regenerate with simulate_cpa_null.
# fmt: off
_CRIT_N = np.array([
    2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 26, 35, 46, 61, 81,
    106, 141, 186, 246, 324, 429, 567, 749, 989, 1307, 1727, 2282, 3015, 3984, 5264, 6956,
    9191, 12144, 16047, 21203, 28016, 37019, 48915, 64633, 85402, 112845, 149107, 197021,
    260332, 343987, 454523, 600580, 793570, 1048576,
], dtype=np.float64)
_CRIT_TABLE = np.array([
    [1.286, 3.324, 4.675, 7.861],  # 2
    [2.071, 4.300, 5.727, 8.993],  # 3
    [2.540, 4.859, 6.266, 9.587],  # 4
    [2.849, 5.223, 6.637, 9.950],  # 5
    [3.102, 5.513, 6.952, 10.258],  # 6
    [3.278, 5.725, 7.166, 10.438],  # 7
    [3.433, 5.867, 7.332, 10.691],  # 8
    [3.570, 6.054, 7.503, 10.789],  # 9
    [3.685, 6.173, 7.626, 10.936],  # 10
    [3.788, 6.295, 7.786, 11.111],  # 11
    [3.878, 6.382, 7.865, 11.254],  # 12
    [3.957, 6.458, 7.932, 11.256],  # 13
    [4.029, 6.554, 8.019, 11.407],  # 14
    [4.095, 6.629, 8.102, 11.460],  # 15
    [4.152, 6.707, 8.173, 11.555],  # 16
    [4.221, 6.749, 8.236, 11.620],  # 17
    [4.263, 6.813, 8.293, 11.741],  # 18
    [4.318, 6.871, 8.346, 11.781],  # 19
    [4.365, 6.912, 8.403, 11.827],  # 20
    [4.593, 7.163, 8.662, 12.089],  # 26
    [4.832, 7.424, 8.930, 12.362],  # 35
    [5.035, 7.645, 9.157, 12.592],  # 46
    [5.230, 7.857, 9.374, 12.812],  # 61
    [5.414, 8.055, 9.577, 13.018],  # 81
    [5.578, 8.231, 9.757, 13.200],  # 106
    [5.742, 8.406, 9.936, 13.382],  # 141
    [5.892, 8.566, 10.100, 13.549],  # 186
    [6.035, 8.719, 10.256, 13.707],  # 246
    [6.169, 8.862, 10.401, 13.855],  # 324
    [6.299, 8.999, 10.541, 13.998],  # 429
    [6.422, 9.129, 10.674, 14.134],  # 567
    [6.539, 9.253, 10.800, 14.262],  # 749
    [6.651, 9.371, 10.920, 14.385],  # 989
    [6.758, 9.484, 11.035, 14.503],  # 1307
    [6.861, 9.593, 11.146, 14.616],  # 1727
    [6.960, 9.697, 11.252, 14.725],  # 2282
    [7.055, 9.796, 11.353, 14.829],  # 3015
    [7.147, 9.892, 11.451, 14.930],  # 3984
    [7.235, 9.985, 11.545, 15.026],  # 5264
    [7.320, 10.074, 11.635, 15.120],  # 6956
    [7.402, 10.159, 11.723, 15.210],  # 9191
    [7.482, 10.242, 11.807, 15.297],  # 12144
    [7.558, 10.322, 11.888, 15.382],  # 16047
    [7.633, 10.400, 11.967, 15.463],  # 21203
    [7.704, 10.475, 12.043, 15.543],  # 28016
    [7.774, 10.547, 12.117, 15.619],  # 37019
    [7.842, 10.618, 12.189, 15.694],  # 48915
    [7.908, 10.686, 12.259, 15.767],  # 64633
    [7.971, 10.753, 12.326, 15.837],  # 85402
    [8.033, 10.817, 12.392, 15.906],  # 112845
    [8.094, 10.880, 12.456, 15.973],  # 149107
    [8.152, 10.941, 12.518, 16.038],  # 197021
    [8.209, 11.000, 12.578, 16.101],  # 260332
    [8.265, 11.058, 12.637, 16.163],  # 343987
    [8.319, 11.114, 12.694, 16.223],  # 454523
    [8.372, 11.169, 12.750, 16.282],  # 600580
    [8.424, 11.223, 12.805, 16.339],  # 793570
    [8.474, 11.275, 12.858, 16.396],  # 1048576
])
# fmt: on


def _darling_erdos_sqrt(n: float, alpha: float) -> float:
    """sqrt of the asymptotic critical value of max_k 2 ln L_k (Csorgo & Horvath 1997)."""
    y = math.log(n)
    a = math.sqrt(2.0 * math.log(y))
    b = 2.0 * math.log(y) + 0.5 * math.log(math.log(y)) - 0.5 * math.log(math.pi)
    x = -math.log(-math.log1p(-alpha) / 2.0)
    return (x + b) / a


@lru_cache(maxsize=4096)
def cpa_critical_value(n_intervals: int, alpha: float = 0.05) -> float:
    """Critical value tau_alpha(N) of the W&Y test for a segment with N intervals.

    ``alpha`` must be one of 0.31, 0.1, 0.05, 0.01 (the cached Monte-Carlo table; module
    doc). Returns ``inf`` for N < 2 (no test possible).
    """
    try:
        col = _CRIT_ALPHAS.index(float(alpha))
    except ValueError:
        raise ValueError(f"alpha must be one of {_CRIT_ALPHAS}, got {alpha!r}") from None
    n = int(n_intervals)
    if n < 2:
        return math.inf
    ln_n = math.log(n)
    ln_grid = np.log(_CRIT_N)
    if ln_n <= ln_grid[-1]:
        return float(np.interp(ln_n, ln_grid, _CRIT_TABLE[:, col]))
    n_last = float(_CRIT_N[-1])
    shift = math.sqrt(_CRIT_TABLE[-1, col]) - _darling_erdos_sqrt(n_last, _CRIT_ALPHAS[col])
    return (_darling_erdos_sqrt(n, _CRIT_ALPHAS[col]) + shift) ** 2


@dataclass(frozen=True, eq=False)
class ChangePointResult:
    """Change points and the constant-intensity segments between them.

    Change point ``j`` is at photon ``photon_index[j]`` (time ``times_ps[j]``), with the
    confidence interval ``[ci_lo_ps[j], ci_hi_ps[j]]`` at ``ci_level`` and the statistic
    ``statistic[j]`` (Z of the final re-test) against ``critical[j]``.

    Segment ``i`` spans ``[seg_start_ps[i], seg_stop_ps[i]]`` (photon to photon) and
    contains ``seg_photons[i]`` photons (inter-photon intervals) in ``seg_duration_ps[i]``;
    its intensity is ``seg_rate_cps`` +- ``seg_rate_cps_err`` (maximum likelihood,
    Poisson error).
    """

    alpha: float
    ci_level: float
    n_photons: int
    times_ps: np.ndarray = field(repr=False)
    photon_index: np.ndarray = field(repr=False)
    ci_lo_ps: np.ndarray = field(repr=False)
    ci_hi_ps: np.ndarray = field(repr=False)
    statistic: np.ndarray = field(repr=False)
    critical: np.ndarray = field(repr=False)
    seg_start_ps: np.ndarray = field(repr=False)
    seg_stop_ps: np.ndarray = field(repr=False)
    seg_photons: np.ndarray = field(repr=False)
    seg_duration_ps: np.ndarray = field(repr=False)
    seg_rate_cps: np.ndarray = field(repr=False)
    seg_rate_cps_err: np.ndarray = field(repr=False)

    @property
    def n_change_points(self) -> int:
        return int(self.times_ps.size)


def _ci_half(level: float) -> float:
    """x with (1 - e^-x)^2 = level (module doc)."""
    return -math.log(1.0 - math.sqrt(level))


def change_points(
    t_ps,
    alpha: float = 0.05,
    *,
    ci_level: float = 0.95,
    max_change_points: int | None = None,
    refine: bool = True,
    max_refine_passes: int = 20,
) -> ChangePointResult:
    """Watkins & Yang change-point analysis of photon arrival times (module doc).

    ``alpha``: type-I error of each test (0.31, 0.1, 0.05 or 0.01); on a constant-intensity
    record the probability of reporting any change point is alpha. ``ci_level``: level of
    each change point's confidence interval. ``max_change_points`` stops the recursion
    early (None: no limit). ``refine``: re-test each change point between its neighbours.
    """
    t_in = as_times("t_ps", t_ps)
    alpha = float(alpha)
    if alpha not in _CRIT_ALPHAS:
        raise ValueError(f"alpha must be one of {_CRIT_ALPHAS}, got {alpha!r}")
    ci_level = float(ci_level)
    if not 0.0 < ci_level < 1.0:
        raise ValueError(f"ci_level must be in (0, 1), got {ci_level!r}")
    limit = math.inf if max_change_points is None else int(max_change_points)
    if limit < 0:
        raise ValueError("max_change_points must be >= 0")
    t = (t_in - t_in[0]).astype(np.float64)
    n_ph = t.size

    # recursive binary segmentation (explicit stack, deepest-first)
    cps: list[int] = []
    stack = [(0, n_ph - 1)]
    while stack and len(cps) < limit:
        i0, i1 = stack.pop()
        k, z = _glr_scan(t, i0, i1, RESOLUTION_PS)
        if k < 0 or z <= cpa_critical_value(i1 - i0, alpha):
            continue
        cps.append(i0 + k)
        stack.append((i0 + k, i1))
        stack.append((i0, i0 + k))
    cps.sort()

    # refinement: re-test each change point between its neighbours until stable
    if refine and cps:
        for _ in range(max_refine_passes):
            changed = False
            new: list[int] = []
            bounds = [0, *cps, n_ph - 1]
            j = 1
            while j < len(bounds) - 1:
                a = new[-1] if new else 0
                b = bounds[j + 1]
                k, z = _glr_scan(t, a, b, RESOLUTION_PS)
                if k < 0 or z <= cpa_critical_value(b - a, alpha):
                    changed = True  # drop it
                else:
                    if a + k != bounds[j]:
                        changed = True
                    new.append(a + k)
                j += 1
            cps = sorted(set(new))
            if not changed:
                break

    # statistics and confidence intervals of the final change points
    x_half = _ci_half(ci_level)
    bounds = [0, *cps, n_ph - 1]
    stat, crit, lo_t, hi_t = [], [], [], []
    for j in range(1, len(bounds) - 1):
        a, c, b = bounds[j - 1], bounds[j], bounds[j + 1]
        prof = _glr_profile(t, a, b, RESOLUTION_PS)
        z_c = prof[c - a - 1]
        inside = np.nonzero(prof >= prof.max() - 2.0 * x_half)[0] + 1  # k values
        k_lo, k_hi = int(inside.min()), int(inside.max())
        lo_t.append(t_in[a + max(k_lo - 1, 0)])
        hi_t.append(t_in[a + min(k_hi + 1, b - a)])
        stat.append(float(z_c))
        crit.append(cpa_critical_value(b - a, alpha))

    idx = np.asarray(cps, dtype=np.int64)
    seg_b = np.asarray(bounds, dtype=np.int64)
    seg_n = np.diff(seg_b)
    seg_start = t_in[seg_b[:-1]]
    seg_stop = t_in[seg_b[1:]]
    dur = (seg_stop - seg_start).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(dur > 0, seg_n / dur * PS_PER_S, np.nan)
        rate_err = np.where(dur > 0, np.sqrt(seg_n) / dur * PS_PER_S, np.nan)
    return ChangePointResult(
        alpha=alpha,
        ci_level=ci_level,
        n_photons=int(n_ph),
        times_ps=t_in[idx],
        photon_index=idx,
        ci_lo_ps=np.asarray(lo_t, dtype=t_in.dtype),
        ci_hi_ps=np.asarray(hi_t, dtype=t_in.dtype),
        statistic=np.asarray(stat, dtype=np.float64),
        critical=np.asarray(crit, dtype=np.float64),
        seg_start_ps=seg_start,
        seg_stop_ps=seg_stop,
        seg_photons=seg_n,
        seg_duration_ps=dur,
        seg_rate_cps=rate,
        seg_rate_cps_err=rate_err,
    )
