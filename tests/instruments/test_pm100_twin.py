"""The PM100 driver, unchanged, on its wire-level twin: it reads what the simulated laser
emits."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyvisa import constants
from pyvisa.errors import VisaIOError

import hbtscope
from hbtscope.instruments.base import LimitError
from hbtscope.setup import default_setup_path

PM100 = """  powermeter:
    driver: ThorlabsPM100
    backend: sim
    address: USB0::0x1313::0x8072::P2000001::INSTR
    settings:
      wavelength_nm: 405
"""


def _with_role(text: str, role: str, block: str) -> str:
    """sim.yaml's text with the block of ``role`` (its line and the lines indented below it)
    replaced by ``block``."""
    pattern = re.compile(rf"^  {role}:[^\n]*\n(?:(?:    [^\n]*)?\n)*", re.M)
    assert pattern.search(text), f"no '{role}:' block in sim.yaml"
    return pattern.sub(lambda m: block, text, count=1)


def _setup(tmp_path, faults=""):
    text = default_setup_path().read_text()
    text = _with_role(text, "powermeter", PM100)
    if faults:
        sync = "  sync: {tagger_channel: 1, delay_ps: 0}\n"
        text = text.replace(sync, sync + "  faults:\n" + faults)
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return hbtscope.open_setup(path, data_dir=tmp_path)


def test_power_meter_reads_what_the_laser_emits(tmp_path):
    with _setup(tmp_path) as s:
        pm, twin = s.powermeter, s.powermeter.inst.adapter.twin
        s.laser.power_W = 1e-6
        assert pm.read_power_W() < 1e-9  # laser off: the dark offset
        s.laser.enable()
        readings = [pm.read_power_W() for _ in range(20)]
        assert np.mean(readings) == pytest.approx(1e-6, rel=4 * 0.005 / math.sqrt(20))
        assert twin.received[-1] == "MEAS:POW?"
        snap = s.snapshot()["powermeter"]
        assert snap["sensor"] == "S120C" and snap["wavelength_nm"] == 405.0


def test_the_wavelength_correction_matters(tmp_path):
    """Corrected for 633 nm while the light is at 405 nm, a photodiode reads 405/633 of it."""
    with _setup(tmp_path) as s:
        pm = s.powermeter
        s.laser.power_W = 1e-6
        s.laser.enable()
        pm.inst.averaging_count = 1000  # 0.3 s per reading, noise / 30
        pm.wavelength_nm = 633
        assert pm.read_power_W() == pytest.approx(1e-6 * 405 / 633, rel=0.002)
        pm.wavelength_nm = 405
        assert pm.read_power_W() == pytest.approx(1e-6, rel=0.002)


def test_zeroing_removes_the_dark_offset(tmp_path):
    with _setup(tmp_path) as s:
        pm = s.powermeter
        assert pm.read_power_W() == pytest.approx(2e-10, rel=1e-6)
        pm.zero()
        assert abs(pm.read_power_W()) < 1e-15


def test_scpi_errors_and_unknown_queries(tmp_path):
    with _setup(tmp_path) as s:
        pm, twin = s.powermeter, s.powermeter.inst.adapter.twin
        pm.inst.write("SENS:CORR:WAV 2000")  # past the driver: the meter refuses it
        pm.inst.write("SENSE:BOGUS 1")
        assert [int(e[0]) for e in pm.errors()] == [-222, -113]
        assert pm.wavelength_nm == 405.0
        t0 = s.clock.now()
        with pytest.raises(VisaIOError) as info:  # not answered: times out, repeated once
            pm._io(lambda: pm.inst.ask("SYST:WHATEVER?"))
        assert info.value.error_code == constants.StatusCode.error_timeout
        assert s.clock.now() - t0 >= 6.0  # two VISA timeouts of 3 s
        assert twin.received[-2:] == ["SYST:WHATEVER?", "SYST:WHATEVER?"]
        assert [int(e[0]) for e in pm.errors()] == [-113, -113]
        assert pm.inst.ask("*IDN?;*OPC?") == "Thorlabs,PM100USB,P2000001,1.7.0;1"


def test_disconnect_is_reported_after_one_reconnect(tmp_path):
    with _setup(tmp_path, "    - {kind: disconnect, role: powermeter, at_s: 5}\n") as s:
        s.powermeter.read_power_W()
        s.clock.sleep(5.0)
        with pytest.raises(VisaIOError) as info:
            s.powermeter.read_power_W()
        assert info.value.error_code == constants.StatusCode.error_connection_lost
        assert s.powermeter.recoveries == ["reconnect"]


wavelengths = st.one_of(
    st.floats(min_value=0, max_value=3000),
    st.sampled_from([400.0, 1100.0, 399.999, 1100.001, math.nan, math.inf, -1.0]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(requests=st.lists(wavelengths, min_size=1, max_size=10))
def test_no_sequence_of_wavelengths_gets_past_the_sensor_range(tmp_path_factory, requests):
    with _setup(tmp_path_factory.mktemp("pm")) as s:
        pm, twin = s.powermeter, s.powermeter.inst.adapter.twin
        for wl in requests:
            try:
                pm.wavelength_nm = wl
            except LimitError:
                pass
        for cmd in twin.received:
            if cmd.startswith("SENSE:CORR:WAV "):
                assert 400.0 <= float(cmd.split()[1]) <= 1100.0, cmd
        assert twin.errors == []
