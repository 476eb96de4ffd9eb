"""Simulated ``seabreeze.spectrometers``: a fake of python-seabreeze's module on the world.

:func:`make_module` returns an object that stands where ``import seabreeze.spectrometers as
sb`` stands, with the parts of its API the Ocean driver uses, as in python-seabreeze
(``ap--/python-seabreeze``, ``src/seabreeze/spectrometers.py``): ``list_devices()``,
``SeaBreezeError``, ``Spectrometer.from_first_available()`` (``SeaBreezeError("No unopened
device found.")``), ``Spectrometer.from_serial_number(serial)`` (``"Device already opened."``,
``"No device attached with serial number '...'."``), ``integration_time_micros(µs)``
(out-of-range times raise ``SeaBreezeError``), ``integration_time_micros_limits``,
``wavelengths()``, ``intensities(correct_dark_counts=False, correct_nonlinearity=False)``,
``max_intensity``, ``pixels``, ``model``, ``serial_number``, ``open()``/``close()``.

The simulated device is a Flame-S-like CCD spectrometer (2048 pixels, 1 ms..65 s, 16 bit
with a dark offset). Its spectra are those of :class:`~hbtscope.drivers_sim.devices.
SimSpectrometer`: each ``intensities()`` call integrates for the integration time on the
setup clock and renders ``world.spectrum_components`` (the emitters at the focus, when the flip
mirror sends the light to the spectrometer) with
:func:`~hbtscope.drivers_sim.render.render_spectrum`. Dark-count correction subtracts the mean
of the first electric-dark pixels, as seabreeze does; there are no nonlinearity coefficients
(asking for that correction raises ``SeaBreezeError``, as on such devices).

Faults from the setup file (role ``spectrometer``) raise ``SeaBreezeError`` (a USB transfer
failing).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from hbtscope.drivers_sim.render import render_spectrum


class SeaBreezeError(Exception):
    """Stands for ``seabreeze.spectrometers.SeaBreezeError``."""

    def __init__(self, message: str = "", error_code: int | None = None):
        super().__init__(message)
        self.error_code = error_code


class SimSeaBreezeDevice:
    """Stands for a ``SeaBreezeDevice`` (what ``list_devices()`` returns)."""

    def __init__(
        self,
        world,
        *,
        serial_number: str = "FLMS14213",
        model: str = "FLAMES",
        range_nm: tuple[float, float] = (350.0, 850.0),
        n_pixels: int = 2048,
        efficiency: float = 0.3,
        limits_us: tuple[int, int] = (1000, 65_000_000),
        dark_pixels: tuple[int, ...] = tuple(range(6, 18)),
    ):
        self.world = world
        self.serial_number = serial_number
        self.model = model
        self.wavelengths = np.linspace(range_nm[0], range_nm[1], int(n_pixels))
        self.efficiency = float(efficiency)
        self.limits_us = (int(limits_us[0]), int(limits_us[1]))
        self.dark_pixels = list(dark_pixels)
        self.is_open = False
        self.integration_us = 100_000
        self.n_read = 0

    def __repr__(self) -> str:
        return f"<SeaBreezeDevice {self.model}:{self.serial_number}>"

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def read_spectrum(self) -> np.ndarray:
        """One integration on the world (as ``SimSpectrometer.acquire``)."""
        faults = getattr(self.world, "faults", None)
        kind = faults.decide("spectrometer") if faults is not None else None
        if kind is not None:
            self.world.clock.sleep(1.0 if kind == "timeout" else 0.0)
            raise SeaBreezeError(f"Data transfer error ({kind})", error_code=10)
        clock = self.world.clock
        t = self.integration_us * 1e-6
        a = clock.now_ps()
        clock.sleep(t)
        b = clock.now_ps()
        comps = [
            (r * self.efficiency, cew, fwhm, tail)
            for r, cew, fwhm, tail in self.world.spectrum_components(a, b)
        ]
        self.n_read += 1
        rng = np.random.default_rng([self.world.seed, 0x5EA, a & 0xFFFFFFFF, a >> 32])
        return render_spectrum(rng, wavelengths_nm=self.wavelengths, components=comps, exposure_s=t)


def make_module(world, **device_kwargs):
    """A ``seabreeze.spectrometers``-like namespace with one simulated device on ``world``."""
    devices = [SimSeaBreezeDevice(world, **device_kwargs)]

    def list_devices() -> list[SimSeaBreezeDevice]:
        return list(devices)

    class Spectrometer:
        """``seabreeze.spectrometers.Spectrometer`` on a simulated device."""

        def __init__(self, device: SimSeaBreezeDevice):
            if not isinstance(device, SimSeaBreezeDevice):
                raise TypeError("device has to be a `SeaBreezeDevice`")
            self._dev = device
            self.open()

        @classmethod
        def from_first_available(cls):
            for dev in list_devices():
                if not dev.is_open:
                    return cls(dev)
            raise SeaBreezeError("No unopened device found.")

        @classmethod
        def from_serial_number(cls, serial=None):
            if serial is None:
                return cls.from_first_available()
            for dev in list_devices():
                if dev.serial_number == str(serial):
                    if dev.is_open:
                        raise SeaBreezeError("Device already opened.")
                    return cls(dev)
            raise SeaBreezeError(f"No device attached with serial number '{serial}'.")

        def _check_open(self) -> None:
            if not self._dev.is_open:
                raise SeaBreezeError("Device not open.")

        def wavelengths(self) -> np.ndarray:
            return self._dev.wavelengths.copy()

        def intensities(self, correct_dark_counts=False, correct_nonlinearity=False):
            self._check_open()
            if correct_nonlinearity:
                raise SeaBreezeError("This device does not support nonlinearity correction.")
            out = self._dev.read_spectrum()
            if correct_dark_counts:
                out = out - np.mean(out[self._dev.dark_pixels])
            return out

        def spectrum(self, correct_dark_counts=False, correct_nonlinearity=False):
            return np.vstack(
                (self.wavelengths(), self.intensities(correct_dark_counts, correct_nonlinearity))
            )

        def integration_time_micros(self, integration_time_micros: int) -> None:
            self._check_open()
            lo, hi = self._dev.limits_us
            t = int(integration_time_micros)
            if not lo <= t <= hi:
                raise SeaBreezeError("[Fix] Specified integration time is out of range.")
            self._dev.integration_us = t

        @property
        def integration_time_micros_limits(self) -> tuple[int, int]:
            return self._dev.limits_us

        @property
        def max_intensity(self) -> float:
            return 65535.0

        @property
        def pixels(self) -> int:
            return int(self._dev.wavelengths.size)

        @property
        def serial_number(self) -> str:
            return self._dev.serial_number

        @property
        def model(self) -> str:
            return self._dev.model

        def open(self) -> None:
            self._dev.open()

        def close(self) -> None:
            self._dev.close()

        def __repr__(self) -> str:
            return f"<Spectrometer {self.model}:{self.serial_number}>"

    return SimpleNamespace(
        Spectrometer=Spectrometer,
        SeaBreezeError=SeaBreezeError,
        list_devices=list_devices,
        devices=devices,
        __name__="hbtscope.drivers_sim.twins.seabreeze_twin.spectrometers",
    )


#: driver name -> connector (hbtscope.drivers_sim.registry): the stand-in of
#: ``seabreeze.spectrometers`` with one simulated spectrometer
TWINS = {"OceanSeaBreeze": make_module}
