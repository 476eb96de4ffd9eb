"""Bleaching video on the simulator (default imperfections: the open-loop piezo creeps the
field by pixels during the video): the survival the analysis reads from the frames is the
simulated emitters' own survival (their bleaching times in ``truth/``), a more diluted sample
bleaches faster, bad parameters are refused before anything is switched on, a stop leaves the
LED off and a readable file, and the lab drivers on their twins agree with sim.yaml.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import h5py
import numpy as np
import pytest
import yaml

import hbtscope
from hbtscope.procedures.bleaching_video import (
    BleachingVideo,
    analyse,
    compare_figure,
    compare_survival,
)
from hbtscope.procedures.errors import ParameterError
from hbtscope.procedures.runner import run_procedure
from hbtscope.setup import default_setup_path
from hbtscope.storage import open_run, run_status
from tests.conftest import sim_yaml_with, start_cli_run, wait_for_rows

#: the survey field of sim.yaml (CsPbBr3 nanocubes among impurities, x 40-80 um)
FIELD = {"x_um": 60.0, "y_um": 40.0, "z_um": 0.0}
LAB_SIM = default_setup_path().parents[2] / "config" / "lab-sim.yaml"


def _video(setup, **params):
    proc = BleachingVideo(**{**FIELD, **params})
    outcome = run_procedure(proc, setup)
    assert outcome.status == "finished", outcome.error
    return outcome


def _matched_truth(f: h5py.File) -> tuple[np.ndarray, np.ndarray]:
    """For each emitter found in frame 0: the bleaching time of the simulated emitter at its
    position (within 1.5 px: the frame-0 positions are sub-pixel, the stage misses by
    hysteresis 0.15 um ~ 1 px), and whether one was found."""
    a, t = f["analysis/bleaching_video"], f["truth"]
    xs, ys = a["emitter_x_px"][()], a["emitter_y_px"][()]
    tx, ty, tb = t["emitter_x_px"][()], t["emitter_y_px"][()], t["bleach_time_s"][()]
    bleach = np.full(xs.size, np.nan)
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        d = np.hypot(tx - x, ty - y)
        if d.size and d.min() < 1.5:
            bleach[k] = tb[np.argmin(d)]
    return bleach, np.isfinite(bleach) | np.isinf(bleach)


def test_survival_is_the_simulated_emitters_survival(tmp_path):
    """20 min of the survey field under the full LED, a frame every minute.

    Each emitter found in frame 0 is one of the simulated ones (matched by position), and
    the last frame the analysis sees it emit in brackets its true bleaching time: bleached
    between that frame and the next, or not at all. The survival curve is then the truth's:
    as both count the *same* emitters there is no sampling error between them, only
    misclassified frames, so the measured surviving fraction after 20 min must equal the
    truth's to within one emitter (the reported 68 % interval, about two emitters wide
    here, is the binomial error of the *population's* fraction, not needed between the two)."""
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        outcome = _video(setup, duration_s=1200.0, interval_s=60.0, report_after_s=1200.0)
    with h5py.File(outcome.path, "r") as f:
        a = f["analysis/bleaching_video"]
        times = a["times_s"][()]
        last = a["emitter_last_emitting_s"][()]
        n_alive = a["n_alive"][()]
        bleach, matched = _matched_truth(f)
        n_truth = f["truth/bleach_time_s"].size
        assert f["data/video/frames"].shape == (21, 256, 256)
        assert f["data/video/frames"].chunks == (1, 256, 256)
        drift = a["drift_px"][()]
        a_left = int(a.attrs["n_left_field"])
    n = last.size
    assert n >= 10 and matched.all(), (n, matched)
    # the frame-0 detection misses border emitters and the ones the creep takes out of field
    assert n + a_left >= n_truth - 3
    # the piezo creeps after the 60 um move: the field drifts by pixels, followed
    assert np.hypot(*drift[-1]) > 2.0
    interval = times[1] - times[0]
    gone = np.isfinite(bleach) & (bleach < times[-1])
    assert gone.sum() >= 2  # the check below is about bleaching, not only survival
    for k in range(n):
        if gone[k]:  # bleached during the video: last seen in the frame before (or during)
            assert last[k] <= bleach[k] < last[k] + interval + 1.0, (k, last[k], bleach[k])
        else:
            assert last[k] == times[-1], (k, last[k], bleach[k])
    truth_alive = (bleach[None, :] > times[:, None]).sum(axis=1)
    assert np.max(np.abs(n_alive - truth_alive)) <= 1, (n_alive, truth_alive)
    s = outcome.summary
    truth_fraction = float(np.mean(bleach > s["report_time_s"]))
    assert abs(s["fraction_at_report"] - truth_fraction) <= 1.0 / n + 1e-9
    assert s["truth_fraction_at_report"] == pytest.approx(truth_fraction)  # the JSON's truth
    assert outcome.figure is not None and outcome.figure.read_bytes()[:4] == b"\x89PNG"
    # the analysis of the file again gives what the run stored
    with open_run(outcome.path) as f:
        again = analyse(f)
    assert again.summary["fraction_at_report"] == s["fraction_at_report"]


