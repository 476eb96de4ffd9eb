"""Issue 16 replayed through the command line: every bad input its report lists gives one
line on stderr naming the file (line, field) and what is allowed, exit status 2, no run file,
and a bounded peak allocation (tracemalloc, which numpy reports to: < 1 GB) -- no traceback,
no hang (each case returns; the figures of a run of this file are in the issue's note).

The cases run in this process through :func:`hbtscope.cli.main`, as the user's shell would
run them; the finer checks of each (the hardware untouched, hypothesis over all parameters,
PTU headers and damaged setups) are in test_bad_parameters_property.py, test_setup_file.py
and storage/test_ptu_import.py.
"""

from __future__ import annotations

import os
import re
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from hbtscope.cli import main
from hbtscope.setup import default_setup_path

REPO = Path(__file__).resolve().parents[1]
GOOD = default_setup_path().read_text()
T3 = REPO / "tests" / "data" / "picoquant" / "hydraharp" / "v20_t3.ptu"

ALIAS_BOMB = """a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
"""


def _setup(tmp_path: Path, text: str) -> str:
    p = tmp_path / "setup.yaml"
    p.write_text(text)
    return str(p)


def _edit(old: str, new: str) -> Callable[[Path], str]:
    def make(tmp_path: Path) -> str:
        assert old in GOOD, old
        return _setup(tmp_path, GOOD.replace(old, new, 1))

    return make


def _ptu_with(ident: str, value: float) -> Callable[[Path], str]:
    def make(tmp_path: Path) -> str:
        data = T3.read_bytes()
        at = data.index(ident.encode().ljust(32, b"\0")) + 40
        p = tmp_path / "edited.ptu"
        p.write_bytes(data[:at] + struct.pack("<d", value) + data[at + 8 :])
        return str(p)

    return make


def _fifo(tmp_path: Path) -> str:
    p = tmp_path / "fifo.yaml"
    os.mkfifo(p)
    return str(p)


def _nested(tmp_path: Path) -> str:
    return _setup(tmp_path, GOOD + "extra: " + "[" * 200 + "]" * 200 + "\n")


def _run(*sets: str) -> Callable[[Path], list[str]]:
    return lambda tmp_path: ["run", "g2", *[a for s in sets for a in ("--set", s)]]


def _run_with_setup(make: Callable[[Path], str]) -> Callable[[Path], list[str]]:
    return lambda tmp_path: ["run", "g2", "--setup", make(tmp_path)]


#: (case, argv maker, what the one line must say)
CASES = [
    (
        "power above the setup limit with a stage move",
        _run("laser_power_W=5e-3", "x_um=20", "y_um=10"),
        r"laser_power_W = 0.005 exceeds the setup's max_power_W = 2e-06 W .*nothing was moved",
    ),
    ("NaN duration", _run("duration_s=nan"), r"duration_s = nan is not a finite number"),
    ("15 GiB histogram", _run("bin_width_ps=1", "max_lag_ps=1000000000"), r"GiB\); at most"),
    (
        "stage target outside the travel",
        _run("x_um=500"),
        r"allowed \[-?[0-9.e+]+, [0-9.e+]+\] um|outside the stage travel",
    ),
    ("YAML alias bomb", _run_with_setup(lambda t: _setup(t, ALIAS_BOMB)), r"alias"),
    (
        "alias bomb in a limit",
        _run_with_setup(_edit("max_power_W: 2.0e-6", "max_power_W: &x 2.0e-6\n  other: *x")),
        r"alias",
    ),
    ("/dev/zero as the setup", _run_with_setup(lambda t: "/dev/zero"), r"not a regular file"),
    ("a FIFO as the setup", _run_with_setup(_fifo), r"not a regular file"),
    ("200-deep nesting", _run_with_setup(_nested), r"nest"),
    (
        "dense population over a large area",
        _run_with_setup(
            _edit(
                "density_per_um2: 0.01, area_um: [40.0, 80.0, 0.0, 80.0]",
                "density_per_um2: 100.0, area_um: [0.0, 1000.0, 0.0, 1000.0]",
            )
        ),
        r"about 1e\+08 emitters",
    ),
    (
        "tiny clock speed",
        _run_with_setup(_edit("{mode: fast}", "{mode: scaled, speed: 1.0e-9}")),
        r"speed\): out of range: allowed >= 0.1",
    ),
    (
        "infinite tagger dead time",
        _run_with_setup(_edit("deadtime_ps: 6000}    # SPAD A", "deadtime_ps: .inf}")),
        r"deadtime_ps must be a finite number",
    ),
    (
        "NaN tagger dead time",
        _run_with_setup(_edit("deadtime_ps: 6000}    # SPAD A", "deadtime_ps: .nan}")),
        r"deadtime_ps must be a finite number",
    ),
    (
        "duplicate role",
        _run_with_setup(
            lambda t: _setup(
                t, GOOD.replace("instruments:\n", "instruments:\n  laser: {driver: X}\n", 1)
            )
        ),
        r"twice|duplicate",
    ),
    (
        "both SPADs on one channel",
        _run_with_setup(_edit("spad_a: 2, spad_b: 3", "spad_a: 2, spad_b: 2")),
        r"both on tagger channel 2",
    ),
    (
        "fault on a role that does not exist",
        _run_with_setup(
            _edit(
                "simulation:\n", "simulation:\n  faults: [{kind: timeout, role: pump, at_s: 1.0}]\n"
            )
        ),
        r"role",
    ),
    (
        "NaN demo position",
        _run_with_setup(
            _edit("looks for its emitter\n  x_um: 10.0", "looks for its emitter\n  x_um: .nan")
        ),
        r"demo.x_um\): .*finite",
    ),
    (
        "PTU resolution of 1 s",
        lambda t: ["import", _ptu_with("MeasDesc_Resolution", 1.0)(t)],
        r"not a possible TCSPC bin",
    ),
    (
        "PTU resolution 1e300",
        lambda t: ["import", _ptu_with("MeasDesc_Resolution", 1e300)(t)],
        r"MeasDesc_Resolution = inf ps",
    ),
    (
        "data directory under a file",
        lambda t: ["run", "g2", "--out", str(_setup(t, "x")) + "/runs"],
        r"data directory .*runs",
    ),
]


@pytest.mark.parametrize(("case", "make_argv", "says"), CASES, ids=[c[0] for c in CASES])
def test_each_bad_input_gives_one_clear_line_and_leaves_nothing(
    tmp_path, monkeypatch, capsys, case, make_argv, says
):
    monkeypatch.chdir(tmp_path)  # the default data_dir is relative: keep it in tmp_path
    argv = make_argv(tmp_path)
    if "--out" not in argv and argv[0] == "run":
        argv += ["--out", str(tmp_path / "runs")]
    if argv[0] == "import":
        argv += ["--out", str(tmp_path / "runs")]
    tracemalloc.start()
    try:
        rc = main(argv)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err.strip()
    assert rc == 2, (case, rc, err)
    assert len(err.splitlines()) == 1 and err.startswith("hbtscope: "), err
    assert not re.match(r"hbtscope: [A-Z]\w*(Error|Exception):", err), err  # no bare exception
    assert re.search(says, err), err
    assert not list(tmp_path.rglob("*.h5")), f"{case}: a run file was left"
    assert peak < 2**30, f"{case}: {peak / 2**20:.0f} MB"
