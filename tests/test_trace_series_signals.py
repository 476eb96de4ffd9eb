"""TTTRTrace and SpectrumSeries killed or terminated from outside (real-time clock).

SIGKILL during a TTTR trace: plain h5py opens the file, it holds the flushed tags, and the next
open says ``interrupted``. SIGTERM during a spectrum series: the run ends ``aborted`` with the
spectra taken so far, the CLI reports the safe state.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import h5py
import numpy as np

from hbtscope.setup import default_setup_path
from hbtscope.storage.reading import written_length
from hbtscope.storage.runfile import run_status
from tests.conftest import wait_for_run


def _realtime_setup(tmp_path):
    path = tmp_path / "realtime.yaml"
    text = default_setup_path().read_text()
    path.write_text(text.replace("clock: {mode: fast}", "clock: {mode: realtime}"))
    return path


def _wait_for(out, proc, read, enough, timeout=90):
    """Poll the run file (while the writer flushes) until ``read(f) >= enough``."""
    return wait_for_run(proc, out, read, enough, timeout)


def test_sigkill_during_a_tttr_trace_keeps_flushed_tags(tmp_path):
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "hbtscope.cli", "run", "tttr_trace"]
    cmd += ["--setup", str(_realtime_setup(tmp_path)), "--out", str(out)]
    cmd += ["--set", "x_um=10", "--set", "y_um=10", "--set", "duration_s=120"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen = _wait_for(out, proc, lambda f: f["tttr/timestamps"].shape[0], 20_000)
        assert seen >= 20_000, "the run never flushed tags"
    finally:
        proc.kill()
        proc.wait()
    path = next(out.rglob("*.h5"))
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "running"
        ts, ch = f["tttr/timestamps"][:], f["tttr/channels"][:]
        assert ts.size >= seen and ch.size == ts.size
        n = written_length(ts)  # a kill inside a flush may leave a tail of 0 (not indexed yet)
        assert n >= seen and np.all(ts[n:] == 0)
        assert np.all(np.diff(ts[:n]) >= 0)
        assert {1, 2, 3} <= set(np.unique(ch).tolist())  # divided sync and both SPADs
    assert run_status(path) == "interrupted"


def test_sigterm_during_a_spectrum_series_aborts_with_the_spectra_so_far(tmp_path):
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "hbtscope.cli", "run", "spectrum_series"]
    cmd += ["--setup", str(_realtime_setup(tmp_path)), "--out", str(out)]
    cmd += ["--set", "x_um=10", "--set", "y_um=10", "--set", "n_spectra=100"]
    cmd += ["--set", "interval_s=2", "--set", "integration_s=0.5"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        seen = _wait_for(out, proc, lambda f: int(f["data/spectrum_series"].attrs["n_acquired"]), 2)
        assert seen >= 2
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.decode()
    assert "SIGTERM received; instruments left in safe state" in err.decode()
    path = next(out.rglob("*.h5"))
    assert run_status(path) == "aborted"
    with h5py.File(path, "r") as f:
        n = int(f["data/spectrum_series"].attrs["n_acquired"])
        assert seen <= n < 100
        assert len(f["data/spectrum_series/spectra"]) == n
