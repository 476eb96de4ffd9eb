"""Rendering physics of the simulated wide-field camera and spectrometer (pure functions).

Nothing here knows about the world or its emitters: the caller passes positions, photon
rates (already including blinking, bleaching and collection for this exposure) and spectral
parameters, and gets back raw detector counts (ADU, offset included) as a real camera or
spectrometer would deliver them.

Wide-field camera (:func:`render_widefield_frame`)
--------------------------------------------------
Pixel ``[i, j]`` (row ``i``, column ``j``) of a frame of ``shape_px = (rows, cols)`` covers
``x in [x0 + j p, x0 + (j + 1) p)`` and ``y in [y0 + i p, y0 + (i + 1) p)`` with
``(x0, y0) = origin_um`` the outer corner of pixel ``[0, 0]`` and ``p = pixel_um`` the pixel
pitch in the sample plane. Emitter ``m`` at ``(x_m, y_m)`` puts on average
``mu_m = photons_per_s[m] * exposure_s`` photons through a Gaussian PSF of standard deviation
``psf_sigma_um``; pixel ``[i, j]`` receives the exact pixel integral

    mu_m * [Phi((x_{j+1} - x_m)/s) - Phi((x_j - x_m)/s)] * [Phi((y_{i+1} - y_m)/s) - Phi(...)]

(``Phi`` the normal CDF, written with ``erf``), evaluated only in a patch of
``2 h + 1`` pixels per axis around the emitter's pixel, ``h = ceil(4 s / p)``: the patch
reaches at least 4 s on every side, so at most 2 * 2 * (1 - Phi(4)) = 1.3e-4 of an emitter's
photons are dropped. Pixels of the patch outside the frame are dropped too, so an emitter
near or beyond the edge contributes only its overlap with the sensor.

Noise chain per pixel (in electrons, then converted):

1. photons ~ Poisson(sum of the emitter integrals + background * exposure);
2. photo-electrons ~ Binomial(photons, qe);
3. dark electrons ~ Poisson(dark * exposure);
4. cosmic-ray electrons (optional, below);
5. read noise ~ Normal(0, read_noise_e) electrons;
6. ADU = round(offset + electrons / gain), clipped to [0, 2**bit_depth - 1].

Steps 1-3 are drawn as a single Poisson(qe * photons + dark * exposure): a binomially thinned
Poisson variable is Poisson with the thinned mean, and a sum of independent Poisson variables
is Poisson, so this has exactly the same distribution and costs one random draw per pixel.

Camera defaults are those of a Hamamatsu ORCA-Flash 4.0 sCMOS (Pierini et al. and D'Amato et al.),
from the manufacturer's data sheet (V2/V3, standard scan), rounded; treat them as typical:

- pixel 6.5 um on the sensor, 2048 x 2048; behind a 40x objective 6.5 / 40 = 0.1625 um;
- read noise 1.6 e- rms (V3 standard scan; the per-pixel median is lower, ~1.4 e-);
- dark current 0.06 e-/pixel/s (air cooled, -10 C);
- conversion factor 0.46 e-/ADU, so the 16-bit range (65535 ADU) is ~30 000 e-, the full well;
- offset 100 ADU (Hamamatsu's usual digital offset);
- QE 0.7: the Gen II/V3 curve is ~0.82 at 560 nm and ~0.7 near 650 nm (the QD band);
- PSF sigma 0.11 um: the Gaussian approximation sigma ~ 0.21 lambda / NA of the Airy spot
  (Zhang, Zerubia & Olivo-Marin, Appl. Opt. 46, 1819 (2007)) for ~500 nm light at NA 0.95;
  for 650 nm QD light at NA 0.95 the same rule gives 0.14 um (pass ``psf_sigma_um``).

Cosmic rays (off by default): hits ~ Poisson(rate * sensor area * exposure), each a straight
streak of 1-4 pixels (probabilities 0.4, 0.3, 0.2, 0.1) in one of the 8 neighbour
directions, from a uniform random pixel; each pixel of a streak gets 300 + Exponential(1200)
electrons (a minimum-ionising particle frees ~80 e-/um of silicon, and the sensitive depth of
an sCMOS pixel is a few um: a few hundred to a few thousand electrons; typical values). Hit
pixels falling outside the frame are dropped. ``sensor_cm2=None`` means the frame's area on
the sensor with ORCA-Flash 4.0 pixels (``SENSOR_PIXEL_UM`` = 6.5 um); a sea-level rate of
order 1 /cm^2/min (0.017 /cm^2/s) is the muon flux.

Spectrometer (:func:`render_spectrum`, :func:`line_shape`, :func:`band_fraction`)
--------------------------------------------------------------------------------
The line of an emitter is defined in photon energy ``E = hc / lambda`` (``hc`` =
1239.841984 eV nm). With ``x = (E - E0) / s_E`` the photon density per unit energy is a
mixture in which ``tail`` is the fraction of photons in a red-tailed component:

    g(x) = (1 - tail) G(x) / Z_G + tail T(x) / Z_T,      G(x) = exp(-x^2 / 2)
    T(x) = exp(-x^2 / 2)               for x >= -k
    T(x) = exp(k^2 / 2 + k x)          for x <  -k,     k = K_MIN = sqrt(2 ln 2) = 1.1774

``T`` is the "GaussExp" shape (Gaussian core continued by an exponential tail with continuous
value and slope, Das 2016, arXiv:1603.08591) with the tail on the low-energy (red) side,
starting at the core's half maximum. ``Z_G``, ``Z_T`` normalise each over ``E > 0``, so ``g``
has unit area and ``tail = 0`` is a pure Gaussian in energy.

- Energy width: ``s_E = hc * fwhm_nm / cew_nm**2 / (2 sqrt(2 ln 2))``, the FWHM in nm mapped
  to energy with the derivative ``|dE/dlambda| = hc / lambda^2`` at the centre.
- ``G`` and ``T`` both peak at ``x = 0``, fall to half their peak at ``x = +-K_MIN`` and are
  proportional to each other above half maximum, so every mixture has the same peak and the
  same FWHM (in energy); ``tail`` only moves weight beyond the red half-maximum point,
  shifting the mean linearly to lower energy (the red): at ``tail = 1`` by 0.137 s_E
  (+1.9 nm for a 30 nm wide line at 650 nm).
- The density per unit wavelength is ``p(lambda) = g(x(lambda)) hc / lambda^2 / s_E``
  (the Jacobian is physical: counts in a grating pixel are photons per wavelength interval);
  it has unit area over all wavelengths.
- ``E0 = E_c - 2 s_E^2 / E_c`` with ``E_c = hc / cew_nm``: this puts the maximum of
  ``p(lambda)`` (solution of ``(E - E0) E = 2 s_E^2``, on the Gaussian side ``x > 0``)
  exactly at ``cew_nm``, for every tail. The mean wavelength of a tail-0 line is then
  ``cew_nm * (1 + 3 (s_E / E_c)^2)`` to leading order, e.g. +0.75 nm for a 30 nm wide line at
  650 nm, and its FWHM in nm is ``fwhm_nm`` to O((fwhm/cew)^2) (30.004 nm for 30 at 650).
- The cumulative integral is analytic, so pixel counts and :func:`band_fraction` are exact
  integrals (``Phi`` and ``exp``), not point samples.

Spectrometer noise: expected photons per pixel ``sum_m N_m * integral of p over the pixel``
(pixel edges halfway between the given centre wavelengths, the outer edges half a spacing
out), electrons ~ Poisson(qe * photons + dark * exposure) (as for the camera), plus cosmic
spikes, plus Normal(0, read_noise_e); ADU = round(offset + e / gain), clipped to the bit
depth. Cosmic spikes: ~ Poisson(cosmic_rate_per_s * exposure) per spectrum, each 1-3
adjacent pixels (equally likely) of log-uniform 1000-20000 electrons per pixel, so a robust
line-centre estimator has outliers to be robust against. Defaults (qe 0.6, 6 e- read noise,
2 e-/pixel/s dark with full vertical binning, offset 500 ADU, 1 e-/ADU, 0.02 spikes/s) are
typical of a thermo-electrically cooled scientific CCD behind a 300 mm spectrograph.

Polarisation (:func:`malus_transmission`)
------------------------------------------
Ideal linear analyser at angle theta for light of degree of linear polarisation ``dolp`` and
polarisation angle ``theta0``: T = (1 + dolp cos 2(theta - theta0)) / 2, i.e.
I(theta) = I_min + (I_max - I_min) cos^2(theta - theta0) with I_max, I_min = (1 +/- dolp)/2.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import erf, ndtr

HC_EV_NM = 1239.841984  # h c in eV nm (CODATA 2018, exact SI constants)
SENSOR_PIXEL_UM = 6.5  # ORCA-Flash 4.0 pixel pitch on the sensor
PSF_PATCH_SIGMAS = 4.0  # each emitter is rendered in a patch reaching >= this many sigma
K_MIN = math.sqrt(2.0 * math.log(2.0))  # GaussExp tail starts at the half maximum
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_SQRT2 = math.sqrt(2.0)
_SQRT2PI = math.sqrt(2.0 * math.pi)

# Cosmic-ray hits on the camera: streak length probabilities for 1..4 pixels, electrons/pixel.
_CAMERA_STREAK_P = np.array([0.4, 0.3, 0.2, 0.1])
_CAMERA_HIT_MIN_E = 300.0
_CAMERA_HIT_MEAN_EXTRA_E = 1200.0
_NEIGHBOURS = np.array([(0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1)])
# Cosmic spikes on the spectrometer: 1..3 pixels, log-uniform electrons per pixel.
_SPIKE_MIN_E = 1000.0
_SPIKE_MAX_E = 20000.0


# ----------------------------------------------------------------------------- validation


def _finite_scalar(name: str, value, *, lo=None, hi=None, lo_open=False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        rel = ">" if lo_open else ">="
        raise ValueError(f"{name} must be {rel} {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")
    return v


def _bit_depth(bit_depth) -> int:
    if isinstance(bit_depth, bool) or int(bit_depth) != bit_depth or not 1 <= bit_depth <= 16:
        raise ValueError(f"bit_depth must be an integer in 1..16, got {bit_depth!r}")
    return int(bit_depth)


def _vector(name: str, value) -> np.ndarray:
    a = np.atleast_1d(np.asarray(value, dtype=float))
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


# ----------------------------------------------------------------------------- camera


def _emitters(x_um, y_um, photons_per_s):
    x = _vector("x_um", x_um)
    y = _vector("y_um", y_um)
    r = _vector("photons_per_s", photons_per_s)
    if not (x.size == y.size == r.size):
        raise ValueError(
            "x_um, y_um and photons_per_s must have the same length, "
            f"got {x.size}, {y.size} and {r.size}"
        )
    if np.any(r < 0):
        raise ValueError("photons_per_s must be >= 0")
    return x, y, r


def _frame_geometry(shape_px, pixel_um, origin_um, psf_sigma_um):
    try:
        ny, nx = (int(n) for n in shape_px)
    except (TypeError, ValueError):
        raise ValueError(f"shape_px must be (rows, cols), got {shape_px!r}") from None
    if ny < 1 or nx < 1 or (ny, nx) != tuple(shape_px):
        raise ValueError(f"shape_px must be two positive integers, got {shape_px!r}")
    p = _finite_scalar("pixel_um", pixel_um, lo=0.0, lo_open=True)
    try:
        x0, y0 = (_finite_scalar("origin_um", v) for v in origin_um)
    except TypeError:
        raise ValueError(f"origin_um must be (x, y), got {origin_um!r}") from None
    s = _finite_scalar("psf_sigma_um", psf_sigma_um, lo=0.0, lo_open=True)
    return ny, nx, p, x0, y0, s


def _axis_fractions(c, lo, k, p, o, s):
    """Per emitter, fraction of a 1-D Gaussian (centre c, sd s) in pixels lo .. lo + k - 1."""
    edges = o + (lo[:, None] + np.arange(k + 1)[None, :]) * p
    cdf = erf((edges - c[:, None]) * (1.0 / (_SQRT2 * s)))
    return 0.5 * np.diff(cdf, axis=1)


def expected_photon_image(
    *,
    shape_px=(512, 512),
    pixel_um: float = 0.1625,
    origin_um=(0.0, 0.0),
    x_um,
    y_um,
    photons: Sequence[float] | np.ndarray,
    psf_sigma_um: float = 0.11,
) -> np.ndarray:
    """Expected photons per pixel (float64, shape ``shape_px``) from emitters with ``photons``.

    The noiseless image that :func:`render_widefield_frame` draws from (before background):
    Gaussian PSF integrated exactly over each pixel (erf), within a patch of at least
    ``PSF_PATCH_SIGMAS`` sigma around each emitter; only the overlap with the frame counts.
    """
    x, y, mu = _emitters(x_um, y_um, photons)
    ny, nx, p, x0, y0, s = _frame_geometry(shape_px, pixel_um, origin_um, psf_sigma_um)
    h = max(1, math.ceil(PSF_PATCH_SIGMAS * s / p))
    k = 2 * h + 1
    image = np.zeros(ny * nx)
    if x.size == 0:
        return image.reshape(ny, nx)
    # floor of a huge coordinate can overflow an int: clamp far-away emitters first
    jx = np.floor(np.clip((x - x0) / p, -2.0 * k, nx + 2.0 * k)).astype(np.int64) - h
    iy = np.floor(np.clip((y - y0) / p, -2.0 * k, ny + 2.0 * k)).astype(np.int64) - h
    keep = (mu > 0) & (jx + k > 0) & (jx < nx) & (iy + k > 0) & (iy < ny)
    if not np.any(keep):
        return image.reshape(ny, nx)
    x, y, mu, jx, iy = x[keep], y[keep], mu[keep], jx[keep], iy[keep]
    fx = _axis_fractions(x, jx, k, p, x0, s)  # (n, k)
    fy = _axis_fractions(y, iy, k, p, y0, s)
    w = (mu[:, None] * fy)[:, :, None] * fx[:, None, :]  # (n, k, k)
    cols = jx[:, None] + np.arange(k)[None, :]
    rows = iy[:, None] + np.arange(k)[None, :]
    ok = ((rows >= 0) & (rows < ny))[:, :, None] & ((cols >= 0) & (cols < nx))[:, None, :]
    flat = rows[:, :, None] * nx + cols[:, None, :]
    image += np.bincount(flat[ok], weights=w[ok], minlength=ny * nx)
    return image.reshape(ny, nx)


def _cosmic_electrons_camera(rng, ny, nx, mean_hits):
    """Electron image (flat, float) of the cosmic-ray streaks of one exposure."""
    n = rng.poisson(mean_hits)
    if n == 0:
        return None
    r0 = rng.integers(0, ny, n)
    c0 = rng.integers(0, nx, n)
    length = 1 + rng.choice(_CAMERA_STREAK_P.size, size=n, p=_CAMERA_STREAK_P)
    d = _NEIGHBOURS[rng.integers(0, _NEIGHBOURS.shape[0], n)]
    steps = np.arange(_CAMERA_STREAK_P.size)
    rows = r0[:, None] + d[:, 0:1] * steps[None, :]
    cols = c0[:, None] + d[:, 1:2] * steps[None, :]
    e = _CAMERA_HIT_MIN_E + rng.exponential(_CAMERA_HIT_MEAN_EXTRA_E, rows.shape)
    ok = (steps[None, :] < length[:, None]) & (rows >= 0) & (rows < ny) & (cols >= 0)
    ok &= cols < nx
    return np.bincount((rows * nx + cols)[ok], weights=e[ok], minlength=ny * nx)


def _to_adu(electrons, gain, offset, bit_depth):
    adu = np.rint(offset + electrons * (1.0 / gain))
    return np.clip(adu, 0, 2**bit_depth - 1, out=adu)


def render_widefield_frame(
    rng,
    *,
    shape_px=(512, 512),
    pixel_um: float = 0.1625,
    origin_um=(0.0, 0.0),
    x_um,
    y_um,
    photons_per_s,
    psf_sigma_um: float = 0.11,
    exposure_s: float,
    qe: float = 0.7,
    read_noise_e: float = 1.6,
    dark_e_per_px_s: float = 0.06,
    background_photons_per_px_s: float = 0.0,
    offset_adu: float = 100,
    gain_e_per_adu: float = 0.46,
    bit_depth: int = 16,
    cosmic_rate_per_cm2_s: float = 0.0,
    sensor_cm2: float | None = None,
) -> np.ndarray:
    """One raw sCMOS frame (uint16 ADU, offset included) of point emitters; see module doc.

    ``rng``: a ``numpy.random.Generator`` (or a seed for ``numpy.random.default_rng``).
    ``x_um``, ``y_um``, ``photons_per_s``: 1-D, same length (may be empty), detected-photon
    rate of each emitter during this exposure. Returns an array of ``shape_px``.
    """
    rng = np.random.default_rng(rng)
    t = _finite_scalar("exposure_s", exposure_s, lo=0.0)
    qe = _finite_scalar("qe", qe, lo=0.0, hi=1.0)
    read = _finite_scalar("read_noise_e", read_noise_e, lo=0.0)
    dark = _finite_scalar("dark_e_per_px_s", dark_e_per_px_s, lo=0.0)
    bg = _finite_scalar("background_photons_per_px_s", background_photons_per_px_s, lo=0.0)
    offset = _finite_scalar("offset_adu", offset_adu, lo=0.0)
    gain = _finite_scalar("gain_e_per_adu", gain_e_per_adu, lo=0.0, lo_open=True)
    bits = _bit_depth(bit_depth)
    rate = _finite_scalar("cosmic_rate_per_cm2_s", cosmic_rate_per_cm2_s, lo=0.0)
    x, y, r = _emitters(x_um, y_um, photons_per_s)
    ny, nx, *_ = _frame_geometry(shape_px, pixel_um, origin_um, psf_sigma_um)
    if sensor_cm2 is None:
        area = ny * nx * (SENSOR_PIXEL_UM * 1e-4) ** 2
    else:
        area = _finite_scalar("sensor_cm2", sensor_cm2, lo=0.0)

    lam = expected_photon_image(
        shape_px=(ny, nx),
        pixel_um=pixel_um,
        origin_um=origin_um,
        x_um=x,
        y_um=y,
        photons=r * t,
        psf_sigma_um=psf_sigma_um,
    ).ravel()
    # photons -> binomial QE -> plus Poisson dark == one Poisson draw (see module doc)
    lam *= qe
    lam += qe * bg * t + dark * t
    electrons = rng.poisson(lam).astype(np.float64)
    if rate > 0 and area > 0 and t > 0:
        hits = _cosmic_electrons_camera(rng, ny, nx, rate * area * t)
        if hits is not None:
            electrons += hits
    if read > 0:
        electrons += rng.normal(0.0, read, electrons.size)
    return _to_adu(electrons, gain, offset, bits).astype(np.uint16).reshape(ny, nx)


# ----------------------------------------------------------------------------- spectra


def _line_params(cew_nm, fwhm_nm, tail):
    cew = _finite_scalar("cew_nm", cew_nm, lo=0.0, lo_open=True)
    fwhm = _finite_scalar("fwhm_nm", fwhm_nm, lo=0.0, lo_open=True)
    tail = _finite_scalar("tail", tail, lo=0.0, hi=1.0)
    e_c = HC_EV_NM / cew
    s_e = HC_EV_NM * fwhm / (cew * cew) / _FWHM_PER_SIGMA
    e0 = e_c - 2.0 * s_e * s_e / e_c
    return e0, s_e, tail


def _tail_cdf(x):
    """Integral of T (module doc) from -inf to x."""
    k = K_MIN
    left = np.exp(0.5 * k * k + k * np.minimum(x, -k)) / k
    right = math.exp(-0.5 * k * k) / k + _SQRT2PI * (ndtr(x) - ndtr(-k))
    return np.where(x <= -k, left, right)


def _shape_cdf(x, x_min, tail):
    """Fraction of the line's photons with reduced energy in [x_min, x] (x_min: E = 0)."""
    x = np.maximum(np.asarray(x, dtype=float), x_min)
    g_lo = ndtr(x_min)
    gauss = (ndtr(x) - g_lo) / (1.0 - g_lo)
    t_lo = _tail_cdf(x_min)
    t_tot = _tail_cdf(np.inf) - t_lo
    return (1.0 - tail) * gauss + tail * (_tail_cdf(x) - t_lo) / t_tot


