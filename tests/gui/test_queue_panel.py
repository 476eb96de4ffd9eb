"""The Queue dock (pytest-qt, offscreen, the real window on the simulated microscope with its
fast clock): "characterise all" over two points runs to the end with the live view showing
each run; save/load round trip; reorder; pause/resume, stop, abort and closing mid-queue
(run ``aborted``, laser off); resuming a queue left by a crash; a bad file's message in place;
adding items; re-queueing a run from the run browser."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PyQt5.QtCore import Qt

from hbtscope import events as ev
from hbtscope.gui import queue_model as qm
from hbtscope.queue.engine import QueueEngine
from hbtscope.queue.journal import Journal, item_states
from hbtscope.queue.spec import load_queue_file, parse_queue_text
from hbtscope.storage import open_run, read_parameters, read_values, run_status

RUN_TIMEOUT_MS = 120_000  # the first run of a process compiles the numba kernels
#: a quick characterisation: one short g2 per point (each fills in the point's position)
QUICK = {
    "items": [{"measurement": "g2", "parameters": {"duration_s": 0.5}}],
    "exclude_if": None,
    "refocus": None,
}
#: two emitters of the simulated sample (hbtscope/config/sim.yaml); the second is the demo one
POINTS = [
    {"name": "POI 1", "x_um": 20.0, "y_um": 10.0, "z_um": 0.0},
    {"name": "POI 2", "x_um": 10.0, "y_um": 10.0, "z_um": 0.0},
]


def click(qtbot, button) -> None:
    assert button.isEnabled(), button.text()
    qtbot.mouseClick(button, Qt.LeftButton)


def wait_ended(qtbot, panel) -> None:
    qtbot.waitUntil(lambda: not panel.running, timeout=RUN_TIMEOUT_MS)


def wait_started(qtbot, panel, key: str) -> dict:
    """Until item ``key`` runs with its run file (from the journal the panel shows)."""

    def started():
        s = panel.states.get(key)
        return s is not None and s["event"] == "item_started" and bool(s.get("run"))

    qtbot.waitUntil(started, timeout=RUN_TIMEOUT_MS)
    return panel.states[key]


def ended_keys(queue_dir: Path) -> list[tuple[str, str]]:
    return [
        (r["key"], r["status"]) for r in Journal(queue_dir).records() if r["event"] == "item_ended"
    ]


def test_characterise_two_points_runs_to_the_end_with_live_runs(qtbot, make_window, screenshot_dir):
    window = make_window()
    panel = window.queue_panel
    seen: list[ev.RunStarted] = []
    window.bridge.event.connect(lambda e: seen.append(e) if isinstance(e, ev.RunStarted) else None)
    panel.set_template(QUICK)
    assert panel.characterise(POINTS)
    assert panel.isVisible()  # raised
    (block,) = panel.entries
    assert [p["name"] for p in block["foreach_emitter"]["points"]] == ["POI_1", "POI_2"]
    shot = []

    def screenshot_mid_run(event):  # half-way through the second point's g2
        if seen and seen[-1].parameters["emitter"] == "POI_2" and not shot:
            if isinstance(event, ev.Progress) and event.percent >= 50:
                shot.append(window.grab().save(str(screenshot_dir / "queue_panel_running.png")))

    window.bridge.event.connect(screenshot_mid_run)
    click(qtbot, panel.run_button)
    assert panel.running
    # the queue holds the instruments: no single run, no instrument control meanwhile
    assert not window.measurement_dock.start_button.isEnabled()
    assert not window.instruments.controls.isEnabled()
    assert not panel.run_button.isEnabled() and panel.abort_button.isEnabled()
    # a start from elsewhere (the points list's Refocus) is refused at once, not queued
    # behind the queue's hold on the instruments
    window.measurement_dock.start()
    assert not window.measurement_dock.running
    assert "refused: the queue" in window.measurement_dock.status.text()
    wait_ended(qtbot, panel)

    out = panel.last_outcome
    assert out.status == "finished"
    states = item_states(Journal(out.queue_dir).records())
    assert list(states) == ["0/POI_1/0", "0/POI_2/0"]
    for key, x_um in (("0/POI_1/0", 20.0), ("0/POI_2/0", 10.0)):
        run = states[key]["run"]
        assert states[key]["status"] == "finished" and run_status(run) == "finished"
        assert Path(run).is_relative_to(out.queue_dir)
        with open_run(run) as f:
            assert float(read_parameters(f)[0]["x_um"]) == x_um  # the point's position
        # both points are single emitters of the simulated sample (truth g2(0) = 0.05 and
        # 0.2 before background): antibunched beyond 3 sigma (0.5 s: g2(0) + 3 sigma is
        # ~0.52 +- 0.09 over start times, 1.0 is > 5 spreads away; at 0.2 s it reached 1.0 in
        # 10 of 150 start times); an empty spot or a wrong position would give uncorrelated
        # light, g2(0) ~ 1
        values = states[key]["values"]
        assert values["g2_0"] + 3 * values["g2_0_err"] < 1.0, values
    # the live view showed each run as the queue ran it, ending on the last one's g2(0)
    assert [e.procedure for e in seen] == ["g2", "g2"]
    assert [e.parameters["emitter"] for e in seen] == ["POI_1", "POI_2"]
    with open_run(states["0/POI_2/0"]["run"]) as f:
        g2_0 = read_values(f["analysis/g2"])["g2_0"]
    match = re.fullmatch(r"g2\(0\) = (-?[\d.]+|nan) ± ([\d.]+)", window.live.headline.text())
    assert match and float(match.group(1)) == pytest.approx(g2_0, abs=0.01)
    # the journal shown is the journal on disk; statuses in the tree; window free again
    assert panel.journal_view.toPlainText().count("\n") + 1 == len(Journal(out.queue_dir).records())
    assert "queue_ended" in panel.journal_view.toPlainText().splitlines()[-1]
    assert panel.rows()[1][1].text(3) == "2 finished"
    assert panel.status_label.text() == "queue finished  ·  2 items done"
    assert panel.last_status["eta_s"] == pytest.approx(0.0)
    assert window.measurement_dock.start_button.isEnabled()
    assert window.instruments.controls.isEnabled()
    assert not window.setup.laser.emission_on
    assert (out.queue_dir / "report.html").is_file()
    # the runs browsable (the browser lists the data directory in a worker thread)
    browser = window.run_browser
    qtbot.waitUntil(lambda: browser.files.count() == 2, timeout=10_000)
    listed = [browser.files.item(i).text() for i in range(2)]
    assert sorted(listed) == sorted(states[k]["run"] for k in states)
    assert shot == [True]


def test_the_default_template_is_the_demo_survey_per_point(make_window, tmp_path, screenshot_dir):
    window = make_window()
    panel = window.queue_panel
    assert panel.characterise(POINTS)
    assert panel.grab().save(str(screenshot_dir / "queue_panel_characterise.png"))
    (block,) = panel.entries
    names = [i["measurement"] for i in block["items"]]
    assert names == ["saturation", "spectrum_series", "g2", "tttr_trace"]
    assert block["items"][2]["parameters"]["power_in_P_sat"] == 1.0  # g2 at P_sat
    assert panel.header["refocus"] == {"before_each_emitter": True}
    # what it builds is a queue file the CLI accepts
    assert panel.save_file(tmp_path / "c.yaml")
    spec, _ = load_queue_file(tmp_path / "c.yaml")
    assert [p.name for p in spec.items[0].foreach_emitter.points] == ["POI_1", "POI_2"]
    # the block's options are its selection (its points kept); it has no parameters
    assert panel.edit((0, None), "options", "{limit: 1, min_snr: 0}")
    assert panel.entries[0]["foreach_emitter"]["limit"] == 1
    assert len(panel.entries[0]["foreach_emitter"]["points"]) == 2
    assert not panel.edit((0, None), "parameters", "{duration_s: 1.0}")
    assert not panel.edit((0, None), "options", "{limit: 0}")
    assert "limit" in panel.message.text()
    assert panel.edit((0, None), "options", "{limit: 2}")
    block = panel.entries[0]
    # a point without a position is refused in place, the queue stays
    assert not panel.characterise([{"name": "x", "x_um": float("nan"), "y_um": 0, "z_um": 0}])
    assert "not finite" in panel.message.text() and panel.entries == [block]


def test_save_then_load_gives_the_same_queue(make_window, tmp_path):
    window = make_window()
    panel = window.queue_panel
    demo = qm.DEMO_QUEUE
    assert panel.load_file(demo)
    header, entries = panel.header, panel.entries
    assert panel.save_file(tmp_path / "again.yaml")
    assert load_queue_file(tmp_path / "again.yaml")[0] == load_queue_file(demo)[0]
    panel.clear()
    assert panel.entries == []
    assert panel.load_file(tmp_path / "again.yaml")
    assert (panel.header, panel.entries) == (header, entries)
    assert panel.tree.topLevelItemCount() == len(entries)


def test_a_bad_queue_file_shows_its_message_in_place(make_window, tmp_path):
    window = make_window()
    panel = window.queue_panel
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nitems:\n  - {measurement: g2, parameters: {duration_s: -1}}\n")
    assert not panel.load_file(bad)
    text = panel.message.text()
    assert str(bad) in text and "line 3" in text and "duration_s" in text
    assert panel.message.styleSheet()  # shown as a refusal
    assert panel.entries == []
    aliases = tmp_path / "alias.yaml"
    aliases.write_text("a: &x {measurement: g2}\nitems: [*x]\n")
    assert not panel.load_file(aliases)
    assert "aliases" in panel.message.text()


def test_reorder_changes_the_order_run(qtbot, make_window):
    window = make_window()
    panel = window.queue_panel
    assert panel.add_item("g2", {"duration_s": 0.1, "x_um": 10.0, "y_um": 10.0})
    assert panel.add_item("g2", {"duration_s": 0.1, "x_um": 20.0, "y_um": 10.0})
    panel.select((1, None))
    click(qtbot, panel.up_button)
    assert [e["parameters"]["x_um"] for e in panel.entries] == [20.0, 10.0]
    assert panel.selected_path() == (0, None)
    assert not panel.move(-1)  # already first
    click(qtbot, panel.run_button)
    wait_ended(qtbot, panel)
    states = panel.last_outcome.items
    xs = []
    for key in ("0", "1"):
        with open_run(states[key]["run"]) as f:
            xs.append(float(read_parameters(f)[0]["x_um"]))
    assert xs == [20.0, 10.0]


def test_adding_editing_and_removing_items(qtbot, make_window):
    window = make_window()
    panel = window.queue_panel
    panel._choose("g2")
    form = panel.form("g2")
    form.set_value("duration_s", 0.3)
    click(qtbot, panel.add_button)
    assert panel.entries == [{"measurement": "g2", "parameters": {"duration_s": 0.3}}]
    form.set_value("duration_s", "abc")
    click(qtbot, panel.add_button)
    assert "duration_s" in form.refusal.text() and len(panel.entries) == 1
    # a cell edited: checked as the file would be; a refused edit is undone and says why
    assert panel.edit((0, None), "parameters", "{duration_s: 0.5, laser_power_W: '{a.P}'}")
    assert panel.entries[0]["parameters"]["laser_power_W"] == "{a.P}"
    assert panel.edit((0, None), "options", "{id: first, retry: 1}")
    assert panel.entries[0]["id"] == "first"
    assert not panel.edit((0, None), "parameters", "{no_such: 1}")
    assert "no_such" in panel.message.text()
    assert "no_such" not in panel.rows()[0][1].text(1)
    assert not panel.edit((0, None), "options", "{retry: 99}")
    assert panel.entries[0]["retry"] == 1
    panel.select((0, None))
    click(qtbot, panel.remove_button)
    assert panel.entries == []


def test_rows_dragged_to_a_new_place(make_window):
    """What a drop does to the tree (Qt's InternalMove), then the queue in that order."""
    window = make_window()
    panel = window.queue_panel
    panel.set_template(
        {"items": [{"measurement": "g2"}, {"measurement": "saturation"}], "refocus": None}
    )
    assert panel.characterise(POINTS[:1])
    assert panel.add_item("tttr_trace", {})
    tree = panel.tree
    block = tree.topLevelItem(0)
    block.insertChild(0, block.takeChild(1))  # saturation before g2
    tree.insertTopLevelItem(0, tree.takeTopLevelItem(1))  # the trace before the block
    assert panel.apply_tree_order()
    trace, block = panel.entries
    assert trace["measurement"] == "tttr_trace"
    assert [i["measurement"] for i in block["items"]] == ["saturation", "g2"]
    # a row dropped onto a plain item is refused and the tree goes back
    tree.topLevelItem(0).addChild(tree.takeTopLevelItem(1))
    assert not panel.apply_tree_order()
    assert "for-each block only" in panel.message.text()
    assert panel.tree.topLevelItemCount() == 2 and panel.entries == [trace, block]
    # the plain item dropped into the block: one of the block's items now
    tree.topLevelItem(1).addChild(tree.takeTopLevelItem(0))
    assert panel.apply_tree_order()
    (block,) = panel.entries
    assert [i["measurement"] for i in block["items"]] == ["saturation", "g2", "tttr_trace"]
    # only a block takes rows dropped on it
    row = panel.tree.topLevelItem(0)
    assert row.flags() & Qt.ItemIsDropEnabled
    assert not row.child(0).flags() & Qt.ItemIsDropEnabled


def test_pause_resume_and_stop_after_current(qtbot, make_window):
    window = make_window()
    panel = window.queue_panel
    for _ in range(3):
        assert panel.add_item("g2", {"duration_s": 0.1})
    # the queue waits for the instruments (the hardware lock) before it starts: hold them so
    # that Pause is pressed before the first item, whatever the threads' timing
    with window.hardware_lock:
        click(qtbot, panel.run_button)
        click(qtbot, panel.pause_button)
    assert panel.pause_button.text() == "Resume"
    qtbot.waitUntil(lambda: panel.last_status.get("paused") is True, timeout=RUN_TIMEOUT_MS)
    assert "paused" in panel.status_label.text()
    assert [r["event"] for r in panel.records] == ["queue_started"]  # nothing started
    click(qtbot, panel.stop_button)  # acts after the current item: the one resume starts
    click(qtbot, panel.pause_button)
    assert panel.pause_button.text() == "Pause"
    wait_ended(qtbot, panel)
    out = panel.last_outcome
    assert out.status == "stopped"
    assert ended_keys(out.queue_dir) == [("0", "finished")]
    assert "stopped after the current item" in panel.message.text()
    assert not window.setup.laser.emission_on


def test_abort_ends_the_run_aborted_with_the_laser_off(qtbot, make_window):
    window = make_window()
    panel = window.queue_panel
    assert panel.add_item("g2", {"duration_s": 0.1})
    assert panel.add_item("g2", {"duration_s": 600.0})
    assert panel.add_item("g2", {"duration_s": 0.1})
    click(qtbot, panel.run_button)
    running = wait_started(qtbot, panel, "1")
    click(qtbot, panel.abort_button)
    wait_ended(qtbot, panel)
    out = panel.last_outcome
    assert out.status == "aborted"
    assert ended_keys(out.queue_dir) == [("0", "finished"), ("1", "aborted")]
    assert run_status(running["run"]) == "aborted"
    assert not window.setup.laser.emission_on
    assert panel.rows()[1][1].text(3) == "aborted"


def test_closing_mid_queue_aborts_it_and_leaves_the_laser_off(qtbot, make_window, setup):
    window = make_window()
    panel = window.queue_panel
    assert panel.add_item("g2", {"duration_s": 600.0, "x_um": 10.0, "y_um": 10.0})
    click(qtbot, panel.run_button)
    running = wait_started(qtbot, panel, "0")
    queue_dir = panel.queue_dir
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=RUN_TIMEOUT_MS)
    assert run_status(running["run"]) == "aborted"
    records = Journal(queue_dir).records()
    assert records[-1]["event"] == "queue_ended" and records[-1]["status"] == "aborted"
    assert not setup.laser.emission_on


