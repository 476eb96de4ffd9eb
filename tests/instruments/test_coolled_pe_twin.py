"""The CoolLED pE driver, unchanged, on its wire-level twin in the simulated microscope."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyvisa.errors import VisaIOError

import hbtscope
from hbtscope.drivers_sim.presets import LED_REFERENCE_W_PER_CM2
from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.coolled_pe import ChannelState, CoolLEDError
from hbtscope.setup import default_setup_path

COOLLED = """  led:
    driver: CoolLEDpE
    backend: sim
    address: ASRL4::INSTR
    limits:
      max_fraction: 0.6
"""
EMITTER0 = (
    "      - {x_um: 10.0, y_um: 10.0, qy_x: 0.8, qy_xx: 0.04, tau_x_ns: 10.2, "
    "tau_xx_ns: 0.8, sigma_abs_cm2: 1.0e-13}"
)


def _with_role(text: str, role: str, block: str) -> str:
    """sim.yaml's text with the block of ``role`` (its line and the lines indented below it)
    replaced by ``block``."""
    pattern = re.compile(rf"^  {role}:[^\n]*\n(?:(?:    [^\n]*)?\n)*", re.M)
    assert pattern.search(text), f"no '{role}:' block in sim.yaml"
    return pattern.sub(lambda m: block, text, count=1)


def _setup(tmp_path, block=COOLLED, bleach_dose=None):
    text = default_setup_path().read_text()
    assert EMITTER0 in text
    text = _with_role(text, "led", block)
    if bleach_dose is not None:
        text = text.replace(EMITTER0, EMITTER0[:-1] + f", bleach_dose: {bleach_dose}}}")
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return hbtscope.open_setup(path, data_dir=tmp_path)


def test_led_illuminates_the_world_and_doses_the_emitters(tmp_path):
    """Emitter 0 (σ = 1e-13 cm²) absorbs 1e6 photons/s at the reference illumination."""
    with _setup(tmp_path) as s:
        w, dyn = s.world, s.world.dynamics[0]
        s.led.power_fraction = 0.5
        assert not w.led.on  # intensity set, output still off
        t0, d0 = w.clock.now_ps(), dyn.dose_at(w.clock.now_ps())
        s.led.enable()
        assert w.led.on and w.led.intensity_W_cm2 == pytest.approx(0.5 * LED_REFERENCE_W_PER_CM2)
        s.clock.sleep(10.0)
        s.led.disable()
        dose = dyn.dose_at(w.clock.now_ps()) - d0
        assert dose == pytest.approx(0.5e6 * (w.clock.now_ps() - t0) * 1e-12, rel=1e-3)
        s.clock.sleep(10.0)
        assert dyn.dose_at(w.clock.now_ps()) - d0 == pytest.approx(dose)  # off: no more dose


def test_the_led_bleaches_an_emitter(tmp_path):
    with _setup(tmp_path, bleach_dose=5.0e6) as s:
        w = s.world
        s.led.power_fraction = 0.5
        s.led.enable()  # 5e5 absorbed/s: bleaches after 10 s
        s.clock.sleep(9.0)
        assert not w.dynamics[0].bleached_at(w.clock.now_ps())
        s.clock.sleep(2.0)
        assert w.dynamics[0].bleached_at(w.clock.now_ps())
        assert not w.dynamics[1].bleached_at(w.clock.now_ps())  # infinite bleach dose


def test_close_and_safe_state_turn_the_led_off(tmp_path):
    s = _setup(tmp_path)
    s.led.power_fraction = 0.3
    s.led.enable()
    twin = s.led.inst.adapter.twin
    s.safe_state()
    assert not s.world.led.on and twin.received[-1] == "CSF"
    s.led.enable()
    s.close()
    assert not s.world.led.on


def test_greeting_error_replies_and_versions(tmp_path):
    with _setup(tmp_path) as s:
        inst, twin = s.led.inst, s.led.inst.adapter.twin
        assert twin.received[0] == "CSS?"  # its reply came after the greeting
        assert inst.versions()["MB"] == "1.4.2"
        assert inst.wavelengths_nm(1) == {"A": 400}
        with pytest.raises(CoolLEDError, match="expected a CSS channel status"):
            inst.set_channels({"B": ChannelState(True, True, 10)})  # a pE-100 has no B
        twin.power_cycle()  # greets again at the next exchange
        assert s.led.power_fraction == 0.0 and not s.led.on
        assert s.snapshot()["led"]["model"] == "pE-100"


def test_random_timeouts_are_survived(tmp_path):
    text = default_setup_path().read_text()
    text = _with_role(text, "led", COOLLED)
    sync = "  sync: {tagger_channel: 1, delay_ps: 0}\n"
    text = text.replace(
        sync, sync + "  faults:\n    - {kind: timeout, role: led, probability: 0.05}\n"
    )
    path = tmp_path / "faulty.yaml"
    path.write_text(text)
    with hbtscope.open_setup(path, data_dir=tmp_path) as s:
        failed = 0
        for i in range(60):  # ~120 requests, ~6 lost replies
            try:
                s.led.power_fraction = (i % 7) / 12
            except VisaIOError:  # two lost replies in a row (p = 0.0025 per request)
                failed += 1
        assert s.led.recoveries.count("timeout") >= 3
        assert failed <= 2
        assert s.led.power_fraction == pytest.approx((59 % 7) / 12, abs=0.01)


fractions = st.one_of(
    st.floats(min_value=-2.0, max_value=2.0),
    st.sampled_from([0.6, 0.6000001, 0.605, 0.595, 1.0, math.nan, math.inf, -0.0]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=st.lists(st.tuples(fractions, st.booleans()), min_size=1, max_size=12))
def test_no_sequence_of_requests_gets_past_max_fraction(tmp_path_factory, requests):
    with _setup(tmp_path_factory.mktemp("led")) as s:
        twin = s.led.inst.adapter.twin
        for fraction, on in requests:
            try:
                s.led.power_fraction = fraction
            except LimitError:
                pass
            s.led.enable() if on else s.led.disable()
        for cmd in twin.received:
            if cmd.startswith("CSS") and cmd != "CSS?":
                assert int(cmd[6:9]) <= 60, cmd
        assert twin.intensity["A"] <= 60
        assert s.world.led.intensity_W_cm2 <= 0.6 * LED_REFERENCE_W_PER_CM2 + 1e-12
