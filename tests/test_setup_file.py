"""Setup files: the bundled one works; every bad one gives one clear error with file and line."""

from __future__ import annotations

import re
import tracemalloc

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hbtscope
from hbtscope.config_schema import SetupFileError, load_setup_file, parse_setup_text
from hbtscope.setup import default_setup_path, open_setup

GOOD = default_setup_path().read_text()


def _write(tmp_path, text: str):
    p = tmp_path / "setup.yaml"
    p.write_text(text)
    return p


def _line_of(text: str, needle: str) -> int:
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_bundled_setup_opens_with_every_role():
    with hbtscope.open_setup() as setup:
        assert {"laser", "stage", "tagger", "led", "camera", "spectrometer"} <= set(
            setup.instruments
        )
        assert setup.is_simulated and setup.clock.is_virtual
        snap = setup.snapshot()
        assert snap["laser"]["max_power_W"] == 2e-6
        assert snap["tagger"]["serial"].startswith("SIM")
        assert snap["tagger"]["channels"][2]["trigger_level_V"] == 0.5
        assert setup.tagger.device.getDeadtime(2) == 6000
        assert snap["tagger"]["channels"][2]["trigger_level_V"] == 0.5
        assert setup.tagger.device.getDeadtime(2) == 6000


def test_missing_role_is_named(tmp_path):
    text = GOOD.replace("  daq:\n    driver: ScanClock", "  # no daq\n    driver: ScanClock", 1)
    text = text.replace(
        "  # no daq\n    driver: ScanClock             # hardware-timed raster; pixel markers on "
        "tagger channel 4\n    backend: sim\n    address: sim://Dev1\n",
        "",
    )
    with open_setup(_write(tmp_path, text)) as setup:
        with pytest.raises(LookupError, match=r"needs a 'daq'.*setup\.yaml"):
            _ = setup.daq


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("  stage:\n", "  stagee:\n", "stagee:", r"unknown role 'stagee'; allowed roles: laser"),
        (
            "  polariser:\n    driver: RotatingPolariser",
            "  polarizer:\n    driver: RotatingPolariser",
            "polarizer:",
            r"unknown role 'polarizer'; the role is spelt 'polariser' now; allowed roles:",
        ),
        (
            "driver: RotatingPolariser",
            "driver: RotatingPolarizer",
            "RotatingPolarizer",
            r"unknown driver 'RotatingPolarizer' for role 'polariser'; allowed: "
            r"RotatingPolariser, ThorlabsFW102C",
        ),
        (
            "driver: PiezoStage",
            "driver: NoSuchStage",
            "NoSuchStage",
            r"unknown driver 'NoSuchStage' for role 'stage'; allowed: PiezoStage",
        ),
        (
            "max_power_W: 2.0e-6",
            "max_power_W: 5.0",
            "max_power_W: 5.0",
            r"out of range: max_power_W: a number within \[1e-12, 0.01\] W",
        ),
        ("max_power_W: 2.0e-6", "max_power_W: lots", "max_power_W: lots", r"max_power_W"),
        (
            "x_um: {min: 0.0, max: 80.0}",
            "x_um: {min: 0.0, max: 180.0}",
            "max: 180.0",
            r"x_um: \{min: \.\.\., max: \.\.\.\} within \[0.0, 100.0\]",
        ),
        (
            "x_um: {min: 0.0, max: 80.0}",
            "x_um: {min: 90.0, max: 80.0}",
            "min: 90.0",
            r"min must be below max",
        ),
        ("seed: 20261121", "seed: -3", "seed: -3", r"allowed >= 0"),
        ("mode: fast", "mode: ludicrous", "ludicrous", r"must be one of"),
        (
            "tagger_channel: 2, efficiency: 0.6,",
            "tagger_channel: 2, efficiency: 1.6,",
            "efficiency: 1.6",
            r"allowed >= 0 and <= 1 \(got 1.6\)",
        ),
        (
            "backend: sim\n    address: sim://laser",
            "backend: real\n    address: sim://laser",
            "backend: real",
            r"has no 'real' backend; allowed: sim",
        ),
        (
            "2: {trigger_level_V: 0.5, deadtime_ps: 6000}",
            "2: {trigger_level_V: 0.5, deadtime_ps: 6000, event_divider: 0}",
            "event_divider: 0",
            r"event_divider must be in \[1, 65535\]",
        ),
        (
            "    settings:\n      rep_rate_Hz",
            "    colour: blue\n    settings:\n      rep_rate_Hz",
            "colour: blue",
            r"unknown field",
        ),
        # issue 16: NaN/inf/huge tagger dead times, shared channels, budgets, missing roles
        *(
            (
                "2: {trigger_level_V: 0.5, deadtime_ps: 6000}",
                f"2: {{trigger_level_V: 0.5, deadtime_ps: {bad}}}",
                f"deadtime_ps: {bad}",
                message,
            )
            for bad, message in (
                (".nan", r"deadtime_ps must be a finite number, not nan"),
                (".inf", r"deadtime_ps must be a finite number, not inf"),
                ("1.0e+300", r"deadtime_ps must be in \[0, 1000000000\] ps"),
            )
        ),
        (
            "spad_a: 2, spad_b: 3",
            "spad_a: 2, spad_b: 2",
            "spad_b: 2",
            r"spad_a and spad_b are both on tagger channel 2; each detector",
        ),
        (
            "{mode: fast}",
            "{mode: scaled, speed: 1.0e-9}",
            "speed: 1.0e-9",
            r"speed\): out of range: allowed >= 0.1",
        ),
        (
            "density_per_um2: 0.01, area_um: [40.0, 80.0, 0.0, 80.0]",
            "density_per_um2: 100.0, area_um: [0.0, 1000.0, 0.0, 1000.0]",
            "  populations:",
            r"populations\): the sample would hold about 1e\+08 emitters .* at most 100,000",
        ),
    ],
)
def test_bad_setup_names_file_line_and_allowed(tmp_path, old, new, needle, message):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    path = _write(tmp_path, text)
    with pytest.raises(SetupFileError) as info:
        open_setup(path)
    err = info.value
    assert str(path) in str(err)
    assert err.line == _line_of(text, needle), str(err)
    assert f"line {err.line}" in str(err)
    assert re.search(message, str(err)), str(err)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SetupFileError, match="not found"):
        open_setup(tmp_path / "nope.yaml")
    path = _write(tmp_path, "instruments:\n  laser: {driver: [\n")
    with pytest.raises(SetupFileError, match=r"line \d+.*not valid YAML"):
        open_setup(path)


