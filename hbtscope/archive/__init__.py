"""The run archive: an SQLite catalogue of run files, safe queries on it, and re-analysis of
many runs on dask.distributed (docs/archive.md).

* :class:`~hbtscope.archive.catalog.Catalog` -- ``update(dirs)`` indexes run files
  incrementally (new, changed, removed; files still being written and corrupt files are
  recorded with their reason), ``query(filters)`` returns the runs that pass a filter.
* :func:`~hbtscope.archive.filters.compile_filter` -- the filter grammar (``g2_0 < 0.2 and
  emitter == "scan-007"``) to parameterised SQL on a whitelist; never SQL from the user.
* :func:`~hbtscope.archive.reanalysis.reanalyse` -- every run through its measurement's
  ``analyse`` on a dask cluster (or serially), results into the catalogue only.
"""

from hbtscope.archive.catalog import Catalog, CatalogError, UpdateReport
from hbtscope.archive.filters import FilterError, compile_filter

__all__ = ["Catalog", "CatalogError", "FilterError", "UpdateReport", "compile_filter"]
