"""Import PicoQuant PTU files (T2 and T3 TTTR) into hbtscope run files.

:func:`import_ptu` reads a ``.ptu`` file with `ptufile <https://pypi.org/project/ptufile/>`_
(``PtuFile.decode_records``) and writes one run file with :class:`~hbtscope.storage.RunWriter`
(procedure ``"import_ptu"``), so that every reader of run files (the analysis, the re-analysis,
the Photon-HDF5 export, the GUI's run browser) works on measured PicoQuant data too.

What lands where
----------------
``parameters/``
    ``source_file`` (file name), ``source_path``, ``source_sha256``, ``mode`` (``"T2"`` or
    ``"T3"``), ``record_type`` (ptufile's name, e.g. ``"PicoHarpT2"``), ``hardware``,
    ``resolution_ps`` (T2: the time-tag resolution ``MeasDesc_GlobalResolution``; T3: the
    TCSPC bin ``MeasDesc_Resolution``), ``global_resolution_ps``, ``tcspc_resolution_ps``,
    ``sync_rate_Hz`` (``TTResult_SyncRate``; in T2 mode informative only), ``sync_period_ps``
    (T3: ``MeasDesc_GlobalResolution``, the time of one sync period), ``acquisition_time_s``.
``setup/snapshot/ptu_header``
    Every PTU header tag as an attribute (lists and dates as JSON text / ISO strings, binary
    blobs as escaped text, arrays as datasets), read by ptufile's tag parser.
``tttr/timestamps``, ``tttr/channels``
    One entry per photon record, in int64 picoseconds, sorted by time (stable sort; a T3 file
    can hold photons of two channels slightly out of order within one sync period):

    * T2: ``timestamp_ps = time * global_resolution``;
    * T3: ``timestamp_ps = nsync * sync_period + dtime * tcspc_resolution``,

    both rounded to the nearest picosecond. The integer part of a non-integer resolution is
    applied in exact integer arithmetic and only the fractional part in float64, so rounding
    never exceeds 0.5 ps, whatever the length of the file.
``tttr/@channel_map``, channel numbering
    hbtscope numbers inputs like the simulated tagger (``sync: 1, spad_a: 2, spad_b: 3``):
    **PicoQuant input channel c (0-based, as ptufile decodes it) becomes hbtscope channel
    c + 2**, and channel 1 is the sync. A two-detector PTU file therefore has channels 2 and 3,
    exactly like a g2 run recorded by hbtscope. The map is stored as
    ``{"ptu_ch0": 2, "ptu_ch1": 3, ...}`` (name -> hbtscope channel). On a PicoHarp 300 in T2
    mode "channel 0" is the SYNC connector used as a second detector input; it is a photon
    channel (2) like the others. HydraHarp/TimeHarp 260/MultiHarp T2 files can contain *sync*
    records (special record, channel field 0); ptufile decodes those as photons of channel 0,
    this importer recognises them from the raw record and stores them as channel 1 (``"sync"``)
    (``n_sync_records`` counts them; none of the sample files has any). In T3 mode the sync is
    implicit in ``nsync`` and channel 1 is unused.
``data/ptu/dtime``, ``data/ptu/nsync`` (T3 only)
    The raw micro time (TCSPC bin index, int16, ``@resolution_ps``) and sync count (int64) of
    every photon, in the order of ``tttr/``. ``RunWriter`` has no extra ``tttr/`` datasets, so
    these per-photon columns live under ``data/`` (lossless: the original records can be
    rebuilt from them).
``data/ptu/marker_time_ps``, ``data/ptu/marker_bits``
    Time (ps) and marker bit mask of every marker record, if any.
``data/decay/counts``, ``data/decay/time_ps``, ``data/decay/channels`` (T3 only)
    Decay (micro time) histogram per photon channel over ``number_bins_in_period`` bins.
``analysis/ptu_import``
    Record bookkeeping: ``n_records`` (records decoded by ptufile), ``n_records_header``
    (``TTResult_NumberOfRecords``; ``truncated`` is true when the file holds fewer),
    ``n_photons`` (ptufile's ``number_photons``), ``n_photon_tags`` (photons written to
    ``tttr/``), ``n_sync_records``,
    ``n_overflow_records`` and ``n_marker_records`` (both excluded from ``tttr/``),
    ``photons_per_channel`` (JSON {hbtscope channel: count}), ``n_reordered`` (tags that were
    out of time order in the file) and the first/last photon times.

Errors a user can cause (missing file, not a PTU file, a PTU file of an unsupported record
type or measurement mode) raise :class:`PtuImportError` (a ``ValueError``) with one line of
text naming the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import pathlib
import uuid as _uuid
from collections.abc import Mapping
from typing import Any

import numpy as np

from hbtscope.storage.runfile import RunWriter

__all__ = ["PROCEDURE", "PtuImportError", "import_ptu", "ptu_channel_to_hbtscope"]

PROCEDURE = "import_ptu"
#: hbtscope channel of PicoQuant input channel 0; input c becomes c + CHANNEL_OFFSET.
CHANNEL_OFFSET = 2
#: hbtscope channel of sync records (T2 files of HydraHarp-class hardware).
SYNC_CHANNEL = 1
_CHUNK = 1 << 22  # tags converted and appended per step (bounds temporary memory)

# Record types whose T2 "special" records with channel field 0 are sync events
# (HydraHarp v1/v2, TimeHarp 260 N/P, generic MultiHarp/PicoHarp 330).
_HT2_TYPES = {0x00010204, 0x01010204, 0x00010205, 0x00010206, 0x00010207}


class PtuImportError(ValueError):
    """A PTU file that cannot be imported (missing, not a PTU, unsupported format)."""


def ptu_channel_to_hbtscope(channel: int | np.ndarray) -> int | np.ndarray:
    """hbtscope channel number of PicoQuant input channel ``channel`` (0-based)."""
    return channel + CHANNEL_OFFSET


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _scale_to_ps(count: np.ndarray, unit_ps: float) -> np.ndarray:
    """``round(count * unit_ps)`` as int64, exact integer part + float fractional part."""
    count = np.asarray(count)
    whole = math.floor(unit_ps)
    frac = unit_ps - whole
    if abs(frac - round(frac)) < 1e-9 * max(unit_ps, 1.0):  # an integer number of ps
        return count.astype(np.int64) * np.int64(round(unit_ps))
    out = count.astype(np.int64) * np.int64(whole)
    out += np.rint(count.astype(np.float64) * frac).astype(np.int64)
    return out


def _t3_ps(nsync: np.ndarray, dtime: np.ndarray, period_ps: float, res_ps: float) -> np.ndarray:
    """``round(nsync * period_ps + dtime * res_ps)`` without float64 loss on large nsync."""
    whole = math.floor(period_ps)
    frac = period_ps - whole
    out = nsync.astype(np.int64) * np.int64(whole)
    out += np.rint(nsync.astype(np.float64) * frac + dtime.astype(np.float64) * res_ps).astype(
        np.int64
    )
    return out


def _header_snapshot(tags: Mapping[str, Any]) -> dict[str, Any]:
    """PTU tags as storable settings (names kept; values RunWriter can encode)."""
    out: dict[str, Any] = {}
    for name, value in tags.items():
        key = str(name).replace("\x00", "") or "_"
        if isinstance(value, np.ndarray) and value.dtype.kind not in "biufcSU":
            value = value.tolist()
        if isinstance(value, np.ndarray) and value.dtype.kind == "S":
            value = [v.decode("utf-8", "backslashreplace") for v in value.ravel()]
        out[key] = value
    return out


def _open_ptu(path: pathlib.Path):
    """Open ``path`` with ptufile; any failure becomes a one-line PtuImportError."""
    try:
        import ptufile
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise PtuImportError(f"ptufile is not installed, cannot read {path}") from exc
    if not path.exists():
        raise PtuImportError(f"{path}: no such file")
    if not path.is_file():
        raise PtuImportError(f"{path}: not a file")
    try:
        ptu = ptufile.PtuFile(path)
    except Exception as exc:  # noqa: BLE001 - ptufile raises many types on garbage input
        raise PtuImportError(
            f"{path}: not a readable PicoQuant PTU file ({_first_line(exc)})"
        ) from None
    return ptu


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _CollectLog(logging.Handler):
    """Collects ptufile's log messages (e.g. about odd header tags) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.messages.append(f"{record.levelname}: {record.getMessage()}")


