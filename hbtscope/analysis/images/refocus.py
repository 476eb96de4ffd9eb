"""Refocus fits: bounded least-squares Gaussian fits to an image (2-D) or a scan (1-D).

Gaussian fits (:func:`gaussian2d_fit`, :func:`gaussian1d_fit`): bounded least squares
(``scipy.optimize.least_squares``, trust-region reflective, analytic Jacobian). With
``noise="poisson"`` the residuals are weighted by the model's Poisson variance (two passes);
with ``noise="constant"`` unweighted. Errors are from the Jacobian at the optimum,
``cov = (J^T J)^-1 * s``, with ``s`` the reduced chi-square for ``"constant"`` and
``max(1, reduced chi-square)`` for ``"poisson"`` (over-dispersion, e.g. blinking, widens them).
The ``"poisson"`` weights ``1/model`` are iterated to their fixed point (at most 30 passes,
until the deviance changes by < 1e-10 relative): there the weighted normal equations
``sum (y - mu)/mu dmu/dp = 0`` are the Poisson likelihood equations, so the fit is the
Poisson maximum-likelihood estimate and its objective is the Poisson deviance
(:func:`gaussian_fit_objective`); for ``"constant"`` the objective is the sum of squares.
(For ``(var0, gain)`` the iterated weights give a quasi-likelihood estimate that minimises no
fixed function; it has no public objective.)
Goodness of fit: ``chi2_red`` = Pearson ``sum (y - mu)^2 / var / dof`` (``var`` = model for
``"poisson"``, ``var0 + gain * signal`` for ``(var0, gain)``; for ``"constant"`` the mean
squared residual, an estimate of the noise variance, not a test), ``dof = n_points - n_free``
and ``gof_p_value``: the deviance p-value with exact low-count moments (``"poisson"``), the
chi2(dof) tail (``(var0, gain)``), NaN for ``"constant"`` (no known noise).
Identifiability: ``identifiable`` is false, with a ``message`` and infinite errors for the
parameters concerned (instead of numbers like 1e9), when ``J^T W J`` is singular (condition
number of its correlation form > 1e12, e.g. a flat image: amplitude 0 and centre and width
undetermined) or an error exceeds its limit (the fitted region's span for the centre and the
width, 1e3 x max(|value|, the data's range) for amplitude and background), or when the
amplitude is not one standard error above 0 (no spot: centre and width undetermined).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize

from hbtscope.analysis._gof import (
    MAX_RELATIVE_ERROR,
    chi2_p_value,
    deviance_p_value,
    identifiability,
    poisson_deviance,
)
from hbtscope.analysis._result import scalar_dict
from hbtscope.analysis._validate import as_image
from hbtscope.analysis.images._gaussian import check_noise, gauss2d, profile
from hbtscope.units import FWHM_PER_SIGMA

__all__ = [
    "Gaussian1DFit",
    "Gaussian2DFit",
    "gaussian1d_fit",
    "gaussian2d_fit",
    "gaussian_fit_objective",
]


@dataclass(frozen=True)
class Gaussian2DFit:
    """Result of :func:`gaussian2d_fit`; coordinates in the units of the image axes."""

    x: float
    y: float
    sigma: float
    amplitude: float
    background: float
    x_err: float
    y_err: float
    sigma_err: float
    amplitude_err: float
    background_err: float
    chi2_red: float
    n_points: int
    success: bool
    at_bound: bool
    dof: int = 0
    gof_p_value: float = math.nan
    identifiable: bool = True
    message: str = ""

    def as_dict(self) -> dict[str, float | int | bool | str]:
        return scalar_dict(self)


@dataclass(frozen=True)
class Gaussian1DFit:
    """Result of :func:`gaussian1d_fit`."""

    centre: float
    sigma: float
    amplitude: float
    background: float
    centre_err: float
    sigma_err: float
    amplitude_err: float
    background_err: float
    chi2_red: float
    n_points: int
    success: bool
    at_bound: bool
    dof: int = 0
    gof_p_value: float = math.nan
    identifiable: bool = True
    message: str = ""

    @property
    def fwhm(self) -> float:
        return FWHM_PER_SIGMA * self.sigma

    def as_dict(self) -> dict[str, float | int | bool | str]:
        return scalar_dict(self)


@dataclass
class _LsqOut:
    x: np.ndarray
    success: bool
    err: np.ndarray
    chi2_red: float
    dof: int
    gof_p_value: float
    identifiable: bool
    message: str
    objective: float = math.nan  # sum of squares, deviance, or weighted chi2 for (var0, gain)


def _finish_fit(res, data, mu, noise, var, limit, names) -> _LsqOut:
    """Covariance from the weighted Jacobian at the optimum, scaled as documented; goodness
    of fit and identifiability (module doc)."""
    J = res.jac
    n, p = J.shape
    dof = n - p
    if isinstance(noise, str) and noise == "constant":
        chi2 = float(np.sum((data - mu) ** 2))
        p_gof = math.nan
    else:
        chi2 = float(np.sum((data - mu) ** 2 / var))
        p_gof = (
            deviance_p_value(data, np.maximum(mu, 1e-300), p)
            if noise == "poisson"
            else chi2_p_value(chi2, dof)
        )
    chi2_red = chi2 / dof if dof > 0 else math.nan
    scale = chi2_red if isinstance(noise, str) and noise == "constant" else max(1.0, chi2_red)
    info = J.T @ J
    try:
        cov = np.linalg.inv(info) * scale
    except np.linalg.LinAlgError:
        cov = np.full((p, p), np.nan)
    ok, message, bad = identifiability(info / scale, limit, names=names, cov=cov)
    err = np.where(bad, np.inf, np.sqrt(np.abs(np.diag(cov))))
    if noise == "poisson":
        objective = poisson_deviance(data, np.maximum(mu, 1e-300))
    else:
        objective = chi2
    return _LsqOut(res.x, bool(res.success), err, chi2_red, dof, p_gof, ok, message, objective)


def _no_spot(res: _LsqOut, i_amp: int, shape: list[int], scale: float, names) -> _LsqOut:
    """A spot whose amplitude is not one standard error above 0 (or sits at its bound 0)
    has no determined centre or width: flag it and make those errors infinite."""
    a, a_err = res.x[i_amp], res.err[i_amp]
    if a > a_err and a > 1e-9 * scale:
        return res
    err = res.err.copy()
    err[shape] = np.inf
    note = (
        f"amplitude {a:.3g} +- {a_err:.3g} not above 0: no spot; not determined by the data: "
        + ", ".join(names[i] for i in shape)
    )
    msg = note if not res.message else res.message + "; " + note
    return dataclasses.replace(res, err=err, identifiable=False, message=msg)


def gaussian_fit_objective(data, mu, noise: str = "constant") -> float:
    """The objective :func:`gaussian2d_fit` and :func:`gaussian1d_fit` minimise, for data and
    a model evaluated at any parameters (:func:`_gauss2d` / the 1-D profile): the sum of
    squares ``sum (y - mu)^2`` for ``noise="constant"``, the Poisson deviance
    ``2 sum [y ln(y/mu) - (y - mu)]`` for ``"poisson"`` (module doc)."""
    y = np.asarray(data, dtype=np.float64).ravel()
    m = np.asarray(mu, dtype=np.float64).ravel()
    if noise == "constant":
        return float(np.sum((y - m) ** 2))
    if noise == "poisson":
        return poisson_deviance(y, m)
    raise ValueError("the objective is defined for noise='constant' or 'poisson' only")


def _at_bound(x, lo, hi, which) -> bool:
    span = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
    tol = 1e-6 * np.maximum(span, 1e-12)
    return bool(np.any((np.abs(x - lo) <= tol)[which] | (np.abs(hi - x) <= tol)[which]))


def gaussian2d_fit(
    image,
    x: float,
    y: float,
    *,
    sigma: float = 1.0,
    window: int | None = None,
    x_coords=None,
    y_coords=None,
    integrated: bool = False,
    max_shift: float | None = None,
    sigma_bounds: tuple[float, float] | None = None,
    noise: str = "constant",
) -> Gaussian2DFit:
    """Bounded least-squares fit of ``b + A exp(-((X-x)^2 + (Y-y)^2) / (2 s^2))`` to an image.

    Parameters
    ----------
    image
        2-D array, rows along y.
    x, y
        Starting centre, in the units of ``x_coords``/``y_coords`` (default: pixel indices).
    sigma
        Starting Gaussian sigma (same units).
    window
        Fit only the pixels within +-``window`` pixels of the pixel nearest to ``(x, y)``
        (default: the whole image).
    x_coords, y_coords
        Uniformly spaced coordinates of the pixel centres along x (columns) and y (rows),
        e.g. stage positions of a refocus scan in um.
    integrated
        Model the Gaussian integrated over each pixel (camera frames) instead of sampled at the
        pixel centre (confocal scans). ``amplitude`` is the peak of the continuous profile in
        both cases.
    max_shift
        The centre may move at most this far from ``(x, y)`` along each axis (default: the
        fitted region).
    sigma_bounds
        ``(lo, hi)`` for sigma (default ``(0.25 sigma, 4 sigma)``, ``lo`` at least 0.05 pixel).
    noise
        ``"constant"`` (unweighted) or ``"poisson"`` (counts; weights 1/model).

    Returns
    -------
    Gaussian2DFit
        ``success`` is false if the optimiser failed; ``at_bound`` if the centre or sigma ended
        on a bound (the position is then not a free estimate).
    """
    img = as_image(image)
    noise = check_noise(noise)
    ny, nx = img.shape
    xc = np.arange(nx, dtype=float) if x_coords is None else np.asarray(x_coords, float)
    yc = np.arange(ny, dtype=float) if y_coords is None else np.asarray(y_coords, float)
    if xc.shape != (nx,) or yc.shape != (ny,):
        raise ValueError("x_coords/y_coords must have one entry per image column/row")
    dx = float(xc[1] - xc[0]) if nx > 1 else 1.0
    dy = float(yc[1] - yc[0]) if ny > 1 else 1.0
    if dx == 0 or dy == 0:
        raise ValueError("x_coords/y_coords must be strictly monotonic")
    j0 = int(np.clip(np.rint((x - xc[0]) / dx), 0, nx - 1))
    i0 = int(np.clip(np.rint((y - yc[0]) / dy), 0, ny - 1))
    if window is not None:
        w = int(window)
        rs = slice(max(0, i0 - w), min(ny, i0 + w + 1))
        cs = slice(max(0, j0 - w), min(nx, j0 + w + 1))
        img, xc, yc = img[rs, cs], xc[cs], yc[rs]
    sub = img
    n = sub.size
    if n < 6:
        raise ValueError("the fit region needs at least 6 pixels")
    s0 = float(sigma)
    if not s0 > 0:
        raise ValueError(f"sigma must be > 0, got {sigma!r}")
    ax, ay = abs(dx), abs(dy)
    lo_s, hi_s = sigma_bounds if sigma_bounds is not None else (0.25 * s0, 4.0 * s0)
    lo_s = max(float(lo_s), 0.05 * min(ax, ay))
    hi_s = max(float(hi_s), lo_s * 1.0001)
    if max_shift is None:
        xlo, xhi = min(xc[0], xc[-1]) - 0.5 * ax, max(xc[0], xc[-1]) + 0.5 * ax
        ylo, yhi = min(yc[0], yc[-1]) - 0.5 * ay, max(yc[0], yc[-1]) + 0.5 * ay
    else:
        m = float(max_shift)
        xlo, xhi, ylo, yhi = x - m, x + m, y - m, y + m
    edge = np.concatenate([sub[0], sub[-1], sub[1:-1, 0], sub[1:-1, -1]])
    b0 = float(np.median(edge))
    a0 = max(float(sub.max() - b0), 1e-12)
    p0 = np.array([np.clip(x, xlo, xhi), np.clip(y, ylo, yhi), np.clip(s0, lo_s, hi_s), a0, b0])
    lo = np.array([xlo, ylo, lo_s, 0.0, -np.inf])
    hi = np.array([xhi, yhi, hi_s, np.inf, np.inf])
    if noise == "poisson":
        lo[4] = 0.0
        p0[4] = max(p0[4], 0.0)
    data = sub.ravel()

    def model_jac(p):
        return gauss2d(p, xc, yc, ax, ay, integrated)

    span = max(float(np.ptp(xc)) + ax, float(np.ptp(yc)) + ay)
    scale = max(float(np.ptp(data)), float(np.max(np.abs(data))), 1e-300)
    limit = np.array([span, span, span, 0.0, 0.0])
    limit[3:] = MAX_RELATIVE_ERROR * np.maximum(np.abs(p0[3:]), scale)
    names = ("x", "y", "sigma", "amplitude", "background")
    res = _weighted_lsq(model_jac, data, p0, lo, hi, noise, limit, names, bg_index=4)
    # second start at the peak of the image smoothed by the PSF, if it lies more than one
    # sigma from the given start and inside the allowed box: a faint spot started far away
    # otherwise can end on a noise blob (measured: 2 of 20 fits of an 8-count spot started
    # 3 sigma away had a deviance worse than the truth's)
    sm = ndimage.gaussian_filter(sub, (s0 / ay, s0 / ax), mode="nearest")
    i1, j1 = np.unravel_index(int(np.argmax(sm)), sm.shape)
    x1, y1 = float(xc[j1]), float(yc[i1])
    if xlo <= x1 <= xhi and ylo <= y1 <= yhi and math.hypot(x1 - p0[0], y1 - p0[1]) > p0[2]:
        p1 = p0.copy()
        p1[:2] = (x1, y1)
        p1[3] = max(float(sub[i1, j1] - b0), 1e-12)
        alt = _weighted_lsq(model_jac, data, p1, lo, hi, noise, limit, names, bg_index=4)
        if alt.objective < res.objective:
            res = alt
    res = _no_spot(res, 3, [0, 1, 2], scale, names)
    p, err, chi2_red = res.x, res.err, res.chi2_red
    return Gaussian2DFit(
        x=float(p[0]),
        y=float(p[1]),
        sigma=float(p[2]),
        amplitude=float(p[3]),
        background=float(p[4]),
        x_err=float(err[0]),
        y_err=float(err[1]),
        sigma_err=float(err[2]),
        amplitude_err=float(err[3]),
        background_err=float(err[4]),
        chi2_red=chi2_red,
        n_points=int(n),
        success=bool(res.success),
        at_bound=_at_bound(p, lo, hi, np.array([True, True, True, False, False])),
        dof=res.dof,
        gof_p_value=res.gof_p_value,
        identifiable=res.identifiable,
        message=res.message,
    )


def _weighted_lsq(model_jac, data, p0, lo, hi, noise, limit, names, bg_index=-1):
    """Least squares with the weights of ``noise`` (model-based weights are iterated).

    ``"poisson"``: variance = model, iterated to the fixed point (the Poisson ML estimate,
    module doc); ``(var0, gain)``: variance = var0 + gain * max(model - background, 0), the
    background being parameter ``bg_index``.
    """
    p0 = np.clip(p0, lo, hi)
    nudge = 1e-9 * (1 + np.abs(p0))
    p0 = np.where(np.isfinite(lo) & (p0 == lo), p0 + nudge, p0)
    p0 = np.where(np.isfinite(hi) & (p0 == hi), p0 - nudge, p0)

    def run(p_start, w):
        def fun(p):
            return (model_jac(p)[0] - data) * w

        def jac(p):
            return model_jac(p)[1] * w[:, None]

        return optimize.least_squares(
            fun, p_start, jac=jac, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=200
        )

    var = None
    if noise == "poisson":
        floor = 1e-9 * max(1.0, float(np.max(data)))
        w = 1.0 / np.sqrt(np.maximum(data, 1.0))
        res = run(p0, w)
        dev = gaussian_fit_objective(data, model_jac(res.x)[0], "poisson")
        for _ in range(30):
            var = np.maximum(model_jac(res.x)[0], floor)
            new = run(res.x, 1.0 / np.sqrt(var))
            dev_new = gaussian_fit_objective(data, model_jac(new.x)[0], "poisson")
            if dev_new <= dev:
                res, gain, dev = new, dev - dev_new, dev_new
                if gain <= 1e-10 * (1.0 + dev):
                    break
            else:
                break
        var = np.maximum(model_jac(res.x)[0], floor)
    elif isinstance(noise, tuple):
        v0, k = noise
        res = None
        p = p0
        for _ in range(2):
            m = model_jac(p)[0]
            res = run(p, 1.0 / np.sqrt(v0 + k * np.maximum(m - p[bg_index], 0.0)))
            p = res.x
        var = v0 + k * np.maximum(model_jac(p)[0] - p[bg_index], 0.0)
    else:
        res = run(p0, np.ones_like(data))
    mu = model_jac(res.x)[0]
    return _finish_fit(res, data, mu, noise, var, limit, names)


def gaussian1d_fit(
    z,
    counts,
    *,
    centre: float | None = None,
    sigma: float | None = None,
    centre_bounds: tuple[float, float] | None = None,
    sigma_bounds: tuple[float, float] | None = None,
    noise: str = "poisson",
) -> Gaussian1DFit:
    """Bounded fit of ``b + A exp(-(z - c)^2 / (2 s^2))`` to a scan (e.g. counts versus z).

    Starting values (when not given): the centre at the largest 3-point running mean, sigma
    from the width of the points above half maximum. Default bounds: the centre inside the
    scanned range, sigma between a quarter of the step and the scanned span. ``noise`` as in
    :func:`gaussian2d_fit` (default ``"poisson"``: counts).
    """
    zz = np.asarray(z, dtype=np.float64).ravel()
    yy = np.asarray(counts, dtype=np.float64).ravel()
    if zz.shape != yy.shape or zz.size < 5:
        raise ValueError("z and counts must be 1-D of equal length >= 5")
    if not (np.all(np.isfinite(zz)) and np.all(np.isfinite(yy))):
        raise ValueError("z and counts must be finite")
    noise = check_noise(noise)
    if not isinstance(noise, str):
        raise ValueError("gaussian1d_fit: noise must be 'constant' or 'poisson'")
    order = np.argsort(zz)
    zz, yy = zz[order], yy[order]
    span = float(zz[-1] - zz[0])
    if not span > 0:
        raise ValueError("z must span a non-zero range")
    step = float(np.min(np.diff(zz)[np.diff(zz) > 0])) if np.any(np.diff(zz) > 0) else span
    smooth = np.convolve(yy, np.ones(3) / 3, mode="same")
    smooth[0], smooth[-1] = yy[0], yy[-1]
    b0 = float(np.percentile(yy, 10))
    k = int(np.argmax(smooth))
    c0 = float(zz[k]) if centre is None else float(centre)
    a0 = max(float(smooth[k] - b0), 1e-12)
    if sigma is None:
        above = zz[smooth - b0 >= 0.5 * a0]
        fw = float(above.max() - above.min()) if above.size > 1 else 2 * step
        s0 = max(fw / FWHM_PER_SIGMA, step)
    else:
        s0 = float(sigma)
    clo, chi = centre_bounds if centre_bounds is not None else (zz[0], zz[-1])
    slo, shi = sigma_bounds if sigma_bounds is not None else (0.25 * step, span)
    lo = np.array([float(clo), float(slo), 0.0, -np.inf if noise == "constant" else 0.0])
    hi = np.array([float(chi), float(shi), np.inf, np.inf])
    p0 = np.array([c0, s0, a0, b0 if noise == "constant" else max(b0, 0.0)])

    def model_jac(p):
        g, g_c, g_s = profile(zz, p[0], p[1], step, False)
        J = np.empty((zz.size, 4))
        J[:, 0] = p[2] * g_c
        J[:, 1] = p[2] * g_s
        J[:, 2] = g
        J[:, 3] = 1.0
        return p[3] + p[2] * g, J

    scale = max(float(np.ptp(yy)), float(np.max(np.abs(yy))), 1e-300)
    limit = np.array([span, span, 0.0, 0.0])
    limit[2:] = MAX_RELATIVE_ERROR * np.maximum(np.abs(p0[2:]), scale)
    names = ("centre", "sigma", "amplitude", "background")
    res = _weighted_lsq(model_jac, yy, p0, lo, hi, noise, limit, names)
    res = _no_spot(res, 2, [0, 1], scale, names)
    p, err, chi2_red = res.x, res.err, res.chi2_red
    return Gaussian1DFit(
        centre=float(p[0]),
        sigma=float(p[1]),
        amplitude=float(p[2]),
        background=float(p[3]),
        centre_err=float(err[0]),
        sigma_err=float(err[1]),
        amplitude_err=float(err[2]),
        background_err=float(err[3]),
        chi2_red=chi2_red,
        n_points=int(zz.size),
        success=bool(res.success),
        at_bound=_at_bound(p, lo, hi, np.array([True, True, False, False])),
        dof=res.dof,
        gof_p_value=res.gof_p_value,
        identifiable=res.identifiable,
        message=res.message,
    )
