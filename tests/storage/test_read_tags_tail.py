"""Reading the tags of a run file whose writer was killed (or is still writing) in the middle
of a flush: the dataset's extent may be ahead of its chunk index, and those tags read as the
fill value 0 (documented in tests/storage/test_crash.py). They must not reach an analysis:
zeros after positive times would be pairs at huge negative delays and unsorted input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtscope.storage import reading
from hbtscope.storage.reading import read_tags, written_length
from hbtscope.storage.runfile import RunWriter


def _file_with_unwritten_tail(path, ts, ch, n_unwritten):
    with RunWriter(path, "test_proc", {}) as w:
        w.append_tags(ts, ch)
    with h5py.File(path, "r+") as f:  # what a kill between resize and chunk index leaves
        for name in ("tttr/timestamps", "tttr/channels"):
            f[name].resize((len(ts) + n_unwritten,))
    return path


def test_unwritten_tail_is_left_out(tmp_path):
    ts = np.arange(1, 1001, dtype=np.int64) * 1000
    ch = (np.arange(1000) % 2 + 1).astype(np.int32)
    path = _file_with_unwritten_tail(tmp_path / "killed.h5", ts, ch, 300)
    with h5py.File(path, "r") as f:
        assert f["tttr/timestamps"].shape[0] == 1300 and f["tttr/timestamps"][-1] == 0
        got_ts, got_ch = read_tags(f)
    np.testing.assert_array_equal(got_ts, ts)
    np.testing.assert_array_equal(got_ch, ch)


def test_a_record_starting_at_zero_is_kept_whole(tmp_path):
    ts = np.array([0, 0, 5, 9, 9, 40], dtype=np.int64)  # equal tags and a tag at t = 0 are data
    ch = np.array([1, 2, 1, 2, 1, 2], dtype=np.int32)
    with RunWriter(tmp_path / "ok.h5", "test_proc", {}) as w:
        w.append_tags(ts, ch)
    with h5py.File(tmp_path / "ok.h5", "r") as f:
        got_ts, got_ch = read_tags(f)
    np.testing.assert_array_equal(got_ts, ts)
    np.testing.assert_array_equal(got_ch, ch)


@settings(max_examples=200, deadline=None)
@given(
    leading_zeros=st.integers(0, 5),
    gaps=st.lists(st.integers(0, 3), min_size=0, max_size=40),
    tail=st.integers(0, 12),
    block=st.integers(1, 8),
)
def test_written_length_is_the_sorted_prefix_before_the_fill(leading_zeros, gaps, tail, block):
    """Any block size of the scan gives the same answer: the written part (leading zeros,
    then non-decreasing positive times) ends where the fill of zeros starts."""
    written = np.concatenate(
        [np.zeros(leading_zeros, np.int64), 1 + np.cumsum(np.asarray(gaps, dtype=np.int64))]
    )
    ts = np.concatenate([written, np.zeros(tail, np.int64)])
    expected = len(written) if len(gaps) else len(ts)  # all zeros: nothing to tell apart
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reading, "_TAIL_SCAN_BLOCK", block)
        assert written_length(ts) == expected
