"""Emission spectra: cosmic-ray removal, central emission wavelength (CEW) and FWHM,
blue-shift of a spectrum series, population statistics.

Line model and the CEW definition
---------------------------------
Room-temperature perovskite and CdSe lines are close to Gaussian in photon *energy* with a
weak low-energy (red) phonon tail. We fit, per pixel::

    counts(lambda) = bg + amp * S(x) * (lambda_ref / lambda)^2 * (dlambda / dlambda_ref)
    x = (hc / lambda - E0) / s_E
    S(x) = exp(-x^2 / 2)                                   for x >= -k
         = (1 - r) exp(-x^2 / 2) + r exp(k^2 / 2 + k x)    for x <  -k,   k = sqrt(2 ln 2)

i.e. a Gaussian in energy whose red side continues, below its half maximum, into an
exponential tail carrying a fraction ``r`` of the peak-normalised shape (the "GaussExp" of
Das 2016 mixed with the Gaussian; ``r = 0`` is a pure Gaussian). ``(lambda_ref/lambda)^2``
is the Jacobian from energy to wavelength (counts in a grating pixel are photons per
wavelength interval) and ``dlambda`` the pixel width (constant on a linear axis).

**CEW** is the wavelength of the maximum of the fitted line (photons per nm), i.e.
``hc / E_peak`` with ``(E_peak - E0) E_peak = 2 s_E^2``; **FWHM** is its full width at half
maximum in nm, from the fitted model. Why the model peak rather than an intensity-weighted
centroid: the centroid moves with the red tail and with the window it is taken over, and is
noisier; the peak of the fitted shape uses every pixel of the line, is independent of the
tail (the tail only starts below half maximum), and is the quantity the seeds read off their
spectra (Pierini et al. Fig. 3a, D'Amato et al. Fig. 3b). It is also how the simulated spectrometer
defines ``cew_nm``. The intensity-weighted centroid within the FWHM is reported too
(``centroid_nm``).

Noise model: variance per pixel ``sigma_bg^2 + g * signal`` with ``sigma_bg`` from the
baseline pixels (median absolute deviation of pixel-to-pixel differences) and the gain ``g``
(counts per detected photon) estimated from the residuals of a first fit. The fit is done
twice: robust (soft-L1 loss) to find pixels hit by a cosmic ray that the despiking missed
(> 5 sigma), then ordinary weighted least squares without them; errors are Gauss-Markov
errors scaled up by ``sqrt(chi2_red)`` when ``chi2_red > 1``, propagated to CEW and FWHM
with the numerical gradient.

Cosmic rays (:func:`remove_cosmic_rays`): residual from the running median of the
neighbours (11 px, the pixel itself left out; up to three passes) compared with the same
noise model, its two
constants from robust statistics (median absolute residual of the dimmest half of the
pixels; gain from the median of the squared residuals of the bright pixels); pixels more
than ``n_sigma`` above are spikes (and their neighbours above 3 sigma); they are replaced
by the running median. Spikes are 1-3 px wide (two adjacent hits make 4-6); lines must be
wider than the median window (true for the 14-40 nm room-temperature lines of the seeds, not for a
1 nm cavity mode on a coarse grating -- use a larger ``n_sigma`` or a temporal filter there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize, stats

from hbtscope.analysis._validate import finite_array
from hbtscope.units import FWHM_PER_SIGMA, HC_EV_NM

__all__ = [
    "HC_EV_NM",
    "PopulationResult",
    "SeriesResult",
    "SpectrumResult",
    "cew_fwhm",
    "line_model",
    "population_stats",
    "remove_cosmic_rays",
    "spectrum_series",
]

K_TAIL = math.sqrt(2.0 * math.log(2.0))
SPIKE_MEDIAN_PX = 11
OUTLIER_SIGMA = 5.0


# ----------------------------------------------------------------------------- validation


# ----------------------------------------------------------------------------- cosmic rays


_CHI2_1_MEDIAN = 0.454936  # median of chi-square with one degree of freedom


def _robust_gain(res2: np.ndarray, signal: np.ndarray, sig_bg: float) -> float:
    """Gain g such that res^2 / (sig_bg^2 + g signal) has the median of chi2(1)."""

    def f(lg):
        return float(np.median(res2 / (sig_bg**2 + math.exp(lg) * signal))) - _CHI2_1_MEDIAN

    lo, hi = math.log(1e-4), math.log(1e4)
    if f(lo) <= 0:
        return 1e-4
    if f(hi) >= 0:
        return 1e4
    return math.exp(optimize.brentq(f, lo, hi, xtol=1e-4))


def _despike_pass(y: np.ndarray, window: int, n_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    # median of the neighbours (the pixel itself left out, so that its own value does not
    # pull the reference and shrink the residual scale)
    h = window // 2
    padded = np.pad(y, h, mode="reflect")  # an edge pixel is not its own neighbour
    shifts = [o for o in range(-h, h + 1) if o != 0]
    neigh = np.stack([padded[h + o : h + o + y.size] for o in shifts])
    med = np.median(neigh, axis=0)
    resid = y - med
    # noise model: sig_bg^2 + g * signal (module doc), from robust statistics
    signal = np.maximum(med - np.percentile(med, 10), 0.0)
    quiet = signal <= np.percentile(signal, 50)
    sig_bg = max(1.4826 * float(np.median(np.abs(resid[quiet]))), 1e-12)
    bright = signal > 10.0 * sig_bg
    gain = _robust_gain(resid[bright] ** 2, signal[bright], sig_bg) if bright.sum() >= 5 else 0.0
    sig = np.sqrt(sig_bg**2 + gain * signal)
    mask = resid > n_sigma * sig
    if np.any(mask):
        near = ndimage.binary_dilation(mask, iterations=1) & (resid > 3.0 * sig)
        mask = mask | near
    out = y.copy()
    out[mask] = med[mask]
    return out, mask


def _despike_1d(y: np.ndarray, window: int, n_sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Up to three passes: a cluster of hits wider than half the window is eroded from
    its edges pass by pass."""
    out = y
    mask = np.zeros(y.size, dtype=bool)
    for _ in range(3):
        out, m = _despike_pass(out, window, n_sigma)
        if not m.any():
            break
        mask |= m
    return out, mask


