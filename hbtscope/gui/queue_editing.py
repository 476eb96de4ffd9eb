"""Changing the Queue dock's queue: edit cells, reorder, remove, add, characterise, files.

:class:`QueueEditing` is the editing half of :class:`~hbtscope.gui.queue_panel.QueuePanel`
(a mixin: the panel owns the widgets and the run). Every change goes through
:meth:`QueueEditing._change`: it is applied to a copy of the entries, checked as the queue
file would be (:func:`hbtscope.gui.queue_model.checked`), and taken, or refused with its
message shown in place and the tree shown as it was. Nothing changes while the queue runs.

The panel provides: ``header``, ``entries``, ``template``, ``states``, ``records``,
``running``, ``measurements``, ``data_dir``, the widgets ``tree``, ``chooser``,
``form_stack``, ``template_label``, ``journal_view``, ``name_edit``, and ``_rebuild()``,
``select()``, ``selected_path()``, ``show_message()``, ``resume_dir()``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtWidgets import QFileDialog, QTreeWidgetItem

from hbtscope.gui import queue_model as qm
from hbtscope.gui.parameter_form import FormError, ParameterForm
from hbtscope.queue.spec import QueueFileError
from hbtscope.strict_yaml import StrictYAMLError, load_text

COLUMNS = ("measurement", "parameters", "options", "status")
#: the columns a double-click edits (YAML flow style)
EDITABLE = (1, 2)
#: a row of the tree: (entry index, item index in its block or None)
RowPath = tuple[int, int | None]


class QueueEditing:
    """The queue panel's editing (see the module doc)."""

    entries: list[dict[str, Any]]
    header: dict[str, Any]
    template: dict[str, Any]

    # --- editing -------------------------------------------------------------------------

    def _set_queue(self, header: dict[str, Any], entries: list[dict[str, Any]]) -> bool:
        """Take ``(header, entries)`` if they make a valid queue; else say why, in place."""
        try:
            if entries:
                qm.checked(header, entries)
        except QueueFileError as exc:
            self.show_message(str(exc), error=True)
            self._rebuild()  # the edited cell goes back to what it was
            return False
        self.header, self.entries = header, entries
        self.states, self.records = {}, []
        self._rebuild()
        return True

    def _change(self, edit: Callable[[list[dict[str, Any]]], Any], message: str) -> bool:
        if self.running:
            self.show_message("the queue is running: its items cannot change now", error=True)
            return False
        entries = copy.deepcopy(self.entries)
        try:
            edit(entries)
        except QueueFileError as exc:
            self.show_message(str(exc), error=True)
            self._rebuild()
            return False
        ok = self._set_queue(dict(self.header), entries)
        if ok:
            self.show_message(message)
        return ok

    def _double_clicked(self, item: QTreeWidgetItem, column: int) -> None:
        i, j = item.data(0, Qt.UserRole)
        if column == 1 and j is None and qm.is_block(self.entries[i]):
            return  # a block has no parameters of its own (its options select the emitters)
        if column in EDITABLE and not self.running and item.flags() & Qt.ItemIsEditable:
            self.tree.editItem(item, column)

    def _item_changed(self, item: QTreeWidgetItem, column: int) -> None:
        if column in EDITABLE:
            self.edit(tuple(item.data(0, Qt.UserRole)), COLUMNS[column], item.text(column))

    def edit(self, path: RowPath, column: str, text: str) -> bool:
        """Set a row's ``parameters`` or ``options`` from YAML flow text (checked)."""
        try:
            value = load_text(text) if text.strip() else {}
        except StrictYAMLError as exc:
            self.show_message(f"{column}: {exc.problem}", error=True)
            self._rebuild()
            return False
        if not isinstance(value, dict):
            self.show_message(f"{column}: give a mapping, e.g. {{duration_s: 1.0}}", error=True)
            self._rebuild()
            return False
        i, j = path

        def apply(entries: list[dict[str, Any]]) -> None:
            entry = entries[i]
            if qm.is_block(entry) and j is None:
                if column == "parameters":
                    raise QueueFileError(
                        "queue panel",
                        None,
                        f"items.{i}",
                        "a block's items have parameters, the block has none",
                    )
                if column == "options":
                    sel = entry["foreach_emitter"]
                    keep = {k: sel[k] for k in ("points", "from") if k in sel}
                    entry["foreach_emitter"] = {**keep, **value}
                return
            item = entry["items"][j] if j is not None else entry
            if column == "parameters":
                item["parameters"] = value
            else:
                fresh = {"measurement": item["measurement"]}
                if "parameters" in item:
                    fresh["parameters"] = item["parameters"]
                fresh.update({k: v for k, v in value.items() if k != "measurement"})
                item.clear()
                item.update(fresh)

        return self._change(apply, f"{column} changed")

    def move(self, step: int) -> bool:
        """Move the selected row up (-1) or down (+1) within its list."""
        path = self.selected_path()
        if path is None:
            return False
        i, j = path

        def apply(entries: list[dict[str, Any]]) -> None:
            seq = entries[i]["items"] if j is not None else entries
            k = j if j is not None else i
            if 0 <= k + step < len(seq):
                seq[k], seq[k + step] = seq[k + step], seq[k]

        n = len(self.entries[i]["items"]) if j is not None else len(self.entries)
        k = (j if j is not None else i) + step
        if not 0 <= k < n:
            return False
        ok = self._change(apply, "moved")
        if ok:
            self.select((i, k) if j is not None else (k, None))
        return ok

    def _dropped(self) -> None:
        QTimer.singleShot(0, self.apply_tree_order)  # after Qt has finished the drop

    def apply_tree_order(self) -> bool:
        """The queue in the order the tree shows after rows were dragged (checked: a block
        cannot go into a block; a block whose items were all dragged out goes)."""
        old = self.entries

        def item_of(row: QTreeWidgetItem) -> dict[str, Any]:
            i, j = row.data(0, Qt.UserRole)
            return old[i]["items"][j] if j is not None else old[i]

        order: list[dict[str, Any]] = []
        for t in range(self.tree.topLevelItemCount()):
            top = self.tree.topLevelItem(t)
            i, j = top.data(0, Qt.UserRole)
            if j is None and qm.is_block(old[i]):
                items = [item_of(top.child(c)) for c in range(top.childCount())]
                if items:
                    order.append({"foreach_emitter": old[i]["foreach_emitter"], "items": items})
            elif top.childCount():
                self.show_message("rows can be dropped into a for-each block only", error=True)
                self._rebuild()
                return False
            else:
                order.append(item_of(top))

        def apply(entries: list[dict[str, Any]]) -> None:
            entries[:] = copy.deepcopy(order)

        return self._change(apply, "moved")

    def move_up(self) -> bool:
        return self.move(-1)

    def move_down(self) -> bool:
        return self.move(1)

    def remove_selected(self) -> bool:
        path = self.selected_path()
        if path is None:
            return False
        i, j = path

        def apply(entries: list[dict[str, Any]]) -> None:
            if j is not None and len(entries[i]["items"]) > 1:
                del entries[i]["items"][j]
            else:
                del entries[i]

        return self._change(apply, "removed")

    def clear(self) -> None:
        self._change(lambda entries: entries.clear(), "the queue is empty")

    def _name_edited(self) -> None:
        name = self.name_edit.text().strip() or "queue"
        if name != self.header.get("name") and not self.running:
            self.header = {**self.header, "name": name}

    # --- adding --------------------------------------------------------------------------

    def form(self, name: str) -> ParameterForm:
        if name not in self._forms:
            form = ParameterForm(self.measurements[name].procedure)
            form.setObjectName(f"queue-form-{name}")
            self._forms[name] = form
            self.form_stack.addWidget(form)
        return self._forms[name]

    def _choose(self, name: str) -> None:
        if name in self.measurements:
            if self.chooser.currentText() != name:
                self.chooser.setCurrentText(name)
            self.form_stack.setCurrentWidget(self.form(name))

    def add_from_form(self) -> bool:
        """Add the chosen measurement with the form's values (those not at their default)
        after the selected row, or at the end of the selected block."""
        name = self.chooser.currentText()
        form = self.form(name)
        form.clear_refusal()
        try:
            values = form.values()
        except FormError as exc:
            form.show_refusal(str(exc), exc.name)
            self.show_message(f"not added: {exc}", error=True)
            return False
        params = qm.changed_parameters(self.measurements[name].procedure, values)
        params = {k: v for k, v in params.items() if not _non_finite(v)}
        return self.add_item(name, params, at_selection=True)

    def add_item(self, measurement: str, parameters: dict, at_selection: bool = False) -> bool:
        """Add ``measurement`` with ``parameters`` (a run's: NaN and unknown names are left
        out); at the end of the queue, or after the selected row."""
        params, note = qm.queue_parameters(measurement, dict(parameters))
        item: dict[str, Any] = {"measurement": measurement, "parameters": params}
        path = self.selected_path() if at_selection else None

        def apply(entries: list[dict[str, Any]]) -> None:
            if path is None:
                entries.append(item)
            elif path[1] is not None or qm.is_block(entries[path[0]]):
                block = entries[path[0]]["items"]
                block.insert(len(block) if path[1] is None else path[1] + 1, item)
            else:
                entries.insert(path[0] + 1, item)

        ok = self._change(apply, f"{measurement} added" + (f"; {note}" if note else ""))
        if ok and not at_selection:
            self.select((len(self.entries) - 1, None))
        return ok

    def requeue(self, measurement: str, parameters: dict) -> None:
        """The run browser's "Add to queue": the run's measurement and parameters, at the end."""
        if measurement not in self.measurements:
            self.show_message(f"{measurement} cannot run from a queue", error=True)
            return
        if self.add_item(measurement, parameters):
            self.raise_()

    # --- characterise all ----------------------------------------------------------------

    def set_template(self, template: dict[str, Any]) -> None:
        """The characterisation template: ``{"items": [...], "exclude_if": str | None,
        "refocus": dict | None}`` (the items as in a queue file)."""
        self.template = copy.deepcopy(template)
        self._show_template()

    def _show_template(self) -> None:
        names = [i["measurement"] for i in self.template.get("items", [])]
        self.template_label.setText("characterise: " + ", ".join(names))

    def use_selected_as_template(self) -> bool:
        path = self.selected_path()
        if path is None or not qm.is_block(self.entries[path[0]]):
            self.show_message("select a for-each block to use as the template", error=True)
            return False
        block = self.entries[path[0]]
        self.set_template(
            {
                "items": block["items"],
                "exclude_if": block["foreach_emitter"].get("exclude_if"),
                "refocus": self.header.get("refocus"),
            }
        )
        self.show_message("template taken from the selected block")
        return True

    def load_template(self, path: str | Path) -> bool:
        try:
            template = qm.template_of(path)
        except QueueFileError as exc:
            self.show_message(str(exc), error=True)
            return False
        if any(qm.is_block(i) for i in template["items"]):
            self.show_message(f"{path}: a template's items cannot be blocks", error=True)
            return False
        self.set_template(template)
        self.show_message(f"template loaded from {path}")
        return True

    def characterise(self, points: list[dict]) -> bool:
        """Build a queue: the template's items on each of ``points`` ({name, x_um, y_um,
        z_um}) in one ``foreach_emitter`` block (it replaces the queue shown)."""
        if self.running:
            self.show_message("a queue is running: characterise when it has ended", error=True)
            return False
        if not points:
            self.show_message("no points to characterise", error=True)
            return False
        try:
            block = qm.characterisation(points, self.template)
        except ValueError as exc:
            self.show_message(str(exc), error=True)
            return False
        header: dict[str, Any] = {"name": f"characterise {len(points)} points"}
        if self.template.get("refocus"):
            header["refocus"] = self.template["refocus"]
        ok = self._set_queue(header, [block])
        if ok:
            self.show_message(f"{len(points)} points to characterise: check and press Run")
            self.raise_()
        return ok

    # --- files ---------------------------------------------------------------------------

    def load_file(self, path: str | Path) -> bool:
        """Show the queue file ``path`` (its error in place if it cannot be read)."""
        if self.running:
            self.show_message("a queue is running: load another when it has ended", error=True)
            return False
        try:
            header, entries = qm.load(path)
        except QueueFileError as exc:
            self.show_message(str(exc), error=True)
            return False
        self.header, self.entries = header, entries
        self.states, self.records = {}, []
        self.journal_view.clear()
        self._rebuild()
        self.show_message(f"loaded {path}")
        return True

    def save_file(self, path: str | Path) -> bool:
        if not self.entries:
            self.show_message("the queue is empty: nothing to save", error=True)
            return False
        try:
            _, text = qm.checked(self.header, self.entries)
            Path(path).write_text(text, encoding="utf-8")
        except (QueueFileError, OSError) as exc:
            self.show_message(f"not saved: {exc}", error=True)
            return False
        self.show_message(f"saved {path}")
        return True

    def _ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a queue file", "", "Queue (*.yaml *.yml)")
        if path:
            self.load_file(path)

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the queue", "", "Queue (*.yaml)")
        if path:
            self.save_file(path)

    def _ask_template(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Template from", "", "Queue (*.yaml *.yml)")
        if path:
            self.load_template(path)

    def _ask_resume(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Resume the queue in", str(self.data_dir))
        if path:
            self.resume_dir(path)


def _non_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)
