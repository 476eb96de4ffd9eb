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

Automatic ON/OFF threshold
--------------------------
The counts per bin of a two-level emitter are a mixture of three populations: bins spent
entirely OFF, entirely ON, and bins straddling a switch. We fit (maximum likelihood on the
histogram of counts) OFF and ON levels as negative-binomial distributions -- Poisson counts
whose rate has a Gamma-distributed spread, variance ``mu + phi mu^2``; ``phi = 0`` is pure
Poisson, and ``phi`` absorbs flickering within a level -- plus a "bridge" of straddling
bins, Poisson with mean ``mu_off + u (mu_on - mu_off)``, ``u ~ U(0, 1)`` (the ON part of
the bin; its pmf is a difference of incomplete gamma functions). Without the bridge the
straddling bins are absorbed into an inflated OFF or ON dispersion and drag the threshold.

The threshold is the midpoint ``(mu_off + mu_on) / 2`` of the fitted levels: a bin counts
as ON when it was more than half ON, so straddling bins are misclassified symmetrically and
the ON fraction is unbiased (for levels many sigma apart the pure-level bins essentially
never cross the midpoint). We do not put it where the (weighted) likelihoods of the two
levels cross: that point sits in the tail of the narrower OFF level (for 10 and 200 counts
per bin near 60) and would count every bin more than ~25 % ON as ON -- in our tests a bias
of several 1e-3 in the ON fraction, larger than its statistical error. The two-level model
is used only if the Bayesian information criterion prefers it to one level; a trace with a
single level is reported as ON throughout (fraction 1, threshold below the level's 1e-6
quantile) -- whether that level is an emitter or background is the caller's call. The fit's
own estimate ``w_on + w_bridge / 2`` is reported as ``TwoLevelFit.on_fraction_model``.
Otsu's threshold is available (``threshold="otsu"``) but its between-class-variance
criterion drifts into the larger class when the classes are very unequal, and the seeds'
emitters are ON 90-99 % of the time (Feld et al. and Baronnier et al.).

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

State clustering (:func:`cluster_levels`) follows W&Y. For each number of states
``n_G = 1 .. max_states``: agglomerative hierarchical clustering of the segments (merging the
two intensity-adjacent groups that lose least likelihood) starts an expectation-maximisation
fit of a mixture of ``n_G`` Poisson states to the segments (photon count ``n_j`` in duration
``T_j``); then every segment is assigned to *one* state, its most probable, and the
assignment is iterated with the state parameters (classification EM, Celeux & Govaert 1992)
until no segment moves. The number of states maximises W&Y's Bayesian information criterion
of that *classification*::

    BIC(n_G) = 2 ln L_class - (2 n_G - 1) ln max(N_cp, 1) - N_cp ln N
    ln L_class = sum_j ln[ p_c(j) Poisson(n_j; I_c(j) T_j) ]

with ``c(j)`` the state of segment ``j``, ``I_m = sum n_j / sum T_j`` and ``p_m`` (fraction of
the segments) over the segments of state ``m``, ``N`` the number of photons and ``N_cp`` the
number of change points *between different states*: adjacent segments given the same state
are merged (in the ``n_G``-state description of the record they are one dwell), so ``N_cp``
depends on ``n_G``. The BIC is that of the piecewise-constant model of the record implied by
the classification: ``n_G`` intensities and ``n_G - 1`` occupation probabilities estimated
from ``N_cp`` dwells (``ln N_cp`` each) and ``N_cp`` change-point positions, each located
among ``N`` photons (``ln N`` each). A spurious or scatter-driven change point inside a level
is free when both sides get the same state but costs ``ln N`` when a superfluous state
separates them; this is what stops the over-splitting of our earlier version, which scored
the *mixture* likelihood (soft assignment, which grows with ``n_G`` on any over-dispersion)
and charged ``N_cp ln N`` for *all* detected change points, a constant in ``n_G``.