def remove_cosmic_rays(
    counts, *, window: int = SPIKE_MEDIAN_PX, n_sigma: float = 6.0
) -> tuple[np.ndarray, np.ndarray]:
    """Replace cosmic-ray spikes by the running median (module doc).

    ``counts``: one spectrum (n_pixels,) or a stack (n_spectra, n_pixels), each row
    treated on its own. Returns ``(cleaned, spike_mask)``.
    """
    a = np.asarray(counts)
    if a.ndim not in (1, 2):
        raise ValueError(f"counts must be 1-D or 2-D, got shape {a.shape}")
    a = finite_array("counts", a, a.ndim)
    window = int(window)
    if window < 3 or window % 2 == 0:
        raise ValueError(f"window must be an odd number >= 3, got {window}")
    n_sigma = float(n_sigma)
    if not (math.isfinite(n_sigma) and n_sigma > 0):
        raise ValueError("n_sigma must be > 0")
    if a.shape[-1] < window:
        raise ValueError(f"a spectrum needs at least {window} pixels")
    if a.ndim == 1:
        return _despike_1d(a, window, n_sigma)
    out = np.empty_like(a)
    mask = np.zeros(a.shape, dtype=bool)
    for i in range(a.shape[0]):
        out[i], mask[i] = _despike_1d(a[i], window, n_sigma)
    return out, mask


# ----------------------------------------------------------------------------- line model


def _shape(x: np.ndarray, r: float) -> np.ndarray:
    g = np.exp(-0.5 * x * x)
    k = K_TAIL
    tail = np.exp(0.5 * k * k + k * np.minimum(x, -k))
    return np.where(x >= -k, g, (1.0 - r) * g + r * tail)


