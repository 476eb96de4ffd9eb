"""``hbtscope devices``: every role, its driver, and whether it answers."""

from __future__ import annotations

import json
import re

import hbtscope
from hbtscope.devices_report import devices_report, format_report
from hbtscope.setup import default_setup_path

PM100 = """  powermeter:
    driver: ThorlabsPM100
    backend: sim
    address: USB0::0x1313::0x8072::P2000001::INSTR
"""


def _with_role(text: str, role: str, block: str) -> str:
    """sim.yaml's text with the block of ``role`` (its line and the lines indented below it)
    replaced by ``block``."""
    pattern = re.compile(rf"^  {role}:[^\n]*\n(?:(?:    [^\n]*)?\n)*", re.M)
    assert pattern.search(text), f"no '{role}:' block in sim.yaml"
    return pattern.sub(lambda m: block, text, count=1)


def test_report_of_the_simulated_microscope(tmp_path):
    with hbtscope.open_setup(data_dir=tmp_path) as s:
        report = devices_report(s)
    assert [e["role"] for e in report] == list(s.spec.instruments)
    stage = next(e for e in report if e["role"] == "stage")
    assert stage["driver"] == "PiezoStage" and stage["backend"] == "sim"
    assert stage["address"] == "sim://stage" and stage["doc"]
    assert all(e["connected"] for e in report), [e.get("error") for e in report]
    assert "x_um" in stage["snapshot"]
    json.dumps(report)  # plain data, ready for --json
    assert "stage" in format_report(report)


def test_a_device_that_does_not_answer_is_reported_not_raised(tmp_path):
    text = default_setup_path().read_text()
    text = _with_role(text, "powermeter", PM100)
    sync = "  sync: {tagger_channel: 1, delay_ps: 0}\n"
    text = text.replace(
        sync, sync + "  faults:\n    - {kind: disconnect, role: powermeter, at_s: 1}\n"
    )
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    with hbtscope.open_setup(path, data_dir=tmp_path) as s:
        s.clock.sleep(1.0)
        report = devices_report(s)
    pm = next(e for e in report if e["role"] == "powermeter")
    assert pm["connected"] is False and pm["driver"] == "ThorlabsPM100"
    assert pm["error"].startswith("VisaIOError: VI_ERROR_CONN_LOST")
    assert "snapshot" not in pm
    assert all(e["connected"] for e in report if e["role"] != "powermeter")
    text = format_report(report)
    assert "NOT CONNECTED" in text and "VI_ERROR_CONN_LOST" in text


def test_cli_devices_lists_roles_state_and_settings(capsys):
    from hbtscope.cli import main

    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "laser        PulsedLaser" in out and "max_power_W=2e-06" in out
    assert "tagger" in out and "NOT CONNECTED" not in out
    assert main(["devices", "--json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    roles = {d["role"] for d in data["devices"]}
    assert {"laser", "stage", "tagger", "daq"} <= roles


def test_report_of_the_lab_drivers_on_their_twins(tmp_path):
    """config/lab-sim.yaml: every role answers through its real driver, and the report says
    which device it is (the Sepia II's and the tagger's own identification)."""
    from pathlib import Path

    lab_sim = Path(__file__).resolve().parents[1] / "config" / "lab-sim.yaml"
    with hbtscope.open_setup(lab_sim, data_dir=tmp_path) as s:
        report = {e["role"]: e for e in devices_report(s)}
    assert all(e["connected"] for e in report.values()), [e.get("error") for e in report.values()]
    assert report["laser"]["driver"] == "PicoQuantSepia2"
    assert report["laser"]["snapshot"]["model"] == "Sepia II"
    assert report["stage"]["snapshot"]["controller"] == "MDT693B"
    assert report["tagger"]["snapshot"]["serial"].startswith("SIM")
