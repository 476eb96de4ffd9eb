"""Polarisation on the simulator (default imperfections: creeping, hysteretic open-loop piezo,
non-linear laser, blinking and photobrightening nanocubes): the DOLP and dipole angle of a
nanocube of the survey field (drawn by the simulator from its preset, read back from
``truth/``) are recovered within their reported errors; bad parameters are refused before
anything moves; a stop leaves the laser off and the analyser out; the lab drivers (a filter
wheel of polarisers on its twin) agree with sim.yaml.
"""

from __future__ import annotations

import os
import signal
import threading

import h5py
import numpy as np
import pytest

import hbtscope
from hbtscope.procedures.errors import ParameterError
from hbtscope.procedures.polarization import Polarization, analyse
from hbtscope.procedures.runner import run_procedure
from hbtscope.setup import default_setup_path
from hbtscope.storage import open_run, run_status
from tests.conftest import start_cli_run, wait_for_rows

LAB_SIM = default_setup_path().parents[2] / "config" / "lab-sim.yaml"


def _isolated_nanocube(world, k: int):
    """The k-th CsPbBr3 nanocube of the survey field with no other emitter within 4 um."""
    xy = np.array([[e.x_um, e.y_um] for e in world.emitters])
    found = []
    for e in world.emitters:
        d = np.sort(np.hypot(xy[:, 0] - e.x_um, xy[:, 1] - e.y_um))[1]
        if e.species == "cspbbr3_nanocube" and d > 4.0 and 42 < e.x_um < 75 and 2 < e.y_um < 78:
            found.append(e)
    return found[k]


def _run(setup, emitter, **params):
    p_sat = setup.world.saturation_power_W(emitter)
    proc = Polarization(
        x_um=emitter.x_um, y_um=emitter.y_um, z_um=0.0, laser_power_W=0.5 * p_sat, **params
    )
    outcome = run_procedure(proc, setup)
    assert outcome.status == "finished", outcome.error
    return outcome


def _axial(a: float, b: float) -> float:
    d = (a - b) % 180.0
    return min(d, 180.0 - d)


@pytest.mark.parametrize("k", [0, 6], ids=["dolp_0.22", "dolp_0.05"])
def test_dolp_and_dipole_angle_recover_the_simulated_emitter(tmp_path, k):
    """Two nanocubes (the simulator drew DOLP 0.22 and 0.05 from the preset): the measured
    DOLP within 3 of its reported sigma (Poisson, inflated by sqrt(chi2_red) for blinking) of
    the truth, and the dipole angle within 3 sigma where the modulation is significant."""
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        emitter = _isolated_nanocube(setup.world, k)
        outcome = _run(setup, emitter, dwell_s=3.0)
    s = outcome.summary
    assert s["truth_dolp"] == pytest.approx(emitter.dolp)  # truth/ holds the simulator's
    assert 0 < s["dolp_err"] < 0.1  # enough light to mean something
    assert abs(s["dolp"] - s["truth_dolp"]) < 3 * s["dolp_err"], s
    if s["identifiable"]:
        assert _axial(s["theta0_deg"], s["truth_dipole_deg"]) < 3 * s["theta0_deg_err"] + 1, s
    assert outcome.figure.read_bytes()[:4] == b"\x89PNG"
    with open_run(outcome.path) as f:  # analysing the file again gives what the run stored
        assert analyse(f).summary["dolp"] == s["dolp"]
        stored = f["analysis/polarization"].attrs
        assert stored["dolp"] == s["dolp"] and stored["dolp_err"] == s["dolp_err"]


def test_without_background_subtraction_the_dolp_is_diluted(tmp_path):
    """Unpolarised substrate light and dark counts under the emitter pull the modulation
    depth down: DOLP_measured = DOLP S/(S+B) < DOLP (sign of the effect, and its size within
    errors: S/(S+B) from the run's own background-subtracted fit)."""
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        emitter = _isolated_nanocube(setup.world, 0)
        plain = _run(setup, emitter, background_offset_um=float("nan")).summary
    assert not plain["background_subtracted"]
    with h5py.File(next(tmp_path.rglob("*.h5")), "r") as f:
        truth = dict(f["truth"].attrs)
    assert plain["dolp"] < plain["truth_dolp"]
    mean = 0.5 * (plain["I_max"] + plain["I_min"])
    b = truth["background_rate_cps"] + truth["dark_rate_cps"]  # per 1 s dwell
    expected = plain["truth_dolp"] * (mean - b) / mean
    assert abs(plain["dolp"] - expected) < 3 * plain["dolp_err"], (plain, expected)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"dwell_s": float("nan")}, "finite"),
        ({"laser_power_W": 5e-6}, "max_power_W"),
        ({"x_um": 79.0}, "outside the stage travel"),
        ({"step_deg": 90.0}, "fewer than 3 distinct"),
        ({"n_angles": 2}, "out of range"),
    ],
)
def test_bad_parameters_are_refused_before_anything_moves(tmp_path, params, match):
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        before = tuple(setup.stage.position_um)
        kw = {"x_um": 60.0, "y_um": 40.0, **params}
        with pytest.raises(ParameterError, match=match):
            run_procedure(Polarization(**kw), setup)
        assert tuple(setup.stage.position_um) == before
        assert not setup.world.laser.on
        assert setup.world.analyser_deg is None
    assert not list(tmp_path.rglob("*.h5"))