CRASHED = """
name: left by a crash
items:
  - {measurement: g2, id: a, parameters: {duration_s: 0.1}}
  - {measurement: g2, id: b, parameters: {duration_s: 0.1}}
  - {measurement: g2, id: c, parameters: {duration_s: 0.1}}
"""


def test_resume_a_queue_left_by_a_crash(qtbot, make_window, setup, tmp_path):
    """The journal cut after item a ended, with half a line of item b: what a power cut leaves."""
    qdir = tmp_path / "crashed"
    QueueEngine(parse_queue_text(CRASHED, "q.yaml"), setup, qdir, queue_text=CRASHED).run()
    journal = Journal(qdir)
    lines = journal.path.read_bytes().splitlines(keepends=True)
    end_a = next(
        n for n, raw in enumerate(lines) if b'"item_ended"' in raw and b'"key": "0"' in raw
    )
    journal.path.write_bytes(b"".join(lines[: end_a + 1]) + lines[end_a + 1][:25])
    run_a = item_states(journal.records())["0"]["run"]
    window = make_window()
    panel = window.queue_panel
    assert panel.resume_dir(qdir)
    wait_ended(qtbot, panel)
    out = panel.last_outcome
    assert out.status == "finished"
    ended = ended_keys(qdir)
    assert ended == [("0", "finished"), ("1", "finished"), ("2", "finished")]
    states = item_states(journal.records())
    assert states["0"]["run"] == run_a  # a was not run again
    assert [r["resume"] for r in journal.records() if r["event"] == "queue_started"] == [
        False,
        True,
    ]
    assert [e["measurement"] for e in panel.entries] == ["g2"] * 3  # the queue shown
    assert "queue_started" in panel.journal_view.toPlainText().splitlines()[0]  # its past too
    # a queue that ended cannot be resumed; a directory that is no queue neither
    assert not panel.resume_dir(qdir)
    assert "ended (finished)" in panel.message.text()
    assert not panel.resume_dir(tmp_path)
    assert "not a queue directory" in panel.message.text()


