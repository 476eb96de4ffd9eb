"""Thorlabs PM100 optical power meter (PM100USB, PM100D, PM100A) — SCPI over VISA (USBTMC).

Protocol (sources): pymeasure's own driver
:class:`pymeasure.instruments.thorlabs.ThorlabsPM100USB` (used here as the base class) and the
PM100D/PM100USB manual it cites (Thorlabs 17654-D02, SCPI command reference): ``*IDN?``,
``SYST:ERR?`` (``0,"No error"``; e.g. ``-222,"Data out of range"``), ``SYST:SENSOR:IDN?``
(name, serial, calibration date, type, subtype, flags: bit 1 power sensor, 2 energy sensor,
32 wavelength settable, 256 temperature sensor), ``SENS:CORR:WAV <nm>`` / ``SENS:CORR:WAV?``
and ``… MIN``/``MAX``, ``MEAS:POW?`` (W), ``SENS:AVER:COUN <n>``, ``SENS:POW:RANG:AUTO <0|1>``,
``SENS:CORR:COLL:ZERO`` (dark zeroing). As for any SCPI instrument, a command the meter cannot
execute is not answered: it pushes an error (``-113,"Undefined header"``, ``-222,"Data out of
range"``, ``-224,"Illegal parameter value"``) onto the queue read by ``SYST:ERR?``.

Extension over pymeasure's class: the PM100 *is* SCPI (so its "SCPI unknown" warning is
silenced), averaging, auto-range and zeroing, and — important for the run files — the
wavelength correction is never silently truncated: :class:`PM100PowerMeter` refuses a
wavelength outside the sensor's range with :class:`~hbtscope.instruments.base.LimitError`
(pymeasure would clamp it) and checks the error queue after setting it.

Backend ``real``: the VISA resource in ``address`` (e.g. ``USB0::0x1313::0x8072::P2000000::
INSTR``); backend ``sim``: the wire-level twin, a PM100USB with an S120C photodiode reading the
simulated laser.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.thorlabs import ThorlabsPM100USB
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers._common import VisaRole, open_real, reopen_real
from hbtscope.instruments.optics import PowerMeter
from hbtscope.instruments.registry import DriverInfo, LimitRule, SimConnector


class PowerMeterError(RuntimeError):
    """The meter reported an error (SYST:ERR?)."""


def visa_settings() -> dict[str, Any]:
    return {"read_termination": "\n", "write_termination": "\n", "timeout": 3000}


class ThorlabsPM100(ThorlabsPM100USB):
    """pymeasure's PM100USB driver, extended; works for the PM100D/A/USB (same SCPI set)."""

    def __init__(self, adapter, name: str = "Thorlabs PM100 power meter", **kwargs):
        for key, value in visa_settings().items():
            kwargs.setdefault(key, value)
        with warnings.catch_warnings():
            # pymeasure marks the PM100USB "SCPI unknown"; its manual documents SCPI
            warnings.simplefilter("ignore", FutureWarning)
            super().__init__(adapter, name, **kwargs)

    averaging_count = Instrument.control(
        "SENS:AVER:COUN?",
        "SENS:AVER:COUN %d",
        "Control how many samples (about 0.3 ms each) one reading averages.",
        validator=strict_range,
        values=(1, 10000),
        cast=int,
    )
    auto_range = Instrument.control(
        "SENS:POW:RANG:AUTO?",
        "SENS:POW:RANG:AUTO %d",
        "Control the power auto-ranging.",
        validator=strict_discrete_set,
        values={False: 0, True: 1},
        map_values=True,
        cast=int,
    )

    def zero(self) -> None:
        """Dark zeroing: block the beam first."""
        self.write("SENS:CORR:COLL:ZERO")


class PM100PowerMeter(VisaRole, PowerMeter):
    """The :class:`PowerMeter` interface on a PM100, with the wavelength correction."""

    def __init__(self, inst: ThorlabsPM100, wavelength_nm: float | None = None, reopen=None):
        self._bind(inst, reopen)
        self.sensor = inst.sensor_name
        if not inst.is_power_sensor:
            raise ValueError(f"sensor {inst.sensor_name} is not a power sensor")
        self.wavelength_range_nm = (
            float(self._io(lambda: inst.wavelength_min)),
            float(self._io(lambda: inst.wavelength_max)),
        )
        # pymeasure's wavelength setter caches the range under these names: ask only once
        inst._wavelength_min, inst._wavelength_max = self.wavelength_range_nm
        self.errors()  # start from an empty error queue
        if wavelength_nm is not None:
            self.wavelength_nm = wavelength_nm

    def errors(self) -> list:
        """Read (and empty) the meter's error queue."""
        return self._io(self.inst.check_errors)

    @property
    def wavelength_nm(self) -> float:
        """The wavelength (nm) the reading is corrected for (sensor responsivity)."""
        return float(self._io(lambda: self.inst.wavelength))

    @wavelength_nm.setter
    def wavelength_nm(self, value: float) -> None:
        value = float(value)
        lo, hi = self.wavelength_range_nm
        if not (math.isfinite(value) and lo <= value <= hi):
            raise LimitError(
                f"power meter wavelength {value!r} nm outside the {self.sensor} sensor's range "
                f"[{lo:g}, {hi:g}] nm"
            )
        if not self.inst.wavelength_settable:
            raise LimitError(f"the {self.sensor} sensor does not allow setting the wavelength")
        self._io(lambda: setattr(self.inst, "wavelength", value))
        errors = self.errors()
        if errors:
            raise PowerMeterError(f"setting the wavelength to {value:g} nm: {errors}")

    def read_power_W(self) -> float:
        return float(self._io(lambda: self.inst.power))

    def zero(self) -> None:
        """Dark zeroing (block the beam first)."""
        self._io(self.inst.zero)

    def snapshot(self) -> dict[str, Any]:
        return {
            "power_W": self.read_power_W(),
            "wavelength_nm": self.wavelength_nm,
            "sensor": self.sensor,
        }


# ----------------------------------------------------------------------------- registry
def _build(setup, spec, sim: SimConnector | None = None) -> PM100PowerMeter:
    """The power meter role; ``sim(visa_settings)`` returns the twin's session factory.
    Without ``wavelength_nm`` the meter keeps the wavelength it is set to."""
    settings = setup.settings["powermeter"]
    wavelength = settings.get("wavelength_nm")
    if sim is not None:
        reopen = sim(visa_settings())
        inst = ThorlabsPM100(reopen())
    else:
        inst = open_real(ThorlabsPM100, spec.address, **visa_settings())
        reopen = reopen_real(spec.address, **visa_settings())
    try:
        return PM100PowerMeter(inst, wavelength, reopen=reopen)
    except Exception:
        inst.adapter.close()
        raise


DRIVERS = [
    DriverInfo(
        "powermeter",
        "ThorlabsPM100",
        ("sim", "real"),
        (),
        _build,
        "Thorlabs PM100USB/PM100D power meter (SCPI over VISA; sim: wire-level twin)",
        settings=(LimitRule("wavelength_nm", "value", 200.0, 20000.0, required=False, unit="nm"),),
    )
]
