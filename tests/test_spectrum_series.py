"""SpectrumSeries on the simulator: CEW, FWHM and blue-shift rate against the world's truth.

The emitter is the CsPbBr3 nanocube of tests/test_tttr_trace.py (preset blue-shift law of
Pierini et al.: 4.5e-10 nm per absorbed photon, CEW at 485 nm), with its bleaching and
photobrightening off so that it lives through the series. The true CEW of each spectrum is the
world's at the middle of the exposure (``data/spectrum_series/true_cew_nm``, read from
``world.truth_at_focus`` by the procedure on the simulator), the true rate minus the slope of
a straight line through it; the true FWHM is the emitter's (``truth/fwhm_nm``).
"""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest
import yaml

import hbtscope
from hbtscope.procedures.errors import ParameterError
from hbtscope.procedures.runner import run_procedure
from hbtscope.procedures.spectrum_series import SpectrumSeries
from hbtscope.storage.reading import read_truth
from hbtscope.storage.runfile import read_values
from tests.test_tttr_trace import X, Y, _p_sat, _setup_file


def _run(setup, **extra):
    params = dict(n_spectra=13, interval_s=300.0, integration_s=10.0, keep_laser_on=True)
    params.update(extra)
    proc = SpectrumSeries(x_um=X, y_um=Y, z_um=0.0, laser_power_W=_p_sat(setup), **params)
    outcome = run_procedure(proc, setup, figure=False)
    assert outcome.status == "finished", outcome.error
    with h5py.File(outcome.path, "r") as f:
        true_cew = f["data/spectrum_series/true_cew_nm"][()]
        times = f["data/spectrum_series/times_s"][()]
        res = read_values(f["analysis/spectrum_series"])
    truth = read_truth(outcome.path)
    true_rate = -np.polyfit(times / 60.0, true_cew, 1)[0]
    return outcome, res, true_cew, true_rate, truth["fwhm_nm"][0]


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("series")
    with hbtscope.open_setup(_setup_file(tmp), data_dir=tmp) as setup:
        result = _run(setup)
    return result


def test_blue_shift_rate_is_recovered(series):
    """One hour under continuous excitation at P_sat: the CEW moves ~7 nm to the blue.
    Recovered rate within 3 sigma of its (weighted-fit) error, and positive (blue)."""
    _, res, _, true_rate, _ = series
    rate, err = res["blueshift_rate_nm_per_min"], res["blueshift_rate_nm_per_min_err"]
    assert true_rate > 0.05  # the simulator's blue-shift law is on
    assert 0 < err < 0.05 * true_rate
    assert abs(rate - true_rate) < 3 * err, (rate, err, true_rate)


def test_cew_and_fwhm_per_spectrum(series):
    """Every spectrum: CEW within its error of the true CEW -- coverage check: the normalised
    residuals have chi2/n below 2.2 (the 99 % point of chi2_13 / 13 is 2.2) -- and the
    weighted mean FWHM within 3 sigma plus 0.5 % (the line is sampled on 0.39 nm pixels)."""
    _, res, true_cew, _, true_fwhm = series
    assert res["ok"].all()
    z = (res["cew_nm"] - true_cew) / res["cew_nm_err"]
    assert np.mean(z**2) < 2.2, z
    fw, fw_err = res["fwhm_mean_nm"], res["fwhm_mean_nm_err"]
    assert abs(fw - true_fwhm) < 3 * fw_err + 0.005 * true_fwhm, (fw, fw_err, true_fwhm)


def test_laser_only_during_spectra_shifts_much_less(tmp_path):
    """Default: the laser is on only while a spectrum is taken (10 s every 5 min), so the
    emitter absorbs ~30x less and blue-shifts ~30x slower; the rate is still recovered."""
    with hbtscope.open_setup(_setup_file(tmp_path), data_dir=tmp_path) as setup:
        _, res, _, true_rate, _ = _run(setup, keep_laser_on=False)
        assert not setup.laser.emission_on
        assert setup.flip_mirror.position == "spads"
    rate, err = res["blueshift_rate_nm_per_min"], res["blueshift_rate_nm_per_min_err"]
    assert 0 < true_rate < 0.01
    assert abs(rate - true_rate) < 3 * err