def test_add_a_run_to_the_queue_from_the_run_browser(qtbot, make_window, data_dir):
    window = make_window()
    dock = window.measurement_dock
    dock.select("g2")
    dock.form("g2").set_value("duration_s", 0.15)
    click(qtbot, dock.start_button)
    assert not window.queue_panel.run_button.isEnabled()  # a single run holds the setup
    assert not window.queue_panel.start() and "measurement is running" in (
        window.queue_panel.message.text()
    )
    qtbot.waitUntil(lambda: dock.thread is None, timeout=RUN_TIMEOUT_MS)
    path = dock.last_outcome.path
    browser = window.run_browser
    browser.open_run(path)
    qtbot.waitUntil(lambda: browser.requeue.isEnabled(), timeout=RUN_TIMEOUT_MS)
    click(qtbot, browser.requeue)
    (entry,) = window.queue_panel.entries
    assert entry["measurement"] == "g2"
    with open_run(path) as f:
        params = {k: v for k, v in read_parameters(f)[0].items() if k in entry["parameters"]}
    assert entry["parameters"]["duration_s"] == 0.15
    assert entry["parameters"] == pytest.approx(params)
    # NaN ("stay where the stage is") is left out: a queue file takes finite values
    assert "x_um" not in entry["parameters"] and "x_um" in window.queue_panel.message.text()
    browser.wait_idle()
    assert json.dumps(entry)  # plain values, as a queue file holds them
