"""The MDT693B/MDT694B driver, unchanged, on its wire-level twin in the simulated microscope."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyvisa import constants
from pyvisa.errors import VisaIOError

import hbtscope
from hbtscope.config_schema import SetupFileError
from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.thorlabs_mdt69x import MDTCommandError
from hbtscope.setup import default_setup_path

MDT693B = """  stage:
    driver: ThorlabsMDT693B
    backend: sim
    address: ASRL3::INSTR
    limits:
      x_um: {min: 0.0, max: 80.0}
      y_um: {min: 0.0, max: 80.0}
      z_um: {min: -10.0, max: 10.0}
      max_voltage_V: 75
    settings:
      um_per_V: 1.2
      z_offset_um: -10.0
      voltage_limit_switch_V: 150
"""
MDT694B = """  stage:
    driver: ThorlabsMDT694B
    backend: sim
    address: ASRL3::INSTR
    limits:
      x_um: {min: 0.0, max: 80.0}     # not driven: for the scan clock of sim.yaml
      y_um: {min: 0.0, max: 80.0}
      z_um: {min: -5.0, max: 5.0}
      max_voltage_V: 75
    settings:
      um_per_V: 0.2667
      z_offset_um: -5.0
      x_offset_um: 10.0
      y_offset_um: 10.0
