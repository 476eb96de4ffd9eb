"""The queue engine on the simulated microscope: order, expressions, exclusion, failure
policy, abort, and resume after the process was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import hbtscope
from hbtscope.cli import main
from hbtscope.queue.engine import QueueControl, QueueEngine
from hbtscope.queue.journal import Journal, item_states
from hbtscope.queue.spec import QueueFileError, parse_queue_text
from hbtscope.storage import run_status
from hbtscope.storage.emitter_book import EmitterBook
from tests.conftest import sim_yaml_with

REPO = Path(__file__).resolve().parents[2]

#: E1 (10, 10): a good emitter, g2(0) ~ 0.05; E3 (30, 10): QY_XX/QY_X = 0.5, g2(0) ~ 0.5
TWO_EMITTERS = """
name: two emitters
items:
  - {measurement: g2, id: first, parameters: {duration_s: 0.5, x_um: 10.0, y_um: 10.0}}
  - foreach_emitter:
      points:
        - {name: E1, x_um: 10.0, y_um: 10.0}
        - {name: E3, x_um: 30.0, y_um: 10.0}
      exclude_if: "{g2.g2_0} - 2 * {g2.g2_0_err} >= 0.3"
    items:
      - {measurement: g2, parameters: {duration_s: 2.0}}
      - measurement: g2
        parameters: {duration_s: 0.3, laser_power_W: "0.5 * 24e-9 + 0 * {first.g2_0}"}
"""


def _run(text: str, setup, queue_dir: Path, **kw):
    spec = parse_queue_text(text, "q.yaml")
    return QueueEngine(spec, setup, queue_dir, queue_text=text, **kw).run()


def test_emitters_in_order_with_expressions_and_a_purity_cut(tmp_path, ideal_stage_setup_path):
    with hbtscope.open_setup(ideal_stage_setup_path) as setup:
        out = _run(TWO_EMITTERS, setup, tmp_path / "q")
        assert not setup.laser.emission_on
    assert out.status == "finished"
    states = out.items
    assert [k for k in states] == ["0", "1/E1/0", "1/E1/1", "1/E3/0", "1/E3/1"]
    assert [s["status"] for s in states.values()] == [
        "finished",
        "finished",
        "finished",
        "finished",
        "skipped",
    ]
    # E3's g2(0) (truth ~0.5, sigma ~0.035 in 2 s) fails the cut; E1's (~0.05) passes it
    assert "excluded" in states["1/E3/1"]["reason"]
    book = EmitterBook(tmp_path / "q")
    g2_e1, err_e1 = book.require("E1").value("g2.g2_0")
    g2_e3, err_e3 = book.require("E3").value("g2.g2_0")
    assert g2_e1 - 2 * err_e1 < 0.3 <= g2_e3 - 2 * err_e3
    # the emitter's position was filled in: each run went to its emitter
    for key, x in (("1/E1/0", 10.0), ("1/E3/0", 30.0)):
        assert states[key]["parameters"]["x_um"] == x if "parameters" in states[key] else True
        assert run_status(states[key]["run"]) == "finished"
    # the expression was evaluated when the item started: 12 nW
    started = [
        r
        for r in Journal(tmp_path / "q").records()
        if r["event"] == "item_started" and r["key"] == "1/E1/1"
    ]
    assert started[0]["parameters"]["laser_power_W"] == pytest.approx(12e-9)
    assert (tmp_path / "q" / "queue.yaml").read_text() == TWO_EMITTERS
    assert "1/E3/0 g2: finished" in (tmp_path / "q" / "queue.log").read_text()


FAILING = """
items:
  - measurement: g2
    parameters: {duration_s: 0.1, laser_power_W: "{nothing.P_sat_W}"}
    retry: 2
    on_failure: {policy}
  - {measurement: g2, parameters: {duration_s: 0.1}}
"""


@pytest.mark.parametrize(
    ("policy", "queue_status", "second_ran"),
    [
        ("skip", "finished", True),
        ("stop", "stopped", False),
    ],
)
def test_failure_policy(tmp_path, policy, queue_status, second_ran):
    text = FAILING.replace("{policy}", policy)
    with hbtscope.open_setup() as setup:
        out = _run(text, setup, tmp_path / "q")
    assert out.status == queue_status
    records = Journal(tmp_path / "q").records()
    failed = [r for r in records if r["event"] == "item_ended" and r["key"] == "0"]
    assert [r["attempt"] for r in failed] == [1, 2, 3]  # retry: 2
    assert all("items.0" in r["error"] and "nothing" in r["error"] for r in failed)
    assert ("1" in out.items) is second_ran


def test_abort_from_the_control_ends_the_run_aborted_with_the_laser_off(tmp_path):
    control = QueueControl()
    seen = []

    def on_status(status):
        seen.append(status["current"])
        if status["current"].startswith("1 "):
            control.abort.set()  # the user presses "abort" while the second item runs

    text = """
