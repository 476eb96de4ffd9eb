"""Thorlabs MDT693B/MDT694B driver at the wire: pymeasure's ``expected_protocol``.

Messages are what VISA delivers with ``read_termination=">"``: the echo and CR (echo on), the
data lines with CR, without the prompt.
"""

from __future__ import annotations

import math

import pytest
from pymeasure.adapters.protocol import ProtocolAdapter
from pymeasure.test import expected_protocol
from pyvisa import constants
from pyvisa.errors import VisaIOError

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.thorlabs_mdt69x import (
    MDT69xStage,
    MDTCommandError,
    ThorlabsMDT693B,
    ThorlabsMDT694B,
)

TRAVEL = {"x": (0.0, 80.0), "y": (0.0, 80.0), "z": (-10.0, 10.0)}
CAL = {"um_per_V": dict.fromkeys("xyz", 1.2), "offset_um": {"x": 0.0, "y": 0.0, "z": -10.0}}
OPEN = [
    ("vlimit?", "vlimit?\r[ 150]\r"),
    ("xvoltage?", "xvoltage?\r[   0.0]\r"),
    ("yvoltage?", "yvoltage?\r[   0.0]\r"),
    ("zvoltage?", "zvoltage?\r[   8.3]\r"),
]


def _stage(inst, **kw):
    return MDT69xStage(inst, TRAVEL, max_voltage_V=75.0, **CAL, **kw)


# ----------------------------------------------------------------------------- instrument
@pytest.mark.parametrize(
    ("reply", "value"),
    [("xvoltage?\r[  24.8]\r", 24.8), ("[  24.8]\r", 24.8), ("[   0.0]", 0.0)],
    ids=["echo on", "echo off", "no CR"],
)
def test_x_voltage_reads_with_or_without_echo(reply, value):
    with expected_protocol(ThorlabsMDT693B, [("xvoltage?", reply)]) as inst:
        assert inst.x_voltage == value


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_set_voltage_reads_the_prompt(axis):
    with expected_protocol(
        ThorlabsMDT693B, [(f"{axis}voltage=24.680", f"{axis}voltage=24.680\r")]
    ) as inst:
        setattr(inst, f"{axis}_voltage", 24.68)


def test_set_voltage_with_echo_off():
    with expected_protocol(ThorlabsMDT693B, [("xvoltage=1.235", "")]) as inst:
        inst.x_voltage = 1.23456789


def test_argument_error_reply_raises():
    with expected_protocol(
        ThorlabsMDT693B, [("xvoltage=24.680", "xvoltage=24.680\rCMD_ARG_INVALID\r")]
    ) as inst:
        with pytest.raises(MDTCommandError, match="rejected 'xvoltage=24.680': CMD_ARG_INVALID"):
            inst.x_voltage = 24.68


def test_unknown_command_reply_raises():
    with expected_protocol(
        ThorlabsMDT694B, [("yvoltage?", "yvoltage?\rCMD_NOT_DEFINED\r")]
    ) as inst:
        with pytest.raises(MDTCommandError, match="CMD_NOT_DEFINED"):
            inst.ask("yvoltage?")


@pytest.mark.parametrize("bad", [-0.1, 150.01, math.nan, math.inf])
def test_validator_refuses_out_of_range_and_sends_nothing(bad):
    with expected_protocol(ThorlabsMDT693B, []) as inst:
        with pytest.raises(ValueError):
            inst.x_voltage = bad
        inst.z_voltage_values = (0.0, 75.0)  # what the stage sets from the setup file
        with pytest.raises(ValueError):
            inst.z_voltage = 75.5
        with pytest.raises(ValueError):
            inst.xyz_voltage = (1.0, 2.0, bad)


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_axis_limits(axis):
    with expected_protocol(
        ThorlabsMDT693B,
        [
            (f"{axis}min?", f"{axis}min?\r0\r"),
            (f"{axis}max?", f"{axis}max?\r100.5\r"),
            (f"{axis}max=75.0", f"{axis}max=75.0\r"),
            (f"{axis}min=5.0", f"{axis}min=5.0\r"),
        ],
    ) as inst:
        assert getattr(inst, f"{axis}_min") == 0.0
        assert getattr(inst, f"{axis}_max") == 100.5
        setattr(inst, f"{axis}_max", 75)
        setattr(inst, f"{axis}_min", 5)


