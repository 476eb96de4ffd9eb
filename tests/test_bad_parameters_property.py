"""Property tests (issue 16, point 5): every bad measurement parameter is refused before the
hardware is touched, before a run file exists, within a small memory bound.

Each example takes a measurement (every runnable one; g2 with random *valid* values for the
parameters that have no cross-checks) and breaks one parameter in a way drawn from every way
it can be wrong: NaN (where NaN has no meaning), ±inf, below its minimum, above its maximum,
or valid for the parameter but not for the setup (above the setup's laser limit, outside the stage
travel, a histogram that would not fit in memory, a window that misses the normalisation
peaks). It is run through the runner on the real drivers of ``config/lab-sim.yaml`` (their
simulated twins act on the simulated world, which logs every hardware action it receives).
The refusal must be a :class:`ParameterError` naming the parameter; the world's hardware log
must be unchanged, the data directory empty, and the peak Python allocation (tracemalloc,
which numpy reports to) below 64 MB.
"""

from __future__ import annotations

import itertools
import math
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymeasure.experiment import FloatParameter, IntegerParameter

import hbtscope
from hbtscope.procedures.errors import ParameterError
from hbtscope.procedures.g2 import G2Measurement
from hbtscope.procedures.registry import runnable
from hbtscope.procedures.runner import run_procedure

REPO = Path(__file__).resolve().parents[1]
LAB_SIM = REPO / "config" / "lab-sim.yaml"
PEAK_BYTES = 64 * 2**20


def _range_breakers(cls) -> list[tuple[str, str, float]]:
    """(measurement, parameter, value) triples that break a parameter's own type or range."""
    cases: list[tuple[str, str, float]] = []
    for name, p in cls()._parameters.items():
        if not isinstance(p, FloatParameter | IntegerParameter):
            continue
        lo, hi = getattr(p, "minimum", None), getattr(p, "maximum", None)
        if isinstance(p, FloatParameter):
            if name not in cls.NAN_MEANS:
                cases.append((cls.NAME, name, math.nan))
            cases += [(cls.NAME, name, math.inf), (cls.NAME, name, -math.inf)]
        if lo is not None and lo > -1e300:
            cases.append((cls.NAME, name, lo - max(1, abs(lo))))
        if hi is not None and hi < 1e300:
            cases.append((cls.NAME, name, hi * 10 + 1))
    return cases


_PROCEDURES = {name: m.procedure for name, m in runnable().items()}
_RANGE_CASES = [case for cls in _PROCEDURES.values() for case in _range_breakers(cls)]


def _setup_breakers(setup) -> list[tuple[str, dict[str, float]]]:
    """(parameter named in the error, parameter values) valid alone, refused by this setup."""
    travel = setup.stage.travel_um
    return [
        ("laser_power_W", {"laser_power_W": 1.5 * setup.laser.max_power_W}),
        ("x_um", {"x_um": travel["x"][1] + 1.0}),
        ("y_um", {"y_um": travel["y"][0] - 5.0}),
        ("z_um", {"z_um": travel["z"][1] + 0.5}),
        ("bin_width_ps", {"bin_width_ps": 1, "max_lag_ps": 1_000_000_000}),
        ("max_lag_ps", {"max_lag_ps": 200_000}),
    ]


@pytest.fixture(scope="module")
def lab_setup(tmp_path_factory):
    with hbtscope.open_setup(LAB_SIM, data_dir=tmp_path_factory.mktemp("unused")) as setup:
        yield setup


_counter = itertools.count()

_free = st.fixed_dictionaries(
    {
        "duration_s": st.floats(0.01, 86400.0),
        "readout_s": st.floats(0.01, 1.0),
        "record_tags": st.booleans(),
        "background": st.sampled_from(["linear", "sqrt", "none"]),
        "exclude_crosstalk": st.booleans(),
    }
)


def _assert_refused_untouched(setup, proc, name, out_dir: Path) -> None:
    log_before = list(setup.world.hardware_log)
    tracemalloc.start()
    try:
        with pytest.raises(ParameterError) as info:
            run_procedure(proc, setup, out_dir, figure=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert message.startswith(f"{proc.NAME}: ") and name in message, message
    assert "\n" not in message, message
    assert list(setup.world.hardware_log) == log_before, "hardware was written to"
    assert not out_dir.exists() or not any(out_dir.rglob("*")), "a file was left"
    assert peak < PEAK_BYTES, f"{peak / 2**20:.0f} MB allocated to refuse {name}"


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=st.sampled_from(_RANGE_CASES), free=_free)
def test_a_parameter_out_of_its_own_range_is_refused_untouched(lab_setup, tmp_path, case, free):
    """Every runnable measurement, every numeric parameter (g2 with random valid values of
    the parameters without cross-checks; the others at their defaults)."""
    measurement, name, value = case
    cls = _PROCEDURES[measurement]
    proc = cls(**free) if cls is G2Measurement else cls()
    setattr(proc, name, value)  # past pymeasure's own setter: validate() is the last guard
    _assert_refused_untouched(lab_setup, proc, name, tmp_path / f"d{next(_counter)}")


def test_every_runnable_measurement_is_covered():
    assert {m for m, _, _ in _RANGE_CASES} == set(_PROCEDURES) and "g2" in _PROCEDURES


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(free=_free, index=st.integers(0, 5))
def test_a_parameter_the_setup_does_not_allow_is_refused_untouched(
    lab_setup, tmp_path, free, index
):
    name, values = _setup_breakers(lab_setup)[index]
    proc = G2Measurement(**free, **values)
    _assert_refused_untouched(lab_setup, proc, name, tmp_path / f"d{next(_counter)}")


def test_the_hardware_log_sees_what_a_run_does(lab_setup, tmp_path):
    """The guard above means something: a valid run does write to the hardware."""
    before = len(lab_setup.world.hardware_log)
    proc = G2Measurement(duration_s=0.05, x_um=10.0, y_um=10.0, z_um=0.0)
    outcome = run_procedure(proc, lab_setup, tmp_path, figure=False)
    assert outcome.status == "finished"
    actions = [a for _, a, _ in list(lab_setup.world.hardware_log)[before:]]
    assert "move_focus" in actions and "set_laser" in actions
    assert outcome.path.exists()