def test_missing_required_limit(tmp_path):
    text = GOOD.replace(
        "      max_power_W: 2.0e-6         # hard limit enforced by the driver\n", ""
    )
    text = text.replace("    limits:\n    settings:", "    settings:")
    path = _write(tmp_path, text)
    with pytest.raises(SetupFileError, match="missing limit max_power_W") as info:
        open_setup(path)
    assert info.value.line is not None


# ---------------------------------------------------------------- hypothesis: random damage
_GOOD_DATA = yaml.safe_load(GOOD)

_PATHS = []


def _collect(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            _PATHS.append(path + (k,))
            _collect(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _collect(v, path + (i,))


_collect(_GOOD_DATA)

_junk = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.none(),
    st.booleans(),
)


def _set(data, path, value):
    node = data
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(_PATHS), value=_junk, drop=st.booleans())
def test_damaged_setup_either_opens_or_says_where(tmp_path, path, value, drop):
    """Any damage to a good file: it still opens, or fails with a SetupFileError naming the file
    and a line of that file — never a bare traceback from deep inside."""
    import copy

    data = copy.deepcopy(_GOOD_DATA)
    if drop and isinstance(path[-1], str):
        node = data
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]
    else:
        _set(data, path, value)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    p = tmp_path / "damaged.yaml"
    p.write_text(text)
    tracemalloc.start()
    try:
        setup = open_setup(p, data_dir=tmp_path / "runs")
    except SetupFileError as err:
        assert str(p) in str(err)
        n_lines = len(text.splitlines())
        assert err.line is None or 1 <= err.line <= n_lines
        assert err.line is not None or "not found" in str(err)
        assert err.problem
    else:
        setup.close()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    # issue 16, point 5: bounded memory whatever the damage (the populations' emitter budget,
    # the bounded reader), and opening a setup (good or bad) writes no run file
    assert peak < 512 * 2**20, f"{path} = {value!r}: {peak / 2**20:.0f} MB"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.h5"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(tmp_path, text):
    p = tmp_path / "junk.yaml"
    p.write_text(text)
    try:
        setup = open_setup(p)
    except SetupFileError as err:
        assert str(p) in str(err)
    else:  # pragma: no cover - random text is never a valid setup
        setup.close()
        raise AssertionError("random text accepted as a setup file")


