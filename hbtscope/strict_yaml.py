"""Reading the lab's YAML files -- setup files, queue files -- strictly and with bounds.

A file a user wrote must never exhaust memory or hang the reader, and a mistake in it must be
reported at its line. So: the file must be a regular file (a FIFO would block, ``/dev/zero``
never ends) no larger than a stated size, UTF-8; YAML anchors and aliases are refused (an
"alias bomb" of a few lines expands to gigabytes); nesting is bounded (the parser recurses);
a key given twice is an error naming both lines instead of "the last one wins".
:func:`line_map` and :func:`nearest_line` turn a key path into the line a message names.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import yaml

#: nesting deeper than this is no hand-written file (and would exhaust the parser's recursion)
MAX_YAML_DEPTH = 32


class StrictYAMLError(ValueError):
    """A file that cannot be read as strict YAML: ``line`` (1-based, or None) and ``problem``."""

    def __init__(self, line: int | None, problem: str):
        super().__init__(problem)
        self.line, self.problem = line, problem


class _Refused(yaml.YAMLError):
    def __init__(self, line: int, problem: str):
        super().__init__(problem)
        self.line, self.problem = line, problem


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader without anchors/aliases, with bounded nesting, and with an error
    for a key given twice."""

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent) or getattr(self.peek_event(), "anchor", None):
            event = self.peek_event()
            raise _Refused(
                event.start_mark.line + 1,
                "YAML anchors and aliases (&name, *name) are not allowed",
            )
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                event = self.peek_event()
                raise _Refused(
                    event.start_mark.line + 1, f"nested deeper than {MAX_YAML_DEPTH} levels"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: PyYAML reports it below
                continue
            if first is not None:
                raise _Refused(
                    line, f"key {key!r} given twice (first on line {first}); give it once"
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_text(text: str) -> Any:
    """The YAML document ``text`` read with :class:`StrictLoader`; :class:`StrictYAMLError`
    (with the line where known) otherwise."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise StrictYAMLError(exc.line, exc.problem) from None
    except RecursionError:
        raise StrictYAMLError(None, f"nested deeper than {MAX_YAML_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise StrictYAMLError(line, f"not valid YAML: {problem}") from None


def read_text(path: str | Path, max_bytes: int, kind: str = "file") -> str:
    """The text of ``path``, refused (:class:`StrictYAMLError`, no line) before it is opened
    when it is missing or not a regular file, and before it is decoded when larger than
    ``max_bytes`` or not UTF-8. ``kind`` names the file in messages ("setup file")."""
    p = Path(path)
    try:
        st = p.stat()  # not open(): a FIFO would block
    except FileNotFoundError:
        raise StrictYAMLError(None, f"{kind} not found") from None
    except OSError as exc:
        raise StrictYAMLError(None, f"cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise StrictYAMLError(None, "not a regular file (a directory, FIFO or device)")
    if st.st_size > max_bytes:
        raise StrictYAMLError(None, f"{st.st_size} bytes; a {kind} has at most {max_bytes}")
    try:
        with p.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
        if len(raw) > max_bytes:
            raise StrictYAMLError(None, f"more than {max_bytes} bytes")
        return raw.decode("utf-8")
    except OSError as exc:
        raise StrictYAMLError(None, f"cannot read it ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise StrictYAMLError(None, f"not UTF-8 text ({exc.reason})") from None


def line_map(text: str) -> dict[tuple, int]:
    """Every key path of the YAML document ``text`` -> its 1-based line number."""
    lines: dict[tuple, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except (yaml.YAMLError, RecursionError):
        return lines

    def walk(node: yaml.Node, path: tuple) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                walk(value_node, path + (key,))
                lines[path + (key,)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return lines


def nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    """The line of ``loc`` or of its nearest ancestor in ``lines`` (None if none)."""
    loc = tuple(str(p) if not isinstance(p, int) else p for p in loc)
    for n in range(len(loc), -1, -1):
        key = loc[:n]
        if key in lines:
            return lines[key]
        # YAML keys may be numbers (e.g. a role spelled 1); compare as strings too
        for k, line in lines.items():
            if len(k) == n and tuple(str(p) for p in k) == tuple(str(p) for p in key):
                return line
    return None
