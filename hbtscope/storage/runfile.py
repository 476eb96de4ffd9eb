"""One self-describing HDF5 file per measurement run: writing, reading, crash detection.

The layout is described in ``docs/run-file-layout.md`` and its names are in
:mod:`hbtscope.storage.layout`.

Crash safety in short (the measurements are in the document):

* the writer uses a version-2 superblock (``libver=("v108", "v108")``) and *not* HDF5's SWMR
  write mode: SWMR needs a version-3 superblock, whose "file consistency flags" stay set when
  the writer is killed, and then a plain ``h5py.File(path, "r")`` refuses the file until
  ``h5clear`` is run. With a version-2 superblock, a file left by a killed writer opens with a
  plain ``h5py.File(path, "r")`` and holds everything up to the last completed ``flush()``;
* time tags are staged in memory and written as whole HDF5 chunks (direct chunk writes), the
  last partial chunk at each flush, so raw data always reach the file before the metadata that
  point to them;
* readers use :func:`open_run`: HDF5's SWMR *read* mode with HDF5 file locking off, which reads
  a file that is still being written (``Dataset.refresh()`` shows the growth after each flush),
  a crashed one and a finished one alike;
* a live writer holds an exclusive ``flock`` on the run file (POSIX) or, where the OS cannot
  lock it, leaves a side-car ``<file>.lock`` with its pid; :func:`run_status` reports
  ``interrupted`` for a ``running`` file nobody holds.

This module imports only the standard library, numpy and h5py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import enum
import json
import os
import pathlib
import re
import socket
import sys
import threading
import time
import uuid as _uuid
import zlib
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from hbtscope.storage import layout as L

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "RunWriter",
    "open_run",
    "run_status",
    "new_run_path",
    "read_attrs",
    "read_values",
    "read_parameters",
    "writer_alive",
    "mark_interrupted",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UINT64_MAX = 2**64 - 1
_STR_DTYPE = h5py.string_dtype("utf-8")


# ============================================================================================
# value encoding
# ============================================================================================


def _jsonable(value: Any) -> Any:
    """``value`` made of JSON types only (dict keys become strings, unknown objects ``str``)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, Mapping):
        return {
            (k if isinstance(k, str) else str(_jsonable(k))): _jsonable(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_jsonable(v) for v in items]
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, complex):
        return [value.real, value.imag]
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    return str(value)  # pathlib.Path, units, ...


