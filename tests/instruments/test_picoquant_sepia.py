"""PicoQuant Sepia II driver: the exact Sepia2_Lib calls (DLL mocked at its C boundary), its
hard limits, its errors, and the same driver on the simulated Sepia2_Lib in the world."""

from __future__ import annotations

import ctypes
import re
import sys
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest

import hbtscope
from hbtscope.config_schema import SetupFileError
from hbtscope.drivers_sim.twins.sepia2_twin import SimSepia2DLL
from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers import picoquant_sepia as ps
from hbtscope.instruments.drivers.picoquant_sepia import (
    Sepia2Error,
    Sepia2Lib,
    SepiaPulsedLaser,
    load_sepia2_library,
)
from hbtscope.setup import default_setup_path

E_FULL = 1.0e-12  # J per pulse at full intensity
THRESHOLD = 200  # per mille


def _put(ptr, value):
    ptr._obj.value = value


def _put_str(buf, text):
    buf.value = text.encode()


class FakeSepia:
    """Sepia2_Lib as hardware answers it: a Sepia II (serial 1012681) on USB index 1 with an
    SCM 828 in slot 100, an SLM 828 in slot 200 (+ its head) and the backplane."""

    MAP = [(100, 1, 0), (200, 1, 0), (200, 0, 0), (0, 1, 1)]
    TYPES = {100: 0x40, 200: 0x70}

    def __init__(self, index=1):
        self.index = index
        self.freq = 4
        self.intensity = 0
        self.soft = 1
        self.hard = 0
        self.fail: dict[str, int] = {}

    def _rc(self, name):
        return self.fail.get(name, 0)

    def SEPIA2_LIB_DecodeError(self, code, buf):  # noqa: N802
        _put_str(buf, {-9910: "LIB: illegal parameter on function call"}.get(code, "LIB: ?"))
        return 0

    def SEPIA2_USB_OpenGetSerNumAndClose(self, dev, model, serial):  # noqa: N802
        if dev != self.index:
            return -9003
        _put_str(model, "Sepia II")
        _put_str(serial, "1012681")
        return 0

    def SEPIA2_USB_OpenDevice(self, dev, model, serial):  # noqa: N802
        if dev != self.index:
            return -9003
        _put_str(model, "Sepia II")
        _put_str(serial, "1012681")
        return 0

    def SEPIA2_USB_CloseDevice(self, dev):  # noqa: N802
        return 0

    def SEPIA2_FWR_GetModuleMap(self, dev, restart, count):  # noqa: N802
        _put(count, len(self.MAP))
        return 0

    def SEPIA2_FWR_GetLastError(self, dev, code, phase, loc, slot, cond):  # noqa: N802
        for p in (code, phase, loc, slot):
            _put(p, 0)
        return 0

    def SEPIA2_FWR_GetModuleInfoByMapIdx(self, dev, i, slot, prim, back, up):  # noqa: N802
        s, p, b = self.MAP[i]
        _put(slot, s)
        _put(prim, p)
        _put(back, b)
        _put(up, 1)
        return 0

    def SEPIA2_FWR_FreeModuleMap(self, dev):  # noqa: N802
        return 0

    def SEPIA2_COM_GetModuleType(self, dev, slot, primary, kind):  # noqa: N802
        _put(kind, self.TYPES.get(slot, 0))
        return 0

    def SEPIA2_COM_GetSerialNumber(self, dev, slot, primary, buf):  # noqa: N802
        _put_str(buf, "1020200")
        return 0

    def SEPIA2_SCM_GetLaserLocked(self, dev, slot, locked):  # noqa: N802
        _put(locked, int(self.soft or self.hard))
        return 0

    def SEPIA2_SCM_SetLaserSoftLock(self, dev, slot, locked):  # noqa: N802
        self.soft = locked
        return self._rc("SEPIA2_SCM_SetLaserSoftLock")

    def SEPIA2_SLM_GetIntensityFineStep(self, dev, slot, value):  # noqa: N802
        _put(value, self.intensity)
        return 0

    def SEPIA2_SLM_SetIntensityFineStep(self, dev, slot, value):  # noqa: N802
        rc = self._rc("SEPIA2_SLM_SetIntensityFineStep")
        if not rc:
            self.intensity = value
        return rc

    def SEPIA2_SLM_GetPulseParameters(self, dev, slot, freq, pulsed, head):  # noqa: N802
        _put(freq, self.freq)
        _put(pulsed, 1)
        _put(head, 2)
        return 0

    def SEPIA2_SLM_SetPulseParameters(self, dev, slot, freq, pulsed):  # noqa: N802
        self.freq = freq
        return 0