def line_model(wavelength_nm, amp, e0, s_e, r, bg, *, lam_ref=None, dlam=None, dlam_ref=None):
    """Counts per pixel of the line model (module doc)."""
    lam = np.asarray(wavelength_nm, dtype=float)
    lam_ref = float(np.mean(lam)) if lam_ref is None else lam_ref
    jac = (lam_ref / lam) ** 2
    if dlam is not None:
        jac = jac * dlam / dlam_ref
    x = (HC_EV_NM / lam - e0) / s_e
    return bg + amp * _shape(x, r) * jac


def _peak_energy(e0: float, s_e: float) -> float:
    return 0.5 * (e0 + math.sqrt(e0 * e0 + 8.0 * s_e * s_e))


def _density(lam, e0, s_e, r):
    """Line density per nm up to a constant: S(x(lambda)) / lambda^2."""
    lam = np.asarray(lam, dtype=float)
    return _shape((HC_EV_NM / lam - e0) / s_e, r) / (lam * lam)


def _cew_fwhm_of(q: np.ndarray) -> tuple[float, float]:
    _, e0, s_e, r = q[:4]
    if not (s_e > 0 and e0 > 0):
        return math.nan, math.nan
    lam_p = HC_EV_NM / _peak_energy(e0, s_e)
    half = 0.5 * float(_density(lam_p, e0, s_e, r))

    def h(lam):
        return float(_density(lam, e0, s_e, r)) - half

    lam_blue = HC_EV_NM / (e0 + 12.0 * s_e)
    e_red = e0 - 40.0 * s_e
    lam_red = HC_EV_NM / e_red if e_red > 0.05 * e0 else HC_EV_NM / (0.05 * e0)
    try:
        a = optimize.brentq(h, lam_blue, lam_p, xtol=1e-10)
        b = optimize.brentq(h, lam_p, lam_red, xtol=1e-10)
    except ValueError:
        return lam_p, math.nan
    return lam_p, b - a


@dataclass(frozen=True, eq=False)
class SpectrumResult:
    """Result of :func:`cew_fwhm` (nm; 1-sigma errors).

    ``cew_nm``: wavelength of the fitted line's maximum; ``fwhm_nm``: its FWHM;
    ``peak_nm``: the brightest pixel of the despiked spectrum (model-free);
    ``centroid_nm``: intensity-weighted mean wavelength of the background-subtracted counts
    within the FWHM; ``amplitude``: fitted line maximum above background (counts per pixel);
    ``tail``: fitted red-tail fraction r; ``n_spikes``: pixels replaced as cosmic rays;
    ``params``/``cov``: (amp, E0 [eV], s_E [eV], r, bg) and covariance.
    """

    cew_nm: float
    cew_nm_err: float
    fwhm_nm: float
    fwhm_nm_err: float
    peak_nm: float
    amplitude: float
    amplitude_err: float
    background: float
    tail: float
    centroid_nm: float
    chi2_red: float
    n_spikes: int
    params: np.ndarray = field(repr=False)
    cov: np.ndarray = field(repr=False)
    wavelength_nm: np.ndarray = field(repr=False)
    counts_clean: np.ndarray = field(repr=False)
    fit_mask: np.ndarray = field(repr=False)

    def model(self, wavelength_nm=None) -> np.ndarray:
        lam = self.wavelength_nm if wavelength_nm is None else np.asarray(wavelength_nm, float)
        _, e0, s_e, r, bg = self.params
        return bg + self.amplitude * _density(lam, e0, s_e, r) / _density(
            HC_EV_NM / _peak_energy(e0, s_e), e0, s_e, r
        )


def _noise_floor(y: np.ndarray) -> float:
    d = np.diff(y)
    if d.size == 0:
        return 1.0
    return max(1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2.0), 1e-9)


