"""Export the time tags of a run file to Photon-HDF5 (http://photon-hdf5.org).

:func:`export_photon_hdf5` writes the file with ``phconvert.hdf5.save_photon_hdf5`` (which
validates it against the Photon-HDF5 specification shipped with phconvert) with
``measurement_type = "generic"``.

Mapping (run file -> Photon-HDF5)
---------------------------------
``/photon_data/timestamps``
    ``tttr/timestamps`` unchanged (int64), ``timestamps_specs/timestamps_unit = 1e-12`` (ps).
``/photon_data/detectors``
    ``tttr/channels`` unchanged (int32): the hbtscope channel numbers are the detector ids.
``/photon_data/nanotimes`` (runs imported from PTU T3 files)
    ``data/ptu/dtime`` (uint16 TCSPC bins), ``nanotimes_specs/tcspc_unit`` (s),
    ``tcspc_num_bins`` and ``tcspc_range``; ``/setup/lifetime`` is then true.
``/photon_data/measurement_specs``
    ``measurement_type = "generic"``; ``detectors_specs/split_chN`` lists the photon detector
    ids, one per beam-split channel (an HBT arm: a 50:50 splitter to two SPADs, so
    ``/setup/num_split_ch`` = number of photon detectors); channels named ``sync`` or
    ``*marker*`` in ``tttr/@channel_map`` are listed in ``non_photon_id1``. With pulsed
    excitation ``laser_repetition_rate`` (Hz).
``/setup``
    One spot, one spectral and one polarisation channel; ``excitation_cw`` is ``False`` when the
    repetition rate is known (a g2 run's ``rep_rate_Hz``, a T3 import's sync rate) and ``True``
    otherwise (Photon-HDF5 requires a value; for a T2 PTU import the excitation is unknown, and
    the file's ``description`` says so). ``/setup/detectors`` holds id, label (from the
    channel map) and counts per detector.
``/identity``, ``/provenance``
    ``creator`` hbtscope, the run file as provenance (file name, path, the run's start time
    as creation time, ``software = "hbtscope"`` and the writing version); phconvert adds its
    own software name/version, format name/version and the creation time.
``/description``
    Procedure, uuid, status, channel map and the unit conventions in words.
``/acquisition_duration``
    ``analysis/g2/acquired_s`` for g2 runs, the PTU acquisition time for imports, otherwise
    the span of the time tags.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
from typing import Any

import numpy as np

from hbtscope.storage import layout as L
from hbtscope.storage.reading import RunFileError, open_run_checked, read_tags
from hbtscope.storage.runfile import read_attrs, read_parameters, read_values

__all__ = ["export_photon_hdf5", "default_export_path"]

_NON_PHOTON_WORDS = ("sync", "marker")


def default_export_path(run_path: str | os.PathLike) -> pathlib.Path:
    """``<run stem>.photon.hdf5`` beside the run file."""
    p = pathlib.Path(run_path)
    return p.with_name(p.stem + ".photon.hdf5")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _ascii(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii")


def export_photon_hdf5(
    run_path: str | os.PathLike,
    out_path: str | os.PathLike | None = None,
    *,
    overwrite: bool = False,
    author: str = "",
    author_affiliation: str = "",
) -> pathlib.Path:
    """Write the time tags of run file ``run_path`` as a validated Photon-HDF5 file.

    Parameters
    ----------
    run_path
        An hbtscope run file with time tags.
    out_path
        Output file; default ``<run stem>.photon.hdf5`` beside the run file.
    overwrite
        Replace an existing output file (otherwise ``FileExistsError``).
    author, author_affiliation
        Optional ``/identity`` fields.

    Returns
    -------
    pathlib.Path
        The Photon-HDF5 file, validated by phconvert after writing.

    Raises
    ------
    RunFileError
        Not a run file, or a run without time tags.
    FileExistsError
        ``out_path`` exists and ``overwrite`` is false.
    """
    run_path = pathlib.Path(run_path)
    out = pathlib.Path(out_path) if out_path is not None else default_export_path(run_path)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists (overwrite=True, or --force, replaces it)")
    if out.resolve() == run_path.resolve():
        raise RunFileError(f"{out}: the output would overwrite the run file itself")
    data = _collect(run_path)
    data.update(author=author, author_affiliation=author_affiliation)
    _save(data, out)
    return out


def _collect(run_path: pathlib.Path) -> dict[str, Any]:
    with open_run_checked(run_path) as f:
        ts, ch = read_tags(f)
        if ts.size == 0:
            raise RunFileError(f"{run_path}: the run holds no time tags to export")
        procedure = _text(f.attrs[L.ATTR_PROCEDURE])
        attrs = {k: _text(f.attrs.get(k, "")) for k in L.ROOT_ATTRS}
        params, _ = read_parameters(f)
        tttr_attrs = read_attrs(f[L.TTTR])
        cmap = tttr_attrs.get(L.ATTR_CHANNEL_MAP) or {}
        nanotimes = None
        tcspc = None
        if procedure == "import_ptu" and str(params.get("mode")) == "T3":
            ds = f.get(f"{L.DATA}/ptu/dtime")
            if ds is not None and ds.shape[0] == ts.size:
                nanotimes = ds[()].astype(np.uint16)
                axis = f.get(f"{L.DATA}/decay/time_ps")
                n_bins = int(axis.shape[0]) if axis is not None else int(nanotimes.max()) + 1
                tcspc = (float(params["tcspc_resolution_ps"]) * 1e-12, n_bins)
        duration = None
        if procedure == "g2" and f"{L.ANALYSIS}/g2" in f:
            duration = read_values(f[f"{L.ANALYSIS}/g2"]).get("acquired_s")
        elif procedure == "import_ptu":
            duration = params.get("acquisition_time_s")
        if duration is None or not np.isfinite(float(duration)) or float(duration) <= 0:
            duration = max(float(ts[-1] - ts[0]) * 1e-12, 1e-12)
    rep_rate = 0.0
    if procedure == "g2":
        rep_rate = float(params.get("rep_rate_Hz", 0.0) or 0.0)
    elif procedure == "import_ptu" and str(params.get("mode")) == "T3":
        rep_rate = float(params.get("sync_rate_Hz", 0.0) or 0.0)
    names = {}
    for name, value in cmap.items():
        with contextlib.suppress(TypeError, ValueError):
            names.setdefault(int(value), str(name))
    return {
        "run_path": run_path,
        "procedure": procedure,
        "attrs": attrs,
        "params": params,
        "ts": ts,
        "ch": ch,
        "names": names,
        "nanotimes": nanotimes,
        "tcspc": tcspc,
        "duration": float(duration),
        "rep_rate": rep_rate,
    }


def _save(d: dict[str, Any], out: pathlib.Path) -> None:
    import phconvert as phc

    ts, ch, names = d["ts"], d["ch"], d["names"]
    ids, counts = np.unique(ch, return_counts=True)
    ids = ids.astype(np.int32)
    non_photon = [
        int(i) for i in ids if any(w in names.get(int(i), "").lower() for w in _NON_PHOTON_WORDS)
    ]
    photon = [int(i) for i in ids if int(i) not in non_photon]
    if not photon:
        raise RunFileError(f"{d['run_path']}: the run holds no photon time tags to export")
    pulsed = d["rep_rate"] > 0
    labels = [_ascii(names.get(int(i), f"channel {int(i)}")) for i in ids]

    det_specs: dict[str, Any] = {}
    for k, i in enumerate(photon, start=1):
        det_specs[f"split_ch{k}"] = np.array([i], dtype=np.int32)
    if non_photon:
        det_specs["non_photon_id1"] = np.array(non_photon, dtype=np.int32)
    meas_specs: dict[str, Any] = {"measurement_type": "generic", "detectors_specs": det_specs}
    if pulsed:
        meas_specs["laser_repetition_rate"] = d["rep_rate"]

    photon_data: dict[str, Any] = {
        "timestamps": ts,
        "timestamps_specs": {"timestamps_unit": 1e-12},
        "detectors": ch.astype(np.int32),
        "measurement_specs": meas_specs,
    }
    lifetime = d["nanotimes"] is not None
    if lifetime:
        unit, n_bins = d["tcspc"]
        photon_data["nanotimes"] = d["nanotimes"]
        photon_data["nanotimes_specs"] = {
            "tcspc_unit": unit,
            "tcspc_num_bins": n_bins,
            "tcspc_range": unit * n_bins,
        }
    setup: dict[str, Any] = {
        "num_pixels": len(photon),
        "num_spots": 1,
        "num_spectral_ch": 1,
        "num_polarization_ch": 1,
        "num_split_ch": len(photon),
        "modulated_excitation": False,
        "excitation_alternated": [False],
        "lifetime": lifetime,
        "excitation_cw": [not pulsed],
        "detectors": {
            "id": ids,
            "label": labels,
            "counts": counts.astype(np.int64),
        },
    }
    if pulsed:
        setup["laser_repetition_rates"] = [d["rep_rate"]]

    a = d["attrs"]
    channel_list = ", ".join(f"{i}: {lab}" for i, lab in zip(ids, labels, strict=True))
    excitation = (
        f"pulsed excitation at {d['rep_rate']:.6g} Hz"
        if pulsed
        else "excitation unknown or CW (recorded as CW: Photon-HDF5 requires a value)"
    )
    description = _ascii(
        f"hbtscope run '{d['procedure']}' uuid {a.get('uuid', '')}, status "
        f"{a.get('status', '')}, started {a.get('start_time', '')}. Timestamps in ps; "
        f"detector ids are hbtscope channel numbers ({channel_list}); {excitation}."
    )
    run_path: pathlib.Path = d["run_path"]
    data = {
        "description": description,
        "acquisition_duration": d["duration"],
        "photon_data": photon_data,
        "setup": setup,
        "identity": {"creator": "hbtscope"},
        "provenance": {
            "filename": str(run_path),
            "creation_time": a.get("start_time", "")[:19].replace("T", " "),
            "software": "hbtscope",
            "software_version": a.get("hbtscope_version", ""),
        },
    }
    identity = data["identity"]
    for key in ("author", "author_affiliation"):
        if d.get(key):
            identity[key] = _ascii(str(d[key]))
    out.parent.mkdir(parents=True, exist_ok=True)
    sink = io.StringIO()  # phconvert prints "Saving: ..." and warnings on stdout
    with contextlib.redirect_stdout(sink):
        h5 = phc.hdf5.save_photon_hdf5(
            data, h5_fname=str(out), overwrite=True, close=True, warnings=False
        )
    del h5
