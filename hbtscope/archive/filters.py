"""The catalogue's filter grammar: a few comparisons joined by and/or, compiled to parameterised
SQL on a whitelist. No text from the user ever becomes SQL.

::

    measurement == "g2" and g2_0 < 0.2
    P_sat_W < 5e-8 or (emitter == "scan-007" and not status == "finished")
    path ~ "*/batch7/*"                       # ~ : a glob (* ? [..]) on text
    parameters.x_um >= 10 and truth.g2_0 < 0.1 and reanalysis.g2_0 < 0.2
    g2_0 + 2 * g2_0_err < 0.5                 # arithmetic on numbers (a purity cut)

Grammar (keywords are lower case)::

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | comparison
    comparison := name op literal | sum cmp sum
    op         := cmp | "~"
    cmp        := "==" | "!=" | "<" | "<=" | ">" | ">="
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | number | name | true | false | "(" sum ")"
    name       := word | kind "." word       kind: parameters | results | truth | reanalysis
    literal    := number | "text" | 'text' | true | false

A bare ``name`` is a column of the run (:data:`COLUMNS`), else a result key (a scalar of the
run's ``analysis/``, ``<key>_err`` its uncertainty), else a parameter; anything else is a
:class:`FilterError` naming what exists. A comparison on a value a run does not have is false
for that run (``not`` makes it true), and so is one whose arithmetic divides by zero. Text is
bounded to :data:`MAX_LENGTH` characters and
:data:`MAX_DEPTH` levels of nesting.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

MAX_LENGTH = 2000
MAX_DEPTH = 32

#: run columns a filter may name: name -> (SQL column, "text" | "number")
COLUMNS: dict[str, tuple[str, str]] = {
    "path": ("runs.path", "text"),
    "uuid": ("runs.uuid", "text"),
    "measurement": ("runs.measurement", "text"),
    "start_time": ("runs.start_time", "text"),
    "end_time": ("runs.end_time", "text"),
    "status": ("runs.status", "text"),
    "queue_item_id": ("runs.queue_item_id", "text"),
    "emitter": ("runs.emitter", "text"),
    "error": ("runs.error", "text"),
    "problem": ("runs.problem", "text"),
    "hbtscope_version": ("runs.hbtscope_version", "text"),
    "size_bytes": ("runs.size_bytes", "number"),
}

#: prefix in a filter -> value kind in the catalogue
KINDS = {
    "parameters": "parameter",
    "results": "result",
    "truth": "truth",
    "reanalysis": "reanalysis",
}

_OPS = {"==": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "~": "GLOB"}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|(?:inf|nan)\b)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?)
      | (?P<op>==|!=|<=|>=|<|>|~)
      | (?P<arith>[-+*/])
      | (?P<paren>[()])
    )""",
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "true", "false"}


class FilterError(ValueError):
    """A filter that is not allowed: where, what, and what is allowed."""


