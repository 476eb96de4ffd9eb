"""Ocean Insight driver: the exact python-seabreeze calls (module mocked at its boundary), its
limits and errors, and the same driver on the simulated seabreeze module in the world."""

from __future__ import annotations

import re
import sys
from unittest.mock import MagicMock, call

import numpy as np
import pytest

import hbtscope
from hbtscope.drivers_sim.twins.seabreeze_twin import make_module
from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.ocean_seabreeze import OceanSpectrometer, load_seabreeze
from hbtscope.setup import default_setup_path

WL = np.linspace(340.0, 1025.0, 2048)


class SeaBreezeError(Exception):
    pass


def _mock_sb(serial="FLMS01234"):
    sb = MagicMock(name="seabreeze.spectrometers")
    sb.SeaBreezeError = SeaBreezeError
    spec = MagicMock(name="Spectrometer")
    sb.Spectrometer.from_first_available.return_value = spec
    sb.Spectrometer.from_serial_number.return_value = spec
    spec.integration_time_micros_limits = (1000, 65_000_000)
    spec.wavelengths.return_value = WL
    spec.intensities.side_effect = lambda **kw: np.full(2048, 1500.0)
    spec.model = "FLAMES"
    spec.serial_number = serial
    return sb, spec


def test_opens_the_first_spectrometer_and_takes_its_limits():
    sb, spec = _mock_sb()
    s = OceanSpectrometer(sb)
    sb.Spectrometer.from_first_available.assert_called_once_with()
    sb.Spectrometer.from_serial_number.assert_not_called()
    assert s.integration_range_s == (1e-3, 65.0)
    assert s.integration_s == 1.0
    assert np.array_equal(s.wavelengths_nm, WL)
    assert s.snapshot() == {
        "integration_s": 1.0,
        "wavelength_min_nm": 340.0,
        "wavelength_max_nm": 1025.0,
        "n_pixels": 2048,
        "model": "FLAMES",
        "serial": "FLMS01234",
        "correct_dark_counts": False,
        "correct_nonlinearity": False,
    }


def test_opens_by_serial_number():
    sb, spec = _mock_sb()
    OceanSpectrometer(sb, "FLMS01234")
    sb.Spectrometer.from_serial_number.assert_called_once_with("FLMS01234")


def test_acquire_sets_the_time_in_microseconds_and_discards_the_mixed_spectrum():
    sb, spec = _mock_sb()
    s = OceanSpectrometer(sb, correct_dark_counts=True)
    s.integration_s = 0.25
    spec.reset_mock()
    counts = s.acquire()
    read = call.intensities(correct_dark_counts=True, correct_nonlinearity=False)
    assert spec.method_calls == [call.integration_time_micros(250_000), read, read]
    assert counts.dtype == np.float64 and counts.shape == (2048,)
    spec.reset_mock()
    s.acquire()  # same time: one spectrum, nothing set
    assert spec.method_calls == [read]
    s.integration_s = 2.0
    spec.reset_mock()
    s.acquire()
    assert spec.method_calls == [call.integration_time_micros(2_000_000), read, read]


def test_integration_outside_the_device_range_sends_nothing():
    sb, spec = _mock_sb()
    s = OceanSpectrometer(sb)
    spec.reset_mock()
    for bad in (1e-4, 100.0, float("nan")):
        with pytest.raises(LimitError, match="integration time"):
            s.integration_s = bad
    assert spec.method_calls == []


def test_no_device_names_the_connected_ones():
    sb, spec = _mock_sb()
    sb.Spectrometer.from_serial_number.side_effect = SeaBreezeError(
        "No device attached with serial number 'X1'."
    )
    sb.list_devices.return_value = [MagicMock(model="USB2000PLUS", serial_number="USB2+H1")]
    with pytest.raises(RuntimeError, match=r"serial number 'X1'.*connected: USB2000PLUS USB2\+H1"):
        OceanSpectrometer(sb, "X1")
    sb.Spectrometer.from_first_available.side_effect = SeaBreezeError("No unopened device found.")
    sb.list_devices.return_value = []
    with pytest.raises(RuntimeError, match="none unopened.*connected: none"):
        OceanSpectrometer(sb)