def test_docs_list_every_driver():
    """docs/setup-file.md's driver table names every driver a setup file may use."""
    from pathlib import Path

    from hbtscope.setup import DRIVERS

    doc = (Path(__file__).parents[1] / "docs" / "setup-file.md").read_text()
    for role, name in DRIVERS:
        assert f"| {role} | `{name}` |" in doc, (role, name)


# --- bounded, strict reading (issue 16) -------------------------------------------------


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text.strip()
    return text


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        # the "billion laughs": nine levels of aliases would expand to 10**9 strings
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n",
            1,
            "anchors and aliases",
        ),
        ("instruments: {}\nname: *oops\n", 2, "anchors and aliases"),
        ("name: a\nname: b\ninstruments: {}\n", 2, r"key 'name' given twice \(first on line 1\)"),
        (
            "instruments:\n  laser: {driver: PulsedLaser}\n  laser: {driver: PulsedLaser}\n",
            3,
            "key 'laser' given twice",
        ),
        ("a: " + "[" * 200 + "]" * 200 + "\n", 1, "nested deeper than 32 levels"),
    ],
)
def test_setup_yaml_is_read_strictly_and_boundedly(text, line, match):
    with pytest.raises(SetupFileError, match=match) as info:
        parse_setup_text(text, "bad.yaml")
    message = _one_line(info)
    assert "bad.yaml" in message and f"line {line}" in message


def test_a_setup_file_that_is_no_regular_file_or_too_big_is_refused_at_once(tmp_path):
    import os

    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # opening it would block until someone writes
    with pytest.raises(SetupFileError, match="not a regular file"):
        load_setup_file(fifo)
    with pytest.raises(SetupFileError, match="not a regular file"):
        load_setup_file(tmp_path)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 2_000_000)
    with pytest.raises(SetupFileError, match="at most 1000000"):
        load_setup_file(big)


@pytest.mark.parametrize(
    ("line_no", "replacement", "where"),
    [
        (69, "  x_um: .nan", r"line 69 \(demo\.x_um\): Input should be a finite number"),
        (69, "  x_um: .inf", r"line 69 \(demo\.x_um\): Input should be a finite number"),
    ],
)
def test_nan_and_infinity_are_refused_in_a_setup_file(tmp_path, line_no, replacement, where):
    lines = default_setup_path().read_text().splitlines()
    assert lines[line_no - 1].strip().startswith("x_um:")  # the demo position
    lines[line_no - 1] = replacement
    bad = tmp_path / "bad.yaml"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(SetupFileError, match=where):
        load_setup_file(bad)


def test_an_unbounded_filter_band_is_refused(tmp_path):
    text = default_setup_path().read_text()
    assert "{name: spad_a, tagger_channel: 2, " in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text.replace(
            "{name: spad_a, tagger_channel: 2, ",
            "{name: spad_a, tagger_channel: 2, band_nm: [500, .inf], ",
        )
    )
    with pytest.raises(SetupFileError, match=r"band_nm\.1\): Input should be a finite number"):
        load_setup_file(bad)


def test_a_fault_on_a_role_this_setup_does_not_define_is_refused(tmp_path):
    data = yaml.safe_load(GOOD)
    del data["instruments"]["camera"]
    data["simulation"]["faults"] = [{"kind": "timeout", "role": "camera", "at_s": 1.0}]
    text = yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(SetupFileError) as info:
        open_setup(_write(tmp_path, text))
    assert info.value.line == _line_of(text, "role: camera"), str(info.value)
    assert re.search(
        r"faults\.0\.role\): a timeout fault on role 'camera', which this setup does not "
        r"define \(its roles: laser, stage",
        str(info.value),
    )