def _plain(args):
    """Call arguments with ctypes out-parameters shown as '&' and string buffers as 'buf'."""
    out = []
    for a in args:
        if type(a).__name__ == "CArgObject":
            out.append("&")
        elif isinstance(a, ctypes.Array):
            out.append("buf")
        else:
            out.append(a)
    return tuple(out)


def calls(dll):
    return [(c[0], _plain(c[1])) for c in dll.method_calls]


def _mocked(fake=None, **kwargs):
    fake = fake or FakeSepia()
    dll = MagicMock(wraps=fake)
    laser = SepiaPulsedLaser(
        Sepia2Lib(dll),
        kwargs.pop("max_power_W", 2e-6),
        full_intensity_pulse_energy_J=E_FULL,
        threshold_permille=THRESHOLD,
        **kwargs,
    )
    return laser, dll, fake


OPEN_CALLS = [
    ("SEPIA2_USB_OpenGetSerNumAndClose", (0, "buf", "buf")),
    ("SEPIA2_USB_OpenGetSerNumAndClose", (1, "buf", "buf")),
    ("SEPIA2_USB_OpenDevice", (1, "buf", "buf")),
    ("SEPIA2_FWR_GetModuleMap", (1, 0, "&")),
    ("SEPIA2_FWR_GetLastError", (1, "&", "&", "&", "&", "buf")),
    ("SEPIA2_FWR_GetModuleInfoByMapIdx", (1, 0, "&", "&", "&", "&")),
    ("SEPIA2_COM_GetModuleType", (1, 100, 1, "&")),
    ("SEPIA2_FWR_GetModuleInfoByMapIdx", (1, 1, "&", "&", "&", "&")),
    ("SEPIA2_COM_GetModuleType", (1, 200, 1, "&")),
    ("SEPIA2_FWR_GetModuleInfoByMapIdx", (1, 2, "&", "&", "&", "&")),
    ("SEPIA2_FWR_GetModuleInfoByMapIdx", (1, 3, "&", "&", "&", "&")),
    ("SEPIA2_COM_GetSerialNumber", (1, 200, 1, "buf")),
]


def test_open_finds_the_first_sepia_and_its_scm_and_slm_modules():
    laser, dll, _ = _mocked()
    assert calls(dll) == OPEN_CALLS
    assert (laser.dev, laser.scm_slot, laser.slm_slot) == (1, 100, 200)
    assert (laser.model, laser.serial, laser.slm_serial) == ("Sepia II", "1012681", "1020200")


def test_open_by_serial_number_and_by_usb_index():
    laser, dll, _ = _mocked(device="1012681")
    assert calls(dll)[:3] == OPEN_CALLS[:3]
    laser, dll, _ = _mocked(device=1)
    assert calls(dll)[0] == ("SEPIA2_USB_OpenDevice", (1, "buf", "buf"))
    assert calls(dll)[1:] == OPEN_CALLS[3:]


def test_no_device_found_names_what_was_tried():
    with pytest.raises(RuntimeError, match=r"no PicoQuant Sepia II found with serial .*'999'"):
        _mocked(device="999")
    fake = FakeSepia()
    fake.SEPIA2_USB_OpenGetSerNumAndClose = lambda dev, m, s: -9003
    with pytest.raises(RuntimeError, match=r"found at all .*indices 0-7 tried; found: none"):
        _mocked(fake)


