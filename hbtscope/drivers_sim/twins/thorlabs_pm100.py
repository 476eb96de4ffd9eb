"""Wire-level twin of a Thorlabs PM100USB power meter with an S120C photodiode sensor (SCPI).

Command set: see :mod:`hbtscope.instruments.drivers.thorlabs_pm100` (sources cited there).
SCPI rules implemented: keywords match in their short (``SENS``) or long (``SENSE``) form, any
case; ``[optional]`` nodes may be left out; several commands may share a line separated by
``;`` (their answers joined by ``;``). A command that cannot be executed is *not answered*: it
pushes ``-113,"Undefined header"``, ``-104,"Data type error"``, ``-222,"Data out of range"`` or
``-224,"Illegal parameter value"`` onto the error queue (read by ``SYST:ERR?``, 30 entries),
exactly as the meter does; a query the meter does not know therefore times out.

Physics: the sensor sits at the sample plane and sees the simulated laser (``world.laser``:
power if on, else 0). A silicon photodiode's responsivity grows about linearly with the
wavelength (constant quantum efficiency), so a reading corrected for ``λ_set`` while the light
is at ``λ_laser`` is off by ``λ_laser / λ_set`` — set the wavelength right. Each sample has 0.5 %
noise (averaged over ``SENS:AVER:COUN`` samples of 0.3 ms each, spent on the setup clock), plus
a dark offset of 0.2 nW that ``SENS:CORR:COLL:ZERO`` removes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import numpy as np

from hbtscope.drivers_sim.wire import SimAdapter, WireTwin, sessions

SENSOR = {
    "name": "S120C",
    "serial": "SIM120C01",
    "cal_date": "01-Jan-2025",
    "type": 1,  # photodiode
    "subtype": 18,
    "flags": 1 + 32 + 256,  # power sensor, wavelength settable, temperature sensor
    "wavelength_nm": (400.0, 1100.0),
}


def _kw(spec: str) -> tuple[str, str]:
    """SCPI keyword ``SENSe`` → (short ``sens``, long ``sense``)."""
    return "".join(c for c in spec if c.isupper() or c.isdigit() or c == "*").lower(), spec.lower()


def _pattern(text: str) -> list[tuple[tuple[str, str], bool]]:
    """``[SENSe]:CORRection:WAVelength`` → [(keyword, optional), ...]."""
    return [
        (_kw(name), bracket == "[") for bracket, name in re.findall(r"(\[?):?([A-Za-z*]+)\]?", text)
    ]


def _matches(tokens: list[str], pattern) -> bool:
    if not pattern:
        return not tokens
    (short, long), optional = pattern[0]
    if tokens and tokens[0] in (short, long) and _matches(tokens[1:], pattern[1:]):
        return True
    return optional and _matches(tokens, pattern[1:])


class _Error(Exception):
    def __init__(self, code: int, text: str):
        self.code, self.text = code, text


class PM100Twin(WireTwin):
    """A PM100USB + S120C at the sample plane of the simulated microscope."""

    role = "powermeter"
    latency_s = 0.002
    sample_s = 3e-4
    noise_rel = 0.005
    dark_W = 2e-10

    def __init__(self, world, serial: str = "P2000001", firmware: str = "1.7.0"):
        super().__init__(world)
        self.idn = f"Thorlabs,PM100USB,{serial},{firmware}"
        self.errors: list[tuple[int, str]] = []
        self.received: list[str] = []
        self._n = 0
        self._reset()
        self._table = [
            ("*IDN?", True, lambda a: self.idn),
            ("*RST", False, lambda a: self._reset()),
            ("*CLS", False, lambda a: self.errors.clear()),
            ("*OPC?", True, lambda a: "1"),
            ("SYSTem:ERRor[:NEXT]?", True, lambda a: self._next_error()),
            ("SYSTem:SENSor:IDN?", True, lambda a: self._sensor_idn()),
            ("[SENSe]:CORRection:WAVelength?", True, self._get_wavelength),
            ("[SENSe]:CORRection:WAVelength", False, self._set_wavelength),
            ("[SENSe]:AVERage[:COUNt]?", True, lambda a: f"{self.averages}"),
            ("[SENSe]:AVERage[:COUNt]", False, self._set_averages),
            ("[SENSe]:POWer[:DC]:RANGe:AUTO?", True, lambda a: "1" if self.auto_range else "0"),
            ("[SENSe]:POWer[:DC]:RANGe:AUTO", False, self._set_auto_range),
            ("[SENSe]:CORRection:COLLect:ZERO[:INITiate]", False, lambda a: self._zero()),
            ("MEASure[:SCALar]:POWer?", True, lambda a: f"{self._reading():.6E}"),
        ]
        self._compiled = [(_pattern(h.rstrip("?")), q, fn) for h, q, fn in self._table]

    def _reset(self) -> None:
        self.wavelength_nm = 635.0
        self.averages = 1
        self.auto_range = True
        self.zero_offset_W = 0.0

    # ---- the wire
    def handle(self, command: str) -> list[str]:
        line = command.strip()
        self.received.append(line)
        answers = []
        for part in filter(None, (p.strip() for p in line.split(";"))):
            try:
                answer = self._execute(part)
            except _Error as err:
                self._push(err.code, err.text)
                continue
            if answer is not None:
                answers.append(answer)
        return [";".join(answers)] if answers else []

    def _execute(self, part: str):
        header, _, arg = part.partition(" ")
        query = header.endswith("?")
        tokens = [t for t in header.rstrip("?").lower().split(":") if t]
        for pattern, is_query, fn in self._compiled:
            if is_query == query and _matches(tokens, pattern):
                result = fn(arg.strip())
                return result if is_query else None
        raise _Error(-113, "Undefined header")

    def _push(self, code: int, text: str) -> None:
        if len(self.errors) < 30:
            self.errors.append((code, text))

    def _next_error(self) -> str:
        if not self.errors:
            return '0,"No error"'
        code, text = self.errors.pop(0)
        return f'{code},"{text}"'

    def _sensor_idn(self) -> str:
        s = SENSOR
        return f"{s['name']},{s['serial']},{s['cal_date']},{s['type']},{s['subtype']},{s['flags']}"

    # ---- settings
    @staticmethod
    def _number(arg: str) -> float:
        try:
            value = float(arg)
        except ValueError:
            raise _Error(-104, "Data type error") from None
        if not math.isfinite(value):
            raise _Error(-104, "Data type error")
        return value

    def _get_wavelength(self, arg: str) -> str:
        lo, hi = SENSOR["wavelength_nm"]
        which = arg.strip().upper()
        if which in ("MIN", "MINIMUM"):
            return f"{lo:.6E}"
        if which in ("MAX", "MAXIMUM"):
            return f"{hi:.6E}"
        if which:
            raise _Error(-224, "Illegal parameter value")
        return f"{self.wavelength_nm:.6E}"

    def _set_wavelength(self, arg: str) -> None:
        value = self._number(arg)
        lo, hi = SENSOR["wavelength_nm"]
        if not lo <= value <= hi:
            raise _Error(-222, "Data out of range")
        self.wavelength_nm = value

    def _set_averages(self, arg: str) -> None:
        value = self._number(arg)
        if value != int(value) or not 1 <= value <= 10000:
            raise _Error(-222, "Data out of range")
        self.averages = int(value)

    def _set_auto_range(self, arg: str) -> None:
        value = {"1": True, "ON": True, "0": False, "OFF": False}.get(arg.strip().upper())
        if value is None:
            raise _Error(-224, "Illegal parameter value")
        self.auto_range = value

    # ---- the world
    def true_power_W(self) -> float:
        laser = self.world.laser
        return float(laser.power_W) if laser.on else 0.0

    def _raw(self) -> float:
        self.world.clock.sleep(self.averages * self.sample_s)
        self._n += 1
        rng = np.random.default_rng([self.world.seed, 0x9100, self._n])
        laser = self.world.laser
        responsivity = laser.wavelength_nm / self.wavelength_nm
        noise = self.noise_rel / math.sqrt(self.averages) * rng.standard_normal()
        return self.true_power_W() * responsivity * (1.0 + noise) + self.dark_W

    def _reading(self) -> float:
        return self._raw() - self.zero_offset_W

    def _zero(self) -> None:
        self.zero_offset_W = self._raw()


def connect(world, visa_settings: dict) -> Callable[[], SimAdapter]:
    """The ``ThorlabsPM100`` driver's connection on ``backend: sim``: sessions on a PM100USB
    twin with an S120C head, its wavelength correction left at the simulated laser's
    wavelength (as a lab leaves its meter; the setup file's ``wavelength_nm`` overrides it)."""
    twin = PM100Twin(world)
    twin.wavelength_nm = float(world.laser.wavelength_nm)
    return sessions(twin, visa_settings)


#: driver name -> connector (hbtscope.drivers_sim.registry)
TWINS = {"ThorlabsPM100": connect}
