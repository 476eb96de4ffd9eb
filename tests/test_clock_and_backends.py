"""The clock procedures wait on, and the choice of time-tagger backend from the setup file."""

from __future__ import annotations

import sys
import types

import pytest

from hbtscope.clock import PS_PER_S, VirtualClock, WallClock
from hbtscope.instruments.swabian import MissingSDKError, load_swabian_api


def test_fast_virtual_clock_advances_exactly_by_sleeps():
    clock = VirtualClock("fast")
    assert clock.now_ps() == 0
    clock.sleep(1.5)
    clock.sleep(0.25e-6)
    assert clock.now_ps() == int(1.5 * PS_PER_S) + 250_000
    clock.advance_to_ps(10 * PS_PER_S)
    assert clock.now() == 10.0
    clock.advance_to_ps(5 * PS_PER_S)  # never goes back
    assert clock.now() == 10.0


@pytest.mark.parametrize(("mode", "speed"), [("warp", 1.0), ("scaled", 0.0), ("scaled", -2.0)])
def test_clock_rejects_bad_modes(mode, speed):
    with pytest.raises(ValueError):
        VirtualClock(mode, speed)


def test_scaled_clock_is_monotonic():
    clock = VirtualClock("scaled", speed=1000.0)
    readings = [clock.now_ps() for _ in range(1000)]
    assert readings == sorted(readings)
    wall = WallClock()
    assert wall.now() >= 0 and not wall.is_virtual


def test_sim_backend_is_the_simulated_module_plugged_in_by_the_twin_registry(tmp_path):
    """`backend: sim`: the Setup hands the driver the simulated API module with a tagger fed by
    this setup's world; closing the setup unplugs it."""
    import hbtscope
    import hbtscope.drivers_sim.timetagger as simtt

    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        assert setup.tagger.api is simtt
        serial = setup.tagger.device.getSerial()
        assert simtt._DEVICES[serial] is setup.world
    assert serial not in simtt._DEVICES


def test_real_backend_uses_the_vendor_sdk(monkeypatch):
    """`backend: real` imports `from Swabian import TimeTagger` (mocked at the import)."""
    fake_tt = types.ModuleType("Swabian.TimeTagger")
    swabian = types.ModuleType("Swabian")
    swabian.TimeTagger = fake_tt
    monkeypatch.setitem(sys.modules, "Swabian", swabian)
    monkeypatch.setitem(sys.modules, "Swabian.TimeTagger", fake_tt)
    assert load_swabian_api() is fake_tt


def test_real_backend_falls_back_to_old_module_name(monkeypatch):
    old = types.ModuleType("TimeTagger")
    monkeypatch.setitem(sys.modules, "Swabian", None)  # import fails
    monkeypatch.setitem(sys.modules, "TimeTagger", old)
    assert load_swabian_api() is old


def test_missing_sdk_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "Swabian", None)
    monkeypatch.setitem(sys.modules, "TimeTagger", None)
    with pytest.raises(MissingSDKError, match="pip install Swabian-TimeTagger"):
        load_swabian_api()


def test_real_tagger_backend_opens_the_vendor_sdk_by_serial(tmp_path, monkeypatch):
    """`backend: real`: the same driver gets no twin; it loads the vendor SDK (mocked at the
    import), opens the tagger by the setup file's serial, applies the channel settings to it
    and frees it when the setup closes; nothing is plugged into the simulated API."""
    from unittest.mock import MagicMock

    import hbtscope
    import hbtscope.drivers_sim.timetagger as simtt
    from hbtscope.setup import default_setup_path

    sdk = MagicMock(name="Swabian.TimeTagger")
    swabian = types.ModuleType("Swabian")
    swabian.TimeTagger = sdk
    monkeypatch.setitem(sys.modules, "Swabian", swabian)
    old = '    backend: sim\n    address: ""                   # serial number'
    text = default_setup_path().read_text()
    assert old in text
    path = tmp_path / "real_tagger.yaml"
    path.write_text(text.replace(old, '    backend: real\n    address: "1910000ABC"  # serial'))
    attached_before = dict(simtt._DEVICES)
    with hbtscope.open_setup(path, data_dir=tmp_path) as setup:
        assert setup.tagger.api is sdk
        sdk.createTimeTagger.assert_called_once_with("1910000ABC")
        device = sdk.createTimeTagger.return_value
        device.setDeadtime.assert_any_call(2, 6000)
        device.setTriggerLevel.assert_any_call(1, 0.5)
        assert simtt._DEVICES == attached_before
    sdk.freeTimeTagger.assert_called_once_with(device)
