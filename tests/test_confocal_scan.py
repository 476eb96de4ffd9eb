"""ConfocalScan on the simulator: emitter positions and per-region FLIM lifetimes against the
world's truth, the drift-corrected repeat-and-sum against the plain sum, refusals before
anything moves, stop, and the same scan on config/lab-sim.yaml."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import hbtscope
from hbtscope import events as ev
from hbtscope.procedures.confocal_scan import ConfocalScan, analyse
from hbtscope.procedures.errors import ParameterError
from hbtscope.procedures.runner import run_procedure
from hbtscope.setup import default_setup_path
from hbtscope.storage import open_run

REPO = Path(__file__).resolve().parents[1]

#: three emitters 1 µm apart with different exciton lifetimes (the FLIM regions)
FIELD = [
    {
        "x_um": 10.0,
        "y_um": 10.0,
        "qy_x": 0.8,
        "qy_xx": 0.04,
        "tau_x_ns": 10.0,
        "tau_xx_ns": 0.8,
        "sigma_abs_cm2": 1.0e-13,
    },
    {
        "x_um": 11.0,
        "y_um": 10.2,
        "qy_x": 0.8,
        "qy_xx": 0.04,
        "tau_x_ns": 5.0,
        "tau_xx_ns": 0.6,
        "sigma_abs_cm2": 1.0e-13,
    },
    {
        "x_um": 10.4,
        "y_um": 11.0,
        "qy_x": 0.8,
        "qy_xx": 0.04,
        "tau_x_ns": 2.5,
        "tau_xx_ns": 0.4,
        "sigma_abs_cm2": 1.0e-13,
    },
]


def field_setup(
    tmp_path: Path,
    *,
    ideal_stage: bool = True,
    drift_nm_per_min: float = 0.0,
    base: Path | None = None,
    name: str = "field.yaml",
) -> Path:
    """A setup file (sim.yaml, or ``base``) whose sample holds only :data:`FIELD`."""
    data = yaml.safe_load((base or default_setup_path()).read_text())
    sim = data["simulation"]
    sim["sample"] = {
        "substrate_background_cps_per_W": sim["sample"]["substrate_background_cps_per_W"],
        "substrate_lifetime_ns": sim["sample"]["substrate_lifetime_ns"],
        "emitters": FIELD,
    }
    if ideal_stage:
        sim["stage"] = {"hysteresis_um": 0.0, "creep_per_decade": 0.0}
    sim["optics"]["drift_nm_per_min"] = drift_nm_per_min
    out = tmp_path / name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def _truth_arrays(path):
    with h5py.File(path, "r") as f:
        t = f["truth"]
        return {k: t[k][()] for k in t} | dict(t.attrs)


def _scan(**kw) -> ConfocalScan:
    p = dict(
        centre_x_um=10.5,
        centre_y_um=10.5,
        centre_z_um=0.0,
        width_um=3.0,
        height_um=3.0,
        pixels_x=30,
        pixels_y=30,
        dwell_s=3e-3,
    )
    p.update(kw)
    return ConfocalScan(**p)


def test_emitter_positions_and_flim_lifetimes_per_region(tmp_path):
    with hbtscope.open_setup(field_setup(tmp_path), data_dir=tmp_path) as setup:
        out = run_procedure(_scan(), setup)
        assert not setup.laser.emission_on
    assert out.status == "finished", out.error
    assert out.figure is not None and out.figure.read_bytes()[:4] == b"\x89PNG"
    truth = _truth_arrays(out.path)
    with open_run(out.path) as run:
        a = run["analysis/confocal_scan"]
        xs, ys = a["emitters_fast_um"][()], a["emitters_slow_um"][()]
        xe, ye = a["emitters_fast_um_err"][()], a["emitters_slow_um_err"][()]
        tau, tau_err = a["emitters_tau_ps"][()], a["emitters_tau_ps_err"][()]
        assert run["data/scan/counts/frame_000"].shape == (2, 30, 30)
        assert run["data/scan/tcspc"].shape == (2, 30, 30, 100)
        counts, counts_err = a["emitters_counts"][()], a["emitters_counts_err"][()]
        assert np.all(counts > 10 * counts_err)  # bright spots, Poisson errors
        assert np.all(np.isfinite(a["emitters_peak_cps_err"][()]))
        flim, flim_err = a["flim_tau_mean_ps"][()], a["flim_tau_mean_ps_err"][()]
        flim_photons = a["flim_photons"][()]
        px, py = a["emitters_x_px"][()], a["emitters_y_px"][()]
        again = analyse(run)  # the stored analysis is what the file gives again
        assert np.allclose(again.values["emitters_fast_um"], xs)
    assert xs.size == 3  # the three emitters, nothing else (auto threshold: ~0.01 false/image)
    tx, ty, ttau = truth["emitter_x_um"], truth["emitter_y_um"], truth["emitter_tau_x_ns"]
    for k in range(3):
        i = int(np.argmin((tx - xs[k]) ** 2 + (ty - ys[k]) ** 2))
        # an ideal stage: the fit is unbiased; 4 sigma of its error plus 10 nm for the pixel-
        # sampled (not integrated) spot model of a 0.1 µm pixel
        assert abs(xs[k] - tx[i]) < 4 * xe[k] + 0.01
        assert abs(ys[k] - ty[i]) < 4 * ye[k] + 0.01
        # region lifetime: a mono-exponential with the Gaussian IRF, ~1e4 photons; 4 sigma
        # of its error plus 3 % for the substrate's 0.3 ns background inside the region
        assert abs(tau[k] * 1e-3 - ttau[i]) < 4 * tau_err[k] * 1e-3 + 0.03 * ttau[i]
    # the FLIM image itself: the pixels next to each emitter (<= 1 px, >= 30 photons; at
    # ~100 photons per pixel their lifetimes are mean arrival times) average to the truth
    # within 4 standard errors of the weighted mean plus the same 3 %
    yy, xx = np.mgrid[0 : flim.shape[0], 0 : flim.shape[1]]
    for k in range(3):
        i = int(np.argmin((tx - xs[k]) ** 2 + (ty - ys[k]) ** 2))
        near = ((xx - px[k]) ** 2 + (yy - py[k]) ** 2 <= 1.0) & (flim_photons >= 30)
        assert near.sum() >= 3
        w = 1.0 / flim_err[near] ** 2
        mean, err = np.sum(w * flim[near]) / w.sum() * 1e-3, w.sum() ** -0.5 * 1e-3
        assert abs(mean - ttau[i]) < 4 * err + 0.03 * ttau[i]
    # the trend: a shorter true lifetime gives a shorter region lifetime
    order = np.argsort(
        [ttau[int(np.argmin((tx - x) ** 2 + (ty - y) ** 2))] for x, y in zip(xs, ys, strict=True)]
    )
    assert np.all(np.diff(tau[order]) > 0)


def test_drift_corrected_sum_is_sharper_than_the_plain_sum(tmp_path):
    # 1.5 µm/min of sample drift (the simulator's optics.drift_nm_per_min; docs/simulator.md):
    # ~60 nm per 2.4 s frame, 4 frames -> the plain sum is smeared over ~0.2 µm
    setup_path = field_setup(tmp_path, drift_nm_per_min=1500.0)
    with hbtscope.open_setup(setup_path, data_dir=tmp_path) as setup:
        out = run_procedure(_scan(pixels_x=28, pixels_y=28, repeats=4, pulsed=False), setup)
    assert out.status == "finished", out.error
    truth = _truth_arrays(out.path)
    with open_run(out.path) as run:
        a = run["analysis/confocal_scan"].attrs
        d = run["analysis/confocal_scan"]
        plain, plain_err = a["spot_sigma_plain_um"], a["spot_sigma_plain_um_err"]
        corr, corr_err = a["spot_sigma_corrected_um"], a["spot_sigma_corrected_um_err"]
        drift_x, drift_y = d["drift_fast_um"][()], d["drift_slow_um"][()]
        drift_err = d["drift_fast_um_err"][()]
        starts = run["data/scan/frame_start_s"][()]
    # sharper by more than 3 combined standard errors
    assert plain - corr > 3 * math.hypot(plain_err, corr_err)
    # and the measured frame shifts are the simulated drift (sign and size): within 15 nm,
    # a tenth of the spot sigma (sub-pixel registration of ~1000-count frames)
    v = truth["drift_velocity_um_s"]
    expected = np.outer(starts - starts[0], v[:2])
    assert np.abs(drift_x - expected[:, 0]).max() < 0.015
    assert np.abs(drift_y - expected[:, 1]).max() < 0.015
    assert np.hypot(*expected[-1]) > 0.1  # the test has drift to correct
    # the reported shift errors (a shot-noise lower bound) are of the size of the deviations:
    # within 4 of them, plus 5 nm for what the bound leaves out (background, in-frame drift)
    assert np.all(drift_err[1:] > 0)
    for measured, axis in ((drift_x, 0), (drift_y, 1)):
        assert np.all(np.abs(measured - expected[:, axis]) < 4 * drift_err + 0.005)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"pixels_x": 1}, "pixels_x"),
        ({"dwell_s": float("nan")}, "dwell_s"),
        ({"laser_power_W": 3e-6}, "max_power_W"),
        ({"centre_x_um": 79.0}, "stage travel"),
        ({"pixels_x": 1024, "pixels_y": 1024, "tcspc_bins": 400}, "MiB"),
        ({"tcspc_bins": 2000, "tcspc_bin_ps": 200}, "laser period"),
    ],
)
def test_bad_parameters_are_refused_before_anything_moves(tmp_path, kw, match):
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        before = setup.stage.position_um
        with pytest.raises(ParameterError, match=match):
            run_procedure(_scan(**kw), setup)
        assert setup.stage.position_um == before
        assert not setup.laser.emission_on
    assert not list(tmp_path.rglob("*.h5"))


def test_stop_ends_aborted_with_the_laser_off_and_a_readable_file(tmp_path):
    stop = threading.Event()

    def stop_after_some_progress(event):
        if isinstance(event, ev.Progress) and event.percent > 20:
            stop.set()

    with hbtscope.open_setup(field_setup(tmp_path), data_dir=tmp_path) as setup:
        out = run_procedure(
            _scan(pixels_y=60, readout_s=0.05),
            setup,
            stop_event=stop,
            displays=[stop_after_some_progress],
        )
        assert not setup.laser.emission_on
        assert setup.daq.is_done()
    assert out.status == "aborted"
    with h5py.File(out.path, "r") as f:
        assert f.attrs["status"] == "aborted"
        frame = f["data/scan/counts/frame_000"][()]
        lines = frame.sum(axis=(0, 2))
        assert lines[:5].sum() > 0 and lines[-5:].sum() == 0  # the lines up to the stop


def test_back_scan_and_xz_plane(tmp_path):
    with hbtscope.open_setup(field_setup(tmp_path), data_dir=tmp_path) as setup:
        out = run_procedure(
            _scan(
                plane="xz",
                centre_x_um=10.0,
                centre_y_um=10.0,
                width_um=1.2,
                height_um=2.4,
                pixels_x=12,
                pixels_y=16,
                back_scan=True,
                pulsed=False,
            ),
            setup,
        )
    assert out.status == "finished", out.error
    with open_run(out.path) as run:
        fwd = run["data/scan/counts/frame_000"][()].sum(axis=0)
        back = run["data/scan/counts_back/frame_000"][()].sum(axis=0)
        z = run["data/scan/slow_um"][()]
        x = run["data/scan/fast_um"][()]
        assert run["data/scan"].attrs["slow_axis"] == "z"
    for img in (fwd, back):  # both directions see the emitter at x = 10, z = 0 (ideal stage)
        i, j = np.unravel_index(np.argmax(img), img.shape)
        assert abs(z[i]) <= 0.2 and abs(x[j] - 10.0) <= 0.11
    assert abs(int(fwd.sum()) - int(back.sum())) < 5 * math.sqrt(fwd.sum() + back.sum())


def test_lab_sim_agrees_with_sim_yaml(tmp_path):
    """The same scan through the real drivers on their twins (NI-DAQmx raster, Swabian API,
    MDT693B) finds the same emitters and lifetimes within errors."""
    results = []
    for base in (default_setup_path(), REPO / "config" / "lab-sim.yaml"):
        path = field_setup(tmp_path, base=base, name=f"{base.stem}.yaml")
        with hbtscope.open_setup(path, data_dir=tmp_path / base.stem) as setup:
            out = run_procedure(
                _scan(
                    pixels_x=20,
                    pixels_y=20,
                    width_um=2.0,
                    height_um=2.0,
                    centre_x_um=10.5,
                    centre_y_um=10.4,
                ),
                setup,
            )
        assert out.status == "finished", out.error
        with open_run(out.path) as run:
            a = run["analysis/confocal_scan"]
            results.append(
                {k: a[k][()] for k in ("emitters_fast_um", "emitters_slow_um", "emitters_tau_ps")}
                | {
                    k + "_err": a[k + "_err"][()]
                    for k in ("emitters_fast_um", "emitters_slow_um", "emitters_tau_ps")
                }
            )
    sim, lab = results
    assert sim["emitters_fast_um"].size == lab["emitters_fast_um"].size >= 2
    for key in ("emitters_fast_um", "emitters_slow_um", "emitters_tau_ps"):
        order_s = np.argsort(sim["emitters_fast_um"])
        order_l = np.argsort(lab["emitters_fast_um"])
        diff = np.abs(sim[key][order_s] - lab[key][order_l])
        err = np.hypot(sim[key + "_err"][order_s], lab[key + "_err"][order_l])
        # 4 combined sigma, plus 10 nm for the DAQ's 16-bit voltage steps on positions
        assert np.all(diff < 4 * err + (0.01 if key != "emitters_tau_ps" else 0.0)), key
