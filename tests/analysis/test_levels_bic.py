"""Number of intensity levels chosen by :func:`cluster_levels` (Watkins & Yang BIC).

Records are Poisson photons of an emitter hopping between ``k`` levels, 2000 cps x 2**i
(i = 0..k-1: 2, 4, 8, 16, 32 kcps), the next level drawn uniformly among the *other* levels,
exponential dwell times with a mean of 1000 photons in every level (mean dwell
1000 / rate). Short records have 30 switches, long ones 300; one-level records have the
photons of 31 / 301 such dwells. Each record goes through ``change_points(t, 0.05)`` and
``cluster_levels`` (default ``max_states=8``).

Measured fraction of records given the right number of levels (``python
tests/analysis/test_levels_bic.py 200 60``: 200 short and 60 long records per case, seeds
disjoint from the tests'; "old" is the mixture-likelihood BIC this replaced):

========  ================  ================  ================  ================
levels    short, new        short, old        long, new         long, old
========  ================  ================  ================  ================
1         193/200 (96 %)    189/200 (94 %)    60/60 (100 %)     58/60 (97 %)
2         174/200 (87 %)    83/200 (42 %)     50/60 (83 %)      7/60 (12 %)
3         179/200 (90 %)    118/200 (59 %)    59/60 (98 %)      30/60 (50 %)
4         183/200 (92 %)    132/200 (66 %)    59/60 (98 %)      42/60 (70 %)
5         186/200 (93 %)    130/200 (65 %)    59/60 (98 %)      37/60 (62 %)
========  ================  ================  ================  ================

The asserted bounds sit about three binomial sigma (of the test's own number of records)
below the measured fraction.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from hbtscope.analysis.blinking import LevelsResult, change_points, cluster_levels
from hbtscope.analysis.blinking.levels import _classification_ll

PS = 1e12
BASE_CPS = 2000.0
STEP = 2.0
PHOTONS_PER_DWELL = 1000.0
SHORT, LONG = 30, 300


def levels_cps(k: int) -> np.ndarray:
    return BASE_CPS * STEP ** np.arange(k)


def hopping_record(rng, k: int, n_switches: int) -> tuple[np.ndarray, np.ndarray]:
    """Photon times (int64 ps) and the level of each dwell, for ``n_switches + 1`` dwells."""
    rates = levels_cps(k)
    s = int(rng.integers(k))
    t, chunks, seq = 0.0, [], []
    for _ in range(n_switches + 1):
        d = rng.exponential(PHOTONS_PER_DWELL / rates[s])
        chunks.append(rng.uniform(t, t + d, rng.poisson(rates[s] * d)))
        seq.append(s)
        t += d
        if k > 1:
            s = int(rng.choice([x for x in range(k) if x != s]))
    t_ps = np.round(np.sort(np.concatenate(chunks)) * PS).astype(np.int64)
    return t_ps, np.asarray(seq)


def levels_of(rng, k: int, n_switches: int) -> LevelsResult:
    t, _ = hopping_record(rng, k, n_switches)
    return cluster_levels(change_points(t, 0.05))


def fraction_right(seed: int, k: int, n_switches: int, n_records: int) -> tuple[float, list]:
    rng = np.random.default_rng(seed)
    got = [levels_of(rng, k, n_switches) for _ in range(n_records)]
    return float(np.mean([g.n_states == k for g in got])), got


def _check(k, n_switches, n_records, bound):
    frac, got = fraction_right(1000 * k + n_switches, k, n_switches, n_records)
    counts = np.bincount([g.n_states for g in got], minlength=9)[1:]
    assert frac >= bound, f"{k} levels, {n_switches} switches: {frac:.2f} right; counts {counts}"
    # where the number is right, so are the levels (within 10 %: a short record has a few
    # dwells per level, and undetected short dwells mix into their neighbours)
    for g in got:
        if g.n_states == k:
            np.testing.assert_allclose(g.rates_cps, levels_cps(k), rtol=0.10)
            assert g.n_transitions[k - 1] >= k - 1


# (levels, bound for 40 short records, bound for 20 long records): the measured fraction p of
# the table minus 3 sqrt(p (1 - p) / n), rounded down to 0.05 (p = 0.95 where 60/60 or 59/60)
CASES = [(1, 0.85, 0.8), (2, 0.7, 0.55), (3, 0.75, 0.8), (4, 0.75, 0.8), (5, 0.8, 0.8)]


@pytest.mark.parametrize(("k", "bound"), [(c[0], c[1]) for c in CASES])
def test_short_records_get_the_right_number_of_levels(k, bound):
    _check(k, SHORT, 40, bound)


@pytest.mark.slow
@pytest.mark.parametrize(("k", "bound"), [(c[0], c[2]) for c in CASES])
def test_long_records_get_the_right_number_of_levels(k, bound):
    _check(k, LONG, 20, bound)


def test_bic_fields_are_consistent():
    """BIC recomputed from the reported classification log-likelihood and transitions."""
    rng = np.random.default_rng(7)
    lv = levels_of(rng, 3, SHORT)
    m = np.arange(1, lv.bic.size + 1)
    ok = np.isfinite(lv.bic)
    expect = (
        2 * lv.classification_log_likelihood
        - (2 * m - 1) * np.log(np.maximum(lv.n_transitions, 1))
        - lv.n_transitions * math.log(lv.n_photons)
    )
    np.testing.assert_allclose(lv.bic[ok], expect[ok])
    assert lv.n_transitions[0] == 0
    assert lv.n_states == int(np.argmax(lv.bic)) + 1
    # state sequence: transitions counted along the record
    s = lv.state_of_segment
    assert lv.n_transitions[lv.n_states - 1] == np.count_nonzero(s[1:] != s[:-1])
    assert lv.weights.sum() == pytest.approx(1.0)
    assert lv.time_fraction.sum() == pytest.approx(1.0)
    assert np.all(np.diff(lv.rates_cps) > 0)


@pytest.mark.parametrize("k", [3, 5])
def test_classification_is_at_least_as_likely_as_the_nearest_true_level(k):
    """Optimiser-independent check of the clustering (issue 10, point 1): at n_G = k the
    returned classification's likelihood is not below that of assigning every segment to the
    true level nearest its rate (in log rate), with the partition's own ML parameters."""
    rng = np.random.default_rng(500 + k)
    checked = 0
    for _ in range(15):
        t, _ = hopping_record(rng, k, SHORT)
        cp = change_points(t, 0.05)
        lv = cluster_levels(cp)
        n = cp.seg_photons.astype(np.float64)
        dur = cp.seg_duration_ps.astype(np.float64)
        log_rate = np.log(n / dur * PS)
        nearest = np.argmin(np.abs(log_rate[:, None] - np.log(levels_cps(k))[None, :]), axis=1)
        if np.any(np.bincount(nearest, minlength=k) == 0):
            continue
        checked += 1
        assert lv.classification_log_likelihood[k - 1] >= (
            _classification_ll(n, dur, nearest, k) - 1e-6
        )
    assert checked >= 10


def _old_cluster_levels():
    """The mixture-likelihood BIC this module replaced, from git (for the table only)."""
    import importlib.util
    import subprocess
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    src = subprocess.run(
        ["git", "-C", str(root), "show", "3bf99e8:hbtscope/analysis/blinking.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_blinking.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_blinking", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["old_blinking"] = mod
    spec.loader.exec_module(mod)
    return mod.cluster_levels


def main(n_short: int = 200, n_long: int = 60) -> None:
    """Print the table of the module docstring (seeds disjoint from the tests')."""
    old = _old_cluster_levels()
    for k in range(1, 6):
        row = [f"{k}"]
        for n_sw, n_rec in ((SHORT, n_short), (LONG, n_long)):
            rng = np.random.default_rng(99_000 + 1000 * k + n_sw)
            new_ok = old_ok = 0
            for _ in range(n_rec):
                t, _ = hopping_record(rng, k, n_sw)
                cp = change_points(t, 0.05)
                new_ok += cluster_levels(cp).n_states == k
                old_ok += old((cp.seg_photons, cp.seg_duration_ps)).n_states == k
            row += [f"{new_ok}/{n_rec}", f"{old_ok}/{n_rec}"]
        print("  ".join(f"{c:<14}" for c in row), flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
