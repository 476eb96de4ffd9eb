"""Reading run files safely: checked opening, the raw tags, the channel map.

Shared by the exporters and by :mod:`hbtscope.reanalyse`; never eval, never unpickle.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import h5py
import numpy as np

from hbtscope.storage import layout as L
from hbtscope.storage.runfile import open_run, read_attrs, read_values

__all__ = [
    "busiest_channels",
    "channel_map",
    "is_photon_name",
    "read_calibrations",
    "read_truth",
    "spad_channels",
    "text_attr",
    "RunFileError",
    "UnsupportedRunError",
    "open_run_checked",
    "read_tags",
    "written_length",
]


class RunFileError(ValueError):
    """The path is not a readable hbtscope run file (missing, not HDF5, wrong layout)."""


class UnsupportedRunError(RunFileError):
    """A run file whose procedure has no re-analysis (yet)."""


def open_run_checked(path: str | os.PathLike) -> h5py.File:
    """:func:`~hbtscope.storage.open_run` with one-line :class:`RunFileError` for user errors."""
    path = pathlib.Path(path)
    if not path.exists():
        raise RunFileError(f"{path}: no such file")
    if not path.is_file():
        raise RunFileError(f"{path}: not a file")
    if not h5py.is_hdf5(path):
        raise RunFileError(f"{path}: not an HDF5 file, so not an hbtscope run file")
    try:
        f = open_run(path)
    except (OSError, RuntimeError, ValueError) as exc:  # h5py raises all three on bad files
        text = " ".join(str(exc).split())
        raise RunFileError(f"{path}: cannot open the HDF5 file ({text})") from None
    missing = [a for a in (L.ATTR_FORMAT_VERSION, L.ATTR_PROCEDURE) if a not in f.attrs]
    if missing or L.PARAMETERS not in f or L.TTTR not in f:
        f.close()
        raise RunFileError(
            f"{path}: an HDF5 file but not an hbtscope run file (no format_version/procedure "
            "attributes or no parameters/ and tttr/ groups)"
        )
    return f


def text_attr(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def read_calibrations(f: h5py.File) -> dict[str, Any]:
    """The setup's calibrations stored with a run (``setup/calibrations``), {} if none; the
    crosstalk windows as an (n, 2) float array."""
    group = f.get(L.CALIBRATIONS)
    cal = read_values(group) if isinstance(group, h5py.Group) else {}
    if "crosstalk_windows_ps" in cal:
        cal["crosstalk_windows_ps"] = np.asarray(
            cal["crosstalk_windows_ps"], dtype=np.float64
        ).reshape(-1, 2)
    return cal


def read_truth(path: str | os.PathLike) -> dict[str, Any]:
    """The simulator's ground truth stored in a run file (``truth/``), {} if it has none
    (a run on real hardware, an imported file)."""
    with open_run(path) as f:
        group = f.get(L.TRUTH)
        return read_values(group) if isinstance(group, h5py.Group) else {}


#: tags scanned per block when looking for the unwritten tail (bounded extra memory)
_TAIL_SCAN_BLOCK = 1 << 20


def written_length(ts: np.ndarray) -> int:
    """Length of the part of a time-tag array that was written.

    A writer killed (or read) in the middle of a flush can leave the dataset's extent ahead
    of its chunk index: those tags read as the fill value 0. Written tags never fall back to
    0 after a positive time (macro-times do not decrease), so the array ends at the first 0
    that follows a positive tag. The scan runs in blocks: no copy of a large record.
    """
    n = ts.shape[0]
    seen_positive = False
    for start in range(0, n, _TAIL_SCAN_BLOCK):
        block = ts[start : start + _TAIL_SCAN_BLOCK]
        first = 0
        if not seen_positive:  # zeros before the first positive time are data
            positive = np.flatnonzero(block > 0)
            if positive.size == 0:
                continue
            seen_positive, first = True, int(positive[0])
        zeros = np.flatnonzero(block[first:] == 0)
        if zeros.size:
            return start + first + int(zeros[0])
    return n


def read_tags(f: h5py.File) -> tuple[np.ndarray, np.ndarray]:
    """All written time tags (int64 ps) and channels (int32) of an open run file (a tail a
    killed or still-running writer has not filled yet is left out: :func:`written_length`)."""
    ts_ds = f[L.TTTR_TIMESTAMPS]
    ch = f[L.TTTR_CHANNELS]
    n = min(ts_ds.shape[0], ch.shape[0])
    ts = ts_ds[:n].astype(np.int64, copy=False)
    n = written_length(ts)
    return ts[:n], ch[:n].astype(np.int32, copy=False)


def channel_map(f: h5py.File) -> dict[str, int]:
    raw = read_attrs(f[L.TTTR]).get(L.ATTR_CHANNEL_MAP, {}) or {}
    out = {}
    for name, value in raw.items():
        try:
            out[str(name)] = int(value)
        except (TypeError, ValueError):
            continue
    return out


def is_photon_name(name: str) -> bool:
    low = name.lower()
    return "sync" not in low and "marker" not in low


def busiest_channels(ch: np.ndarray, n: int, exclude: set[int] = frozenset()) -> list[int]:
    vals, counts = np.unique(ch, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [int(vals[i]) for i in order if int(vals[i]) not in exclude][:n]


def spad_channels(f: h5py.File, ch: np.ndarray) -> tuple[int, int] | None:
    cal = f.get(f"{L.CALIBRATIONS}/detector_channels")
    if isinstance(cal, h5py.Group):
        vals = read_values(cal)
        if "spad_a" in vals and "spad_b" in vals:
            return int(vals["spad_a"]), int(vals["spad_b"])
    cmap = channel_map(f)
    if "spad_a" in cmap and "spad_b" in cmap:
        return cmap["spad_a"], cmap["spad_b"]
    busiest = busiest_channels(ch, 2)
    return (min(busiest), max(busiest)) if len(busiest) == 2 else None