"""


def _with_role(text: str, role: str, block: str) -> str:
    """sim.yaml's text with the block of ``role`` (its line and the lines indented below it)
    replaced by ``block``."""
    pattern = re.compile(rf"^  {role}:[^\n]*\n(?:(?:    [^\n]*)?\n)*", re.M)
    assert pattern.search(text), f"no '{role}:' block in sim.yaml"
    return pattern.sub(lambda m: block, text, count=1)


def _setup(tmp_path, block=MDT693B, faults=""):
    text = default_setup_path().read_text()
    # the subject is not the stage: an ideal one puts the focus exactly on the emitter
    text = text.replace("hysteresis_um: 0.15", "hysteresis_um: 0.0").replace(
        "creep_per_decade: 0.01", "creep_per_decade: 0.0"
    )
    text = _with_role(text, "stage", block)
    if faults:
        sync = "  sync: {tagger_channel: 1, delay_ps: 0}\n"
        text = text.replace(sync, sync + "  faults:\n" + faults)
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return hbtscope.open_setup(path, data_dir=tmp_path)


def _spad_rate(setup, seconds=1.0):
    tt = setup.tagger
    cr = tt.api.Countrate(tt.device, list(tt.spad_channels))
    cr.startFor(int(seconds * 1e12))
    cr.waitUntilFinished()
    return float(cr.getData().sum())


def test_stage_moves_the_focus_and_the_count_rate_follows(tmp_path):
    with _setup(tmp_path) as s:
        twin = s.stage.inst.adapter.twin
        s.laser.power_W = 24e-9
        s.laser.enable()
        s.stage.move_to(10.0, 10.0, 0.0)  # on emitter 0
        assert s.world.focus_um == pytest.approx([10.0, 10.0, 0.0], abs=1e-3)
        assert twin.received[-1] == "xyzvoltage=8.333,8.333,8.333"
        on_emitter = _spad_rate(s)
        s.stage.move_to(z_um=3.0)  # 3.75 axial PSF radii out of focus
        defocused = _spad_rate(s)
        s.stage.move_to(15.0, 15.0, 0.0)  # between emitters: substrate and dark counts
        off_emitter = _spad_rate(s)
        assert on_emitter > 50_000
        assert defocused < 0.05 * on_emitter
        assert off_emitter < 2_000
        snap = s.snapshot()["stage"]
        assert snap["controller"] == "MDT693B"
        assert snap["x_um"] == pytest.approx(15.0, abs=1e-3)


def test_readback_and_error_replies_end_to_end(tmp_path):
    with _setup(tmp_path) as s:
        stage, twin = s.stage, s.stage.inst.adapter.twin
        stage.move_to(10.0, 20.0, 0.0)
        assert stage.measured_voltages_V() == {"x": 8.3, "y": 16.7, "z": 8.3}
        with pytest.raises(MDTCommandError, match="CMD_NOT_DEFINED"):
            stage.inst.ask("wobble?")
        stage.inst.x_max = 60  # the controller's own per-axis limit
        with pytest.raises(MDTCommandError, match="CMD_ARG_INVALID"):
            stage.inst.write("xvoltage=65")  # raw text past every driver check
            stage.inst.check_set_errors()
        assert twin.voltage["x"] == pytest.approx(8.333)  # refused: unchanged
        with pytest.raises(MDTCommandError, match="CMD_ARG_INVALID"):
            stage.inst.write("xvoltage=lots")
            stage.inst.check_set_errors()
        stage.inst.echo = False
        assert stage.inst.echo is False and not twin.echo
        assert stage.inst.voltage_limit == 150


def test_idn_of_the_twin(tmp_path):
    with _setup(tmp_path) as s:
        ident = s.stage.inst.id
        assert ident.splitlines()[0] == "Model MDT693B Piezo Control Module"


def test_mdt694b_moves_the_focus_only(tmp_path):
    with _setup(tmp_path, MDT694B) as s:
        s.stage.move_to(z_um=1.0)
        assert s.world.focus_um[2] == pytest.approx(1.0, abs=1e-3)
        assert s.stage.position_um == pytest.approx((10.0, 10.0, 1.0), abs=1e-3)
        with pytest.raises(LimitError, match="not driven"):
            s.stage.move_to(x_um=20.0)
        assert s.stage.inst.adapter.twin.received[-1] == "xvoltage=22.497"


def test_travel_that_needs_too_many_volts_is_a_setup_error(tmp_path):
    block = MDT693B.replace("um_per_V: 1.2", "um_per_V: 0.5")
    with pytest.raises(SetupFileError, match=r"line \d+.*x_um travel \[0, 80\] µm needs"):
        _setup(tmp_path, block)


def test_unknown_setting_is_a_setup_error(tmp_path):
    block = MDT693B.replace("um_per_V: 1.2", "um_per_V: 1.2\n      colour: red")
    with pytest.raises(SetupFileError, match="unknown setting"):
        _setup(tmp_path, block)


def test_a_timeout_on_the_wire_is_survived(tmp_path):
    faults = "    - {kind: timeout, role: stage, at_s: 5}\n"
    with _setup(tmp_path, faults=faults) as s:
        s.clock.sleep(5.0)
        t0 = s.clock.now()
        s.stage.move_to(20.0, 10.0, 0.0)
        assert s.clock.now() - t0 >= 2.0  # the lost reply cost one VISA timeout
        assert s.stage.recoveries == ["timeout"]
        assert s.world.faults.log[0][1:] == ("stage", "timeout")
        assert s.world.focus_um == pytest.approx([20.0, 10.0, 0.0], abs=1e-3)


def test_a_disconnected_controller_raises_after_one_reconnect(tmp_path):
    faults = "    - {kind: disconnect, role: stage, at_s: 5}\n"
    with _setup(tmp_path, faults=faults) as s:
        twin = s.stage.inst.adapter.twin
        s.clock.sleep(5.0)
        n = len(twin.received)
        with pytest.raises(VisaIOError) as info:
            s.stage.move_to(20.0, 10.0, 0.0)
        assert info.value.error_code == constants.StatusCode.error_connection_lost
        assert s.stage.recoveries == ["reconnect"]
        assert len(twin.received) == n  # nothing reached the controller


positions = st.one_of(
    st.floats(min_value=-200, max_value=200),
    st.sampled_from([math.nan, math.inf, -math.inf, 80.0, 80.0000001, -1e-9, 10.0, -10.0]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=st.lists(st.tuples(positions, positions, positions), min_size=1, max_size=12))
def test_no_sequence_of_requests_gets_a_voltage_past_the_limits(tmp_path_factory, moves):
    tmp = tmp_path_factory.mktemp("mdt")
    with _setup(tmp) as s:
        twin = s.stage.inst.adapter.twin
        for x, y, z in moves:
            try:
                s.stage.move_to(x, y, z)
            except LimitError:
                pass
            for name, value in (("x_voltage", x), ("xyz_voltage", (x, y, z))):
                try:  # a procedure reaching past the stage to the instrument
                    setattr(s.stage.inst, name, value)
                except (ValueError, TypeError):
                    pass
        limit = {"x": 80.0 / 1.2, "y": 80.0 / 1.2, "z": 20.0 / 1.2}  # travel in volts
        for cmd in twin.received:
            if cmd.startswith(("xvoltage=", "yvoltage=", "zvoltage=")):
                assert 0.0 <= float(cmd[len("xvoltage=") :]) <= limit[cmd[0]], cmd
            elif cmd.startswith("xyzvoltage="):
                volts = [float(v) for v in cmd[len("xyzvoltage=") :].split(",")]
                assert all(0.0 <= v <= limit[a] for a, v in zip("xyz", volts, strict=True)), cmd
            else:
                assert "=" not in cmd, cmd
        x, y, z = s.world.focus_um
        assert 0.0 <= x <= 80.0 and 0.0 <= y <= 80.0 and -10.0 <= z <= 10.0
