"""The g2 procedure's run file, stopping, killing, and the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

import hbtscope
from hbtscope.cli import main
from hbtscope.procedures.g2 import G2Measurement
from hbtscope.procedures.runner import run_procedure
from hbtscope.setup import default_setup_path
from hbtscope.storage import run_status
from hbtscope.storage.reading import written_length
from tests.conftest import wait_for_rows


def test_run_file_is_self_describing(tmp_path, ideal_stage_setup_path):
    with hbtscope.open_setup(ideal_stage_setup_path, data_dir=tmp_path) as setup:
        outcome = run_procedure(G2Measurement(x_um=10.0, y_um=10.0, duration_s=5.0), setup)
        assert not setup.laser.emission_on  # safe state after the run
        # the simulator's truth for the same focus and laser setting, to compare with the file
        setup.laser.power_W = G2Measurement().laser_power_W
        setup.laser.enable()
        truth_now = setup.truth()
        setup.laser.disable()
    assert outcome.status == "finished"
    assert outcome.figure is not None and outcome.figure.exists()
    assert outcome.figure.read_bytes()[:4] == b"\x89PNG"
    with h5py.File(outcome.path, "r") as f:
        a = f.attrs
        assert a["procedure"] == "g2" and a["status"] == "finished"
        assert a["format_version"] and a["hbtscope_version"] and a["uuid"]
        assert a["start_time"] <= a["end_time"]
        assert f["parameters"].attrs["duration_s"] == 5.0
        assert json.loads(f["parameters"].attrs["units"])["laser_power_W"] == "W"
        assert "max_power_W: 2.0e-6" in f["setup/setup_file"][()].decode()
        assert f["setup/snapshot/laser"].attrs["rep_rate_Hz"] == 5e6
        ts = f["tttr/timestamps"][:]
        ch = f["tttr/channels"][:]
        assert ts.dtype == np.int64 and ts.size > 100_000
        assert np.all(np.diff(ts) >= 0) and set(np.unique(ch)) == {2, 3}
        counts = f["data/g2/coincidences"][:]
        lag = f["data/g2/lag_ps"][:]
        assert counts.sum() > 0 and lag.size == counts.size
        g2 = f["analysis/g2"].attrs
        assert 0 < g2["g2_0_err"] < 0.05
        assert f["truth"].attrs["g2_0"] == pytest.approx(truth_now["g2_0"], rel=1e-9)
        assert 0 < truth_now["g2_0"] < 0.2  # the demo emitter, at 24 nW set point
    # the stored tags give the stored histogram: the file is enough to redo the analysis
    from hbtscope.analysis import correlate

    _, again = correlate(ts[ch == 2], ts[ch == 3], 1000, 12_000_000)
    np.testing.assert_array_equal(again, counts)


def test_stop_midway_leaves_an_aborted_readable_file(tmp_path):
    stop = threading.Event()

    def on_event(topic, record):
        if topic == "progress" and record > 30:
            stop.set()

    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        proc = G2Measurement(x_um=10.0, y_um=10.0, duration_s=20.0)
        outcome = run_procedure(proc, setup, stop_event=stop, on_event=on_event)
        assert not setup.laser.emission_on
    assert outcome.status == "aborted"
    with h5py.File(outcome.path, "r") as f:
        assert f.attrs["status"] == "aborted"
        acquired = f["analysis/g2"].attrs["acquired_s"]
        assert 6.0 <= acquired < 20.0
        assert f["tttr/timestamps"].size > 0
    assert run_status(outcome.path) == "aborted"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"laser_power_W": 5e-6}, r"laser_power_W = 5e-06 exceeds the setup's max_power_W = 2e-06"),
        ({"laser_power_W": 5e-3, "x_um": 20.0, "y_um": 10.0}, r"max_power_W"),
        ({"duration_s": float("nan")}, r"duration_s = nan is not a finite number"),
        ({"x_um": 500.0, "y_um": 10.0}, r"x_um = 500.0 is outside the stage travel"),
        ({"bin_width_ps": 1, "max_lag_ps": 1_000_000_000}, r"14.9 GiB"),
    ],
)
def test_a_bad_parameter_is_refused_before_anything_moves_or_fires(tmp_path, params, match):
    """Validate, then act: no stage move, no laser write, no run file."""
    from hbtscope.procedures.errors import ParameterError

    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        focus_before = setup.world.focus_um.copy()
        power_before = setup.laser.power_W
        with pytest.raises(ParameterError, match=match):
            run_procedure(G2Measurement(**{"duration_s": 1.0, **params}), setup)
        assert not setup.laser.emission_on and setup.laser.power_W == power_before
        np.testing.assert_array_equal(setup.world.focus_um, focus_before)
    assert not list(tmp_path.rglob("*.h5"))


def test_failure_during_the_run_is_recorded(tmp_path, monkeypatch):
    """A failure after the start (here the tagger's stream) leaves a run file saying so."""
    with hbtscope.open_setup(data_dir=tmp_path) as setup:

        def broken(*args, **kwargs):
            raise RuntimeError("tagger unplugged")

        monkeypatch.setattr(setup.tagger.api, "TimeTagStream", broken)
        with pytest.raises(RuntimeError, match="unplugged") as info:
            run_procedure(G2Measurement(x_um=10.0, y_um=10.0, duration_s=1.0), setup)
        assert not setup.laser.emission_on
    outcome = info.value.run_outcome
    assert outcome.status == "failed"
    with h5py.File(outcome.path, "r") as f:
        assert f.attrs["status"] == "failed"
        assert "tagger unplugged" in f.attrs["error"]
        assert f["setup/snapshot/laser"].attrs["emission_on"]  # it had started


def test_sigkill_during_recording_keeps_flushed_tags(tmp_path):
    """A real-time run killed with SIGKILL: plain h5py opens the file; it holds the tags."""
    setup_file = tmp_path / "realtime.yaml"
    setup_file.write_text(
        default_setup_path().read_text().replace("clock: {mode: fast}", "clock: {mode: realtime}")
    )
    out = tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "hbtscope.cli",
        "run",
        "g2",
        "--setup",
        str(setup_file),
        "--out",
        str(out),
        "--set",
        "x_um=10",
        "--set",
        "y_um=10",
        "--set",
        "duration_s=60",
        "--set",
        "laser_power_W=50e-9",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen = wait_for_rows(proc, out, "tttr/timestamps", 200_000, timeout_s=120)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    path = next(out.rglob("*.h5"))
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "running"
        ts = f["tttr/timestamps"][:]
        # a kill inside a flush may leave a tail the chunk index does not cover yet: it reads
        # as 0 (tests/storage/test_crash.py) and read_tags leaves it out
        n = written_length(ts)
        assert n >= seen and np.all(ts[n:] == 0)
        assert np.all(np.diff(ts[:n]) >= 0)
        assert f["tttr/channels"].shape[0] == ts.size
    assert run_status(path) == "interrupted"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_sighup_aborts_like_ctrl_c(tmp_path, sig):
    """What a service manager or a closed terminal sends: the run ends 'aborted', the CLI says
    the instruments are in their safe state, and the file holds the data so far."""
    setup_file = tmp_path / "realtime.yaml"
    setup_file.write_text(
        default_setup_path().read_text().replace("clock: {mode: fast}", "clock: {mode: realtime}")
    )
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "hbtscope.cli", "run", "g2", "--setup", str(setup_file)]
    cmd += ["--out", str(out), "--set", "x_um=10", "--set", "y_um=10", "--set", "duration_s=600"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen = wait_for_rows(proc, out, "tttr/timestamps", 1, timeout_s=120)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert f"{signal.Signals(sig).name} received; instruments left in safe state" in err.decode()
    path = next(out.rglob("*.h5"))
    assert run_status(path) == "aborted"
    with h5py.File(path, "r") as f:
        assert f["tttr/timestamps"].shape[0] >= seen
        assert 0 < f["analysis/g2"].attrs["acquired_s"] < 600


def test_cli_run_json(tmp_path, capsys):
    code = main(
        [
            "run",
            "g2",
            "--set",
            "x_um=20",
            "--set",
            "y_um=10",
            "--set",
            "duration_s=10",
            "--out",
            str(tmp_path),
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("file", "status", "g2_0", "g2_0_err", "truth_g2_0"):
        assert key in out
    assert out["status"] == "finished"
    assert Path(out["file"]).exists() and Path(out["figure"]).exists()
    assert abs(out["g2_0"] - out["truth_g2_0_with_background"]) < 3 * out["g2_0_err"] + 0.01


@pytest.mark.parametrize(
    ("position", "duration_s"), [((0, 0), 0.2), ((0, 0), 5.0), ((10, 10), 0.2)]
)
def test_cli_never_reports_zero_error(tmp_path, capsys, position, duration_s):
    """No emitter (default position) or a 0.2 s acquisition on the demo emitter (a centre
    peak of 0-2 coincidences): the run used to report g2(0) = 0 +- 0, which passes every
    purity cut. Now the error is positive (infinite when nothing is measured) and the JSON
    carries the 68 % interval and the 2-sigma upper limit, with a positive upper end."""
    x, y = position
    args = ["--set", f"x_um={x}", "--set", f"y_um={y}", "--set", f"duration_s={duration_s}"]
    assert main(["run", "g2", *args, "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    err, (lo, hi), upper = (
        float(out["g2_0_err"]),
        [float(v) for v in out["g2_0_ci"]],
        float(out["g2_0_upper"]),
    )
    assert err > 0 and hi > 0 and upper >= hi and lo >= 0
    if out["truth_g2_0_with_background"] is not None and out["reference_counts"] > 100:
        truth = out["truth_g2_0_with_background"]
        assert truth <= upper  # one-sided 97.7 %: fails for 1 in 44 seeds at most


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "duration_s=-1"], r"duration_s=-1: .*minimum.*allowed \[0.01, 86400.0\] s"),
        (["--set", "colour=blue"], r"no parameter 'colour'; parameters: .*duration_s"),
        (["--set", "background=magic"], r"allowed: linear, sqrt, none"),
        (["--set", "duration_s"], r"expected name=value"),
    ],
)
def test_cli_rejects_bad_parameters(tmp_path, capsys, args, message):
    import re

    code = main(["run", "g2", "--out", str(tmp_path), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert not list(tmp_path.rglob("*.h5"))  # nothing ran


def test_cli_bad_setup_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        default_setup_path().read_text().replace("max_power_W: 2.0e-6", "max_power_W: 1")
    )
    assert main(["run", "g2", "--setup", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "max_power_W: 1" in t)
    assert f"{bad}, line {line} " in err and "max_power_W" in err and "[1e-12, 0.01] W" in err


def test_demo_json(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "finished"
    assert abs(out["spot_x_um"] - 10.0) < 0.1 and abs(out["spot_y_um"] - 10.0) < 0.1
    assert out["g2_0"] < 0.2 and abs(out["g2_0"] - out["truth_g2_0_with_background"]) < 0.03
    # on the default, imperfect microscope: the 2.7 ns delay between the SPADs is found from
    # the data (to a few of its own sigma plus half a 1 ns bin), the crosstalk peaks at
    # +-8 ns are excluded, and g2(0) agrees with the truth within 4 sigma
    assert out["zero_delay_source"] == "data"
    assert abs(out["zero_delay_ps"] - 2700.0) < 500.0
    centres = sorted(0.5 * (lo + hi) for lo, hi in out["crosstalk_windows_ps"])
    assert len(centres) == 2 and all(abs(abs(c) - 8000.0) < 1500.0 for c in centres)
    assert abs(out["g2_0"] - out["truth_g2_0_with_background"]) < 4 * out["g2_0_err"]


def test_zero_delay_and_crosstalk_from_the_setup_calibration(tmp_path, ideal_stage_setup_path):
    """A lab that measured its HBT arm once puts the zero delay and the crosstalk windows in
    the setup file: the g2 run uses them (and says so) instead of searching the data; a
    zero_delay_ps parameter overrides both."""
    text = ideal_stage_setup_path.read_text().replace(
        "  spot_area_um2: 0.098",
        "  spot_area_um2: 0.098\n  hbt_zero_delay_ps: 2700\n"
        "  crosstalk_windows_ps: [[-10000, -6000], [6000, 10000]]",
    )
    path = tmp_path / "calibrated.yaml"
    path.write_text(text)
    with hbtscope.open_setup(path, data_dir=tmp_path) as setup:
        cal = run_procedure(G2Measurement(x_um=10.0, y_um=10.0, duration_s=2.0), setup)
        par = run_procedure(
            G2Measurement(x_um=10.0, y_um=10.0, duration_s=2.0, zero_delay_ps=2500.0), setup
        )
    with h5py.File(cal.path, "r") as f:
        a = f["analysis/g2"].attrs
        assert a["zero_delay_source"] == "calibration" and a["zero_delay_ps"] == 2700.0
        assert a["crosstalk_source"] == "calibration"
        np.testing.assert_array_equal(
            f["analysis/g2/crosstalk_windows_ps"][()], [[-10000, -6000], [6000, 10000]]
        )
    with h5py.File(par.path, "r") as f:
        assert f["analysis/g2"].attrs["zero_delay_source"] == "parameter"
        assert f["analysis/g2"].attrs["zero_delay_ps"] == 2500.0


def test_opening_a_setup_switches_a_laser_left_on_off(monkeypatch, tmp_path):
    """A crashed or killed run may leave the laser emitting; the next start makes it safe
    before anything else (here: a laser that comes up emitting at 1 µW)."""
    from hbtscope.drivers_sim.devices.laser import SimPulsedLaser

    built = SimPulsedLaser.__init__

    def comes_up_on(self, *args, **kwargs):
        built(self, *args, **kwargs)
        self.power_W = 1e-6
        self.enable()

    monkeypatch.setattr(SimPulsedLaser, "__init__", comes_up_on)
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        assert not setup.laser.emission_on
        assert not setup.world.laser.on


def test_ctrl_c_while_the_run_file_is_created_aborts_and_keeps_the_interruption(
    tmp_path, monkeypatch
):
    """Ctrl+C or SIGTERM landing while the run file is being laid out: the run ends
    ``aborted`` (the file says so), the interruption reaches the caller (not a
    FileExistsError from a second attempt at the file), the laser is off."""
    from hbtscope.storage.runfile import RunWriter

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(RunWriter, "_init_layout", interrupted)
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        with pytest.raises(KeyboardInterrupt):
            run_procedure(G2Measurement(duration_s=0.1), setup, tmp_path)
        assert not setup.laser.emission_on
    (path,) = tmp_path.rglob("*.h5")
    assert run_status(path) == "aborted"


def test_a_signal_inside_a_compiled_kernel_call_aborts_the_run(tmp_path, monkeypatch):
    """SIGTERM landing while a numba dispatcher returns surfaces as ``SystemError(... returned
    a result with an exception set)`` chained to the KeyboardInterrupt (seen on CI in a
    confocal scan): the run is ``aborted``, not ``failed``, the interruption reaches the
    caller, the laser is off."""
    from hbtscope.procedures import _tag_stream

    def kernel_interrupted(*args, **kwargs):
        try:
            raise KeyboardInterrupt("SIGTERM")
        except KeyboardInterrupt as exc:
            raise SystemError("CPUDispatcher returned a result with an exception set") from exc

    monkeypatch.setattr(_tag_stream, "split_pair", kernel_interrupted)
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        with pytest.raises(KeyboardInterrupt):
            run_procedure(G2Measurement(duration_s=0.5), setup, tmp_path)
        assert not setup.laser.emission_on
    (path,) = tmp_path.rglob("*.h5")
    assert run_status(path) == "aborted"
