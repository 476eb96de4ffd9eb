"""A confocal scan killed (SIGKILL) or terminated (SIGTERM) through the command line, on a
real-time clock: the file stays readable with the lines checkpointed so far."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hbtscope.setup import default_setup_path
from hbtscope.storage import run_status
from tests.conftest import wait_for_run

REPO = Path(__file__).resolve().parents[1]


def _start_scan(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    setup_file = tmp_path / "realtime.yaml"
    setup_file.write_text(
        default_setup_path().read_text().replace("clock: {mode: fast}", "clock: {mode: realtime}")
    )
    out = tmp_path / "runs"
    sets = {
        "centre_x_um": 10,
        "centre_y_um": 10,
        "centre_z_um": 0,
        "width_um": 2,
        "height_um": 2,
        "pixels_x": 30,
        "pixels_y": 30,
        "dwell_s": 0.005,
        "repeats": 3,
        "checkpoint_s": 0.5,
        "readout_s": 0.1,
    }
    cmd = [
        sys.executable,
        "-m",
        "hbtscope.cli",
        "run",
        "confocal_scan",
        "--setup",
        str(setup_file),
        "--out",
        str(out),
    ]
    for key, value in sets.items():
        cmd += ["--set", f"{key}={value}"]
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        MPLBACKEND="Agg",
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    return proc, out


def _lines_in_frame_0(f) -> int:
    """Lines of frame 0 with counts in the run file ``f``."""
    return int(np.count_nonzero(f["data/scan/counts/frame_000"][()].sum(axis=(0, 2))))


def _wait_for_lines(proc, out: Path, n: int) -> int:
    seen = wait_for_run(proc, out, _lines_in_frame_0, n)
    assert seen >= n, "the scan never checkpointed its lines"
    return int(seen)


def test_sigkill_leaves_a_readable_file_with_the_checkpointed_lines(tmp_path):
    proc, out = _start_scan(tmp_path)
    try:
        seen = _wait_for_lines(proc, out, 5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    path = next(out.rglob("*.h5"))
    with h5py.File(path, "r") as f:  # plain h5py, no hbtscope
        assert f.attrs["status"] == "running"
        frame = f["data/scan/counts/frame_000"][()]
        rows = frame.sum(axis=(0, 2))
        assert np.count_nonzero(rows) >= seen
        assert f["data/scan/fast_um"].shape == (30,)
    assert run_status(path) == "interrupted"


@pytest.mark.parametrize("sig", [signal.SIGTERM])
def test_sigterm_aborts_in_the_safe_state(tmp_path, sig):
    proc, out = _start_scan(tmp_path)
    try:
        seen = _wait_for_lines(proc, out, 3)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    path = next(out.rglob("*.h5"))
    assert run_status(path) == "aborted"
    with h5py.File(path, "r") as f:
        assert np.count_nonzero(f["data/scan/counts/frame_000"][()].sum(axis=(0, 2))) >= seen
    # (setup/snapshot_end is taken before shutdown: the state the measurement ended in; the
    # safe state comes after, and the command line says so)
    assert "SIGTERM received; instruments left in safe state" in err.decode()