def _dilution_setup(tmp_path, dilution: float):
    data = yaml.safe_load(default_setup_path().read_text())
    sample = data["simulation"]["sample"]
    sample["populations"] = [
        {
            "preset": "cspbbr3_zn",
            "density_per_um2": 0.02,
            "dilution": dilution,
            "area_um": [40.0, 80.0, 20.0, 60.0],
        }
    ]
    return sim_yaml_with(tmp_path, data["simulation"], name=f"dil{dilution:g}.yaml")


def test_a_diluted_sample_bleaches_faster(tmp_path):
    """D'Amato et al. Fig. 2a: 1:10 and 1:200 of the Zn-doped cubes, 15 min each on a fresh
    sample. The 1:200 field loses more emitters: its surviving fraction is lower by more than
    3 combined sigma and it is half bleached within the video, the 1:10 one is not (the
    truth's own fractions say the same: checked first, so the test tests the analysis)."""
    runs, truths = [], []
    for dilution in (10.0, 200.0):
        path = _dilution_setup(tmp_path, dilution)
        with hbtscope.open_setup(path, data_dir=tmp_path / f"d{dilution:g}") as setup:
            outcome = _video(
                setup, duration_s=900.0, interval_s=60.0, sample_label=f"1:{dilution:g}"
            )
        runs.append(outcome.path)
        with h5py.File(outcome.path, "r") as f:
            bleach, _ = _matched_truth(f)
        truths.append(float(np.mean(bleach > 900.0)))
    assert truths[1] < 0.5 < truths[0]
    rows = compare_survival(runs)
    assert [r["label"] for r in rows] == ["1:10", "1:200"]
    r10, r200 = rows
    assert min(r10["n_emitters"], r200["n_emitters"]) >= 10
    diff = r10["fraction"] - r200["fraction"]
    assert diff > 3 * np.hypot(r10["fraction_err"], r200["fraction_err"]), rows
    assert np.isfinite(r200["t_level_s"]) and not np.isfinite(r10["t_level_s"])
    for row, truth in zip(rows, truths, strict=True):  # the same emitters: within one
        assert abs(row["fraction"] - truth) <= 1.0 / row["n_emitters"] + 1e-9, (row, truth)
    png = compare_figure(runs, tmp_path / "compare.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"interval_s": float("nan")}, "finite"),
        ({"exposure_s": 2.0, "interval_s": 1.0}, "shorter than the frame interval"),
        ({"led_power_fraction": 1.5}, "out of range"),
        ({"x_um": 95.0}, "stage travel"),
        ({"interval_s": 0.02, "exposure_s": 0.01, "duration_s": 3600.0}, "frames"),
    ],
)
def test_bad_parameters_are_refused_before_anything_happens(tmp_path, params, match):
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        before = tuple(setup.stage.position_um)
        with pytest.raises(ParameterError, match=match):
            run_procedure(BleachingVideo(**{**FIELD, **params}), setup)
        assert not setup.led.on
        assert tuple(setup.stage.position_um) == before  # nothing moved
    assert not list(tmp_path.rglob("*.h5"))


