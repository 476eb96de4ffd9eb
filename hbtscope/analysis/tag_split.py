"""The photons of two detectors out of a time-tag buffer, in one pass.

A Swabian ``TimeTagStream`` buffer holds time tags of several channels interleaved with
overflow events (``event_types != 0``). An HBT analysis wants the photon times of detector A
and detector B, each in time order: :func:`split_pair` returns them in one pass over the
buffer (numpy needs six: the event mask, two masked copies, two channel masks, two more
copies), without the GIL.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["split_pair"]


@njit(cache=True, nogil=True)
def _split(ts, ch, types, ch_a, ch_b, time_tag):
    n = ts.shape[0]
    a = np.empty(n, np.int64)
    b = np.empty(n, np.int64)
    na = 0
    nb = 0
    for i in range(n):
        if types[i] != time_tag:
            continue
        c = ch[i]
        if c == ch_a:
            a[na] = ts[i]
            na += 1
        elif c == ch_b:
            b[nb] = ts[i]
            nb += 1
    return a[:na].copy(), b[:nb].copy()


def split_pair(
    timestamps_ps: np.ndarray,
    channels: np.ndarray,
    event_types: np.ndarray,
    ch_a: int,
    ch_b: int,
    time_tag: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(times of ``ch_a``, times of ``ch_b``): the tags whose event type is ``time_tag``
    (the Time Tagger API's ``TagType.TimeTag`` = 0), in buffer order, as int64 ps.

    The same as ``ts[(types == time_tag) & (ch == ch_a)]`` and likewise for ``ch_b``.
    """
    ts = np.ascontiguousarray(timestamps_ps, dtype=np.int64)
    ch = np.ascontiguousarray(channels)
    types = np.ascontiguousarray(event_types)
    if not ts.shape == ch.shape == types.shape or ts.ndim != 1:
        raise ValueError(
            "timestamps, channels and event types must be 1-D arrays of one length, got "
            f"{np.shape(timestamps_ps)}, {np.shape(channels)}, {np.shape(event_types)}"
        )
    if ch_a == ch_b:
        raise ValueError(f"the two detectors must be different channels, got {ch_a} twice")
    return _split(ts, ch, types, int(ch_a), int(ch_b), int(time_tag))