def _to_json(value: Any) -> str:
    text = json.dumps(_jsonable(value), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: let JSON escape them
        text = json.dumps(_jsonable(value), ensure_ascii=True)
    return text


def _utf8_ok(text: str) -> bool:
    if "\x00" in text:  # HDF5 variable-length strings end at the first NUL
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _safe_text(text: Any) -> str:
    """``str(text)`` storable as an HDF5 string (NULs and lone surrogates escaped)."""
    text = str(text or "").replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _attr_value(value: Any) -> tuple[Any, bool]:
    """How ``value`` is stored as an HDF5 attribute: ``(stored value, is_json)``."""
    if isinstance(value, bool | np.bool_):
        return np.bool_(value), False
    if isinstance(value, np.integer | np.floating | np.complexfloating):
        return value, False  # numpy scalars keep their dtype
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return np.int64(value), False
        if 0 <= value <= _UINT64_MAX:
            return np.uint64(value), False
        return json.dumps(value), True  # Python ints of any size survive a JSON round trip
    if isinstance(value, float):
        return np.float64(value), False
    if isinstance(value, complex):
        return np.complex128(value), False
    if isinstance(value, str):
        return (value, False) if _utf8_ok(value) else (_to_json(value), True)
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return _attr_value(value[()])
    plain = _jsonable(value)
    if isinstance(plain, bool | int | float | str):  # Path, Enum, datetime ... -> scalar
        return _attr_value(plain)
    return _to_json(plain), True


def _check_name(name: Any, what: str = "name") -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}: {name!r}")
    if not name:
        raise ValueError(f"{what} must not be empty")
    if "\x00" in name:
        raise ValueError(f"{what} must not contain NUL characters: {name!r}")
    try:
        n_bytes = len(name.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not valid unicode: {name!r}") from exc
    if n_bytes > L.MAX_NAME_BYTES:
        raise ValueError(f"{what} longer than {L.MAX_NAME_BYTES} UTF-8 bytes")
    return name


def _check_path(name: Any, what: str, *, allow_slash: bool) -> str:
    """A link name (group or dataset), possibly ``a/b/c`` when ``allow_slash``."""
    _check_name(name, what)
    parts = name.split("/")
    if (len(parts) > 1 and not allow_slash) or any(p in ("", ".", "..") for p in parts):
        hint = "'/'-separated non-empty parts" if allow_slash else "a single name without '/'"
        raise ValueError(f"{what} must be {hint} (not '.' or '..'): {name!r}")
    return name


def _is_link_name(name: str) -> bool:
    return "/" not in name and name not in (".", "..")


def _json_keys(obj: h5py.HLObject) -> set[str]:
    raw = obj.attrs.get(L.JSON_KEYS_ATTR)
    if raw is None:
        return set()
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return set(json.loads(raw))


def _set_json_keys(obj: h5py.HLObject, keys: set[str]) -> None:
    if keys:
        obj.attrs[L.JSON_KEYS_ATTR] = json.dumps(sorted(keys), ensure_ascii=False)
    elif L.JSON_KEYS_ATTR in obj.attrs:
        del obj.attrs[L.JSON_KEYS_ATTR]


def _set_attrs(obj: h5py.HLObject, values: Mapping[str, Any], reserved: tuple[str, ...] = ()):
    """Write ``values`` as attributes of ``obj`` (JSON where needed, see ``_attr_value``)."""
    keys = _json_keys(obj)
    for name, value in values.items():
        _check_name(name, "attribute name")
        if name == L.JSON_KEYS_ATTR or name in reserved:
            raise ValueError(f"attribute name {name!r} is reserved here")
        stored, is_json = _attr_value(value)
        obj.attrs[name] = stored
        (keys.add if is_json else keys.discard)(name)
    _set_json_keys(obj, keys)


def _as_storable_array(value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind == "U":
        return arr.astype(object)  # stored as variable-length UTF-8 strings
    if arr.dtype.kind == "O":
        if all(isinstance(x, str) for x in arr.flat):
            return arr
        raise TypeError("object arrays can only be stored if all their items are str")
    return arr


def _pays_to_compress(arr: np.ndarray) -> bool:
    if arr.nbytes < L.COMPRESS_MIN_BYTES or arr.dtype.kind not in "biufc" or arr.ndim == 0:
        return False
    # a cheap trial: zlib level 1 on the byte-shuffled first 256 KiB
    flat = np.ascontiguousarray(arr).reshape(-1)
    sample = flat[: max(1, (256 * 1024) // arr.dtype.itemsize)]
    shuffled = sample.view(np.uint8).reshape(-1, arr.dtype.itemsize).T.tobytes()
    return len(zlib.compress(shuffled, 1)) < L.COMPRESS_MAX_RATIO * len(shuffled)


def _write_dataset(group: h5py.Group, name: str, value: Any) -> h5py.Dataset:
    """Create (or overwrite) dataset ``group[name]``; compressed only where it pays."""
    arr = _as_storable_array(value)
    is_str = arr.dtype.kind == "O"
    dtype = _STR_DTYPE if is_str else arr.dtype
    old = group.get(name)
    if isinstance(old, h5py.Dataset) and old.shape == arr.shape and old.dtype == dtype:
        old[...] = arr  # same shape and type: rewrite in place (no space leaks in the file)
        return old
    if old is not None:
        del group[name]
    if _pays_to_compress(arr):
        kw = {"chunks": True, "compression": "gzip", "compression_opts": L.GZIP_LEVEL}
        kw["shuffle"] = arr.dtype.itemsize > 1
    else:
        kw = {}
    return group.create_dataset(name, data=arr, dtype=dtype, **kw)


def _write_mapping(group: h5py.Group, values: Mapping[str, Any]) -> None:
    """Scalars and strings -> attributes, numpy arrays -> datasets, nested -> JSON attributes."""
    if not isinstance(values, Mapping):
        raise TypeError(f"expected a dict, got {type(values).__name__}")
    as_attrs: dict[str, Any] = {}
    for key, value in values.items():
        _check_name(key, "key")
        if isinstance(value, np.ndarray) and value.ndim >= 1 and _is_link_name(key):
            if key in group.attrs:
                del group.attrs[key]
            _write_dataset(group, key, value)
            keys = _json_keys(group)
            if key in keys:
                _set_json_keys(group, keys - {key})
        else:
            if _is_link_name(key) and isinstance(group.get(key, getlink=True), h5py.HardLink):
                del group[key]  # was an array before
            as_attrs[key] = value
    _set_attrs(group, as_attrs)


# ============================================================================================
# reading helpers
# ============================================================================================


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def read_attrs(obj: h5py.HLObject) -> dict[str, Any]:
    """The attributes of a group or dataset, with JSON-encoded ones decoded.

    Scalars come back as numpy scalars (``np.int64``, ``np.float64``, ``np.bool_``...), strings
    as ``str``; attributes listed in the object's ``_json_keys`` attribute are ``json.loads``-ed.
    """
    keys = _json_keys(obj)
    out = {}
    for name, value in obj.attrs.items():
        if name == L.JSON_KEYS_ATTR:
            continue
        value = _decode(value)
        out[name] = json.loads(value) if name in keys else value
    return out


def _read_dataset(ds: h5py.Dataset) -> Any:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return ds.asstr()[()]
    return ds[()]


def read_values(group: h5py.Group) -> dict[str, Any]:
    """Attributes (decoded) and datasets (as arrays) of ``group``: what ``write_analysis`` /
    ``write_truth`` / snapshot settings were given (sub-groups are left out)."""
    out = read_attrs(group)
    for name, member in group.items():
        if isinstance(member, h5py.Dataset):
            out[name] = _read_dataset(member)
    return out


def read_parameters(run: h5py.File) -> tuple[dict[str, Any], dict[str, str]]:
    """``(parameters, units)`` of an open run file."""
    params = read_attrs(run[L.PARAMETERS])
    units = params.pop(L.ATTR_UNITS, {}) or {}
    return params, units


# ============================================================================================
# live-writer detection
# ============================================================================================


def _lock_sidecar(path: pathlib.Path) -> pathlib.Path:
    return path.with_name(path.name + L.LOCK_SUFFIX)


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if sys.platform == "win32":  # pragma: no cover - os.kill(pid, 0) would kill it on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        try:
            code = ctypes.c_ulong()
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _WriterLock:
    """Held by a RunWriter for as long as the file is open for writing.

    POSIX: an exclusive ``flock`` on the run file itself through a private descriptor. The kernel
    drops it when the process dies, however it dies, so no stale state is ever left behind.
    Where ``flock`` is unavailable (Windows) or unsupported by the file system, a side-car
    ``<file>.lock`` holding ``{"pid", "host", "uuid"}`` is written instead and removed by
    ``release``.
    """

    def __init__(self, path: pathlib.Path, run_uuid: str):
        self.path = path
        self.fd: int | None = None
        self.sidecar: pathlib.Path | None = None
        if fcntl is not None:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                self._flock_exclusive(fd)
            except BlockingIOError:
                os.close(fd)
                raise RuntimeError(f"{path} is locked by another writer") from None
            except OSError:  # ENOLCK, EOPNOTSUPP...: the file system cannot lock
                os.close(fd)
            else:
                self.fd = fd
                return
        sidecar = _lock_sidecar(path)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "uuid": run_uuid}
        sidecar.write_text(json.dumps(info), encoding="utf-8")
        self.sidecar = sidecar

    @staticmethod
    def _flock_exclusive(fd: int) -> None:
        # writer_alive() probes with a shared lock held for microseconds: retry a little
        for _ in range(50):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                time.sleep(0.02)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None
        if self.sidecar is not None:
            with contextlib.suppress(OSError):
                self.sidecar.unlink()
            self.sidecar = None


def writer_alive(path: str | os.PathLike) -> bool:
    """Whether a live process holds ``path`` open through a :class:`RunWriter`."""
    path = pathlib.Path(path)
    if fcntl is not None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # somebody holds the exclusive lock: a live writer
        except OSError:
            pass  # cannot lock here: fall back to the side-car
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
    sidecar = _lock_sidecar(path)
    try:
        info = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if info.get("host") != socket.gethostname():
        return True  # cannot check a process on another machine: assume it is alive
    return _pid_alive(int(info.get("pid", -1)))


# ============================================================================================
# reading
# ============================================================================================


def open_run(path: str | os.PathLike) -> h5py.File:
    """Open a run file read-only: finished, still being written, or left by a killed writer.

    Uses HDF5's SWMR read mode with HDF5 file locking off (the writer holds its own lock):
    SWMR read mode does not trust the end-of-allocation address recorded in the superblock
    (which lags behind while a file is written) and retries metadata reads whose checksum fails,
    and ``Dataset.refresh()`` then shows data flushed after opening. Falls back to a plain
    read-only open (e.g. when this process already has the file open in another mode).
    """
    path = pathlib.Path(path)
    try:
        return h5py.File(path, "r", swmr=True, locking=False)
    except FileNotFoundError:
        raise
    except OSError as first:
        try:
            return h5py.File(path, "r", locking=False)
        except OSError:
            raise first from None


def run_status(path: str | os.PathLike) -> str:
    """The run's status attribute, except ``interrupted`` for a ``running`` file no live
    writer holds (its writer was killed or crashed)."""
    with open_run(path) as f:
        status = _decode(f.attrs.get(L.ATTR_STATUS, L.STATUS_RUNNING))
    if status == L.STATUS_RUNNING and not writer_alive(path):
        return L.STATUS_INTERRUPTED
    return status


def mark_interrupted(path: str | os.PathLike) -> bool:
    """Persist what :func:`run_status` reports: set the status attribute of a ``running`` file
    that no live writer holds to ``interrupted`` (``end_time`` stays empty: unknown).

    Returns whether the file was changed. The only function here that modifies a run file
    it did not write; meant for the queue or a clean-up tool, never called implicitly.
    """
    path = pathlib.Path(path)
    with open_run(path) as f:
        status = _decode(f.attrs.get(L.ATTR_STATUS, L.STATUS_RUNNING))
    if status != L.STATUS_RUNNING or writer_alive(path):
        return False
    with h5py.File(path, "r+", locking=False) as f:
        f.attrs[L.ATTR_STATUS] = L.STATUS_INTERRUPTED
    return True


# ============================================================================================
# writing
# ============================================================================================


def _utc_now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


_UUID8_RE = re.compile(r"_([0-9a-f]{8})$")


def new_run_path(data_dir: str | os.PathLike, procedure: str) -> pathlib.Path:
    """``data_dir/YYYY-MM-DD/HHMMSS_<procedure>_<uuid8>.h5`` (local time), folders created.

    A :class:`RunWriter` given such a path uses ``<uuid8>`` as the first 8 hex digits of the
    run's uuid, so the file name and the ``uuid`` attribute always agree.
    """
    now = _dt.datetime.now()
    safe = re.sub(r"[^A-Za-z0-9.-]+", "_", str(procedure)).strip("._")[:64] or "run"
    folder = pathlib.Path(data_dir) / now.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{now:%H%M%S}_{safe}_{_uuid.uuid4().hex[:8]}.h5"


def _run_uuid(path: pathlib.Path) -> str:
    rnd = _uuid.uuid4().hex
    m = _UUID8_RE.search(path.stem)
    if m:  # keep version/variant digits of the random uuid4 (they sit after digit 8)
        rnd = m.group(1) + rnd[8:]
    return str(_uuid.UUID(hex=rnd))


def _package_version() -> str:
    try:
        from importlib.metadata import version

        return version("hbtscope")
    except Exception:  # noqa: BLE001 - not installed: running from a source tree
        return "0.0.0+unknown"


class RunWriter:
    """Writes one run file; a context manager. See ``docs/run-file-layout.md``.

    ``with RunWriter(path, "g2", params) as w: ...`` leaves the status ``finished``, or
    ``aborted`` (KeyboardInterrupt), or ``failed`` with the exception in ``error``. The file is
    flushed at the end of ``__init__``, by ``flush()``, by ``finish()``, and by any write when
    more than ``flush_interval_s`` (wall time) passed since the last flush; everything written
    before a completed flush survives the writer being killed.

    All methods may be called from several threads.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        procedure: str,
        parameters: Mapping[str, Any],
        *,
        units: Mapping[str, str] | None = None,
        setup_text: str = "",
        setup_path: str = "",
        snapshot: Mapping[str, Any] | None = None,
        calibrations: Mapping[str, Any] | None = None,
        queue_item_id: str = "",
        hbtscope_version: str = "",
        flush_interval_s: float = 1.0,
    ):
        self.path = pathlib.Path(path)
        self.uuid = _run_uuid(self.path)
        self.procedure = str(procedure)
        self.flush_interval_s = float(flush_interval_s)
        self._lock = threading.RLock()
        self._closed = False
        self._status = L.STATUS_RUNNING
        if self.path.exists():
            raise FileExistsError(f"run file already exists: {self.path}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = h5py.File(self.path, "w-", libver=L.LIBVER, locking=False)
        try:
            self._writer_lock = _WriterLock(self.path, self.uuid)
        except BaseException:
            self._file.close()
            raise
        try:
            self._init_layout(
                parameters,
                units,
                setup_text,
                setup_path,
                snapshot,
                calibrations,
                queue_item_id,
                hbtscope_version or _package_version(),
            )
            self._file.flush()
        except BaseException as exc:
            aborted = isinstance(exc, KeyboardInterrupt)  # Ctrl+C, SIGTERM while creating it
            self._abandon(f"{type(exc).__name__}: {exc}", aborted=aborted)
            raise
        self._last_flush = time.monotonic()

    # --- set-up --------------------------------------------------------------------------

    def _init_layout(
        self,
        parameters,
        units,
        setup_text,
        setup_path,
        snapshot,
        calibrations,
        queue_item_id,
        version,
    ) -> None:
        f = self._file
        f.attrs[L.ATTR_FORMAT_VERSION] = L.FORMAT_VERSION
        f.attrs[L.ATTR_HBTSCOPE_VERSION] = _safe_text(version)
        f.attrs[L.ATTR_PROCEDURE] = _safe_text(self.procedure)
        f.attrs[L.ATTR_UUID] = self.uuid
        f.attrs[L.ATTR_START_TIME] = _utc_now()
        f.attrs[L.ATTR_END_TIME] = ""
        f.attrs[L.ATTR_STATUS] = L.STATUS_RUNNING
        f.attrs[L.ATTR_QUEUE_ITEM_ID] = _safe_text(queue_item_id)
        f.attrs[L.ATTR_ERROR] = ""

        params = f.create_group(L.PARAMETERS)
        _set_attrs(params, dict(parameters or {}), reserved=(L.ATTR_UNITS,))
        units = {str(k): str(v) for k, v in (units or {}).items()}
        params.attrs[L.ATTR_UNITS] = _to_json(units)
        _set_json_keys(params, _json_keys(params) | {L.ATTR_UNITS})

        setup = f.create_group(L.SETUP)
        setup_text = str(setup_text or "")
        if not _utf8_ok(setup_text):
            raise ValueError("setup_text must be UTF-8 text without NUL characters")
        setup.create_dataset("setup_file", data=setup_text, dtype=_STR_DTYPE)
        setup.attrs[L.ATTR_SETUP_FILE_PATH] = _safe_text(setup_path)
        for group_name, content in ((L.SNAPSHOT, snapshot), (L.CALIBRATIONS, calibrations)):
            self._write_snapshot_group(group_name, content)

        f.create_group(L.DATA)
        tttr = f.create_group(L.TTTR)
        chunk = L.TTTR_CHUNK
        self._ts = tttr.create_dataset(
            "timestamps", shape=(0,), maxshape=(None,), dtype=L.TIMESTAMP_DTYPE, chunks=(chunk,)
        )
        self._ch = tttr.create_dataset(
            "channels", shape=(0,), maxshape=(None,), dtype=L.CHANNEL_DTYPE, chunks=(chunk,)
        )
        self._ts.attrs[L.ATTR_UNITS] = "ps"
        tttr.attrs[L.ATTR_RESOLUTION_PS] = np.float64(1.0)
        tttr.attrs[L.ATTR_CHANNEL_MAP] = "{}"
        _set_json_keys(tttr, {L.ATTR_CHANNEL_MAP})
        f.create_group(L.ANALYSIS)
        f.create_group(L.TRUTH)

        # time-tag staging: tags are written to HDF5 as whole chunks (and the partial last
        # chunk at each flush) with direct chunk writes: fast, and raw data always reach the
        # file before the chunk index / extent that point at them.
        self._chunk = chunk
        self._ts_buf = np.zeros(chunk, dtype=L.TIMESTAMP_DTYPE)
        self._ch_buf = np.zeros(chunk, dtype=L.CHANNEL_DTYPE)
        self._chunk_start = 0  # first tag of the chunk being staged
        self._fill = 0  # tags staged
        self._buf_hi = 0  # staging buffer holds old data up to here
        self._flushed_fill = 0  # staged tags already written to the file
        self._extent = 0  # current length of the tttr datasets

    # --- helpers ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"run file {self.path} is already closed ({self._status})")

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush > self.flush_interval_s:
            self._flush()

    def _set_extent(self, n: int) -> None:
        if n != self._extent:
            self._ts.resize((n,))
            self._ch.resize((n,))
            self._extent = n

    def _write_chunk(self, start: int, ts: np.ndarray, ch: np.ndarray, n_valid: int) -> None:
        self._set_extent(max(self._extent, start + n_valid))
        self._ts.id.write_direct_chunk((start,), ts)
        self._ch.id.write_direct_chunk((start,), ch)

    def _flush(self) -> None:
        fill = self._fill
        if fill and fill != self._flushed_fill:
            if self._buf_hi > fill:  # no stale tags from an earlier chunk in the file
                self._ts_buf[fill : self._buf_hi] = 0
                self._ch_buf[fill : self._buf_hi] = 0
                self._buf_hi = fill
            self._write_chunk(self._chunk_start, self._ts_buf, self._ch_buf, fill)
            self._flushed_fill = fill
        self._set_extent(self._chunk_start + fill)
        self._file.flush()
        self._last_flush = time.monotonic()

    def _abandon(self, error: str, aborted: bool = False) -> None:
        """Close after a failure (or an interruption: ``aborted``) inside ``__init__``: mark
        the file failed (aborted), release the lock."""
        self._closed = True
        self._status = L.STATUS_ABORTED if aborted else L.STATUS_FAILED
        try:
            self._file.attrs[L.ATTR_STATUS] = self._status
            self._file.attrs[L.ATTR_ERROR] = _safe_text(error)
            self._file.attrs[L.ATTR_END_TIME] = _utc_now()
        except Exception:  # noqa: BLE001, S110 - best effort
            pass
        finally:
            with contextlib.suppress(Exception):
                self._file.close()
            self._writer_lock.release()

    # --- public API ------------------------------------------------------------------------

    @property
    def n_tags(self) -> int:
        """Number of time tags appended so far (flushed or not)."""
        return self._chunk_start + self._fill

    @property
    def status(self) -> str:
        return self._status

    @property
    def closed(self) -> bool:
        return self._closed

    def set_tttr_info(
        self, resolution_ps: float | None = None, channel_map: Mapping[str, Any] | None = None
    ) -> None:
        """Set attributes ``resolution_ps`` and ``channel_map`` (JSON) of group ``tttr/``."""
        with self._lock:
            self._check_open()
            tttr = self._file[L.TTTR]
            if resolution_ps is not None:
                tttr.attrs[L.ATTR_RESOLUTION_PS] = np.float64(resolution_ps)
            if channel_map is not None:
                tttr.attrs[L.ATTR_CHANNEL_MAP] = _to_json(dict(channel_map))
            self._maybe_flush()

    def append_tags(self, timestamps_ps, channels) -> None:
        """Append time tags (ps, int64) and their channels (int32) to ``tttr/``."""
        ts = np.asarray(timestamps_ps)
        ch = np.asarray(channels)
        if ts.ndim != 1 or ch.ndim != 1 or ts.shape != ch.shape:
            raise ValueError(
                f"timestamps and channels must be 1-D of equal length, got {ts.shape}, {ch.shape}"
            )
        if ts.size and ts.dtype.kind not in "iu":
            raise TypeError(f"timestamps must be integers (ps), got {ts.dtype}")
        if ch.size and ch.dtype.kind not in "iu":
            raise TypeError(f"channels must be integers, got {ch.dtype}")
        with self._lock:
            self._check_open()
            n, i, chunk = ts.size, 0, self._chunk
            while i < n:
                if self._fill == 0 and n - i >= chunk:  # a whole chunk straight from the input
                    s = slice(i, i + chunk)
                    t = np.ascontiguousarray(ts[s], dtype=L.TIMESTAMP_DTYPE)
                    c = np.ascontiguousarray(ch[s], dtype=L.CHANNEL_DTYPE)
                    self._write_chunk(self._chunk_start, t, c, chunk)
                    self._chunk_start += chunk
                    i += chunk
                    continue
                k = min(chunk - self._fill, n - i)
                self._ts_buf[self._fill : self._fill + k] = ts[i : i + k]
                self._ch_buf[self._fill : self._fill + k] = ch[i : i + k]
                self._fill += k
                self._buf_hi = max(self._buf_hi, self._fill)
                i += k
                if self._fill == chunk:
                    self._write_chunk(self._chunk_start, self._ts_buf, self._ch_buf, chunk)
                    self._chunk_start += chunk
                    self._fill = self._flushed_fill = 0
            self._maybe_flush()

    def write_array(self, name: str, array, units: str | None = None, **attrs) -> None:
        """Store ``array`` as dataset ``data/<name>`` ('/' in ``name`` makes sub-groups).

        Arrays of at least 64 KiB are gzip-compressed (with shuffle) when a trial shows it
        pays. Writing the same name again overwrites it (in place when shape and type match).
        """
        _check_path(name, "array name", allow_slash=True)
        with self._lock:
            self._check_open()
            ds = _write_dataset(self._file[L.DATA], name, array)
            if units is not None:
                ds.attrs[L.ATTR_UNITS] = str(units)
            _set_attrs(ds, attrs, reserved=(L.ATTR_UNITS,))
            self._maybe_flush()

    def append_array(self, name: str, row, units: str | None = None) -> None:
        """Append ``row`` to dataset ``data/<name>``, extended along a new first axis (a video:
        one frame after the other, shape ``(n, *row.shape)``).

        The dataset is created at the first row: chunked one row per chunk (a reader takes
        frame ``k`` without the others), gzip with shuffle when a trial on the first row shows
        it pays, ``maxshape (None, ...)``. Later rows must have the first row's shape; they
        reach the file at the next flush, like time tags.
        """
        _check_path(name, "array name", allow_slash=True)
        arr = np.asarray(row)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"append_array: numeric rows only, got {arr.dtype}")
        with self._lock:
            self._check_open()
            data = self._file[L.DATA]
            ds = data.get(name)
            if ds is None:
                kw: dict[str, Any] = {}
                if _pays_to_compress(arr):
                    kw = {"compression": "gzip", "compression_opts": L.GZIP_LEVEL}
                    kw["shuffle"] = arr.dtype.itemsize > 1
                ds = data.create_dataset(
                    name,
                    shape=(0, *arr.shape),
                    maxshape=(None, *arr.shape),
                    dtype=arr.dtype,
                    chunks=(1, *arr.shape) if arr.ndim else (1024,),
                    **kw,
                )
                if units is not None:
                    ds.attrs[L.ATTR_UNITS] = str(units)
            elif not isinstance(ds, h5py.Dataset) or ds.shape[1:] != arr.shape:
                shape = getattr(ds, "shape", None)
                raise ValueError(
                    f"data/{name}: cannot append a row of shape {arr.shape} to {shape}"
                )
            n = ds.shape[0]
            ds.resize((n + 1, *ds.shape[1:]))
            ds[n] = arr
            self._maybe_flush()

    def write_values(self, name: str, values: Mapping[str, Any]) -> None:
        """Scalars describing the acquisition as attributes of group ``data/<name>`` (merged
        with what is there)."""
        _check_path(name, "values name", allow_slash=True)
        with self._lock:
            self._check_open()
            group = self._file[L.DATA].require_group(name)
            _write_mapping(group, values)
            self._maybe_flush()

    def write_snapshot(self, snapshot: Mapping[str, Any], *, group: str = L.SNAPSHOT) -> None:
        """Every instrument's settings by role into ``group`` (replacing what is there)."""
        with self._lock:
            self._check_open()
            if group in self._file:
                del self._file[group]
            self._write_snapshot_group(group, snapshot)
            self._maybe_flush()

    def _write_snapshot_group(self, name: str, content: Mapping[str, Any] | None) -> None:
        group = self._file.create_group(name)
        loose = {}
        for key, value in (content or {}).items():
            if isinstance(value, Mapping) and _is_link_name(_check_name(key, "role")):
                _write_mapping(group.create_group(key), value)
            else:
                loose[key] = value  # not a dict of settings: an attribute of the group
        _write_mapping(group, loose)

    def write_analysis(
        self,
        name: str,
        values: Mapping[str, Any],
        errors: Mapping[str, Any] | None = None,
        **attrs,
    ) -> None:
        """Group ``analysis/<name>``: one attribute per value (arrays become datasets), the
        uncertainty of ``key`` as ``<key>_err``, plus ``attrs``. Replaces an earlier one."""
        _check_path(name, "analysis name", allow_slash=True)
        merged: dict[str, Any] = dict(values)
        for key, err in (errors or {}).items():
            err_key = f"{_check_name(key, 'error key')}{L.ERR_SUFFIX}"
            if err_key in merged:
                raise ValueError(f"{err_key!r} given both as a value and as the error of {key!r}")
            merged[err_key] = err
        for key in attrs:
            if key in merged:
                raise ValueError(f"{key!r} given both as a value and as an attribute")
        merged.update(attrs)
        with self._lock:
            self._check_open()
            analysis = self._file[L.ANALYSIS]
            if name in analysis:
                del analysis[name]
            _write_mapping(analysis.create_group(name), merged)
            self._maybe_flush()

    def write_truth(self, values: Mapping[str, Any]) -> None:
        """Simulator ground truth into ``truth/`` (merged with what is there)."""
        with self._lock:
            self._check_open()
            _write_mapping(self._file[L.TRUTH], values)
            self._maybe_flush()

    def flush(self) -> None:
        """Write everything so far to the file; it survives the writer being killed after."""
        with self._lock:
            self._check_open()
            self._flush()

    def finish(self, status: str = L.STATUS_FINISHED, error: str = "") -> None:
        """Set ``status``, ``end_time`` and ``error``, flush and close the file."""
        if status not in L.FINAL_STATUSES:
            raise ValueError(f"status must be one of {L.FINAL_STATUSES}, got {status!r}")
        with self._lock:
            self._check_open()
            self._closed = True
            self._status = status
            try:
                f = self._file
                f.attrs[L.ATTR_STATUS] = status
                f.attrs[L.ATTR_END_TIME] = _utc_now()
                f.attrs[L.ATTR_ERROR] = _safe_text(error)
                self._flush()
            finally:
                try:
                    self._file.close()
                finally:
                    self._writer_lock.release()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if self._closed:
            return False
        if exc_type is None:
            self.finish(L.STATUS_FINISHED)
            return False
        if issubclass(exc_type, KeyboardInterrupt):
            status, error = L.STATUS_ABORTED, ""
        else:
            status, error = L.STATUS_FAILED, f"{exc_type.__name__}: {exc}"
        try:
            self.finish(status, error)
        except Exception as finish_exc:  # noqa: BLE001 - never hide the original exception
            exc.add_note(f"also failed to finish run file {self.path}: {finish_exc!r}")
        return False

    def __repr__(self) -> str:
        return f"<RunWriter {self.path} {self._status} tags={self.n_tags}>"
