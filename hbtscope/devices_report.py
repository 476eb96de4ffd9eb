"""What ``hbtscope devices [--setup FILE]`` prints: every role of a setup, its driver and
whether the device answers.

:func:`devices_report` asks each instrument of an open :class:`~hbtscope.setup.Setup` for its
snapshot — a harmless read of every setting — and records the answer or the error, so one
missing device does not hide the others. It never moves or switches anything.
"""

from __future__ import annotations

from typing import Any


def _plain(value: Any) -> Any:
    """Snapshot values as plain Python (numpy scalars and arrays become floats and lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def devices_report(setup) -> list[dict[str, Any]]:
    """One entry per role of the setup file, in file order.

    Each entry: ``role``, ``driver``, ``backend``, ``address``, ``doc`` (the driver's one-line
    description), ``connected`` (True if the snapshot succeeded), and ``snapshot`` (the
    settings) or ``error`` (``"ExceptionType: message"``).
    """
    from hbtscope.setup import DRIVERS

    report = []
    for role, spec in setup.spec.instruments.items():
        info = DRIVERS.get((role, spec.driver))
        entry: dict[str, Any] = {
            "role": role,
            "driver": spec.driver,
            "backend": spec.backend,
            "address": spec.address,
            "doc": info.doc if info is not None else "",
        }
        inst = setup.instruments.get(role)
        if inst is None:
            # a Setup that kept going past a device that failed to open may say why
            failed = vars(setup).get("failed", {})
            entry.update(connected=False, error=str(failed.get(role, "not opened")))
        else:
            try:
                entry.update(connected=True, snapshot=_plain(inst.snapshot()))
            except Exception as exc:  # report it and go on with the other roles
                entry.update(connected=False, error=f"{type(exc).__name__}: {exc}")
        report.append(entry)
    return report


def format_report(report: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`devices_report` (for the CLI)."""
    lines = []
    for e in report:
        state = "ok" if e["connected"] else "NOT CONNECTED"
        lines.append(
            f"{e['role']:<12} {e['driver']:<22} {e['backend']:<5} {state:<13} {e['address']}"
        )
        if not e["connected"]:
            lines.append(f"{'':<12} {e['error']}")
        else:
            settings = ", ".join(f"{k}={_short(v)}" for k, v in e.get("snapshot", {}).items())
            if settings:
                lines.append(f"{'':<12} {settings}")
    return "\n".join(lines)


def _short(value: Any) -> str:
    """A compact text of a setting (floats to 4 significant digits)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)
