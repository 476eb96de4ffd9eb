"""A synthetic archive made by the simulator: g2 runs at a few positions (emitters of different
purity and an empty spot) and two saturation sweeps, written once per test session; tests
that change files work on a copy (:func:`copy_archive`)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import h5py
import pytest

from hbtscope.storage import open_run, read_parameters, read_values

#: (x_um, y_um) of the g2 runs: three emitters of rising g2(0), a double emitter, nothing
POSITIONS = ((10.0, 10.0), (20.0, 10.0), (30.0, 10.0), (10.0, 20.0), (50.0, 50.0))
RUNS_PER_POSITION = 4


@dataclass
class ArchiveRun:
    path: Path
    measurement: str
    emitter: str
    parameters: dict
    results: dict  # scalars of analysis/<name>, as stored by the run itself
    truth: dict


@dataclass
class Archive:
    root: Path
    runs: list[ArchiveRun]


def read_back(path: Path) -> ArchiveRun:
    """A run as its own file says (the expected side of the catalogue tests)."""
    with open_run(path) as f:
        params, _ = read_parameters(f)
        results: dict = {}
        for name in sorted(f["analysis"]):
            results.update(
                {
                    k: v
                    for k, v in read_values(f["analysis"][name]).items()
                    if k not in results
                    and getattr(v, "ndim", 0) == 0
                    and not isinstance(v, list | dict)
                }
            )
        truth = read_values(f["truth"]) if isinstance(f.get("truth"), h5py.Group) else {}
        return ArchiveRun(
            path, str(f.attrs["procedure"]), str(params.get("emitter", "")), params, results, truth
        )


@pytest.fixture(scope="session")
def archive(tmp_path_factory) -> Archive:
    from hbtscope import open_setup
    from hbtscope.procedures.g2 import G2Measurement
    from hbtscope.procedures.runner import run_procedure
    from hbtscope.procedures.saturation import SaturationSweep

    root = tmp_path_factory.mktemp("archive") / "data"
    paths = []
    with open_setup(data_dir=root) as setup:
        for i, (x, y) in enumerate(POSITIONS):
            emitter = f"scan-{i:03d}"
            if i < 2:
                sweep = SaturationSweep(
                    x_um=x,
                    y_um=y,
                    emitter=emitter,
                    n_powers=5,
                    acquisition_s=0.05,
                    background_s=0.05,
                )
                paths.append(run_procedure(sweep, setup, root, figure=False).path)
            for _ in range(RUNS_PER_POSITION):
                g2 = G2Measurement(duration_s=0.12, x_um=x, y_um=y, emitter=emitter)
                paths.append(run_procedure(g2, setup, root, figure=False).path)
    return Archive(root, [read_back(p) for p in paths])


def copy_archive(archive: Archive, dest: Path) -> Path:
    """A copy of the archive's files (a test may change or break them)."""
    out = dest / "data"
    shutil.copytree(archive.root, out)
    return out
