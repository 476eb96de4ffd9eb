"""g2 under CW excitation (``excitation = "cw"``, Baronnier et al. eq. 4) on the simulator:
g2(0) and the antibunching time against the truth, crosstalk found and excluded, the laser
set back to pulsed, and a laser that cannot run CW refused before anything moves."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import hbtscope
from hbtscope.procedures.errors import ParameterError
from hbtscope.procedures.g2 import G2Measurement
from hbtscope.procedures.runner import run_procedure

LAB_SIM = Path(__file__).resolve().parents[1] / "config" / "lab-sim.yaml"


def test_cw_g2_and_antibunching_time_agree_with_the_truth(tmp_path, ideal_stage_setup_path):
    """Demo emitter, CW at 24 nW set point (18 nW emitted), 40 s. The truth is the
    simulator's closed form (physics.cw_g2_zero with the substrate's Poisson light) and
    tau0 = 1/(k_exc + 1/tau_X). Each within 3 sigma of the fit's reported error (two
    comparisons: chance failure ~0.5 %). The sim.yaml SPADs' crosstalk (zero delay
    +-8 ns) is found in the residuals: two windows, symmetric about the fitted zero delay."""
    with hbtscope.open_setup(ideal_stage_setup_path, data_dir=tmp_path) as setup:
        proc = G2Measurement(
            x_um=10.0, y_um=10.0, z_um=0.0, excitation="cw", duration_s=40.0, record_tags=False
        )
        out = run_procedure(proc, setup)
        assert not setup.laser.emission_on
    assert out.status == "finished", out.error
    with h5py.File(out.path, "r") as f:
        truth = dict(f["truth"].attrs)
        res = dict(f["analysis/g2"].attrs)
        windows = f["analysis/g2/crosstalk_windows_ps"][()]
    assert truth["excitation"] == "cw"
    assert res["converged"] and res["identifiable"]
    assert abs(res["g2_0"] - truth["g2_0_with_background"]) < 3 * res["g2_0_err"]
    assert abs(res["tau0_ns"] - truth["cw_tau0_ns"]) < 3 * res["tau0_ns_err"]
    assert res["g2_0_err"] < 0.05 and res["tau0_ns_err"] < 1.0  # enough data to mean something
    centres = windows.mean(axis=1) - res["zero_delay_ps"]
    np.testing.assert_allclose(np.sort(centres), [-8000.0, 8000.0], atol=1500.0)
    assert out.figure is not None and out.figure.read_bytes()[:4] == b"\x89PNG"
    assert out.summary["excitation"] == "cw"


def test_a_pulsed_run_after_a_cw_run_is_pulsed(tmp_path, ideal_stage_setup_path):
    with hbtscope.open_setup(ideal_stage_setup_path, data_dir=tmp_path) as setup:
        cw = G2Measurement(x_um=10.0, y_um=10.0, excitation="cw", duration_s=1.0)
        assert run_procedure(cw, setup, figure=False).status == "finished"
        out = run_procedure(G2Measurement(duration_s=1.0), setup, figure=False)
    with h5py.File(out.path, "r") as f:
        assert f["truth"].attrs["excitation"] == "pulsed"


@pytest.mark.parametrize(
    ("setup_file", "params", "match"),
    [
        (LAB_SIM, {}, r"excitation = 'cw' needs a laser that can run CW"),
        (None, {"cw_fit_range_ps": 20_000_000}, r"cw_fit_range_ps = 20000000 ps exceeds"),
    ],
)
def test_cw_refused_before_anything_moves(tmp_path, setup_file, params, match):
    """The lab's Sepia II driver (lab-sim.yaml) does not offer CW through the laser role."""
    with hbtscope.open_setup(setup_file, data_dir=tmp_path) as setup:
        focus = setup.world.focus_um.copy()
        with pytest.raises(ParameterError, match=match):
            run_procedure(G2Measurement(excitation="cw", x_um=12.0, y_um=10.0, **params), setup)
        assert not setup.laser.emission_on
        np.testing.assert_array_equal(setup.world.focus_um, focus)
    assert not list(tmp_path.rglob("*.h5"))
