"""The FW102C polariser wheel driver, unchanged, on its wire-level twin: the analyser in the
detection path of the simulated microscope follows the wheel (Farrow et al., Malus's law)."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hbtscope
from hbtscope.config_schema import SetupFileError
from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.thorlabs_fw102c import FilterWheelError
from hbtscope.setup import default_setup_path

FW102C = """  polariser:
    driver: ThorlabsFW102C
    backend: sim
    address: ASRL5::INSTR
    settings:
      position_count: 6
      open_slot: 1
      first_angle_deg: 0
      angle_step_deg: 36
      angle_tolerance_deg: 1
"""


def _with_role(text: str, role: str, block: str) -> str:
    """sim.yaml's text with the block of ``role`` (its line and the lines indented below it)
    replaced by ``block``."""
    pattern = re.compile(rf"^  {role}:[^\n]*\n(?:(?:    [^\n]*)?\n)*", re.M)
    assert pattern.search(text), f"no '{role}:' block in sim.yaml"
    return pattern.sub(lambda m: block, text, count=1)


def _setup(tmp_path, block=FW102C):
    text = default_setup_path().read_text()
    # the subject is not the stage: an ideal one puts the focus exactly on the emitter
    text = text.replace("hysteresis_um: 0.15", "hysteresis_um: 0.0").replace(
        "creep_per_decade: 0.01", "creep_per_decade: 0.0"
    )
    text = _with_role(text, "polariser", block)
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return hbtscope.open_setup(path, data_dir=tmp_path)


def _spad_rate(setup, seconds):
    tt = setup.tagger
    cr = tt.api.Countrate(tt.device, list(tt.spad_channels))
    cr.startFor(int(seconds * 1e12))
    cr.waitUntilFinished()
    return float(cr.getData().sum())


def test_analyser_follows_the_wheel_and_malus(tmp_path):
    """Emitter dipole at 30°, DOLP 0.4: I(θ) = I (0.3 + 0.4 cos²(θ − 30°))."""
    with _setup(tmp_path) as s:
        w = s.world
        w.emitters[0] = replace(w.emitters[0], dipole_deg=30.0, dolp=0.4)
        w._dipole[0], w._dolp[0] = 30.0, 0.4
        s.stage.move_to(10.0, 10.0, 0.0)
        s.laser.power_W = 24e-9
        s.laser.enable()
        total = w.truth_at_focus()["emitter_rate_cps"]
        assert w.analyser_deg is None and not s.polariser.in_path  # empty slot at start
        s.polariser.in_path = True
        rates = {}
        for angle in (36.0, 108.0):
            s.polariser.angle_deg = angle
            assert w.analyser_deg == angle
            rates[angle] = _spad_rate(s, 5.0) - 200.0
        for angle, rate in rates.items():
            expected = 0.3 + 0.4 * math.cos(math.radians(angle - 30.0)) ** 2
            assert rate == pytest.approx(total * expected, rel=0.03)
        s.polariser.in_path = False
        assert w.analyser_deg is None
        assert s.snapshot()["polariser"]["slot"] == 1


def test_turning_the_wheel_takes_time_the_short_way_round(tmp_path):
    with _setup(tmp_path) as s:
        pol, twin = s.polariser, s.polariser.inst.adapter.twin
        t0 = s.clock.now()
        pol.angle_deg = 144.0
        pol.in_path = True  # slot 1 → 6: one step backwards
        assert s.clock.now() - t0 == pytest.approx(1.0, abs=0.05)
        pol.inst.speed_mode = "slow"
        t0 = s.clock.now()
        pol.angle_deg = 72.0  # slot 6 → 4: two steps at 2 s
        assert s.clock.now() - t0 == pytest.approx(4.0, abs=0.05)
        assert twin.pos == 4 and s.world.analyser_deg == 72.0


def test_unavailable_angle_raises_and_nothing_moves(tmp_path):
    with _setup(tmp_path) as s:
        pol, twin = s.polariser, s.polariser.inst.adapter.twin
        pol.in_path = True
        n = len(twin.received)
        with pytest.raises(
            LimitError, match=r"50° is not in the wheel: it holds 0, 36, 72, 108, 144°"
        ):
            pol.angle_deg = 50.0
        assert not any(c.startswith("pos=") for c in twin.received[n:])


def test_error_replies_of_the_twin(tmp_path):
    with _setup(tmp_path) as s:
        inst = s.polariser.inst
        with pytest.raises(FilterWheelError, match="CMD_ARG_INVALID"):
            inst.write("pos=9")
            inst.check_set_errors()
        with pytest.raises(FilterWheelError, match="CMD_NOT_DEFINED"):
            inst.ask("spin?")
        assert inst.id.startswith("THORLABS FW102C/FW212C")
        assert inst.position == 1


def test_a_wheel_that_does_not_match_the_setup_is_refused(tmp_path):
    block = FW102C.replace("open_slot: 1", "open_slot: 9")
    with pytest.raises(SetupFileError, match="open_slot 9 > position_count 6"):
        _setup(tmp_path, block)


angles = st.one_of(
    st.floats(min_value=-720, max_value=720),
    st.sampled_from([0.0, 36.0, 37.0, 37.0001, 180.0, 359.5, math.nan, math.inf]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=st.lists(st.tuples(angles, st.booleans()), min_size=1, max_size=10))
def test_no_request_reaches_an_invalid_slot_or_a_wrong_angle(tmp_path_factory, requests):
    with _setup(tmp_path_factory.mktemp("fw")) as s:
        pol, twin = s.polariser, s.polariser.inst.adapter.twin
        for angle, in_path in requests:
            pol.in_path = in_path
            try:
                pol.angle_deg = angle
            except LimitError:
                continue
            if in_path:
                a = twin.slot_angles[twin.pos]
                d = (a - angle) % 180.0
                assert min(d, 180.0 - d) <= 1.0 + 1e-9
                assert s.world.analyser_deg == a
        for cmd in twin.received:
            if cmd.startswith("pos="):
                assert 1 <= int(cmd[4:]) <= 6, cmd
