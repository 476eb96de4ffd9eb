"""A form generated from a procedure's pymeasure Parameters: no GUI code per measurement.

One row per Parameter, in the order the procedure declares them: a check box for a
``BooleanParameter``, a combo box for a ``ListParameter``, a line edit for the others (floats
accept ``nan`` where the procedure gives NaN a meaning, and scientific notation), with the
parameter's label, units and range. :meth:`ParameterForm.values` converts every field through
its pymeasure Parameter (type and range) and raises :class:`FormError` naming the field and
what is allowed; :meth:`ParameterForm.show_refusal` shows that message, or a
:class:`~hbtscope.procedures.errors.ParameterError` of the run, in place beside the field.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pymeasure.experiment import BooleanParameter, ListParameter, Parameter
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

ERROR_STYLE = "background: #ffd6d6;"


class FormError(ValueError):
    """A field of the form holds a value its Parameter refuses (``name``: the parameter)."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


def declared_parameters(procedure_cls: type) -> dict[str, Parameter]:
    """The procedure's Parameters by attribute name, in declaration order (base classes first)."""
    found: dict[str, Parameter] = {}
    for cls in reversed(procedure_cls.__mro__):
        for name, value in vars(cls).items():
            if isinstance(value, Parameter):
                found.pop(name, None)
                found[name] = value
    return found


def allowed_text(p: Parameter) -> str:
    """What a parameter allows, in words: ``[lo, hi] unit`` or its choices."""
    choices = getattr(p, "choices", None)
    if choices:
        return "one of: " + ", ".join(map(str, choices))
    lo, hi = getattr(p, "minimum", None), getattr(p, "maximum", None)
    unit = getattr(p, "units", None) or ""
    if lo is None and hi is None:
        return unit
    return f"[{lo}, {hi}] {unit}".rstrip()


def parameter_in_message(message: str) -> str | None:
    """The parameter a :class:`ParameterError` names (``"g2: duration_s = 5.0 is ..."``)."""
    match = re.match(r"^\s*[\w.-]+:\s+(\w+)\s+=", message)
    return match.group(1) if match else None


class ParameterForm(QWidget):
    """The generated form of one procedure class, with an in-place refusal line."""

    def __init__(self, procedure_cls: type, parent: QWidget | None = None):
        super().__init__(parent)
        self.procedure_cls = procedure_cls
        declared = declared_parameters(procedure_cls)
        self.parameters = {n: copy.deepcopy(p) for n, p in declared.items()}
        self.fields: dict[str, QWidget] = {}
        layout = QVBoxLayout(self)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.AllNonFixedFieldsGrow)
        form.setRowWrapPolicy(QFormLayout.WrapLongRows)
        layout.addLayout(form)
        for name, p in self.parameters.items():
            widget = self._field(p)
            widget.setObjectName(f"param-{name}")
            unit = getattr(p, "units", None)
            widget.setToolTip(f"{p.name} ({name}); allowed: {allowed_text(p) or 'any'}")
            label = QLabel(f"{p.name}" + (f" [{unit}]" if unit else ""))
            label.setToolTip(name)
            form.addRow(label, widget)
            self.fields[name] = widget
        self.refusal = QLabel("")
        self.refusal.setObjectName("refusal")
        self.refusal.setWordWrap(True)
        self.refusal.setStyleSheet("color: #b00000;")
        layout.addWidget(self.refusal)
        layout.addStretch(1)

    @staticmethod
    def _field(p: Parameter) -> QWidget:
        if isinstance(p, BooleanParameter):
            box = QCheckBox()
            box.setChecked(bool(p.value))
            return box
        if isinstance(p, ListParameter):
            combo = QComboBox()
            combo.addItems([str(c) for c in p.choices])
            combo.setCurrentText(str(p.value))
            return combo
        edit = QLineEdit(_text(p.value))
        edit.setPlaceholderText(allowed_text(p))
        edit.setMinimumWidth(140)
        return edit

    # --- reading and writing the fields -------------------------------------------------

    def texts(self) -> dict[str, str]:
        """Every field as text (what the settings store)."""
        return {name: _widget_text(w) for name, w in self.fields.items()}

    def set_texts(self, texts: dict[str, str]) -> None:
        """Fill the fields from text (unknown names are ignored)."""
        for name, text in texts.items():
            widget = self.fields.get(name)
            if widget is None:
                continue
            if isinstance(widget, QCheckBox):
                widget.setChecked(str(text).lower() in ("true", "1", "yes"))
            elif isinstance(widget, QComboBox):
                if widget.findText(str(text)) >= 0:
                    widget.setCurrentText(str(text))
            else:
                widget.setText(str(text))

    def set_value(self, name: str, value: Any) -> None:
        """Set one field from a Python value."""
        self.set_texts({name: _text(value)})

    def values(self) -> dict[str, Any]:
        """The fields converted by their Parameters; :class:`FormError` for the first refusal."""
        out: dict[str, Any] = {}
        for name, widget in self.fields.items():
            p = self.parameters[name]
            raw = _widget_text(widget)
            try:
                p.value = raw.strip() if isinstance(raw, str) else raw
            except (ValueError, TypeError) as exc:
                raise FormError(
                    name, f"{name} = {raw!r}: {exc} (allowed: {allowed_text(p) or 'any'})"
                ) from None
            out[name] = p.value
        return out

    def show_refusal(self, message: str, name: str | None = None) -> QWidget | None:
        """Show ``message`` below the form and mark the field it names (returned)."""
        self.clear_refusal()
        name = name or parameter_in_message(message)
        self.refusal.setText(message)
        if name in self.fields:
            self.fields[name].setStyleSheet(ERROR_STYLE)
            return self.fields[name]
        return None

    def clear_refusal(self) -> None:
        self.refusal.setText("")
        for widget in self.fields.values():
            widget.setStyleSheet("")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _widget_text(widget: QWidget) -> str:
    if isinstance(widget, QCheckBox):
        return "true" if widget.isChecked() else "false"
    if isinstance(widget, QComboBox):
        return widget.currentText()
    return widget.text()  # type: ignore[attr-defined]
