"""The layers of docs/architecture.md hold in the imports: import-linter's contracts in
pyproject.toml (``[tool.importlinter]``) pass on the package, and they do fail when a forbidden
import is added (checked once on a copy of the package, so the contracts cannot be vacuous).

Function-level (lazy) imports count: grimp reads every import statement of a module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter")

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_IDS = (
    "analysis-pure",
    "storage-no-instruments",
    "instruments-no-sim",
    "sim-plugs-in-below",
    "procedures-no-gui",
    "nothing-imports-cli",
    "archive-no-instruments",
    "only-cli-imports-gui",
    "gui-no-cli",
    "no-cycles",
)


def _lint(project: Path) -> subprocess.CompletedProcess:
    """Run ``lint-imports`` on the package ``project/hbtscope`` with ``project/pyproject.toml``.

    The package is found through ``PYTHONPATH=project`` ahead of any installed copy.
    """
    env = {**os.environ, "PYTHONPATH": str(project), "NO_COLOR": "1"}
    code = "import sys; from importlinter.cli import lint_imports_command; lint_imports_command()"
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache", str(project / "pyproject.toml")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_project(dest: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    shutil.copytree(
        ROOT / "hbtscope",
        dest / "hbtscope",
        ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"),
    )
    return dest


def test_every_contract_is_declared() -> None:
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert cfg["root_package"] == "hbtscope"
    assert {c["id"] for c in cfg["contracts"]} == set(CONTRACT_IDS)


def test_layer_contracts_hold() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout or "broken" not in result.stdout.split("Contracts:")[-1]


@pytest.mark.parametrize(
    ("module", "line", "contract_name"),
    [
        # the analysis layer reaching for file I/O
        ("analysis/g2.py", "import h5py  # noqa", "analysis imports only numpy, scipy and numba"),
        # a real driver importing the simulator, lazily
        (
            "instruments/base.py",
            "def _twin():\n    import hbtscope.drivers_sim.wire  # noqa\n",
            "real drivers and role interfaces know nothing of the simulator",
        ),
        # the run archive reaching for an instrument
        (
            "archive/catalog.py",
            "import hbtscope.instruments.base  # noqa",
            "the run archive (catalogue, re-analysis) reads run files",
        ),
        # the event stream (below everything) reaching for the dashboard
        (
            "events.py",
            "import hbtscope.gui  # noqa",
            "nothing but the command line imports the dashboard",
        ),
        # the dashboard calling into the command line, lazily
        (
            "gui/app.py",
            "def _cli():\n    import hbtscope.cli  # noqa\n",
            "the dashboard imports no command line",
        ),
        # a cycle: the clock (imported by the setup) importing the setup back
        ("clock.py", "import hbtscope.setup  # noqa", "no import cycles"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(
    tmp_path: Path, module: str, line: str, contract_name: str
) -> None:
    project = _copy_project(tmp_path)
    target = project / "hbtscope" / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    result = _lint(project)
    assert result.returncode != 0, result.stdout[-3000:]
    broken = result.stdout.split("Broken contracts")[-1]
    assert contract_name in broken, result.stdout[-3000:]
