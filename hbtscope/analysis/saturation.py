"""Saturation curve: counts versus excitation power (Pierini et al.; D'Amato et al. eq. 1).

Model::

    counts(P) = A * (1 - exp(-P / P_sat)) + B * P

``A`` is the saturating single-exciton part, ``B`` the linear (biexciton/background) part,
``P_sat`` the saturation power -- or intensity, ``I_sat``: the fit works in whatever unit
``power`` has (see :func:`intensity_from_power`). Counts are background subtracted by the
caller, as in the seeds.

Blinking: the seeds take several acquisitions per power and keep the brightest. Pass
``counts`` of shape ``(n_powers, n_repeats)`` and the same is done here, with the bias of
the maximum corrected: the maximum of ``m`` Poisson counts of mean ``mu`` exceeds ``mu`` by
``e_m sqrt(mu)`` on average (Gaussian limit; ``e_m`` = mean of the largest of m standard
normals: e_2 = 0.564, e_3 = 0.846, e_5 = 1.163), i.e. by 0.85 sigma for the seeds' 3
repeats. Only the repeats compatible with the maximum (within 5 sigma of it) share its ON
level; with ``m`` of them the kept value is ``max - e_m sigma`` with uncertainty
``sqrt(v_m) sigma`` (``v_m`` = variance of that largest normal; v_1 = 1, v_2 = 1 - 1/pi,
v_3 = 0.560). A
repeat caught in a dip (below the 5-sigma band) therefore does not bias the point; if every
repeat of a power was partly dimmed by flickering the bias is bounded by the depth of the
dimming and is flagged by the robust fit below.

Robust fit (``blinking_robust=True``), for acquisitions caught in a dip: after a weighted
least-squares fit, the points furthest *below* the curve (residuals studentised by their
leverage) are candidates; the fit is repeated without each, and the candidate whose removal
lowers chi^2 most is dropped if it lies more than 4 sigma below the curve fitted without it
(sigma: its own error and that of the curve's prediction there, added in quadrature).
This repeats one point at a time, and only while at least 3 degrees of freedom remain (a
sweep of 6 points or fewer is fitted whole: with dof 2 a dropped point let the curve bend onto
the others, B < 0); at the end, dropped points that agree with the final fit within 4 sigma
are re-admitted. Blinking only ever lowers the counts, hence the one-sided
rule (a two-sided one fails when dips cluster at high power: the fit passes between dipped
and good points, and good points as far above as the dips are below can go first); the
deletion test handles a dip at the end of the sweep, which drags the curve onto itself.
The final fit is an ordinary weighted least-squares fit of the remaining points, so the
quoted 1-sigma errors are Gauss-Markov errors (scaled up by sqrt(chi2_red) when
chi2_red > 1). We tried the robust losses of scipy ``least_squares`` (soft-L1, Cauchy)
first: with counts of 1e4-1e5 a dip is hundreds of sigma deep and any misfit of the curve
is tens of sigma, so these losses landed in wrong local minima (good points rejected, P_sat
off by 30 %) for about half of the test sweeps; the deletion rule recovered all of them.
Weights: ``counts_err`` if given, else Poisson ``sqrt(counts)`` (give ``counts_err`` when
a background was subtracted: its noise adds to the variance).

Objective: the fit minimises ``chi^2 = sum_i ((model(P_i) - y_i) / s_i)^2`` over the inlier
points (:func:`saturation_chi2` evaluates it at any parameters). It is global: chi^2 is
profiled over ln P_sat (A and B are linear) on a 161-point grid spanning 1e-3 x the smallest
to 1e3 x the largest power, then refined by Brent's method.
Goodness of fit: ``chi2_red = chi^2 / dof``, ``dof = n_inliers - 3``, ``gof_p_value`` the
chi2(dof) upper tail (Gaussian errors; after the robust rejection the statistic of the kept
points). Identifiability: ``identifiable`` is false, with a ``message`` and infinite errors
for the parameters concerned, when the information matrix ``J^T J / s^2`` is singular
(condition number > 1e12), an error exceeds 1e3 x max(|value|, the data's scale) or the
error of ln P_sat exceeds 10; ``at_bound`` when P_sat ended on the end of its grid (a sweep
entirely below saturation: then A (1 - exp(-P/P_sat)) ~ A P / P_sat is the same line as
B P and A, P_sat, B are not separately determined).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import integrate, optimize, stats

from hbtscope.analysis._gof import (
    MAX_LOG_ERROR,
    MAX_RELATIVE_ERROR,
    chi2_p_value,
    identifiability,
)
from hbtscope.analysis._result import scalar_dict

__all__ = [
    "SaturationResult",
    "intensity_from_power",
    "max_of_normals",
    "saturation_chi2",
    "saturation_fit",
    "saturation_model",
]

OUTLIER_SIGMA = 4.0
MIN_DOF_AFTER_REJECTION = 3
COMPATIBLE_SIGMA = 5.0


def saturation_model(p, A: float, p_sat: float, B: float) -> np.ndarray:
    """A (1 - exp(-p / p_sat)) + B p."""
    p = np.asarray(p, dtype=float)
    return A * -np.expm1(-p / p_sat) + B * p


def saturation_chi2(power, counts, counts_err, A: float, p_sat: float, B: float) -> float:
    """The objective of :func:`saturation_fit`: ``sum ((model(P) - y) / s)^2``.

    Pass ``result.power[result.inlier]``, ``result.counts[...]`` and
    ``result.counts_err[...]`` to evaluate it on the points the fit used.
    """
    y = np.asarray(counts, dtype=float)
    r = (saturation_model(power, A, p_sat, B) - y) / np.asarray(counts_err, dtype=float)
    return float(r @ r)


@lru_cache(maxsize=128)
def max_of_normals(m: int) -> tuple[float, float]:
    """Mean and variance of the largest of ``m`` independent standard normal variables."""
    m = int(m)
    if m < 1:
        raise ValueError("m must be >= 1")
    if m == 1:
        return 0.0, 1.0

    def pdf(x):
        return m * stats.norm.pdf(x) * stats.norm.cdf(x) ** (m - 1)

    mean = integrate.quad(lambda x: x * pdf(x), -12, 12, limit=200)[0]
    second = integrate.quad(lambda x: x * x * pdf(x), -12, 12, limit=200)[0]
    return float(mean), float(second - mean * mean)


def intensity_from_power(power_W, spot_area_um2: float) -> np.ndarray:
    """Excitation intensity in W/um^2 (the seeds' unit) from the power at the sample.

    ``I = P / spot_area``: the mean over ``spot_area_um2``. For the peak of a Gaussian spot
    of 1/e^2 radius w use ``spot_area_um2 = pi w^2 / 2``.
    """
    p = np.asarray(power_W, dtype=float)
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("power_W must be finite and >= 0")
    a = float(spot_area_um2)
    if not (math.isfinite(a) and a > 0):
        raise ValueError(f"spot_area_um2 must be > 0, got {spot_area_um2!r}")
    return p / a


@dataclass(frozen=True, eq=False)
class SaturationResult:
    """Result of :func:`saturation_fit` (1-sigma errors; ``cov`` over (A, P_sat, B)).

    ``power``, ``counts``, ``counts_err`` are the points fitted (after max-of-repeats and
    its bias correction), ``inlier`` marks those used in the final fit, ``n_compatible``
    how many repeats shared the maximum at each power. ``counts_at_sat`` is the model at
    P_sat. ``chi2`` is the objective at the optimum (:func:`saturation_chi2` over the
    inliers), ``gof_p_value`` its chi2(dof) tail; ``identifiable``, ``at_bound`` and
    ``message`` as in the module doc (errors of undetermined parameters are inf).
    """

    A: float
    A_err: float
    P_sat: float
    P_sat_err: float
    B: float
    B_err: float
    chi2_red: float
    dof: int
    n_outliers: int
    counts_at_sat: float
    cov: np.ndarray = field(repr=False)
    power: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)
    counts_err: np.ndarray = field(repr=False)
    inlier: np.ndarray = field(repr=False)
    n_compatible: np.ndarray = field(repr=False)
    chi2: float = math.nan
    gof_p_value: float = math.nan
    converged: bool = True
    identifiable: bool = True
    at_bound: bool = False
    message: str = ""

    def model(self, p) -> np.ndarray:
        return saturation_model(p, self.A, self.P_sat, self.B)

    def as_dict(self) -> dict[str, float | int | str | bool | list[float]]:
        """All scalar fields as plain Python scalars (arrays are left out)."""
        return scalar_dict(self)


def _reduce_repeats(
    c: np.ndarray, err: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max over repeats with the max-of-m bias removed (module doc)."""
    n_p = c.shape[0]
    val = np.empty(n_p)
    sig = np.empty(n_p)
    n_comp = np.zeros(n_p, dtype=np.int64)
    for i in range(n_p):
        row = c[i]
        ok = np.isfinite(row)
        if not np.any(ok):
            raise ValueError(f"counts: every repeat at power index {i} is NaN")
        r = row[ok]
        j = int(np.argmax(r))
        if err is None:
            s = math.sqrt(max(r[j], 1.0))
        else:
            e = err[i][ok]
            s = float(e[j])
        m = int(np.sum(r >= r[j] - COMPATIBLE_SIGMA * s))
        e_m, v_m = max_of_normals(m)
        val[i] = r[j] - e_m * s
        sig[i] = math.sqrt(v_m) * s
        n_comp[i] = m
    return val, sig, n_comp


@dataclass
class _Fit:
    x: np.ndarray  # (A, ln P_sat, B)
    cost: float  # chi^2 / 2
    jac: np.ndarray  # weighted Jacobian d(resid)/d(A, ln P_sat, B)
    at_bound: bool = False  # ln P_sat at the end of its grid


def _linear_part(x, y, s, p_sat):
    """Best (A, B) for a fixed P_sat (weighted linear least squares) and chi^2."""
    g = -np.expm1(-x / p_sat)
    m = np.vstack([g, x]).T / s[:, None]
    coef = np.linalg.lstsq(m, y / s, rcond=None)[0]
    r = m @ coef - y / s
    return coef, float(r @ r)


def _fit(x, y, s, p0, lnp_bounds, n_grid: int = 161) -> _Fit:
    """Variable projection: the model is linear in A and B for fixed P_sat, so chi^2 is
    profiled over ln P_sat (grid over ``lnp_bounds``, then Brent's method around the best
    grid point). ``p0`` is unused (kept for the call sites); the grid makes it global."""
    grid = np.linspace(lnp_bounds[0], lnp_bounds[1], n_grid)
    chi = np.array([_linear_part(x, y, s, math.exp(g))[1] for g in grid])
    i = int(np.argmin(chi))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, n_grid - 1)]
    res = optimize.minimize_scalar(
        lambda g: _linear_part(x, y, s, math.exp(g))[1],
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-10},
    )
    lnp = float(res.x) if res.fun <= chi[i] else float(grid[i])
    p_sat = math.exp(lnp)
    (a, b), chi2 = _linear_part(x, y, s, p_sat)
    e = np.exp(-x / p_sat)
    jac = np.vstack([-np.expm1(-x / p_sat), -a * (x / p_sat) * e, x]).T / s[:, None]
    edge = 1e-6 * (lnp_bounds[1] - lnp_bounds[0])
    hit = lnp <= lnp_bounds[0] + edge or lnp >= lnp_bounds[1] - edge
    return _Fit(np.array([a, lnp, b]), 0.5 * chi2, jac, hit)


