"""Thorlabs FW102C filter wheel driver at the wire (``expected_protocol``).

Messages are what VISA delivers with ``read_termination=">"``: the echo and CR, the value and
CR, without the prompt — and starting with the space that followed the previous prompt.
"""

from __future__ import annotations

import pytest
from pymeasure.adapters.protocol import ProtocolAdapter
from pymeasure.test import expected_protocol
from pyvisa import constants
from pyvisa.errors import VisaIOError

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.thorlabs_fw102c import (
    FilterWheelError,
    FW102CPolariser,
    ThorlabsFW102C,
    slot_angles,
)

ANGLES = slot_angles(6, 1, 0.0, 36.0)  # slot 1 empty; 0, 36, 72, 108, 144°
OPEN = [("pcount?", "pcount?\r6\r"), ("pos?", " pos?\r1\r")]


def test_slot_angles():
    assert ANGLES == {2: 0.0, 3: 36.0, 4: 72.0, 5: 108.0, 6: 144.0}
    assert slot_angles(12, 0, -15.0, 15.0)[1] == 165.0


@pytest.mark.parametrize("reply", ["pos?\r3\r", " pos?\r3\r", "3\r"])
def test_position_query_with_echo_and_leading_space(reply):
    with expected_protocol(ThorlabsFW102C, [("pos?", reply)]) as inst:
        assert inst.position == 3


def test_settings():
    with expected_protocol(
        ThorlabsFW102C,
        [
            ("*idn?", " *idn?\rTHORLABS FW102C/FW212C Filter Wheel version 1.07\r"),
            ("pos=4", " pos=4\r"),
            ("pcount?", " pcount?\r6\r"),
            ("pcount=12", " pcount=12\r"),
            ("speed?", " speed?\r1\r"),
            ("speed=0", " speed=0\r"),
            ("trig?", " trig?\r0\r"),
            ("trig=1", " trig=1\r"),
            ("sensors?", " sensors?\r0\r"),
            ("sensors=1", " sensors=1\r"),
            ("save", " save\r"),
        ],
    ) as inst:
        assert inst.id == "THORLABS FW102C/FW212C Filter Wheel version 1.07"
        inst.position = 4
        assert inst.position_count == 6
        inst.position_count = 12
        assert inst.speed_mode == "high"
        inst.speed_mode = "slow"
        assert inst.trigger_mode == "input"
        inst.trigger_mode = "output"
        assert inst.sensors_on is False
        inst.sensors_on = True
        inst.save()


@pytest.mark.parametrize("code", ["CMD_ARG_INVALID", "CMD_NOT_DEFINED"])
def test_error_replies_raise(code):
    with expected_protocol(ThorlabsFW102C, [("pos=6", f" pos=6\rCommand error {code}\r")]) as inst:
        with pytest.raises(FilterWheelError, match=f"rejected 'pos=6': {code}"):
            inst.position = 6


def test_validators_send_nothing():
    with expected_protocol(ThorlabsFW102C, []) as inst:
        inst.position_values = range(1, 7)
        for bad in (0, 7, 2.5):
            with pytest.raises(ValueError):
                inst.position = bad
        with pytest.raises(ValueError):
            inst.position_count = 8


# ----------------------------------------------------------------------------- polariser role
def _polariser(inst, **kw):
    return FW102CPolariser(inst, ANGLES, open_slot=1, tolerance_deg=1.0, **kw)


def test_angle_then_in_path_moves_to_the_slot():
    with expected_protocol(
        ThorlabsFW102C,
        [
            *OPEN,
            ("pos?", " pos?\r1\r"),  # out of the path: only remembered
            ("pos?", " pos?\r1\r"),
            ("pos=4", " pos=4\r"),
            ("pos?", " pos?\r4\r"),
            ("pos?", " pos?\r4\r"),
            ("pos=6", " pos=6\r"),  # 324° = 144° for a linear polariser
            ("pos?", " pos?\r6\r"),
            ("pos=1", " pos=1\r"),
        ],
    ) as inst:
        pol = _polariser(inst)
        pol.angle_deg = 72.4
        pol.in_path = True
        assert pol.angle_deg == 72.0
        pol.angle_deg = 324.0
        pol.in_path = False


def test_angle_not_in_the_wheel_raises_and_sends_nothing():
    with expected_protocol(ThorlabsFW102C, OPEN) as inst:
        pol = _polariser(inst)
        for bad in (50.0, 18.0, 180.0 + 37.5, float("nan")):
            with pytest.raises(LimitError):
                pol.angle_deg = bad


def test_no_empty_slot_keeps_the_analyser_in():
    angles = slot_angles(6, 0, 0.0, 30.0)
    with expected_protocol(ThorlabsFW102C, [*OPEN[:1], ("pos?", "pos?\r2\r")]) as inst:
        pol = FW102CPolariser(inst, angles, open_slot=0)
        with pytest.raises(LimitError, match="no empty slot"):
            pol.in_path = False


def test_slots_must_fit_the_wheel():
    with expected_protocol(ThorlabsFW102C, [("pcount?", "pcount?\r6\r")]) as inst:
        with pytest.raises(ValueError, match="do not fit the wheel's 6 positions"):
            FW102CPolariser(inst, slot_angles(12, 1, 0.0, 15.0), open_slot=1)


def test_snapshot():
    with expected_protocol(ThorlabsFW102C, [*OPEN, ("pos?", "pos?\r3\r")]) as inst:
        snap = _polariser(inst).snapshot()
        assert snap["angle_deg"] == 36.0 and snap["in_path"] and snap["slot"] == 3


def _fail_next(adapter, method, errors):
    real = getattr(adapter, method)

    def faulty(*args, **kwargs):
        error = errors.pop(0) if errors else None
        if error is not None:
            raise error
        return real(*args, **kwargs)

    setattr(adapter, method, faulty)


def test_timeout_on_a_move_repeats_it_once():
    with expected_protocol(
        ThorlabsFW102C,
        [
            *OPEN,
            ("pos?", "pos?\r1\r"),
            ("pos?", "pos?\r1\r"),
            ("pos=3", None),
            ("pos=3", " pos=3\r"),
        ],
    ) as inst:
        pol = _polariser(inst)
        pol.angle_deg = 36.0
        # the reply to pos? arrives, the one to pos=3 is lost
        _fail_next(inst.adapter, "_read", [None, VisaIOError(constants.StatusCode.error_timeout)])
        pol.in_path = True
        assert pol.recoveries == ["timeout"]


def test_lost_connection_reconnects_once():
    fresh = ProtocolAdapter([("pos?", " pos?\r5\r")])
    with expected_protocol(ThorlabsFW102C, OPEN) as inst:
        pol = _polariser(inst, reopen=lambda: fresh)
        _fail_next(
            inst.adapter, "_write", [VisaIOError(constants.StatusCode.error_connection_lost)]
        )
        assert pol.angle_deg == 108.0
        assert pol.recoveries == ["reconnect"]