Sources and choices. W&Y 2005 give the formula above. Haw Yang's public implementation of
the paper (``BICCluster.c``, released 2020) scores the hard classification and counts
``N_cp`` as the state changes between consecutive segments, as here. Where we differ: (i) for
``n_G = 1`` (``N_cp = 0``, ``ln 0`` undefined) we take ``ln max(N_cp, 1) = 0``, that code
``ln`` (number of segments) -- a difference of a few units in ``BIC(1)`` only; (ii) that code
leaves ``ln p_m`` out of the likelihood but counts the ``n_G - 1`` weights in the penalty; we
keep ``ln p_m`` (at its maximum-likelihood value for the partition, the fraction of
segments; that code's EM uses the time fraction ``T_m / T``) so that the likelihood contains
the parameters the penalty counts. ``Poisson(n_j; I T_j)`` (counts in fixed durations) and the
likelihood of the arrival times (``n_j ln I - I T_j``) differ by ``sum_j (n_j ln T_j - ln
n_j!)``, the same for every ``n_G``, so the choice does not affect the BIC comparison.
On simulated records with 1-5 levels a factor 2 apart (~1000 photons per dwell; table in
``tests/analysis/test_levels_bic.py``) the right number is chosen in 87-96 % of short records
(30 switches) and 83-100 % of long ones (300 switches); the mixture-likelihood BIC managed
42-94 % and 12-100 % (worst for 2 levels). Levels closer than the segments can resolve, and
dwells too short to be detected (they merge into their neighbours as intermediate
intensities), still add states: inspect ``bic`` and the rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numba import njit
from scipy import optimize, special

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

PS_PER_S = 1e12
MAX_BINS = 100_000_000  # refuse traces that would not fit in memory
RESOLUTION_PS = 1.0  # time-tag resolution assumed by the change-point scan (equal tags)

# ----------------------------------------------------------------------------- validation


def _times(name: str, t, *, allow_empty: bool = False) -> np.ndarray:
    """1-D, finite, ascending time tags; integer input stays int64."""
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


def _finite_1d(name: str, x, *, allow_empty: bool = False) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64) if not isinstance(x, np.ndarray) else x
    if a.dtype.kind not in "iufb":
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _span(t: np.ndarray, bin_ps: float, t_start_ps, t_stop_ps) -> tuple[float, float, int]:
    if t_start_ps is None:
        if t.size == 0:
            raise ValueError("t_ps is empty: give t_start_ps and t_stop_ps for an empty record")
        t_start_ps = t[0]
    if t_stop_ps is None:
        if t.size == 0:
            raise ValueError("t_ps is empty: give t_start_ps and t_stop_ps for an empty record")
        t_stop_ps = t[-1] + 1
    a, b = float(t_start_ps), float(t_stop_ps)
    if not (math.isfinite(a) and math.isfinite(b) and b > a):
        raise ValueError(f"need finite t_start_ps < t_stop_ps, got {t_start_ps!r}, {t_stop_ps!r}")
    n = int(math.floor((b - a) / bin_ps + 1e-9))
    if n < 1:
        raise ValueError(
            f"the span {b - a:g} ps is shorter than one bin ({bin_ps:g} ps): no whole bin"
        )
    if n > MAX_BINS:
        raise ValueError(
            f"{n} bins of {bin_ps:g} ps over {b - a:g} ps: more than {MAX_BINS}; use larger bins"
        )
    return a, b, n


