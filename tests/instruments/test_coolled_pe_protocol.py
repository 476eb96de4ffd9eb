"""CoolLED pE driver at the wire: pymeasure's ``expected_protocol``.

Messages are the reply lines as VISA delivers them with ``read_termination="\\n"`` (the CR of
the CR LF still on them).
"""

from __future__ import annotations

import pytest
from pymeasure.adapters.protocol import ProtocolAdapter
from pymeasure.test import expected_protocol
from pyvisa import constants
from pyvisa.errors import VisaIOError

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.coolled_pe import (
    ChannelState,
    CoolLEDError,
    CoolLEDpE,
    CoolLEDpESeries,
    parse_css,
)

OPEN = [("CSS?", "CSSASF000\r"), ("XMODEL", "XMODEL pE-100\r")]


def test_parse_css():
    assert parse_css("CSSASN050BXF000CSF100") == {
        "A": ChannelState(True, True, 50),
        "B": ChannelState(False, False, 0),
        "C": ChannelState(True, False, 100),
    }
    for bad in ("CSS", "CSSASN05", "CSSAQN050", "CSSASN150", "Unrecognised command: X"):
        with pytest.raises(CoolLEDError):
            parse_css(bad)


def test_status_skips_the_connection_greeting():
    with expected_protocol(
        CoolLEDpESeries,
        [
            ("CSS?", "CoolLED precisExcite, Hello, pleased to meet you\r"),
            (None, "\r"),
            (None, "CSSASN050\r"),
        ],
    ) as inst:
        assert inst.status == {"A": ChannelState(True, True, 50)}


def test_model_wavelengths_versions():
    with expected_protocol(
        CoolLEDpESeries,
        [
            ("XMODEL", "XMODEL pE-4000\r"),
            ("LAMS", "LAM:A:405\r"),
            (None, "LAM:B:470\r"),
            ("XVER", None),
            ("CSS?", None),
            (None, "XVER MB=1.4.2\r"),
            (None, "XVER PD=1.1.0\r"),
            (None, "CSSASF000BSF000\r"),
        ],
    ) as inst:
        assert inst.model == "pE-4000"
        assert inst.wavelengths_nm(2) == {"A": 405, "B": 470}
        assert inst.versions() == {"MB": "1.4.2", "PD": "1.1.0"}


def test_set_channels_and_global_switches():
    with expected_protocol(
        CoolLEDpESeries,
        [
            ("CSSASN050BXF010", "CSSASN050BXF010\r"),
            ("CSN", "CSSASN050BXF010\r"),
            ("CSF", "CSSASF050BXF010\r"),
        ],
    ) as inst:
        got = inst.set_channels(
            {"A": ChannelState(True, True, 50), "B": ChannelState(False, False, 10)}
        )
        assert got["A"] == ChannelState(True, True, 50)
        assert inst.all_on()["A"].on
        assert not inst.all_off()["A"].on


def test_error_reply_raises():
    with expected_protocol(
        CoolLEDpESeries, [("CSSESN010", "Unrecognised command: CSSESN010\r")]
    ) as inst:
        with pytest.raises(CoolLEDError, match="expected a CSS channel status"):
            inst.set_channels({"E": ChannelState(True, True, 10)})


@pytest.mark.parametrize(
    "bad", [{"A": ChannelState(True, True, 101)}, {"Z": ChannelState(True, True, 1)}]
)
def test_instrument_refuses_impossible_settings_and_sends_nothing(bad):
    with expected_protocol(CoolLEDpESeries, []) as inst:
        with pytest.raises(ValueError, match="need A-H, 0-100"):
            inst.set_channels(bad)


def test_unexpected_reply_to_lams_and_xver():
    with expected_protocol(
        CoolLEDpESeries,
        [("LAMS", "CSSASF000\r"), ("XVER", None), ("CSS?", None), (None, "garbage\r")],
    ) as inst:
        with pytest.raises(CoolLEDError, match="LAMS"):
            inst.wavelengths_nm(1)
        with pytest.raises(CoolLEDError, match="XVER"):
            inst.versions()


# ----------------------------------------------------------------------------- LED role
def test_led_opens_power_and_switch():
    with expected_protocol(
        CoolLEDpESeries,
        [
            *OPEN,
            ("CSS?", "CSSASF000\r"),
            ("CSSASF050", "CSSASF050\r"),
            ("CSS?", "CSSASF050\r"),
            ("CSSASN050", "CSSASN050\r"),
            ("CSS?", "CSSASN050\r"),
            ("CSS?", "CSSASN050\r"),
            ("CSS?", "CSSASN050\r"),
            ("CSSASF050", "CSSASF050\r"),
        ],
    ) as inst:
        led = CoolLEDpE(inst, max_fraction=1.0)
        assert led.model == "pE-100"
        led.power_fraction = 0.5
        led.enable()
        assert led.on and led.power_fraction == 0.5
        led.disable()