def test_an_angle_the_wheel_does_not_hold_is_refused(tmp_path):
    """lab-sim.yaml: a wheel of polarisers at 0, 36, ... 144 deg: 15 deg steps are refused."""
    with hbtscope.open_setup(LAB_SIM, data_dir=tmp_path) as setup:
        with pytest.raises(ParameterError, match="not in the wheel"):
            run_procedure(Polarization(x_um=60.0, y_um=40.0, step_deg=15.0), setup)
    assert not list(tmp_path.rglob("*.h5"))


def test_stop_leaves_the_laser_off_and_the_analyser_out(tmp_path):
    stop = threading.Event()

    def on_event(topic, record):
        if topic == "results":
            seen.append(record)
            if len(seen) >= 3:
                stop.set()

    seen: list = []
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        emitter = _isolated_nanocube(setup.world, 0)
        proc = Polarization(x_um=emitter.x_um, y_um=emitter.y_um, laser_power_W=20e-9)
        outcome = run_procedure(proc, setup, stop_event=stop, on_event=on_event)
        assert not setup.world.laser.on
        assert setup.world.analyser_deg is None
        assert not setup.polariser.in_path
    assert outcome.status == "aborted"
    assert run_status(outcome.path) == "aborted"
    with h5py.File(outcome.path, "r") as f:
        assert f["data/polarization/counts"].shape == (3, 2)


def test_lab_drivers_on_their_twins_agree_with_sim_yaml(tmp_path):
    """The same nanocube with the wheel's five polarisers (0-144 deg, twice over) on
    lab-sim.yaml and with the rotating analyser of sim.yaml at the same angles: the two DOLPs
    agree within their combined errors."""
    results = []
    for path in (default_setup_path(), LAB_SIM):
        with hbtscope.open_setup(path, data_dir=tmp_path / path.stem) as setup:
            emitter = _isolated_nanocube(setup.world, 0)
            outcome = _run(setup, emitter, step_deg=36.0, n_angles=5, dwell_s=2.0)
        results.append(outcome.summary)
    sim, lab = results
    err = np.hypot(sim["dolp_err"], lab["dolp_err"])
    assert abs(sim["dolp"] - lab["dolp"]) < 3 * err, results
    assert abs(lab["dolp"] - lab["truth_dolp"]) < 3 * lab["dolp_err"], lab


# ------------------------------------------------------------------ killed, terminated


def _start_cli(tmp_path, clock: str, *sets: str):
    return start_cli_run(
        tmp_path, "polarization", clock, "x_um=65.13", "y_um=38.21", "laser_power_W=30e-9", *sets
    )


_wait_for_rows = wait_for_rows


def test_sigkill_mid_sweep_leaves_the_angles_so_far(tmp_path):
    proc, out = _start_cli(tmp_path, "fast", "n_angles=720", "passes=20", "step_deg=7")
    try:
        seen = _wait_for_rows(proc, out, "data/polarization/counts", 6)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    path = next(out.rglob("*.h5"))
    assert run_status(path) == "interrupted"
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "running"
        assert f["data/polarization/counts"].shape[0] >= seen
    with open_run(path) as f:
        result = analyse(f)
    assert result.values["n_points"] >= seen - 1 and "dolp" in result.values


def test_sigterm_mid_sweep_aborts(tmp_path):
    proc, out = _start_cli(tmp_path, "realtime", "dwell_s=0.2", "n_angles=100", "step_deg=5")
    try:
        seen = _wait_for_rows(proc, out, "data/polarization/counts", 2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert "instruments left in safe state" in err.decode()
    path = next(out.rglob("*.h5"))
    assert run_status(path) == "aborted"
    with h5py.File(path, "r") as f:
        assert f["data/polarization/counts"].shape[0] >= seen