def _bin_index(t: np.ndarray, start: float, bin_ps: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index of each photon and a mask of photons inside the n whole bins."""
    if t.dtype == np.int64 and float(start).is_integer() and float(bin_ps).is_integer():
        idx = (t - np.int64(start)) // np.int64(bin_ps)
    else:
        idx = np.floor((t - start) / bin_ps).astype(np.int64)
    ok = (idx >= 0) & (idx < n)
    return idx, ok


# ----------------------------------------------------------------------------- trace


def intensity_trace(
    t_ps, bin_ps: float, t_start_ps: float | None = None, t_stop_ps: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Photon counts in consecutive bins of ``bin_ps`` picoseconds.

    Bins are ``[t_start + i*bin, t_start + (i+1)*bin)`` for the whole bins that fit in
    ``[t_start, t_stop)``; photons after the last whole bin are not counted (a partial bin
    would look like a dip). Defaults: ``t_start`` = first photon, ``t_stop`` = last photon
    + 1 ps -- pass the record's true start and stop when you know them.

    Returns ``(bin_start_ps, counts)`` (counts int64). Counts per second are
    ``counts / (bin_ps * 1e-12)``.
    """
    bin_ps = _positive("bin_ps", bin_ps)
    t = _times("t_ps", t_ps, allow_empty=True)
    start, _, n = _span(t, bin_ps, t_start_ps, t_stop_ps)
    idx, ok = _bin_index(t, start, bin_ps, n)
    counts = np.bincount(idx[ok], minlength=n).astype(np.int64)
    starts = start + bin_ps * np.arange(n, dtype=np.float64)
    if float(start).is_integer() and float(bin_ps).is_integer():
        starts = np.int64(start) + np.int64(bin_ps) * np.arange(n, dtype=np.int64)
    return starts, counts


def intensity_histogram(
    counts, bins: int | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of the counts per bin of a trace (D'Amato et al. Fig. 4a, right panel).

    ``bins=None``: one bin per integer count value when the range spans <= 200 values,
    otherwise 100 equal bins. An int gives that many equal bins over ``[min - 0.5,
    max + 0.5]``; an array gives the edges. Returns ``(edges, occurrences)``.
    """
    c = _finite_1d("counts", counts)
    lo, hi = float(np.min(c)), float(np.max(c))
    if bins is None:
        if hi - lo <= 200:
            edges = np.arange(math.floor(lo) - 0.5, math.ceil(hi) + 1.0, 1.0)
        else:
            edges = np.linspace(lo - 0.5, hi + 0.5, 101)
    elif isinstance(bins, int | np.integer) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        edges = np.linspace(lo - 0.5, hi + 0.5, int(bins) + 1)
    else:
        edges = _finite_1d("bins", bins)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bin edges must be at least two strictly increasing values")
    hist, edges = np.histogram(c, bins=edges)
    return edges, hist.astype(np.int64)


# ----------------------------------------------------------------------------- ON fraction


@dataclass(frozen=True)
class TwoLevelFit:
    """Maximum-likelihood fit of the counts-per-bin histogram (see module doc).

    ``weights``, ``means``, ``phi`` are (OFF, ON) of the two-level model (variance
    ``mu + phi mu^2``); ``bridge_weight`` is the fraction of bins straddling a switch.
    ``n_levels`` is 1 when the BIC prefers a single level, in which case ``weights``/
    ``means``/``phi`` repeat the single level. ``threshold``: bins with counts > threshold
    are ON; ``on_fraction`` is their fraction and ``on_fraction_model`` the model's
    ``w_on + w_bridge / 2``. ``bic_one``/``bic_two`` use the convention -2 ln L + k ln n
    (lower is better). ``nll`` is the two-level model's negative log-likelihood at the
    returned optimum (on the histogram of counts, constant terms included) and ``start``
    names the starting split that reached it (the fit is multi-start, see the code).
    """

    n_levels: int
    weights: tuple[float, float]
    means: tuple[float, float]
    phi: tuple[float, float]
    threshold: float
    on_fraction: float
    bic_one: float
    bic_two: float
    bridge_weight: float = 0.0
    on_fraction_model: float = math.nan
    nll: float = math.nan
    start: str = ""


_PHI_MIN = 1e-7


def _nb_logpmf(c: np.ndarray, mu: float, phi: float) -> np.ndarray:
    """log NB(c; mean mu, variance mu + phi mu^2); c may be non-integer (gamma extension)."""
    mu = max(mu, 1e-12)
    if phi * mu < 1e-9:
        return c * math.log(mu) - mu - special.gammaln(c + 1.0)
    r = 1.0 / phi
    return (
        special.gammaln(c + r)
        - special.gammaln(r)
        - special.gammaln(c + 1.0)
        + r * math.log(r / (r + mu))
        + c * math.log(mu / (r + mu))
    )


def _bridge_logpmf(c: np.ndarray, mu_off: float, mu_on: float) -> np.ndarray:
    """log pmf of the counts of a bin straddling a switch: Poisson with mean
    mu_off + u (mu_on - mu_off), u ~ U(0, 1) (the ON fraction of the bin)::

        (1/D) integral_{mu_off}^{mu_on} Pois(c; m) dm = (P(c+1, mu_on) - P(c+1, mu_off)) / D

    with P the regularised lower incomplete gamma function and D = mu_on - mu_off."""
    d = max(mu_on - mu_off, 1e-12)
    p = special.gammainc(c + 1.0, mu_on) - special.gammainc(c + 1.0, mu_off)
    return np.log(np.maximum(p, 1e-300)) - math.log(d)


def _two_level_nll(values, mult, w, means, phi) -> float:
    """-ln L of the (OFF, ON, bridge) mixture with weights ``w`` on a histogram."""
    a, b = means
    with np.errstate(divide="ignore"):
        lw = np.log(np.asarray(w, dtype=np.float64))
    la = lw[0] + _nb_logpmf(values, a, phi[0])
    lb = lw[1] + _nb_logpmf(values, b, phi[1])
    lt = lw[2] + _bridge_logpmf(values, a, b) if w[2] > 0 else np.full(values.shape, -np.inf)
    return -float(np.sum(mult * np.logaddexp(np.logaddexp(la, lb), lt)))


def two_level_nll(counts, weights, means, phi, bridge_weight: float = 0.0) -> float:
    """Negative log-likelihood of the two-level model (module doc) at given parameters.

    ``weights`` (OFF, ON) are renormalised to ``1 - bridge_weight``. This is the function
    :func:`two_level_fit` minimises, so ``two_level_fit(c).nll <= two_level_nll(c, ...)`` at
    any parameters, in particular at the ones that generated ``c``: a check of the fit that
    does not depend on the optimiser.
    """
    c = _finite_1d("counts", counts)
    values, mult = np.unique(np.round(c), return_counts=True)
    w_off, w_on = (float(x) for x in weights)
    scale = (1.0 - float(bridge_weight)) / (w_off + w_on)
    w = (w_off * scale, w_on * scale, float(bridge_weight))
    return _two_level_nll(values, mult.astype(np.float64), w, means, phi)


def _fit_one_level(values: np.ndarray, mult: np.ndarray) -> tuple[float, float, float]:
    n = mult.sum()
    mu = float(np.sum(values * mult) / n)
    var = float(np.sum(mult * (values - mu) ** 2) / n)
    if mu <= 0:
        return 0.0, _PHI_MIN, 0.0

    def nll(lphi):
        return -float(np.sum(mult * _nb_logpmf(values, mu, math.exp(lphi))))

    phi0 = max((var - mu) / mu**2, _PHI_MIN)
    res = optimize.minimize_scalar(
        nll, bounds=(math.log(_PHI_MIN), math.log(max(10.0 * phi0, 1e-3) + 10.0)), method="bounded"
    )
    lphi = res.x if nll(res.x) < nll(math.log(phi0)) else math.log(phi0)
    return mu, math.exp(lphi), -nll(lphi)


def _otsu(values: np.ndarray, mult: np.ndarray) -> float:
    """Otsu's threshold on a histogram (value, multiplicity): maximise between-class variance."""
    w = mult / mult.sum()
    cw = np.cumsum(w)
    cm = np.cumsum(w * values)
    mt = cm[-1]
    w0 = cw[:-1]
    w1 = 1.0 - w0
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - cm[:-1]) ** 2 / (w0 * w1)
    between = np.where((w0 > 0) & (w1 > 0), between, -1.0)
    i = int(np.argmax(between))
    return 0.5 * (values[i] + values[i + 1])


def two_level_fit(counts) -> TwoLevelFit:
    """Fit one- and two-level counting models to a trace's counts per bin (module doc)."""
    c = _finite_1d("counts", counts)
    if np.any(c < 0):
        raise ValueError("counts must be >= 0")
    values, mult = np.unique(np.round(c), return_counts=True)
    mult = mult.astype(np.float64)
    n = float(c.size)
    mu1, phi1, ll1 = _fit_one_level(values, mult)
    bic1 = -2.0 * ll1 + 2.0 * math.log(n)

    def single(reason_threshold: float) -> TwoLevelFit:
        frac = float(np.mean(c > reason_threshold))
        return TwoLevelFit(
            1,
            (0.0, 1.0),
            (mu1, mu1),
            (phi1, phi1),
            reason_threshold,
            frac,
            bic1,
            math.inf,
            0.0,
            1.0,
        )

    def low_threshold() -> float:
        # largest integer below the level's 1e-6 quantile
        grid = np.arange(0.0, max(values[-1], 1.0) + 1.0)
        cdf = np.cumsum(np.exp(_nb_logpmf(grid, mu1, phi1)))
        below = np.nonzero(cdf < 1e-6)[0]
        return float(below[-1]) if below.size else -0.5

    if values.size < 3 or mu1 <= 0:
        return single(low_threshold())

    # two-level fit (+ transition bridge), multi-start: the likelihood of a two-level mixture
    # has local optima (a broad "OFF" level swallowing the straddling bins, or a split of a
    # flickering ON level), and which one a quasi-Newton optimiser reaches depends on its
    # path (SciPy's L-BFGS-B rewrite of 1.15 changed it). So we start from several splits of
    # the histogram and keep the best likelihood: Otsu's split, a split in log counts (finds
    # a rare OFF level far below a large ON level), and "OFF at the 1st percentile, ON at the
    # median" (the review's case: 2 % OFF, a flickering ON level).
    def moments(sel: np.ndarray) -> tuple[float, float, float]:
        m = mult[sel].sum()
        mu = float(np.sum(values[sel] * mult[sel]) / m)
        var = float(np.sum(mult[sel] * (values[sel] - mu) ** 2) / m)
        return m / n, max(mu, 1e-3), max((var - mu) / max(mu, 1e-3) ** 2, 1e-4)

    cdf = np.cumsum(mult) / n
    q01 = float(values[min(np.searchsorted(cdf, 0.01), values.size - 1)])
    q50 = float(values[min(np.searchsorted(cdf, 0.5), values.size - 1)])
    splits = [
        ("otsu", _otsu(values, mult)),
        ("otsu_log", float(np.expm1(_otsu(np.log1p(values), mult)))),
        ("percentile", 0.5 * (q01 + q50)),
    ]
    starts = []
    for name, thr in splits:
        lo = values <= thr
        if not lo.any() or lo.all():
            continue
        (w0, m0, p0), (w1, m1, p1) = moments(lo), moments(~lo)
        starts.append((name, w0, m0, p0, w1, m1, p1))

    def unpack(p):
        # weights by softmax over (off, on, bridge) with the ON logit fixed at 0
        z = np.array([p[0], 0.0, p[1]])
        w = np.exp(z - special.logsumexp(z))
        mu_off = math.exp(p[2])
        mu_on = mu_off + math.exp(p[3])
        return w, mu_off, mu_on, math.exp(p[4]), math.exp(p[5])

    def nll(p):
        w, a, b, pa, pb = unpack(p)
        return _two_level_nll(values, mult, w, (a, b), (pa, pb))

    top = math.log(values[-1] + 1) + 1
    bounds = [
        (-15, 15),
        (-15, 5),
        (-12, top),
        (-12, top),
        (math.log(_PHI_MIN), math.log(50.0)),
        (math.log(_PHI_MIN), math.log(50.0)),
    ]
    lo_b, hi_b = np.array([b[0] for b in bounds]), np.array([b[1] for b in bounds])
    best, best_start = None, ""
    for name, w0, m0, p0, w1, m1, p1 in starts:
        x0 = np.array(
            [
                math.log(max(w0, 1e-3) / max(w1, 1e-3)),
                math.log(0.01 / max(w1, 1e-3)),
                math.log(m0),
                math.log(max(m1 - m0, 1e-3)),
                math.log(max(p0, _PHI_MIN)),
                math.log(max(p1, _PHI_MIN)),
            ]
        )
        for suffix, x_init in (("", x0), ("+poisson", np.r_[x0[:4], -6.9, -6.9])):
            res = optimize.minimize(
                nll, np.clip(x_init, lo_b, hi_b), method="L-BFGS-B", bounds=bounds
            )
            if best is None or res.fun < best.fun:
                best, best_start = res, name + suffix
    if best is None:
        return single(low_threshold())
    w, a, b, pa, pb = unpack(best.x)
    ll2 = -best.fun
    bic2 = -2.0 * ll2 + 7.0 * math.log(n)
    if bic2 >= bic1 or min(w[0], w[1]) * n < 1.0:
        return single(low_threshold())
    thr = 0.5 * (a + b)  # a bin is ON when it is more than half ON (module doc)
    frac = float(np.mean(c > thr))
    return TwoLevelFit(
        n_levels=2,
        weights=(float(w[0]), float(w[1])),
        means=(a, b),
        phi=(pa, pb),
        threshold=float(thr),
        on_fraction=frac,
        bic_one=bic1,
        bic_two=bic2,
        bridge_weight=float(w[2]),
        on_fraction_model=float(w[1] + 0.5 * w[2]),
        nll=float(best.fun),
        start=best_start,
    )


@dataclass(frozen=True)
class OnFraction:
    """ON fraction of a trace with its uncertainty (see :func:`on_fraction`).

    ``fraction``: fraction of bins with counts > ``threshold``. ``fraction_ci``: 68.27 %
    interval for the emitter's long-run ON probability, ``fraction_err`` its half-width
    (never 0, also at 0 % and 100 % ON). ``n_eff``: the number of independent bins the
    interval is based on, ``n_switches`` the ON/OFF changes seen between consecutive bins.
    Unpacks as ``fraction, threshold`` like the tuple older code expected.
    """

    fraction: float
    fraction_err: float
    fraction_ci: tuple[float, float]
    threshold: float
    n_bins: int
    n_switches: int
    n_eff: float

    def __iter__(self):
        return iter((self.fraction, self.threshold))

    def as_dict(self) -> dict:
        return {
            "on_fraction": self.fraction,
            "on_fraction_err": self.fraction_err,
            "on_fraction_ci": list(self.fraction_ci),
            "threshold": self.threshold,
            "n_bins": self.n_bins,
            "n_switches": self.n_switches,
            "n_eff": self.n_eff,
        }


def _on_fraction_result(on: np.ndarray, thr: float, n_draws: int = 4000) -> OnFraction:
    """Fraction of ON bins, and a 68.27 % interval for the long-run ON probability.

    Consecutive bins are correlated (a state lasts many bins), so the ON/OFF sequence is
    modelled as a two-state Markov chain with switching probabilities per bin ``a``
    (ON -> OFF) and ``b`` (OFF -> ON), whose long-run ON probability is ``b / (a + b)``.
    With Jeffreys priors the posteriors are ``a ~ Beta(n_10 + 1/2, n_11 + 1/2)`` and
    ``b ~ Beta(n_01 + 1/2, n_00 + 1/2)`` (``n_ij``: transitions from i to j between
    consecutive bins); the interval is the central 68.27 % of ``b / (a + b)`` over
    ``n_draws`` posterior draws (fixed seed: the same trace gives the same interval). A
    record with few switches thus gets a wide interval -- it has seen few independent ON
    and OFF periods -- and one that is ON throughout still gets a lower end below 1.
    ``n_eff`` is the number of independent bins with the same variance,
    ``n (1 - lam) / (1 + lam)`` with ``lam = 1 - a - b`` at the posterior means. For
    power-law (non-Markov) dwell times the interval describes this record's statistics,
    not the heavier tails of a longer one. Coverage (tests/analysis/test_blinking.py) is
    within 0.07 of nominal for records with tens of switches or more; a record with only a
    few switches, i.e. shorter than a few dwell times, under-covers (measured: 0.53 at about
    two ON/OFF cycles, 0.03 for a record ten times shorter than one ON period) -- no
    interval from such a record can say how long the rare state lasts.
    """
    n = int(on.size)
    f = float(on.mean())
    prev, nxt = on[:-1], on[1:]
    n11 = float(np.count_nonzero(prev & nxt))
    n10 = float(np.count_nonzero(prev & ~nxt))
    n01 = float(np.count_nonzero(~prev & nxt))
    n00 = float(prev.size) - n11 - n10 - n01
    rng = np.random.default_rng(12345)
    a = rng.beta(n10 + 0.5, n11 + 0.5, n_draws)
    b = rng.beta(n01 + 0.5, n00 + 0.5, n_draws)
    p_on = b / (a + b)
    lo, hi = (float(x) for x in np.quantile(p_on, [0.15865, 0.84135]))
    a_m, b_m = (n10 + 0.5) / (n10 + n11 + 1.0), (n01 + 0.5) / (n01 + n00 + 1.0)
    lam = min(max(1.0 - a_m - b_m, -0.999), 0.999)
    n_eff = min(max(n * (1.0 - lam) / (1.0 + lam), 1.0), float(n))
    return OnFraction(
        fraction=f,
        fraction_err=0.5 * (hi - lo),
        fraction_ci=(lo, hi),
        threshold=float(thr),
        n_bins=n,
        n_switches=int(n10 + n01),
        n_eff=float(n_eff),
    )


def on_fraction(counts, threshold: float | str | None = "auto") -> OnFraction:
    """Fraction of trace bins that are ON (counts > threshold), with its uncertainty.

    ``threshold``: a number; ``"auto"`` (or ``None``): the midpoint between the OFF and ON
    levels fitted by :func:`two_level_fit` (module doc explains the choice); ``"otsu"``:
    Otsu's threshold. The fraction is a fraction of bins, i.e. of time at the bin
    resolution. The uncertainty is a 68.27 % interval for the long-run ON probability of a
    two-state Markov chain fitted to the ON/OFF sequence of bins (:class:`OnFraction`,
    :func:`_on_fraction_result`); it is not zero at 0 % or 100 % ON.
    """
    c = _finite_1d("counts", counts)
    if threshold is None or (isinstance(threshold, str) and threshold == "auto"):
        thr = two_level_fit(c).threshold
    elif isinstance(threshold, str):
        if threshold != "otsu":
            raise ValueError(f"threshold must be a number, 'auto' or 'otsu', got {threshold!r}")
        values, mult = np.unique(c, return_counts=True)
        if values.size < 2:
            thr = float(values[0]) - 0.5
        else:
            thr = _otsu(values, mult.astype(np.float64))
    else:
        thr = float(threshold)
        if not math.isfinite(thr):
            raise ValueError(f"threshold must be finite, got {threshold!r}")
    return _on_fraction_result(c > thr, thr)


# ----------------------------------------------------------------------------- per-bin delay


def mean_arrival_time_per_bin(
    t_ps,
    delay_ps,
    bin_ps: float,
    t_start_ps: float | None = None,
    t_stop_ps: float | None = None,
    *,
    t0_ps: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean photon delay after its laser sync, per trace bin (FLID lifetime axis).

    ``delay_ps[i]`` is photon i's time after the sync pulse that preceded it; ``t0_ps`` (the
    IRF position) is subtracted so that, for a mono-exponential decay much shorter than the
    sync period, the mean delay estimates the lifetime. Bins as in :func:`intensity_trace`.
    Returns ``(bin_start_ps, counts, mean_delay_ps)``; empty bins give NaN.
    """
    bin_ps = _positive("bin_ps", bin_ps)
    t = _times("t_ps", t_ps, allow_empty=True)
    d = _finite_1d("delay_ps", delay_ps, allow_empty=True)
    if d.size != t.size:
        raise ValueError(f"t_ps and delay_ps differ in length ({t.size} vs {d.size})")
    t0 = float(t0_ps)
    if not math.isfinite(t0):
        raise ValueError("t0_ps must be finite")
    starts, counts = intensity_trace(t, bin_ps, t_start_ps, t_stop_ps)
    start = float(starts[0])
    idx, ok = _bin_index(t, start, bin_ps, counts.size)
    sums = np.bincount(idx[ok], weights=d[ok] - t0, minlength=counts.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return starts, counts, mean


def window_mask(counts, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Boolean mask of trace bins with ``low <= counts < high`` (``None``: unbounded).

    E.g. the high- and low-intensity windows of D'Amato et al. Fig. 4a:
    ``window_mask(c, low=thr_hi)`` and ``window_mask(c, high=thr_lo)``.
    """
    c = _finite_1d("counts", counts)
    lo = -math.inf if low is None else float(low)
    hi = math.inf if high is None else float(high)
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise ValueError(f"need low < high, got {low!r}, {high!r}")
    return (c >= lo) & (c < hi)


def photons_in_windows(t_ps, bin_start_ps, selected, bin_ps: float | None = None) -> np.ndarray:
    """Mask of the photons that fall in the selected bins of a trace.

    ``bin_start_ps`` and ``selected`` (bool mask over bins, e.g. from :func:`window_mask`)
    describe the trace; the bin width is ``bin_ps`` or the (uniform) spacing of
    ``bin_start_ps``. Use the mask on the photons' delays to build the decay of the high-
    or low-intensity windows (D'Amato et al. Fig. 4b).
    """
    t = _times("t_ps", t_ps, allow_empty=True)
    b = _times("bin_start_ps", bin_start_ps)
    sel = np.asarray(selected)
    if sel.ndim != 1 or sel.size != b.size:
        raise ValueError(
            f"selected must be a 1-D mask with one entry per bin ({b.size}), got shape {sel.shape}"
        )
    if sel.dtype != bool:
        raise ValueError("selected must be a boolean mask")
    if bin_ps is None:
        if b.size < 2:
            raise ValueError("give bin_ps when the trace has a single bin")
        step = np.diff(b.astype(np.float64))
        bw = float(step[0])
        if bw <= 0 or np.max(np.abs(step - bw)) > 1e-9 * bw + 1e-6:
            raise ValueError("bin_start_ps must be uniformly spaced")
    else:
        bw = _positive("bin_ps", bin_ps)
    idx, ok = _bin_index(t, float(b[0]), bw, b.size)
    out = np.zeros(t.size, dtype=bool)
    out[ok] = sel[idx[ok]]
    return out


# ----------------------------------------------------------------------------- CPA kernels


@njit(cache=True)
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


@njit(cache=True)
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


@njit(cache=True)
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


# ----------------------------------------------------------------------------- critical values

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


# ----------------------------------------------------------------------------- change points


@dataclass(frozen=True, eq=False)
class ChangePointResult:
    """Change points and the constant-intensity segments between them.

    Change point ``j`` is at photon ``photon_index[j]`` (time ``times_ps[j]``), with the
    confidence interval ``[ci_lo_ps[j], ci_hi_ps[j]]`` at ``ci_level`` and the statistic
    ``statistic[j]`` (Z of the final re-test) against ``critical[j]``.

    Segment ``i`` spans ``[seg_start_ps[i], seg_stop_ps[i]]`` (photon to photon) and
    contains ``seg_photons[i]`` photons (inter-photon intervals) in ``seg_duration_ps[i]``;
    its intensity is ``seg_rate_cps`` +- ``seg_rate_err_cps`` (maximum likelihood,
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
    seg_rate_err_cps: np.ndarray = field(repr=False)

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
    t_in = _times("t_ps", t_ps)
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
        seg_rate_err_cps=rate_err,
    )


# ----------------------------------------------------------------------------- clustering


@dataclass(frozen=True, eq=False)
class LevelsResult:
    """Intensity states of the segments (W&Y clustering; module doc).

    ``n_states`` maximises ``bic`` (``bic[m-1]`` for m states, W&Y sign: larger is
    better; ``-inf`` where the m-state classification leaves a state without segments).
    The chosen model is the hard classification of the segments: ``state_of_segment``
    (states numbered by ascending rate), ``rates_cps`` (photons / time of each state's
    segments) +- ``rates_err_cps`` (Poisson), ``weights`` (fraction of segments) and
    ``time_fraction`` (fraction of the time) of each state.

    ``classification_log_likelihood[m-1]`` is the ln L_class that enters ``bic[m-1]``,
    ``n_transitions[m-1]`` the number of changes between *different* states along the
    record (the N_cp of the BIC), ``log_likelihood[m-1]`` the mixture log-likelihood of the
    EM fit (diagnostic only; the BIC does not use it). ``n_photons`` is the N of the BIC.
    """

    n_states: int
    rates_cps: np.ndarray
    rates_err_cps: np.ndarray
    weights: np.ndarray
    time_fraction: np.ndarray
    state_of_segment: np.ndarray = field(repr=False)
    bic: np.ndarray = field(repr=False)
    log_likelihood: np.ndarray = field(repr=False)
    classification_log_likelihood: np.ndarray = field(repr=False, default=None)
    n_transitions: np.ndarray = field(repr=False, default=None)
    n_photons: int = 0


def _segments_arrays(segments) -> tuple[np.ndarray, np.ndarray, int]:
    if isinstance(segments, ChangePointResult):
        n = segments.seg_photons.astype(np.float64)
        dur = segments.seg_duration_ps.astype(np.float64)
    else:
        try:
            n_raw, dur_raw = segments
        except (TypeError, ValueError):
            raise ValueError(
                "segments must be a ChangePointResult or a pair (photons, duration_ps)"
            ) from None
        n = _finite_1d("segment photons", n_raw)
        dur = _finite_1d("segment durations", dur_raw)
        if n.size != dur.size:
            raise ValueError(
                f"segment photons and durations differ in length ({n.size} vs {dur.size})"
            )
    if np.any(n < 0) or np.any(dur <= 0):
        raise ValueError("segments need photons >= 0 and durations > 0")
    return n, dur, int(round(n.sum()))


def _cluster_ll(n: np.ndarray, dur: np.ndarray) -> np.ndarray:
    """Max log-likelihood n ln(n/T) - n of pooled groups (n! terms dropped)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, n * np.log(n / dur) - n, 0.0)


def _ahc_partitions(n: np.ndarray, dur: np.ndarray, max_states: int) -> dict[int, np.ndarray]:
    """Agglomerative clustering along the intensity axis; labels for 1..max_states groups."""
    order = np.argsort(n / dur, kind="stable")
    # groups of consecutive (sorted) segments; start with one group per segment
    gn = n[order].copy()
    gt = dur[order].copy()
    size = np.ones(n.size, dtype=np.int64)
    out: dict[int, np.ndarray] = {}

    def labels() -> np.ndarray:
        lab_sorted = np.repeat(np.arange(size.size), size)
        lab = np.empty(n.size, dtype=np.int64)
        lab[order] = lab_sorted
        return lab

    if size.size <= max_states:
        out[size.size] = labels()
    while size.size > 1:
        cost = (
            _cluster_ll(gn[:-1], gt[:-1])
            + _cluster_ll(gn[1:], gt[1:])
            - _cluster_ll(gn[:-1] + gn[1:], gt[:-1] + gt[1:])
        )
        i = int(np.argmin(cost))
        gn[i] += gn[i + 1]
        gt[i] += gt[i + 1]
        size[i] += size[i + 1]
        gn = np.delete(gn, i + 1)
        gt = np.delete(gt, i + 1)
        size = np.delete(size, i + 1)
        if size.size <= max_states:
            out[size.size] = labels()
    return out


def _em_poisson(
    n: np.ndarray, dur: np.ndarray, labels: np.ndarray, m: int, n_iter: int = 500
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """EM for a mixture of m Poisson intensities; returns (ln L, rates, weights, resp)."""
    resp = np.zeros((n.size, m))
    resp[np.arange(n.size), labels] = 1.0
    lgam = special.gammaln(n + 1.0)
    ll_old = -math.inf
    rates = weights = None
    for _ in range(n_iter):
        w_sum = resp.sum(axis=0)
        weights = w_sum / n.size
        rates = (resp * n[:, None]).sum(axis=0) / np.maximum(
            (resp * dur[:, None]).sum(axis=0), 1e-300
        )
        keep = weights > 0
        with np.errstate(divide="ignore"):
            lp = (
                np.log(np.where(keep, weights, 1.0))[None, :]
                + n[:, None] * np.log(np.maximum(rates, 1e-300))[None, :]
                + n[:, None] * np.log(dur)[:, None]
                - rates[None, :] * dur[:, None]
                - lgam[:, None]
            )
        lp[:, ~keep] = -np.inf
        norm = special.logsumexp(lp, axis=1)
        ll = float(norm.sum())
        resp = np.exp(lp - norm[:, None])
        if ll - ll_old < 1e-9 * max(1.0, abs(ll)):
            break
        ll_old = ll
    return ll, rates, weights, resp


def _classify(
    n: np.ndarray, dur: np.ndarray, labels: np.ndarray, m: int, max_iter: int = 100
) -> np.ndarray | None:
    """Hard classification of the segments into m Poisson states (classification EM).

    Starting from ``labels``, alternate: state rates ``sum n / sum T`` and weights
    (fraction of segments) of each state; each segment to the state maximising
    ``ln p_m + n_j ln(I_m T_j) - I_m T_j``. Each step cannot lower the classification
    likelihood (Celeux & Govaert 1992), so it stops when nothing moves. Returns the labels
    or None when a state has lost all its segments (m states not resolvable)."""
    lab = labels.copy()
    for _ in range(max_iter):
        cnt = np.bincount(lab, minlength=m)
        if np.any(cnt == 0):
            return None
        rates = np.bincount(lab, weights=n, minlength=m) / np.bincount(
            lab, weights=dur, minlength=m
        )
        with np.errstate(divide="ignore"):
            score = (
                np.log(cnt / n.size)[None, :]
                + n[:, None] * np.log(np.maximum(rates, 1e-300))[None, :]
                - rates[None, :] * dur[:, None]
            )
        new = np.argmax(score, axis=1)
        if np.array_equal(new, lab):
            return lab
        lab = new
    return None if np.any(np.bincount(lab, minlength=m) == 0) else lab


def _classification_ll(n: np.ndarray, dur: np.ndarray, lab: np.ndarray, m: int) -> float:
    """ln L_class = sum_j ln[p_c(j) Poisson(n_j; I_c(j) T_j)] at the partition's ML
    estimates p_m = (segments in m) / (segments), I_m = sum n / sum T over state m."""
    cnt = np.bincount(lab, minlength=m).astype(np.float64)
    nm = np.bincount(lab, weights=n, minlength=m)
    tm = np.bincount(lab, weights=dur, minlength=m)
    rates = nm / tm
    mu = rates[lab] * dur
    with np.errstate(divide="ignore", invalid="ignore"):
        pois = np.where(n > 0, n * np.log(mu), 0.0) - mu - special.gammaln(n + 1.0)
    return float(np.sum(np.log(cnt[lab] / n.size)) + pois.sum())


def cluster_levels(segments, max_states: int = 8) -> LevelsResult:
    """Group change-point segments into intensity states (W&Y; module doc).

    ``segments``: a :class:`ChangePointResult` or a pair ``(photons, duration_ps)`` of
    arrays. For each number of states ``n_G`` = 1..``max_states``: agglomerative
    clustering, EM of a Poisson mixture started from it, hard classification of every
    segment (classification EM), then Watkins & Yang's BIC of that classification::

        BIC(n_G) = 2 ln L_class - (2 n_G - 1) ln max(N_cp, 1) - N_cp ln N

    with ``N_cp`` the number of transitions between *different* states along the record
    (adjacent segments of the same state merged), ``N`` the number of photons. Keeps the
    ``n_G`` with the largest BIC. With a pair ``(photons, duration_ps)`` the segments must
    be in time order (the transitions are counted along it).

    Limitation (as for W&Y's method itself): segments are cut where the likelihood ratio
    peaks, i.e. at fluctuations, so their intensities scatter more than Poisson
    (Bae et al., J. Phys. Chem. C 120, 29484 (2016)); unresolved fast switching also
    gives segments of intermediate intensity. Inspect ``bic`` and the rates.
    """
    n, dur, n_tot = _segments_arrays(segments)
    max_states = int(max_states)
    if max_states < 1:
        raise ValueError("max_states must be >= 1")
    n_seg = n.size
    max_states = min(max_states, n_seg)
    ln_n = math.log(max(n_tot, 1))
    parts = _ahc_partitions(n, dur, max_states)
    bic = np.full(max_states, -np.inf)
    lls = np.full(max_states, -np.inf)
    ll_class = np.full(max_states, -np.inf)
    n_tr = np.zeros(max_states, dtype=np.int64)
    labels: dict[int, np.ndarray] = {}
    for m in range(1, max_states + 1):
        ll, _, _, resp = _em_poisson(n, dur, parts[m], m)
        lls[m - 1] = ll
        lab = _classify(n, dur, np.argmax(resp, axis=1), m)
        if lab is None:  # EM emptied a state: classify from the agglomerative partition
            lab = _classify(n, dur, parts[m], m)
        if lab is None:
            continue
        d = int(np.count_nonzero(lab[1:] != lab[:-1]))
        ll_class[m - 1] = _classification_ll(n, dur, lab, m)
        n_tr[m - 1] = d
        bic[m - 1] = 2.0 * ll_class[m - 1] - (2 * m - 1) * math.log(max(d, 1)) - d * ln_n
        labels[m] = lab
    best = int(np.argmax(bic)) + 1
    lab = labels[best]
    nm = np.bincount(lab, weights=n, minlength=best)
    tm = np.bincount(lab, weights=dur, minlength=best)
    cnt = np.bincount(lab, minlength=best).astype(np.float64)
    rates = nm / tm
    order = np.argsort(rates, kind="stable")
    rank = np.empty(best, dtype=np.int64)
    rank[order] = np.arange(best)
    return LevelsResult(
        n_states=best,
        rates_cps=rates[order] * PS_PER_S,
        rates_err_cps=np.sqrt(nm[order]) / tm[order] * PS_PER_S,
        weights=cnt[order] / n_seg,
        time_fraction=tm[order] / dur.sum(),
        state_of_segment=rank[lab],
        bic=bic,
        log_likelihood=lls,
        classification_log_likelihood=ll_class,
        n_transitions=n_tr,
        n_photons=n_tot,
    )
