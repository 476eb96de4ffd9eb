"""The simulation plugs in from outside: real drivers never import it, the Setup hands each
driver its twin's connection, and simulated devices are catalogued like real drivers."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hbtscope
from hbtscope.drivers_sim.registry import (
    NoTwinError,
    simulated_drivers,
    twin_connector,
    twins,
)
from hbtscope.drivers_sim.wire import SimAdapter
from hbtscope.instruments.registry import all_drivers
from hbtscope.setup import DRIVERS, default_setup_path

REPO = Path(__file__).resolve().parents[2]
INSTRUMENTS = REPO / "hbtscope" / "instruments"


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth (functions included), and every string
    handed to ``importlib.import_module``."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
            names += [a.value for a in node.args if isinstance(a, ast.Constant)]
    return names


def test_no_instruments_module_imports_the_simulation():
    offenders = {
        str(p.relative_to(REPO)): name
        for p in INSTRUMENTS.rglob("*.py")
        for name in _imports(p)
        if name.startswith("hbtscope.drivers_sim")
    }
    assert offenders == {}


def test_importing_every_driver_loads_nothing_of_the_simulation():
    """Behaviour, not text: in a fresh interpreter, collecting the real drivers' catalogue and
    importing every instruments module leaves ``hbtscope.drivers_sim`` unimported; and the
    Swabian driver does not need the time tagger role module (no import cycle)."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import hbtscope.instruments.swabian
        assert "hbtscope.instruments.timetagger" not in sys.modules
        import hbtscope.instruments as pkg
        from hbtscope.instruments.registry import all_drivers
        for m in pkgutil.walk_packages(pkg.__path__, "hbtscope.instruments."):
            importlib.import_module(m.name)
        assert len(all_drivers()) >= 12
        loaded = sorted(m for m in sys.modules if m.startswith("hbtscope.drivers_sim"))
        print(loaded)
        """
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_every_sim_backend_of_a_real_driver_has_a_twin_and_every_twin_a_driver():
    real = all_drivers()
    with_sim = {name for (_, name), info in real.items() if "sim" in info.backends}
    assert with_sim == set(twins())


def test_simulated_devices_and_real_drivers_are_one_catalogue_found_the_same_way():
    simulated, real = simulated_drivers(), all_drivers()
    assert simulated and real and not set(simulated) & set(real)
    assert DRIVERS == {**simulated, **real}
    assert all(info.backends == ("sim",) for info in simulated.values())


def test_a_new_driver_module_is_found_without_editing_anything(tmp_path, monkeypatch):
    """A package of driver modules (as instruments.drivers and drivers_sim.devices are): a
    module with ``DRIVERS`` is catalogued, a ``_helper`` module is not."""
    pkg = tmp_path / "lab_drivers_tmp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "shutter.py").write_text(
        "from hbtscope.instruments.registry import DriverInfo\n"
        "DRIVERS = [DriverInfo('led', 'Shutter', ('real',), (), lambda s, i, c: None, 'x')]\n"
    )
    (pkg / "_helper.py").write_text("raise ImportError('a helper is not a driver module')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert list(all_drivers("lab_drivers_tmp")) == [("led", "Shutter")]


def test_a_driver_without_twin_or_world_is_refused_clearly():
    with pytest.raises(NoTwinError, match="NoSuchDriver has no simulated twin"):
        twin_connector("NoSuchDriver", world=object())
    with pytest.raises(NoTwinError, match="'simulation:' section"):
        twin_connector("ThorlabsPM100", world=None)


def _with_role(text: str, role: str, block: str) -> str:
    import re

    pattern = re.compile(rf"^  {role}:[^\n]*\n(?:(?:    [^\n]*)?\n)*", re.M)
    assert pattern.search(text), role
    return pattern.sub(lambda m: block, text, count=1)


def test_reconnect_on_sim_opens_a_new_session_on_the_same_twin(tmp_path):
    """The session factory from the twin registry is the driver's ``reopen``: a reconnection
    gives a fresh adapter on the same simulated device, which kept its state."""
    block = (
        "  powermeter:\n    driver: ThorlabsPM100\n    backend: sim\n"
        "    address: USB0::0x1313::0x8072::P2000001::INSTR\n"
    )
    path = tmp_path / "pm.yaml"
    path.write_text(_with_role(default_setup_path().read_text(), "powermeter", block))
    with hbtscope.open_setup(path, data_dir=tmp_path) as setup:
        pm = setup.powermeter
        # no wavelength in the setup file: the simulated lab's meter is set to its laser
        assert pm.wavelength_nm == setup.world.laser.wavelength_nm
        pm.wavelength_nm = 633.0
        old = pm.inst.adapter
        pm.reconnect()
        new = pm.inst.adapter
        assert isinstance(new, SimAdapter) and new is not old and old.closed
        assert new.twin is old.twin
        assert pm.wavelength_nm == 633.0