def test_xyz_and_all_voltage():
    with expected_protocol(
        ThorlabsMDT693B,
        [
            ("xyzvoltage?", "xyzvoltage?\r[  10.0,  20.0,  30.0]\r"),
            ("xyzvoltage=10.000,20.500,30.250", "xyzvoltage=10.000,20.500,30.250\r"),
            ("allvoltage=5.000", "allvoltage=5.000\r"),
        ],
    ) as inst:
        assert inst.xyz_voltage == [10.0, 20.0, 30.0]
        inst.xyz_voltage = (10, 20.5, 30.25)
        inst.all_voltage = 5
        with pytest.raises(ValueError, match="three voltages"):
            inst.xyz_voltage = (1.0, 2.0)


def test_identification_limit_echo_serial_restore():
    ident = (
        "id?\rModel MDT693B Piezo Control Module\rFirmware Version: 1.09\r"
        "Voltage Range: 150V\rSerial#: 140421-07\rName: MDT693B\r"
    )
    with expected_protocol(
        ThorlabsMDT693B,
        [
            ("id?", ident),
            ("serial?", "serial?\r140421-07\r"),
            ("vlimit?", "vlimit?\r[ 100]\r"),
            ("echo?", "echo?\r[Echo On]\r"),
            ("echo=0", "echo=0\r"),
            ("echo?", "[Echo Off]\r"),
            ("restore", "restore\r"),
        ],
    ) as inst:
        assert inst.id.splitlines()[0] == "Model MDT693B Piezo Control Module"
        assert inst.serial_number == "140421-07"
        assert inst.voltage_limit == 100
        assert inst.echo is True
        inst.echo = False
        assert inst.echo is False
        inst.restore()


# ----------------------------------------------------------------------------- stage
def test_stage_opens_reads_limit_and_setpoints():
    with expected_protocol(ThorlabsMDT693B, OPEN) as inst:
        stage = _stage(inst)
        assert stage.controller_limit_V == 150
        assert stage.max_voltage_V == 75.0  # the setup file is stricter than the switch
        assert stage.position_um == pytest.approx((0.0, 0.0, -10.0 + 8.3 * 1.2))


def test_stage_narrows_the_instrument_validators_to_its_limit():
    """A procedure reaching past the stage to the pymeasure instrument meets the same limit."""
    with expected_protocol(ThorlabsMDT693B, OPEN) as inst:
        _stage(inst)
        for name, value in [
            ("x_voltage", 66.667),  # 80.0004 µm: past the x travel
            ("z_voltage", 16.667),  # 10.0004 µm
            ("all_voltage", 16.667),
            ("xyz_voltage", (1, 1, 17)),
        ]:
            with pytest.raises(ValueError):
                setattr(inst, name, value)


def test_stage_moves_three_axes_in_one_command_and_one_axis_alone():
    with expected_protocol(
        ThorlabsMDT693B,
        [
            *OPEN,
            ("xyzvoltage=8.333,16.667,8.333", "xyzvoltage=8.333,16.667,8.333\r"),
            ("zvoltage=10.000", "zvoltage=10.000\r"),
        ],
    ) as inst:
        stage = _stage(inst)
        stage.move_to(10.0, 20.0, 0.0)
        assert stage.position_um == pytest.approx((10.0, 20.0, 0.0), abs=1e-3)
        stage.move_to(z_um=2.0)
        stage.move_to(10.0, 20.0, 2.0)  # no change: nothing sent
        assert stage.snapshot()["voltages_V"] == {"x": 8.333, "y": 16.667, "z": 10.0}


def test_stage_travel_ends_round_inwards_onto_the_millivolt_grid():
    with expected_protocol(ThorlabsMDT693B, [*OPEN, ("xyzvoltage=66.666,0.000,0.000", "")]) as inst:
        stage = MDT69xStage(
            inst,
            TRAVEL,
            um_per_V=dict.fromkeys("xyz", 1.2),
            offset_um={"x": 0.0, "y": 0.0, "z": -10.0},
            max_voltage_V=75.0,
        )
        stage.move_to(80.0, 0.0, -10.0)


@pytest.mark.parametrize(
    "move",
    [
        {"x_um": 80.5},
        {"y_um": -0.01},
        {"z_um": 10.5},
        {"x_um": math.nan},
        {"z_um": math.inf},
    ],
)
def test_stage_out_of_travel_raises_and_sends_nothing(move):
    with expected_protocol(ThorlabsMDT693B, OPEN) as inst:
        stage = _stage(inst)
        with pytest.raises(LimitError, match="outside the travel"):
            stage.move_to(**move)


def test_stage_refuses_a_travel_that_needs_more_volts_than_allowed():
    with expected_protocol(ThorlabsMDT693B, [("vlimit?", "[  75]\r")]) as inst:
        with pytest.raises(ValueError, match=r"x_um travel \[0, 80\] µm needs 0.000 to 100.000 V"):
            MDT69xStage(
                inst,
                TRAVEL,
                um_per_V=dict.fromkeys("xyz", 0.8),
                offset_um=CAL["offset_um"],
                max_voltage_V=150.0,
            )


