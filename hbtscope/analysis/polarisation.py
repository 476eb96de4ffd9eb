"""Polarisation of the emission: Malus fit and degree of linear polarisation (Farrow et al.).

Model (analyser at angle theta in detection)::

    I(theta) = I_min + (I_max - I_min) cos^2(theta - theta0)
             = a + b cos(2 theta) + c sin(2 theta)

with ``a = (I_max + I_min) / 2``, ``sqrt(b^2 + c^2) = (I_max - I_min) / 2`` and
``theta0 = atan2(c, b) / 2``. The second form is linear in (a, b, c), so the fit is a
weighted linear least-squares problem with a unique minimum: no starting guess, and no
wrap-around trouble -- ``theta0`` comes out of ``atan2`` and is reported in [0, 180) deg.
Poisson weights use the *model* variance (iteratively re-weighted, which is the Poisson
maximum-likelihood solution for this linear model; weighting by the data would bias the
fit low), unless ``counts_err`` is given. Errors are propagated from the covariance of
(a, b, c); they are scaled up by sqrt(chi2_red) when the points scatter more than their
errors (e.g. blinking during the rotation).

``DOLP = (I_max - I_min) / (I_max + I_min) = sqrt(b^2 + c^2) / a``. Note that the modulus is
biased upward when the true DOLP is comparable to its error (Rice bias); ``dolp_err`` is the
linearised error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hbtscope.analysis._gof import chi2_p_value
from hbtscope.analysis._result import scalar_dict
from hbtscope.analysis._validate import finite_1d

__all__ = ["MalusResult", "malus_fit", "malus_model"]


def malus_model(theta_deg, i_min: float, i_max: float, theta0_deg: float) -> np.ndarray:
    """I_min + (I_max - I_min) cos^2(theta - theta0), angles in degrees."""
    th = np.deg2rad(np.asarray(theta_deg, dtype=float) - theta0_deg)
    return i_min + (i_max - i_min) * np.cos(th) ** 2


@dataclass(frozen=True, eq=False)
class MalusResult:
    """Result of :func:`malus_fit` (1-sigma errors). ``theta0_deg`` in [0, 180).

    Goodness of fit: ``chi2_red`` over ``dof`` and ``gof_p_value`` = P(chi2(dof) > chi2).
    ``identifiable`` is False (and ``theta0_deg_err`` infinite, ``message`` says why) when
    the modulation is not 2 sigma above zero: an unpolarised emitter has no dipole angle.
    """

    I_min: float
    I_min_err: float
    I_max: float
    I_max_err: float
    theta0_deg: float
    theta0_deg_err: float
    dolp: float
    dolp_err: float
    chi2_red: float
    dof: int
    gof_p_value: float
    identifiable: bool
    message: str
    coef: np.ndarray = field(repr=False)
    cov: np.ndarray = field(repr=False)

    def model(self, theta_deg) -> np.ndarray:
        return malus_model(theta_deg, self.I_min, self.I_max, self.theta0_deg)

    def as_dict(self) -> dict[str, float | int | str | bool | list[float]]:
        """All scalar fields as plain Python scalars (arrays are left out)."""
        return scalar_dict(self)


def malus_fit(theta_deg, counts, counts_err=None) -> MalusResult:
    """Fit Malus' law to counts versus analyser angle (module doc)."""
    th = finite_1d("theta_deg", theta_deg)
    y = finite_1d("counts", counts)
    if th.size != y.size:
        raise ValueError(f"theta_deg and counts differ in length ({th.size} vs {y.size})")
    if np.unique(np.round(np.mod(th, 180.0), 9)).size < 3:
        raise ValueError("need at least 3 distinct analyser angles (modulo 180 deg)")
    if y.size < 4:
        raise ValueError("need at least 4 points (3 parameters and one degree of freedom)")
    if counts_err is not None:
        s = finite_1d("counts_err", counts_err)
        if s.size != y.size:
            raise ValueError(f"counts_err must have {y.size} entries, got {s.size}")
        if np.any(s <= 0):
            raise ValueError("counts_err must be > 0")
    t2 = np.deg2rad(2.0 * th)
    X = np.vstack([np.ones_like(t2), np.cos(t2), np.sin(t2)]).T
    if np.linalg.matrix_rank(X) < 3:
        raise ValueError("the analyser angles do not determine the curve")

    def solve(var):
        w = 1.0 / var
        cov = np.linalg.inv(X.T @ (X * w[:, None]))
        return cov @ (X.T @ (w * y)), cov

    if counts_err is not None:
        coef, cov = solve(s**2)
        var = s**2
    else:
        var = np.maximum(y, 1.0)
        coef, cov = solve(var)
        for _ in range(20):  # IRLS with the model variance
            var = np.maximum(X @ coef, 1.0)
            new, cov = solve(var)
            done = np.allclose(new, coef, rtol=1e-10, atol=1e-12)
            coef = new
            if done:
                break
    res = y - X @ coef
    dof = int(y.size - 3)
    chi2_red = float(np.sum(res**2 / var) / dof)
    if chi2_red > 1.0:
        cov = cov * chi2_red
    a, b, c = coef
    m = math.hypot(b, c)
    i_max, i_min = a + m, a - m
    # Jacobians of (I_max, I_min, dolp, theta0[rad]) w.r.t. (a, b, c)
    if m > 0:
        dm = np.array([0.0, b / m, c / m])
        dth = 0.5 * np.array([0.0, -c, b]) / m**2
    else:
        dm = np.array([0.0, 0.0, 0.0])
        dth = np.zeros(3)
    d_max = np.array([1.0, 0.0, 0.0]) + dm
    d_min = np.array([1.0, 0.0, 0.0]) - dm
    dolp = m / a if a != 0 else math.nan
    d_dolp = (dm * a - m * np.array([1.0, 0.0, 0.0])) / a**2 if a != 0 else np.full(3, np.nan)

    def err(g):
        return float(math.sqrt(max(g @ cov @ g, 0.0)))

    theta0 = math.degrees(0.5 * math.atan2(c, b)) % 180.0
    theta0_err = math.degrees(err(dth)) if m > 0 else math.inf
    # the modulation depth m = (I_max - I_min)/2 has the error of (b, c) along (b, c); when
    # it is not 2 sigma above 0 the dipole angle is not determined by the data
    m_err = err(dm) if m > 0 else math.sqrt(max(cov[1, 1], cov[2, 2]))
    identifiable = bool(m > 2.0 * m_err)
    message = "ok"
    if not identifiable:
        message = f"no significant modulation ({m:.3g} +- {m_err:.3g}): theta0 undetermined"
        theta0_err = math.inf
    return MalusResult(
        I_min=float(i_min),
        I_min_err=err(d_min),
        I_max=float(i_max),
        I_max_err=err(d_max),
        theta0_deg=float(theta0),
        theta0_deg_err=float(theta0_err),
        dolp=float(dolp),
        dolp_err=err(d_dolp),
        chi2_red=chi2_red,
        dof=dof,
        gof_p_value=chi2_p_value(chi2_red * dof, dof),
        identifiable=identifiable,
        message=message,
        coef=coef,
        cov=cov,
    )
