"""Arrays appended row by row (a video's frames): grow on disk, readable while written, and a
writer killed mid-video leaves every frame of its last completed flush."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hbtscope import events as ev
from hbtscope.storage import RunWriter, open_run, run_status
from hbtscope.storage.recorder import RunFileRecorder


def _frame(k: int) -> np.ndarray:
    return (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) + k).astype(np.uint16)


def test_rows_grow_and_a_reader_sees_them_after_each_flush(tmp_path):
    path = tmp_path / "video.h5"
    with RunWriter(path, "t", {}, flush_interval_s=1e9) as w:
        w.append_array("video/frames", _frame(0), units="ADU")
        w.append_array("video/time_s", np.float64(0.0))
        w.flush()
        with open_run(path) as r:
            ds = r["data/video/frames"]
            assert ds.shape == (1, 64, 48) and ds.dtype == np.uint16
            assert ds.chunks == (1, 64, 48)  # one frame per chunk: frame k alone
            assert ds.attrs["units"] == "ADU"
            for k in (1, 2):
                w.append_array("video/frames", _frame(k))
                w.append_array("video/time_s", np.float64(k * 20.0))
            w.flush()
            ds.refresh()
            assert ds.shape == (3, 64, 48)
            np.testing.assert_array_equal(ds[2], _frame(2))
        with pytest.raises(ValueError, match="cannot append"):
            w.append_array("video/frames", np.zeros((3, 3), np.uint16))
        with pytest.raises(TypeError):
            w.append_array("video/names", np.array(["a"]))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["data/video/time_s"][()], [0.0, 20.0, 40.0])
        assert f.attrs["status"] == "finished"


def test_recorder_appends_on_array_appended_events(tmp_path):
    path = tmp_path / "rec.h5"
    rec = RunFileRecorder(path)
    rec(ev.RunStarted("t", {}))
    for k in range(4):
        rec(ev.ArrayAppended("video/frames", _frame(k), "ADU"))
    rec(ev.RunEnded("finished"))
    with h5py.File(path, "r") as f:
        assert f["data/video/frames"].shape == (4, 64, 48)
        np.testing.assert_array_equal(f["data/video/frames"][3], _frame(3))


WRITER = r"""
import sys
import numpy as np
from hbtscope.storage import RunWriter
path = sys.argv[1]
with RunWriter(path, "video_crash", {}, flush_interval_s=1e9) as w:
    k = 0
    while True:
        frame = (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) + k).astype(np.uint16)
        w.append_array("video/frames", frame)
        k += 1
        if k % 5 == 0:
            w.flush()
            print(k, flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_video_keeps_the_flushed_frames(tmp_path):
    path = tmp_path / "crash.h5"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        flushed = 0
        while flushed < 50:
            line = proc.stdout.readline()
            assert line, "writer died"
            flushed = int(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
    assert run_status(path) == "interrupted"
    with h5py.File(path, "r") as f:  # the plain way, no h5clear
        frames = f["data/video/frames"]
        assert frames.shape[0] >= flushed
        for k in range(flushed):
            np.testing.assert_array_equal(frames[k], _frame(k))