def test_missing_slm_closes_the_device_again():
    fake = FakeSepia()
    fake.TYPES = {100: 0x40}
    dll = MagicMock(wraps=fake)
    with pytest.raises(RuntimeError, match="no SLM 828"):
        SepiaPulsedLaser(Sepia2Lib(dll), 1e-6, full_intensity_pulse_energy_J=E_FULL)
    assert calls(dll)[-2:] == [
        ("SEPIA2_FWR_FreeModuleMap", (1,)),
        ("SEPIA2_USB_CloseDevice", (1,)),
    ]


def test_power_is_set_in_per_mille_of_the_calibrated_head():
    laser, dll, fake = _mocked()
    dll.reset_mock()
    laser.power_W = 1.0e-6  # 5 MHz: 200 + 1e-6 / (1e-12 * 5e6) * 800 = 360 per mille
    assert calls(dll) == [
        ("SEPIA2_SLM_GetPulseParameters", (1, 200, "&", "&", "&")),
        ("SEPIA2_SLM_SetIntensityFineStep", (1, 200, 360)),
    ]
    dll.reset_mock()
    assert laser.power_W == pytest.approx(1.0e-6)
    assert calls(dll) == [
        ("SEPIA2_SLM_GetIntensityFineStep", (1, 200, "&")),
        ("SEPIA2_SLM_GetPulseParameters", (1, 200, "&", "&", "&")),
    ]
    laser.power_W = 0.0
    assert fake.intensity == 0


def test_power_above_the_limit_sends_nothing_and_rounding_never_exceeds_it():
    laser, dll, fake = _mocked(max_power_W=1.0027e-6)
    dll.reset_mock()
    for bad in (1.1e-6, -1e-9, float("nan")):
        with pytest.raises(LimitError, match="max_power_W"):
            laser.power_W = bad
    assert calls(dll) == []
    laser.power_W = 1.0027e-6  # exact 200 + 200.54 * 0.8 ... rounds up past the limit
    assert laser.power_W <= 1.0027e-6
    assert laser.power_for(fake.intensity + 1, 5e6) > 1.0027e-6


def test_power_full_intensity_cannot_reach_is_refused():
    laser, dll, fake = _mocked(max_power_W=0.01)
    dll.reset_mock()
    with pytest.raises(LimitError, match="full intensity gives"):
        laser.power_W = 6e-6  # 5 MHz * 1 pJ = 5 µW at 1000 per mille
    assert not [c for c in calls(dll) if c[0].startswith("SEPIA2_SLM_Set")]


def test_rep_rate_is_one_of_the_slm_frequencies_and_keeps_the_power():
    laser, dll, fake = _mocked()
    laser.power_W = 1.0e-6
    dll.reset_mock()
    laser.rep_rate_Hz = 10e6  # faster: lower the intensity first
    sets = [c for c in calls(dll) if "Set" in c[0]]
    assert sets == [
        ("SEPIA2_SLM_SetIntensityFineStep", (1, 200, 280)),
        ("SEPIA2_SLM_SetPulseParameters", (1, 200, 3, 1)),
    ]
    assert laser.power_W == pytest.approx(1.0e-6)
    dll.reset_mock()
    laser.rep_rate_Hz = 2.5e6  # slower: change the rate, then raise the intensity
    sets = [c for c in calls(dll) if "Set" in c[0]]
    assert sets == [
        ("SEPIA2_SLM_SetPulseParameters", (1, 200, 5, 1)),
        ("SEPIA2_SLM_SetIntensityFineStep", (1, 200, 520)),
    ]
    assert laser.rep_rate_Hz == 2.5e6


@pytest.mark.parametrize("bad", [7e6, 100e6, 1e6])
def test_rep_rate_not_on_the_slm_sends_nothing(bad):
    laser, dll, fake = _mocked()
    dll.reset_mock()
    with pytest.raises(LimitError, match="Hz"):
        laser.rep_rate_Hz = bad
    assert not [c for c in calls(dll) if "Set" in c[0]]