def test_missing_sdk_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "seabreeze", None)
    monkeypatch.setitem(sys.modules, "seabreeze.spectrometers", None)
    with pytest.raises(RuntimeError, match="pip install seabreeze"):
        load_seabreeze()


def test_close_is_idempotent_and_final():
    sb, spec = _mock_sb()
    s = OceanSpectrometer(sb)
    s.close()
    s.close()
    spec.close.assert_called_once_with()
    with pytest.raises(RuntimeError, match="closed"):
        s.acquire()


# ------------------------------------------------------------------ the simulated seabreeze
class _World:
    seed = 1

    def __init__(self):
        from hbtscope.clock import VirtualClock

        self.clock = VirtualClock("fast")
        self.faults = None

    def spectrum_components(self, a, b):
        return [(2.0e4, 520.0, 20.0, 0.0)]


class _Spy:
    """Records the method calls made on ``target`` (properties pass through)."""

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
    twin = make_module(world)
    spy = _Spy(twin.Spectrometer.from_first_available())
    twin.Spectrometer.from_first_available = lambda: spy
    sb, spec = _mock_sb()
    results = []
    for module, s_mock in ((twin, spy), (sb, spec)):
        s = OceanSpectrometer(module)
        s.integration_s = 0.5
        s.acquire()
        s.acquire()
        s.close()
        results.append(s_mock.method_calls)
    assert results[0] == results[1]
    assert results[0][0] == call.wavelengths()
    t0 = world.clock.now()
    assert t0 == pytest.approx(1.5)  # three integrations of 0.5 s: one discarded


def test_twin_errors_are_seabreezes():
    twin = make_module(_World())
    first = OceanSpectrometer(twin)
    with pytest.raises(RuntimeError, match="No unopened device found"):
        OceanSpectrometer(twin)
    first.close()
    with pytest.raises(RuntimeError, match="serial number 'NOPE'"):
        OceanSpectrometer(twin, "NOPE")
    s = OceanSpectrometer(twin, "FLMS14213", correct_nonlinearity=True)
    with pytest.raises(twin.SeaBreezeError, match="nonlinearity"):
        s.acquire()


def _setup_file(tmp_path):
    text = default_setup_path().read_text()
    block = (
        '  spectrometer:\n    driver: OceanSeaBreeze\n    backend: sim\n    address: ""\n'
        "    settings:\n      correct_dark_counts: 1\n"
    )
    text = re.sub(r"  spectrometer:\n(    .*\n)+", block, text, count=1)
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return path


def test_the_driver_on_the_twin_sees_the_emitter_spectrum_through_the_flip_mirror(tmp_path):
    from scipy.ndimage import median_filter

    with hbtscope.open_setup(_setup_file(tmp_path), data_dir=tmp_path) as setup:
        spec = setup.spectrometer
        assert isinstance(spec, OceanSpectrometer)
        setup.stage.move_to(10.0, 10.0, 0.0)
        setup.laser.power_W = 24e-9
        setup.laser.enable()
        spec.integration_s = 5.0
        to_spads = spec.acquire()  # mirror on the SPADs: dark only
        setup.flip_mirror.position = "spectrometer"
        counts = spec.acquire()
        wl = spec.wavelengths_nm
        smooth = median_filter(counts, 5)
        peak = wl[int(np.argmax(smooth))]
        assert abs(peak - setup.world.emitters[0].cew_nm) < 2.0
        assert smooth.max() > 20 * (median_filter(to_spads, 5).max() + 10)
        assert abs(np.median(counts)) < 30  # dark counts corrected
        assert setup.snapshot()["spectrometer"]["serial"] == "FLMS14213"


def test_driver_modules_import_no_vendor_sdk():
    """The five SDK drivers import their SDKs only when a device is opened."""
    import subprocess

    code = (
        "import sys\n"
        "import hbtscope.setup\n"
        "from hbtscope.instruments.drivers import ocean_seabreeze, hamamatsu_dcam, nidaq_scan\n"
        "from hbtscope.instruments.drivers import picoquant_sepia, toptica_ibeam\n"
        "sdks = ('seabreeze', 'pylablib', 'nidaqmx')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in sdks]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
