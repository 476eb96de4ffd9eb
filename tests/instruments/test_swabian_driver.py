"""The Swabian driver makes exactly the SDK calls it should, and the simulated twin answers
them the way a real tagger does."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace
from unittest.mock import MagicMock, call

import pytest

from hbtscope.clock import VirtualClock
from hbtscope.drivers_sim import timetagger as simtt
from hbtscope.instruments.swabian import SettingsError, SwabianTimeTaggerDriver

SETTINGS = {
    "channels": {
        "2": {"trigger_level_V": 0.08, "input_delay_ps": 1200, "deadtime_ps": 22_000},
        1: {"trigger_level_V": 0.5, "event_divider": 5},
        3: {"deadtime_ps": 22_000.0, "input_delay_ps": -300},
    },
    "test_signal": {4: True},
}

EXPECTED_CALLS = [
    call.setTriggerLevel(1, 0.5),
    call.setEventDivider(1, 5),
    call.setTriggerLevel(2, 0.08),
    call.setInputDelay(2, 1200),
    call.setDeadtime(2, 22_000),
    call.setInputDelay(3, -300),
    call.setDeadtime(3, 22_000),
    call.setTestSignal(4, True),
]

EXPECTED_CHANNELS = {
    1: {"trigger_level_V": 0.5, "input_delay_ps": 0, "deadtime_ps": 6000, "event_divider": 5},
    2: {"trigger_level_V": 0.08, "input_delay_ps": 1200, "deadtime_ps": 22_000, "event_divider": 1},
    3: {"trigger_level_V": 0.5, "input_delay_ps": -300, "deadtime_ps": 22_000, "event_divider": 1},
}


def _mock_sdk():
    """``Swabian.TimeTagger`` at its function boundary, with a device that remembers settings
    and starts from the Time Tagger 20 defaults (0.5 V, 0 ps, 6 ns, divider 1)."""
    api = MagicMock(name="Swabian.TimeTagger")
    dev = api.createTimeTagger.return_value
    state = {
        "setTriggerLevel": dict.fromkeys(range(1, 9), 0.5),
        "setInputDelay": dict.fromkeys(range(1, 9), 0),
        "setDeadtime": dict.fromkeys(range(1, 9), 6000),
        "setEventDivider": dict.fromkeys(range(1, 9), 1),
    }

    def setter(name):
        def set_(ch, value):
            state[name][ch] = value
            return value if name == "setDeadtime" else None

        return set_

    def getter(name):
        return lambda ch: state[name][ch]

    for s, g in (
        ("setTriggerLevel", "getTriggerLevel"),
        ("setInputDelay", "getInputDelay"),
        ("setDeadtime", "getDeadtime"),
        ("setEventDivider", "getEventDivider"),
    ):
        getattr(dev, s).side_effect = setter(s)
        getattr(dev, g).side_effect = getter(s)
    dev.getSerial.return_value = "1910000ABC"
    dev.getModel.return_value = "Time Tagger 20"
    dev.getChannelList.return_value = [1, 2, 3, 4, 5, 6, 7, 8, -1, -2]
    return api, dev


class _World:
    clock = VirtualClock("fast")
    detectors = [SimpleNamespace(tagger_channel=c) for c in (2, 3)]
    sync_channel = 1

    def clicks_until(self, t):
        raise AssertionError("no measurement runs in these tests")

    def skip_until(self, t):
        return None

    def set_sync_enabled(self, enabled):
        return None


@pytest.fixture()
def sim_sdk():
    """The simulated module, with the tagger it creates wrapped to record the calls."""
    serial = simtt.attach_world(_World(), "SIM-DRIVER-TEST")
    made = []

    def create(s=""):
        real = simtt.createTimeTagger(s)
        spy = MagicMock(wraps=real)
        made.append(real)
        return spy

    api = SimpleNamespace(
        createTimeTagger=MagicMock(side_effect=create),
        freeTimeTagger=MagicMock(side_effect=lambda t: simtt.freeTimeTagger(t._mock_wraps)),
    )
    yield api, serial
    for t in made:
        simtt.freeTimeTagger(t)
    simtt.detach_world(serial)


def test_driver_makes_exactly_these_sdk_calls():
    api, dev = _mock_sdk()
    drv = SwabianTimeTaggerDriver(api, "1910000ABC")
    api.createTimeTagger.assert_called_once_with("1910000ABC")
    applied = drv.apply_settings(SETTINGS)
    assert dev.method_calls == EXPECTED_CALLS
    assert applied["channels"][2]["deadtime_ps"] == 22_000
    assert applied["test_signal"] == {4: True}
    dev.reset_mock()
    snap = drv.snapshot()
    assert snap == {
        "serial": "1910000ABC",
        "model": "Time Tagger 20",
        "channels": EXPECTED_CHANNELS,
    }
    getters = ["getTriggerLevel", "getInputDelay", "getDeadtime", "getEventDivider"]
    expected_reads = [call.getSerial(), call.getModel()] + [
        getattr(call, g)(ch) for ch in (1, 2, 3) for g in getters
    ]
    assert dev.method_calls == expected_reads
    drv.close()
    drv.close()  # idempotent
    api.freeTimeTagger.assert_called_once_with(dev)
    with pytest.raises(RuntimeError, match="closed"):
        drv.snapshot()


def test_snapshot_of_an_unconfigured_tagger_reads_the_rising_channels():
    api, dev = _mock_sdk()
    with SwabianTimeTaggerDriver(api) as drv:
        api.createTimeTagger.assert_called_once_with("")
        snap = drv.snapshot()
        assert sorted(snap["channels"]) == [1, 2, 3, 4, 5, 6, 7, 8]
    api.freeTimeTagger.assert_called_once_with(dev)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"channels": {2: {"trigger_level": 0.5}}}, "unknown settings"),
        ({"channels": {"two": {"deadtime_ps": 1}}}, "not a channel"),
        ({"channels": {0: {"deadtime_ps": 1}}}, "channel 0"),
        ({"channels": {2: {"input_delay_ps": 1.5}}}, "whole number"),
        ({"channels": {1: {"event_divider": 0}}}, "event_divider"),
        ({"channels": {2: {"trigger_level_V": "0.5"}}}, "number"),
        ({"channels": {2: {"trigger_level_V": True}}}, "number"),
        ({"test_signal": {4: "yes"}}, "true or false"),
        ({"trigger": 1}, "unknown settings"),
    ],
)
def test_invalid_settings_send_nothing(bad, match):
    api, dev = _mock_sdk()
    drv = SwabianTimeTaggerDriver(api)
    good_then_bad = {"channels": {1: {"trigger_level_V": 0.3}, **bad.get("channels", {})}}
    good_then_bad.update({k: v for k, v in bad.items() if k != "channels"})
    with pytest.raises(SettingsError, match=match):
        drv.apply_settings(good_then_bad)
    assert dev.method_calls == []


def test_the_simulated_twin_answers_the_same_calls_identically(sim_sdk):
    api, serial = sim_sdk
    drv = SwabianTimeTaggerDriver(api, serial)
    api.createTimeTagger.assert_called_once_with(serial)
    applied = drv.apply_settings(SETTINGS)
    dev = drv.tagger
    assert dev.method_calls == EXPECTED_CALLS

    mock_api, _ = _mock_sdk()
    mock_drv = SwabianTimeTaggerDriver(mock_api, "1910000ABC")
    assert mock_drv.apply_settings(SETTINGS) == applied
    snap, mock_snap = drv.snapshot(), mock_drv.snapshot()
    assert snap["channels"] == mock_snap["channels"] == EXPECTED_CHANNELS
    assert snap["serial"] == serial and "Time Tagger 20" in snap["model"]
    assert dev._mock_wraps.getTestSignal(4) is True
    drv.close()
    api.freeTimeTagger.assert_called_once_with(dev)
    assert serial not in simtt._OPEN


def test_dead_time_below_the_hardware_minimum_is_reported_as_set(sim_sdk):
    api, serial = sim_sdk
    drv = SwabianTimeTaggerDriver(api, serial)
    applied = drv.apply_settings({"channels": {2: {"deadtime_ps": 100}}})
    assert applied["channels"][2]["deadtime_ps"] == 2000  # what setDeadtime returned
    assert drv.snapshot()["channels"][2]["deadtime_ps"] == 2000
    drv.close()


def test_the_module_does_not_import_the_sdk():
    code = (
        "import sys\n"
        "import hbtscope.instruments.swabian\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('Swabian', 'TimeTagger')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