def test_rep_rate_that_would_need_more_than_full_intensity_is_refused():
    laser, dll, fake = _mocked(max_power_W=5e-6)
    laser.power_W = 4.0e-6  # 840 per mille at 5 MHz; 2.5 MHz would need 1480
    dll.reset_mock()
    with pytest.raises(LimitError, match="per mille at 2.5 MHz"):
        laser.rep_rate_Hz = 2.5e6
    assert not [c for c in calls(dll) if "Set" in c[0]]
    assert fake.freq == 4 and fake.intensity == 840


def test_emission_is_the_scm_soft_lock():
    laser, dll, fake = _mocked()
    dll.reset_mock()
    laser.enable()
    assert calls(dll) == [
        ("SEPIA2_SCM_SetLaserSoftLock", (1, 100, 0)),
        ("SEPIA2_SCM_GetLaserLocked", (1, 100, "&")),
    ]
    assert laser.emission_on
    dll.reset_mock()
    laser.disable()
    assert calls(dll) == [("SEPIA2_SCM_SetLaserSoftLock", (1, 100, 1))]
    assert not laser.emission_on


def test_a_hard_locked_laser_is_reported():
    laser, dll, fake = _mocked()
    fake.hard = 1
    dll.reset_mock()
    with pytest.raises(RuntimeError, match="key switch"):
        laser.enable()
    assert calls(dll) == [
        ("SEPIA2_SCM_SetLaserSoftLock", (1, 100, 0)),
        ("SEPIA2_SCM_GetLaserLocked", (1, 100, "&")),
        ("SEPIA2_SCM_SetLaserSoftLock", (1, 100, 1)),
    ]
    assert fake.soft == 1


def test_safe_state_locks_and_zeroes_and_close_releases():
    laser, dll, fake = _mocked()
    laser.power_W = 1e-6
    laser.enable()
    dll.reset_mock()
    laser.safe_state()
    assert calls(dll) == [
        ("SEPIA2_SCM_SetLaserSoftLock", (1, 100, 1)),
        ("SEPIA2_SLM_GetPulseParameters", (1, 200, "&", "&", "&")),
        ("SEPIA2_SLM_SetIntensityFineStep", (1, 200, 0)),
    ]
    snap = laser.snapshot()
    assert snap["power_W"] == 0.0 and snap["emission_on"] is False
    assert snap["intensity_permille"] == 0 and snap["serial"] == "1012681"
    dll.reset_mock()
    laser.close()
    laser.close()
    assert calls(dll) == [("SEPIA2_FWR_FreeModuleMap", (1,)), ("SEPIA2_USB_CloseDevice", (1,))]
    with pytest.raises(RuntimeError, match="closed"):
        laser.power_W = 0.0


def test_library_errors_are_decoded():
    laser, dll, fake = _mocked()
    fake.fail["SEPIA2_SLM_SetIntensityFineStep"] = -9910
    with pytest.raises(Sepia2Error, match=r"SetIntensityFineStep failed with -9910 \(LIB: illeg"):
        laser.power_W = 1e-6
    assert dll.SEPIA2_LIB_DecodeError.call_args[0][0] == -9910


def test_a_missing_library_says_how_to_install_it(monkeypatch):
    with pytest.raises(RuntimeError, match="PQLaserDrv"):
        load_sepia2_library("/nonexistent/Sepia2_Lib64.dll")
    monkeypatch.setattr(ps.ctypes.util, "find_library", lambda name: None)
    if sys.platform != "win32":
        with pytest.raises(RuntimeError, match="no pip package"):
            load_sepia2_library()