def _shape(x, x_min, tail):
    """Photon density per unit reduced energy x (unit area over x >= x_min)."""
    k = K_MIN
    gauss = np.exp(-0.5 * x * x)
    t = np.where(x >= -k, gauss, np.exp(0.5 * k * k + k * np.minimum(x, -k)))
    z_g = _SQRT2PI * (1.0 - ndtr(x_min))
    z_t = _tail_cdf(np.inf) - _tail_cdf(x_min)
    return np.where(x >= x_min, (1.0 - tail) * gauss / z_g + tail * t / z_t, 0.0)


def _x_of_wavelength(wavelength_nm, e0, s_e):
    """Reduced energy x = (hc/lambda - E0)/s_E; lambda <= 0 maps to +inf, lambda = inf to E=0."""
    lam = np.asarray(wavelength_nm, dtype=float)
    with np.errstate(divide="ignore"):
        energy = np.where(lam > 0, HC_EV_NM / np.where(lam > 0, lam, 1.0), np.inf)
    return (energy - e0) / s_e


def _cdf_in_wavelength(wavelength_nm, e0, s_e, tail):
    """Fraction of the line's photons at wavelengths >= wavelength_nm (i.e. E <= hc/lambda)."""
    x_min = -e0 / s_e  # E = 0
    return _shape_cdf(_x_of_wavelength(wavelength_nm, e0, s_e), x_min, tail)