@dataclass(frozen=True)
class Token:
    kind: str  # number | string | name | op | paren | keyword
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``; :class:`FilterError` at the first character that is none."""
    if not isinstance(text, str):
        raise FilterError("a filter is text")
    if len(text) > MAX_LENGTH:
        raise FilterError(f"filter too long ({len(text)} characters, at most {MAX_LENGTH})")
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            at = len(text) - len(text[pos:].lstrip())
            raise FilterError(
                f"filter {text!r}: cannot read {text[at : at + 12]!r} at character {at + 1} "
                '(allowed: names, numbers, "text", == != < <= > >= ~, + - * /, and or not, '
                "parentheses)"
            )
        group = m.lastgroup or ""
        value = m.group(group)
        kind = "keyword" if group == "name" and value in _KEYWORDS else group
        tokens.append(Token(kind, value, m.start(group)))
        pos = m.end()
    return tokens


def _unquote(s: str) -> str:
    body = s[1:-1]
    return re.sub(r"\\(.)", r"\1", body, flags=re.DOTALL)


@dataclass(frozen=True)
class CompiledFilter:
    """SQL for ``WHERE`` (on table ``runs``) and its parameters."""

    sql: str
    params: tuple


class _Parser:
    def __init__(self, text: str, known: Mapping[str, set[str]]):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.known = known
        self.params: list = []

    # --- helpers ---------------------------------------------------------------------------
    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise FilterError(
                f"filter {self.text!r}: ends too early (a comparison or a ')' is missing)"
            )
        self.i += 1
        return tok

    def error(self, tok: Token, what: str) -> FilterError:
        return FilterError(f"filter {self.text!r}, character {tok.pos + 1}: {what}")

    # --- grammar ---------------------------------------------------------------------------
    def parse(self) -> CompiledFilter:
        if not self.tokens:
            raise FilterError('empty filter (e.g. measurement == "g2" and g2_0 < 0.2)')
        sql = self.or_expr(0)
        tok = self.peek()
        if tok is not None:
            raise self.error(tok, f"unexpected {tok.text!r} (expected and, or or the end)")
        return CompiledFilter(sql, tuple(self.params))

    def or_expr(self, depth: int) -> str:
        parts = [self.and_expr(depth)]
        while (tok := self.peek()) is not None and tok.kind == "keyword" and tok.text == "or":
            self.take()
            parts.append(self.and_expr(depth))
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_expr(self, depth: int) -> str:
        parts = [self.not_expr(depth)]
        while (tok := self.peek()) is not None and tok.kind == "keyword" and tok.text == "and":
            self.take()
            parts.append(self.not_expr(depth))
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def not_expr(self, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise FilterError(f"filter {self.text!r}: nested deeper than {MAX_DEPTH} levels")
        tok = self.peek()
        if tok is not None and tok.kind == "keyword" and tok.text == "not":
            self.take()
            return "(NOT " + self.not_expr(depth + 1) + ")"
        if tok is not None and tok.kind == "paren" and tok.text == "(":
            start, n_params = self.i, len(self.params)
            try:  # "(g2_0 + 1) < 2": arithmetic in parentheses
                return self.comparison(depth)
            except FilterError:  # "(g2_0 < 1 or ...)": a group of conditions
                self.i, self.params[n_params:] = start, []
            self.take()
            inner = self.or_expr(depth + 1)
            close = self.take()
            if close.text != ")":
                raise self.error(close, f"expected ')' but found {close.text!r}")
            return inner
        return self.comparison(depth)

    def comparison(self, depth: int) -> str:
        """``name op literal`` (text, or a number: indexed), else ``sum op sum``."""
        t = self.tokens[self.i : self.i + 4]
        simple = (
            len(t) >= 3
            and t[0].kind == "name"
            and t[1].kind == "op"
            and t[2].kind in ("number", "string", "keyword")
            and (len(t) == 3 or t[3].kind != "arith")
        )
        if simple:
            return self.simple_comparison(self.take())
        left = self.sum(depth)
        op = self.take()
        if op.kind != "op" or op.text == "~":
            raise self.error(op, f"expected == != < <= > >= but found {op.text!r}")
        right = self.sum(depth)
        # a missing value (NULL) makes the comparison false, not unknown (so "not" sees true)
        return f"COALESCE({left} {_OPS[op.text]} {right}, 0)"

    # --- arithmetic: + - * / on numbers and values; a value a run lacks makes it false -----
    def sum(self, depth: int) -> str:
        sql = self.product(depth)
        while (tok := self.peek()) is not None and tok.kind == "arith" and tok.text in "+-":
            self.take()
            sql = f"({sql} {tok.text} {self.product(depth)})"
        return sql

    def product(self, depth: int) -> str:
        sql = self.unary(depth)
        while (tok := self.peek()) is not None and tok.kind == "arith" and tok.text in "*/":
            self.take()
            sql = f"({sql} {tok.text} {self.unary(depth)})"
        return sql

    def unary(self, depth: int) -> str:
        if depth > MAX_DEPTH:
            raise FilterError(f"filter {self.text!r}: nested deeper than {MAX_DEPTH} levels")
        tok = self.take()
        if tok.kind == "arith" and tok.text == "-":
            return f"(- {self.unary(depth + 1)})"
        if tok.kind == "number":
            self.params.append(float(tok.text))
            return "?"
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            self.params.append(1.0 if tok.text == "true" else 0.0)
            return "?"
        if tok.kind == "paren" and tok.text == "(":
            inner = self.sum(depth + 1)
            close = self.take()
            if close.text != ")":
                raise self.error(close, f"expected ')' but found {close.text!r}")
            return inner
        if tok.kind != "name":
            raise self.error(
                tok, f"expected a name (e.g. g2_0, measurement) or a number, not {tok.text!r}"
            )
        column = self.resolve(tok)
        if isinstance(column, tuple):
            sql_col, typ = column
            if typ == "text":
                raise self.error(tok, f'{tok.text} is text: compare it with "text" alone')
            return f"CAST({sql_col} AS REAL)"
        kind, key = column.split(".", 1)
        self.params.extend([kind, key])
        return (
            "(SELECT v.num FROM run_values v WHERE v.run_id = runs.id AND v.kind = ? "
            "AND v.key = ? ORDER BY v.analysis LIMIT 1)"
        )

    def simple_comparison(self, name: Token) -> str:
        op = self.take()
        if op.kind != "op":
            raise self.error(op, f"expected == != < <= > >= or ~ after {name.text!r}")
        lit = self.take()
        if lit.kind == "number":
            value: float | str = float(lit.text)
        elif lit.kind == "string":
            value = _unquote(lit.text)
        elif lit.kind == "keyword" and lit.text in ("true", "false"):
            value = 1.0 if lit.text == "true" else 0.0
        else:
            raise self.error(lit, f'expected a number, "text", true or false, not {lit.text!r}')
        is_text = isinstance(value, str)
        if op.text == "~" and not is_text:
            raise self.error(op, '~ (glob) compares with "text"')
        if not is_text and value != value:  # NaN: never equal to anything; say so
            raise self.error(lit, "nan compares false with everything (filter on >, < instead)")
        sql_op = _OPS[op.text]
        column = self.resolve(name)
        self.params.append(value)
        if isinstance(column, tuple):  # a run column
            sql_col, typ = column
            if (typ == "text") != is_text:
                want = '"text"' if typ == "text" else "a number"
                raise self.error(lit, f"{name.text} is compared with {want}")
            return f"({sql_col} {sql_op} ?)"
        value_col = "text" if is_text else "num"
        kind, key = column.split(".", 1)
        self.params[-1:] = [kind, key, value]
        return (  # uses the index (kind, key, num|text): no scan of the runs
            "runs.id IN (SELECT v.run_id FROM run_values v WHERE v.kind = ? "
            f"AND v.key = ? AND v.{value_col} {sql_op} ?)"
        )

    def resolve(self, tok: Token) -> tuple[str, str] | str:
        """A run column ``(sql, type)`` or ``"kind.key"`` of a value the catalogue holds."""
        name = tok.text
        if "." in name:
            prefix, key = name.split(".", 1)
            if prefix not in KINDS:
                raise self.error(tok, f"unknown prefix {prefix!r} (allowed: {', '.join(KINDS)})")
            kind = KINDS[prefix]
            if key not in self.known.get(kind, set()):
                raise self.error(tok, self._unknown(key, self.known.get(kind, set()), prefix))
            return f"{kind}.{key}"
        if name in COLUMNS:
            return COLUMNS[name]
        for kind in ("result", "parameter"):
            if name in self.known.get(kind, set()):
                return f"{kind}.{name}"
        everything = (
            set(COLUMNS) | self.known.get("result", set()) | self.known.get("parameter", set())
        )
        raise self.error(tok, self._unknown(name, everything, ""))

    @staticmethod
    def _unknown(name: str, allowed: set[str], prefix: str) -> str:
        where = f"{prefix}." if prefix else ""
        close = difflib.get_close_matches(name, sorted(allowed), n=3)
        hint = f"; did you mean {', '.join(where + c for c in close)}?" if close else ""
        return (
            f"no {where}{name} in the catalogue (columns: {', '.join(COLUMNS)}; results, "
            f"parameters, truth.<key>, reanalysis.<key> of the indexed runs){hint}"
        )


def compile_filter(text: str, known: Mapping[str, set[str]]) -> CompiledFilter:
    """``text`` as SQL on table ``runs`` with ``?`` parameters; ``known`` maps each value kind
    (parameter, result, truth, reanalysis) to the keys the catalogue holds (the whitelist)."""
    return _Parser(text, known).parse()