def test_led_limit_of_the_setup_is_enforced(tmp_path):
    data = yaml.safe_load(default_setup_path().read_text())
    data["instruments"]["led"]["limits"] = {"max_fraction": 0.5}
    path = tmp_path / "led_half.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with hbtscope.open_setup(path, data_dir=tmp_path) as setup:
        with pytest.raises(ParameterError, match="max_fraction"):
            run_procedure(BleachingVideo(**FIELD, led_power_fraction=0.8), setup)
    assert not list(tmp_path.rglob("*.h5"))


def test_stop_leaves_the_led_off_and_a_readable_file(tmp_path):
    stop = threading.Event()

    def on_event(topic, record):
        if topic == "results" and record["frame"] >= 3:
            stop.set()

    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        proc = BleachingVideo(**FIELD, duration_s=600.0, interval_s=20.0)
        outcome = run_procedure(proc, setup, stop_event=stop, on_event=on_event)
        assert not setup.led.on
        assert not setup.world.led.on
    assert outcome.status == "aborted"
    assert run_status(outcome.path) == "aborted"
    with h5py.File(outcome.path, "r") as f:
        assert f["data/video/frames"].shape[0] == 4
        assert f["data/video"].attrs["n_frames"] == 4
        assert f["analysis/bleaching_video"].attrs["n_frames"] == 4


def test_lab_drivers_on_their_twins_agree_with_sim_yaml(tmp_path):
    """The same field, 10 min, on sim.yaml and on lab-sim.yaml (DCAM camera and CoolLED on
    their twins, same world): the same emitters survive, within the two runs' errors."""
    summaries = []
    for path in (default_setup_path(), LAB_SIM):
        with hbtscope.open_setup(path, data_dir=tmp_path / path.stem) as setup:
            outcome = _video(setup, duration_s=600.0, interval_s=60.0, report_after_s=600.0)
        summaries.append(outcome.summary)
    sim, lab = summaries
    assert abs(sim["n_emitters"] - lab["n_emitters"]) <= 2
    err = np.hypot(sim["fraction_at_report_err"], lab["fraction_at_report_err"])
    assert abs(sim["fraction_at_report"] - lab["fraction_at_report"]) <= err, summaries


def test_command_line_runs_it_and_prints_json(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "hbtscope.cli",
        "run",
        "bleaching_video",
        "--set",
        "x_um=60",
        "--set",
        "y_um=40",
        "--set",
        "duration_s=60",
        "--set",
        "interval_s=20",
        "--set",
        "sample_label=1:1",
        "--out",
        str(tmp_path),
        "--json",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "finished"
    summary = out.get("summary", out)
    text = json.dumps(summary)
    assert "fraction_at_report" in text and "truth_fraction_at_report" in text


# ------------------------------------------------------------------ killed, terminated


def _start_cli(tmp_path, clock: str, *sets: str):
    return start_cli_run(tmp_path, "bleaching_video", clock, "x_um=60", "y_um=40", *sets)


_wait_for_rows = wait_for_rows


def test_sigkill_mid_video_leaves_the_frames_so_far(tmp_path):
    proc, out = _start_cli(tmp_path, "fast", "duration_s=20000", "interval_s=2")
    try:
        seen = _wait_for_rows(proc, out, "data/video/frames", 5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    path = next(out.rglob("*.h5"))
    assert run_status(path) == "interrupted"
    with h5py.File(path, "r") as f:  # the plain way
        assert f.attrs["status"] == "running"
        assert f["data/video/frames"].shape[0] >= seen
        assert f["data/video/time_s"].shape[0] >= seen - 1
    with open_run(path) as f:  # and the analysis reads what is there
        out_ = analyse(f)
    assert out_.values["n_frames"] >= seen - 1 and out_.values["n_emitters"] > 5


def test_sigterm_mid_video_aborts_with_the_led_off(tmp_path):
    proc, out = _start_cli(
        tmp_path, "realtime", "duration_s=600", "interval_s=0.5", "exposure_s=0.05"
    )
    try:
        seen = _wait_for_rows(proc, out, "data/video/frames", 2)
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
        assert f["data/video/frames"].shape[0] >= seen
        assert f["analysis/bleaching_video"].attrs["n_frames"] >= seen
        assert f["setup/snapshot"]["led"].attrs["on"]  # it was on while the video ran