def line_shape(wavelengths_nm, cew_nm: float, fwhm_nm: float, tail: float = 0.0) -> np.ndarray:
    """Photon density per nm (unit area over wavelength) of one line; see module doc."""
    lam = np.asarray(wavelengths_nm, dtype=float)
    if not np.all(np.isfinite(lam)):
        raise ValueError("wavelengths_nm must be finite")
    e0, s_e, tail = _line_params(cew_nm, fwhm_nm, tail)
    safe = np.where(lam > 0, lam, 1.0)
    x = (HC_EV_NM / safe - e0) / s_e
    dens = _shape(x, -e0 / s_e, tail) * HC_EV_NM / (safe * safe) / s_e
    return np.where(lam > 0, dens, 0.0)


def band_fraction(
    cew_nm: float, fwhm_nm: float, tail: float, band_nm: tuple[float, float]
) -> float:
    """Fraction of a line's photons with wavelength in ``band_nm = (lo, hi)`` (analytic).

    ``lo`` may be 0 and ``hi`` may be ``inf``; ``(0, inf)`` gives 1.
    """
    try:
        lo, hi = (float(b) for b in band_nm)
    except (TypeError, ValueError):
        raise ValueError(f"band_nm must be (lo, hi) in nm, got {band_nm!r}") from None
    if math.isnan(lo) or math.isnan(hi) or lo < 0 or not lo < hi:
        raise ValueError(f"band_nm must satisfy 0 <= lo < hi, got {band_nm!r}")
    e0, s_e, tail = _line_params(cew_nm, fwhm_nm, tail)
    f = _cdf_in_wavelength(np.array([lo, hi]), e0, s_e, tail)
    return float(min(1.0, max(0.0, f[0] - f[1])))


