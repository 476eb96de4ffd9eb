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
