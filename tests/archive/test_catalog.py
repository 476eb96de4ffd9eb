"""The catalogue on a synthetic archive: what it indexes, filters that give exactly the runs a
Python predicate on the files' own contents gives, incremental updates, files still being
written and corrupt files recorded (never fatal), the command line."""

from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hbtscope.archive import Catalog, CatalogError, FilterError
from hbtscope.archive.extract import STILL_BEING_WRITTEN
from hbtscope.cli import main
from hbtscope.storage import RunWriter

from .conftest import copy_archive


@pytest.fixture()
def catalog(archive, tmp_path):
    with Catalog(tmp_path / "catalog.sqlite") as cat:
        report = cat.update([archive.root])
        assert len(report.new) == len(archive.runs) and not report.problems
        yield cat


def _num(value) -> float:
    return float(value)


# (filter, the same question asked of a run read back from its own file)
CASES = [
    ('measurement == "g2"', lambda r: r.measurement == "g2"),
    ('measurement == "saturation"', lambda r: r.measurement == "saturation"),
    ("g2_0 < 0.45", lambda r: "g2_0" in r.results and _num(r.results["g2_0"]) < 0.45),
    (
        "g2_0 + 2 * g2_0_err < 1.0",  # a purity cut (short runs: wide errors)
        lambda r: (
            "g2_0" in r.results and _num(r.results["g2_0"]) + 2 * _num(r.results["g2_0_err"]) < 1.0
        ),
    ),
    ('measurement == "g2" and g2_0 ** 2 < 1', None),  # no power operator: a FilterError
    ("P_sat_W < 5e-8", lambda r: "P_sat_W" in r.results and _num(r.results["P_sat_W"]) < 5e-8),
    ('emitter == "scan-001"', lambda r: r.emitter == "scan-001"),
    (
        'emitter == "scan-002" or (x_um >= 30 and not measurement == "saturation")',
        lambda r: (
            r.emitter == "scan-002"
            or (_num(r.parameters["x_um"]) >= 30 and r.measurement != "saturation")
        ),
    ),
    (
        "g2_0_err < 0.2 and counts_a > 100",
        lambda r: (
            "g2_0_err" in r.results
            and _num(r.results["g2_0_err"]) < 0.2
            and _num(r.results["counts_a"]) > 100
        ),
    ),
    (
        "truth.n_emitters == 0",
        lambda r: "n_emitters" in r.truth and _num(r.truth["n_emitters"]) == 0,
    ),
    ('emitter ~ "scan-00[34]"', lambda r: r.emitter in ("scan-003", "scan-004")),
    ("parameters.y_um > 15", lambda r: _num(r.parameters["y_um"]) > 15),
    ("histogram_matches_stored == true", lambda r: bool(r.results.get("histogram_matches_stored"))),
]


@pytest.mark.parametrize(("text", "predicate"), CASES, ids=[c[0] for c in CASES])
def test_a_filter_gives_exactly_the_runs_the_files_say(archive, catalog, text, predicate):
    if predicate is None:
        with pytest.raises(FilterError):
            catalog.paths([text])
        return
    expected = sorted(str(r.path.resolve()) for r in archive.runs if predicate(r))
    got = catalog.paths([text])
    assert got == expected
    assert 0 < len(got) < len(archive.runs) or text.startswith("histogram"), (text, len(got))


def test_the_catalogue_holds_what_the_files_hold(archive, catalog):
    by_path = {r["path"]: r for r in catalog.query()}
    assert len(by_path) == len(archive.runs)
    for run in archive.runs:
        row = by_path[str(run.path.resolve())]
        assert row["measurement"] == run.measurement and row["emitter"] == run.emitter
        assert row["status"] == "finished" and row["problem"] == ""
        assert row["uuid"][:8] == run.path.stem[-8:]
        assert row["start_time"] <= row["end_time"]
        for key, value in run.results.items():
            if isinstance(value, str):
                assert row["results"][key] == value
            elif not math.isnan(float(value)):
                assert row["results"][key] == float(value), key
        assert row["parameters"]["x_um"] == run.parameters["x_um"]
        assert set(row["truth"]) <= set(run.truth)
        assert {k for k in row["results"] if k.endswith("_err")}, "uncertainties kept"