def _component(c, i):
    if isinstance(c, Mapping):
        try:
            vals = (c["photons_per_s"], c["cew_nm"], c["fwhm_nm"], c.get("tail", 0.0))
        except KeyError as exc:
            raise ValueError(
                f"components[{i}] needs keys photons_per_s, cew_nm, fwhm_nm (tail optional); "
                f"missing {exc}"
            ) from None
    else:
        vals = tuple(c)
        if len(vals) != 4:
            raise ValueError(
                f"components[{i}] must be (photons_per_s, cew_nm, fwhm_nm, tail), got {c!r}"
            )
    rate = _finite_scalar(f"components[{i}] photons_per_s", vals[0], lo=0.0)
    _line_params(vals[1], vals[2], vals[3])  # validates
    return rate, float(vals[1]), float(vals[2]), float(vals[3])


def pixel_edges_nm(wavelengths_nm) -> np.ndarray:
    """Pixel edges from pixel-centre wavelengths: midpoints, the outer ones half a step out."""
    lam = _vector("wavelengths_nm", wavelengths_nm)
    if lam.size < 2:
        raise ValueError("wavelengths_nm needs at least 2 pixels")
    if np.any(lam <= 0):
        raise ValueError("wavelengths_nm must be > 0")
    if np.any(np.diff(lam) <= 0):
        raise ValueError("wavelengths_nm must be strictly increasing")
    mid = 0.5 * (lam[1:] + lam[:-1])
    first = lam[0] - 0.5 * (lam[1] - lam[0])
    last = lam[-1] + 0.5 * (lam[-1] - lam[-2])
    return np.concatenate(([max(first, 0.0)], mid, [last]))


