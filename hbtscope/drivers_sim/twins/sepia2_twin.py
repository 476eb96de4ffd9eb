"""Simulated ``Sepia2_Lib``: the C functions the Sepia II driver calls, acting on the world.

:class:`SimSepia2DLL` stands where ``ctypes.WinDLL("Sepia2_Lib64.dll")`` stands: the same
``SEPIA2_*`` function names and C calling convention as ``Sepia2_Lib.h`` (PicoQuant
``PQLaserDrv``): every function returns 0 or a ``SEPIA2_ERR_*`` code, fills its
out-parameters through ``ctypes.byref`` pointers and ``create_string_buffer`` buffers, and
validates its in-parameters as the library does. The simulated frame is a PDL 828 with a
backplane, an SCM 828 controller (slot 100, illustrative) and an SLM 828 laser driver
(slot 200) with an LDH head as its secondary module. The head's true power is
``E_full * f * max(0, I - I_th) / (1000 - I_th)`` (what the driver's calibration assumes).

Faults from the setup file (role ``laser``) make a call return
``SEPIA2_ERR_USB_IOCTRL_FAILED`` (-3210), as a USB failure does.
"""

from __future__ import annotations

import ctypes

SEPIA2_ERR_NO_ERROR = 0
SEPIA2_ERR_USB_IOCTRL_FAILED = -3210
SEPIA2_ERR_USB_DEVICE_NOT_OPEN = -3217
SEPIA2_ERR_LIB_ILLEGAL_DEVICE_INDEX = -9002
SEPIA2_ERR_LIB_USB_DEVICE_OPEN_ERROR = -9003
SEPIA2_ERR_LIB_USB_DEVICE_ALREADY_OPENED = -9005
SEPIA2_ERR_LIB_ILLEGAL_SLOT_NUMBER = -9008
SEPIA2_ERR_LIB_THIS_IS_NO_SCM_828_MODULE = -9010
SEPIA2_ERR_LIB_THIS_IS_NO_SLM_828_MODULE = -9012
SEPIA2_ERR_LIB_NO_MAP_FOUND = -9020
SEPIA2_ERR_LIB_ILLEGAL_PARAMETER_ON_FUNCTION_CALL = -9910
SEPIA2_ERR_LIB_UNKNOWN_ERROR_CODE = -9999

ERROR_TEXT = {
    0: "no error",
    -3210: "USB: IOCTRL failed",
    -3217: "USB: device not open",
    -9002: "LIB: illegal device index",
    -9003: "LIB: USB device open error",
    -9005: "LIB: USB device already opened",
    -9008: "LIB: illegal slot number",
    -9010: "LIB: this is no SCM 828 module",
    -9012: "LIB: this is no SLM 828 module",
    -9020: "LIB: no map found",
    -9910: "LIB: illegal parameter on function call",
    -9999: "LIB: unknown error code",
}

SCM_SLOT, SLM_SLOT = 100, 200
_MODULES = {SCM_SLOT: 0x40, SLM_SLOT: 0x70}  # SEPIA2OBJECT_SCM, SEPIA2OBJECT_SLM
#: module map: (slot, is primary, is backplane)
_MAP = [(SCM_SLOT, 1, 0), (SLM_SLOT, 1, 0), (SLM_SLOT, 0, 0), (0, 1, 1)]
_FREQ_HZ = {0: 80.0e6, 1: 40.0e6, 2: 20.0e6, 3: 10.0e6, 4: 5.0e6, 5: 2.5e6}
_HEADTYPE_LASER = 2


def _put(ptr, value) -> None:
    """Write through a ``ctypes.byref`` pointer (or into a ctypes scalar passed directly)."""
    target = getattr(ptr, "_obj", ptr)
    target.value = value


def _put_str(buf, text: str) -> None:
    raw = text.encode("ascii")[: len(buf) - 1]
    ctypes.memmove(buf, raw + b"\0", len(raw) + 1)


