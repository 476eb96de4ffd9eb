"""The simulated tagger's time-tag files: ``FileWriter`` and ``FileReader``.

NOT Swabian's proprietary ``.ttbin``: the hbtscope time-tag format, version
:data:`FILE_FORMAT_VERSION`, documented in :class:`FileWriter`.
"""

from __future__ import annotations

import contextlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np

from hbtscope.drivers_sim.timetagger.base import _Measurement, _TaggerProxy, caught_up
from hbtscope.drivers_sim.timetagger.streams import TimeTagStreamBuffer, _EventBuffer

#: Version of the hbtscope time-tag file format written by :class:`FileWriter`.
FILE_FORMAT_VERSION = 1
FILE_MAGIC = b"HBTTAGS\x00"
_FILE_HEAD = struct.Struct("<8sHHI")  # magic, format version, flags (0), header JSON length
_REC_HEAD = struct.Struct("<4sQ")  # record tag, payload length
_REC_CRC = struct.Struct("<I")  # CRC-32 of the payload
_REC_TAGS, _REC_MARK, _REC_NEXT, _REC_END = b"TAGS", b"MARK", b"NEXT", b"END\x00"


class FileWriter(_Measurement):
    """Writes the tags of ``channels`` (and overflow events) to ``filename``.

    NOT Swabian's proprietary ``.ttbin``: the hbtscope time-tag format, version
    :data:`FILE_FORMAT_VERSION`, little-endian, no pickle:

    * file header: ``b"HBTTAGS\\0"``, uint16 format version, uint16 flags (0), uint32 length
      of a UTF-8 JSON object ``{"format": "hbtscope-timetags", "version", "channels",
      "configuration" (the tagger's settings), "file_index"}``;
    * then records: 4-byte tag, uint64 payload length, payload, uint32 CRC-32 of the payload.
      ``TAGS``: uint64 n, then int64 times[n], int32 channels[n], uint16 missed[n], uint8
      types[n] (:class:`TagType`); ``MARK``: a UTF-8 marker (``setMarker``); ``NEXT``: UTF-8
      name of the file that continues the stream (``split``); ``END``: uint64 number of
      events in the file, written when the file is closed cleanly.

    A record appears only when written whole, so a file cut short by a crash reads up to its
    last complete record. ``split()`` (or the automatic split at ``setMaxFileSize``) continues
    in ``<stem>.<i><suffix>`` next to the first file. Tags reach the file when the tagger
    catches up (any API call), and on ``stop()``.

    API completeness: used by no procedure, only by tests.
    """

    def __init__(self, tagger, filename: str, channels: list[int]):
        self._path = Path(filename)
        self._chan_list = [int(c) for c in channels]
        self._buf = _EventBuffer()
        self._file = None
        self._file_index = 0
        self._total_events = 0
        self._total_size = 0
        self._max_size = 1 << 30
        inner = tagger._tagger if isinstance(tagger, _TaggerProxy) else tagger
        self._config = json.loads(inner.getConfiguration())
        self._open(self._path)
        super().__init__(tagger, self._chan_list)

    # file handling
    def _open(self, path: Path) -> None:
        header = json.dumps(
            {
                "format": "hbtscope-timetags",
                "version": FILE_FORMAT_VERSION,
                "channels": self._chan_list,
                "configuration": self._config,
                "file_index": self._file_index,
            }
        ).encode()
        self._file = open(path, "wb")  # noqa: SIM115 - lives as long as the measurement
        self._file_events = 0
        self._write(_FILE_HEAD.pack(FILE_MAGIC, FILE_FORMAT_VERSION, 0, len(header)) + header)
        self._file.flush()

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._total_size += len(data)

    def _record(self, tag: bytes, payload: bytes) -> None:
        self._write(_REC_HEAD.pack(tag, len(payload)))
        self._write(payload)
        self._write(_REC_CRC.pack(zlib.crc32(payload)))

    def _close_file(self, next_name: str | None) -> None:
        if self._file is None:
            return
        if next_name is not None:
            self._record(_REC_NEXT, next_name.encode())
        self._record(_REC_END, struct.pack("<Q", self._file_events))
        self._file.close()
        self._file = None

    def _split_path(self) -> Path:
        return self._path.with_name(f"{self._path.stem}.{self._file_index}{self._path.suffix}")

    # measurement hooks
    def _process(self, ts, ch, t_from, t_to):
        self._buf.add_tags(ts, ch)

    def _marker(self, typ, t, ch, missed):
        super()._marker(typ, t, ch, missed)
        self._buf.add_event(typ, t, ch, missed)

    def _after_feed(self):
        self._flush_events()

    def _on_stop(self):
        self._flush_events()

    def _clear_data(self):
        return None

    def _flush_events(self) -> None:
        if self._file is None or self._buf.n == 0:
            return
        ts, ch, types, missed = self._buf.take()
        payload = b"".join(
            [
                struct.pack("<Q", ts.size),
                ts.astype("<i8").tobytes(),
                ch.astype("<i4").tobytes(),
                missed.astype("<u2").tobytes(),
                types.astype("u1").tobytes(),
            ]
        )
        self._record(_REC_TAGS, payload)
        self._file.flush()
        self._file_events += int(ts.size)
        self._total_events += int(ts.size)
        if self._file.tell() >= self._max_size:
            self.split()

    # Swabian API
    def split(self, new_filename: str = "") -> None:
        """Close the current file and continue in a new one (``NEXT`` record links them)."""
        with self._tagger._lock:
            self._tagger._catch_up()
            self._flush_events()
            self._file_index += 1
            path = Path(new_filename) if new_filename else self._split_path()
            self._close_file(path.name if path.parent == self._path.parent else str(path))
            self._open(path)

    def setMaxFileSize(self, max_file_size: int) -> None:  # noqa: N802
        self._max_size = int(max_file_size)

    def getMaxFileSize(self) -> int:  # noqa: N802
        return self._max_size

    @caught_up
    def getTotalEvents(self) -> int:  # noqa: N802
        return self._total_events

    @caught_up
    def getTotalSize(self) -> int:  # noqa: N802
        return self._total_size

    def setMarker(self, marker: str) -> None:  # noqa: N802
        with self._tagger._lock:
            self._tagger._catch_up()
            self._flush_events()
            if self._file is not None:
                self._record(_REC_MARK, str(marker).encode())
                self._file.flush()

    def close(self) -> None:
        """Stop and close the file cleanly (simulation helper; the SDK closes on delete)."""
        with contextlib.suppress(Exception):
            self.stop()
        self._close_file(None)

    def __del__(self):
        with contextlib.suppress(Exception):
            self._close_file(None)
        super().__del__()


