"""Recompute the analysis of a run, or re-draw its figure, from its run file alone.

:func:`analyse_run` opens a run file, looks its kind (``procedure`` attribute) up in the
measurement catalogue (:mod:`hbtscope.procedures.registry`) and calls that measurement's
``analyse(run)`` — the same function the run called at its end — so any run, including one
recorded by an older version or imported from another instrument, can be re-evaluated.
:func:`redraw` does the same with the measurement's ``figure(run, path)``. Nothing in the file
is ever ``eval``-ed or unpickled: parameters are plain HDF5 attributes (JSON text at most).

The returned dict holds ``file``, ``procedure``, ``uuid``, ``status``, the analysis' scalar
values (JSON-ready after ``float()``/``int()``), the values the run itself stored under
``analysis/<name>`` as ``stored_<key>`` for ``g2_0`` and its error, and under the key
``"arrays"`` the analysis' arrays (histograms, peak areas, ...).
"""

from __future__ import annotations

import os
import pathlib
from typing import Any

import h5py
import numpy as np

from hbtscope.procedures.registry import all_measurements
from hbtscope.storage import layout as L
from hbtscope.storage.reading import (
    RunFileError,
    UnsupportedRunError,
    open_run_checked,
    text_attr,
)
from hbtscope.storage.runfile import read_values

__all__ = ["RunFileError", "UnsupportedRunError", "analyse_run", "redraw"]


def _measurement(f: h5py.File, path: pathlib.Path):
    procedure = text_attr(f.attrs[L.ATTR_PROCEDURE])
    found = all_measurements()
    if procedure not in found:
        raise UnsupportedRunError(
            f"{path}: no re-analysis for procedure {procedure!r} "
            f"(installed: {', '.join(sorted(found))})"
        )
    return procedure, found[procedure]


def analyse_run(path: str | os.PathLike) -> dict[str, Any]:
    """Recompute the analysis of the run file ``path`` from its stored raw data.

    Raises
    ------
    RunFileError
        Missing file, not an HDF5 file, not a run file, or one missing what its analysis needs.
    UnsupportedRunError
        No installed measurement of the run's kind.
    """
    path = pathlib.Path(path)
    with open_run_checked(path) as f:
        procedure, m = _measurement(f, path)
        out: dict[str, Any] = {
            "file": str(path),
            "procedure": procedure,
            "uuid": text_attr(f.attrs.get(L.ATTR_UUID, "")),
            "status": text_attr(f.attrs.get(L.ATTR_STATUS, "")),
        }
        try:
            output = m.analyse(f)
        except KeyError as exc:
            raise RunFileError(
                f"{path}: incomplete {procedure!r} run file (missing {exc})"
            ) from None
        except ValueError as exc:  # e.g. a run killed before its first frame: nothing to fit
            msg = str(exc)
            raise RunFileError(msg if str(path) in msg else f"{path}: {msg}") from None
        arrays: dict[str, np.ndarray] = {}
        for key, value in output.values.items():
            if isinstance(value, np.ndarray) and value.ndim > 0:
                arrays[key] = value
            else:
                out[key] = value
        for key, err in output.errors.items():
            if isinstance(err, np.ndarray) and err.ndim > 0:  # per-element errors: an array
                arrays[f"{key}{L.ERR_SUFFIX}"] = err
            else:
                out[f"{key}{L.ERR_SUFFIX}"] = err
        stored = f.get(f"{L.ANALYSIS}/{output.name}")
        if isinstance(stored, h5py.Group):
            vals = read_values(stored)
            if "g2_0" in vals and np.ndim(vals["g2_0"]) == 0:  # g2_power: one per power
                out["stored_g2_0"] = float(vals["g2_0"])
                out["stored_g2_0_err"] = float(vals.get("g2_0_err", np.nan))
        out["arrays"] = arrays
    return out


def redraw(path: str | os.PathLike, png: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Draw the figure of the run file ``path`` from the file alone (default: the ``.png``
    beside it); None when its measurement has no figure or the run has nothing to draw."""
    path = pathlib.Path(path)
    target = pathlib.Path(png) if png is not None else path.with_suffix(".png")
    with open_run_checked(path) as f:
        _, m = _measurement(f, path)
        if m.figure is None:
            return None
        return m.figure(f, target)


def supported_procedures() -> tuple[str, ...]:
    """Kinds of run this installation can analyse."""
    return tuple(sorted(all_measurements()))
