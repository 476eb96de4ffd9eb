"""Names and constants of the run-file layout (see ``docs/run-file-layout.md``).

Everything a reader needs to know about where things live in a run file is spelled out here,
so that readers (analysis, GUI, CLI) can import the names instead of repeating string literals.
"""

from __future__ import annotations

FORMAT_VERSION = "1.0"

# --- file format ---------------------------------------------------------------------------
#: HDF5 library-version bounds used by the writer. ``v108`` gives a version-2 superblock, which
#: has no "file consistency flags": a file left behind by a killed writer can be opened by a
#: plain ``h5py.File(path, "r")`` (a ``latest``/``v110`` file would need ``h5clear`` first).
LIBVER = ("v108", "v108")

# --- root attributes -------------------------------------------------------------------------
ATTR_FORMAT_VERSION = "format_version"
ATTR_HBTSCOPE_VERSION = "hbtscope_version"
ATTR_PROCEDURE = "procedure"
ATTR_UUID = "uuid"
ATTR_START_TIME = "start_time"
ATTR_END_TIME = "end_time"
ATTR_STATUS = "status"
ATTR_QUEUE_ITEM_ID = "queue_item_id"
ATTR_ERROR = "error"

ROOT_ATTRS = (
    ATTR_FORMAT_VERSION,
    ATTR_HBTSCOPE_VERSION,
    ATTR_PROCEDURE,
    ATTR_UUID,
    ATTR_START_TIME,
    ATTR_END_TIME,
    ATTR_STATUS,
    ATTR_QUEUE_ITEM_ID,
    ATTR_ERROR,
)

# --- run status ------------------------------------------------------------------------------
STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUS_ABORTED = "aborted"
STATUS_FAILED = "failed"
#: Never written while recording: reported by ``run_status`` for a file whose status attribute
#: is still ``running`` but that no live writer holds (the writer crashed or was killed).
STATUS_INTERRUPTED = "interrupted"
STATUSES = (STATUS_RUNNING, STATUS_FINISHED, STATUS_ABORTED, STATUS_FAILED, STATUS_INTERRUPTED)
#: Statuses ``RunWriter.finish`` accepts.
FINAL_STATUSES = (STATUS_FINISHED, STATUS_ABORTED, STATUS_FAILED, STATUS_INTERRUPTED)

# --- groups ----------------------------------------------------------------------------------
PARAMETERS = "parameters"
SETUP = "setup"
SNAPSHOT = "setup/snapshot"  # instruments when the measurement starts (after its set-up)
SNAPSHOT_END = "setup/snapshot_end"  # instruments when the measurement ends (before safe state)
CALIBRATIONS = "setup/calibrations"
DATA = "data"
TTTR = "tttr"
ANALYSIS = "analysis"
TRUTH = "truth"

# --- members ---------------------------------------------------------------------------------
SETUP_FILE = "setup/setup_file"  # scalar UTF-8 string dataset: the setup YAML text
ATTR_SETUP_FILE_PATH = "setup_file_path"  # attribute of group setup/
ATTR_UNITS = "units"  # parameters/: JSON {name: unit}; data arrays: plain unit string
TTTR_TIMESTAMPS = "tttr/timestamps"  # int64, picoseconds
TTTR_CHANNELS = "tttr/channels"  # int32
ATTR_RESOLUTION_PS = "resolution_ps"  # attribute of group tttr/
ATTR_CHANNEL_MAP = "channel_map"  # attribute of group tttr/, JSON object
ERR_SUFFIX = "_err"  # analysis/<name>: uncertainty of value <key> is stored as <key>_err

#: Attribute (on any group or dataset) listing, as a JSON array, the names of the attributes of
#: that object whose values are JSON text (nested dicts/lists, None, integers beyond 64 bits,
#: strings with NUL characters). ``read_attrs`` decodes exactly those; other strings stay text.
JSON_KEYS_ATTR = "_json_keys"

# --- dtypes and sizes ------------------------------------------------------------------------
TIMESTAMP_DTYPE = "<i8"
CHANNEL_DTYPE = "<i4"
#: Elements per HDF5 chunk of the tttr datasets (8 MiB of timestamps, 4 MiB of channels).
TTTR_CHUNK = 1 << 20
#: Arrays under data/, analysis/, truth/ at least this big are candidates for compression.
COMPRESS_MIN_BYTES = 64 * 1024
#: ... and are gzip-compressed only if a zlib trial on a sample shrinks it below this ratio.
COMPRESS_MAX_RATIO = 0.8
GZIP_LEVEL = 4
#: HDF5 corrupts an object header when an attribute name reaches 64 KiB; stay far below.
MAX_NAME_BYTES = 4096

#: Suffix of the side-car file written only when the OS cannot lock the run file itself.
LOCK_SUFFIX = ".lock"