@contextlib.contextmanager
def _ptufile_messages():
    logger = logging.getLogger("ptufile")
    handler = _CollectLog()
    old = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = old


def _record_type_name(ptu) -> str:
    rt = ptu.record_type
    return getattr(rt, "name", str(rt))


def _default_out_path(ptu_path: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    """``out`` itself when it names an ``.h5``/``.hdf5`` file, else ``out/<stem>_<uuid8>.h5``."""
    if out.suffix.lower() in (".h5", ".hdf5") and not out.is_dir():
        return out
    out.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in ptu_path.stem)[:64] or "ptu"
    return out / f"{safe}_{_uuid.uuid4().hex[:8]}.h5"


#: physically possible header values (PicoQuant TCSPC hardware: bins of 1 ps to ~1 µs, a sync
#: period of 1 ns to 1 s, at most 2**15 micro-time bins); anything else is a corrupt header,
#: refused before it sizes an allocation (a "1 s" TCSPC bin once asked for 233 GiB)
RESOLUTION_RANGE_PS = (0.1, 1.0e6)
SYNC_PERIOD_RANGE_PS = (1.0e3, 1.0e12)
MAX_TCSPC_BINS = 65_536


def _check_header(src: object, info: dict[str, Any], is_t3: bool) -> None:
    def within(name: str, value: float, lo: float, hi: float, what: str) -> None:
        if not (math.isfinite(value) and lo <= value <= hi):
            raise PtuImportError(
                f"{src}: header {name} = {value:g} ps is not a possible {what} "
                f"(allowed [{lo:g}, {hi:g}] ps): a corrupt header"
            )

    if is_t3:
        within(
            "MeasDesc_Resolution", info["tcspc_resolution_ps"], *RESOLUTION_RANGE_PS, "TCSPC bin"
        )
        within(
            "MeasDesc_GlobalResolution",
            info["global_resolution_ps"],
            *SYNC_PERIOD_RANGE_PS,
            "sync period",
        )
        if not 0 <= info["n_bins"] <= MAX_TCSPC_BINS:
            raise PtuImportError(
                f"{src}: header gives {info['n_bins']} TCSPC bins per period "
                f"(at most {MAX_TCSPC_BINS}): a corrupt header"
            )
    else:
        within(
            "MeasDesc_GlobalResolution",
            info["global_resolution_ps"],
            *RESOLUTION_RANGE_PS,
            "time-tag resolution",
        )


