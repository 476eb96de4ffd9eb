"""Queue-file expressions: a small grammar over earlier results, never eval."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbtscope.queue.expressions import ExpressionError, is_expression, parse

RESULTS = {("saturation", "P_sat_W"): 2e-8, ("g2", "g2_0"): 0.1, ("g2", "g2_0_err"): 0.05}


def resolve(name: str, key: str) -> float:
    try:
        return RESULTS[(name, key)]
    except KeyError:
        raise LookupError(f"no result {name}.{key}") from None


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("{saturation.P_sat_W}", 2e-8),
        ("2 * {saturation.P_sat_W}", 4e-8),
        ("{ saturation.P_sat_W } / 4 + 1e-9", 6e-9),
        ("{g2.g2_0} + 2 * {g2.g2_0_err} >= 0.5", False),
        ("{g2.g2_0} + 2 * {g2.g2_0_err} < 0.5 and not false", True),
        ("min(3, {g2.g2_0}, 1)", 0.1),
        ("max(-1, -{g2.g2_0})", -0.1),
        ("abs(-2) + sqrt(4)", 4.0),
        ("0 < {g2.g2_0} <= 0.1", True),
        ("1 or {g2.g2_0}", 1),
    ],
)
def test_values(text, value):
    assert is_expression(text) or "{" not in text
    result = parse(text).evaluate(resolve)
    assert result == pytest.approx(value) if not isinstance(value, bool) else result is value


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("__import__('os').system('true')", "unknown name '__import__'|Call"),
        ("{g2.g2_0}.real", "Attribute is not allowed"),
        ("2 ** 1000000000", "Pow is not allowed"),
        ("'a' * 10", "only numbers"),
        ("[1, 2][0]", "Subscript is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("open('x')", "unknown name 'open'|Call"),
        ("{g2 g2_0}", r"a reference is written \{name.key\}"),
        ("1 +", "not a valid expression"),
        ("(" * 40 + "1" + ")" * 40 + " + " + "-" * 40 + "1", "nested deeper|not a valid"),
        ("1" + " + 1" * 200, "longer than 500 characters"),
        ("x", "unknown name 'x'"),
        ("min()", "Call is not allowed"),
        ("sqrt(x=1)", "Call is not allowed"),
    ],
)
def test_anything_else_is_refused_with_the_reason(text, says):
    with pytest.raises(ExpressionError, match=says):
        parse(text)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{saturation.I_sat}", "no result saturation.I_sat"),
        ("1 / ({g2.g2_0} - 0.1)", "cannot be evaluated"),
        ("sqrt(-{g2.g2_0})", "cannot be evaluated"),
    ],
)
def test_evaluation_errors_are_expression_errors(text, says):
    with pytest.raises(ExpressionError, match=says):
        parse(text).evaluate(resolve)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_parses_or_is_refused_cleanly(text):
    try:
        expr = parse(text)
    except ExpressionError:
        return
    try:
        value = expr.evaluate(lambda name, key: 1.0)
    except ExpressionError:
        return
    assert isinstance(value, bool | int | float)  # numbers in, a number or a truth value out
