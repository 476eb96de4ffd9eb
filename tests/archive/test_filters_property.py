"""The filter grammar under hypothesis: any text compiles to SQL made only of the grammar's
own fragments (every value a ``?`` parameter) or is one clear FilterError; generated filters
select exactly what the same condition evaluated in Python selects; a hostile value is data."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hbtscope.archive import Catalog, FilterError, compile_filter
from hbtscope.archive.filters import COLUMNS

KNOWN = {
    "parameter": {"x_um", "emitter", "laser_power_W"},
    "result": {"g2_0", "g2_0_err", "P_sat_W", "method"},
    "truth": {"g2_0"},
    "reanalysis": {"g2_0"},
}
#: every token the compiled SQL may contain
SQL_TOKENS = {
    "(",
    ")",
    "?",
    "=",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "GLOB",
    "AND",
    "OR",
    "NOT",
    "IN",
    "SELECT",
    "CAST",
    "COALESCE",
    ",",
    "0",
    "AS",
    "REAL",
    "ORDER",
    "BY",
    "LIMIT",
    "v.analysis",
    "+",
    "-",
    "*",
    "/",
    "1",
    "FROM",
    "run_values",
    "v",
    "WHERE",
    "v.run_id",
    "runs.id",
    "v.kind",
    "v.key",
    "v.num",
    "v.text",
    *(c for c, _ in COLUMNS.values()),
}
_SQL_TOKEN = re.compile(r"\s*(!=|<=|>=|[(),?=<>+*/-]|[A-Za-z_][A-Za-z0-9_.]*|\d+)")


def _sql_tokens(sql: str) -> list[str]:
    out, pos = [], 0
    while pos < len(sql):
        m = _SQL_TOKEN.match(sql, pos)
        assert m is not None, f"unexpected SQL text at {sql[pos:]!r}"
        out.append(m.group(1))
        pos = m.end()
        if not sql[pos:].strip():
            break
    return out


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_any_text_is_whitelisted_sql_or_one_clear_error(text):
    try:
        c = compile_filter(text, KNOWN)
    except FilterError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg
        return
    assert set(_sql_tokens(c.sql)) <= SQL_TOKENS, c.sql
    assert c.sql.count("?") == len(c.params)


ALPHABET = st.sampled_from(list("g2_0<>=!\"' ()andornot.~x1e-5;DROPTABLEruns\\*"))


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=60).map("".join))
def test_filter_like_text_is_whitelisted_sql_or_one_clear_error(text):
    test_any_text_is_whitelisted_sql_or_one_clear_error.hypothesis.inner_test(text)


# --- generated filters against a tiny catalogue, evaluated both ways -------------------------
NAMES_NUM = ["g2_0", "P_sat_W", "parameters.x_um", "truth.g2_0", "size_bytes"]
NAMES_TEXT = ["measurement", "emitter", "status", "method"]
HOSTILE = ["scan-001", "g2", "'; DROP TABLE runs; --", '" OR 1=1 --', "%", "*", "a\\b"]

ROWS = [
    # measurement, emitter, status, size, g2_0, P_sat_W, x_um, truth g2_0, method
    ("g2", "scan-001", "finished", 100, 0.1, None, 10.0, 0.05, "linear"),
    ("g2", "scan-002", "finished", 200, 0.3, None, 20.0, 0.25, "sqrt"),
    ("g2", "'; DROP TABLE runs; --", "failed", 300, float("nan"), None, 30.0, None, "linear"),
    ("saturation", "scan-001", "finished", 400, None, 4e-8, 10.0, None, None),
    ("saturation", "scan-002", "aborted", 500, None, 6e-8, 20.0, None, None),
]


def _cmp(a, op, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return False
    return {
        "==": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]


def _value(row, name):
    m, e, s, size, g, p, x, tg, meth = row
    return {
        "measurement": m,
        "emitter": e,
        "status": s,
        "size_bytes": size,
        "g2_0": g,
        "P_sat_W": p,
        "parameters.x_um": x,
        "truth.g2_0": tg,
        "method": meth,
    }[name]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


comparison_num = st.tuples(
    st.sampled_from(NAMES_NUM),
    st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    st.sampled_from([0.0, 0.1, 0.2, 0.3, 5e-8, 15.0, 250.0, -1.0]),
).map(lambda t: (f"{t[0]} {t[1]} {t[2]!r}", lambda row, t=t: _cmp(_value(row, t[0]), t[1], t[2])))
comparison_text = st.tuples(
    st.sampled_from(NAMES_TEXT), st.sampled_from(["==", "!="]), st.sampled_from(HOSTILE)
).map(
    lambda t: (
        f"{t[0]} {t[1]} {_quote(t[2])}",
        lambda row, t=t: _cmp(_value(row, t[0]), t[1], t[2]),
    )
)


def _arith(row, a: str, c: float, b: str):
    x, y = _value(row, a), _value(row, b)
    if x is None or y is None or math.isnan(x) or math.isnan(y):
        return None
    return x + c * y


comparison_arith = st.tuples(
    st.sampled_from(NAMES_NUM),
    st.sampled_from([-2.0, 0.5, 2.0]),
    st.sampled_from(NAMES_NUM),
    st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    st.sampled_from([0.0, 0.3, 0.5, 30.0, 600.0]),
).map(
    lambda t: (
        f"{t[0]} + {t[1]!r} * {t[2]} {t[3]} {t[4]!r}",
        lambda row, t=t: _cmp(_arith(row, t[0], t[1], t[2]), t[3], t[4]),
    )
)


def _combine(children):
    return st.one_of(
        st.tuples(children, children).map(
            lambda ab: (
                f"({ab[0][0]}) and ({ab[1][0]})",
                lambda r, ab=ab: ab[0][1](r) and ab[1][1](r),
            )
        ),
        st.tuples(children, children).map(
            lambda ab: (
                f"({ab[0][0]}) or ({ab[1][0]})",
                lambda r, ab=ab: ab[0][1](r) or ab[1][1](r),
            )
        ),
        children.map(lambda a: (f"not ({a[0]})", lambda r, a=a: not a[1](r))),
    )


filters = st.recursive(
    st.one_of(comparison_num, comparison_text, comparison_arith), _combine, max_leaves=6
)


@pytest.fixture(scope="module")
def tiny_catalog(tmp_path_factory):
    path = tmp_path_factory.mktemp("cat") / "c.sqlite"
    cat = Catalog(path)
    for i, (m, e, s, size, g, p, x, tg, meth) in enumerate(ROWS):
        run_id = cat.con.execute(
            "INSERT INTO runs (path, size_bytes, mtime_ns, measurement, emitter, status, "
            "indexed_at) VALUES (?, ?, 0, ?, ?, ?, '')",
            (f"/runs/{i}.h5", size, m, e, s),
        ).lastrowid
        values = [("parameter", "x_um", x, None), ("parameter", "emitter", None, e)]
        if g is not None:
            values.append(("result", "g2_0", None if math.isnan(g) else g, None))
        if p is not None:
            values.append(("result", "P_sat_W", p, None))
        if tg is not None:
            values.append(("truth", "g2_0", tg, None))
        if meth is not None:
            values.append(("result", "method", None, meth))
        cat.con.executemany(
            "INSERT INTO run_values (run_id, kind, key, num, text) VALUES (?, ?, ?, ?, ?)",
            [(run_id, *v) for v in values],
        )
    cat.commit()
    yield cat
    cat.close()


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(filters)
def test_generated_filters_select_what_python_selects(tiny_catalog, f):
    text, predicate = f
    expected = [f"/runs/{i}.h5" for i, row in enumerate(ROWS) if predicate(row)]
    assert tiny_catalog.paths([text]) == expected, text
    assert tiny_catalog.count() == len(ROWS)  # nothing dropped, nothing changed
    tables = {r[0] for r in tiny_catalog.con.execute("SELECT name FROM sqlite_master")}
    assert {"runs", "run_values", "reanalysis"} <= tables


def test_arithmetic_on_values_of_one_run(tiny_catalog):
    # g2_0 + 2 * truth.g2_0: runs 0 (0.1 + 0.1) and 1 (0.3 + 0.5); run 2 has NaN, 3-4 nothing
    assert tiny_catalog.paths(["g2_0 + 2 * truth.g2_0 < 0.5"]) == ["/runs/0.h5"]
    assert tiny_catalog.paths(["not (g2_0 + 2 * truth.g2_0 < 0.5)"]) == [
        f"/runs/{i}.h5" for i in (1, 2, 3, 4)
    ]
    assert tiny_catalog.paths(["(size_bytes - 100) / 100 >= 3"]) == ["/runs/3.h5", "/runs/4.h5"]
    assert tiny_catalog.paths(["g2_0 / 0 < 1"]) == []  # division by zero: false
    with pytest.raises(FilterError, match="emitter is text"):
        tiny_catalog.paths(["emitter + 1 < 2"])


def test_a_hostile_value_is_data(tiny_catalog):
    hostile = "'; DROP TABLE runs; --"
    assert tiny_catalog.paths([f"emitter == {_quote(hostile)}"]) == ["/runs/2.h5"]
    with pytest.raises(FilterError):
        tiny_catalog.paths(["emitter == 'x'; DROP TABLE runs"])
    with pytest.raises(FilterError, match="unknown prefix"):
        tiny_catalog.paths(["sqlite_master.name == 'runs'"])
    with pytest.raises(FilterError, match="unknown prefix"):
        tiny_catalog.paths(["runs.path == 'x'"])
    assert tiny_catalog.count() == len(ROWS)
