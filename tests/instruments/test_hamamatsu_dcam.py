"""Hamamatsu DCAM driver: the exact pylablib calls (module mocked at its boundary), its limits
and errors, and the same driver on the simulated DCAM module: emitters under the LED."""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace
from unittest.mock import MagicMock, call

import numpy as np
import pytest

import hbtscope
from hbtscope.drivers_sim.twins.dcam_twin import make_module
from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.hamamatsu_dcam import DCAMCameraDriver, load_dcam
from hbtscope.setup import default_setup_path


class DCAMError(RuntimeError):
    pass


def _mock_dcam():
    dcam = MagicMock(name="pylablib.devices.DCAM")
    dcam.DCAMCamera.Error = DCAMError
    cam = dcam.DCAMCamera.return_value
    cam.properties = {"EXPOSURE TIME": SimpleNamespace(vmin=3.9e-5, vmax=10.0)}
    cam.get_detector_size.return_value = (2048, 2048)
    cam.set_roi.side_effect = lambda *a: tuple(a)
    cam.get_device_info.return_value = ("Hamamatsu", "C13440-20CU", "S/N: 301234", "4.20")
    cam.set_exposure.side_effect = lambda s: round(s, 5)
    cam.snap.side_effect = lambda timeout: np.full((256, 256), 100, dtype=np.uint16)
    return dcam, cam


def test_opens_the_camera_sets_a_centred_roi_and_takes_its_limits():
    dcam, cam = _mock_dcam()
    c = DCAMCameraDriver(dcam, 0, pixel_um=0.1625, roi_px=(256, 256))
    dcam.DCAMCamera.assert_called_once_with(0)
    assert cam.method_calls == [
        call.get_detector_size(),
        call.set_roi(896, 1152, 896, 1152, 1, 1),
        call.get_device_info(),
    ]
    assert c.exposure_range_s == (3.9e-5, 10.0)
    assert c.exposure_s == 0.1 and c.pixel_um == 0.1625
    assert c.snapshot() == {
        "exposure_s": 0.1,
        "pixel_um": 0.1625,
        "roi_hstart": 896,
        "roi_hend": 1152,
        "roi_vstart": 896,
        "roi_vend": 1152,
        "binning": 1,
        "model": "C13440-20CU",
        "serial": "S/N: 301234",
    }


def test_full_sensor_and_binning():
    dcam, cam = _mock_dcam()
    c = DCAMCameraDriver(dcam, 0, pixel_um=0.1625, binning=2)
    assert cam.set_roi.call_args == call(0, 2048, 0, 2048, 2, 2)
    assert c.pixel_um == pytest.approx(0.325)


def test_acquire_sets_the_exposure_once_and_snaps():
    dcam, cam = _mock_dcam()
    c = DCAMCameraDriver(dcam, 0, pixel_um=0.1625, roi_px=(256, 256))
    cam.reset_mock()
    frame = c.acquire()
    assert cam.method_calls == [call.set_exposure(0.1), call.snap(timeout=5.1)]
    assert frame.dtype == np.uint16 and frame.shape == (256, 256)
    cam.reset_mock()
    c.acquire()
    assert cam.method_calls == [call.snap(timeout=5.1)]
    c.exposure_s = 0.0123456
    cam.reset_mock()
    c.acquire()
    assert cam.method_calls == [call.set_exposure(0.0123456), call.snap(timeout=5.0123456)]
    assert c.snapshot()["actual_exposure_s"] == 0.01235


def test_limits_send_nothing():
    dcam, cam = _mock_dcam()
    c = DCAMCameraDriver(dcam, 0, pixel_um=0.1625)
    cam.reset_mock()
    for bad in (1e-6, 11.0, float("nan"), -1):
        with pytest.raises(LimitError, match="exposure"):
            c.exposure_s = bad
    assert cam.method_calls == []
    with pytest.raises(LimitError, match="does not fit"):
        DCAMCameraDriver(dcam, 0, pixel_um=0.1625, roi_px=(4096, 16))
    cam.close.assert_called_once_with()
    with pytest.raises(LimitError, match="binning"):
        DCAMCameraDriver(dcam, 0, pixel_um=0.1625, binning=3)
    with pytest.raises(LimitError, match="pixel_um"):
        DCAMCameraDriver(dcam, 0, pixel_um=0.0)


def test_no_camera_is_a_clear_error():
    dcam, cam = _mock_dcam()
    dcam.DCAMCamera.side_effect = DCAMError("camera index 1 is not available (1 cameras exist)")
    with pytest.raises(RuntimeError, match="no Hamamatsu DCAM camera at index 1: camera index"):
        DCAMCameraDriver(dcam, 1, pixel_um=0.1625)