def expected_spectrum_photons(wavelengths_nm, components, exposure_s: float) -> np.ndarray:
    """Expected photons per spectrometer pixel (exact pixel integrals of each line)."""
    edges = pixel_edges_nm(wavelengths_nm)
    t = _finite_scalar("exposure_s", exposure_s, lo=0.0)
    if isinstance(components, Mapping):
        components = [components]
    out = np.zeros(edges.size - 1)
    for i, c in enumerate(components):
        rate, cew, fwhm, tail = _component(c, i)
        if rate == 0 or t == 0:
            continue
        e0, s_e, tail = _line_params(cew, fwhm, tail)
        cdf = _cdf_in_wavelength(edges, e0, s_e, tail)  # decreasing with wavelength
        out += rate * t * np.clip(cdf[:-1] - cdf[1:], 0.0, None)
    return out


def render_spectrum(
    rng,
    *,
    wavelengths_nm,
    components,
    exposure_s: float,
    qe: float = 0.6,
    read_noise_e: float = 6.0,
    dark_e_per_px_s: float = 2.0,
    offset_adu: float = 500,
    gain_e_per_adu: float = 1.0,
    cosmic_rate_per_s: float = 0.02,
    bit_depth: int = 16,
) -> np.ndarray:
    """One raw spectrum (float64 ADU, integer valued, offset included) per pixel centre.

    ``components``: sequence of ``(photons_per_s, cew_nm, fwhm_nm, tail)`` tuples or dicts
    with those keys (``tail`` optional, default 0); ``photons_per_s`` is the rate reaching
    the spectrometer. See the module doc for the line shape and noise.
    """
    rng = np.random.default_rng(rng)
    t = _finite_scalar("exposure_s", exposure_s, lo=0.0)
    qe = _finite_scalar("qe", qe, lo=0.0, hi=1.0)
    read = _finite_scalar("read_noise_e", read_noise_e, lo=0.0)
    dark = _finite_scalar("dark_e_per_px_s", dark_e_per_px_s, lo=0.0)
    offset = _finite_scalar("offset_adu", offset_adu, lo=0.0)
    gain = _finite_scalar("gain_e_per_adu", gain_e_per_adu, lo=0.0, lo_open=True)
    rate = _finite_scalar("cosmic_rate_per_s", cosmic_rate_per_s, lo=0.0)
    bits = _bit_depth(bit_depth)
    lam = expected_spectrum_photons(wavelengths_nm, components, t)
    electrons = rng.poisson(qe * lam + dark * t).astype(np.float64)
    n = lam.size
    hits = rng.poisson(rate * t) if rate > 0 and t > 0 else 0
    if hits:
        start = rng.integers(0, n, hits)
        width = rng.integers(1, 4, hits)
        log_lo, log_hi = math.log(_SPIKE_MIN_E), math.log(_SPIKE_MAX_E)
        for s0, w in zip(start, width, strict=True):
            idx = np.arange(s0, min(s0 + w, n))
            electrons[idx] += np.exp(rng.uniform(log_lo, log_hi, idx.size))
    if read > 0:
        electrons += rng.normal(0.0, read, n)
    return _to_adu(electrons, gain, offset, bits)


# ----------------------------------------------------------------------------- polarisation


def malus_transmission(theta_deg, dipole_deg, dolp):
    """Fraction transmitted by an ideal analyser: (1 + dolp cos 2(theta - theta0)) / 2.

    ``theta_deg``: analyser angle; ``dipole_deg``: polarisation angle theta0; ``dolp`` in
    [0, 1]. Broadcasts over arrays; returns a float for scalar inputs.
    """
    th = np.asarray(theta_deg, dtype=float)
    th0 = np.asarray(dipole_deg, dtype=float)
    d = np.asarray(dolp, dtype=float)
    if not (np.all(np.isfinite(th)) and np.all(np.isfinite(th0))):
        raise ValueError("theta_deg and dipole_deg must be finite")
    if not np.all((d >= 0) & (d <= 1)):
        raise ValueError(f"dolp must be in [0, 1], got {dolp!r}")
    out = 0.5 * (1.0 + d * np.cos(2.0 * np.deg2rad(th - th0)))
    return float(out) if out.ndim == 0 else out
