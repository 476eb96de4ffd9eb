"""Run files: layout, round trips, reading while writing, how a run ends."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hbtscope.storage import (
    FORMAT_VERSION,
    RunWriter,
    layout,
    mark_interrupted,
    new_run_path,
    open_run,
    read_attrs,
    read_parameters,
    read_values,
    run_status,
    writer_alive,
)

CHUNK = layout.TTTR_CHUNK


def same(a, b) -> bool:
    """Equality that treats NaN as equal to NaN and tuples as lists (JSON has no tuples)."""
    if isinstance(a, float | np.floating) and isinstance(b, float | np.floating):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _check_scalar(got, want):
    """A top-level value read back: right HDF5/numpy type and value."""
    if isinstance(want, bool):
        assert isinstance(got, np.bool_) and bool(got) is want
    elif isinstance(want, int):
        if -(2**63) <= want < 2**63:
            assert isinstance(got, np.int64)
        elif want < 2**64 and want >= 0:
            assert isinstance(got, np.uint64)
        else:
            assert isinstance(got, int)  # JSON-encoded, arbitrary size
        assert int(got) == want
    elif isinstance(want, float):
        assert isinstance(got, np.float64)
        assert same(float(got), want)
    elif isinstance(want, str):
        assert isinstance(got, str) and got == want
    else:  # None, nested dicts / lists: JSON
        assert same(got, want), (got, want)


def _writer(path, **kw):
    kw.setdefault("flush_interval_s", 1e9)
    return RunWriter(path, kw.pop("procedure", "test_proc"), kw.pop("parameters", {}), **kw)


# --------------------------------------------------------------------------------------------
# layout round trip
# --------------------------------------------------------------------------------------------


def test_full_layout_round_trip(tmp_path):
    path = new_run_path(tmp_path, "g2")
    params = {"duration_s": 2.5, "n": 3, "label": "ünïcode ✓", "flag": False, "empty": ""}
    snapshot = {
        "laser": {"power_W": 1e-3, "enabled": True, "modes": ["cw", "pulsed"], "cfg": {"a": 1}},
        "tagger": {"channels": np.array([1, 2]), "name": "sim"},
        "loose_value": 5,
    }
    calibrations = {"apd_a": {"efficiency": 0.65, "dead_time_ps": 22000}}
    setup_text = "laser:\n  power: 1 mW  # ✓\n"
    with RunWriter(
        path,
        "g2",
        params,
        units={"duration_s": "s"},
        setup_text=setup_text,
        setup_path="/etc/setup.yaml",
        snapshot=snapshot,
        calibrations=calibrations,
        queue_item_id="q-17",
        hbtscope_version="9.9.9",
    ) as w:
        assert w.path == path
        assert w.uuid[:8] == path.stem[-8:]  # the file name's uuid8 is the run's uuid
        w.set_tttr_info(resolution_ps=4.0, channel_map={"1": "apd_a", "2": "apd_b"})
        w.append_tags(np.arange(10, dtype=np.int64) * 1000, np.arange(10) % 2 + 1)
        img = np.arange(12, dtype=np.float32).reshape(3, 4)
        w.write_array("scan/image", img, units="counts", x_um=[0, 1, 2, 3], note="raw")
        w.write_array("spectrum", np.linspace(0, 1, 50_000), units="nm")
        w.write_analysis(
            "fit",
            {"g2_0": 0.12, "curve": np.ones(4), "model": "3-level"},
            errors={"g2_0": 0.01, "curve": np.full(4, 0.1)},
            converged=True,
        )
        w.write_truth({"g2_0": 0.1, "emitters": [{"x": 1.0}], "map": np.eye(2)})

    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["format_version"] == FORMAT_VERSION == "1.0"
        assert a["hbtscope_version"] == "9.9.9"
        assert a["procedure"] == "g2"
        assert uuid.UUID(a["uuid"]).version == 4 and a["uuid"] == w.uuid
        start = dt.datetime.fromisoformat(a["start_time"])
        end = dt.datetime.fromisoformat(a["end_time"])
        assert start.utcoffset() == end.utcoffset() == dt.timedelta(0)
        assert a["status"] == "finished" and a["error"] == "" and a["queue_item_id"] == "q-17"
        assert set(layout.ROOT_ATTRS) == set(a.keys())

        got_params, units = read_parameters(f)
        assert units == {"duration_s": "s"}
        assert json.loads(f["parameters"].attrs["units"]) == {"duration_s": "s"}
        assert got_params.keys() == params.keys()
        for k, v in params.items():
            _check_scalar(got_params[k], v)

        assert f["setup/setup_file"].asstr()[()] == setup_text
        assert f["setup"].attrs["setup_file_path"] == "/etc/setup.yaml"
        laser = read_values(f["setup/snapshot/laser"])
        assert laser == {
            "power_W": 1e-3,
            "enabled": True,
            "modes": ["cw", "pulsed"],
            "cfg": {"a": 1},
        }
        assert isinstance(f["setup/snapshot/laser"].attrs["cfg"], str)  # JSON text on disk
        tagger = read_values(f["setup/snapshot/tagger"])
        np.testing.assert_array_equal(tagger["channels"], [1, 2])
        assert read_attrs(f["setup/snapshot"]) == {"loose_value": 5}
        assert read_values(f["setup/calibrations/apd_a"]) == calibrations["apd_a"]

        tttr = f["tttr"]
        assert tttr["timestamps"].dtype == np.int64 and tttr["channels"].dtype == np.int32
        assert tttr["timestamps"].maxshape == (None,) and tttr["channels"].maxshape == (None,)
        assert tttr["timestamps"].chunks == (CHUNK,)
        assert tttr["timestamps"].compression is None
        np.testing.assert_array_equal(tttr["timestamps"][:], np.arange(10) * 1000)
        np.testing.assert_array_equal(tttr["channels"][:], np.arange(10) % 2 + 1)
        assert read_attrs(tttr) == {
            "resolution_ps": 4.0,
            "channel_map": {"1": "apd_a", "2": "apd_b"},
        }
        assert json.loads(tttr.attrs["channel_map"]) == {"1": "apd_a", "2": "apd_b"}

        image = f["data/scan/image"]
        assert image.dtype == np.float32 and image.shape == (3, 4)
        np.testing.assert_array_equal(image[()], img)
        assert read_attrs(image) == {"units": "counts", "x_um": [0, 1, 2, 3], "note": "raw"}
        assert image.compression is None  # small: not worth it
        spectrum = f["data/spectrum"]
        assert spectrum.compression == "gzip" and spectrum.chunks is not None
        np.testing.assert_array_equal(spectrum[()], np.linspace(0, 1, 50_000))

        fit = read_values(f["analysis/fit"])
        assert fit["g2_0"] == 0.12 and fit["g2_0_err"] == 0.01 and fit["model"] == "3-level"
        assert fit["converged"] == True  # noqa: E712 - np.bool_
        np.testing.assert_array_equal(fit["curve"], np.ones(4))
        np.testing.assert_array_equal(fit["curve_err"], np.full(4, 0.1))
        assert isinstance(f["analysis/fit/curve"], h5py.Dataset)

        truth = read_values(f["truth"])
        assert truth["g2_0"] == 0.1 and truth["emitters"] == [{"x": 1.0}]
        np.testing.assert_array_equal(truth["map"], np.eye(2))
    assert run_status(path) == "finished"


def test_hbtscope_version_defaults_to_installed_package(tmp_path):
    with _writer(tmp_path / "r.h5") as w:
        pass
    with open_run(w.path) as f:
        assert f.attrs["hbtscope_version"] != ""


# --------------------------------------------------------------------------------------------
# hypothesis: odd parameter names and values
# --------------------------------------------------------------------------------------------

names = st.text(min_size=1, max_size=20).filter(
    lambda s: "\x00" not in s and s not in ("units", layout.JSON_KEYS_ATTR)
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
nested = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
top_values = (
    st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**63 - 1, -(2**63), 2**63, 2**64 - 1, 2**64, 0])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)  # includes "", unicode, NUL characters
    | nested
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=st.dictionaries(names, top_values, max_size=8))
def test_parameters_round_trip(params):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.h5"
        units = {k: "a.u." for k in list(params)[:2]}
        with _writer(path, parameters=params, units=units):
            pass
        with h5py.File(path, "r") as f:
            got, got_units = read_parameters(f)
    assert got.keys() == params.keys()
    assert got_units == units
    for k, v in params.items():
        _check_scalar(got[k], v)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.dictionaries(names.filter(lambda s: not s.endswith("_err")), nested, max_size=6))
def test_truth_and_analysis_round_trip(values):
    arrays = {"arr_f": np.arange(5.0), "arr_i8": np.arange(3, dtype=np.int8)}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.h5"
        with _writer(path) as w:
            w.write_truth({**values, **arrays})
            w.write_analysis("a/b", values, errors={k: 0.5 for k in values})
        with open_run(path) as f:
            truth = read_values(f["truth"])
            analysis = read_values(f["analysis/a/b"])
    for k, v in values.items():
        _check_scalar(truth[k], v)
        _check_scalar(analysis[k], v)
        assert analysis[k + "_err"] == 0.5
    for k, v in arrays.items():
        assert truth[k].dtype == v.dtype
        np.testing.assert_array_equal(truth[k], v)


@pytest.mark.parametrize("bad", ["", "a\x00b", "units", layout.JSON_KEYS_ATTR, "x" * 5000])
def test_bad_parameter_names_are_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        _writer(tmp_path / "r.h5", parameters={bad: 1})
    # what was created is left marked failed, not running
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f.attrs["status"] == "failed" and "ValueError" in f.attrs["error"]
    assert not writer_alive(tmp_path / "r.h5")


def test_odd_types_in_settings_are_stored_as_text(tmp_path):
    import enum

    class Mode(enum.Enum):
        CW = "cw"

    snap = {
        "dev": {
            "path": Path("/dev/x"),
            "mode": Mode.CW,
            "when": dt.date(2024, 1, 2),
            "tup": (1, 2),
            "np_scalar": np.float32(1.5),
            "none": None,
        }
    }
    with _writer(tmp_path / "r.h5", snapshot=snap):
        pass
    with open_run(tmp_path / "r.h5") as f:
        got = read_values(f["setup/snapshot/dev"])
    assert got["path"] == "/dev/x" and got["mode"] == "cw" and got["when"] == "2024-01-02"
    assert got["tup"] == [1, 2] and got["none"] is None
    assert got["np_scalar"].dtype == np.float32 and got["np_scalar"] == 1.5


# --------------------------------------------------------------------------------------------
# arrays
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(7, dtype=np.int16),
        np.array([True, False]),
        np.array([1 + 2j, 3 - 1j]),
        np.zeros((2, 3, 4), dtype=np.uint8),
        np.array(3.5),
        np.array(["a", "ünï", ""]),
        np.zeros(3, dtype=[("x", "<f8"), ("n", "<i4")]),
    ],
)
def test_write_array_dtypes(tmp_path, array):
    with _writer(tmp_path / "r.h5") as w:
        w.write_array("x", array)
    with open_run(tmp_path / "r.h5") as f:
        ds = f["data/x"]
        if array.dtype.kind == "U":
            assert list(ds.asstr()[()]) == list(array)
        else:
            assert ds.dtype == array.dtype
            np.testing.assert_array_equal(ds[()], array)


def test_compression_only_where_it_pays(tmp_path):
    rng = np.random.default_rng(1)
    with _writer(tmp_path / "r.h5") as w:
        w.write_array("big_smooth", np.zeros(100_000))
        w.write_array("big_noise", rng.random(100_000))
        w.write_array("small", np.zeros(100))
    with open_run(tmp_path / "r.h5") as f:
        assert f["data/big_smooth"].compression == "gzip"
        assert f["data/big_noise"].compression is None
        assert f["data/small"].compression is None
        np.testing.assert_array_equal(f["data/big_smooth"][()], np.zeros(100_000))


def test_write_array_again_overwrites(tmp_path):
    with _writer(tmp_path / "r.h5") as w:
        w.write_array("img", np.zeros((4, 4)), units="V")
        w.write_array("img", np.ones((4, 4)), units="mV")  # same shape: in place
        w.write_array("line", np.zeros(3))
        w.write_array("line", np.arange(5, dtype=np.int32))  # new shape and type
    with open_run(tmp_path / "r.h5") as f:
        np.testing.assert_array_equal(f["data/img"][()], np.ones((4, 4)))
        assert f["data/img"].attrs["units"] == "mV"
        assert f["data/line"].dtype == np.int32 and f["data/line"].shape == (5,)


@pytest.mark.parametrize("bad", ["", "a//b", "/a", "a/", ".", "a/../b", "x\x00"])
def test_bad_array_names(tmp_path, bad):
    with _writer(tmp_path / "r.h5") as w:
        with pytest.raises(ValueError):
            w.write_array(bad, np.zeros(2))


def test_analysis_error_name_clash(tmp_path):
    with _writer(tmp_path / "r.h5") as w:
        with pytest.raises(ValueError):
            w.write_analysis("fit", {"a": 1.0, "a_err": 2.0}, errors={"a": 0.1})


# --------------------------------------------------------------------------------------------
# time tags
# --------------------------------------------------------------------------------------------


def _tags(a, b):
    i = np.arange(a, b, dtype=np.int64)
    return i * 13 - 5, (i % 7).astype(np.int32)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from([0, 1, 17, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3, 300_001]),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_append_tags_any_block_sizes(steps):
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "r.h5"
        n = 0
        with _writer(path) as w:
            for size, flush in steps:
                w.append_tags(*_tags(n, n + size))
                n += size
                assert w.n_tags == n
                if flush:
                    w.flush()
                    with open_run(path) as f:  # in-process reader sees everything flushed
                        assert f["tttr/timestamps"].shape == (n,)
        with h5py.File(path, "r") as f:
            ts, ch = f["tttr/timestamps"][:], f["tttr/channels"][:]
    exp_ts, exp_ch = _tags(0, n)
    np.testing.assert_array_equal(ts, exp_ts)
    np.testing.assert_array_equal(ch, exp_ch)


def test_append_tags_converts_and_validates(tmp_path):
    with _writer(tmp_path / "r.h5") as w:
        w.append_tags(np.array([1, 2], dtype=np.uint32), [3, 4])
        w.append_tags([], [])
        with pytest.raises(TypeError):
            w.append_tags(np.array([1.5]), np.array([1]))
        with pytest.raises(ValueError):
            w.append_tags(np.array([1, 2]), np.array([1]))
        with pytest.raises(ValueError):
            w.append_tags(np.zeros((2, 2), int), np.zeros((2, 2), int))
    with open_run(tmp_path / "r.h5") as f:
        np.testing.assert_array_equal(f["tttr/timestamps"][:], [1, 2])
        np.testing.assert_array_equal(f["tttr/channels"][:], [3, 4])


def test_flush_interval_zero_flushes_on_every_append(tmp_path):
    path = tmp_path / "r.h5"
    with _writer(path, flush_interval_s=0.0) as w:
        w.append_tags(*_tags(0, 1000))
        assert _subprocess_len(path) == 1000
    with _writer(tmp_path / "s.h5", flush_interval_s=1e9) as w:
        w.append_tags(*_tags(0, 1000))  # staged, not flushed yet
        assert _subprocess_len(w.path) == 0
        w.flush()
        assert _subprocess_len(w.path) == 1000


def _subprocess_len(path) -> int:
    code = (
        "import sys; from hbtscope.storage import open_run\n"
        "with open_run(sys.argv[1]) as f: print(f['tttr/timestamps'].shape[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


# --------------------------------------------------------------------------------------------
# reading while writing
# --------------------------------------------------------------------------------------------

READER = r"""
import sys
import numpy as np
from hbtscope.storage import open_run, run_status