def test_several_filters_must_all_hold(archive, catalog):
    both = catalog.paths(['measurement == "g2"', "x_um < 15"])
    assert both == sorted(
        str(r.path.resolve())
        for r in archive.runs
        if r.measurement == "g2" and float(r.parameters["x_um"]) < 15
    )


def test_incremental_update_sees_new_changed_and_removed_files(archive, tmp_path):
    root = copy_archive(archive, tmp_path)
    files = sorted(root.rglob("*.h5"))
    with Catalog(tmp_path / "c.sqlite") as cat:
        first = cat.update([root])
        assert len(first.new) == len(files)
        again = cat.update([root])
        assert (again.new, again.changed, again.removed) == ([], [], [])
        assert again.unchanged == len(files)
        cat.store_reanalysis(str(files[1].resolve()), True, "", {"g2_0": 0.5})

        removed, changed = files[0], files[1]
        removed.unlink()
        st = changed.stat()
        os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        new = root / "later" / "copy.h5"
        new.parent.mkdir()
        new.write_bytes(files[2].read_bytes())
        r = cat.update([root])
        assert r.removed == [str(removed.resolve())]
        assert r.changed == [str(changed.resolve())]
        assert r.new == [str(new.resolve())]
        assert r.unchanged == len(files) - 2
        assert cat.count() == len(files)
        # a changed file's old re-analysis is dropped with it
        assert cat.con.execute("SELECT count(*) FROM reanalysis").fetchone()[0] == 0
        with pytest.raises(FilterError, match="no reanalysis.g2_0"):
            cat.paths(["reanalysis.g2_0 == 0.5"])


def test_update_of_one_directory_leaves_the_others_runs(archive, tmp_path):
    a = copy_archive(archive, tmp_path / "a")
    b = copy_archive(archive, tmp_path / "b")
    with Catalog(tmp_path / "c.sqlite") as cat:
        cat.update([a, b])
        n = cat.count()
        for f in b.rglob("*.h5"):
            f.unlink()
        r = cat.update([a])
        assert r.removed == [] and cat.count() == n
        r = cat.update([b])
        assert len(r.removed) == n // 2 and cat.count() == n // 2