items:
  - {measurement: g2, parameters: {duration_s: 0.2}}
  - {measurement: g2, parameters: {duration_s: 30.0}}
  - {measurement: g2, parameters: {duration_s: 0.2}}
"""
    with hbtscope.open_setup() as setup:
        out = _run(text, setup, tmp_path / "q", control=control, on_status=on_status)
        assert not setup.laser.emission_on
    assert out.status == "aborted"
    assert out.items["0"]["status"] == "finished"
    assert out.items["1"]["status"] == "aborted"
    assert run_status(out.items["1"]["run"]) == "aborted"
    assert "2" not in out.items


def _realtime_setup(tmp_path: Path) -> Path:
    return sim_yaml_with(tmp_path, {"clock": {"mode": "realtime"}}, name="realtime.yaml")


def _start_queue(tmp_path: Path, text: str, setup: Path, qdir: Path) -> subprocess.Popen:
    qfile = tmp_path / "q.yaml"
    qfile.write_text(text)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hbtscope.cli",
            "queue",
            "run",
            str(qfile),
            "--setup",
            str(setup),
            "--out",
            str(qdir),
            "--json",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for(journal: Journal, key: str, proc: subprocess.Popen, timeout_s: float = 120):
    """Poll the journal until item ``key`` has started with its run file (hang guard only)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = item_states(journal.records()).get(key)
        if state and state["event"] == "item_started" and state.get("run"):
            if Path(state["run"]).exists():
                return state
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.1)
    raise AssertionError(f"item {key} never started")


THREE = """
name: resumable
items:
  - {measurement: g2, id: a, parameters: {duration_s: 0.5}}
  - {measurement: g2, id: b, parameters: {duration_s: 6.0}}
  - {measurement: g2, id: c, parameters: {duration_s: 0.5}}
"""


