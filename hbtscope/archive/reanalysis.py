"""Re-analysis of an archive on dask.distributed: every run through its measurement's
``analyse`` (:func:`hbtscope.reanalyse.analyse_run`), results into the catalogue only.

Workers open the run files by path (they must see the same file system: a local cluster, or
a cluster on a shared disk); only the path goes to a worker and only scalars come back. A
file that fails (corrupt, unsupported, nothing to analyse) is an :class:`Outcome` with its
reason and never stops the others. The run files are never written. :func:`analyse_one` is
the unit of work; mapping it serially (``client=None``) gives the same outcomes as on any
cluster.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hbtscope.archive.extract import NOT_SCALAR, STILL_BEING_WRITTEN, scalar
from hbtscope.reanalyse import RunFileError, analyse_run
from hbtscope.storage.runfile import writer_alive

__all__ = ["Outcome", "analyse_batch", "analyse_one", "close_client", "open_client", "reanalyse"]


@dataclass
class Outcome:
    """The re-analysis of one run file: ``ok`` and its scalar ``values``, or the ``reason``."""

    path: str
    ok: bool
    reason: str = ""
    values: dict[str, float | str | None] = field(default_factory=dict)

    def same_as(self, other: Outcome) -> bool:
        """Equal outcomes, NaN equal to NaN."""
        if (self.path, self.ok, self.reason) != (other.path, other.ok, other.reason):
            return False
        if self.values.keys() != other.values.keys():
            return False
        for k, a in self.values.items():
            b = other.values[k]
            both_nan = (
                isinstance(a, float) and isinstance(b, float) and math.isnan(a) and (math.isnan(b))
            )
            if a != b and not both_nan:
                return False
        return True


def analyse_one(path: str) -> Outcome:
    """Re-analyse one run file (runs on a worker); never raises for a bad file."""
    try:
        if writer_alive(path):
            return Outcome(path, False, STILL_BEING_WRITTEN)
        result = analyse_run(path)
    except RunFileError as exc:
        return Outcome(path, False, str(exc))
    except Exception as exc:  # noqa: BLE001 - any failure is this file's, never the archive's
        text = " ".join(str(exc).split())
        return Outcome(path, False, f"{path}: {type(exc).__name__}: {text}")
    result.pop("arrays", None)
    values: dict[str, Any] = {}
    for key, value in result.items():
        if key in ("file",):
            continue
        v = scalar(value)
        if v is not NOT_SCALAR:
            values[key] = v
    return Outcome(path, True, "", values)


def open_client(
    workers: int | None = None, scheduler: str | None = None, *, processes: bool = True
):
    """A dask ``Client``: on the scheduler at ``scheduler`` (``tcp://host:8786``), else on a new
    ``LocalCluster`` of ``workers`` workers (one thread each). Close it when done."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="20s")
    cluster = LocalCluster(
        n_workers=workers or 1,
        threads_per_worker=1,
        processes=processes,
        dashboard_address=None,
    )
    client = Client(cluster)
    client._hbtscope_cluster = cluster  # closed with the client (close_client)
    return client


def close_client(client) -> None:
    """Close a client from :func:`open_client` (and its local cluster)."""
    cluster = getattr(client, "_hbtscope_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def analyse_batch(paths: list[str]) -> list[Outcome]:
    """:func:`analyse_one` on a few files in one task (less scheduling per file)."""
    return [analyse_one(p) for p in paths]


def batch_size_for(n_paths: int, n_workers: int) -> int:
    """Files per task: about four tasks per worker, at most 16 files each (a progress bar that
    still moves, a lost worker that costs little)."""
    return max(1, min(16, n_paths // max(1, 4 * n_workers)))


def reanalyse(
    paths: Iterable[str],
    client=None,
    *,
    on_outcome: Callable[[Outcome], None] | None = None,
    batch_size: int | None = None,
) -> list[Outcome]:
    """Every path through :func:`analyse_one`, on ``client`` (a dask Client) or serially;
    ``on_outcome`` is called as each finishes (progress, the catalogue). On a client the files
    go in tasks of ``batch_size`` (default :func:`batch_size_for`). Sorted by path."""
    paths = list(paths)
    outcomes: list[Outcome] = []

    def done(o: Outcome) -> None:
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(o)

    if client is None:
        for p in paths:
            done(analyse_one(p))
        return sorted(outcomes, key=lambda o: o.path)
    from distributed import as_completed

    n_workers = len(client.scheduler_info().get("workers", {})) or 1
    size = batch_size or batch_size_for(len(paths), n_workers)
    batches = [paths[i : i + size] for i in range(0, len(paths), size)]
    futures = client.map(analyse_batch, batches, pure=False)
    index = {f.key: i for i, f in enumerate(futures)}
    for fut in as_completed(futures):
        try:
            result = fut.result()
        except Exception as exc:  # noqa: BLE001 - a worker lost: these files' outcome
            result = [
                Outcome(p, False, f"{p}: worker failed ({type(exc).__name__}: {exc})")
                for p in batches[index[fut.key]]
            ]
        for o in result:
            done(o)
    return sorted(outcomes, key=lambda o: o.path)