def test_figure_from_the_file(series, tmp_path):
    from hbtscope.procedures.spectrum_series import figure

    outcome = series[0]
    with h5py.File(outcome.path, "r") as f:
        png = figure(f, tmp_path / "series.png")
    assert png.exists() and png.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"laser_power_W": 5e-6}, r"exceeds the setup's max_power_W"),
        ({"interval_s": float("nan")}, r"interval_s = nan is not a finite number"),
        ({"y_um": -5.0}, r"y_um = -5.0 is outside the stage travel"),
        ({"integration_s": 20.0, "interval_s": 10.0}, r"shorter than interval_s"),
    ],
)
def test_a_bad_parameter_is_refused_before_anything_moves(tmp_path, params, match):
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        focus = setup.world.focus_um.copy()
        with pytest.raises(ParameterError, match=match):
            run_procedure(SpectrumSeries(**{"n_spectra": 3, **params}), setup)
        assert not setup.laser.emission_on
        np.testing.assert_array_equal(setup.world.focus_um, focus)
    assert not list(tmp_path.rglob("*.h5"))


def test_a_setup_without_flip_mirror_is_refused(tmp_path):
    """config/lab-sim.yaml has no flip mirror (no real driver yet): refused, no file."""
    from tests.test_lab_sim import LAB_SIM

    with hbtscope.open_setup(LAB_SIM, data_dir=tmp_path) as setup:
        with pytest.raises(ParameterError, match="flip_mirror"):
            run_procedure(SpectrumSeries(n_spectra=3), setup)
    assert not list(tmp_path.rglob("*.h5"))


def test_stop_leaves_an_aborted_readable_file(tmp_path):
    stop = threading.Event()

    def on_event(topic, record):
        if topic == "progress" and record > 30:
            stop.set()

    with hbtscope.open_setup(_setup_file(tmp_path), data_dir=tmp_path) as setup:
        proc = SpectrumSeries(x_um=X, y_um=Y, z_um=0.0, n_spectra=10, interval_s=60.0)
        outcome = run_procedure(proc, setup, stop_event=stop, on_event=on_event, figure=False)
        assert not setup.laser.emission_on
        assert setup.flip_mirror.position == "spads"
    assert outcome.status == "aborted"
    with h5py.File(outcome.path, "r") as f:
        assert f.attrs["status"] == "aborted"
        n = f["data/spectrum_series"].attrs["n_acquired"]
        assert 3 <= n < 10
        assert len(f["data/spectrum_series/spectra"]) == n


def test_lab_sim_with_a_flip_mirror_agrees_with_sim(tmp_path):
    """lab-sim.yaml (real drivers on twins) plus the simulated flip mirror (no real driver
    exists): the blue-shift rate and mean FWHM agree with sim.yaml within 3 combined sigma
    (plus the 0.5 % FWHM allowance of the pixel sampling: both see the same line)."""
    from tests.test_lab_sim import LAB_SIM

    lab = yaml.safe_load(_setup_file(tmp_path, LAB_SIM, "lab.yaml").read_text())
    lab["instruments"]["flip_mirror"] = {
        "driver": "FlipMirror",
        "backend": "sim",
        "address": "sim://flipmirror",
    }
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(lab, sort_keys=False))
    out = {}
    for name, path in (("sim", _setup_file(tmp_path)), ("lab", tmp_path / "lab.yaml")):
        with hbtscope.open_setup(path, data_dir=tmp_path / name) as setup:
            out[name] = _run(setup, n_spectra=5, interval_s=600.0)[1]
    a, b = out["sim"], out["lab"]
    for key, allow in (("blueshift_rate_nm_per_min", 0.0), ("fwhm_mean_nm", 0.005)):
        sigma = np.hypot(a[f"{key}_err"], b[f"{key}_err"])
        assert abs(a[key] - b[key]) < 3 * sigma + allow * a[key], (key, a[key], b[key])
