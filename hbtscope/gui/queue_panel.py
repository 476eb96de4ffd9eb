"""The Queue dock: build, edit, load and save a queue; run it on the shared queue engine.

The queue is shown as a tree: one row per item (measurement, its parameters, its options
``id``/``retry``/``on_failure``, its status), a ``foreach_emitter`` block as a row with its
items below it. Double-click a parameters or options cell to edit it (YAML flow style,
``{duration_s: 0.5, laser_power_W: '{saturation.P_sat_W}'}``); Up/Down or a drag reorder,
Remove removes; Add puts the chosen runnable measurement with its form's values (those that
differ from the defaults) after the selected row, or into the selected block. Every change is
checked as the queue file would be (:mod:`hbtscope.gui.queue_editing`,
:mod:`hbtscope.gui.queue_model`); a refused one is shown in place and undone. Load/Save
read and write queue files (the format of docs/queue.md); a bad file shows its
:class:`~hbtscope.queue.spec.QueueFileError` (file, line, what is allowed) in place.

**Characterise all**: :meth:`QueuePanel.characterise` builds one ``foreach_emitter`` block over
the given points of interest with the characterisation template (by default the foreach items
of ``hbtscope/config/queues/demo.yaml``: saturation, spectrum series, g2 at P_sat, TTTR trace;
"Load template…" takes another file's, "Block as template" the selected block's).

**Run** runs the queue in a :class:`~hbtscope.gui.queue_worker.QueueThread` into
``<data dir>/queues/<name>-<time>`` (its runs appear in the live view as they run), with
Pause/Resume, Stop after current and Abort acting through the engine's ``QueueControl``; the
journal is shown as it is written, with the current item, its progress and the time left.
**Resume queue…** continues a queue directory whose journal has no end (a crash), as
``hbtscope queue run --resume DIR`` does.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt, pyqtSignal
from PyQt5.QtWidgets import (
    QComboBox,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from hbtscope import events as ev
from hbtscope.gui import queue_model as qm
from hbtscope.gui.parameter_form import ParameterForm
from hbtscope.gui.queue_editing import COLUMNS, EDITABLE, QueueEditing, RowPath
from hbtscope.gui.queue_worker import QueueThread
from hbtscope.queue.journal import FINAL
from hbtscope.queue.spec import QueueFileError

ERROR_STYLE = "color: #b00000;"


def journal_line(r: dict[str, Any]) -> str:
    """One journal record as one line of the panel's journal view."""
    t = str(r.get("time", ""))[11:19]
    parts = [t, r.get("event", "")]
    for key in ("key", "measurement", "emitter", "status"):
        if r.get(key) not in (None, ""):
            parts.append(str(r[key]))
    if r.get("run"):
        parts.append(Path(str(r["run"])).name)
    if r["event"] == "emitters_selected":
        parts.append(", ".join(e.get("name", "?") for e in r.get("emitters", [])))
    note = r.get("error") or r.get("reason")
    if note:
        parts.append(f"— {note}")
    return " ".join(str(p) for p in parts)


def eta_text(eta_s: float | None) -> str:
    if eta_s is None or not math.isfinite(eta_s):
        return "learning (a measurement not run yet)"
    if eta_s < 10:
        return f"{eta_s:.1f} s"
    return f"{eta_s:.0f} s" if eta_s < 120 else f"{eta_s / 60:.1f} min"


