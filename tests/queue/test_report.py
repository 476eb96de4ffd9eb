"""The survey report, rebuilt from a queue directory alone."""

from __future__ import annotations

import csv
import json
import math

import hbtscope
from hbtscope.cli import main
from hbtscope.queue.engine import QueueEngine
from hbtscope.queue.report import wilson_interval
from hbtscope.queue.spec import parse_queue_text

#: E1 g2(0) ~ 0.05, E2 ~ 0.2, E3 ~ 0.5 at low power (QY_XX/QY_X of sim.yaml's emitters)
SURVEY = """
name: three spots
items:
  - foreach_emitter:
      points:
        - {name: E1, x_um: 10.0, y_um: 10.0}
        - {name: E2, x_um: 20.0, y_um: 10.0}
        - {name: E3, x_um: 30.0, y_um: 10.0}
    items:
      - {measurement: g2, parameters: {duration_s: 3.0, laser_power_W: 1.2e-8}}
      - {measurement: g2, parameters: {duration_s: 0.5, laser_power_W: 5.0e-3}}
"""


def test_report_from_the_queue_directory(tmp_path, ideal_stage_setup_path, capsys):
    qdir = tmp_path / "q"
    with hbtscope.open_setup(ideal_stage_setup_path) as setup:
        spec = parse_queue_text(SURVEY, "survey.yaml")
        engine = QueueEngine(spec, setup, qdir, queue_text=SURVEY)
        outcome = engine.run()
    assert outcome.status == "finished"  # the second g2 of each emitter failed, the rest ran
    assert engine.report == qdir / "report.html"
    (qdir / "report.html").unlink()
    assert main(["report", str(qdir), "--json"]) == 0  # rebuilt from the directory alone
    paths = json.loads(capsys.readouterr().out)
    data = json.loads((qdir / "report.json").read_text())
    rows = {r["emitter"]: r for r in data["emitters"]}
    assert list(rows) == ["E1", "E2", "E3"]
    # the lab's cut g2(0) + 2 sigma < 0.5: E1 and E2 pass, E3 (true g2(0) ~ 0.5) does not
    assert [rows[e]["single_photon"] for e in rows] == [True, True, False]
    pop = data["population"]
    assert (pop["n_with_g2"], pop["n_single_photon"]) == (3, 2)
    lo, hi = pop["single_photon_fraction_68"]
    assert lo < 2 / 3 < hi
    # the failures are listed with their reasons (laser power above the setup's limit)
    assert len(data["failures"]) == 3
    assert all("max_power_W" in f["reason"] for f in data["failures"])
    assert all(r["problems"] for r in rows.values())
    # every run link points at an existing run file of the queue
    for r in rows.values():
        assert set(r["runs"]) == {"g2"} and (qdir / r["runs"]["g2"]).is_file()
    with open(paths["csv"], newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [t["emitter"] for t in table] == ["E1", "E2", "E3"]
    assert math.isclose(float(table[0]["g2.g2_0"]), rows["E1"]["g2.g2_0"])
    page = (qdir / "report.html").read_text()
    assert "E3" in page and "max_power_W" in page and "<table>" in page

    # the same survey from the run catalogue (issue 15): same emitters, cut and numbers
    cat = tmp_path / "runs.sqlite"
    assert main(["catalog", "update", str(qdir), "--catalog", str(cat), "--json"]) == 0
    capsys.readouterr()
    out = tmp_path / "from_catalogue"
    assert main(["report", str(out), "--catalog", str(cat), "--where", 'measurement == "g2"']) == 0
    again = {r["emitter"]: r for r in json.loads((out / "report.json").read_text())["emitters"]}
    assert list(again) == list(rows)
    for name, row in rows.items():
        assert again[name]["single_photon"] == row["single_photon"]
        assert again[name]["g2.g2_0"] == row["g2.g2_0"]
        assert again[name]["g2.g2_0_err"] == row["g2.g2_0_err"]


def test_wilson_interval_is_a_68_percent_interval():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0.05 < hi < 0.15  # zero successes: still an upper end
    lo, hi = wilson_interval(10, 10)
    assert math.isclose(hi, 1.0) and 0.85 < lo < 0.95
    lo, hi = wilson_interval(50, 100)
    assert math.isclose(hi - lo, 2 * 0.05, rel_tol=0.02)  # ~ +-sqrt(p(1-p)/n)
