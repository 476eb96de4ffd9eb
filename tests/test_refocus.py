"""Refocus on the simulator with the default open-loop piezo (hysteresis and creep): the focus
ends within 50 nm of the emitter's true position, where the coarse fit alone misses it; the
emitter book gets the drift history; refusals, stop, and lab-sim."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

import hbtscope
from hbtscope import events as ev
from hbtscope.procedures.errors import ParameterError
from hbtscope.procedures.refocus import Refocus
from hbtscope.procedures.runner import run_procedure
from hbtscope.storage import open_run

REPO = Path(__file__).resolve().parents[1]


def _miss_um(path) -> tuple[np.ndarray, np.ndarray]:
    """(actual focus - emitter) and (commanded coarse fit - emitter) from the run's truth."""
    with h5py.File(path, "r") as f:
        t = f["truth"].attrs
        em = np.array([t["emitter_x_um"], t["emitter_y_um"], t["emitter_z_um"]])
        actual = np.array([t["actual_x_um"], t["actual_y_um"], t["actual_z_um"]])
        d = f["data/refocus"].attrs
        coarse = np.array([d["coarse_x_um"], d["coarse_y_um"], d["coarse_z_um"]])
    return actual - em, coarse - em


def test_refocus_reaches_the_emitter_despite_hysteresis(tmp_path):
    """sim.yaml's stage lags by up to 0.15 µm; starting 0.3 µm off in x, y and z, the refocus
    puts the real focus within 50 nm of the emitter (issue 12), twice in a row, and the
    emitter's drift history gets both positions."""
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        first = run_procedure(Refocus(emitter="E1", x_um=10.3, y_um=9.8, z_um=0.4), setup)
        assert not setup.laser.emission_on
        # the second run starts from the emitter book's position (NaN start)
        second = run_procedure(Refocus(emitter="E1"), setup)
    for out in (first, second):
        assert out.status == "finished", out.error
        assert out.figure is not None and out.figure.exists()
        miss, coarse_miss = _miss_um(out.path)
        # the requirement; the fit errors are ~2 nm, the residual lag of the
        # same-way approach a few nm
        assert np.all(np.abs(miss) < 0.050), miss
    # what the closed loop is for: the coarse raster's fitted centre, commanded, is off by
    # the piezo's lag (> 50 nm along the slow axis after the long move to the raster start)
    _, coarse_miss = _miss_um(first.path)
    assert np.abs(coarse_miss[:2]).max() > 0.05
    record = json.loads((tmp_path / "emitters" / "E1.json").read_text())
    assert [p["source"] for p in record["positions"]] == ["refocus", "refocus"]
    assert record["positions"][0]["run"] == str(first.path)
    with open_run(second.path) as run:
        a = run["analysis/refocus"].attrs
        assert a["converged"] and a["peak_fraction"] >= 0.9
        assert run["data/refocus"].attrs["start_x_um"] == pytest.approx(
            record["positions"][0]["x_um"]
        )
        for axis in "xyz":  # every position has its uncertainty
            assert 0 < a[f"{axis}_um_err"] < 0.02


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"x_um": 0.2}, "stage travel"),
        ({"emitter": "../etc"}, "emitter name"),
        ({"laser_power_W": 1e-5}, "max_power_W"),
        ({"count_time_s": float("inf")}, "finite"),
    ],
)
def test_bad_parameters_are_refused_before_anything_moves(tmp_path, kw, match):
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        before = setup.stage.position_um
        with pytest.raises(ParameterError, match=match):
            run_procedure(Refocus(**({"x_um": 10.0, "y_um": 10.0, "z_um": 0.0} | kw)), setup)
        assert setup.stage.position_um == before
    assert not list(tmp_path.rglob("*.h5"))


def test_stop_ends_aborted_with_the_laser_off(tmp_path):
    stop = threading.Event()

    def stop_in_the_closed_loop(event):
        if isinstance(event, ev.Progress) and event.percent > 35:
            stop.set()

    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        out = run_procedure(
            Refocus(emitter="E2", x_um=10.0, y_um=10.0, z_um=0.0),
            setup,
            stop_event=stop,
            displays=[stop_in_the_closed_loop],
        )
        assert not setup.laser.emission_on
    assert out.status == "aborted"
    with h5py.File(out.path, "r") as f:
        assert f.attrs["status"] == "aborted" and "xy_image" in f["data/refocus"]
    assert not (tmp_path / "emitters" / "E2.json").exists()  # no position from a stopped run


def test_lab_sim_refocus_within_50_nm(tmp_path):
    """Through the MDT693B driver on its twin and the NI-DAQmx raster: the same result."""
    with hbtscope.open_setup(REPO / "config" / "lab-sim.yaml", data_dir=tmp_path) as setup:
        out = run_procedure(Refocus(x_um=10.3, y_um=9.8, z_um=0.4), setup)
    assert out.status == "finished", out.error
    miss, _ = _miss_um(out.path)
    assert np.all(np.abs(miss) < 0.050), miss
    assert math.isfinite(out.summary["x_um_err"])