class SimSepia2DLL:
    """One simulated Sepia II on USB index ``usb_index`` (serial ``serial``)."""

    role = "laser"

    def __init__(
        self,
        world,
        *,
        pulse_energy_J: float,
        threshold_permille: float = 0.0,
        serial: str = "1012681",
        usb_index: int = 0,
        version: str = "1.2.64.753",
    ):
        self.world = world
        self.pulse_energy_J = float(pulse_energy_J)
        self.threshold_permille = float(threshold_permille)
        self.serial = serial
        self.usb_index = usb_index
        self.version = version
        self.open = False
        self.map_loaded = False
        self.key_locked = False  # front-panel key switch / interlock
        self.soft_locked = True
        self.freq_idx = 4  # 5 MHz
        self.pulsed = True
        self.intensity = 0
        self._apply()

    # -- the simulated head acting on the world
    def power_W(self) -> float:
        if self.freq_idx not in _FREQ_HZ:
            return 0.0
        th = self.threshold_permille
        frac = max(0.0, self.intensity - th) / (1000.0 - th)
        return self.pulse_energy_J * _FREQ_HZ[self.freq_idx] * frac

    def _apply(self) -> None:
        kwargs = dict(on=not (self.soft_locked or self.key_locked), power_W=self.power_W())
        if self.freq_idx in _FREQ_HZ:
            kwargs["rep_rate_Hz"] = _FREQ_HZ[self.freq_idx]
        self.world.set_laser(cw=not self.pulsed, **kwargs)

    def _fault(self) -> int:
        faults = getattr(self.world, "faults", None)
        kind = faults.decide(self.role) if faults is not None else None
        if kind == "timeout":
            self.world.clock.sleep(1.0)
        return SEPIA2_ERR_USB_IOCTRL_FAILED if kind else SEPIA2_ERR_NO_ERROR

    def _check(self, dev: int, slot: int | None = None, kind: int | None = None) -> int:
        if dev != self.usb_index:
            return SEPIA2_ERR_LIB_ILLEGAL_DEVICE_INDEX
        if not self.open:
            return SEPIA2_ERR_USB_DEVICE_NOT_OPEN
        err = self._fault()
        if err:
            return err
        if slot is not None:
            if not self.map_loaded:
                return SEPIA2_ERR_LIB_NO_MAP_FOUND
            if slot not in _MODULES:
                return SEPIA2_ERR_LIB_ILLEGAL_SLOT_NUMBER
            if kind is not None and _MODULES[slot] != kind:
                return (
                    SEPIA2_ERR_LIB_THIS_IS_NO_SCM_828_MODULE
                    if kind == 0x40
                    else SEPIA2_ERR_LIB_THIS_IS_NO_SLM_828_MODULE
                )
        return SEPIA2_ERR_NO_ERROR

    # ---------------------------------------------------------------- library
    def SEPIA2_LIB_DecodeError(self, code, buf) -> int:  # noqa: N802 - the C names
        if int(code) not in ERROR_TEXT:
            return SEPIA2_ERR_LIB_UNKNOWN_ERROR_CODE
        _put_str(buf, ERROR_TEXT[int(code)])
        return 0

    def SEPIA2_LIB_GetVersion(self, buf) -> int:  # noqa: N802
        _put_str(buf, self.version)
        return 0

    # ---------------------------------------------------------------- USB
    def SEPIA2_USB_OpenGetSerNumAndClose(self, dev, model, serial) -> int:  # noqa: N802
        if not 0 <= dev < 8:
            return SEPIA2_ERR_LIB_ILLEGAL_DEVICE_INDEX
        if dev != self.usb_index:
            return SEPIA2_ERR_LIB_USB_DEVICE_OPEN_ERROR
        _put_str(model, "Sepia II")
        _put_str(serial, self.serial)
        return 0

    def SEPIA2_USB_OpenDevice(self, dev, model, serial) -> int:  # noqa: N802
        if not 0 <= dev < 8:
            return SEPIA2_ERR_LIB_ILLEGAL_DEVICE_INDEX
        if dev != self.usb_index:
            return SEPIA2_ERR_LIB_USB_DEVICE_OPEN_ERROR
        if self.open:
            return SEPIA2_ERR_LIB_USB_DEVICE_ALREADY_OPENED
        self.open = True
        _put_str(model, "Sepia II")
        _put_str(serial, self.serial)
        return 0

    def SEPIA2_USB_CloseDevice(self, dev) -> int:  # noqa: N802
        if dev != self.usb_index:
            return SEPIA2_ERR_LIB_ILLEGAL_DEVICE_INDEX
        if not self.open:
            return SEPIA2_ERR_USB_DEVICE_NOT_OPEN
        self.open = False
        self.map_loaded = False
        return 0

    # ---------------------------------------------------------------- firmware
    def SEPIA2_FWR_GetModuleMap(self, dev, restart, count_ptr) -> int:  # noqa: N802
        err = self._check(dev)
        if err:
            return err
        self.map_loaded = True
        _put(count_ptr, len(_MAP))
        return 0

    def SEPIA2_FWR_GetLastError(self, dev, code, phase, location, slot, cond) -> int:  # noqa: N802
        err = self._check(dev)
        if err:
            return err
        for ptr in (code, phase, location, slot):
            _put(ptr, 0)
        _put_str(cond, "")
        return 0

    def SEPIA2_FWR_GetModuleInfoByMapIdx(  # noqa: N802
        self, dev, map_idx, slot, primary, backplane, uptime
    ) -> int:
        err = self._check(dev)
        if err:
            return err
        if not self.map_loaded:
            return SEPIA2_ERR_LIB_NO_MAP_FOUND
        if not 0 <= map_idx < len(_MAP):
            return SEPIA2_ERR_LIB_ILLEGAL_PARAMETER_ON_FUNCTION_CALL
        s, p, b = _MAP[map_idx]
        _put(slot, s)
        _put(primary, p)
        _put(backplane, b)
        _put(uptime, 1)
        return 0

    def SEPIA2_FWR_FreeModuleMap(self, dev) -> int:  # noqa: N802
        err = self._check(dev)
        if err:
            return err
        self.map_loaded = False
        return 0

    # ---------------------------------------------------------------- common
    def SEPIA2_COM_GetModuleType(self, dev, slot, primary, kind) -> int:  # noqa: N802
        err = self._check(dev, slot)
        if err:
            return err
        _put(kind, _MODULES[slot] if primary else 0x28)  # secondary: SEPIA2OBJECT_LHF
        return 0

    def SEPIA2_COM_GetSerialNumber(self, dev, slot, primary, buf) -> int:  # noqa: N802
        err = self._check(dev, slot)
        if err:
            return err
        _put_str(buf, f"{1020000 + slot + (0 if primary else 1)}")
        return 0

    # ---------------------------------------------------------------- SCM 828
    def SEPIA2_SCM_GetLaserLocked(self, dev, slot, locked) -> int:  # noqa: N802
        err = self._check(dev, slot, 0x40)
        if err:
            return err
        _put(locked, int(self.soft_locked or self.key_locked))
        return 0

    def SEPIA2_SCM_GetLaserSoftLock(self, dev, slot, locked) -> int:  # noqa: N802
        err = self._check(dev, slot, 0x40)
        if err:
            return err
        _put(locked, int(self.soft_locked))
        return 0

    def SEPIA2_SCM_SetLaserSoftLock(self, dev, slot, locked) -> int:  # noqa: N802
        err = self._check(dev, slot, 0x40)
        if err:
            return err
        if int(locked) not in (0, 1):
            return SEPIA2_ERR_LIB_ILLEGAL_PARAMETER_ON_FUNCTION_CALL
        self.soft_locked = bool(locked)
        self._apply()
        return 0

    # ---------------------------------------------------------------- SLM 828
    def SEPIA2_SLM_GetIntensityFineStep(self, dev, slot, value) -> int:  # noqa: N802
        err = self._check(dev, slot, 0x70)
        if err:
            return err
        _put(value, self.intensity)
        return 0

    def SEPIA2_SLM_SetIntensityFineStep(self, dev, slot, value) -> int:  # noqa: N802
        err = self._check(dev, slot, 0x70)
        if err:
            return err
        if not 0 <= int(value) <= 1000:
            return SEPIA2_ERR_LIB_ILLEGAL_PARAMETER_ON_FUNCTION_CALL
        self.intensity = int(value)
        self._apply()
        return 0

    def SEPIA2_SLM_GetPulseParameters(self, dev, slot, freq, pulsed, head) -> int:  # noqa: N802
        err = self._check(dev, slot, 0x70)
        if err:
            return err
        _put(freq, self.freq_idx)
        _put(pulsed, int(self.pulsed))
        _put(head, _HEADTYPE_LASER)
        return 0

    def SEPIA2_SLM_SetPulseParameters(self, dev, slot, freq, pulsed) -> int:  # noqa: N802
        err = self._check(dev, slot, 0x70)
        if err:
            return err
        if not 0 <= int(freq) <= 7 or int(pulsed) not in (0, 1):
            return SEPIA2_ERR_LIB_ILLEGAL_PARAMETER_ON_FUNCTION_CALL
        self.freq_idx = int(freq)
        self.pulsed = bool(pulsed)
        self._apply()
        return 0


def connect(world, *, pulse_energy_J: float, threshold_permille: float = 0.0) -> SimSepia2DLL:
    """The ``PicoQuantSepia2`` driver's connection on ``backend: sim``: the stand-in of
    ``Sepia2_Lib.dll`` with one PDL 828 whose laser head is the simulated laser."""
    return SimSepia2DLL(world, pulse_energy_J=pulse_energy_J, threshold_permille=threshold_permille)


#: driver name -> connector (hbtscope.drivers_sim.registry)
TWINS = {"PicoQuantSepia2": connect}