class QueuePanel(QueueEditing, QDockWidget):
    """The Queue dock (see the module doc)."""

    #: a queue began to run (its name): the instruments are the queue's
    queue_started = pyqtSignal(str)
    #: the queue is over (QueueOutcome, or None if it was refused or crashed)
    queue_ended = pyqtSignal(object)
    #: an item of the running queue ended (its journal record: run file, status)
    item_ended = pyqtSignal(object)

    def __init__(
        self,
        measurements: dict[str, Any],
        setup: Any,
        data_dir: str | Path,
        displays: list[Callable[[Any], None]],
        hardware_lock: threading.Lock,
        events: Any = None,
        parent: QWidget | None = None,
    ):
        super().__init__("Queue", parent)
        self.setObjectName("dock-queue")
        self.measurements = measurements
        self.setup = setup
        self.data_dir = Path(data_dir)
        self.displays = list(displays)
        self.hardware_lock = hardware_lock
        self.header: dict[str, Any] = {"name": "queue"}
        self.entries: list[dict[str, Any]] = []
        self.template: dict[str, Any] = qm.template_of()
        self.thread: QueueThread | None = None
        self.queue_dir: Path | None = None
        self.last_outcome: Any = None
        self.last_status: dict[str, Any] = {}
        self.records: list[dict[str, Any]] = []
        self.states: dict[str, dict[str, Any]] = {}
        self._single_run = False
        self._forms: dict[str, ParameterForm] = {}
        self._build()
        if events is not None:
            events.connect(self._on_event)
        self._rebuild()

    # --- widgets ------------------------------------------------------------------------

    def _button(self, text: str, slot: Callable[[], Any], name: str) -> QPushButton:
        b = QPushButton(text)
        b.setObjectName(f"queue-{name}")
        b.clicked.connect(slot)
        return b

    def _build(self) -> None:
        body = QWidget()
        layout = QVBoxLayout(body)
        files = QHBoxLayout()
        self.name_edit = QLineEdit(self.header["name"])
        self.name_edit.setObjectName("queue-name")
        self.name_edit.setToolTip("the queue's name (its directory and report are named so)")
        self.name_edit.editingFinished.connect(self._name_edited)
        self.load_button = self._button("Load…", self._ask_load, "load")
        self.save_button = self._button("Save…", self._ask_save, "save")
        self.resume_dir_button = self._button("Resume queue…", self._ask_resume, "resume-dir")
        self.resume_dir_button.setToolTip("continue a queue directory left by a crash")
        for w in (QLabel("name"), self.name_edit, self.load_button, self.save_button):
            files.addWidget(w)
        files.addWidget(self.resume_dir_button)
        layout.addLayout(files)

        self.tree = _QueueTree()
        self.tree.setObjectName("queue-tree")
        self.tree.dropped.connect(self._dropped)
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setEditTriggers(QTreeWidget.NoEditTriggers)
        self.tree.itemDoubleClicked.connect(self._double_clicked)
        self.tree.itemChanged.connect(self._item_changed)
        for col, width in enumerate((200, 170, 90)):
            self.tree.setColumnWidth(col, width)

        edit = QHBoxLayout()
        self.up_button = self._button("Up", self.move_up, "up")
        self.down_button = self._button("Down", self.move_down, "down")
        self.remove_button = self._button("Remove", self.remove_selected, "remove")
        self.clear_button = self._button("Clear", self.clear, "clear")
        for w in (self.up_button, self.down_button, self.remove_button, self.clear_button):
            edit.addWidget(w)

        add = QHBoxLayout()
        self.chooser = QComboBox()
        self.chooser.setObjectName("queue-chooser")
        self.chooser.addItems(list(self.measurements))
        self.chooser.currentTextChanged.connect(self._choose)
        self.add_button = self._button("Add", self.add_from_form, "add")
        self.add_button.setToolTip("add the measurement with these values after the selection")
        add.addWidget(self.chooser, 1)
        add.addWidget(self.add_button)
        self.form_stack = QStackedWidget()
        form_scroll = QScrollArea()
        form_scroll.setWidgetResizable(True)
        form_scroll.setWidget(self.form_stack)

        template = QHBoxLayout()
        self.template_label = QLabel("")
        self.template_label.setWordWrap(True)
        self.load_template_button = self._button(
            "Load template…", self._ask_template, "load-template"
        )
        self.use_template_button = self._button(
            "Block as template", self.use_selected_as_template, "use-template"
        )
        template.addWidget(self.template_label, 1)
        template.addWidget(self.load_template_button)
        template.addWidget(self.use_template_button)

        self.message = QLabel("")
        self.message.setObjectName("queue-message")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextSelectableByMouse)

        run = QHBoxLayout()
        self.run_button = self._button("Run", self.start, "run")
        self.pause_button = self._button("Pause", self.toggle_pause, "pause")
        self.stop_button = self._button("Stop after current", self.stop_after_current, "stop")
        self.abort_button = self._button("Abort", self.abort, "abort")
        for w in (self.run_button, self.pause_button, self.stop_button, self.abort_button):
            run.addWidget(w)
        self.status_label = QLabel("idle")
        self.status_label.setObjectName("queue-status")
        self.status_label.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(10)
        self.journal_view = QPlainTextEdit()
        self.journal_view.setObjectName("queue-journal")
        self.journal_view.setReadOnly(True)
        self.journal_view.setMaximumBlockCount(5000)
        self.journal_view.setLineWrapMode(QPlainTextEdit.NoWrap)

        top = QWidget()
        tv = QVBoxLayout(top)
        tv.setContentsMargins(0, 0, 0, 0)
        tv.addWidget(self.tree)
        tv.addLayout(edit)
        middle = QWidget()
        mv = QVBoxLayout(middle)
        mv.setContentsMargins(0, 0, 0, 0)
        mv.addLayout(add)
        mv.addWidget(form_scroll)
        mv.addLayout(template)
        bottom = QWidget()
        bv = QVBoxLayout(bottom)
        bv.setContentsMargins(0, 0, 0, 0)
        bv.addWidget(self.message)
        bv.addLayout(run)
        bv.addWidget(self.status_label)
        bv.addWidget(self.progress)
        bv.addWidget(self.journal_view)
        split = QSplitter(Qt.Vertical)
        for w in (top, middle, bottom):
            split.addWidget(w)
        split.setSizes([300, 180, 260])
        layout.addWidget(split)
        self.setWidget(body)
        if self.measurements:
            self._choose("g2" if "g2" in self.measurements else self.chooser.currentText())
        self._show_template()
        self._update_buttons()

    # --- the tree ------------------------------------------------------------------------

    def _row(
        self, cells: list[str], path: RowPath, editable: bool, block: bool = False
    ) -> QTreeWidgetItem:
        item = QTreeWidgetItem(cells)
        item.setData(0, Qt.UserRole, path)
        flags = Qt.ItemIsSelectable | Qt.ItemIsEnabled
        if editable:  # rows can be edited and dragged; only a block takes rows dropped on it
            flags |= Qt.ItemIsEditable | Qt.ItemIsDragEnabled
            flags |= Qt.ItemIsDropEnabled if block else Qt.NoItemFlags
        item.setFlags(flags)
        for col, text in enumerate(cells):  # the whole text: a cell shows its start
            hint = "double-click to edit (YAML flow style)" if col in EDITABLE else ""
            item.setToolTip(col, "\n".join(t for t in (text, hint) if t))
        return item

    @staticmethod
    def _options(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if k not in ("measurement", "parameters")}

    def _rebuild(self) -> None:
        """The tree from the entries (keeps the selected row and the statuses)."""
        selected = self.selected_path()
        self.tree.blockSignals(True)
        self.tree.clear()
        editable = not self.running
        for i, entry in enumerate(self.entries):
            if qm.is_block(entry):
                sel = {k: v for k, v in entry["foreach_emitter"].items() if k != "points"}
                sel.pop("from", None)
                cells = [qm.block_label(entry), "", qm.flow(sel), ""]
                row = self._row(cells, (i, None), editable, block=True)
                for j, item in enumerate(entry["items"]):
                    row.addChild(
                        self._row(
                            [
                                item["measurement"],
                                qm.flow(item.get("parameters", {})),
                                qm.flow(self._options(item)),
                                "",
                            ],
                            (i, j),
                            editable,
                        )
                    )
                row.setToolTip(1, "")  # a block has no parameters of its own
                self.tree.addTopLevelItem(row)
                row.setExpanded(True)
            else:
                self.tree.addTopLevelItem(
                    self._row(
                        [
                            entry["measurement"],
                            qm.flow(entry.get("parameters", {})),
                            qm.flow(self._options(entry)),
                            "",
                        ],
                        (i, None),
                        editable,
                    )
                )
        self.tree.blockSignals(False)
        self._show_states()
        if selected is not None:
            self.select(selected)
        self.name_edit.setText(str(self.header.get("name", "queue")))

    def rows(self) -> list[tuple[RowPath, QTreeWidgetItem]]:
        """Every row of the tree with its path, in order."""
        out = []
        for i in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(i)
            out.append((tuple(top.data(0, Qt.UserRole)), top))
            for j in range(top.childCount()):
                child = top.child(j)
                out.append((tuple(child.data(0, Qt.UserRole)), child))
        return out

    def select(self, path: RowPath) -> None:
        for p, item in self.rows():
            if p == tuple(path):
                self.tree.setCurrentItem(item)
                return

    def selected_path(self) -> RowPath | None:
        item = self.tree.currentItem()
        return tuple(item.data(0, Qt.UserRole)) if item is not None else None

    def _show_states(self) -> None:
        """The status column from the journal records of the queue shown."""
        for (i, j), row in self.rows():
            row.setText(3, self._state_text(i, j))

    def _state_text(self, i: int, j: int | None) -> str:
        if i >= len(self.entries):
            return ""
        if not qm.is_block(self.entries[i]):
            s = self.states.get(str(i))
            if s is None:
                return ""
            return "running" if s["event"] == "item_started" else str(s.get("status", ""))
        prefix = f"{i}/"
        keys = [k for k in self.states if k.startswith(prefix) and "refocus" not in k]
        if j is not None:
            keys = [k for k in keys if k.endswith(f"/{j}")]
        counts: dict[str, int] = {}
        for k in keys:
            s = self.states[k]
            status = "running" if s["event"] == "item_started" else str(s.get("status", "?"))
            counts[status] = counts.get(status, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))

    # --- running -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.thread is not None

    def set_run_active(self, active: bool) -> None:
        """A single measurement runs (the measurement dock): the queue cannot start."""
        self._single_run = active
        self._update_buttons()

    def single_run_started(self, _name: str = "") -> None:
        self.set_run_active(True)

    def single_run_ended(self, _outcome: Any = None) -> None:
        self.set_run_active(False)

    def _new_queue_dir(self) -> Path:
        stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
        name = str(self.header.get("name", "queue"))
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:40]
        base = self.data_dir / "queues" / f"{safe}-{stamp}"
        out, n = base, 2
        while out.exists():
            out, n = base.with_name(f"{base.name}-{n}"), n + 1
        return out

    def start(self) -> bool:
        """Run the queue shown into a new queue directory."""
        if self._refuse_start():
            return False
        if not self.entries:
            self.show_message("the queue is empty: add items or load a queue file", error=True)
            return False
        self._name_edited()
        try:
            spec, text = qm.checked(self.header, self.entries)
        except QueueFileError as exc:
            self.show_message(str(exc), error=True)
            return False
        queue_dir = self._new_queue_dir()
        return self._launch(spec, text, str(queue_dir / "queue.yaml"), queue_dir, resume=False)

    def resume_dir(self, queue_dir: str | Path) -> bool:
        """Continue the queue of ``queue_dir`` after a crash (``queue run --resume``)."""
        if self._refuse_start():
            return False
        from hbtscope.queue.engine import QUEUE_FILE_NAME
        from hbtscope.queue.spec import load_queue_file

        queue_dir = Path(queue_dir)
        why = qm.resumable(queue_dir)
        if why:
            self.show_message(why, error=True)
            return False
        path = queue_dir / QUEUE_FILE_NAME
        try:
            spec, text = load_queue_file(path)
        except QueueFileError as exc:
            self.show_message(str(exc), error=True)
            return False
        self.header, self.entries = qm.from_spec(spec)
        self._rebuild()
        return self._launch(spec, text, str(path), queue_dir, resume=True)

    def _refuse_start(self) -> bool:
        if self.running:
            self.show_message("a queue is running already", error=True)
            return True
        if self._single_run:
            self.show_message(
                "a measurement is running: the queue can start when it has ended", error=True
            )
            return True
        return False

    def _launch(self, spec: Any, text: str, path: str, queue_dir: Path, resume: bool) -> bool:
        self.queue_dir = queue_dir
        self.last_outcome, self.last_status = None, {}
        self.records, self.states = [], {}
        self.journal_view.clear()
        thread = QueueThread(
            spec,
            text,
            path,
            self.setup,
            queue_dir,
            resume=resume,
            displays=self.displays,
            hardware_lock=self.hardware_lock,
        )
        thread.record.connect(self._on_record)
        thread.status.connect(self._on_status)
        thread.ended.connect(self._ended)
        thread.refused.connect(self._refused)
        thread.crashed.connect(self._crashed)
        thread.finished.connect(self._thread_done)
        self.thread = thread
        self._rebuild()
        self._update_buttons()
        verb = "resuming" if resume else "running"
        self.show_message(f"{verb} {spec.name} in {queue_dir}")
        self.status_label.setText(f"{verb} {spec.name}")
        self.queue_started.emit(spec.name)
        thread.start()
        return True

    def _refused(self, message: str) -> None:
        self.show_message(f"refused: {message}; nothing moved", error=True)

    def _crashed(self, message: str) -> None:
        self.show_message(f"the queue failed: {message}", error=True)

    def toggle_pause(self) -> None:
        """Pause after the current item, or resume a paused queue."""
        if self.thread is None:
            return
        control = self.thread.control
        if control.paused.is_set():
            control.resume()
            self.pause_button.setText("Pause")
            self.status_label.setText("resumed")
        else:
            control.pause()
            self.pause_button.setText("Resume")
            self.status_label.setText("pausing after the current item…")

    def stop_after_current(self) -> None:
        if self.thread is not None:
            self.thread.control.stop_after_current.set()
            self.status_label.setText("stopping after the current item…")

    def abort(self) -> None:
        """Abort the queue now: the current run ends ``aborted``, the instruments safe."""
        if self.thread is not None:
            self.thread.control.abort.set()
            self.status_label.setText("aborting…")

    def _on_record(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.journal_view.appendPlainText(journal_line(record))
        if record.get("event") in ("item_started", "item_ended", "item_skipped"):
            if "key" in record:
                self.states[record["key"]] = record
            if record["event"] == "item_started":
                self.progress.setValue(0)
            self._show_states()
        if record.get("event") == "item_ended" and self.thread is not None:
            self.item_ended.emit(record)

    def _on_status(self, status: dict[str, Any]) -> None:
        self.last_status = dict(status)
        paused = " — paused" if status.get("paused") else ""
        self.status_label.setText(
            f"{status.get('current') or '—'}  ·  done {status.get('done', 0)}"
            f"  ·  time left {eta_text(status.get('eta_s'))}{paused}"
        )

    def _on_event(self, event: Any) -> None:
        if self.thread is not None and isinstance(event, ev.Progress):
            self.progress.setValue(int(10 * float(event.percent)))

    def _ended(self, outcome: Any) -> None:
        self.last_outcome = outcome
        note = f": {outcome.error}" if outcome.error else ""
        self.show_message(
            f"queue {outcome.status}{note} — {outcome.queue_dir}",
            error=outcome.status != "finished",
        )
        done = sum(1 for s in outcome.items.values() if s.get("status") in FINAL)
        self.status_label.setText(f"queue {outcome.status}  ·  {done} items done")

    def _thread_done(self) -> None:
        thread, self.thread = self.thread, None
        if thread is not None:
            thread.wait(1000)
            thread.deleteLater()
        self.pause_button.setText("Pause")
        self._rebuild()
        self._update_buttons()
        self.queue_ended.emit(self.last_outcome)

    def _update_buttons(self) -> None:
        running = self.running
        for b in (
            self.load_button,
            self.resume_dir_button,
            self.up_button,
            self.down_button,
            self.remove_button,
            self.clear_button,
            self.add_button,
            self.load_template_button,
            self.use_template_button,
        ):
            b.setEnabled(not running)
        self.name_edit.setEnabled(not running)
        self.run_button.setEnabled(not running and not self._single_run)
        for b in (self.pause_button, self.stop_button, self.abort_button):
            b.setEnabled(running)

    def show_message(self, text: str, error: bool = False) -> None:
        """A message below the queue (a refusal in red)."""
        self.message.setText(text)
        self.message.setStyleSheet(ERROR_STYLE if error else "")

    def done_keys(self) -> dict[str, str]:
        """Item key -> final status of the queue shown (from its journal)."""
        return {k: s["status"] for k, s in self.states.items() if s.get("status") in FINAL}


class _QueueTree(QTreeWidget):
    """The queue's tree: rows can be dragged to another place (``dropped`` after a drop)."""

    dropped = pyqtSignal()

    def __init__(self) -> None:
        super().__init__()
        self.setDragDropMode(QTreeWidget.InternalMove)
        self.setDefaultDropAction(Qt.MoveAction)

    def dropEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        super().dropEvent(event)
        self.dropped.emit()