def test_missing_sdk_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pylablib", None)
    monkeypatch.setitem(sys.modules, "pylablib.devices", None)
    with pytest.raises(RuntimeError, match=r"pip install pylablib.*DCAM-API"):
        load_dcam()


def test_close_is_idempotent_and_final():
    dcam, cam = _mock_dcam()
    c = DCAMCameraDriver(dcam, 0, pixel_um=0.1625)
    c.close()
    c.close()
    cam.close.assert_called_once_with()
    with pytest.raises(RuntimeError, match="closed"):
        c.acquire()


# ------------------------------------------------------------------ the simulated DCAM
class _World:
    seed = 7

    def __init__(self):
        from hbtscope.clock import VirtualClock

        self.clock = VirtualClock("fast")
        self.faults = None
        self.focus_um = np.zeros(3)

    def widefield_emission(self, a, b, xr, yr):
        return np.empty(0), np.empty(0), np.empty(0)


class _Spy:
    def __init__(self, target):
        self._target = target
        self.method_calls = []

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr

        def method(*args, **kwargs):
            self.method_calls.append(getattr(call, name)(*args, **kwargs))
            return attr(*args, **kwargs)

        return method


def test_the_twin_answers_the_same_calls_identically():
    world = _World()
    twin = make_module(world, pixel_um=0.1625)
    original = twin.DCAMCamera
    spies = []

    def factory(idx=0):
        spies.append(_Spy(original(idx)))
        return spies[-1]

    factory.Error = original.Error
    twin.DCAMCamera = factory
    dcam, cam = _mock_dcam()
    for module in (twin, dcam):
        c = DCAMCameraDriver(module, 0, pixel_um=0.1625, roi_px=(256, 256))
        c.exposure_s = 0.05
        frame = c.acquire()
        assert frame.shape == (256, 256) and frame.dtype == np.uint16
        c.close()
    assert spies[0].method_calls == cam.method_calls
    assert world.clock.now() == pytest.approx(0.05)  # the exposure, on the setup clock


def test_twin_errors_are_pylablibs():
    twin = make_module(_World(), pixel_um=0.1625)
    first = DCAMCameraDriver(twin, 0, pixel_um=0.1625, roi_px=(64, 64))
    with pytest.raises(RuntimeError, match="BUSY"):
        DCAMCameraDriver(twin, 0, pixel_um=0.1625)
    with pytest.raises(RuntimeError, match="index 2 is not available"):
        DCAMCameraDriver(twin, 2, pixel_um=0.1625)
    first.close()


def _setup_file(tmp_path):
    text = default_setup_path().read_text()
    block = (
        '  camera:\n    driver: HamamatsuDCAM\n    backend: sim\n    address: "0"\n'
        "    settings:\n      pixel_um: 0.1625\n      roi_width_px: 256\n"
        "      roi_height_px: 256\n"
    )
    text = re.sub(r"  camera:\n(    .*\n)+", block, text, count=1)
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return path


def test_the_driver_on_the_twin_sees_the_emitters_under_the_led(tmp_path):
    """Same check as for the simulated camera: every emitter in the 41.6 µm field shows up at
    its position once the LED is on."""
    with hbtscope.open_setup(_setup_file(tmp_path), data_dir=tmp_path) as setup:
        camera = setup.camera
        assert isinstance(camera, DCAMCameraDriver)
        setup.stage.move_to(15.0, 15.0, 0.0)
        camera.exposure_s = 0.5
        dark = camera.acquire().astype(float)
        setup.led.power_fraction = 1.0
        setup.led.enable()
        frame = camera.acquire().astype(float)
        setup.led.disable()
        signal = frame - np.median(dark)
        p = camera.pixel_um
        hstart, _, vstart, _, _, _ = camera.roi
        x0 = 15.0 - 2048 * p / 2 + hstart * p
        y0 = 15.0 - 2048 * p / 2 + vstart * p
        seen = 0
        for e in setup.world.emitters:
            j, i = int((e.x_um - x0) / p), int((e.y_um - y0) / p)
            if not (3 <= i < 253 and 3 <= j < 253):
                continue
            patch = signal[i - 3 : i + 4, j - 3 : j + 4]
            assert patch.sum() > 20 * np.sqrt(7 * 7 * 1.6**2 / 0.46**2)
            seen += 1
        designed = [e for e in setup.world.emitters if e.species == "custom"]
        assert seen == len(designed)  # the designed spots; the survey field is outside the ROI
        assert abs(np.median(signal)) < 5  # no light between the emitters
