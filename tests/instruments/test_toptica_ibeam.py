"""Toptica iBeam smart driver: the exact serial exchange (pymeasure's expected_protocol), its
hard limits, and the same driver on the wire-level twin in the simulated world."""

from __future__ import annotations

import re

import pytest
from pymeasure.instruments.toptica import IBeamSmart
from pymeasure.test import expected_protocol

import hbtscope
from hbtscope.clock import VirtualClock
from hbtscope.drivers_sim.twins.toptica_ibeam import IBeamSmartTwin
from hbtscope.drivers_sim.wire import SimAdapter
from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.toptica_ibeam import IBeamSmartLaser
from hbtscope.setup import default_setup_path

# pymeasure's IBeamSmart on connecting (the replies before the flush are discarded)
INIT = [("echo off", None), ("prom off", None), ("talk usual", ""), (None, "[OK]")]


def ok(command, *lines):
    """One command and the laser's answer: empty line, reply lines, [OK]."""
    return [(command, "")] + [(None, line) for line in lines] + [(None, "[OK]")]


def level(mw2, mw1=0.0):
    return ok("sh level pow", f"CH1, PWR: {mw1:8.3f} mW", f"CH2, PWR: {mw2:8.3f} mW")


def test_cw_power_is_the_channel_2_level_in_microwatt():
    comm = INIT + ok("ch 2 pow 1500.000000 mic") + level(1.5)
    with expected_protocol(IBeamSmart, comm) as inst:
        laser = IBeamSmartLaser(inst, 2e-3)
        laser.power_W = 1.5e-3
        assert laser.power_W == pytest.approx(1.5e-3)


def test_modulated_power_is_the_average_over_the_duty_cycle():
    comm = INIT + ok("ch 1 pow 0.000000 mic") + ok("ch 2 pow 100.000000 mic") + level(0.1)
    with expected_protocol(IBeamSmart, comm) as inst:
        laser = IBeamSmartLaser(inst, 2e-6, ext_trigger_Hz=5e6, ext_pulse_width_s=2e-9)
        assert laser.duty == pytest.approx(0.01)
        laser.power_W = 1e-6
        assert laser.power_W == pytest.approx(1e-6)
        assert laser.rep_rate_Hz == 5e6
        laser.rep_rate_Hz = 5e6  # the generator's rate is accepted, nothing is sent
        with pytest.raises(LimitError):
            laser.rep_rate_Hz = 10e6


def test_transmission_to_the_sample_scales_the_level():
    comm = INIT + ok("ch 2 pow 1000.000000 mic") + level(1.0)
    with expected_protocol(IBeamSmart, comm) as inst:
        laser = IBeamSmartLaser(inst, 2e-6, transmission=1e-3)
        laser.power_W = 1e-6
        assert laser.power_W == pytest.approx(1e-6)


def test_limits_send_nothing():
    with expected_protocol(IBeamSmart, INIT) as inst:  # any command would fail the protocol
        laser = IBeamSmartLaser(inst, 1e-3, rated_power_W=0.05)
        for bad in (2e-3, -1e-6, float("inf")):
            with pytest.raises(LimitError, match="max_power_W"):
                laser.power_W = bad
        weak = IBeamSmartLaser(inst, 0.2, rated_power_W=0.05)
        with pytest.raises(LimitError, match="rating"):
            weak.power_W = 0.06
        assert laser.rep_rate_Hz == 0.0  # CW
        with pytest.raises(LimitError):
            laser.rep_rate_Hz = 5e6


def test_invalid_configuration_is_refused():
    with expected_protocol(IBeamSmart, INIT) as inst:
        with pytest.raises(LimitError, match="together"):
            IBeamSmartLaser(inst, 1e-3, ext_trigger_Hz=5e6)
        with pytest.raises(LimitError, match="duty"):
            IBeamSmartLaser(inst, 1e-3, ext_trigger_Hz=5e6, ext_pulse_width_s=1e-6)
        with pytest.raises(LimitError, match="transmission"):
            IBeamSmartLaser(inst, 1e-3, transmission=0)


def test_emission_cw_and_modulated():
    cw = (
        INIT
        + ok("di ext")
        + ok("la on")
        + ok("en 2")
        + ok("sta la", "ON")
        + ok("sta ch 2", "ON")
        + ok("di 0")
        + ok("la off")
        + ok("sta la", "OFF")
    )
    with expected_protocol(IBeamSmart, cw) as inst:
        laser = IBeamSmartLaser(inst, 1e-3)
        laser.enable()
        assert laser.emission_on is True
        laser.disable()
        assert laser.emission_on is False
    pulsed = INIT + ok("ch 1 pow 0.000000 mic") + ok("la on") + ok("en 2") + ok("en ext")
    with expected_protocol(IBeamSmart, pulsed) as inst:
        IBeamSmartLaser(inst, 1e-3, ext_trigger_Hz=1e6, ext_pulse_width_s=5e-9).enable()