def _grad(x0: float, q: np.ndarray) -> np.ndarray:
    """Gradient of the model at one power w.r.t. (A, ln P_sat, B)."""
    p_sat = math.exp(q[1])
    e = math.exp(-x0 / p_sat)
    return np.array([-math.expm1(-x0 / p_sat), -q[0] * (x0 / p_sat) * e, x0])


def _reject_outliers(x, y, s, best, lnp_bounds, n_candidates: int = 6):
    """One-sided sequential rejection of dips (module doc).

    Each step considers the ``n_candidates`` points furthest below the curve (residual
    studentised by its leverage), refits without each, and drops the one whose removal
    lowers chi^2 most -- if it lies more than OUTLIER_SIGMA below the curve fitted without
    it. Finally re-admits dropped points that agree with the fit.
    """
    inlier = np.ones(x.size, dtype=bool)

    def model_of(q):
        return saturation_model(x, q[0], math.exp(q[1]), q[2])

    def fit_without(mask, start):
        return _fit(x[mask], y[mask], s[mask], start, lnp_bounds)

    for _ in range(2 * x.size):
        q = best.x
        r = (model_of(q) - y) / s  # a dip has r > 0
        jac = best.jac
        hat = np.zeros(x.size)
        hat[inlier] = np.einsum("ij,jk,ik->i", jac, np.linalg.pinv(jac.T @ jac), jac)
        t = np.where(inlier, r / np.sqrt(np.clip(1.0 - hat, 1e-3, None)), -np.inf)
        cands = [int(i) for i in np.argsort(t)[::-1][:n_candidates] if t[i] > 1.0]
        chosen = None
        for i in cands:
            keep = inlier.copy()
            keep[i] = False
            # a deletion must leave >= 3 degrees of freedom (6 points at 4+ powers): with
            # fewer, the 3-parameter curve bends onto the remaining points (B < 0) and the
            # 4-sigma test loses its meaning -- a short sweep is fitted whole, its goodness of
            # fit says if a point dipped
            if np.unique(x[keep]).size < 4 or keep.sum() - 3 < MIN_DOF_AFTER_REJECTION:
                continue
            trial = fit_without(keep, q)
            # deleted residual against the prediction's own uncertainty (a point at the end
            # of the sweep is an extrapolation of the others)
            g = _grad(x[i], trial.x)
            var_pred = float(g @ np.linalg.pinv(trial.jac.T @ trial.jac) @ g)
            deleted_resid = (model_of(trial.x)[i] - y[i]) / math.sqrt(s[i] ** 2 + var_pred)
            if deleted_resid > OUTLIER_SIGMA and (chosen is None or trial.cost < chosen[1].cost):
                chosen = (keep, trial)
        if chosen is not None:
            inlier, best = chosen
            continue
        back = ~inlier & (np.abs(r) <= OUTLIER_SIGMA)
        if np.any(back):
            inlier |= back
            best = fit_without(inlier, q)
            continue
        break
    return best, inlier