def test_corrupt_and_still_written_files_are_recorded_not_fatal(archive, tmp_path):
    root = copy_archive(archive, tmp_path)
    good = sorted(root.rglob("*.h5"))
    (root / "garbage.h5").write_bytes(b"not an HDF5 file at all" * 100)
    data = good[0].read_bytes()
    (root / "truncated.h5").write_bytes(data[: len(data) // 3])
    live = root / "live_g2_0123abcd.h5"
    with RunWriter(live, "g2", {"x_um": 1.0, "emitter": "live-one"}) as w:
        with Catalog(tmp_path / "c.sqlite") as cat:
            r = cat.update([root])
            assert len(r.new) == len(good) + 3
            assert "not an HDF5 file" in r.problems[str((root / "garbage.h5").resolve())]
            assert "truncated.h5" in r.problems[str((root / "truncated.h5").resolve())]
            assert r.problems[str(live.resolve())] == STILL_BEING_WRITTEN
            assert len(r.problems) == 3
            assert cat.paths(['status == "running"']) == [str(live.resolve())]
            assert len(cat.paths(['problem == ""'])) == len(good)
            # a live file is read again at every update, even unchanged
            assert str(live.resolve()) in cat.update([root]).changed
        w.write_analysis("g2", {"g2_0": 0.25}, errors={"g2_0": 0.05})
    with Catalog(tmp_path / "c.sqlite") as cat:
        r = cat.update([root])
        assert str(live.resolve()) in r.changed and str(live.resolve()) not in r.problems
        row = cat.query(['emitter == "live-one"'])[0]
        assert row["status"] == "finished"
        assert row["results"]["g2_0"] == 0.25 and row["results"]["g2_0_err"] == 0.05


def test_a_catalogue_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    Catalog(path).close()
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with pytest.raises(CatalogError, match="schema version 99.*delete the file"):
        Catalog(path)
    (tmp_path / "junk.sqlite").write_bytes(b"x" * 4096)
    with pytest.raises(CatalogError, match="junk.sqlite"):
        Catalog(tmp_path / "junk.sqlite")


def test_command_line_update_and_query(archive, tmp_path, capsys):
    cat = str(tmp_path / "c.sqlite")
    assert main(["catalog", "update", str(archive.root), "--catalog", cat, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["new"] == len(archive.runs) and out["runs"] == len(archive.runs)

    where = 'measurement == "g2" and emitter == "scan-001"'
    assert main(["catalog", "query", "--catalog", cat, "--where", where, "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    expected = {
        str(r.path.resolve())
        for r in archive.runs
        if r.measurement == "g2" and r.emitter == "scan-001"
    }
    assert {r["path"] for r in runs} == expected and expected

    out_csv = tmp_path / "runs.csv"
    assert (
        main(["catalog", "query", "--catalog", cat, "--where", where, "--csv", str(out_csv)]) == 0
    )
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["path"] for r in rows} == expected
    assert all(float(r["g2_0_err"]) > 0 for r in rows)

    assert main(["catalog", "query", "--catalog", cat, "--where", "g2_0 < 0.3"]) == 0
    table = capsys.readouterr().out
    assert "g2_0" in table and "runs" in table

    assert main(["catalog", "query", "--catalog", cat, "--where", "g2_0 <"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hbtscope: filter 'g2_0 <'") and "Traceback" not in err
    missing = str(tmp_path / "none.sqlite")
    assert main(["catalog", "query", "--catalog", missing]) == 2
    assert "no catalogue here" in capsys.readouterr().err
    assert main(["catalog", "update", str(tmp_path / "nodir"), "--catalog", cat]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_parquet_needs_pyarrow_or_writes_a_table(archive, tmp_path, capsys):
    cat = str(tmp_path / "c.sqlite")
    main(["catalog", "update", str(archive.root), "--catalog", cat])
    out = tmp_path / "runs.parquet"
    rc = main(["catalog", "query", "--catalog", cat, "--parquet", str(out)])
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert rc == 2 and "needs pyarrow" in capsys.readouterr().err
        return
    assert rc == 0
    table = pq.read_table(out)
    assert table.column("path").to_pylist() == sorted(str(r.path.resolve()) for r in archive.runs)
    assert str(table.schema.field("g2_0").type) == "double"
    by_path = dict(
        zip(table.column("path").to_pylist(), table.column("g2_0").to_pylist(), strict=True)
    )
    for run in archive.runs:
        stored = run.results.get("g2_0")
        got = by_path[str(run.path.resolve())]
        if stored is None:
            assert got is None  # a saturation run has no g2_0
        elif not math.isnan(float(stored)):
            assert got == float(stored)


WRITER = """
import sys
import numpy as np
from hbtscope.storage import RunWriter
with RunWriter(sys.argv[1], "g2", {"x_um": 3.0, "emitter": "other-process"}) as w:
    w.append_tags(np.arange(1000, dtype=np.int64) * 7, np.ones(1000, dtype=np.int32))
    w.flush()
    print("recording", flush=True)
    sys.stdin.readline()
    w.write_analysis("g2", {"g2_0": 0.125}, errors={"g2_0": 0.03})
print("done", flush=True)
"""


def test_update_while_another_process_records_a_run(archive, tmp_path):
    root = copy_archive(archive, tmp_path)
    live = root / "2026-12-05" / "010203_g2_89abcdef.h5"
    live.parent.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(live)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout.readline().strip() == "recording"
        with Catalog(tmp_path / "c.sqlite") as cat:
            r = cat.update([root])
            assert r.problems == {str(live.resolve()): STILL_BEING_WRITTEN}
            assert cat.paths(['status == "running"']) == [str(live.resolve())]
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
    finally:
        proc.communicate(timeout=60)
    with Catalog(tmp_path / "c.sqlite") as cat:
        r = cat.update([root])
        assert r.changed == [str(live.resolve())] and r.problems == {}
        row = cat.query(['emitter == "other-process"'])[0]
        assert row["status"] == "finished" and row["results"] == {"g2_0": 0.125, "g2_0_err": 0.03}