class FileReader:
    """Reads files written by :class:`FileWriter` (hbtscope format, see there).

    ``getData(n_events)`` returns a :class:`TimeTagStreamBuffer` with the next up to
    ``n_events`` events (fewer only at the end); ``tStart``/``tGetData`` are the times of its
    first and last event. ``getConfiguration()`` returns the header's tagger configuration as
    a dict (the SDK returns JSON text). Split files are followed through their ``NEXT``
    records; several file names are read one after the other.

    API completeness: used by no procedure, only by tests.
    """

    def __init__(self, filenames):
        if isinstance(filenames, str | Path):
            filenames = [filenames]
        self._queue = [Path(f) for f in filenames]
        if not self._queue:
            raise ValueError("no file to read")
        self._file = None
        self._header: dict = {}
        self._pending: list[tuple] = []
        self._n_pending = 0
        self._last_marker = ""
        self._open(self._queue.pop(0))

    def _open(self, path: Path) -> None:
        f = open(path, "rb")  # noqa: SIM115 - closed at the end of the file
        head = f.read(_FILE_HEAD.size)
        if len(head) < _FILE_HEAD.size:
            f.close()
            raise OSError(f"{path}: not an hbtscope time-tag file (too short)")
        magic, version, _flags, n = _FILE_HEAD.unpack(head)
        if magic != FILE_MAGIC:
            f.close()
            raise OSError(f"{path}: not an hbtscope time-tag file (bad magic)")
        if version != FILE_FORMAT_VERSION:
            f.close()
            raise OSError(f"{path}: format version {version}, this reader reads 1")
        self._header = json.loads(f.read(n).decode())
        self._file, self._path = f, path

    def _read_record(self) -> bool:
        """Read the next record; False at the end of all files."""
        while self._file is not None:
            head = self._file.read(_REC_HEAD.size)
            if len(head) < _REC_HEAD.size:
                self._next_file(None)
                continue
            tag, n = _REC_HEAD.unpack(head)
            payload = self._file.read(n)
            crc = self._file.read(_REC_CRC.size)
            if len(payload) < n or len(crc) < _REC_CRC.size:
                self._next_file(None)  # cut short by a crash: stop at the last whole record
                continue
            if zlib.crc32(payload) != _REC_CRC.unpack(crc)[0]:
                raise OSError(f"{self._path}: corrupt record (CRC mismatch)")
            if tag == _REC_TAGS:
                (m,) = struct.unpack_from("<Q", payload)
                o = 8
                ts = np.frombuffer(payload, "<i8", m, o).astype(np.int64)
                o += 8 * m
                ch = np.frombuffer(payload, "<i4", m, o).astype(np.int32)
                o += 4 * m
                missed = np.frombuffer(payload, "<u2", m, o).astype(np.uint16)
                o += 2 * m
                types = np.frombuffer(payload, "u1", m, o).astype(np.uint8)
                if m:
                    self._pending.append((ts, ch, types, missed))
                    self._n_pending += m
                return True
            if tag == _REC_MARK:
                self._last_marker = payload.decode()
            elif tag == _REC_NEXT:
                self._next_file(payload.decode())
            elif tag == _REC_END:
                self._next_file(None)
            else:
                raise OSError(f"{self._path}: unknown record {tag!r}")
            return True
        return False

    def _next_file(self, name: str | None) -> None:
        self._file.close()
        self._file = None
        if name is not None:
            nxt = Path(name)
            if not nxt.is_absolute():
                nxt = self._path.parent / nxt
            self._queue = [q for q in self._queue if q.resolve() != nxt.resolve()]
            if nxt.exists():
                self._queue.insert(0, nxt)
        if self._queue:
            self._open(self._queue.pop(0))

    def hasData(self) -> bool:  # noqa: N802
        while self._n_pending == 0 and self._read_record():
            pass
        return self._n_pending > 0

    def getData(self, n_events: int) -> TimeTagStreamBuffer:  # noqa: N802
        n_events = int(n_events)
        while self._n_pending < n_events and self._read_record():
            pass
        parts, got = [], 0
        while self._pending and got < n_events:
            ts, ch, types, missed = self._pending[0]
            take = min(ts.size, n_events - got)
            parts.append((ts[:take], ch[:take], types[:take], missed[:take]))
            if take < ts.size:
                self._pending[0] = (ts[take:], ch[take:], types[take:], missed[take:])
            else:
                self._pending.pop(0)
            got += take
        self._n_pending -= got
        if parts:
            ts, ch, types, missed = (np.concatenate([p[i] for p in parts]) for i in range(4))
        else:
            ts, ch = np.empty(0, np.int64), np.empty(0, np.int32)
            types, missed = np.empty(0, np.uint8), np.empty(0, np.uint16)
        t0 = int(ts[0]) if ts.size else 0
        t1 = int(ts[-1]) if ts.size else 0
        return TimeTagStreamBuffer(ts, ch, types, missed, t0, t1)

    def getConfiguration(self) -> dict:  # noqa: N802
        return dict(self._header.get("configuration", {}))

    def getChannelList(self) -> list[int]:  # noqa: N802
        return list(self._header.get("channels", []))

    def getLastMarker(self) -> str:  # noqa: N802
        return self._last_marker