def test_stage_checks_the_limit_switch_against_the_setup():
    with expected_protocol(ThorlabsMDT693B, [("vlimit?", "[ 150]\r")]) as inst:
        with pytest.raises(ValueError, match="switch is at 150 V.*says voltage_limit_switch_V: 75"):
            _stage(inst, voltage_limit_switch_V=75.0)


def test_stage_device_refusal_keeps_the_setpoint():
    with expected_protocol(
        ThorlabsMDT693B, [*OPEN, ("xvoltage=8.333", "xvoltage=8.333\rCMD_ARG_INVALID\r")]
    ) as inst:
        stage = _stage(inst)
        with pytest.raises(MDTCommandError):
            stage.move_to(x_um=10.0)
        assert stage.position_um[0] == 0.0


def test_mdt694b_drives_the_focus_only():
    with expected_protocol(
        ThorlabsMDT694B,
        [
            ("vlimit?", "[ 100]\r"),
            ("xvoltage?", "[  10.0]\r"),
            ("xvoltage=12.500", ""),
        ],
    ) as inst:
        stage = MDT69xStage(
            inst,
            {"z": (-10.0, 10.0)},
            um_per_V={"z": 0.8},
            offset_um={"x": 5.0, "y": 6.0, "z": -10.0},
            max_voltage_V=75.0,
            channel_of={"z": "x"},
        )
        assert stage.position_um == pytest.approx((5.0, 6.0, -2.0))
        stage.move_to(z_um=0.0)
        with pytest.raises(LimitError, match="x is not driven by the MDT694B"):
            stage.move_to(x_um=7.0)


# ----------------------------------------------------------------------------- timeouts
def _tmo():
    return VisaIOError(constants.StatusCode.error_timeout)


def _lost():
    return VisaIOError(constants.StatusCode.error_connection_lost)


def _fail_next(adapter, method: str, errors: list):
    """Make the adapter's next ``method`` calls raise ``errors`` (a VISA fault on the wire)."""
    real = getattr(adapter, method)

    def faulty(*args, **kwargs):
        if errors:
            raise errors.pop(0)
        return real(*args, **kwargs)

    setattr(adapter, method, faulty)


def test_timeout_flushes_and_repeats_once():
    with expected_protocol(
        ThorlabsMDT693B,
        [
            *OPEN,
            ("xvoltage?", None),
            ("xvoltage?", "[  24.8]\r"),
            ("yvoltage?", "[   0.0]\r"),
            ("zvoltage?", "[   0.0]\r"),
        ],
    ) as inst:
        stage = _stage(inst)
        _fail_next(inst.adapter, "_read", [_tmo()])
        assert stage.measured_voltages_V() == {"x": 24.8, "y": 0.0, "z": 0.0}
        assert stage.recoveries == ["timeout"]
        inst.adapter.connection.flush.assert_called_once()


def test_second_timeout_is_raised():
    with expected_protocol(
        ThorlabsMDT693B, [*OPEN, ("xvoltage=8.333", None), ("xvoltage=8.333", None)]
    ) as inst:
        stage = _stage(inst)
        _fail_next(inst.adapter, "_read", [_tmo(), _tmo()])
        with pytest.raises(VisaIOError) as info:
            stage.move_to(x_um=10.0)
        assert info.value.error_code == constants.StatusCode.error_timeout
        assert stage.position_um[0] == 0.0  # not confirmed: the set point is unchanged


def test_lost_connection_reopens_and_repeats_once():
    fresh = ProtocolAdapter([("xvoltage=8.333", "xvoltage=8.333\r")])
    with expected_protocol(ThorlabsMDT693B, OPEN) as inst:
        first = inst.adapter
        stage = _stage(inst, reopen=lambda: fresh)
        _fail_next(first, "_write", [_lost()])
        stage.move_to(x_um=10.0)
        assert inst.adapter is fresh and fresh._index == 1
        assert stage.recoveries == ["reconnect"]
        assert stage.position_um[0] == pytest.approx(10.0, abs=1e-3)


def test_device_still_gone_after_reconnect_raises():
    fresh = ProtocolAdapter([])
    _fail_next(fresh, "_write", [_lost()])
    with expected_protocol(ThorlabsMDT693B, OPEN) as inst:
        stage = _stage(inst, reopen=lambda: fresh)
        _fail_next(inst.adapter, "_write", [_lost()])
        with pytest.raises(VisaIOError) as info:
            stage.move_to(x_um=10.0)
        assert info.value.error_code == constants.StatusCode.error_connection_lost
