"""The queue process SIGKILLed at random moments (a journal write, a run-file flush, between
items, during a measurement); ``--resume`` completes the queue. Every finished item has
exactly one finished run file, intact; an interrupted one is kept and marked; the journal
reads cleanly line by line."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hbtscope.cli import main
from hbtscope.queue.journal import Journal, item_states
from hbtscope.reanalyse import analyse_run
from hbtscope.storage import run_status

REPO = Path(__file__).resolve().parents[2]

QUEUE = """
name: crash me
items:
  - {measurement: g2, id: a, parameters: {duration_s: 0.5, record_tags: true}}
  - {measurement: g2, id: b, parameters: {duration_s: 1.0}}
  - foreach_emitter:
      points:
        - {name: P1, x_um: 10.0, y_um: 10.0}
        - {name: P2, x_um: 20.0, y_um: 10.0}
    items:
      - {measurement: g2, parameters: {duration_s: 0.5, laser_power_W: "{a.rate_a_cps} * 0 + 2e-8"}}
"""
N_ITEMS = 4


def _env() -> dict[str, str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_killed_at_a_random_moment_then_resumed(tmp_path, seed, capsys):
    qfile, qdir = tmp_path / "q.yaml", tmp_path / "queue"
    qfile.write_text(QUEUE)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hbtscope.cli",
            "queue",
            "run",
            str(qfile),
            "--out",
            str(qdir),
            "--json",
        ],
        env=_env(),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    journal = Journal(qdir)
    # kill after a random number of journal lines (a complete run writes ~16) plus a random
    # fraction of a second: during a measurement, a run-file flush, a journal write, between
    # items; a hang guard, never a timing assertion
    rng = random.Random(seed)
    target, extra_s = rng.randint(1, 14), rng.uniform(0.0, 0.3)
    deadline = time.monotonic() + 120
    while not journal.path.exists() or len(journal.path.read_bytes().splitlines()) < target:
        if proc.poll() is not None:
            break  # it finished before the target: the resume has nothing left to do
        assert time.monotonic() < deadline, proc.stderr.read().decode()
        time.sleep(0.005)
    time.sleep(extra_s)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = item_states(journal.records())
    finished_before = {k: s["run"] for k, s in before.items() if s.get("status") == "finished"}

    rc = main(["queue", "run", "--resume", str(qdir), "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["status"] == "finished" and out["finished"] == N_ITEMS, out

    raw = journal.path.read_bytes().splitlines()
    records = journal.records()
    assert len(raw) - len(records) <= 1  # at most the one line the kill cut short
    states = item_states(records)
    finished = {k: s["run"] for k, s in states.items() if s.get("status") == "finished"}
    assert len(finished) == N_ITEMS
    for key, run in finished_before.items():  # nothing finished was run again
        assert finished[key] == run
    ended = [r for r in records if r["event"] == "item_ended" and r["status"] == "finished"]
    assert sorted(r["key"] for r in ended) == sorted(finished)  # each item finished once
    for run in finished.values():  # intact and analysable
        assert run_status(run) == "finished" and analyse_run(run)["n_tags"] > 0
    others = {str(p) for p in qdir.rglob("*.h5")} - {str(Path(r)) for r in finished.values()}
    for path in others:  # the run a kill cut short: kept, and says so
        assert run_status(path) == "interrupted", path