def test_led_above_max_fraction_raises_and_sends_nothing():
    with expected_protocol(CoolLEDpESeries, OPEN) as inst:
        led = CoolLEDpE(inst, max_fraction=0.3)
        for bad in (0.31, 1.0, -0.01, float("nan"), float("inf")):
            with pytest.raises(LimitError, match=r"outside \[0, 0.3\]"):
                led.power_fraction = bad


def test_led_rounds_down_to_the_limit():
    with expected_protocol(
        CoolLEDpESeries, [*OPEN, ("CSS?", "CSSASF000\r"), ("CSSASF055", "CSSASF055\r")]
    ) as inst:
        led = CoolLEDpE(inst, max_fraction=0.555)
        led.power_fraction = 0.555  # 55.5 % would round to 56 %: sent as 55 %
        assert led.max_percent == 55


def test_led_found_above_the_limit_is_switched_off_and_clamped():
    with expected_protocol(
        CoolLEDpESeries,
        [("CSS?", "CSSASN080\r"), ("XMODEL", "XMODEL pE-100\r"), ("CSSASF050", "CSSASF050\r")],
    ) as inst:
        CoolLEDpE(inst, max_fraction=0.5)


def test_led_refused_by_the_unit_raises():
    with expected_protocol(
        CoolLEDpESeries, [*OPEN, ("CSS?", "CSSASF020\r"), ("CSSASN020", "CSSAXF020\r")]
    ) as inst:
        led = CoolLEDpE(inst)
        with pytest.raises(CoolLEDError, match="asked ASN020, the unit reports AXF020"):
            led.enable()


def test_led_missing_channel_is_refused():
    with expected_protocol(CoolLEDpESeries, [("CSS?", "CSSASF000\r")]) as inst:
        with pytest.raises(ValueError, match="channel B is not on this unit"):
            CoolLEDpE(inst, channel="B")


def test_safe_state_switches_every_channel_off():
    with expected_protocol(
        CoolLEDpESeries,
        [
            ("CSS?", "CSSASN010BSN020\r"),
            ("XMODEL", "XMODEL pE-300\r"),
            ("CSF", "CSSASF010BSF020\r"),
            ("CSF", "CSSASF010BSN020\r"),
        ],
    ) as inst:
        led = CoolLEDpE(inst)
        led.safe_state()
        with pytest.raises(CoolLEDError, match="still on"):
            led.safe_state()


def test_snapshot():
    with expected_protocol(
        CoolLEDpESeries, [*OPEN, ("CSS?", "CSSASN020\r"), ("CSS?", "CSSASN020\r")]
    ) as inst:
        snap = CoolLEDpE(inst, max_fraction=0.5).snapshot()
        assert snap == {
            "power_fraction": 0.2,
            "on": True,
            "max_fraction": 0.5,
            "model": "pE-100",
            "channel": "A",
        }


# ----------------------------------------------------------------------------- recovery
def _fail_next(adapter, method, errors):
    real = getattr(adapter, method)

    def faulty(*args, **kwargs):
        if errors:
            raise errors.pop(0)
        return real(*args, **kwargs)

    setattr(adapter, method, faulty)


def test_timeout_flushes_and_repeats_once():
    with expected_protocol(
        CoolLEDpESeries, [*OPEN, ("CSS?", None), ("CSS?", "CSSASN020\r")]
    ) as inst:
        led = CoolLEDpE(inst)
        _fail_next(inst.adapter, "_read", [VisaIOError(constants.StatusCode.error_timeout)])
        assert led.power_fraction == 0.2
        assert led.recoveries == ["timeout"]
        inst.adapter.connection.flush.assert_called_once()


def test_reconnect_reads_past_the_new_greeting():
    fresh = ProtocolAdapter(
        [("CSF", "CoolLED precisExcite, Hello, pleased to meet you\r"), (None, "CSSASF000\r")]
    )
    with expected_protocol(CoolLEDpESeries, OPEN) as inst:
        led = CoolLEDpE(inst, reopen=lambda: fresh)
        _fail_next(
            inst.adapter, "_write", [VisaIOError(constants.StatusCode.error_connection_lost)]
        )
        led.safe_state()
        assert led.recoveries == ["reconnect"] and fresh._index == 2
