"""Hypothesis on queue files: any damage to a good queue file either still parses or gives one
QueueFileError naming the file and a line of it; no code in it ever runs."""

from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hbtscope.demo import DEMO_QUEUE
from hbtscope.queue.spec import QueueFileError, parse_queue_text

GOOD = yaml.safe_load(DEMO_QUEUE.read_text())
_PATHS: list[tuple] = []


def _collect(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            _PATHS.append(path + (k,))
            _collect(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _PATHS.append(path + (i,))
            _collect(v, path + (i,))


_collect(GOOD)

_junk = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "{scan.n_emitters} * 2",
            "__import__('os').system('touch /tmp/pwned')",
            "{g2.g2_0} + (lambda: 1)()",
            "open('/etc/passwd').read()",
            "{a.b}.__class__",
            "1e999",
            "{x.y} ** 99999999",
        ]
    ),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.none(),
    st.booleans(),
)


def _set(data, path, value, drop):
    node = data
    for p in path[:-1]:
        node = node[p]
    if drop:
        del node[path[-1]]
    else:
        node[path[-1]] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(_PATHS), value=_junk, drop=st.booleans())
def test_a_damaged_queue_file_parses_or_says_where(path, value, drop):
    data = copy.deepcopy(GOOD)
    _set(data, path, value, drop)
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    try:
        parse_queue_text(text, "night.yaml")
    except QueueFileError as err:
        assert str(err).startswith("night.yaml")
        assert err.line is None or 1 <= err.line <= len(text.splitlines())
        assert "\n" not in str(err)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_queue_file_or_a_clear_error(text):
    try:
        parse_queue_text(text, "q.yaml")
    except QueueFileError as err:
        assert str(err).startswith("q.yaml")
