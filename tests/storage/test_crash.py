"""A writer SIGKILLed while recording leaves a file that opens and holds what was flushed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hbtscope.storage import (
    mark_interrupted,
    open_run,
    read_parameters,
    run_status,
    writer_alive,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

BLOCK = 100_003  # not a divisor of the 1 Mi chunk: exercises partial chunks at every flush

# Appends a known arithmetic sequence of tags (timestamp = 7 i + 3, channel = i % 5), flushes
# after every third block and prints how many tags the completed flush covered.
# mode "idle": once past 3 chunks, append more tags without flushing, print "idle" and block:
#              the kill arrives while nothing is being written.
# mode "busy": keep appending and flushing: the kill arrives at an arbitrary point, possibly
#              during an append or a flush.
WRITER = r"""
import sys
import numpy as np
from hbtscope.storage import RunWriter

path, mode, block = sys.argv[1], sys.argv[2], int(sys.argv[3])

def tags(a, b):
    i = np.arange(a, b, dtype=np.int64)
    return i * 7 + 3, (i % 5).astype(np.int32)

with RunWriter(path, "crash_test", {"block": block, "mode": mode}, flush_interval_s=1e9) as w:
    w.write_array("before", np.arange(10.0), units="V")
    n, i = 0, 0
    while True:
        w.append_tags(*tags(n, n + block))
        n += block
        i += 1
        if i % 3:
            continue
        w.flush()
        print(n, flush=True)
        if mode == "idle" and n > 3 * 2**20:
            w.append_tags(*tags(n, n + 12 * block))  # crosses a chunk boundary, never flushed
            w.write_array("unflushed", np.arange(5.0))
            print("idle", flush=True)
            sys.stdin.readline()
"""


def expected(n):
    i = np.arange(n, dtype=np.int64)
    return i * 7 + 3, (i % 5).astype(np.int32)


def _start(path, mode):
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), mode, str(BLOCK)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_flushed(proc, min_tags):
    flushed = 0
    while True:
        line = proc.stdout.readline()
        if not line:
            proc.kill()
            raise AssertionError(f"writer died: {proc.stderr.read()}")
        if line.strip() == "idle":
            return flushed, True
        flushed = int(line)
        if flushed >= min_tags and min_tags >= 0:
            return flushed, False


def _kill(proc):
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()
    proc.stderr.close()
    proc.stdin.close()


def _locking_enabled():
    return os.environ.get("HDF5_USE_FILE_LOCKING", "TRUE").upper() not in ("FALSE", "0")


def test_kill_while_idle_plain_h5py_reads_everything_flushed(tmp_path):
    path = tmp_path / "run.h5"
    proc = _start(path, "idle")
    try:
        flushed, idle = _read_flushed(proc, -1)
        assert idle and flushed > 3 * 2**20
        # while the writer lives, the file reports running and is locked against plain readers
        assert run_status(path) == "running"
        assert writer_alive(path)
        if _locking_enabled() and sys.platform != "win32":
            with pytest.raises(OSError):
                h5py.File(path, "r")
        with open_run(path) as f:  # ... but open_run reads it
            assert f["tttr/timestamps"].shape[0] >= flushed
    finally:
        _kill(proc)

    # the plain way, no flags, no h5clear: the file opens after the writer was killed
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "running"
        assert f.attrs["end_time"] == ""
        ts, ch = f["tttr/timestamps"][:], f["tttr/channels"][:]
        assert ts.dtype == np.int64 and ch.dtype == np.int32
        assert len(ts) == len(ch) >= flushed
        exp_ts, exp_ch = expected(len(ts))
        np.testing.assert_array_equal(ts, exp_ts)
        np.testing.assert_array_equal(ch, exp_ch)
        np.testing.assert_array_equal(f["data/before"][:], np.arange(10.0))
        assert f["data/before"].attrs["units"] == "V"
        params, _ = read_parameters(f)
        assert params == {"block": BLOCK, "mode": "idle"}

    with open_run(path) as f:
        assert f["tttr/timestamps"].shape[0] == len(ts)
        np.testing.assert_array_equal(f["tttr/timestamps"][:], ts)
    assert not writer_alive(path)
    assert run_status(path) == "interrupted"
    # reading did not change anything
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "running"
    # ... mark_interrupted does, once
    assert mark_interrupted(path)
    assert not mark_interrupted(path)
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "interrupted"
        np.testing.assert_array_equal(f["tttr/timestamps"][:], ts)
    assert run_status(path) == "interrupted"


@pytest.mark.parametrize("min_tags", [2**20 + 1, 5 * 2**20])
def test_kill_while_busy_keeps_every_completed_flush(tmp_path, min_tags):
    path = tmp_path / "run.h5"
    proc = _start(path, "busy")
    try:
        flushed, _ = _read_flushed(proc, min_tags)
    finally:
        _kill(proc)  # the writer is somewhere in its append/flush loop

    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "running"
        ts = f["tttr/timestamps"]
        assert ts.shape[0] >= flushed
        exp_ts, exp_ch = expected(flushed)
        np.testing.assert_array_equal(ts[:flushed], exp_ts)
        np.testing.assert_array_equal(f["tttr/channels"][:flushed], exp_ch)

    with open_run(path) as f:
        ts, ch = f["tttr/timestamps"][:], f["tttr/channels"][:]
    assert len(ts) == len(ch) >= flushed
    exp_ts, exp_ch = expected(len(ts))
    np.testing.assert_array_equal(ts[:flushed], exp_ts[:flushed])
    np.testing.assert_array_equal(ch[:flushed], exp_ch[:flushed])
    # Tags past the last completed flush come from a flush the kill interrupted: each is either
    # as written or (its chunk not yet indexed) the fill value 0 -- never anything else.
    tail_ts, tail_ch = ts[flushed:], ch[flushed:]
    assert np.all((tail_ts == exp_ts[flushed:]) | (tail_ts == 0))
    assert np.all((tail_ch == exp_ch[flushed:]) | (tail_ch == 0))
    assert run_status(path) == "interrupted"
