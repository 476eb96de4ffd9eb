"""`hbtscope import / export / analyze`: results, and one clear line + exit code 2 for errors
a user can cause (missing file, not a PTU file, not a run file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hbtscope
from hbtscope.cli import main
from hbtscope.procedures.g2 import G2Measurement
from hbtscope.procedures.runner import run_procedure
from hbtscope.reanalyse import analyse_run
from hbtscope.storage import open_run, read_values

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "picoquant"  # real files, BSD-3-Clause (LICENSE there)


@pytest.fixture(scope="module")
def g2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_g2")
    with hbtscope.open_setup(data_dir=out) as setup:
        outcome = run_procedure(
            G2Measurement(x_um=10.0, y_um=10.0, duration_s=2.0), setup, figure=False
        )
    return outcome.path


def run_main(capsys, *argv):
    rc = main(list(argv))
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def assert_one_line_error(rc, out, err, *words):
    assert rc == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hbtscope: ")
    for w in words:
        assert w in lines[0]


# ================================================================================ analyze


def test_analyze_g2_run_reproduces_stored_analysis(g2_run, capsys):
    rc, out, err = run_main(capsys, "analyze", str(g2_run), "--json")
    assert rc == 0, err
    result = json.loads(out)
    with open_run(g2_run) as f:
        stored = read_values(f["analysis/g2"])
    assert result["procedure"] == "g2" and result["status"] == "finished"
    assert result["source"] == "tttr" and result["histogram_matches_stored"] is True
    assert result["g2_0"] == pytest.approx(stored["g2_0"], rel=1e-12)
    assert result["g2_0_err"] == pytest.approx(stored["g2_0_err"], rel=1e-12)
    assert result["g2_0_sqrt"] == pytest.approx(stored["g2_0_sqrt"], rel=1e-12)
    assert result["stored_g2_0"] == pytest.approx(stored["g2_0"])
    assert "arrays" not in result
    # human-readable form
    rc, out, _ = run_main(capsys, "analyze", str(g2_run))
    assert rc == 0 and "g2_0 = " in out and "±" in out


def test_analyze_g2_run_without_tags_uses_the_stored_histogram(tmp_path):
    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        outcome = run_procedure(
            G2Measurement(x_um=10.0, y_um=10.0, duration_s=1.0, record_tags=False),
            setup,
            figure=False,
        )
    result = analyse_run(outcome.path)
    assert result["source"] == "stored_histogram" and result["n_tags"] == 0
    with open_run(outcome.path) as f:
        stored = read_values(f["analysis/g2"])
    assert result["g2_0"] == pytest.approx(stored["g2_0"], rel=1e-12)


def test_analyze_errors(tmp_path, capsys):
    assert_one_line_error(
        *run_main(capsys, "analyze", str(tmp_path / "none.h5")), "none.h5", "no such file"
    )
    txt = tmp_path / "notes.h5"
    txt.write_text("not hdf5")
    assert_one_line_error(*run_main(capsys, "analyze", str(txt)), "not an HDF5 file")
    import h5py

    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    assert_one_line_error(*run_main(capsys, "analyze", str(plain)), "not an hbtscope run file")
    from hbtscope.storage import RunWriter

    other = tmp_path / "other.h5"
    with RunWriter(other, "spectrum", {"a": 1}):
        pass
    assert_one_line_error(*run_main(capsys, "analyze", str(other)), "no re-analysis", "spectrum")


# ======================================================================== import / export


def test_import_then_analyze_then_export(tmp_path, capsys):
    src = DATA / "picoharp/v30_t2.ptu"
    rc, out, err = run_main(capsys, "import", str(src), "--out", str(tmp_path), "--json")
    assert rc == 0, err
    info = json.loads(out)
    run = Path(info["file"])
    assert run.exists() and run.parent == tmp_path
    assert info["mode"] == "T2" and info["record_type"] == "PicoHarpT2"
    assert info["n_records"] == 929254 and info["n_photons"] == 920177
    assert info["photons_per_channel"] == {"2": 531477, "3": 388700}
    assert info["resolution_ps"] == pytest.approx(4.0)

    rc, out, err = run_main(capsys, "analyze", str(run), "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["procedure"] == "import_ptu" and res["channel_a"] == 2 and res["channel_b"] == 3

    target = tmp_path / "export.hdf5"
    rc, out, err = run_main(
        capsys, "export", str(run), "--format", "photon-hdf5", "--out", str(target)
    )
    assert rc == 0, err
    assert out.strip() == str(target) and target.exists()
    # exporting again onto the same file needs --force
    assert_one_line_error(
        *run_main(capsys, "export", str(run), "--out", str(target)), "exists", "--force"
    )
    rc, _, _ = run_main(capsys, "export", str(run), "--out", str(target), "--force")
    assert rc == 0
    # human-readable import
    rc, out, _ = run_main(capsys, "import", str(src), "--out", str(tmp_path / "h"))
    assert rc == 0 and "imported" in out and "run file:" in out


def test_analyze_real_t3_file_never_reports_zero_error(tmp_path, capsys):
    """The HydraHarp T3 file has no coincidence in the two bins around tau = 0: the summary
    used to say g2_zero = 0 +- 0. Now the Poisson interval of 0 counts gives an upper limit,
    and the pulsed g2(0) carries its interval and 2-sigma upper limit."""
    src = DATA / "hydraharp/v10_t3.ptu"
    rc, out, err = run_main(capsys, "import", str(src), "--out", str(tmp_path), "--json")
    assert rc == 0, err
    rc, out, err = run_main(capsys, "analyze", json.loads(out)["file"], "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["g2_zero_err"] > 0 and res["g2_zero_ci"][1] > res["g2_zero"]
    assert res["g2_0_pulsed_err"] > 0
    lo, hi = res["g2_0_pulsed_ci"]
    assert 0 <= lo <= hi < res["g2_0_pulsed_upper"]


def test_import_errors(tmp_path, capsys):
    assert_one_line_error(
        *run_main(capsys, "import", str(tmp_path / "missing.ptu"), "--out", str(tmp_path)),
        "missing.ptu",
        "no such file",
    )
    bad = tmp_path / "bad.ptu"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    assert_one_line_error(
        *run_main(capsys, "import", str(bad), "--out", str(tmp_path)),
        "bad.ptu",
        "not a readable PicoQuant PTU file",
    )
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert_one_line_error(
        *run_main(capsys, "import", str(bad), "--out", str(a_file)), "not a directory"
    )
    assert not list(tmp_path.glob("*.h5"))


def test_export_errors(tmp_path, capsys):
    assert_one_line_error(
        *run_main(capsys, "export", str(tmp_path / "gone.h5")), "gone.h5", "no such file"
    )
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)  # HDF5 signature, broken file
    rc, out, err = run_main(capsys, "export", str(junk))
    assert_one_line_error(rc, out, err, "junk.h5")
    with pytest.raises(SystemExit) as exc:
        main(["export", str(junk), "--format", "csv"])
    assert exc.value.code == 2  # argparse: invalid choice


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2048))
def test_random_bytes_as_ptu_give_one_clean_line(tmp_path, capsys, data):
    path = tmp_path / "random.ptu"
    path.write_bytes(data)
    rc = main(["import", str(path), "--out", str(tmp_path / "out"), "--json"])
    cap = capsys.readouterr()
    if rc == 0:  # pragma: no cover - random bytes that parse as a PTU file
        json.loads(cap.out)
        return
    assert_one_line_error(rc, cap.out, cap.err, "random.ptu")


def test_subprocess_exit_code_and_stderr(tmp_path):
    bad = tmp_path / "x.ptu"
    bad.write_bytes(b"PQTTTR\x00\x00" + bytes(range(256)))
    proc = subprocess.run(
        [sys.executable, "-m", "hbtscope.cli", "import", str(bad), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("hbtscope: ")
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback_of_an_unexpected_error(monkeypatch, capsys):
    from hbtscope import cli

    def broken(args):
        raise RuntimeError("something nobody foresaw")

    monkeypatch.setattr(cli, "cmd_procedures", broken)
    assert cli.main(["procedures"]) == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert err == "hbtscope: RuntimeError: something nobody foresaw\n"
    with pytest.raises(RuntimeError, match="nobody foresaw"):
        cli.main(["--debug", "procedures"])
