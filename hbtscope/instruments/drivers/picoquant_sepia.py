"""PicoQuant Sepia II (PDL 828) picosecond diode laser driver through ``Sepia2_Lib``.

The seeds excite with PicoQuant LDH heads (P-C-405B, 405 nm, <100 ps) on a PicoQuant driver.
This driver runs a head on an **SLM 828** laser-driver module in a Sepia II (PDL 828) frame,
through PicoQuant's ``Sepia2_Lib`` DLL and a thin :mod:`ctypes` binding (:class:`Sepia2Lib`)
loaded lazily (:func:`load_sepia2_library`), so hbtscope installs and imports without it.

Which driver suits which lab
----------------------------
* **This driver** — labs with a Sepia II frame (SCM 828 controller + SLM 828 driver + an LDH
  head, e.g. the seeds' P-C-405B): true picosecond pulses at 80/40/20/10/5/2.5 MHz from the
  SLM's own oscillator, the right source for TCSPC lifetimes and pulsed g2 (peak areas,
  g2(0) of single emitters). Its "intensity" is a per-mille setting of the head's drive, not
  a power: the setup file calibrates it (``full_intensity_pulse_energy_J`` at the sample,
  after any ND filters, and the lasing ``threshold_permille``), best measured with the power
  meter. A stand-alone **PDL 800-D** is not run through ``Sepia2_Lib``; a lab with one sets
  rate and intensity on its front panel (or needs another driver).
* :mod:`hbtscope.instruments.drivers.toptica_ibeam` — labs with a Toptica iBeam smart: a CW
  diode laser (serial, pymeasure's ``IBeamSmart``) that can be digitally modulated by an
  external TTL generator into ns pulses. Right for CW excitation (saturation curves, CW g2
  as in Baronnier et al., spectra, wide-field work); not a picosecond source, so lifetimes below a
  few ns and pulsed-g2 peak analysis are not possible with it.

SDK calls (all return ``int``: 0 or a negative ``SEPIA2_ERR_*`` code, decoded with
``SEPIA2_LIB_DecodeError``): ``SEPIA2_LIB_GetVersion``, ``SEPIA2_USB_OpenGetSerNumAndClose``,
``SEPIA2_USB_OpenDevice``, ``SEPIA2_USB_CloseDevice``, ``SEPIA2_FWR_GetModuleMap``,
``SEPIA2_FWR_GetLastError``, ``SEPIA2_FWR_GetModuleInfoByMapIdx``, ``SEPIA2_FWR_FreeModuleMap``,
``SEPIA2_COM_GetModuleType``, ``SEPIA2_COM_GetSerialNumber``, ``SEPIA2_SCM_GetLaserLocked``,
``SEPIA2_SCM_SetLaserSoftLock``, ``SEPIA2_SLM_GetIntensityFineStep`` /
``SEPIA2_SLM_SetIntensityFineStep`` (per mille, 0..1000), ``SEPIA2_SLM_GetPulseParameters`` /
``SEPIA2_SLM_SetPulseParameters`` (frequency index 0..5 = 80, 40, 20, 10, 5, 2.5 MHz; 6/7 =
external trigger rising/falling; pulse mode 1 = pulsed, 0 = CW).

Sources: PicoQuant's ``PQLaserDrv`` distribution (GitHub ``PicoQuant/PQLaserDrv``):
``Demos/MSVCPP/Shared_MSVCPP/Sepia2_Lib.h`` (function signatures), ``Sepia2_Def.h``
(``SEPIA2OBJECT_SCM = 0x40``, ``SEPIA2OBJECT_SLM = 0x70``, ``SEPIA2_SLM_FREQ_*``,
``SEPIA2_MAX_USB_DEVICES = 8``, string lengths), ``Sepia2_ErrorCodes.h`` (error codes) and the
``SetSomeDataByMSVCPP.cpp`` demo (open -> module map -> first module of a type by
``COM_GetModuleType``), and ``Demos/Python3/Sepia2_Lib.py`` (ctypes loading).

Hard limit: ``max_power_W`` (the :class:`~hbtscope.instruments.laser.ExcitationLaser` interface);
an intensity is rounded so the calibrated power never exceeds it, and a repetition-rate
change keeps the average power (refusing one that would need more than 1000 per mille).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
from typing import Any

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.laser import ExcitationLaser
from hbtscope.instruments.registry import DriverInfo, LimitRule, SimConnector

# --- constants from Sepia2_Def.h / Sepia2_ErrorCodes.h
SEPIA2_MAX_USB_DEVICES = 8
SEPIA2_NO_RESTART = 0
SEPIA2_PRIMARY_MODULE = 1
SEPIA2_LASER_LOCKED = 1
SEPIA2_LASER_UNLOCKED = 0
SEPIA2_SLM_PULSE_MODE = 1
SEPIA2OBJECT_SCM = 0x40
SEPIA2OBJECT_SLM = 0x70
SEPIA2_ERRSTRING_LEN = 64
SEPIA2_FW_ERRCOND_LEN = 55
SEPIA2_SERIALNUMBER_LEN = 13
SEPIA2_PRODUCTMODEL_LEN = 33
SEPIA2_VERSIONINFO_LEN = 11
#: SLM 828 internal oscillator: frequency index -> Hz (SEPIA2_SLM_FREQ_80MHZ ... _2_5MHZ)
SLM_FREQUENCIES_HZ = {0: 80.0e6, 1: 40.0e6, 2: 20.0e6, 3: 10.0e6, 4: 5.0e6, 5: 2.5e6}
SLM_TRIGGER_MODES = {6: "external trigger, rising edge", 7: "external trigger, falling edge"}
MAX_PERMILLE = 1000

_INSTALL_HINT = (
    "install PicoQuant's PQLaserDrv package (it brings Sepia2_Lib64.dll / Sepia2_Lib.dll and "
    "the USB driver), or give the library path; there is no pip package for it"
)


class Sepia2Error(RuntimeError):
    """A ``Sepia2_Lib`` function returned an error code (``code``, ``function``)."""

    def __init__(self, function: str, code: int, text: str):
        super().__init__(f"{function} failed with {code} ({text})")
        self.function = function
        self.code = code


# name -> (restype, argtypes) of every function the binding uses, as in Sepia2_Lib.h
_c_int, _c_uchar, _c_ushort, _c_char_p = (
    ctypes.c_int,
    ctypes.c_ubyte,
    ctypes.c_ushort,
    ctypes.c_char_p,
)
_PINT, _PUCHAR, _PUSHORT = (
    ctypes.POINTER(ctypes.c_int),
    ctypes.POINTER(ctypes.c_ubyte),
    ctypes.POINTER(ctypes.c_ushort),
)
PROTOTYPES: dict[str, tuple] = {
    "SEPIA2_LIB_DecodeError": (_c_int, _c_char_p),
    "SEPIA2_LIB_GetVersion": (_c_char_p,),
    "SEPIA2_USB_OpenDevice": (_c_int, _c_char_p, _c_char_p),
    "SEPIA2_USB_OpenGetSerNumAndClose": (_c_int, _c_char_p, _c_char_p),
    "SEPIA2_USB_CloseDevice": (_c_int,),
    "SEPIA2_FWR_GetModuleMap": (_c_int, _c_int, _PINT),
    "SEPIA2_FWR_GetLastError": (_c_int, _PINT, _PINT, _PINT, _PINT, _c_char_p),
    "SEPIA2_FWR_GetModuleInfoByMapIdx": (_c_int, _c_int, _PINT, _PUCHAR, _PUCHAR, _PUCHAR),
    "SEPIA2_FWR_FreeModuleMap": (_c_int,),
    "SEPIA2_COM_GetModuleType": (_c_int, _c_int, _c_int, _PINT),
    "SEPIA2_COM_GetSerialNumber": (_c_int, _c_int, _c_int, _c_char_p),
    "SEPIA2_SCM_GetLaserLocked": (_c_int, _c_int, _PUCHAR),
    "SEPIA2_SCM_SetLaserSoftLock": (_c_int, _c_int, _c_uchar),
    "SEPIA2_SLM_GetIntensityFineStep": (_c_int, _c_int, _PUSHORT),
    "SEPIA2_SLM_SetIntensityFineStep": (_c_int, _c_int, _c_ushort),
    "SEPIA2_SLM_GetPulseParameters": (_c_int, _c_int, _PINT, _PUCHAR, _PINT),
    "SEPIA2_SLM_SetPulseParameters": (_c_int, _c_int, _c_int, _c_uchar),
}


def _text(buf) -> str:
    return buf.value.decode("ascii", errors="replace").strip()


class Sepia2Lib:
    """Thin binding of ``Sepia2_Lib``: one method per C function, out-parameters returned.

    ``dll`` is the loaded library (``ctypes.WinDLL``), the simulated twin
    (:class:`hbtscope.drivers_sim.twins.sepia2_twin.SimSepia2DLL`) or a mock: anything with
    the ``SEPIA2_*`` functions. In-parameters are passed as plain ``int``; out-parameters as
    ``ctypes.byref`` of ``c_int``/``c_ubyte``/``c_ushort`` and ``create_string_buffer``.
    """

    def __init__(self, dll: Any):
        self.dll = dll

    def _call(self, name: str, *args) -> None:
        code = int(getattr(self.dll, name)(*args))
        if code != 0:
            raise Sepia2Error(name, code, self.decode_error(code))

    def decode_error(self, code: int) -> str:
        buf = ctypes.create_string_buffer(SEPIA2_ERRSTRING_LEN + 1)
        if int(self.dll.SEPIA2_LIB_DecodeError(int(code), buf)) != 0:
            return "unknown error code"
        return _text(buf)

    # -- library / USB
    def lib_get_version(self) -> str:
        buf = ctypes.create_string_buffer(SEPIA2_VERSIONINFO_LEN + 1)
        self._call("SEPIA2_LIB_GetVersion", buf)
        return _text(buf)

    def usb_probe(self, dev: int) -> tuple[str, str] | None:
        """``SEPIA2_USB_OpenGetSerNumAndClose``: (model, serial), or None if no device there
        (the code is not decoded: probing empty indices is expected to fail)."""
        model = ctypes.create_string_buffer(SEPIA2_PRODUCTMODEL_LEN + 1)
        serial = ctypes.create_string_buffer(SEPIA2_SERIALNUMBER_LEN + 1)
        if int(self.dll.SEPIA2_USB_OpenGetSerNumAndClose(dev, model, serial)) != 0:
            return None
        return _text(model), _text(serial)

    def usb_open_device(self, dev: int) -> tuple[str, str]:
        model = ctypes.create_string_buffer(SEPIA2_PRODUCTMODEL_LEN + 1)
        serial = ctypes.create_string_buffer(SEPIA2_SERIALNUMBER_LEN + 1)
        self._call("SEPIA2_USB_OpenDevice", dev, model, serial)
        return _text(model), _text(serial)

    def usb_close_device(self, dev: int) -> None:
        self._call("SEPIA2_USB_CloseDevice", dev)

    # -- firmware
    def fwr_get_module_map(self, dev: int, restart: int = SEPIA2_NO_RESTART) -> int:
        count = ctypes.c_int()
        self._call("SEPIA2_FWR_GetModuleMap", dev, restart, ctypes.byref(count))
        return count.value

    def fwr_get_last_error(self, dev: int) -> tuple[int, int, int, int, str]:
        code, phase, location, slot = (ctypes.c_int() for _ in range(4))
        cond = ctypes.create_string_buffer(SEPIA2_FW_ERRCOND_LEN + 1)
        self._call(
            "SEPIA2_FWR_GetLastError",
            dev,
            ctypes.byref(code),
            ctypes.byref(phase),
            ctypes.byref(location),
            ctypes.byref(slot),
            cond,
        )
        return code.value, phase.value, location.value, slot.value, _text(cond)

    def fwr_get_module_info_by_map_idx(self, dev: int, map_idx: int) -> tuple[int, bool, bool]:
        """(slot id, is primary, is backplane) of one module-map entry."""
        slot = ctypes.c_int()
        primary, backplane, uptime = ctypes.c_ubyte(), ctypes.c_ubyte(), ctypes.c_ubyte()
        self._call(
            "SEPIA2_FWR_GetModuleInfoByMapIdx",
            dev,
            map_idx,
            ctypes.byref(slot),
            ctypes.byref(primary),
            ctypes.byref(backplane),
            ctypes.byref(uptime),
        )
        return slot.value, bool(primary.value), bool(backplane.value)

    def fwr_free_module_map(self, dev: int) -> None:
        self._call("SEPIA2_FWR_FreeModuleMap", dev)

    # -- common module functions
    def com_get_module_type(self, dev: int, slot: int) -> int:
        kind = ctypes.c_int()
        self._call("SEPIA2_COM_GetModuleType", dev, slot, SEPIA2_PRIMARY_MODULE, ctypes.byref(kind))
        return kind.value

    def com_get_serial_number(self, dev: int, slot: int) -> str:
        buf = ctypes.create_string_buffer(SEPIA2_SERIALNUMBER_LEN + 1)
        self._call("SEPIA2_COM_GetSerialNumber", dev, slot, SEPIA2_PRIMARY_MODULE, buf)
        return _text(buf)

    # -- SCM 828: laser locks
    def scm_get_laser_locked(self, dev: int, slot: int) -> bool:
        locked = ctypes.c_ubyte()
        self._call("SEPIA2_SCM_GetLaserLocked", dev, slot, ctypes.byref(locked))
        return bool(locked.value)

    def scm_set_laser_soft_lock(self, dev: int, slot: int, locked: bool) -> None:
        value = SEPIA2_LASER_LOCKED if locked else SEPIA2_LASER_UNLOCKED
        self._call("SEPIA2_SCM_SetLaserSoftLock", dev, slot, value)

    # -- SLM 828: intensity and pulse parameters
    def slm_get_intensity_fine_step(self, dev: int, slot: int) -> int:
        value = ctypes.c_ushort()
        self._call("SEPIA2_SLM_GetIntensityFineStep", dev, slot, ctypes.byref(value))
        return value.value

    def slm_set_intensity_fine_step(self, dev: int, slot: int, permille: int) -> None:
        self._call("SEPIA2_SLM_SetIntensityFineStep", dev, slot, int(permille))

    def slm_get_pulse_parameters(self, dev: int, slot: int) -> tuple[int, bool, int]:
        """(frequency/trigger index, pulsed, head type)."""
        freq, pulsed, head = ctypes.c_int(), ctypes.c_ubyte(), ctypes.c_int()
        self._call(
            "SEPIA2_SLM_GetPulseParameters",
            dev,
            slot,
            ctypes.byref(freq),
            ctypes.byref(pulsed),
            ctypes.byref(head),
        )
        return freq.value, bool(pulsed.value), head.value

    def slm_set_pulse_parameters(self, dev: int, slot: int, freq_idx: int, pulsed: bool) -> None:
        self._call("SEPIA2_SLM_SetPulseParameters", dev, slot, int(freq_idx), int(bool(pulsed)))


def load_sepia2_library(path: str | None = None) -> Sepia2Lib:
    """Load ``Sepia2_Lib`` now (not at import): ``path``, else the x64 then x86 DLL name."""
    if sys.platform == "win32":
        loader = ctypes.WinDLL  # __stdcall, as Sepia2_Lib.h declares
        names = [path] if path else ["Sepia2_Lib64.dll", "Sepia2_Lib.dll"]
    else:
        loader = ctypes.CDLL
        found = ctypes.util.find_library("Sepia2_Lib")
        names = [n for n in (path, found) if n]
    errors = []
    for name in names:
        try:
            dll = loader(name)
        except OSError as exc:
            errors.append(f"{name}: {exc}")
            continue
        for fname, argtypes in PROTOTYPES.items():
            fn = getattr(dll, fname)
            fn.restype = ctypes.c_int
            fn.argtypes = list(argtypes)
        return Sepia2Lib(dll)
    tried = "; ".join(errors) or f"no Sepia2_Lib found on {sys.platform}"
    raise RuntimeError(f"PicoQuant Sepia2_Lib could not be loaded ({tried}): {_INSTALL_HINT}")


def _device_selector(address: str) -> int | str:
    """'' or 'sim://...' -> '' (first Sepia II found); digits -> USB index; else a serial."""
    address = (address or "").strip()
    if address.startswith("sim://"):
        return ""
    if address.isdigit():
        return int(address)
    return address


class SepiaPulsedLaser(ExcitationLaser):
    """An LDH head on an SLM 828 in a Sepia II, as an :class:`ExcitationLaser`.

    Power model (calibrated in the setup file): average power at the sample
    ``P = E_full * f * max(0, I - I_th) / (1000 - I_th)`` for intensity ``I`` per mille,
    repetition rate ``f``, pulse energy ``E_full`` at full intensity and lasing threshold
    ``I_th`` (pulse energy of a gain-switched diode is nearly independent of ``f``).
    """

    def __init__(
        self,
        lib: Sepia2Lib,
        max_power_W: float,
        *,
        full_intensity_pulse_energy_J: float,
        threshold_permille: float = 0.0,
        device: int | str = "",
        slm_slot: int | None = None,
    ):
        super().__init__(
            max_power_W, (min(SLM_FREQUENCIES_HZ.values()), max(SLM_FREQUENCIES_HZ.values()))
        )
        if not (math.isfinite(full_intensity_pulse_energy_J) and full_intensity_pulse_energy_J > 0):
            raise LimitError("full_intensity_pulse_energy_J must be a positive number")
        if not 0 <= threshold_permille < MAX_PERMILLE:
            raise LimitError(
                f"threshold_permille must be in [0, {MAX_PERMILLE}), got {threshold_permille}"
            )
        self.lib = lib
        self.pulse_energy_J = float(full_intensity_pulse_energy_J)
        self.threshold_permille = float(threshold_permille)
        self.dev: int | None = None
        self.model, self.serial = self._open(device)
        try:
            self.scm_slot, self.slm_slot = self._find_modules(slm_slot)
            self.slm_serial = lib.com_get_serial_number(self.dev, self.slm_slot)
        except Exception:
            self.close()
            raise

    # ---------------------------------------------------------------- connection
    def _open(self, device: int | str) -> tuple[str, str]:
        lib = self.lib
        if isinstance(device, int):
            model, serial = lib.usb_open_device(device)
            self.dev = device
            return model, serial
        seen = []
        for idx in range(SEPIA2_MAX_USB_DEVICES):
            found = lib.usb_probe(idx)
            if found is None:
                continue
            model, serial = found
            seen.append(f"{idx}: {model} {serial}")
            if device in ("", serial):
                model, serial = lib.usb_open_device(idx)
                self.dev = idx
                return model, serial
        found = ", ".join(seen) or "none"
        what = f"with serial number {device!r}" if device else "at all"
        raise RuntimeError(
            f"no PicoQuant Sepia II found {what} on USB (indices 0-{SEPIA2_MAX_USB_DEVICES - 1}"
            f" tried; found: {found}); check the USB cable, the PQLaserDrv driver and that no "
            "other program has the device open"
        )

    def _find_modules(self, want_slm: int | None) -> tuple[int, int]:
        lib, dev = self.lib, self.dev
        count = lib.fwr_get_module_map(dev, SEPIA2_NO_RESTART)
        code, phase, location, slot, cond = lib.fwr_get_last_error(dev)
        if code != 0:
            raise Sepia2Error(
                "SEPIA2_FWR_GetLastError",
                code,
                f"firmware error at start-up: {lib.decode_error(code)} (phase {phase}, "
                f"location {location}, slot {slot}, {cond!r})",
            )
        scm = slm = None
        for map_idx in range(count):
            slot_id, primary, backplane = lib.fwr_get_module_info_by_map_idx(dev, map_idx)
            if not primary or backplane:
                continue
            kind = lib.com_get_module_type(dev, slot_id)
            if kind == SEPIA2OBJECT_SCM and scm is None:
                scm = slot_id
            elif kind == SEPIA2OBJECT_SLM and slm is None and want_slm in (None, slot_id):
                slm = slot_id
        if scm is None:
            raise RuntimeError("the Sepia II has no SCM 828 controller module in its module map")
        if slm is None:
            where = "" if want_slm is None else f" in slot {want_slm}"
            raise RuntimeError(f"the Sepia II has no SLM 828 laser driver module{where}")
        return scm, slm

    def close(self) -> None:
        """Free the module map and close the USB connection (idempotent)."""
        if self.dev is None:
            return
        dev, self.dev = self.dev, None
        try:
            self.lib.fwr_free_module_map(dev)
        finally:
            self.lib.usb_close_device(dev)

    def _device(self) -> int:
        if self.dev is None:
            raise RuntimeError("the Sepia II connection is closed")
        return self.dev

    # ---------------------------------------------------------------- power model
    def power_for(self, permille: int, rep_rate_Hz: float) -> float:
        """Calibrated average power (W) at ``permille`` intensity and ``rep_rate_Hz``."""
        th = self.threshold_permille
        frac = max(0.0, permille - th) / (MAX_PERMILLE - th)
        return self.pulse_energy_J * rep_rate_Hz * frac

    def permille_for(self, power_W: float, rep_rate_Hz: float) -> int:
        """Intensity (per mille) whose calibrated power is closest to ``power_W`` without
        exceeding ``max_power_W``; LimitError if full intensity cannot reach it."""
        if power_W <= 0:
            return 0
        th = self.threshold_permille
        exact = th + power_W / (self.pulse_energy_J * rep_rate_Hz) * (MAX_PERMILLE - th)
        if exact > MAX_PERMILLE + 1e-9:
            raise LimitError(
                f"{power_W} W needs {exact:.0f} per mille at {rep_rate_Hz / 1e6:g} MHz; full "
                f"intensity gives {self.power_for(MAX_PERMILLE, rep_rate_Hz)} W "
                "(full_intensity_pulse_energy_J in the setup file)"
            )
        value = min(round(exact), MAX_PERMILLE)
        if self.power_for(value, rep_rate_Hz) > self.max_power_W:
            value = min(math.floor(exact), MAX_PERMILLE)
        return int(value)

    # ---------------------------------------------------------------- ExcitationLaser
    def _read_power_W(self) -> float:
        dev = self._device()
        permille = self.lib.slm_get_intensity_fine_step(dev, self.slm_slot)
        rate = self._read_rep_rate_Hz()
        return 0.0 if math.isnan(rate) else self.power_for(permille, rate)

    def _write_power_W(self, value: float) -> None:
        dev = self._device()
        rate = self._read_rep_rate_Hz()
        if math.isnan(rate):
            if value > 0:
                raise LimitError("the SLM runs on an external trigger: its power is not calibrated")
            permille = 0
        else:
            permille = self.permille_for(value, rate)
        self.lib.slm_set_intensity_fine_step(dev, self.slm_slot, permille)

    def _read_rep_rate_Hz(self) -> float:
        freq_idx, _pulsed, _head = self.lib.slm_get_pulse_parameters(self._device(), self.slm_slot)
        return SLM_FREQUENCIES_HZ.get(freq_idx, math.nan)

    def _write_rep_rate_Hz(self, value: float) -> None:
        idx = next((i for i, f in SLM_FREQUENCIES_HZ.items() if abs(f - value) <= 1e-9 * f), None)
        if idx is None:
            allowed = ", ".join(f"{f / 1e6:g}" for f in SLM_FREQUENCIES_HZ.values())
            raise LimitError(f"the SLM 828 runs at {allowed} MHz only, not {value / 1e6:g} MHz")
        dev = self._device()
        old_rate = self._read_rep_rate_Hz()
        power = self._read_power_W()
        permille = self.permille_for(power, value)  # keeps the average power; may refuse
        if not math.isnan(old_rate) and value > old_rate:
            # faster pulses first lower the intensity, so the power never overshoots
            self.lib.slm_set_intensity_fine_step(dev, self.slm_slot, permille)
            self.lib.slm_set_pulse_parameters(dev, self.slm_slot, idx, True)
        else:
            self.lib.slm_set_pulse_parameters(dev, self.slm_slot, idx, True)
            self.lib.slm_set_intensity_fine_step(dev, self.slm_slot, permille)

    def _read_emission(self) -> bool:
        return not self.lib.scm_get_laser_locked(self._device(), self.scm_slot)

    def _write_emission(self, on: bool) -> None:
        dev = self._device()
        self.lib.scm_set_laser_soft_lock(dev, self.scm_slot, not on)
        if on and self.lib.scm_get_laser_locked(dev, self.scm_slot):
            # lock again: turning the key later must not start emission unasked
            self.lib.scm_set_laser_soft_lock(dev, self.scm_slot, True)
            raise RuntimeError(
                "the Sepia II stays locked after releasing the soft lock: turn the key switch "
                "on and check the interlock"
            )

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap.update(
            intensity_permille=self.lib.slm_get_intensity_fine_step(self._device(), self.slm_slot),
            model=self.model,
            serial=self.serial,
            slm_slot=self.slm_slot,
            slm_serial=self.slm_serial,
        )
        return snap


# -------------------------------------------------------------------- catalogue
def _build(setup, spec, sim: SimConnector | None = None) -> SepiaPulsedLaser:
    """The laser role; ``sim(pulse_energy_J=, threshold_permille=)`` returns the stand-in of
    ``Sepia2_Lib.dll``."""
    limits, settings = setup.limits["laser"], setup.settings["laser"]
    energy = settings["full_intensity_pulse_energy_J"]
    threshold = settings.get("threshold_permille", 0.0)
    if sim is not None:
        lib = Sepia2Lib(sim(pulse_energy_J=energy, threshold_permille=threshold))
    else:
        lib = load_sepia2_library()
    slot = settings.get("slm_slot")
    laser = SepiaPulsedLaser(
        lib,
        limits["max_power_W"],
        full_intensity_pulse_energy_J=energy,
        threshold_permille=threshold,
        device=_device_selector(spec.address),
        slm_slot=None if slot is None else int(slot),
    )
    try:
        if "rep_rate_Hz" in settings:
            laser.rep_rate_Hz = settings["rep_rate_Hz"]
    except Exception:
        laser.close()
        raise
    return laser


DRIVERS = [
    DriverInfo(
        "laser",
        "PicoQuantSepia2",
        ("real", "sim"),
        (LimitRule("max_power_W", "value", 1e-12, 0.1, unit="W"),),
        _build,
        "PicoQuant Sepia II (PDL 828) + SLM 828 + LDH head (seeds: P-C-405B), via Sepia2_Lib",
        settings=(
            LimitRule("full_intensity_pulse_energy_J", "value", 1e-18, 1e-8, unit="J"),
            LimitRule("threshold_permille", "value", 0.0, 999.0, required=False),
            LimitRule("rep_rate_Hz", "value", 2.5e6, 80.0e6, required=False, unit="Hz"),
            LimitRule("slm_slot", "value", 0, 999, required=False),
        ),
    )
]
