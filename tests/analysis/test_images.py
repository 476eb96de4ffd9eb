"""Emitter finding, bleaching survival, drift registration and Gaussian fits on simulated images.

Frames come from the simulator's pure camera model
(:func:`hbtscope.drivers_sim.render.render_widefield_frame`: Gaussian PSF integrated over
pixels, Poisson photons, QE, dark current, read noise, ADU conversion), so the ground truth
(positions, photon numbers, bleach times) is known exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from hbtscope.analysis.images import (
    EMITTER_DTYPE,
    auto_threshold,
    count_surviving,
    drift_by_cross_correlation,
    estimate_background,
    find_emitters,
    gaussian1d_fit,
    gaussian2d_fit,
    register_and_sum,
    survival_curve,
)
from hbtscope.drivers_sim.render import expected_photon_image, render_widefield_frame

PIXEL_UM = 0.1625
PSF_UM = 0.11
SIGMA_PX = PSF_UM / PIXEL_UM
QE = 0.7


def grid_positions(rng, n_side: int, spacing_px: float, margin_px: float = 6.0):
    """Emitters on a jittered grid (pixel coordinates), at least ~spacing - 3 px apart."""
    g = margin_px + spacing_px * np.arange(n_side)
    xx, yy = np.meshgrid(g, g)
    x = xx.ravel() + rng.uniform(-1.5, 1.5, xx.size)
    y = yy.ravel() + rng.uniform(-1.5, 1.5, yy.size)
    return x, y


def to_um(px):
    """Pixel coordinate (centre at integers) -> sample-plane um for origin (0, 0)."""
    return (np.asarray(px) + 0.5) * PIXEL_UM


def match(table, x, y, max_d=1.0):
    d = np.hypot(table["x"][:, None] - x[None, :], table["y"][:, None] - y[None, :])
    j = d.argmin(axis=1)
    return j, d[np.arange(d.shape[0]), j] < max_d


def mortensen_mle_sd(n_electrons: float, bg_electrons: float) -> float:
    """Localisation limit of an MLE fit (Mortensen et al., Nat. Methods 7, 377 (2010))."""
    sa2 = SIGMA_PX**2 + 1.0 / 12.0
    tau = 2 * math.pi * sa2 * bg_electrons / n_electrons
    return math.sqrt(sa2 / n_electrons * (1 + 4 * tau + math.sqrt(2 * tau / (1 + 4 * tau))))


# ==================================================================== find_emitters


@pytest.mark.parametrize("photons", [2000.0, 400.0])
def test_find_emitters_positions_errors_consistent_with_photon_count(photons):
    rng = np.random.default_rng(11 if photons > 1000 else 12)
    shape = (224, 224)
    bg_rate = 50.0  # photons / pixel / s
    exposure = 0.1
    dx, dy, pulls_x, pulls_y, n_true, n_found = [], [], [], [], 0, 0
    for _ in range(4):
        x, y = grid_positions(rng, 8, 26.0)
        frame = render_widefield_frame(
            rng,
            shape_px=shape,
            pixel_um=PIXEL_UM,
            x_um=to_um(x),
            y_um=to_um(y),
            photons_per_s=np.full(x.size, photons / exposure),
            psf_sigma_um=PSF_UM,
            exposure_s=exposure,
            background_photons_per_px_s=bg_rate,
        )
        table = find_emitters(frame, sigma_px=SIGMA_PX)
        assert table.dtype == EMITTER_DTYPE
        j, ok = match(table, x, y)
        assert ok.all(), "every detection is one of the emitters"
        assert np.unique(j).size == x.size, "every emitter is found exactly once"
        assert table["fit_ok"].all()
        n_true += x.size
        n_found += table.size
        dx.append(table["x"] - x[j])
        dy.append(table["y"] - y[j])
        pulls_x.append(dx[-1] / table["x_err"])
        pulls_y.append(dy[-1] / table["y_err"])
    dx, dy = np.concatenate(dx), np.concatenate(dy)
    px, py = np.concatenate(pulls_x), np.concatenate(pulls_y)
    assert n_found == n_true == 256
    n_e = photons * QE
    bg_e = bg_rate * exposure * QE + 1.6**2  # background + read noise, in electrons^2
    limit = mortensen_mle_sd(n_e, bg_e)
    rms = math.sqrt(0.5 * (np.mean(dx**2) + np.mean(dy**2)))
    # precision near the maximum-likelihood limit for this photon count ...
    assert limit * 0.9 < rms < 1.35 * limit, (rms, limit)
    # ... no bias beyond the statistics ...
    assert abs(dx.mean()) < 4 * limit / math.sqrt(dx.size)
    assert abs(dy.mean()) < 4 * limit / math.sqrt(dy.size)
    # ... and honest reported errors
    assert 0.8 < px.std() < 1.25 and 0.8 < py.std() < 1.25, (px.std(), py.std())
    assert np.mean(np.abs(px) > 3) < 0.02


def test_find_emitters_false_detections_rare_on_noise_frames():
    rng = np.random.default_rng(5)
    false = 0
    for k in range(30):
        frame = render_widefield_frame(
            rng,
            shape_px=(256, 256),
            x_um=[],
            y_um=[],
            photons_per_s=[],
            exposure_s=0.1,
            background_photons_per_px_s=[5.0, 50.0, 500.0][k % 3],
        )
        false += find_emitters(frame, sigma_px=SIGMA_PX).size
    assert false <= 1, f"{false} false detections in 30 noise frames"
    assert auto_threshold(256 * 256) >= 5.0


def test_find_emitters_with_uneven_illumination_and_close_pairs():
    rng = np.random.default_rng(8)
    ny = nx = 160
    x, y = grid_positions(rng, 6, 25.0, margin_px=10.0)
    frame = render_widefield_frame(
        rng,
        shape_px=(ny, nx),
        x_um=to_um(x),
        y_um=to_um(y),
        photons_per_s=np.full(x.size, 15000.0),
        exposure_s=0.1,
        background_photons_per_px_s=20.0,
    ).astype(float)
    # a smooth illumination gradient of the background (LED field not flat)
    yy, xx = np.mgrid[:ny, :nx]
    frame += 40.0 * np.exp(-((xx - 40) ** 2 + (yy - 110) ** 2) / (2 * 60.0**2))
    table = find_emitters(frame, sigma_px=SIGMA_PX)
    j, ok = match(table, x, y)
    assert ok.all() and np.unique(j).size == x.size == table.size
    bg, noise = estimate_background(frame, sigma_px=SIGMA_PX)
    assert bg[110, 40] - bg[0, nx - 1] > 25  # the map follows the gradient
    assert noise > 0
    # two emitters 4 px apart are still resolved (min separation 2 sigma = 1.4 px)
    pair = render_widefield_frame(
        rng,
        shape_px=(40, 40),
        x_um=to_um([18.0, 22.0]),
        y_um=to_um([20.0, 20.0]),
        photons_per_s=[20000.0, 20000.0],
        exposure_s=0.1,
        background_photons_per_px_s=20.0,
    )
    t2 = find_emitters(pair, sigma_px=SIGMA_PX)
    assert t2.size == 2
    assert np.allclose(np.sort(t2["x"]), [18.0, 22.0], atol=0.15)


def test_find_emitters_inputs():
    with pytest.raises(ValueError, match="2-D"):
        find_emitters(np.zeros(10), sigma_px=1.0)
    with pytest.raises(ValueError, match="sigma_px"):
        find_emitters(np.zeros((10, 10)), sigma_px=0.0)
    with pytest.raises(ValueError, match="threshold"):
        find_emitters(np.zeros((10, 10)), sigma_px=1.0, threshold="high")
    empty = find_emitters(np.full((32, 32), 100.0), sigma_px=1.0)
    assert empty.size == 0 and empty.dtype == EMITTER_DTYPE


# ======================================================================== survival


def bleaching_video(rng, bleach_s, times_s, x, y, shape, rate=6000.0):
    frames = []
    for t in times_s:
        frames.append(
            render_widefield_frame(
                rng,
                shape_px=shape,
                x_um=to_um(x),
                y_um=to_um(y),
                photons_per_s=np.where(t < bleach_s, rate, 0.0),
                exposure_s=0.1,
                background_photons_per_px_s=50.0,
            )
        )
    return np.array(frames)


def test_count_surviving_recovers_known_bleach_times():
    rng = np.random.default_rng(21)
    x, y = grid_positions(rng, 9, 20.0)
    n = x.size
    bleach = rng.exponential(900.0, n)
    bleach[:5] = np.inf  # some never bleach
    times = np.arange(0.0, 3600.0 + 1, 20.0)  # a frame every 20 s for 1 h (as in the papers)
    frames = bleaching_video(rng, bleach, times, x, y, (180, 180))
    table = find_emitters(frames[0], sigma_px=SIGMA_PX)
    j, ok = match(table, x, y)
    assert ok.all() and np.unique(j).size == n  # all alive in frame 0 (bleach > 0)
    counts = count_surviving(frames, table, radius_px=2.0, threshold=5.0)
    truth = times[:, None] < bleach[j][None, :]
    assert counts.alive.shape == (times.size, n)
    assert np.array_equal(counts.alive, truth)
    curve = survival_curve(times, counts)
    expected = truth.mean(axis=1)
    np.testing.assert_allclose(curve.fraction, expected)
    # the error is the larger distance to the Clopper-Pearson ends: never 0, also at 100 %
    assert np.all(curve.fraction_err > 0)
    assert np.all(curve.fraction_err >= np.sqrt(expected * (1 - expected) / n) - 1e-12)
    assert curve.n_total == n and curve.fraction[0] == 1.0
    assert np.all(curve.lower <= curve.fraction + 1e-12)
    assert np.all(curve.upper >= curve.fraction - 1e-12)
    assert np.all(np.diff(curve.fraction) <= 0)  # nothing comes back
    # the known exponential bleaching: fraction alive at 900 s ~ exp(-1) (5 immortal ones)
    k = int(np.searchsorted(times, 900.0))
    p_true = (5 + (n - 5) * math.exp(-1)) / n
    assert abs(curve.fraction[k] - p_true) < 4 * math.sqrt(p_true * (1 - p_true) / n)


def test_count_surviving_follows_drift_and_survival_modes():
    rng = np.random.default_rng(3)
    x, y = grid_positions(rng, 4, 22.0, margin_px=12.0)
    times = np.arange(0.0, 200.0, 20.0)
    bleach = np.full(x.size, np.inf)
    frames = []
    shifts = []
    for k, t in enumerate(times):
        d = np.array([0.4 * k, -0.3 * k])  # drift (dy, dx) px
        shifts.append(d)
        frames.append(
            render_widefield_frame(
                rng,
                shape_px=(100, 100),
                x_um=to_um(x + d[1]),
                y_um=to_um(y + d[0]),
                photons_per_s=np.where(t < bleach, 6000.0, 0.0),
                exposure_s=0.1,
                background_photons_per_px_s=50.0,
            )
        )
    frames = np.array(frames)
    pos = np.column_stack([x, y])
    drifted = count_surviving(frames, pos, radius_px=1.5)
    assert not drifted.alive[-1].all()  # 3.6 px of drift leaves the apertures
    est = np.array([drift_by_cross_correlation(frames[0], f) for f in frames])
    np.testing.assert_allclose(est, shifts, atol=0.1)
    followed = count_surviving(frames, pos, radius_px=1.5, shifts=est)
    assert followed.alive.all()
    # a blinking emitter (off in one frame) is "not bleached" until its last ON frame
    alive = np.array([[1, 1], [0, 1], [1, 0], [0, 0]], dtype=bool)
    c1 = survival_curve([0, 20, 40, 60], alive)
    c2 = survival_curve([0, 20, 40, 60], alive, mode="not_bleached")
    np.testing.assert_allclose(c1.n_alive, [2, 1, 1, 0])
    np.testing.assert_allclose(c2.n_alive, [2, 2, 1, 0])
    with pytest.raises(ValueError, match="mode"):
        survival_curve([0], alive[:1], mode="x")
    with pytest.raises(ValueError, match="one time per frame"):
        survival_curve([0, 1], alive)


# =========================================================================== drift


def scan_image(rng, x, y, shift, n_side=128, photons=1500.0, sigma=1.5, bg=5.0):
    """A confocal-like scan (Poisson counts) of emitters shifted by (dy, dx)."""
    lam = expected_photon_image(
        shape_px=(n_side, n_side),
        pixel_um=1.0,
        x_um=x + shift[1] + 0.5,
        y_um=y + shift[0] + 0.5,
        photons=np.full(x.size, photons),
        psf_sigma_um=sigma,
    )
    return rng.poisson(lam + bg).astype(float)


def test_drift_by_cross_correlation_subpixel():
    rng = np.random.default_rng(4)
    x = rng.uniform(8, 120, 30)
    y = rng.uniform(8, 120, 30)
    errs = []
    for _ in range(15):
        shift = rng.uniform(-6, 6, 2)
        ref = scan_image(rng, x, y, (0.0, 0.0))
        img = scan_image(rng, x, y, shift)
        errs.append(np.subtract(drift_by_cross_correlation(ref, img, upsample=100), shift))
    errs = np.array(errs)
    assert np.abs(errs).max() < 0.05, errs
    # undersampled camera frames (PSF sigma 0.68 px) too
    cam_errs = []
    for _ in range(10):
        shift = rng.uniform(-4, 4, 2)
        xs, ys = rng.uniform(5, 90, 25), rng.uniform(5, 90, 25)

        def frame(d, xs=xs, ys=ys):
            return render_widefield_frame(
                rng,
                shape_px=(96, 96),
                x_um=to_um(xs + d[1]),
                y_um=to_um(ys + d[0]),
                photons_per_s=np.full(xs.size, 30000.0),
                exposure_s=0.1,
                background_photons_per_px_s=50.0,
            )

        est = drift_by_cross_correlation(frame((0.0, 0.0)), frame(shift), upsample=100)
        cam_errs.append(np.subtract(est, shift))
    assert np.abs(cam_errs).max() < 0.05, cam_errs


def test_register_and_sum():
    rng = np.random.default_rng(6)
    x, y = grid_positions(rng, 5, 25.0, margin_px=14.0)  # isolated emitters
    shifts = np.array([[0.0, 0.0], [1.3, -0.7], [2.2, 0.4], [-1.1, 3.3], [0.6, 0.6]])
    stack = np.array([scan_image(rng, x, y, s, photons=800.0) for s in shifts])
    res = register_and_sum(stack)
    np.testing.assert_allclose(res.shifts, shifts, atol=0.1)
    assert res.image.shape == stack.shape[1:]
    assert res.image.sum() == pytest.approx(stack.sum(), rel=2e-3)
    # the registered sum is as sharp as one image: emitters fit with the PSF sigma
    naive = stack.sum(axis=0)
    k = 12  # the central emitter of the grid
    fit_reg = gaussian2d_fit(res.image, x[k], y[k], sigma=1.5, window=6)
    fit_naive = gaussian2d_fit(naive, x[k], y[k], sigma=1.5, window=6)
    assert fit_reg.sigma == pytest.approx(1.5, rel=0.08)
    assert fit_naive.sigma > fit_reg.sigma * 1.1
    with pytest.raises(ValueError, match="same shape"):
        drift_by_cross_correlation(np.zeros((8, 8)), np.zeros((8, 9)))


# =================================================================== gaussian fits


def test_gaussian2d_fit_within_errors_on_poisson_scans():
    """Refocus-like xy scans in um: fitted centre within its error, errors honest."""
    rng = np.random.default_rng(9)
    xs = np.linspace(-1.0, 1.0, 21)  # um, 0.1 um steps
    ys = np.linspace(-1.0, 1.0, 21)
    X, Y = np.meshgrid(xs, ys)
    pulls = []
    for _ in range(200):
        x0, y0 = rng.uniform(-0.3, 0.3, 2)
        lam = 20.0 + 300.0 * np.exp(-((X - x0) ** 2 + (Y - y0) ** 2) / (2 * 0.18**2))
        img = rng.poisson(lam)
        fit = gaussian2d_fit(img, 0.0, 0.0, sigma=0.2, x_coords=xs, y_coords=ys, noise="poisson")
        assert fit.success and not fit.at_bound
        pulls.append([(fit.x - x0) / fit.x_err, (fit.y - y0) / fit.y_err])
        assert fit.sigma == pytest.approx(0.18, abs=6 * fit.sigma_err)
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.25)
    assert np.all((pulls.std(axis=0) > 0.85) & (pulls.std(axis=0) < 1.15)), pulls.std(axis=0)
    assert np.mean(np.abs(pulls) > 3) < 0.01


def test_gaussian2d_fit_bounds_and_pixel_integration():
    rng = np.random.default_rng(10)
    # the centre cannot leave max_shift
    img = rng.poisson(np.full((15, 15), 10.0))
    fit = gaussian2d_fit(img, 7.0, 7.0, sigma=1.0, max_shift=0.5)
    assert abs(fit.x - 7.0) <= 0.5 + 1e-9 and abs(fit.y - 7.0) <= 0.5 + 1e-9
    # pixel-integrated model on a camera-like spot: sigma comes out as the PSF, not PSF+pixel
    lam = expected_photon_image(
        shape_px=(15, 15), pixel_um=1.0, x_um=[7.8], y_um=[7.3], photons=[1e6], psf_sigma_um=0.8
    )
    fit_i = gaussian2d_fit(lam + 5.0, 7.0, 7.0, sigma=1.0, integrated=True)
    fit_p = gaussian2d_fit(lam + 5.0, 7.0, 7.0, sigma=1.0, integrated=False)
    assert fit_i.x == pytest.approx(7.3, abs=1e-4) and fit_i.y == pytest.approx(6.8, abs=1e-4)
    assert fit_i.sigma == pytest.approx(0.8, abs=1e-4)
    assert fit_p.sigma > 0.82  # the point model absorbs the pixel width
    with pytest.raises(ValueError, match="noise"):
        gaussian2d_fit(img, 7.0, 7.0, noise="gauss")


def test_gaussian1d_fit_z_scan_within_errors():
    rng = np.random.default_rng(12)
    z = np.linspace(-2.0, 2.0, 41)  # um
    pulls = []
    for _ in range(300):
        c = rng.uniform(-0.5, 0.5)
        counts = rng.poisson(50.0 + 400.0 * np.exp(-((z - c) ** 2) / (2 * 0.55**2)))
        fit = gaussian1d_fit(z, counts)
        assert fit.success and not fit.at_bound
        pulls.append((fit.centre - c) / fit.centre_err)
    pulls = np.array(pulls)
    assert abs(pulls.mean()) < 0.2
    assert 0.85 < pulls.std() < 1.15
    assert fit.fwhm == pytest.approx(2.3548 * fit.sigma, rel=1e-4)
    # bounded: a centre outside the allowed range ends on the bound
    counts = rng.poisson(50.0 + 400.0 * np.exp(-((z - 1.5) ** 2) / (2 * 0.55**2)))
    b = gaussian1d_fit(z, counts, centre_bounds=(-1.0, 1.0))
    assert b.centre == pytest.approx(1.0) and b.at_bound
    with pytest.raises(ValueError, match="equal length"):
        gaussian1d_fit(z, counts[:-1])
