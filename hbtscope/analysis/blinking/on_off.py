"""ON/OFF analysis of an intensity trace: two-level fit, ON fraction, intensity windows.

:func:`on_fraction` is the fraction of bins above a threshold; ``threshold="auto"`` places it
midway between the levels of a fitted two-level model (:func:`two_level_fit`).
:func:`window_mask` / :func:`photons_in_windows` pick the photons of high- or low-intensity
windows (D'Amato et al. Fig. 4b).

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

"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from hbtscope.analysis._result import scalar_dict
from hbtscope.analysis._validate import as_times, finite_1d, positive
from hbtscope.analysis.blinking._bins import bin_index

__all__ = [
    "OnFraction",
    "TwoLevelFit",
    "on_fraction",
    "photons_in_windows",
    "two_level_fit",
    "two_level_nll",
    "window_mask",
]


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
    c = finite_1d("counts", counts)
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
    c = finite_1d("counts", counts)
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

    def as_dict(self) -> dict[str, float | int | list[float]]:
        """Scalars for a run file, the fraction fields named ``on_fraction*``."""
        return scalar_dict(
            self,
            rename={
                "fraction": "on_fraction",
                "fraction_err": "on_fraction_err",
                "fraction_ci": "on_fraction_ci",
            },
        )


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
    c = finite_1d("counts", counts)
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


def window_mask(counts, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Boolean mask of trace bins with ``low <= counts < high`` (``None``: unbounded).

    E.g. the high- and low-intensity windows of D'Amato et al. Fig. 4a:
    ``window_mask(c, low=thr_hi)`` and ``window_mask(c, high=thr_lo)``.
    """
    c = finite_1d("counts", counts)
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
    t = as_times("t_ps", t_ps, allow_empty=True)
    b = as_times("bin_start_ps", bin_start_ps)
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
        bw = positive("bin_ps", bin_ps)
    idx, ok = bin_index(t, float(b[0]), bw, b.size)
    out = np.zeros(t.size, dtype=bool)
    out[ok] = sel[idx[ok]]
    return out