# ------------------------------------------------------------------ the simulated Sepia2_Lib
def _setup_file(tmp_path, settings="full_intensity_pulse_energy_J: 1.0e-12"):
    text = default_setup_path().read_text()
    # the subject is not the stage: an ideal one puts the focus exactly on the emitter
    text = text.replace("hysteresis_um: 0.15", "hysteresis_um: 0.0").replace(
        "creep_per_decade: 0.01", "creep_per_decade: 0.0"
    )
    block = (
        '  laser:\n    driver: PicoQuantSepia2\n    backend: sim\n    address: ""\n'
        "    limits:\n      max_power_W: 2.0e-6\n    settings:\n"
        f"      {settings}\n      threshold_permille: 200\n      rep_rate_Hz: 5.0e6\n"
    )
    text = re.sub(r"  laser:\n(    .*\n)+", block, text, count=1)
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return path


class _World:
    """Just what the simulated library touches."""

    def __init__(self):
        self.laser_calls = []
        self.faults = SimpleNamespace(decide=lambda role: None)

    def set_laser(self, **kwargs):
        self.laser_calls.append(kwargs)


def test_the_twin_answers_the_same_calls_identically():
    twin_dll = MagicMock(wraps=SimSepia2DLL(_World(), pulse_energy_J=E_FULL))
    mock_dll = MagicMock(wraps=FakeSepia(index=0))
    results = []
    for dll in (twin_dll, mock_dll):
        laser = SepiaPulsedLaser(
            Sepia2Lib(dll), 2e-6, full_intensity_pulse_energy_J=E_FULL, threshold_permille=200
        )
        laser.power_W = 1e-6
        laser.rep_rate_Hz = 10e6
        laser.enable()
        snap = laser.snapshot()
        laser.safe_state()
        laser.close()
        results.append(snap)
    assert calls(twin_dll) == calls(mock_dll)
    for key in ("power_W", "rep_rate_Hz", "emission_on", "intensity_permille", "slm_slot"):
        assert results[0][key] == results[1][key]


def test_the_driver_on_the_simulated_sepia_drives_the_world_laser(tmp_path):
    with hbtscope.open_setup(_setup_file(tmp_path), data_dir=tmp_path) as setup:
        laser = setup.laser
        assert isinstance(laser, SepiaPulsedLaser)
        world = setup.world
        assert world.laser.rep_rate_Hz == 5e6 and not world.laser.on
        laser.power_W = 1.5e-6
        laser.enable()
        assert world.laser.on and world.laser.set_power_W == pytest.approx(1.5e-6)
        # the simulated head is not linear in its set point (sim.yaml, laser:)
        assert world.laser.power_W != pytest.approx(1.5e-6, rel=1e-3)
        assert not world.laser.cw
        laser.rep_rate_Hz = 20e6
        assert world.laser.rep_rate_Hz == 20e6
        assert world.laser.set_power_W == pytest.approx(1.5e-6, rel=2e-3)
        with pytest.raises(LimitError):
            laser.power_W = 3e-6
        assert world.laser.set_power_W == pytest.approx(1.5e-6, rel=2e-3)
        # the sample responds: detected clicks at the bright emitter
        setup.stage.move_to(10.0, 10.0, 0.0)
        laser.rep_rate_Hz = 5e6
        laser.power_W = 20e-9  # 203 per mille: 18.75 nW
        rate = setup.tagger.api.Countrate(setup.tagger.device, list(setup.tagger.spad_channels))
        setup.clock.sleep(0.5)
        assert sum(rate.getData()) > 1000
    assert not world.laser.on and world.laser.power_W == 0.0  # closing leaves it safe


def test_setup_file_without_the_power_calibration_is_refused(tmp_path):
    with pytest.raises(SetupFileError, match="full_intensity_pulse_energy_J"):
        hbtscope.open_setup(_setup_file(tmp_path, settings="slm_slot: 200"), data_dir=tmp_path)


def test_a_sim_fault_surfaces_as_a_library_error():
    world = _World()
    twin = SimSepia2DLL(world, pulse_energy_J=E_FULL)
    laser = SepiaPulsedLaser(Sepia2Lib(twin), 1e-6, full_intensity_pulse_energy_J=E_FULL)
    world.faults.decide = lambda role: "disconnect"
    with pytest.raises(Sepia2Error, match="-3210 .USB: IOCTRL failed"):
        laser.enable()
