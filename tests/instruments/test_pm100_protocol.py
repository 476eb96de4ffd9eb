"""Thorlabs PM100 driver (pymeasure's ThorlabsPM100USB, extended) at the wire."""

from __future__ import annotations

import warnings

import pytest
from pymeasure.adapters.protocol import ProtocolAdapter
from pymeasure.test import expected_protocol
from pyvisa import constants
from pyvisa.errors import VisaIOError

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.thorlabs_pm100 import (
    PM100PowerMeter,
    PowerMeterError,
    ThorlabsPM100,
)

SENSOR = [("SYST:SENSOR:IDN?", "S120C,SIM120C01,01-Jan-2025,1,18,289")]
OPEN = [
    *SENSOR,
    ("SENS:CORR:WAV? MIN", "4.000000E+02"),
    ("SENS:CORR:WAV? MAX", "1.100000E+03"),
    ("SYST:ERR?", '0,"No error"'),
]
NO_ERROR = ("SYST:ERR?", '0,"No error"')


def test_opening_reads_the_sensor_flags_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with expected_protocol(ThorlabsPM100, SENSOR) as inst:
            assert inst.sensor_name == "S120C" and inst.sensor_sn == "SIM120C01"
            assert inst.is_power_sensor and inst.wavelength_settable
            assert not inst.is_energy_sensor


def test_no_sensor_is_an_error():
    with pytest.raises(OSError, match="No sensor"):
        with expected_protocol(ThorlabsPM100, [("SYST:SENSOR:IDN?", "no sensor,,,0,0,0")]):
            pass


def test_measurements_and_settings():
    with expected_protocol(
        ThorlabsPM100,
        [
            *SENSOR,
            ("*IDN?", "Thorlabs,PM100USB,P2000001,1.7.0"),
            ("MEAS:POW?", "1.234000E-06"),
            ("SENSE:CORR:WAV?", "4.050000E+02"),
            ("SENS:AVER:COUN?", "1"),
            ("SENS:AVER:COUN 100", None),
            ("SENS:POW:RANG:AUTO?", "1"),
            ("SENS:POW:RANG:AUTO 0", None),
            ("SENS:CORR:COLL:ZERO", None),
        ],
    ) as inst:
        assert inst.id == "Thorlabs,PM100USB,P2000001,1.7.0"
        assert inst.power == 1.234e-6
        assert inst.wavelength == 405.0
        assert inst.averaging_count == 1
        inst.averaging_count = 100
        assert inst.auto_range is True
        inst.auto_range = False
        inst.zero()


def test_error_queue():
    with expected_protocol(
        ThorlabsPM100,
        [*SENSOR, ("SYST:ERR?", '-113,"Undefined header"'), ("SYST:ERR?", '0,"No error"')],
    ) as inst:
        errors = inst.check_errors()
        assert [int(e[0]) for e in errors] == [-113]


def test_averaging_out_of_range_sends_nothing():
    with expected_protocol(ThorlabsPM100, SENSOR) as inst:
        with pytest.raises(ValueError):
            inst.averaging_count = 0


# ----------------------------------------------------------------------------- power meter role
def test_power_meter_sets_the_wavelength_and_checks_the_queue():
    with expected_protocol(
        ThorlabsPM100,
        [
            *OPEN,
            ("SENSE:CORR:WAV 405.0", None),
            NO_ERROR,
            ("MEAS:POW?", "9.990000E-07"),
            ("MEAS:POW?", "9.990000E-07"),
            ("SENSE:CORR:WAV?", "4.050000E+02"),
        ],
    ) as inst:
        pm = PM100PowerMeter(inst, wavelength_nm=405)
        assert pm.wavelength_range_nm == (400.0, 1100.0)
        assert pm.read_power_W() == pytest.approx(9.99e-7)
        assert pm.snapshot() == {"power_W": 9.99e-7, "wavelength_nm": 405.0, "sensor": "S120C"}


@pytest.mark.parametrize("bad", [399.9, 1100.5, float("nan"), float("inf")])
def test_wavelength_outside_the_sensor_range_raises_and_sends_nothing(bad):
    with expected_protocol(ThorlabsPM100, OPEN) as inst:
        pm = PM100PowerMeter(inst)
        with pytest.raises(LimitError, match=r"outside the S120C sensor's range \[400, 1100\] nm"):
            pm.wavelength_nm = bad


def test_meter_error_after_setting_raises():
    with expected_protocol(
        ThorlabsPM100,
        [
            *OPEN,
            ("SENSE:CORR:WAV 532.0", None),
            ("SYST:ERR?", '-222,"Data out of range"'),
            NO_ERROR,
        ],
    ) as inst:
        pm = PM100PowerMeter(inst)
        with pytest.raises(PowerMeterError, match="Data out of range"):
            pm.wavelength_nm = 532


def test_energy_sensor_is_refused():
    with expected_protocol(
        ThorlabsPM100, [("SYST:SENSOR:IDN?", "ES111C,123,01-Jan-2025,3,2,2")]
    ) as inst:
        with pytest.raises(ValueError, match="not a power sensor"):
            PM100PowerMeter(inst)


def _fail_next(adapter, method, errors):
    real = getattr(adapter, method)

    def faulty(*args, **kwargs):
        if errors:
            raise errors.pop(0)
        return real(*args, **kwargs)

    setattr(adapter, method, faulty)


def test_timeout_repeats_the_reading_once():
    with expected_protocol(
        ThorlabsPM100, [*OPEN, ("MEAS:POW?", None), ("MEAS:POW?", "1.0E-06")]
    ) as inst:
        pm = PM100PowerMeter(inst)
        _fail_next(inst.adapter, "_read", [VisaIOError(constants.StatusCode.error_timeout)])
        assert pm.read_power_W() == 1e-6
        assert pm.recoveries == ["timeout"]


def test_lost_connection_reconnects_once():
    fresh = ProtocolAdapter([("MEAS:POW?", "2.0E-06")])
    with expected_protocol(ThorlabsPM100, OPEN) as inst:
        pm = PM100PowerMeter(inst, reopen=lambda: fresh)
        _fail_next(
            inst.adapter, "_write", [VisaIOError(constants.StatusCode.error_connection_lost)]
        )
        assert pm.read_power_W() == 2e-6
        assert pm.recoveries == ["reconnect"] and inst.adapter is fresh