def import_ptu(
    ptu_path: str | os.PathLike,
    out_path_or_dir: str | os.PathLike,
    *,
    hbtscope_version: str = "",
) -> pathlib.Path:
    """Import a PicoQuant PTU file (T2 or T3 TTTR) into a new hbtscope run file.

    Parameters
    ----------
    ptu_path
        The ``.ptu`` file.
    out_path_or_dir
        Either the run file to write (ending in ``.h5``/``.hdf5``; must not exist) or a
        directory, in which ``<ptu stem>_<uuid8>.h5`` is created.

    Returns
    -------
    pathlib.Path
        The run file written (status ``finished``; ``failed`` with the error if the import
        broke half-way, in which case the exception propagates).

    Raises
    ------
    PtuImportError
        Missing file, not a PTU file, unsupported record type or mode (TTTR T2/T3 only).
    FileExistsError
        ``out_path_or_dir`` names an existing file.
    """
    src = pathlib.Path(ptu_path)
    with _ptufile_messages() as messages:
        ptu = _open_ptu(src)
        with contextlib.closing(ptu):
            return _import_open(src, ptu, out_path_or_dir, hbtscope_version, messages)


def _import_open(src, ptu, out_path_or_dir, hbtscope_version, messages) -> pathlib.Path:
    try:
        mode_value = int(ptu.measurement_mode)
        record_type = int(ptu.tags["TTResultFormat_TTTRRecType"])
    except Exception as exc:  # noqa: BLE001
        raise PtuImportError(
            f"{src}: PTU file without a TTTR measurement mode/record type ({_first_line(exc)})"
        ) from None
    if mode_value not in (2, 3):
        raise PtuImportError(
            f"{src}: measurement mode {mode_value} is a histogram, not TTTR T2/T3 data"
        )
    try:
        is_t3 = bool(ptu.is_t3)
        n_records_header = int(ptu.number_records)
        # the header's record count sizes the read: never more than the file holds (a corrupt
        # count of 10**12 would otherwise allocate 4 TB); what is there is imported (truncated)
        available = max((pathlib.Path(src).stat().st_size - int(ptu.record_offset)) // 4, 0)
        if n_records_header > available:
            ptu.__dict__["number_records"] = available  # ptufile's cached_property
        raw = ptu.read_records()
        decoded = ptu.decode_records(raw)
        tags = dict(ptu.tags)
        info = {
            "n_records": int(decoded.size),
            "n_records_header": n_records_header,
            "n_photons": int(ptu.number_photons),
            "record_type": _record_type_name(ptu),
            "global_resolution_ps": float(ptu.global_resolution) * 1e12,
            "tcspc_resolution_ps": float(ptu.tcspc_resolution) * 1e12,
            "sync_rate_Hz": float(tags.get("TTResult_SyncRate", 0) or 0),
            "acquisition_time_s": float(ptu.acquisition_time),
            "hardware": str(tags.get("HW_Type", "")),
            "n_bins": int(ptu.number_bins_in_period) if is_t3 else 0,
        }
    except Exception as exc:  # noqa: BLE001
        raise PtuImportError(
            f"{src}: cannot decode the TTTR records ({_first_line(exc)})"
        ) from None
    info["reader_messages"] = messages
    return _write_run(
        src, out_path_or_dir, raw, decoded, is_t3, record_type, info, tags, hbtscope_version
    )


def _write_run(src, out, raw, decoded, is_t3, record_type, info, tags, version) -> pathlib.Path:
    channel = decoded["channel"]
    marker = decoded["marker"]
    is_photon = channel >= 0
    is_marker = (~is_photon) & (marker > 0)
    is_overflow = (~is_photon) & (marker == 0)
    is_sync = np.zeros(channel.shape, dtype=bool)
    if not is_t3 and record_type in _HT2_TYPES:
        r = np.asarray(raw, dtype=np.uint32)
        is_sync = is_photon & ((r >> 31) == 1) & (((r >> 25) & 0x3F) == 0)

    _check_header(src, info, is_t3)
    keep = np.flatnonzero(is_photon)
    gres = info["global_resolution_ps"]
    tres = info["tcspc_resolution_ps"]
    mode = "T3" if is_t3 else "T2"
    if is_t3:
        if not gres > 0 or not tres > 0:
            raise PtuImportError(f"{src}: T3 file without sync period or TCSPC resolution")
        ts = _t3_ps(decoded["time"][keep], decoded["dtime"][keep], gres, tres)
    else:
        if not gres > 0:
            raise PtuImportError(f"{src}: T2 file without a time-tag resolution")
        ts = _scale_to_ps(decoded["time"][keep], gres)
    ch = channel[keep].astype(np.int32) + CHANNEL_OFFSET
    ch[is_sync[keep]] = SYNC_CHANNEL

    n_reordered = 0
    if ts.size > 1 and np.any(ts[1:] < ts[:-1]):
        order = np.argsort(ts, kind="stable")
        n_reordered = int(np.count_nonzero(order != np.arange(order.size)))
        ts, ch, keep = ts[order], ch[order], keep[order]

    det_channels = sorted(int(c) for c in np.unique(ch) if c != SYNC_CHANNEL)
    channel_map: dict[str, int] = {f"ptu_ch{c - CHANNEL_OFFSET}": c for c in det_channels}
    if is_sync.any():
        channel_map = {"sync": SYNC_CHANNEL, **channel_map}
    per_channel = {str(c): int(np.count_nonzero(ch == c)) for c in sorted(set(ch.tolist()))}

    params = {
        "source_file": src.name,
        "source_path": str(src.resolve()),
        "source_sha256": _sha256(src),
        "mode": mode,
        "record_type": info["record_type"],
        "record_type_code": int(record_type),
        "hardware": info["hardware"],
        "resolution_ps": tres if is_t3 else gres,
        "global_resolution_ps": gres,
        "tcspc_resolution_ps": tres,
        "sync_rate_Hz": info["sync_rate_Hz"],
        "sync_period_ps": gres if is_t3 else 0.0,
        "acquisition_time_s": info["acquisition_time_s"],
        "channel_offset": CHANNEL_OFFSET,
    }
    units = {
        "resolution_ps": "ps",
        "global_resolution_ps": "ps",
        "tcspc_resolution_ps": "ps",
        "sync_rate_Hz": "Hz",
        "sync_period_ps": "ps",
        "acquisition_time_s": "s",
    }
    path = _default_out_path(src, pathlib.Path(out))
    writer = RunWriter(
        path,
        PROCEDURE,
        params,
        units=units,
        snapshot={"ptu_header": _header_snapshot(tags)},
        hbtscope_version=version,
    )
    with writer:
        writer.set_tttr_info(resolution_ps=params["resolution_ps"], channel_map=channel_map)
        for i in range(0, ts.size, _CHUNK):
            writer.append_tags(ts[i : i + _CHUNK], ch[i : i + _CHUNK])
        if is_t3:
            dtime = decoded["dtime"][keep].astype(np.int16)
            writer.write_array("ptu/dtime", dtime, units="bins", resolution_ps=tres)
            writer.write_array(
                "ptu/nsync",
                decoded["time"][keep].astype(np.int64),
                units="sync periods",
                sync_period_ps=gres,
            )
            n_bins = max(int(info["n_bins"]), int(dtime.max()) + 1 if dtime.size else 1)
            counts = np.zeros((len(det_channels), n_bins), dtype=np.int64)
            for i, c in enumerate(det_channels):
                counts[i] = np.bincount(dtime[ch == c], minlength=n_bins)[:n_bins]
            writer.write_array("decay/counts", counts, units="counts")
            writer.write_array("decay/time_ps", np.arange(n_bins) * tres, units="ps")
            writer.write_array("decay/channels", np.asarray(det_channels, dtype=np.int32))
        if is_marker.any():
            midx = np.flatnonzero(is_marker)
            if is_t3:
                mt = _t3_ps(decoded["time"][midx], np.zeros(midx.size), gres, tres)
            else:
                mt = _scale_to_ps(decoded["time"][midx], gres)
            writer.write_array("ptu/marker_time_ps", mt, units="ps")
            writer.write_array("ptu/marker_bits", marker[midx].astype(np.uint8))
        writer.write_analysis(
            "ptu_import",
            {
                "n_records": info["n_records"],
                "n_records_header": info["n_records_header"],
                "truncated": info["n_records"] < info["n_records_header"],
                "n_photons": info["n_photons"],
                "n_photon_tags": int(ts.size),
                "n_sync_records": int(is_sync.sum()),
                "n_overflow_records": int(is_overflow.sum()),
                "n_marker_records": int(is_marker.sum()),
                "n_reordered": n_reordered,
                "photons_per_channel": per_channel,
                "first_tag_ps": int(ts[0]) if ts.size else 0,
                "last_tag_ps": int(ts[-1]) if ts.size else 0,
                "reader_messages": list(info["reader_messages"]),
            },
        )
    return path
