"""A queue on a misbehaving microscope: a serial timeout, a tagger overflow, an emitter that
bleaches, a tagger that disconnects. The queue finishes the other items, records each failure
with its reason, loses no completed run and ends with the light sources off."""

from __future__ import annotations

import h5py

import hbtscope
from hbtscope.queue.engine import QueueEngine
from hbtscope.queue.journal import Journal
from hbtscope.queue.spec import parse_queue_text
from hbtscope.reanalyse import analyse_run
from hbtscope.setup import default_setup_path
from hbtscope.storage import run_status

FAULTS = """  faults:
    - {kind: timeout, role: stage, at_s: 0.0}
    - {kind: tagger_overflow, at_s: 3.0, duration_s: 0.2}
    - {kind: bleach, emitter: 1, at_s: 5.0}
    - {kind: disconnect, role: tagger, at_s: 9.0}
"""

#: E2 = emitter 1 of sim.yaml, at (20, 10), measured before and after it bleaches at 5 s
QUEUE = """
name: faults
items:
  - {measurement: g2, retry: 1, parameters: {duration_s: 1.0, x_um: 10.0, y_um: 10.0}}
  - {measurement: g2, parameters: {duration_s: 1.0}}
  - {measurement: g2, parameters: {duration_s: 1.0, x_um: 20.0, y_um: 10.0}}
  - {measurement: g2, parameters: {duration_s: 1.0}}
  - {measurement: g2, parameters: {duration_s: 1.0}}
  - {measurement: g2, parameters: {duration_s: 1.0}}
"""


def test_a_queue_survives_the_faults_of_a_real_microscope(tmp_path):
    text = default_setup_path().read_text()
    anchor = "  sync: {tagger_channel: 1, delay_ps: 0}\n"
    assert anchor in text
    setup_path = tmp_path / "faulty.yaml"
    setup_path.write_text(text.replace(anchor, anchor + FAULTS))
    qdir = tmp_path / "q"
    with hbtscope.open_setup(setup_path) as setup:
        outcome = QueueEngine(parse_queue_text(QUEUE), setup, qdir, queue_text=QUEUE).run()
        # safe, although the tagger is gone (its bookkeeping once kept the laser on)
        assert not setup.laser.emission_on and not setup.led.on
    assert outcome.status == "finished"
    records = Journal(qdir).records()
    ended = [r for r in records if r["event"] == "item_ended"]
    # the serial timeout failed the first attempt (pyvisa's timeout, named); the retry ran
    assert ended[0]["status"] == "failed" and "VI_ERROR_TMO" in ended[0]["error"]
    assert ended[1]["key"] == "0" and ended[1]["status"] == "finished"
    # the tagger disconnected: the items after it failed with that reason, the queue went on
    failed_late = [r for r in ended[1:] if r["status"] == "failed"]
    assert failed_late and all("disconnected" in r["error"] for r in failed_late)
    assert records[-1]["event"] == "queue_ended"
    finished = [r for r in ended if r["status"] == "finished"]
    assert len(finished) + len(failed_late) == 6
    overflow, reference = {}, {}
    for r in finished:  # every completed run is intact and analysable from its file
        assert run_status(r["run"]) == "finished"
        result = analyse_run(r["run"])
        assert result["n_tags"] > 0
        with h5py.File(r["run"], "r") as f:
            overflow[r["key"]] = int(f["analysis/g2"].attrs["overflow_missed_tags"])
            reference[r["key"]] = float(f["analysis/g2"].attrs["reference_counts"])
    assert sum(overflow.values()) > 0  # the overflow was counted, not hidden
    # E2 before (item 2) and after (item 3) it bleached: its side peaks all but vanish
    assert reference["3"] < 0.01 * reference["2"]
