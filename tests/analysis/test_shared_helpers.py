"""The helpers shared by the analysis modules: result -> scalars, input checks, streaming pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hbtscope.analysis import (
    CorrelationAccumulator,
    LogCorrelationAccumulator,
    correlate,
    malus_fit,
    on_fraction,
)
from hbtscope.analysis._result import scalar_dict
from hbtscope.analysis._validate import as_tags, as_times, finite_array


def test_result_as_dict_is_plain_json_without_arrays():
    rng = np.random.default_rng(1)
    theta = np.arange(0.0, 360.0, 15.0)
    counts = rng.poisson(1000 + 800 * np.cos(np.radians(theta - 40.0)) ** 2)
    r = malus_fit(theta, counts)
    d = r.as_dict()
    json.dumps(d)  # run-file attributes must be plain scalars
    assert "coef" not in d and "cov" not in d  # arrays left out
    assert d["theta0_deg_err"] == pytest.approx(r.theta0_deg_err)
    assert type(d["dof"]) is int and type(d["identifiable"]) is bool


def test_on_fraction_as_dict_keeps_its_run_file_names():
    rng = np.random.default_rng(2)
    counts = np.r_[rng.poisson(200, 300), rng.poisson(10, 100)]
    d = on_fraction(counts).as_dict()
    json.dumps(d)
    assert d["on_fraction"] == pytest.approx(0.75)
    assert isinstance(d["on_fraction_ci"], list) and len(d["on_fraction_ci"]) == 2
    assert "fraction" not in d


def test_scalar_dict_can_leave_tuples_out():
    from dataclasses import dataclass

    @dataclass
    class R:
        a: float
        pair: tuple[float, float]

    assert scalar_dict(R(np.float32(1.5), (1, 2))) == {"a": 1.5, "pair": [1.0, 2.0]}
    assert scalar_dict(R(1.5, (1, 2)), tuples=False) == {"a": 1.5}


def test_input_checks_name_the_argument_and_keep_integer_tags():
    assert as_times("t_ps", [1, 2, 3]).dtype == np.int64
    assert as_times("t_ps", [1.0, 2.5]).dtype == np.float64
    with pytest.raises(ValueError, match="t_ps must be sorted"):
        as_times("t_ps", [3, 1])
    with pytest.raises(TypeError, match="t1_ps"):
        as_tags(np.array([1.5, 2.0]), "t1_ps")
    with pytest.raises(ValueError, match="spectra must be a 2-D array"):
        finite_array("spectra", [1.0, 2.0], 2)


@pytest.mark.parametrize("seed", range(3))
def test_linear_and_log_accumulators_agree_chunk_by_chunk(seed):
    # the two streaming correlators share one history/chunk machinery: on the same (linear)
    # bins and the same random chunking both must equal the one-shot correlation
    rng = np.random.default_rng(seed)
    t1 = np.sort(rng.integers(0, 50_000_000, 4000))
    t2 = np.sort(rng.integers(0, 50_000_000, 3000))
    bw, ml = 10_000, 200_000
    edges = np.arange(-ml, ml + 1, bw)
    lin = CorrelationAccumulator(bw, ml)
    log = LogCorrelationAccumulator(edges)
    cuts = np.sort(rng.integers(0, 50_000_000, 12))
    lo = 0
    for c in [*cuts, 50_000_000]:
        a = t1[(t1 >= lo) & (t1 < c)]
        b = t2[(t2 >= lo) & (t2 < c)]
        lin.add(a, b, t_end_ps=int(c))
        log.add(a, b, t_end_ps=int(c))
        lo = c
    _, once = correlate(t1, t2, bw, ml)
    np.testing.assert_array_equal(lin.counts, once)
    np.testing.assert_array_equal(log.counts, once)
    assert lin.n_tags == log.n_tags == (t1.size, t2.size)
    # the history is bounded by the lag window, not by the record
    assert lin._hist1.size < 100 and log._hist2.size < 100
