"""Expressions in queue files: arithmetic and conditions on earlier results, never ``eval``.

A queue item may set a parameter from an earlier result, ``laser_power_W: "2 *
{saturation.P_sat_W}"``, and a ``foreach_emitter`` block may skip emitters that fail a purity
cut, ``exclude_if: "{g2.g2_0} + 2 * {g2.g2_0_err} >= 0.5"``. The grammar is small:

* numbers (``1``, ``2.5e-9``), ``true``/``false``;
* references ``{name.key}``: ``name`` is an earlier item's ``id`` or a measurement whose result
  the current emitter has (``saturation``, ``g2``); ``key`` a value of that result; a key
  ending in ``_err`` is the value's uncertainty;
* ``+ - * /``, unary ``-``, parentheses; ``< <= > >= == !=``; ``and or not``;
* the functions ``min(a, b, ...)``, ``max(...)``, ``abs(x)``, ``sqrt(x)``.

Text is parsed by :mod:`ast` into a tree whose every node is checked against this list
(anything else -- names, attributes, calls of other functions, subscripts, powers, strings --
is an :class:`ExpressionError` naming what is not allowed), then evaluated by walking the tree.
Length and depth are bounded, and there is no power operator, so evaluation is cheap.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

#: longest expression text accepted
MAX_LENGTH = 500
#: deepest expression tree accepted
MAX_DEPTH = 32

_REF = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")

_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_COMPARE: dict[type, Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": min,
    "max": max,
    "abs": abs,
    "sqrt": math.sqrt,
}


class ExpressionError(ValueError):
    """An expression that is not allowed, or that cannot be evaluated (what, and why)."""


def is_expression(value: object) -> bool:
    """True for a string holding a reference ``{...}`` (a value computed when its item runs)."""
    return isinstance(value, str) and "{" in value


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text, its references ``(name, key)``, and its tree."""

    text: str
    references: tuple[tuple[str, str], ...]
    tree: ast.Expression

    def evaluate(self, resolve: Callable[[str, str], float]) -> float | bool:
        """The value, with ``resolve(name, key)`` giving each reference's number (it raises
        :class:`ExpressionError` or LookupError for an unknown one)."""
        values = {}
        for i, (name, key) in enumerate(self.references):
            try:
                values[f"_ref{i}"] = resolve(name, key)
            except (LookupError, ValueError) as exc:  # an unknown name, emitter or result
                raise ExpressionError(
                    f"{self.text!r}: {exc.args[0] if exc.args else exc}"
                ) from None
        try:
            return _evaluate(self.tree.body, values)
        except (ArithmeticError, ValueError, TypeError) as exc:
            raise ExpressionError(f"{self.text!r} cannot be evaluated: {exc}") from None


def parse(text: str) -> Expression:
    """Parse ``text`` (:class:`ExpressionError` with the reason if it is not allowed)."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression is text, not {text!r}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters")
    references: list[tuple[str, str]] = []

    def placeholder(match: re.Match) -> str:
        references.append((match.group(1), match.group(2)))
        return f" _ref{len(references) - 1} "

    source = _REF.sub(placeholder, text)
    if "{" in source or "}" in source:
        raise ExpressionError(
            f"{text!r}: a reference is written {{name.key}}, e.g. {{saturation.P_sat_W}}"
        )
    source = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", source))
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{text!r} is not a valid expression ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError):
        raise ExpressionError(f"{text!r} is not a valid expression") from None
    _check(tree.body, text, len(references), 0)
    return Expression(text, tuple(references), tree)


def _check(node: ast.AST, text: str, n_refs: int, depth: int) -> None:
    """Every node of the tree is one the grammar allows."""
    if depth > MAX_DEPTH:
        raise ExpressionError(f"{text!r} is nested deeper than {MAX_DEPTH} levels")
    children: list[ast.AST]
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or (
            isinstance(node.value, int | float) and not isinstance(node.value, complex)
        ):
            return
        raise ExpressionError(f"{text!r}: only numbers are allowed, not {node.value!r}")
    if isinstance(node, ast.Name):
        if re.fullmatch(r"_ref\d+", node.id) and int(node.id[4:]) < n_refs:
            return
        raise ExpressionError(
            f"{text!r}: unknown name {node.id!r}; refer to results as {{name.key}}"
        )
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        children = [node.left, node.right]
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd | ast.Not):
        children = [node.operand]
    elif isinstance(node, ast.BoolOp):
        children = list(node.values)
    elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        children = [node.left, *node.comparators]
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCTIONS
        and not node.keywords
        and node.args
    ):
        children = list(node.args)
    else:
        what = type(getattr(node, "op", node)).__name__
        raise ExpressionError(
            f"{text!r}: {what} is not allowed (numbers, {{name.key}}, + - * /, comparisons, "
            f"and/or/not, {', '.join(_FUNCTIONS)})"
        )
    for child in children:
        _check(child, text, n_refs, depth + 1)


def _evaluate(node: ast.AST, values: dict[str, float]) -> float | bool:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, values), _evaluate(node.right, values))
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, values)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.BoolOp):
        results = (_evaluate(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(right_node, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        return _FUNCTIONS[node.func.id](*(_evaluate(a, values) for a in node.args))
    raise ExpressionError(f"cannot evaluate {ast.dump(node)}")  # unreachable after _check