def cew_fwhm(
    wavelength_nm,
    counts,
    background: str | float | np.ndarray = "fit",
    *,
    tail: bool = True,
    despike: bool = True,
) -> SpectrumResult:
    """CEW and FWHM of a single-emitter spectrum (module doc).

    ``background``: "fit" (a constant fitted with the line), a number or an array (per
    pixel) subtracted before fitting. ``tail=False`` fits a pure Gaussian in energy and
    only uses the red side above half maximum. ``despike``: run
    :func:`remove_cosmic_rays` first.
    """
    lam = finite_array("wavelength_nm", wavelength_nm, 1)
    y = finite_array("counts", counts, 1)
    if lam.size != y.size:
        raise ValueError(f"wavelength_nm and counts differ in length ({lam.size} vs {y.size})")
    if lam.size < 16:
        raise ValueError("a spectrum needs at least 16 pixels")
    if np.any(lam <= 0):
        raise ValueError("wavelength_nm must be > 0")
    order = np.argsort(lam)
    lam, y = lam[order], y[order]
    if np.any(np.diff(lam) <= 0):
        raise ValueError("wavelength_nm must not repeat")
    fit_bg = True
    if isinstance(background, str):
        if background != "fit":
            raise ValueError(f"background must be 'fit', a number or an array, got {background!r}")
    else:
        b = np.asarray(background, dtype=float)
        if b.ndim == 0:
            if not math.isfinite(float(b)):
                raise ValueError("background must be finite")
        elif b.shape != y.shape or not np.all(np.isfinite(b)):
            raise ValueError(f"a background array must be finite with shape {y.shape}")
        else:
            b = b[order]
        y = y - b
        fit_bg = False

    n_spikes = 0
    if despike:
        y, mask = remove_cosmic_rays(y)
        n_spikes = int(mask.sum())

    # rough line geometry from the smoothed spectrum
    smooth = ndimage.median_filter(y, size=SPIKE_MEDIAN_PX, mode="reflect")
    base0 = float(np.percentile(smooth, 10)) if fit_bg else 0.0
    ip = int(np.argmax(smooth))
    peak = smooth[ip] - base0
    sig0 = _noise_floor(y)
    if not peak > 5.0 * sig0:
        raise ValueError(
            f"no emission line: peak {peak:.3g} counts above baseline vs noise {sig0:.3g}"
        )
    above = smooth - base0 >= 0.5 * peak
    lo_i = ip
    while lo_i > 0 and above[lo_i - 1]:
        lo_i -= 1
    hi_i = ip
    while hi_i < y.size - 1 and above[hi_i + 1]:
        hi_i += 1
    lam_p = lam[ip]
    fwhm0 = max(lam[hi_i] - lam[lo_i], 2.0 * float(np.median(np.diff(lam))))
    win = (lam >= lam_p - 4.0 * fwhm0) & (lam <= lam_p + 5.0 * fwhm0)
    if not tail:
        win &= lam <= lam[hi_i]
    if win.sum() < 8:
        raise ValueError("too few pixels across the line to fit it")
    lw, yw = lam[win], y[win]
    dl = np.gradient(lam)[win]
    lam_ref = float(np.mean(lw))
    dl_ref = float(np.mean(dl))

    # noise floor from the pixels outside the window (or the lowest in it)
    outside = ~win
    if outside.sum() >= 10:
        sig_bg = _noise_floor(y[outside])
    else:
        sig_bg = _noise_floor(np.sort(yw)[: max(yw.size // 4, 4)])
    sig_bg = max(sig_bg, 1e-6 * peak)

    e_p = HC_EV_NM / lam_p
    s_e0 = HC_EV_NM * fwhm0 / lam_p**2 / FWHM_PER_SIGMA
    e00 = e_p - 2.0 * s_e0**2 / e_p
    amp0 = peak * (lam_p / lam_ref) ** 2
    free = [True, True, True, tail, fit_bg]
    q_full0 = np.array([amp0, e00, s_e0, 0.1 if tail else 0.0, base0])

    def full(qf):
        q = q_full0.copy()
        q[free] = qf
        return q

    def model(q):
        return line_model(
            lw, q[0], q[1], q[2], q[3], q[4], lam_ref=lam_ref, dlam=dl, dlam_ref=dl_ref
        )

    lb = np.array([0.0, 0.5 * e00, 1e-4 * s_e0, 0.0, -np.inf])[free]
    ub = np.array([np.inf, 2.0 * e00, 50.0 * s_e0, 1.0, np.inf])[free]

    def run(qf0, sigma, loss, sel):
        def resid(qf):
            return ((model(full(qf)) - yw) / sigma)[sel]

        return optimize.least_squares(
            resid,
            np.clip(qf0, lb, ub),
            bounds=(lb, ub),
            loss=loss,
            f_scale=1.5,
            x_scale="jac",
            method="trf",
            max_nfev=3000,
        )

    sel = np.ones(yw.size, dtype=bool)
    gain = 1.0
    sigma = np.sqrt(sig_bg**2 + gain * np.maximum(smooth[win] - base0, 0.0))
    r1 = run(q_full0[free], sigma, "soft_l1", sel)
    q1 = full(r1.x)
    sig_line = np.maximum(model(q1) - q1[4], 0.0)
    res2 = (yw - model(q1)) ** 2
    w = sig_line > 3.0 * sig_bg
    if w.sum() >= 5:
        gain = _robust_gain(res2[w], sig_line[w], sig_bg)
    sigma = np.sqrt(sig_bg**2 + gain * sig_line)
    sel = np.abs((yw - model(q1)) / sigma) <= OUTLIER_SIGMA
    r2 = run(r1.x, sigma, "linear", sel)
    q = full(r2.x)
    resid = ((model(q) - yw) / sigma)[sel]
    dof = int(sel.sum() - r2.x.size)
    chi2_red = float(np.sum(resid**2) / dof) if dof > 0 else math.nan
    jac = r2.jac
    cov_f = np.linalg.pinv(jac.T @ jac)
    if dof > 0 and chi2_red > 1.0:
        cov_f = cov_f * chi2_red
    cov = np.zeros((5, 5))
    idx = np.nonzero(free)[0]
    cov[np.ix_(idx, idx)] = cov_f

    cew, fwhm = _cew_fwhm_of(q)
    pitch = float(np.median(np.diff(lw)))
    if not (math.isfinite(fwhm) and fwhm > 3.0 * pitch and lam[0] <= cew <= lam[-1]):
        raise ValueError(
            f"no credible emission line: fitted FWHM {fwhm:.3g} nm (pixel pitch {pitch:.3g} nm)"
            f" at {cew:.4g} nm -- a cosmic-ray residue or a line outside the spectrum"
        )
    # numerical gradient of (cew, fwhm, amplitude) w.r.t. the free parameters
    amp_of = lambda qq: float(  # noqa: E731
        qq[0] * _density(HC_EV_NM / _peak_energy(qq[1], qq[2]), qq[1], qq[2], qq[3]) * lam_ref**2
    )
    derived = np.array([cew, fwhm, amp_of(q)])
    grad = np.zeros((3, 5))
    steps = np.sqrt(np.maximum(np.diag(cov), 0.0)) * 1e-3
    for j in idx:
        h = steps[j] if steps[j] > 0 else 1e-9 * max(abs(q[j]), 1.0)
        qp, qm = q.copy(), q.copy()
        qp[j] += h
        qm[j] -= h
        if j == 3:
            qp[j], qm[j] = min(qp[j], 1.0), max(qm[j], 0.0)
            h2 = qp[j] - qm[j]
        else:
            h2 = 2 * h
        if h2 <= 0:
            continue
        dp = np.array([*_cew_fwhm_of(qp), amp_of(qp)])
        dm = np.array([*_cew_fwhm_of(qm), amp_of(qm)])
        grad[:, j] = (dp - dm) / h2
    dcov = grad @ cov @ grad.T
    errs = np.sqrt(np.maximum(np.diag(dcov), 0.0))

    # model-free numbers
    bg = q[4]
    sub = y - (bg if fit_bg else 0.0)
    in_fwhm = (lam >= cew - 0.5 * fwhm) & (lam <= cew + 0.5 * fwhm) if math.isfinite(fwhm) else win
    wsum = float(np.sum(sub[in_fwhm]))
    centroid = float(np.sum(lam[in_fwhm] * sub[in_fwhm]) / wsum) if wsum > 0 else math.nan
    fit_mask = np.zeros(lam.size, dtype=bool)
    fit_mask[np.nonzero(win)[0][sel]] = True
    amplitude = derived[2]  # counts per pixel at the peak, above background
    return SpectrumResult(
        cew_nm=float(cew),
        cew_nm_err=float(errs[0]),
        fwhm_nm=float(fwhm),
        fwhm_nm_err=float(errs[1]),
        peak_nm=float(lam[ip]),
        amplitude=float(amplitude),
        amplitude_err=float(errs[2]),
        background=float(bg),
        tail=float(q[3]),
        centroid_nm=centroid,
        chi2_red=chi2_red,
        n_spikes=n_spikes,
        params=q,
        cov=cov,
        wavelength_nm=lam,
        counts_clean=y,
        fit_mask=fit_mask,
    )


# ----------------------------------------------------------------------------- series


@dataclass(frozen=True, eq=False)
class SeriesResult:
    """Result of :func:`spectrum_series`.

    Per spectrum: ``cew_nm``, ``cew_nm_err``, ``fwhm_nm``, ``fwhm_nm_err`` (NaN where no line
    was found, ``ok`` False). ``blueshift_rate_nm_per_h`` +- ``blueshift_rate_nm_per_h_err`` is
    minus the slope of a weighted linear fit of CEW versus time (positive = shift to the blue),
    errors scaled up by sqrt(chi2_red) when the CEW scatters more than its errors (spectral
    diffusion). ``normalised_map[i]`` is spectrum i, despiked, background subtracted and
    divided by its maximum (the drift map of Pierini et al. Fig. 4a / D'Amato et al. Fig. 2b).
    """

    times_s: np.ndarray
    wavelength_nm: np.ndarray
    cew_nm: np.ndarray
    cew_nm_err: np.ndarray
    fwhm_nm: np.ndarray
    fwhm_nm_err: np.ndarray
    ok: np.ndarray
    blueshift_rate_nm_per_h: float
    blueshift_rate_nm_per_h_err: float
    cew0_nm: float
    chi2_red: float
    normalised_map: np.ndarray = field(repr=False)
    results: list = field(repr=False, default_factory=list)


def spectrum_series(times_s, wavelength_nm, spectra, *, background="fit") -> SeriesResult:
    """CEW/FWHM of every spectrum of a series and the blue-shift rate (class doc)."""
    t = finite_array("times_s", times_s, 1)
    lam = finite_array("wavelength_nm", wavelength_nm, 1)
    s = finite_array("spectra", spectra, 2)
    if s.shape != (t.size, lam.size):
        raise ValueError(
            f"spectra must have shape (len(times_s), len(wavelength_nm)) = "
            f"({t.size}, {lam.size}), got {s.shape}"
        )
    n = t.size
    cew = np.full(n, np.nan)
    cew_e = np.full(n, np.nan)
    fw = np.full(n, np.nan)
    fw_e = np.full(n, np.nan)
    ok = np.zeros(n, dtype=bool)
    order = np.argsort(lam)
    nmap = np.full((n, lam.size), np.nan)
    results: list = []
    for i in range(n):
        try:
            r = cew_fwhm(lam, s[i], background)
        except ValueError:
            results.append(None)
            clean, _ = remove_cosmic_rays(s[i][order])
            base = np.percentile(clean, 10)
            top = np.max(clean) - base
            if top > 0:
                nmap[i] = (clean - base) / top
            continue
        results.append(r)
        if math.isfinite(r.cew_nm) and math.isfinite(r.cew_nm_err) and r.cew_nm_err > 0:
            ok[i] = True
            cew[i], cew_e[i], fw[i], fw_e[i] = r.cew_nm, r.cew_nm_err, r.fwhm_nm, r.fwhm_nm_err
        sub = r.counts_clean - r.background
        top = float(np.max(ndimage.median_filter(sub, size=3)))
        nmap[i] = sub / top if top > 0 else sub
    rate = err = c0 = chi2 = math.nan
    if ok.sum() >= 3:
        th = t[ok] / 3600.0
        w = 1.0 / cew_e[ok] ** 2
        a = np.vstack([np.ones_like(th), th]).T
        cov = np.linalg.inv(a.T @ (a * w[:, None]))
        coef = cov @ (a.T @ (w * cew[ok]))
        res = cew[ok] - a @ coef
        dof = ok.sum() - 2
        chi2 = float(np.sum(w * res**2) / dof) if dof > 0 else math.nan
        if dof > 0 and chi2 > 1.0:
            cov = cov * chi2
        c0, rate, err = float(coef[0]), float(-coef[1]), float(math.sqrt(cov[1, 1]))
    return SeriesResult(
        times_s=t,
        wavelength_nm=lam[order],
        cew_nm=cew,
        cew_nm_err=cew_e,
        fwhm_nm=fw,
        fwhm_nm_err=fw_e,
        ok=ok,
        blueshift_rate_nm_per_h=rate,
        blueshift_rate_nm_per_h_err=err,
        cew0_nm=c0,
        chi2_red=chi2,
        normalised_map=nmap,
        results=results,
    )


# ----------------------------------------------------------------------------- population


@dataclass(frozen=True, eq=False)
class PopulationResult:
    """CEW statistics of a set of emitters (Pierini et al. Fig. 3b, D'Amato et al. Fig. 3a,d).

    ``mean`` +- ``sd`` (sample standard deviation, ddof 1), ``sem`` = sd / sqrt(n),
    ``median``; the histogram ``hist_edges``/``hist_counts``. With ``g2s``: Pearson and
    Spearman correlation of g2(0) with CEW (``pearson_r``, ``pearson_p``, ``spearman_rho``,
    ``spearman_p``), the least-squares slope of g2(0) versus CEW (per nm) and the fraction
    with g2(0) < 0.5 (``fraction_antibunched``).
    """

    n: int
    mean: float
    sd: float
    sem: float
    median: float
    hist_edges: np.ndarray = field(repr=False)
    hist_counts: np.ndarray = field(repr=False)
    pearson_r: float = math.nan
    pearson_p: float = math.nan
    spearman_rho: float = math.nan
    spearman_p: float = math.nan
    g2_slope_per_nm: float = math.nan
    fraction_antibunched: float = math.nan


def population_stats(cews, g2s=None, *, bins: int | np.ndarray | None = None) -> PopulationResult:
    """Histogram and mean +- sd of CEWs; correlation with g2(0) if ``g2s`` is given.

    ``bins=None``: 1 nm wide bins over the data range.
    """
    c = finite_array("cews", cews, 1)
    if bins is None:
        lo, hi = math.floor(c.min()), math.ceil(c.max())
        edges = np.arange(lo, max(hi, lo + 1) + 1.0, 1.0)
    elif isinstance(bins, int | np.integer) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError("bins must be >= 1")
        edges = np.histogram_bin_edges(c, bins=int(bins))
    else:
        edges = finite_array("bins", bins, 1)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bin edges must be strictly increasing")
    hist, edges = np.histogram(c, bins=edges)
    n = c.size
    sd = float(np.std(c, ddof=1)) if n > 1 else math.nan
    out = dict(
        n=n,
        mean=float(np.mean(c)),
        sd=sd,
        sem=sd / math.sqrt(n) if n > 1 else math.nan,
        median=float(np.median(c)),
        hist_edges=edges,
        hist_counts=hist.astype(np.int64),
    )
    if g2s is not None:
        g = finite_array("g2s", g2s, 1)
        if g.size != n:
            raise ValueError(f"cews and g2s differ in length ({n} vs {g.size})")
        out["fraction_antibunched"] = float(np.mean(g < 0.5))
        if n >= 3 and np.ptp(c) > 0 and np.ptp(g) > 0:
            pr = stats.pearsonr(c, g)
            sr = stats.spearmanr(c, g)
            out["pearson_r"], out["pearson_p"] = float(pr[0]), float(pr[1])
            out["spearman_rho"], out["spearman_p"] = float(sr[0]), float(sr[1])
            out["g2_slope_per_nm"] = float(np.polyfit(c, g, 1)[0])
    return PopulationResult(**out)
