"""Shared test helpers.

The default setup (``hbtscope/config/sim.yaml``) is a realistic microscope: an open-loop
piezo with hysteresis and creep, SPAD crosstalk, a delay mismatch and a non-linear laser
(docs/simulator.md). Tests whose subject is something else -- a flip mirror, the tagger API,
a fault -- and that need the focus exactly on an emitter for seconds use
:func:`ideal_stage_setup_path`: the same setup file with the stage's hysteresis and creep
set to 0. The imperfections themselves are tested in tests/drivers_sim/test_imperfections.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hbtscope.setup import default_setup_path


def sim_yaml_with(tmp_path: Path, simulation: dict | None = None, name: str = "sim.yaml") -> Path:
    """The default setup file with ``simulation:`` keys replaced (top level of the section)."""
    data = yaml.safe_load(default_setup_path().read_text())
    data["simulation"].update(simulation or {})
    out = tmp_path / name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


@pytest.fixture()
def ideal_stage_setup_path(tmp_path) -> Path:
    """sim.yaml with an ideal (closed-loop-like) stage: goes exactly where it is told. The
    text is edited, not re-dumped, so the stored setup-file text stays the bundled one but
    for these two numbers."""
    text = default_setup_path().read_text()
    for key in ("hysteresis_um", "creep_per_decade"):
        assert f"    {key}: " in text, key
    lines = [
        line.split(":")[0] + ": 0.0"
        if line.strip().startswith(("hysteresis_um:", "creep_per_decade:"))
        else line
        for line in text.splitlines()
    ]
    out = tmp_path / "sim_ideal_stage.yaml"
    out.write_text("\n".join(lines) + "\n")
    return out


def start_cli_run(tmp_path: Path, measurement: str, clock: str, *sets: str):
    """``hbtscope run MEASUREMENT`` in a subprocess on the default setup with its clock in
    ``clock`` mode, each ``name=value`` of ``sets`` given with ``--set``; (process, run dir)."""
    import subprocess
    import sys

    setup_file = tmp_path / f"{clock}.yaml"
    text = default_setup_path().read_text()
    assert "clock: {mode: fast}" in text
    setup_file.write_text(text.replace("clock: {mode: fast}", f"clock: {{mode: {clock}}}"))
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "hbtscope.cli", "run", measurement]
    cmd += ["--setup", str(setup_file), "--out", str(out)]
    for item in sets:
        cmd += ["--set", item]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc, out


# What reading a run file *while another process writes it* may raise, to be retried at the
# next poll: the writer is not in SWMR mode, so a read that meets a metadata update half
# written fails (h5py raises OSError, RuntimeError "bad object header version number" or
# ValueError), and a dataset may not exist yet (KeyError).
TORN_READ = (OSError, KeyError, RuntimeError, ValueError)


def wait_for_run(proc, out: Path, read, enough: float, timeout_s: float = 90.0) -> float:
    """Poll the run file under ``out`` *while another process writes it* until
    ``read(file) >= enough`` (a hang guard of ``timeout_s``, not a timing assertion); the last
    value read. A torn read (:data:`TORN_READ`) counts as 0 and is retried; the writer must
    stay alive meanwhile."""
    import time

    from hbtscope.storage import open_run

    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline and seen < enough:
        time.sleep(0.3)
        files = list(out.rglob("*.h5"))
        if files:
            try:
                with open_run(files[0]) as f:
                    seen = read(f)
            except TORN_READ:
                seen = 0
        assert proc.poll() is None, proc.stderr.read().decode()
    return seen


def wait_for_rows(proc, out: Path, dataset: str, n: int, timeout_s: float = 90.0) -> int:
    """:func:`wait_for_run` until ``dataset`` holds ``n`` rows; the rows seen."""
    seen = wait_for_run(proc, out, lambda f: f[dataset].shape[0], n, timeout_s)
    assert seen >= n, f"the run never flushed {n} rows of {dataset}"
    return int(seen)
