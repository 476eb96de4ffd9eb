"""Hardware-timed raster: stage moves on the DAQ's clock, pixel markers gate the tagger."""

from __future__ import annotations

import numpy as np
import pytest

import hbtscope
from hbtscope.instruments.base import LimitError


@pytest.fixture()
def setup(tmp_path, ideal_stage_setup_path):
    # the subject is not the stage: an ideal one puts the focus exactly on the emitter
    with hbtscope.open_setup(ideal_stage_setup_path, data_dir=tmp_path) as s:
        yield s


def _raster(cx, cy, half, n):
    xs = np.linspace(cx - half, cx + half, n)
    ys = np.linspace(cy - half, cy + half, n)
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)]), xs, ys


def test_confocal_image_from_pixel_markers(setup):
    """A 21x21 raster over the demo emitter: CountBetweenMarkers gives a confocal image whose
    spot is centred on the emitter (within 0.2 pixel) with the confocal width w/sqrt(2)."""
    tt, api = setup.tagger, setup.tagger.api
    marker = tt.channels["pixel_marker"]
    xyz, xs, ys = _raster(10.0, 10.0, 1.0, 21)
    setup.laser.power_W = 10e-9
    setup.laser.enable()
    dwell = 2e-3
    setup.daq.load_raster(xyz, dwell, marker_channel=marker)
    cbm = [
        api.CountBetweenMarkers(tt.device, ch, marker, n_values=xyz.shape[0])
        for ch in tt.spad_channels
    ]
    setup.daq.start()
    setup.daq.wait_done()
    setup.clock.sleep(0.01)
    assert all(c.ready() for c in cbm)
    widths = cbm[0].getBinWidths()
    assert np.allclose(widths, dwell * 1e12, atol=1)
    image = (cbm[0].getData() + cbm[1].getData()).reshape(21, 21).astype(float)
    assert setup.stage.position_um[:2] == pytest.approx((11.0, 11.0))
    bg = np.median(image)
    w = np.clip(image - bg, 0, None)
    gx, gy = np.meshgrid(xs, ys)
    cx, cy = (w * gx).sum() / w.sum(), (w * gy).sum() / w.sum()
    pixel = xs[1] - xs[0]
    assert abs(cx - 10.0) < 0.2 * pixel and abs(cy - 10.0) < 0.2 * pixel
    # confocal spot: excitation (w_e = 0.25 µm) x collection (w_c, sim.yaml 0.35 µm), a
    # Gaussian of sigma = 1 / (2 sqrt(1/w_e^2 + 1/w_c^2))
    from scipy.optimize import curve_fit

    def spot(xy, a, x0, y0, sigma, b):
        x, y = xy
        return a * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2)) + b

    p, cov = curve_fit(
        spot,
        (gx.ravel(), gy.ravel()),
        image.ravel(),
        p0=[image.max(), cx, cy, 0.1, bg],
        sigma=np.sqrt(image.ravel() + 1),
    )
    o = setup.world.optics
    w_c = o.collection_w_xy_um or o.psf_w_xy_um
    sigma_true = 0.5 / np.sqrt(1 / o.psf_w_xy_um**2 + 1 / w_c**2)
    assert abs(p[3]) == pytest.approx(sigma_true, abs=4 * np.sqrt(cov[3, 3]) + 0.005)


def test_raster_outside_travel_is_refused_before_anything_moves(setup):
    xyz, _, _ = _raster(99.5, 10.0, 1.0, 5)  # x up to 100.5 > 80 µm travel
    before = setup.stage.position_um
    with pytest.raises(LimitError, match="outside the stage travel"):
        setup.daq.load_raster(xyz, 1e-3, marker_channel=4)
    with pytest.raises(LimitError, match="below the minimum"):
        setup.daq.load_raster(xyz[:1] * 0 + 5, 1e-9)
    assert setup.stage.position_um == before


def test_stop_midway_leaves_the_stage_at_the_current_pixel(setup):
    xyz, _, _ = _raster(20.0, 20.0, 1.0, 11)
    setup.daq.load_raster(xyz, 0.01, marker_channel=4)
    t0 = setup.daq.start()
    setup.clock.sleep(0.5)  # 50 pixels in
    setup.daq.stop()
    i = int((setup.clock.now() - t0) / 0.01)
    assert setup.stage.position_um == pytest.approx(tuple(xyz[i]))
    setup.clock.sleep(1.0)
    assert setup.stage.position_um == pytest.approx(tuple(xyz[i]))
    assert setup.daq.is_done()
