"""split_pair: the photons of two detectors out of a stream buffer, as numpy masks give them."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtscope.analysis.tag_split import split_pair


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**40), st.sampled_from([1, 2, 3, -1]), st.integers(0, 4)),
        max_size=300,
    )
)
def test_split_pair_equals_the_numpy_masks(rows):
    ts = np.array([r[0] for r in rows], np.int64)
    ch = np.array([r[1] for r in rows], np.int32)
    types = np.array([r[2] for r in rows], np.uint8)
    a, b = split_pair(ts, ch, types, 1, -1)
    real = types == 0
    np.testing.assert_array_equal(a, ts[real & (ch == 1)])
    np.testing.assert_array_equal(b, ts[real & (ch == -1)])
    assert a.dtype == b.dtype == np.int64


def test_split_pair_refuses_mismatched_buffers_and_one_channel_twice():
    with pytest.raises(ValueError, match="one length"):
        split_pair(np.zeros(3, np.int64), np.zeros(2, np.int32), np.zeros(3, np.uint8), 1, 2)
    with pytest.raises(ValueError, match="different channels"):
        split_pair(np.zeros(3, np.int64), np.zeros(3, np.int32), np.zeros(3, np.uint8), 1, 1)
