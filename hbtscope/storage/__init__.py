"""Run files: one self-describing HDF5 file per measurement run (see docs/run-file-layout.md).

Write with :class:`RunWriter`, read with :func:`open_run` (also while the file is being written
or after its writer was killed), ask :func:`run_status` how a run ended.
"""

from hbtscope.storage import layout
from hbtscope.storage.layout import FORMAT_VERSION, STATUSES
from hbtscope.storage.photon_hdf5 import export_photon_hdf5
from hbtscope.storage.ptu_import import PtuImportError, import_ptu
from hbtscope.storage.runfile import (
    RunWriter,
    mark_interrupted,
    new_run_path,
    open_run,
    read_attrs,
    read_parameters,
    read_values,
    run_status,
    writer_alive,
)

__all__ = [
    "PtuImportError",
    "export_photon_hdf5",
    "import_ptu",
    "FORMAT_VERSION",
    "STATUSES",
    "RunWriter",
    "layout",
    "mark_interrupted",
    "new_run_path",
    "open_run",
    "read_attrs",
    "read_parameters",
    "read_values",
    "run_status",
    "writer_alive",
]