path = sys.argv[1]
with open_run(path) as f:
    ts, ch = f["tttr/timestamps"], f["tttr/channels"]
    print("open", ts.shape[0], run_status(path), flush=True)
    for line in sys.stdin:
        if line.strip() != "check":
            break
        ts.refresh()
        ch.refresh()
        n = ts.shape[0]
        i = np.arange(n, dtype=np.int64)
        ok = np.array_equal(ts[:], i * 13 - 5) and np.array_equal(ch[:n], i % 7)
        print(n, "ok" if ok else "bad", flush=True)
"""


def test_swmr_reader_in_other_process_sees_growing_tags(tmp_path):
    path = tmp_path / "r.h5"
    with _writer(path) as w:
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert reader.stdout.readline().split() == ["open", "0", "running"]
            n, seen = 0, []
            for size in (1000, CHUNK, 333_333, 2 * CHUNK + 7):
                w.append_tags(*_tags(n, n + size))
                n += size
                w.flush()
                reader.stdin.write("check\n")
                reader.stdin.flush()
                got, ok = reader.stdout.readline().split()
                assert ok == "ok"
                seen.append(int(got))
            assert seen == [1000, 1000 + CHUNK, 1000 + CHUNK + 333_333, n]
            reader.stdin.write("stop\n")
            reader.stdin.flush()
            assert reader.wait(timeout=60) == 0
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait()
            reader.stdin.close()
            reader.stdout.close()


def test_reader_in_same_process_while_writing(tmp_path):
    path = tmp_path / "r.h5"
    with _writer(path) as w:
        w.write_array("img", np.zeros((2, 2)))
        w.append_tags(*_tags(0, 5))
        w.flush()
        assert run_status(path) == "running" and writer_alive(path)
        assert not mark_interrupted(path)  # a live run is left alone
        with open_run(path) as f:
            assert f.attrs["status"] == "running"
            np.testing.assert_array_equal(f["tttr/timestamps"][:], _tags(0, 5)[0])
            w.append_tags(*_tags(5, 9))
            w.flush()
            f["tttr/timestamps"].refresh()
            np.testing.assert_array_equal(f["tttr/timestamps"][:], _tags(0, 9)[0])
    assert not writer_alive(path)
    assert run_status(path) == "finished"
    assert not mark_interrupted(path)


# --------------------------------------------------------------------------------------------
# how runs end
# --------------------------------------------------------------------------------------------


def test_keyboard_interrupt_leaves_aborted_readable_file(tmp_path):
    path = tmp_path / "r.h5"
    with pytest.raises(KeyboardInterrupt):
        with _writer(path) as w:
            w.append_tags(*_tags(0, 100))
            raise KeyboardInterrupt
    assert w.closed and w.status == "aborted"
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "aborted" and f.attrs["end_time"] != ""
        assert f["tttr/timestamps"].shape == (100,)  # staged tags were written on the way out
    assert run_status(path) == "aborted"


def test_exception_leaves_failed_with_message(tmp_path):
    path = tmp_path / "r.h5"
    with pytest.raises(RuntimeError, match="laser on fire"):
        with _writer(path):
            raise RuntimeError("laser on fire")
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "failed"
        assert f.attrs["error"] == "RuntimeError: laser on fire"
    assert run_status(path) == "failed"


def test_finish_explicitly_and_misuse(tmp_path):
    path = tmp_path / "r.h5"
    with _writer(path) as w:
        with pytest.raises(ValueError):
            w.finish("running")
        w.finish("aborted", error="stop requested")
        with pytest.raises(RuntimeError):
            w.finish()
        with pytest.raises(RuntimeError):
            w.append_tags([1], [1])
        with pytest.raises(RuntimeError):
            w.write_array("x", np.zeros(1))
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "aborted" and f.attrs["error"] == "stop requested"


def test_error_text_with_odd_characters(tmp_path):
    with _writer(tmp_path / "r.h5") as w:
        w.finish("failed", error="bad\x00byte \udcff ✓")
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f.attrs["error"].startswith("bad\\x00byte") and "✓" in f.attrs["error"]


def test_never_overwrites_a_run(tmp_path):
    path = tmp_path / "r.h5"
    with _writer(path):
        pass
    with pytest.raises(FileExistsError):
        _writer(path)
    assert run_status(path) == "finished"


def test_new_run_path(tmp_path):
    p = new_run_path(tmp_path / "data", "g2 scan/ü")
    assert p.parent.is_dir()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.parent.name)
    assert p.parent.parent == tmp_path / "data"
    assert re.fullmatch(r"\d{6}_g2_scan_[0-9a-f]{8}\.h5", p.name), p.name
    assert not p.exists()
    q = new_run_path(tmp_path / "data", "g2 scan/ü")
    assert q != p


def test_storage_imports_only_numpy_h5py_stdlib():
    code = (
        "import sys; before = set(sys.modules)\n"
        "import hbtscope.storage\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "bad = sorted(m for m in new - set(sys.stdlib_module_names)"
        " if m not in ('hbtscope', 'numpy', 'h5py', '_distutils_hack', 'cython_runtime')"
        " and not m.startswith('_cython_'))\n"
        "ours = sorted(m for m in sys.modules if m.startswith('hbtscope.')"
        " and not m.startswith('hbtscope.storage'))\n"
        "print(bad, ours)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] []", out.stdout


def test_sidecar_lock_where_flock_is_unavailable(tmp_path, monkeypatch):
    """Windows / file systems without flock: a <file>.lock side-car with pid and host."""
    import hbtscope.storage.runfile as rf

    monkeypatch.setattr(rf, "fcntl", None)
    path = tmp_path / "r.h5"
    sidecar = tmp_path / "r.h5.lock"
    w = _writer(path)
    info = json.loads(sidecar.read_text())
    assert info["uuid"] == w.uuid
    assert writer_alive(path) and run_status(path) == "running"
    w.finish()
    assert not sidecar.exists() and run_status(path) == "finished"

    # a writer that died leaves its side-car: stale once its process is gone
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    with h5py.File(path, "r+") as f:
        f.attrs["status"] = "running"
    sidecar.write_text(json.dumps({**info, "pid": int(dead.stdout)}))
    assert not writer_alive(path) and run_status(path) == "interrupted"
    sidecar.write_text(json.dumps({**info, "host": "some-other-host"}))
    assert writer_alive(path)  # cannot check another machine: assumed alive
