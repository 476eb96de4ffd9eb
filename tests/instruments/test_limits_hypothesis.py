"""No sequence of requests, in range or not, gets the simulated hardware past the setup's
hard limits (design §11): every refused request raises LimitError and changes nothing."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hbtscope
from hbtscope.instruments.base import LimitError

_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-1e-3, max_value=1e-3),
    st.floats(min_value=-200, max_value=200),
)
_requests = st.lists(
    st.tuples(st.sampled_from(["power", "rep", "x", "y", "z", "led"]), _numbers),
    min_size=1,
    max_size=25,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    with hbtscope.open_setup(data_dir=tmp_path_factory.mktemp("runs")) as s:
        yield s


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=_requests)
def test_requests_never_exceed_limits(setup, requests):
    laser, stage, led, world = setup.laser, setup.stage, setup.led, setup.world
    travel = stage.travel_um
    for kind, value in requests:
        before = (
            world.laser.power_W,
            world.laser.rep_rate_Hz,
            tuple(world.focus_um),
            world.led.intensity_W_cm2,
        )
        try:
            if kind == "power":
                laser.power_W = value
            elif kind == "rep":
                laser.rep_rate_Hz = value
            elif kind == "led":
                led.power_fraction = value
            else:
                stage.move_to(**{f"{kind}_um": value})
        except LimitError:
            after = (
                world.laser.power_W,
                world.laser.rep_rate_Hz,
                tuple(world.focus_um),
                world.led.intensity_W_cm2,
            )
            assert after == before  # nothing moved, nothing fired
        # the world is always inside the limits
        assert 0.0 <= world.laser.power_W <= laser.max_power_W
        lo, hi = laser.rep_rate_range_Hz
        assert lo <= world.laser.rep_rate_Hz <= hi
        for i, axis in enumerate("xyz"):
            a, b = travel[axis]
            assert a <= world.focus_um[i] <= b and math.isfinite(world.focus_um[i])
        assert 0.0 <= led.power_fraction <= led.max_fraction