def saturation_fit(
    power,
    counts,
    *,
    counts_err=None,
    blinking_robust: bool = True,
) -> SaturationResult:
    """Fit ``A (1 - exp(-P/P_sat)) + B P`` to a saturation sweep (module doc).

    ``power``: (n,) excitation powers (or intensities), >= 0. ``counts``: (n,) or
    (n, n_repeats) background-subtracted counts; NaN marks a missing repeat in the 2-D form.
    ``counts_err``: 1-sigma errors of the individual acquisitions (same shape as counts);
    default Poisson.
    """
    x = np.asarray(power, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"power must be 1-D, got shape {x.shape}")
    if x.size == 0:
        raise ValueError("power is empty")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("power must be finite and >= 0")
    c = np.asarray(counts, dtype=float)
    if c.ndim not in (1, 2) or c.shape[0] != x.size:
        raise ValueError(
            f"counts must have shape ({x.size},) or ({x.size}, n_repeats), got {c.shape}"
        )
    err = None
    if counts_err is not None:
        err = np.asarray(counts_err, dtype=float)
        if err.shape != c.shape:
            raise ValueError(f"counts_err must have the shape of counts {c.shape}, got {err.shape}")
        if not np.all(np.isfinite(err[np.isfinite(c)])) or np.any(err[np.isfinite(c)] <= 0):
            raise ValueError("counts_err must be finite and > 0")
    if c.ndim == 1:
        if not np.all(np.isfinite(c)):
            raise ValueError("counts contains NaN or inf")
        y = c.copy()
        s = np.sqrt(np.maximum(y, 1.0)) if err is None else err.copy()
        n_comp = np.ones(x.size, dtype=np.int64)
    else:
        if c.shape[1] == 0:
            raise ValueError("counts has no repeats")
        if np.any(np.isinf(c)):
            raise ValueError("counts contains inf")
        y, s, n_comp = _reduce_repeats(c, err)
    if np.unique(x).size < 4:
        raise ValueError("need at least 4 distinct powers to fit 3 parameters")
    if np.max(y) <= 0:
        raise ValueError("counts are all <= 0: nothing to fit")

    pos = x[x > 0]
    if pos.size == 0:
        raise ValueError("need powers > 0")
    lnp_bounds = (math.log(pos.min()) - math.log(1e3), math.log(pos.max()) + math.log(1e3))
    best = _fit(x, y, s, None, lnp_bounds)
    inlier = np.ones(x.size, dtype=bool)
    if blinking_robust:
        best, inlier = _reject_outliers(x, y, s, best, lnp_bounds)
    q = best.x
    xi, yi, si = x[inlier], y[inlier], s[inlier]
    res = (saturation_model(xi, q[0], math.exp(q[1]), q[2]) - yi) / si
    dof = int(xi.size - 3)
    chi2_red = float(np.sum(res**2) / dof) if dof > 0 else math.nan
    jac = best.jac
    try:
        cov_q = np.linalg.inv(jac.T @ jac)
    except np.linalg.LinAlgError:
        cov_q = np.linalg.pinv(jac.T @ jac)
    if dof > 0 and chi2_red > 1.0:
        cov_q = cov_q * chi2_red
    p_sat = math.exp(q[1])
    y_scale = float(np.max(np.abs(yi)))
    limit = MAX_RELATIVE_ERROR * np.array(
        [max(abs(q[0]), y_scale), 1.0, max(abs(q[2]), y_scale / float(xi.max()))]
    )
    limit[1] = MAX_LOG_ERROR
    identifiable, message, bad = identifiability(
        jac.T @ jac,
        limit,
        names=("A", "ln_P_sat", "B"),
        at_bound=np.array([False, best.at_bound, False]),
        cov=cov_q,
    )
    d = np.diag([1.0, p_sat, 1.0])  # d(A, P_sat, B)/d(A, ln P_sat, B)
    cov = d @ cov_q @ d
    errs = np.where(bad, np.inf, np.sqrt(np.maximum(np.diag(cov), 0.0)))
    return SaturationResult(
        A=float(q[0]),
        A_err=float(errs[0]),
        P_sat=p_sat,
        P_sat_err=float(errs[1]),
        B=float(q[2]),
        B_err=float(errs[2]),
        chi2_red=chi2_red,
        dof=dof,
        n_outliers=int((~inlier).sum()),
        counts_at_sat=float(saturation_model(p_sat, q[0], p_sat, q[2])),
        cov=cov,
        power=x,
        counts=y,
        counts_err=s,
        inlier=inlier,
        n_compatible=n_comp,
        chi2=float(np.sum(res**2)),
        gof_p_value=chi2_p_value(float(np.sum(res**2)), dof),
        converged=True,
        identifiable=identifiable,
        at_bound=best.at_bound,
        message=message,
    )