def test_resume_after_sigkill_reruns_only_the_interrupted_item(tmp_path, capsys):
    qdir = tmp_path / "queue"
    setup = _realtime_setup(tmp_path)
    proc = _start_queue(tmp_path, THREE, setup, qdir)
    journal = Journal(qdir)
    killed = _wait_for(journal, "1", proc)
    time.sleep(1.0)  # some of item b's tags are in its file
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first_a = item_states(journal.records())["0"]
    assert first_a["status"] == "finished"
    # `queue status` knows the queue died
    assert main(["queue", "status", str(qdir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["state"].startswith("crashed") and status["current"] == ["1"]
    # time left, learned from item a: items b and c, both g2, at a's wall time
    assert status["eta_s"] == pytest.approx(2 * status["mean_wall_s"]["g2"])

    fast = sim_yaml_with(tmp_path, {}, name="fast.yaml")
    assert main(["queue", "run", "--resume", str(qdir), "--setup", str(fast), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "finished" and result["finished"] == 3
    records = journal.records()
    ended = [(r["key"], r["status"]) for r in records if r["event"] == "item_ended"]
    assert ended == [("0", "finished"), ("1", "interrupted"), ("1", "finished"), ("2", "finished")]
    assert run_status(killed["run"]) == "interrupted"  # the partial file says so, kept
    states = item_states(records)
    assert states["0"]["run"] == first_a["run"]  # item a was not run again
    assert states["1"]["run"] != killed["run"]


def test_sigterm_aborts_the_queue_and_says_so(tmp_path):
    qdir = tmp_path / "queue"
    proc = _start_queue(tmp_path, THREE, _realtime_setup(tmp_path), qdir)
    journal = Journal(qdir)
    running = _wait_for(journal, "1", proc)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=60)
    records = journal.records()
    assert rc == 130, (
        proc.stderr.read().decode(),
        [(r["event"], r.get("key"), r.get("status"), r.get("error")) for r in records][4:],
    )
    assert records[-1]["event"] == "queue_ended" and records[-1]["status"] == "aborted"
    assert item_states(records)["1"]["status"] == "aborted"
    assert run_status(running["run"]) == "aborted"


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        (
            "items:\n  - {measurement: g2, retry: 11}\n",
            2,
            r"items.0.retry.*less than or equal to 10",
        ),
        ("items:\n  - {measurement: g2, on_failure: panic}\n", 2, r"on_failure.*skip"),
        ("items: []\n", 1, r"at least 1 item"),
        (
            "items:\n  - measurement: g2\n"
            "    parameters: {laser_power_W: \"{a.b} + __import__('os')\"}\n",
            3,
            "not allowed|unknown name",
        ),
        (
            "items:\n  - foreach_emitter: {from: scan}\n    items: [{measurement: g2}]\n",
            2,
            r"from: 'scan' is not the id of an earlier item",
        ),
        ("items:\n  - {measurement: g2}\n  - {measurement: g2, measurement: g2}\n", 3, "twice"),
        ("a: &x 1\nitems: [{measurement: g2}]\n", 1, "aliases"),
        (
            "items:\n  - foreach_emitter: {points: [{name: A, x_um: 1, y_um: 2}], from: s}\n"
            "    items: [{measurement: g2}]\n",
            2,
            "either from:",
        ),
        ("items:\n  - {measurement: g2, parameters: {duration_s: .nan}}\n", 2, "finite"),
    ],
)
def test_bad_queue_files_name_the_line(text, line, says):
    with pytest.raises(QueueFileError) as info:
        parse_queue_text(text, "night.yaml")
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"night.yaml, line {line}")
    import re

    assert re.search(says, str(info.value)), str(info.value)


@pytest.mark.parametrize(
    ("item", "line", "says"),
    [
        ("{measurement: g3}", 2, "unknown measurement 'g3'; runnable: "),
        ("{measurement: g2, parameters: {durations: 1}}", 2, "has no parameter 'durations'"),
        ("{measurement: g2, parameters: {duration_s: -1}}", 2, "below the minimum (allowed [0.01"),
        ("{measurement: g2, parameters: {laser_power_W: 1.0e-3}}", 2, "max_power_W"),
        ("{measurement: g2, parameters: {x_um: 500}}", 2, "stage travel"),
    ],
)
def test_queue_check_refuses_what_cannot_run_before_anything_moves(
    tmp_path, capsys, item, line, says
):
    q = tmp_path / "night.yaml"
    q.write_text(f"items:\n  - {item}\n")
    assert main(["queue", "check", str(q)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hbtscope: {q}, line {line} (items.0)") and says in err, err
    assert main(["queue", "run", str(q), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()  # nothing ran, no journal, no file


def test_pause_resume_and_stop_from_another_terminal(tmp_path, capsys):
    """``hbtscope queue pause|resume|stop DIR`` act on a running queue between its items."""
    import threading
    from datetime import UTC, datetime

    qdir = tmp_path / "q"
    text = "items:\n" + "".join(
        "  - {measurement: g2, parameters: {duration_s: 0.2}}\n" for _ in range(4)
    )
    requests: list[str] = []
    resumed_at: list[datetime] = []

    def resume():
        resumed_at.append(datetime.now(UTC))
        main(["queue", "resume", str(qdir)])

    def on_status(status):
        current = status["current"]
        if current.startswith("1 ") and "pause" not in requests:
            requests.append("pause")
            assert main(["queue", "pause", str(qdir)]) == 0
        if status["paused"] and "resume" not in requests:  # waiting between items 1 and 2
            requests.append("resume")
            threading.Timer(0.3, resume).start()
        if current.startswith("2 ") and "stop" not in requests:
            requests.append("stop")
            assert main(["queue", "stop", str(qdir)]) == 0

    with hbtscope.open_setup() as setup:
        out = _run(text, setup, qdir, on_status=on_status)
    assert out.status == "stopped"
    assert [k for k, s in out.items.items() if s["status"] == "finished"] == ["0", "1", "2"]
    records = Journal(qdir).records()
    t = {
        r["event"] + r.get("key", ""): datetime.fromisoformat(r["time"])
        for r in records
        if r["event"] in ("item_ended", "item_started")
    }
    assert t["item_started2"] >= resumed_at[0] > t["item_ended1"]  # it waited, paused
    assert "3" not in out.items  # stopped after the current item, as asked


def test_refocus_before_each_emitter_and_on_schedule(tmp_path):
    """refocus: {before_each_emitter, every_min}: before the emitter's first item, then when
    every_min of (simulated) time have passed since the last refocus; its position history
    is in the emitter book and the next items go where it found the emitter."""
    text = """
refocus: {before_each_emitter: true, every_min: 0.25}
items:
  - foreach_emitter:
      points: [{name: E1, x_um: 10.1, y_um: 9.9}]
    items:
""" + "".join("      - {measurement: g2, parameters: {duration_s: 5.0}}\n" for _ in range(4))
    with hbtscope.open_setup() as setup:
        out = _run(text, setup, tmp_path / "q")
    assert out.status == "finished"
    keys = list(out.items)
    refocus_keys = [k for k in keys if "refocus" in k]
    # 4 items of 5 s after a refocus: due again only before the 4th (15 s >= 0.25 min)
    assert len(refocus_keys) == 2
    assert keys.index(refocus_keys[1]) == keys.index("0/E1/2") + 1
    history = EmitterBook(tmp_path / "q").require("E1").positions
    assert [p["source"] for p in history].count("refocus") == 2
    x, y = history[-1]["x_um"], history[-1]["y_um"]
    assert abs(x - 10.0) < 0.05 and abs(y - 10.0) < 0.05  # the demo emitter is at (10, 10)
    g2_runs = [s for k, s in out.items.items() if "refocus" not in k]
    assert all(s["status"] == "finished" for s in g2_runs)
