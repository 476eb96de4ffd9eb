"""Re-analysis of an archive on a dask LocalCluster equals the serial re-analysis and the runs'
own analysis; failing files are recorded with their reason; run files are never written."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from hbtscope.archive import Catalog
from hbtscope.archive.extract import STILL_BEING_WRITTEN
from hbtscope.archive.reanalysis import close_client, open_client, reanalyse
from hbtscope.cli import main
from hbtscope.reanalyse import analyse_run
from hbtscope.storage import RunWriter

from .conftest import copy_archive


def _digests(root) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.h5")}


@pytest.fixture(scope="module")
def client():
    c = open_client(2, processes=False)
    yield c
    close_client(c)


def test_cluster_equals_serial_and_the_runs_own_analysis(archive, tmp_path, client):
    root = copy_archive(archive, tmp_path)
    (root / "garbage.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 500)
    paths = sorted(str(p) for p in root.rglob("*.h5"))
    before = _digests(root)
    seen = []
    parallel = reanalyse(paths, client, on_outcome=seen.append)
    serial = reanalyse(paths)
    assert len(parallel) == len(serial) == len(paths) == len(seen)
    for a, b in zip(parallel, serial, strict=True):
        assert a.same_as(b), a.path
    bad = [o for o in parallel if not o.ok]
    assert [o.path for o in bad] == [str(root / "garbage.h5")]
    assert "garbage.h5" in bad[0].reason
    for o in parallel:
        if not o.ok:
            continue
        direct = analyse_run(o.path)
        assert o.values["procedure"] == direct["procedure"]
        if "g2_0" in o.values and not math.isnan(o.values["g2_0"]):
            assert o.values["g2_0"] == direct["g2_0"] == o.values["stored_g2_0"]
    assert _digests(root) == before, "the run files are never written"


def test_a_file_being_written_is_reported_not_fatal(archive, tmp_path, client):
    root = copy_archive(archive, tmp_path)
    live = root / "live_g2_0123abcd.h5"
    with RunWriter(live, "g2", {"x_um": 1.0}):
        paths = sorted(str(p) for p in root.rglob("*.h5"))
        out = {o.path: o for o in reanalyse(paths, client)}
    assert out[str(live)].reason == STILL_BEING_WRITTEN and not out[str(live)].ok
    assert sum(o.ok for o in out.values()) == len(paths) - 1


def test_command_line_archive_mode_writes_the_catalogue(archive, tmp_path, capsys):
    root = copy_archive(archive, tmp_path)
    (root / "broken.h5").write_bytes(b"nothing")
    cat = str(tmp_path / "c.sqlite")
    before = _digests(root)
    rc = main(["analyse", str(root), "--catalog", cat, "--workers", "0", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["runs"] == len(archive.runs) + 1 and out["ok"] == len(archive.runs)
    assert list(out["failed"]) == [str((root / "broken.h5").resolve())]
    assert _digests(root) == before
    with Catalog(cat) as c:
        rows = c.query(['measurement == "g2"'])
        assert rows and all(r["reanalysis_ok"] for r in rows)
        for r in rows:
            a, b = r["reanalysis"].get("g2_0"), r["results"].get("g2_0")
            assert (a is None and b is None) or a == b or (math.isnan(a) and math.isnan(b))
        assert c.paths(["reanalysis.g2_0 < 0.45"]) == c.paths(["g2_0 < 0.45"])
        broken = c.query(['problem != ""'])
        assert len(broken) == 1 and broken[0]["reanalysis_ok"] is False
        assert "broken.h5" in broken[0]["reanalysis_reason"]


def test_one_run_file_keeps_the_single_file_analyse(archive, capsys):
    path = str(archive.runs[-1].path)
    assert main(["analyse", path, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["file"] == path and out["procedure"] == archive.runs[-1].measurement


def test_archive_mode_refuses_files_mixed_with_directories(archive, capsys):
    rc = main(["analyse", str(archive.root), str(archive.runs[0].path)])
    assert rc == 2 and "not a directory" in capsys.readouterr().err


def test_archive_mode_on_a_running_scheduler_by_address(archive, tmp_path, client, capsys):
    cat = str(tmp_path / "c.sqlite")
    address = client.scheduler.address
    rc = main(["analyse", str(archive.root), "--catalog", cat, "--scheduler", address, "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] == out["runs"] == len(archive.runs) and out["failed"] == {}
    rc = main(["analyse", str(archive.root), "--catalog", cat, "--scheduler", "nonsense:::"])
    assert rc == 2 and "--scheduler nonsense:::: cannot connect" in capsys.readouterr().err


def test_archive_mode_with_a_filter_reanalyses_only_those_runs(archive, tmp_path, capsys):
    cat = str(tmp_path / "c.sqlite")
    where = 'measurement == "saturation"'
    rc = main(["analyse", str(archive.root), "--catalog", cat, "--workers", "0", "--where", where])
    assert rc == 0
    n_sat = sum(r.measurement == "saturation" for r in archive.runs)
    assert f"{n_sat} of {n_sat} runs re-analysed" in capsys.readouterr().out
    with Catalog(cat) as c:
        done = c.paths(["reanalysis.P_sat_W > 0"])
        assert done == c.paths([where]) and len(done) == n_sat
        assert c.paths(["P_sat_W == reanalysis.P_sat_W"]) == done
    rc = main(["analyse", str(archive.root), "--catalog", cat, "--where", "nonsense >"])
    assert rc == 2 and "filter 'nonsense >'" in capsys.readouterr().err


def test_a_few_hundred_runs_indexed_queried_and_reanalysed_like_serial(tmp_path, client):
    """Issue 15's check at its size: 240 short g2 runs made by the simulator (tags not kept:
    the runs are analysed from their stored histograms), indexed, queried by position and
    purity, re-analysed on the LocalCluster: exactly the serial results, files untouched."""
    from hbtscope import open_setup
    from hbtscope.procedures.g2 import G2Measurement
    from hbtscope.procedures.runner import run_procedure

    root = tmp_path / "data"
    spots = {"E1": (10.0, 10.0), "E3": (30.0, 10.0), "empty": (50.0, 50.0)}
    with open_setup(data_dir=root) as setup:
        for _ in range(80):
            for name, (x, y) in spots.items():
                g2 = G2Measurement(duration_s=0.02, x_um=x, y_um=y, emitter=name, record_tags=False)
                assert run_procedure(g2, setup, root, figure=False).status == "finished"
    paths = sorted(str(p) for p in root.rglob("*.h5"))
    assert len(paths) == 240
    cat = tmp_path / "runs.sqlite"
    with Catalog(cat) as c:
        c.update([root])
        assert c.count() == 240
        assert len(c.paths(['emitter == "E3"'])) == 80
        assert len(c.paths(['measurement == "g2" and x_um > 20 and y_um < 20'])) == 80
        stored = {r["path"]: r["results"] for r in c.query()}
    before = _digests(root)
    parallel = reanalyse(paths, client)
    serial = reanalyse(paths)
    assert all(o.ok for o in parallel) and len(parallel) == 240
    for a, b in zip(parallel, serial, strict=True):
        assert a.same_as(b), a.path
        g2_stored = stored[a.path].get("g2_0", math.nan)
        assert a.values["g2_0"] == g2_stored or (
            math.isnan(a.values["g2_0"]) and math.isnan(g2_stored)
        )
    assert _digests(root) == before
