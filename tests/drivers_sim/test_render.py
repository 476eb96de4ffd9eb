"""Rendering physics of the simulated camera and spectrometer (hbtscope.drivers_sim.render).

The tests are statistical: each compares an estimate with its expectation within 4 standard
deviations computed from the noise model (false-alarm rate ~6e-5 per comparison, and every
test uses a fixed seed, so the suite is deterministic). Tolerances beyond that are justified
where they appear. No test asserts wall-clock time.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import ndimage
from scipy.integrate import quad
from scipy.optimize import curve_fit
from scipy.special import erf, ndtr

from hbtscope.drivers_sim import render

P_UM = 0.1625
SIGMA_UM = 0.11
QE = 0.7
GAIN = 0.46
OFFSET = 100
READ_E = 1.6
# Largest fraction of an emitter's photons the +-4 sigma patch may drop (2 axes x 2 sides).
TRUNC = 4.0 * (1.0 - ndtr(4.0))


def electrons(frame, gain=GAIN, offset=OFFSET):
    return (frame.astype(float) - offset) * gain


# ----------------------------------------------------------------------------- camera


@pytest.mark.parametrize("seed", range(5))
def test_frame_total_counts_match_photons_qe_dark(seed):
    rng = np.random.default_rng(seed)
    shape = (128, 128)
    npx = shape[0] * shape[1]
    side = shape[0] * P_UM
    n = 60
    x = rng.uniform(1.0, side - 1.0, n)  # >= 9 sigma from the edges: nothing falls outside
    y = rng.uniform(1.0, side - 1.0, n)
    rate = rng.uniform(2e3, 2e4, n)
    t, dark, bg = 0.2, 5.0, 3.0
    frame = render.render_widefield_frame(
        rng,
        shape_px=shape,
        x_um=x,
        y_um=y,
        photons_per_s=rate,
        exposure_s=t,
        dark_e_per_px_s=dark,
        background_photons_per_px_s=bg,
    )
    assert frame.dtype == np.uint16 and frame.shape == shape
    assert frame.max() < 2**16 - 1  # nothing clipped, so the sum is linear
    total = electrons(frame).sum()
    photons = rate.sum() * t
    expected = QE * photons + QE * bg * t * npx + dark * t * npx
    # Poisson electrons + Gaussian read noise + uniform ADU rounding (gain^2/12 per pixel)
    sd = math.sqrt(expected + npx * (READ_E**2 + GAIN**2 / 12.0))
    # the patch may drop up to TRUNC of the emitter photons (a one-sided deficit)
    assert -4 * sd - TRUNC * QE * photons < total - expected < 4 * sd


def test_psf_centroid_and_width_from_moments():
    rng = np.random.default_rng(11)
    x0, y0 = 5.0313, 4.7071  # arbitrary sub-pixel position
    n_ph, t, dark = 1e5, 1.0, 0.06
    frame = render.render_widefield_frame(
        rng, shape_px=(64, 64), x_um=[x0], y_um=[y0], photons_per_s=[n_ph], exposure_s=t
    )
    assert frame.max() < 2**16 - 1
    img = electrons(frame) - dark * t
    # window of +-6 pixels (8.9 sigma) around the emitter's pixel: holds all its light
    ci, cj = int(y0 / P_UM), int(x0 / P_UM)
    sl = (slice(ci - 6, ci + 7), slice(cj - 6, cj + 7))
    w = img[sl]
    yy, xx = np.mgrid[sl]
    xc, yc = (xx + 0.5) * P_UM, (yy + 0.5) * P_UM
    n = w.sum()
    mx, my = (w * xc).sum() / n, (w * yc).sum() / n
    # pixel integration adds p^2/12 to the variance (Sheppard; aliasing terms ~exp(-9))
    s_eff = math.sqrt(SIGMA_UM**2 + P_UM**2 / 12)
    # centroid SE: s_eff/sqrt(N) photon noise + read noise weighted by distance (small)
    se_c = math.sqrt(s_eff**2 * n + ((xc - x0) ** 2 * READ_E**2).sum()) / n
    assert abs(mx - x0) < 4 * se_c
    assert abs(my - y0) < 4 * se_c
    sx = math.sqrt((w * (xc - mx) ** 2).sum() / n)
    sy = math.sqrt((w * (yc - my) ** 2).sum() / n)
    # relative SE of a width from N photons is 1/sqrt(2N) = 0.3 %; the +-4 sigma patch cuts
    # the variance by < 0.1 %: a 2 % tolerance is loose but catches a wrong PSF model
    # (point sampling instead of pixel integration would give s = 0.11, i.e. -8 %)
    assert sx == pytest.approx(s_eff, rel=0.02)
    assert sy == pytest.approx(s_eff, rel=0.02)


def test_emitter_at_pixel_corner_splits_equally_into_four_pixels():
    origin = (-3.2, 1.5)
    xc, yc = origin[0] + 20 * P_UM, origin[1] + 15 * P_UM  # corner of pixels [14..15, 19..20]
    kw = dict(shape_px=(40, 40), origin_um=origin, x_um=[xc], y_um=[yc])
    mu = render.expected_photon_image(photons=[1.0], **kw)
    quad4 = mu[14:16, 19:21]
    per_axis = ndtr(P_UM / SIGMA_UM) - 0.5  # exact pixel integral of one neighbour pixel
    np.testing.assert_allclose(quad4, per_axis**2, rtol=1e-12)
    assert quad4.max() == mu.max()
    # noisy: the four counts agree within Poisson noise (each vs the mean of the four)
    rng = np.random.default_rng(5)
    frame = render.render_widefield_frame(rng, photons_per_s=[1e5], exposure_s=1.0, **kw)
    c = electrons(frame[14:16, 19:21]).ravel()
    var = QE * 1e5 * per_axis**2 + READ_E**2 + GAIN**2 / 12
    assert np.all(np.abs(c - c.mean()) < 4 * math.sqrt(var * 3 / 4))


def test_emitters_outside_the_field_contribute_only_their_overlap():
    kw = dict(shape_px=(32, 32), origin_um=(0.0, 0.0))
    edge = render.expected_photon_image(x_um=[0.0], y_um=[2.6], photons=[1.0], **kw)
    assert edge.sum() == pytest.approx(0.5, abs=TRUNC)  # half the PSF is on the sensor
    assert edge[:, 0].sum() > 0.3
    corner = render.expected_photon_image(x_um=[32 * P_UM], y_um=[0.0], photons=[1.0], **kw)
    assert corner.sum() == pytest.approx(0.25, abs=TRUNC)
    far = render.expected_photon_image(x_um=[-1e9, 50.0], y_um=[0.0, 3.0], photons=[1, 1], **kw)
    assert far.sum() == 0.0
    inside = render.expected_photon_image(x_um=[2.6], y_um=[2.6], photons=[7.0], **kw)
    assert 7.0 * (1 - TRUNC) <= inside.sum() <= 7.0


def test_read_noise_only_frame_mean_and_variance():
    rng = np.random.default_rng(3)
    f = render.render_widefield_frame(
        rng, x_um=[], y_um=[], photons_per_s=[], exposure_s=0.01, dark_e_per_px_s=0.0
    ).astype(float)
    n = f.size
    var = (READ_E / GAIN) ** 2 + 1.0 / 12.0  # read noise in ADU + rounding to integer ADU
    assert abs(f.mean() - OFFSET) < 4 * math.sqrt(var / n)
    # SE of a sample variance of ~Gaussian data: var * sqrt(2 / n)
    assert abs(f.var() - var) < 4 * var * math.sqrt(2.0 / n)


def test_dark_plus_read_noise_frame_mean_and_variance():
    rng = np.random.default_rng(4)
    dark, t = 40.0, 2.0
    f = render.render_widefield_frame(
        rng, x_um=[], y_um=[], photons_per_s=[], exposure_s=t, dark_e_per_px_s=dark
    ).astype(float)
    n = f.size
    mean = OFFSET + dark * t / GAIN
    var = dark * t / GAIN**2 + (READ_E / GAIN) ** 2 + 1.0 / 12.0
    assert abs(f.mean() - mean) < 4 * math.sqrt(var / n)
    assert abs(f.var() - var) < 4 * var * math.sqrt(2.0 / n)


def _count_hits(frame, threshold_adu):
    labels, n = ndimage.label(frame > threshold_adu, structure=np.ones((3, 3)))
    return n, labels


def test_cosmic_rays_appear_at_the_poisson_rate():
    rng = np.random.default_rng(21)
    shape, t, n_frames = (256, 256), 1.0, 400
    area = shape[0] * shape[1] * (render.SENSOR_PIXEL_UM * 1e-4) ** 2
    per_frame = 1.5
    rate = per_frame / (area * t)
    counts, oversized = [], 0
    for _ in range(n_frames):
        f = render.render_widefield_frame(
            rng,
            shape_px=shape,
            x_um=[],
            y_um=[],
            photons_per_s=[],
            exposure_s=t,
            dark_e_per_px_s=0.0,
            cosmic_rate_per_cm2_s=rate,
        )
        # threshold 30 ADU = 14 e- = 8.6 read-noise sigma; hit pixels carry >= 300 e-
        n, labels = _count_hits(f, OFFSET + 30)
        oversized += int(np.sum(np.bincount(labels.ravel())[1:] > 4))
        counts.append(n)
    counts = np.array(counts)
    expected = per_frame * n_frames
    # Two streaks that touch are counted as one hit: E[pairs] = 1.5^2 / 2 per frame, each
    # touching with P <~ 25 / 65536 (start within the ~5x5 reach of the other streak), so
    # ~0.2 merges in all. Allow 3 on top of 4 Poisson sigma; likewise streaks are 1-4
    # pixels and only a merge can make a bigger one.
    assert oversized <= 3
    assert -4 * math.sqrt(expected) - 3 < counts.sum() - expected < 4 * math.sqrt(expected)
    # Poisson: index of dispersion 1 with SE sqrt(2 / (n - 1))
    assert abs(counts.var(ddof=1) / counts.mean() - 1) < 4 * math.sqrt(2 / (n_frames - 1))
    # an explicit sensor area scales the number of hits; rate 0 gives none
    f = render.render_widefield_frame(
        rng,
        shape_px=shape,
        x_um=[],
        y_um=[],
        photons_per_s=[],
        exposure_s=t,
        cosmic_rate_per_cm2_s=rate,
        sensor_cm2=0.0,
    )
    assert _count_hits(f, OFFSET + 30)[0] == 0


def test_cosmic_rate_scales_with_sensor_area_and_exposure():
    rng = np.random.default_rng(22)
    kw = dict(shape_px=(64, 64), x_um=[], y_um=[], photons_per_s=[], dark_e_per_px_s=0.0)
    n = 0
    for _ in range(200):
        f = render.render_widefield_frame(
            rng, exposure_s=0.5, cosmic_rate_per_cm2_s=2.0, sensor_cm2=2.0, **kw
        )
        n += _count_hits(f, OFFSET + 30)[0]
    expected = 200 * 2.0 * 2.0 * 0.5  # 400, on 4096 pixels: ~2 merges expected
    assert -4 * math.sqrt(expected) - 6 < n - expected < 4 * math.sqrt(expected)


def test_frame_is_reproducible_and_clipped_to_bit_depth():
    kw = dict(shape_px=(16, 16), x_um=[1.3], y_um=[1.3], photons_per_s=[1e9], exposure_s=1.0)
    a = render.render_widefield_frame(np.random.default_rng(1), **kw)
    b = render.render_widefield_frame(np.random.default_rng(1), **kw)
    np.testing.assert_array_equal(a, b)
    assert a.max() == 2**16 - 1
    c = render.render_widefield_frame(np.random.default_rng(1), bit_depth=12, **kw)
    assert c.max() == 2**12 - 1


# ----------------------------------------------------------------------------- spectra


LAM = np.linspace(550.0, 750.0, 1341)  # 0.15 nm pixels
SPEC = dict(read=6.0, dark=2.0, offset=500, qe=0.6)


def _gauss(x, a, c, s, b):
    return a * np.exp(-0.5 * ((x - c) / s) ** 2) + b


def _line_mean(cew, fwhm, tail, lo=0.0, hi=np.inf):
    lo, hi = max(lo, cew - 20 * fwhm), min(hi, cew + 40 * fwhm)
    pts = [cew - fwhm, cew, cew + fwhm]
    num = quad(lambda x: x * render.line_shape(x, cew, fwhm, tail), lo, hi, points=pts)[0]
    den = quad(lambda x: render.line_shape(x, cew, fwhm, tail), lo, hi, points=pts)[0]
    return num / den


def test_spectrum_gaussian_fit_recovers_cew_and_fwhm():
    rng = np.random.default_rng(31)
    cew, fwhm = 650.0, 20.0
    s = render.render_spectrum(
        rng,
        wavelengths_nm=LAM,
        components=[(1e6, cew, fwhm, 0.0)],
        exposure_s=1.0,
        cosmic_rate_per_s=0.0,
    )
    assert s.shape == LAM.shape and s.max() < 2**16 - 1
    y = s - SPEC["offset"]
    p, _ = curve_fit(_gauss, LAM, y, p0=[y.max(), 645.0, 10.0, 0.0])
    fit_fwhm = 2 * math.sqrt(2 * math.log(2)) * abs(p[2])
    # the specification: fitted FWHM within 2 % (the line is a Gaussian in energy, its
    # wavelength FWHM differs from fwhm_nm by O((fwhm/cew)^2) ~ 1e-3; photon noise ~0.1 %)
    assert fit_fwhm == pytest.approx(fwhm, rel=0.02)
    # the Gaussian fit centre lies between the peak (cew) and the mean (cew(1 + 3(s/E)^2)),
    # 0.33 nm apart here; the photon-noise SE of the centre is s/sqrt(N) = 0.011 nm
    bias = 3 * (fwhm / cew / (2 * math.sqrt(2 * math.log(2)))) ** 2 * cew
    assert -0.05 < p[1] - cew < bias + 0.05


def test_spectrum_centroid_matches_line_mean():
    rng = np.random.default_rng(32)
    cew, fwhm, rate = 640.0, 25.0, 1e6
    for tail in (0.0, 0.6):
        s = render.render_spectrum(
            rng,
            wavelengths_nm=LAM,
            components=[{"photons_per_s": rate, "cew_nm": cew, "fwhm_nm": fwhm, "tail": tail}],
            exposure_s=1.0,
            cosmic_rate_per_s=0.0,
        )
        win = np.abs(LAM - cew) < 60.0  # +-2.4 FWHM (12 sigma on the blue side)
        lam = LAM[win]
        e = s[win] - SPEC["offset"] - SPEC["dark"]  # gain 1 e-/ADU, 1 s of dark current
        n = e.sum()
        c = (e * lam).sum() / n
        expected = _line_mean(cew, fwhm, tail, lam[0] - 0.075, lam[-1] + 0.075)
        var = np.clip(e, 0, None) + SPEC["read"] ** 2 + SPEC["dark"] + 1 / 12
        se = math.sqrt(((lam - c) ** 2 * var).sum()) / n
        # + 0.002 nm for replacing the mean within each 0.15 nm pixel by the pixel centre
        assert abs(c - expected) < 4 * se + 0.002


def test_tail_shifts_mean_to_red_and_keeps_peak_and_fwhm():
    cew, fwhm = 650.0, 30.0
    grid = np.linspace(450.0, 950.0, 500_001)  # 0.001 nm
    means, peaks, widths = [], [], []
    for tail in (0.0, 0.25, 0.5, 1.0):
        p = render.line_shape(grid, cew, fwhm, tail)
        assert np.trapezoid(p, grid) == pytest.approx(1.0, abs=1e-6)
        half = grid[p >= p.max() / 2]
        widths.append(half[-1] - half[0])
        peaks.append(grid[np.argmax(p)])
        means.append(_line_mean(cew, fwhm, tail))
    np.testing.assert_allclose(peaks, cew, atol=0.001)
    np.testing.assert_allclose(widths, fwhm, rtol=1e-3)  # O((fwhm/cew)^2) mapping error
    assert np.all(np.diff(means) > 0.2)  # mean moves to the red, linearly in tail
    assert np.diff(means) == pytest.approx(np.diff(means)[0] * np.array([1, 1, 2]), rel=1e-6)
    # rendered: the top of the line (above half maximum the shapes are identical) fits the
    # same centre, while the centroid moves red
    rng = np.random.default_rng(33)
    centres, cents = [], []
    for tail in (0.0, 1.0):
        s = render.render_spectrum(
            rng, wavelengths_nm=LAM, components=[(1e6, cew, fwhm, tail)], exposure_s=1.0
        )
        y = s - SPEC["offset"] - SPEC["dark"]
        y_med = ndimage.median_filter(y, 7)  # drop any cosmic spike (rate 0.02/s default)
        top = y_med > 0.6 * y_med.max()
        p, cov = curve_fit(_gauss, LAM[top], y[top], p0=[y_med.max(), cew, 12.0, 0.0])
        centres.append((p[1], math.sqrt(cov[1, 1])))
        win = np.abs(LAM - cew) < 90
        cents.append((y_med[win] * LAM[win]).sum() / y_med[win].sum())
    (c0, e0), (c1, e1) = centres
    assert abs(c1 - c0) < 4 * math.hypot(e0, e1) + 0.05  # 0.05 nm: fit-model mismatch
    assert cents[1] - cents[0] > 0.5 * (means[3] - means[0])


def test_line_shape_unit_area_and_band_fraction_consistency():
    for cew, fwhm, tail in [(530.0, 25.0, 0.0), (650.0, 30.0, 0.4), (650.0, 80.0, 1.0)]:
        area = quad(
            lambda x, c=cew, f=fwhm, t=tail: render.line_shape(x, c, f, t),
            cew - 15 * fwhm,
            cew + 40 * fwhm,
            points=[cew - fwhm, cew, cew + fwhm],
            limit=200,
        )[0]
        assert area == pytest.approx(1.0, abs=1e-7)
        assert render.band_fraction(cew, fwhm, tail, (0.0, np.inf)) == pytest.approx(1.0, 1e-12)
        # the red tail is exponential in energy: the broadest line leaves ~2e-12 beyond 1 mm
        assert render.band_fraction(cew, fwhm, tail, (1.0, 1e6)) == pytest.approx(1.0, 1e-10)
        band = (cew - 12.0, cew + 20.0)
        q = quad(lambda x, c=cew, f=fwhm, t=tail: render.line_shape(x, c, f, t), *band)[0]
        assert render.band_fraction(cew, fwhm, tail, band) == pytest.approx(q, abs=1e-9)


def test_band_fraction_of_gaussian_equals_erf_formula():
    hc = render.HC_EV_NM
    cew, fwhm = 650.0, 30.0
    ec = hc / cew
    s_e = hc * fwhm / cew**2 / (2 * math.sqrt(2 * math.log(2)))
    e0 = ec - 2 * s_e**2 / ec
    for lo, hi in [(640.0, 660.0), (600.0, 700.0), (660.0, 720.0), (510.0, 550.0)]:
        ea, eb = hc / hi, hc / lo
        erf_formula = 0.5 * (
            erf((eb - e0) / (math.sqrt(2) * s_e)) - erf((ea - e0) / (math.sqrt(2) * s_e))
        )
        f = render.band_fraction(cew, fwhm, 0.0, (lo, hi))
        assert f == pytest.approx(erf_formula, rel=1e-12, abs=1e-15)
    # a narrow line is close to a Gaussian in wavelength: naive erf within 0.5 % (the
    # wavelength/energy mapping is nonlinear at O(fwhm/cew) = 0.5 %)
    cew, fwhm = 600.0, 3.0
    sl = fwhm / (2 * math.sqrt(2 * math.log(2)))
    naive = 0.5 * (erf(2.0 / (math.sqrt(2) * sl)) - erf(-1.0 / (math.sqrt(2) * sl)))
    assert render.band_fraction(cew, fwhm, 0.0, (599.0, 602.0)) == pytest.approx(naive, rel=5e-3)
    # Baronnier et al.'s bands: a 650 nm QD line barely leaks into the 530 nm matrix band
    assert render.band_fraction(650.0, 30.0, 0.5, (510.0, 550.0)) < 1e-6
    assert render.band_fraction(650.0, 30.0, 0.5, (600.0, 700.0)) > 0.95


@settings(max_examples=60, deadline=None)
@given(
    cew=st.floats(400.0, 900.0),
    fwhm=st.floats(1.0, 80.0),
    tail=st.floats(0.0, 1.0),
    a=st.floats(300.0, 1000.0),
    b=st.floats(300.0, 1000.0),
    c=st.floats(300.0, 1000.0),
)
def test_band_fraction_is_additive_and_bounded(cew, fwhm, tail, a, b, c):
    lo, mid, hi = sorted((a, b, c))
    assume(lo < mid < hi)
    f1 = render.band_fraction(cew, fwhm, tail, (lo, mid))
    f2 = render.band_fraction(cew, fwhm, tail, (mid, hi))
    f = render.band_fraction(cew, fwhm, tail, (lo, hi))
    assert 0.0 <= f1 <= 1.0 and 0.0 <= f2 <= 1.0
    assert f1 + f2 == pytest.approx(f, abs=1e-12)


def test_spectrum_cosmic_spikes_at_poisson_rate():
    rng = np.random.default_rng(41)
    lam = np.linspace(400.0, 900.0, 10_000)
    n_spec, rate, t = 1000, 1.0, 1.0
    counts, oversized = [], 0
    for _ in range(n_spec):
        s = render.render_spectrum(
            rng, wavelengths_nm=lam, components=[], exposure_s=t, cosmic_rate_per_s=rate
        )
        # threshold 100 ADU above offset + dark = 16 read-noise sigma; spikes >= 1000 e-
        labels, n = ndimage.label(s > SPEC["offset"] + SPEC["dark"] + 100)
        oversized += int(np.sum(np.bincount(labels)[1:] > 3))
        assert np.all(s[labels > 0] > SPEC["offset"] + 900)  # large amplitude
        counts.append(n)
    expected = rate * t * n_spec
    # Two spikes that touch are counted as one: 0.5 pairs per spectrum, touching with
    # P <~ 7 / 10000, ~0.35 merges in all. Allow 3 on top of 4 Poisson sigma; spikes are 1-3
    # pixels and only a merge can make a wider one.
    assert oversized <= 3
    assert -4 * math.sqrt(expected) - 3 < sum(counts) - expected < 4 * math.sqrt(expected)
    s = render.render_spectrum(
        rng, wavelengths_nm=LAM, components=[], exposure_s=100.0, cosmic_rate_per_s=0.0
    )
    assert s.max() < SPEC["offset"] + 200 + 8 * math.sqrt(200 + 36)


def test_spectrum_noise_floor_mean_and_variance():
    rng = np.random.default_rng(42)
    lam = np.linspace(500.0, 800.0, 20_000)
    s = render.render_spectrum(
        rng, wavelengths_nm=lam, components=[], exposure_s=3.0, cosmic_rate_per_s=0.0
    )
    mean = SPEC["offset"] + SPEC["dark"] * 3.0
    var = SPEC["dark"] * 3.0 + SPEC["read"] ** 2 + 1 / 12
    assert abs(s.mean() - mean) < 4 * math.sqrt(var / s.size)
    assert abs(s.var() - var) < 4 * var * math.sqrt(2 / s.size)


# ----------------------------------------------------------------------------- polarisation


@pytest.mark.parametrize("dolp", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("theta0", [0.0, 37.0, -80.0])
def test_malus_extremes(dolp, theta0):
    i_max, i_min = (1 + dolp) / 2, (1 - dolp) / 2
    assert render.malus_transmission(theta0, theta0, dolp) == pytest.approx(i_max)
    assert render.malus_transmission(theta0 + 180, theta0, dolp) == pytest.approx(i_max)
    assert render.malus_transmission(theta0 + 90, theta0, dolp) == pytest.approx(i_min)
    th = np.linspace(0, 360, 721)
    t = render.malus_transmission(th, theta0, dolp)
    assert t.shape == th.shape
    assert t.max() == pytest.approx(i_max) and t.min() == pytest.approx(i_min)
    assert isinstance(render.malus_transmission(10.0, theta0, dolp), float)


@given(theta=st.floats(-720, 720), theta0=st.floats(-360, 360), dolp=st.floats(0, 1))
def test_malus_is_the_cos2_law(theta, theta0, dolp):
    i_max, i_min = (1 + dolp) / 2, (1 - dolp) / 2
    cos2 = math.cos(math.radians(theta - theta0)) ** 2
    t = render.malus_transmission(theta, theta0, dolp)
    assert t == pytest.approx(i_min + (i_max - i_min) * cos2, abs=1e-12)


@given(dolp=st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.000001)))
def test_malus_rejects_bad_dolp(dolp):
    with pytest.raises(ValueError, match="dolp"):
        render.malus_transmission(0.0, 0.0, dolp)


# ----------------------------------------------------------------------------- validation


@given(t=st.floats(max_value=-1e-300, allow_infinity=False))
def test_negative_exposure_is_rejected(t):
    with pytest.raises(ValueError, match="exposure_s"):
        render.render_widefield_frame(
            np.random.default_rng(0), x_um=[1.0], y_um=[1.0], photons_per_s=[1.0], exposure_s=t
        )
    with pytest.raises(ValueError, match="exposure_s"):
        render.render_spectrum(
            np.random.default_rng(0), wavelengths_nm=LAM, components=[], exposure_s=t
        )


@given(
    nx=st.integers(0, 5),
    ny=st.integers(0, 5),
    nr=st.integers(0, 5),
)
def test_mismatched_emitter_arrays_are_rejected(nx, ny, nr):
    assume(not nx == ny == nr)
    with pytest.raises(ValueError, match="same length"):
        render.render_widefield_frame(
            np.random.default_rng(0),
            shape_px=(8, 8),
            x_um=np.ones(nx),
            y_um=np.ones(ny),
            photons_per_s=np.ones(nr),
            exposure_s=0.1,
        )


@given(
    lam=st.lists(st.floats(200.0, 1200.0), min_size=2, max_size=30),
    data=st.data(),
)
def test_wavelengths_not_increasing_are_rejected(lam, data):
    lam = sorted(lam)
    i = data.draw(st.integers(0, len(lam) - 2))
    lam[i + 1] = lam[i] - data.draw(st.floats(0.0, 50.0))  # equal or decreasing pair
    with pytest.raises(ValueError, match="strictly increasing"):
        render.render_spectrum(
            np.random.default_rng(0),
            wavelengths_nm=lam,
            components=[(1e3, 650.0, 20.0, 0.0)],
            exposure_s=1.0,
        )


@pytest.mark.parametrize(
    ("component", "match"),
    [
        ((1e3, 650.0, 20.0, 1.5), "tail"),
        ((1e3, 650.0, -2.0, 0.0), "fwhm_nm"),
        ((-1.0, 650.0, 20.0, 0.0), "photons_per_s"),
        ((1e3, 650.0, 20.0), r"\(photons_per_s, cew_nm, fwhm_nm, tail\)"),
        ({"photons_per_s": 1e3, "cew_nm": 650.0}, "fwhm_nm"),
    ],
)
def test_bad_components_are_rejected(component, match):
    with pytest.raises(ValueError, match=match):
        render.render_spectrum(
            np.random.default_rng(0), wavelengths_nm=LAM, components=[component], exposure_s=1.0
        )


def test_other_bad_inputs_are_rejected():
    rng = np.random.default_rng(0)
    kw = dict(x_um=[1.0], y_um=[1.0], exposure_s=1.0)
    with pytest.raises(ValueError, match="photons_per_s"):
        render.render_widefield_frame(rng, photons_per_s=[-1.0], **kw)
    with pytest.raises(ValueError, match="qe"):
        render.render_widefield_frame(rng, photons_per_s=[1.0], qe=1.2, **kw)
    with pytest.raises(ValueError, match="bit_depth"):
        render.render_widefield_frame(rng, photons_per_s=[1.0], bit_depth=17, **kw)
    with pytest.raises(ValueError, match="shape_px"):
        render.render_widefield_frame(rng, photons_per_s=[1.0], shape_px=(0, 4), **kw)
    with pytest.raises(ValueError, match="x_um"):
        render.render_widefield_frame(
            rng, x_um=[np.nan], y_um=[1.0], photons_per_s=[1.0], exposure_s=1.0
        )
    with pytest.raises(ValueError, match="band_nm"):
        render.band_fraction(650.0, 30.0, 0.0, (700.0, 600.0))