def test_safe_state_switches_off_then_zeroes_and_snapshot_reads_back():
    comm = (
        INIT
        + ok("di 0")
        + ok("la off")
        + ok("ch 2 pow 0.000000 mic")
        + level(0.0)
        + ok("sta la", "OFF")  # emission off: channel 2 need not be asked
    )
    with expected_protocol(IBeamSmart, comm) as inst:
        laser = IBeamSmartLaser(inst, 1e-3)
        laser.safe_state()
        assert laser.snapshot() == {
            "power_W": 0.0,
            "rep_rate_Hz": 0.0,
            "emission_on": False,
            "max_power_W": 1e-3,
            "mode": "cw",
            "duty": 1.0,
            "transmission": 1.0,
        }


def test_an_error_reply_is_raised():
    comm = INIT + ok("ch 2 pow 1000.000000 mic", "%SYS-W-018: power out of range")
    with expected_protocol(IBeamSmart, comm) as inst:
        laser = IBeamSmartLaser(inst, 1e-2)
        with pytest.raises(ValueError, match="SYS-W-018"):
            laser.power_W = 1e-3


def test_unparsable_level_reply_is_an_error():
    with expected_protocol(IBeamSmart, INIT + ok("sh level pow", "garbage")) as inst:
        with pytest.raises(ValueError, match="no level of channel 2"):
            _ = IBeamSmartLaser(inst, 1e-3).power_W


# ------------------------------------------------------------------ the wire-level twin
class _World:
    def __init__(self):
        self.calls = []
        self.faults = None
        self.clock = VirtualClock("fast")

    def set_laser(self, **kwargs):
        self.calls.append(kwargs)


def _on_twin(**kwargs):
    twin = IBeamSmartTwin(_World(), **kwargs)
    received = []
    handle = twin.handle

    def recording(command):
        received.append(command)
        return handle(command)

    twin.handle = recording
    inst = IBeamSmart(SimAdapter(twin, write_termination="\r\n", read_termination="\r\n"))
    return twin, inst, received


def test_the_twin_gets_exactly_the_commands_of_the_protocol_test():
    twin, inst, received = _on_twin(ext_trigger_Hz=5e6, ext_pulse_width_s=2e-9)
    laser = IBeamSmartLaser(inst, 2e-6, ext_trigger_Hz=5e6, ext_pulse_width_s=2e-9)
    laser.power_W = 1e-6
    assert laser.power_W == pytest.approx(1e-6)
    expected = INIT + ok("ch 1 pow 0.000000 mic") + ok("ch 2 pow 100.000000 mic") + level(0.1)
    assert received == [c for c, _ in expected if c is not None]
    laser.enable()
    assert laser.emission_on
    assert twin.world.calls[-1] == {
        "on": True,
        "power_W": pytest.approx(1e-6),
        "cw": False,
        "rep_rate_Hz": 5e6,
    }
    laser.safe_state()
    assert twin.world.calls[-1]["on"] is False


def test_the_twin_answers_errors_like_the_laser():
    twin, inst, _ = _on_twin(rated_power_W=0.01)
    with pytest.raises(ValueError, match="out of range"):
        inst.ch_2.power = 20_000  # 20 mW on a 10 mW laser: the laser refuses
    assert inst.ask("sh pow") == "000000"
    assert inst.version.startswith("iBEAM")


def _setup_file(tmp_path, settings):
    text = default_setup_path().read_text()
    block = (
        "  laser:\n    driver: TopticaIBeamSmart\n    backend: sim\n    address: ASRL3::INSTR\n"
        "    limits:\n      max_power_W: 2.0e-6\n    settings:\n"
        + "".join(f"      {k}: {v}\n" for k, v in settings.items())
    )
    text = re.sub(r"  laser:\n(    .*\n)+", block, text, count=1)
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return path


def test_the_driver_on_the_twin_drives_the_world_laser_cw(tmp_path):
    path = _setup_file(tmp_path, {"transmission": 1.0e-3, "rated_power_W": 0.05})
    with hbtscope.open_setup(path, data_dir=tmp_path) as setup:
        laser, world = setup.laser, setup.world
        assert isinstance(laser, IBeamSmartLaser)
        laser.power_W = 1e-6
        laser.enable()
        assert world.laser.on and world.laser.cw
        assert world.laser.power_W == pytest.approx(1e-6)
        with pytest.raises(LimitError):
            setup.laser.power_W = 5e-6
        assert world.laser.power_W == pytest.approx(1e-6)
        snap = setup.snapshot()["laser"]
        assert snap["mode"] == "cw" and snap["emission_on"] is True
    assert not world.laser.on


def test_the_driver_on_the_twin_modulated_at_the_generator_rate(tmp_path):
    path = _setup_file(tmp_path, {"ext_trigger_Hz": 5.0e6, "ext_pulse_width_s": 2.0e-9})
    with hbtscope.open_setup(path, data_dir=tmp_path) as setup:
        setup.laser.power_W = 1e-6
        setup.laser.enable()
        world = setup.world
        assert world.laser.on and not world.laser.cw
        assert world.laser.rep_rate_Hz == 5e6
        assert world.laser.power_W == pytest.approx(1e-6)
