"""Ocean Insight (Ocean Optics) spectrometer through python-seabreeze.

Uses ``seabreeze.spectrometers`` (PyPI ``seabreeze``; docs python-seabreeze.readthedocs.io,
source ``ap--/python-seabreeze`` ``src/seabreeze/spectrometers.py``), imported lazily:
``Spectrometer.from_first_available()`` / ``Spectrometer.from_serial_number(serial)`` (both
raise ``SeaBreezeError`` when no unopened device matches), ``integration_time_micros_limits``
(µs, the device's hard-coded range: the driver's limits), ``integration_time_micros(µs)``,
``wavelengths()`` (nm, cached by seabreeze on open), ``intensities(correct_dark_counts,
correct_nonlinearity)`` (raw ADC counts, float), ``model``, ``serial_number``, ``pixels``,
``max_intensity`` and ``close()``.

The spectrometer integrates continuously; ``intensities()`` returns the next complete
spectrum. After a change of integration time the first spectrum may mix both times, so the
driver reads and discards one spectrum then. The simulated twin is the fake module
:mod:`hbtscope.drivers_sim.twins.seabreeze_twin` (same classes, calls and errors), whose
spectra come from the simulated world; the same driver class runs on both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.imaging import Spectrometer
from hbtscope.instruments.registry import DriverInfo, LimitRule, SimConnector

INSTALL_HINT = (
    "pip install seabreeze  (then run `seabreeze_os_setup` once for the USB rules/drivers)"
)


def load_seabreeze():
    """``seabreeze.spectrometers``, imported now (not at hbtscope import)."""
    try:
        import seabreeze.spectrometers as sb
    except ImportError as exc:
        raise RuntimeError(
            f"the Ocean Insight SDK is not installed ({exc}): {INSTALL_HINT}"
        ) from None
    return sb


class OceanSpectrometer(Spectrometer):
    """``sb`` is ``seabreeze.spectrometers`` (or its twin); ``serial`` None: the first one."""

    def __init__(
        self,
        sb,
        serial: str | None = None,
        *,
        correct_dark_counts: bool = False,
        correct_nonlinearity: bool = False,
    ):
        self.sb = sb
        try:
            if serial:
                self._spec = sb.Spectrometer.from_serial_number(serial)
            else:
                self._spec = sb.Spectrometer.from_first_available()
        except sb.SeaBreezeError as exc:
            try:
                found = [f"{d.model} {d.serial_number}" for d in sb.list_devices()]
            except Exception:  # listing is only for the message
                found = []
            what = f"with serial number {serial!r}" if serial else "(none unopened)"
            raise RuntimeError(
                f"no Ocean Insight spectrometer {what}: {exc}; connected: "
                f"{', '.join(found) or 'none'}"
            ) from None
        try:
            lo_us, hi_us = self._spec.integration_time_micros_limits
            super().__init__((lo_us * 1e-6, hi_us * 1e-6))
            self._integration_s = min(max(1.0, lo_us * 1e-6), hi_us * 1e-6)
            self._wl = np.asarray(self._spec.wavelengths(), dtype=float)
            self.model = str(self._spec.model)
            self.serial = str(self._spec.serial_number)
        except Exception:
            self._spec.close()
            raise
        self.correct_dark_counts = bool(correct_dark_counts)
        self.correct_nonlinearity = bool(correct_nonlinearity)
        self._set_us: int | None = None
        self._closed = False

    @property
    def wavelengths_nm(self) -> np.ndarray:
        return self._wl

    def _read(self) -> np.ndarray:
        return np.asarray(
            self._spec.intensities(
                correct_dark_counts=self.correct_dark_counts,
                correct_nonlinearity=self.correct_nonlinearity,
            ),
            dtype=np.float64,
        )

    def acquire(self) -> np.ndarray:
        if self._closed:
            raise RuntimeError("the spectrometer has been closed")
        us = int(round(self.integration_s * 1e6))
        lo_us, hi_us = self._spec.integration_time_micros_limits
        if not lo_us <= us <= hi_us:  # the interface checked seconds; this is the rounding
            raise LimitError(f"integration time {us} µs outside [{lo_us}, {hi_us}] µs")
        if us != self._set_us:
            self._spec.integration_time_micros(us)
            self._set_us = us
            self._read()  # the spectrum in flight may mix the old and the new time
        return self._read()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap.update(
            model=self.model,
            serial=self.serial,
            correct_dark_counts=self.correct_dark_counts,
            correct_nonlinearity=self.correct_nonlinearity,
        )
        return snap

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._spec.close()


# -------------------------------------------------------------------- catalogue
def _serial(address: str) -> str | None:
    address = (address or "").strip()
    return None if not address or address.startswith("sim://") else address


def _build(setup, spec, sim: SimConnector | None = None) -> OceanSpectrometer:
    """The spectrometer role; ``sim(n_pixels=, efficiency=)`` returns the stand-in of
    ``seabreeze.spectrometers``."""
    settings = setup.settings["spectrometer"]
    if sim is not None:
        kwargs = {}
        if "n_pixels" in settings:
            kwargs["n_pixels"] = int(settings["n_pixels"])
        if "efficiency" in settings:
            kwargs["efficiency"] = settings["efficiency"]
        sb = sim(**kwargs)
    else:
        sb = load_seabreeze()
    return OceanSpectrometer(
        sb,
        _serial(spec.address),
        correct_dark_counts=bool(settings.get("correct_dark_counts", 0)),
        correct_nonlinearity=bool(settings.get("correct_nonlinearity", 0)),
    )


DRIVERS = [
    DriverInfo(
        "spectrometer",
        "OceanSeaBreeze",
        ("real", "sim"),
        (),
        _build,
        "Ocean Insight spectrometer via python-seabreeze (address: serial number, empty = "
        "first); n_pixels and efficiency shape the simulated device only",
        settings=(
            LimitRule("correct_dark_counts", "value", 0, 1, required=False),
            LimitRule("correct_nonlinearity", "value", 0, 1, required=False),
            LimitRule("n_pixels", "value", 16, 8192, required=False),
            LimitRule("efficiency", "value", 1e-6, 1.0, required=False),
        ),
    )
]
