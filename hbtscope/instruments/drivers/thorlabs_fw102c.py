"""Detection-path polariser on a Thorlabs FW102C / FW212C motorised filter wheel, serial.

Why a filter wheel: Farrow et al.'s analyser is a rotating polariser. A motorised rotation mount
(Thorlabs K10CR1) speaks the binary APT protocol through Kinesis; the FW102C has a short,
published text protocol we can simulate at the wire level, and a wheel of linear polarisers
mounted at known angles (one slot left empty for "no analyser") gives the same measurement at
a fixed set of angles. A requested angle goes to the slot with the nearest polariser angle
(modulo 180°, a linear polariser being symmetric); if none is within ``angle_tolerance_deg``
the request is refused with :class:`~hbtscope.instruments.base.LimitError` naming the
angles available, and the wheel does not move.

Protocol (sources): Thorlabs FW102C manual command list as implemented by pylablib
(``pylablib.devices.Thorlabs.serial.FW``: ``pos?``, ``pos=n``, ``pcount?``, ``pcount=n``,
``speed?``/``speed=0|1``, ``trig?``/``trig=0|1``, ``sensors?``/``sensors=0|1``, ``save``, ``*idn?``;
115200 Bd, commands end with CR, the echo is read back, replies end with the ``>`` prompt,
errors contain ``CMD_``) and by Delmic's odemis driver ``tlfw.py`` (a command's reply is the
echo + CR, the value + CR if any, then ``"> "``; errors ``Command error CMD_NOT_DEFINED`` and
``Command error CMD_ARG_INVALID``; ``*idn?`` → ``THORLABS FW102C/FW212C Filter Wheel version
1.04``; ``pos=n`` answers only when the wheel has arrived, about 1 s per slot at high speed,
2 s at low speed).

VISA framing: ``read_termination=">"``, so each command is one read; the space after the prompt
starts the next reply and is stripped with the echo by :meth:`ThorlabsFW102C.read`. The VISA
timeout (15 s) covers a half-turn of a 12-slot wheel at low speed.
"""

from __future__ import annotations

import re
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers._common import VisaRole, open_real, reopen_real
from hbtscope.instruments.optics import Polariser
from hbtscope.instruments.registry import DriverInfo, LimitRule, SimConnector


class FilterWheelError(RuntimeError):
    """The wheel answered ``Command error ...``."""


def visa_settings() -> dict[str, Any]:
    from pyvisa import constants

    return {
        "asrl": {
            "baud_rate": 115200,
            "data_bits": 8,
            "parity": constants.Parity.none,
            "stop_bits": constants.StopBits.one,
            "flow_control": constants.ControlFlow.none,
        },
        "read_termination": ">",
        "write_termination": "\r",
        "timeout": 15000,
    }


class ThorlabsFW102C(Instrument):
    """Thorlabs FW102C (6 slots) / FW212C (12 slots) motorised filter wheel."""

    def __init__(self, adapter, name: str = "Thorlabs FW102C", **kwargs):
        for key, value in visa_settings().items():
            kwargs.setdefault(key, value)
        super().__init__(adapter, name, includeSCPI=False, **kwargs)
        self._last_command: str | None = None

    def write(self, command: str, **kwargs) -> None:
        self._last_command = command
        super().write(command, **kwargs)

    def read(self, **kwargs) -> str:
        """One reply up to the prompt, without the echo; raises on ``Command error``."""
        raw = super().read(**kwargs)
        lines = [line.strip() for line in re.split(r"[\r\n]+", raw) if line.strip()]
        last = self._last_command
        if lines and last is not None and lines[0] == last.strip():
            lines = lines[1:]
        text = "\n".join(lines)
        m = re.search(r"Command error\s*(\S+)", text) or re.search(r"(CMD_\w+)", text)
        if m:
            raise FilterWheelError(f"{self.name} rejected {last!r}: {m.group(1)}")
        return text

    def check_set_errors(self) -> list:
        self.read()
        return []

    def check_errors(self) -> list:
        return []

    id = Instrument.measurement("*idn?", "Get the identification string.", cast=str, maxsplit=0)
    position = Instrument.control(
        "pos?",
        "pos=%d",
        "Control the wheel position (1 … position_count); setting returns once it arrived.",
        validator=strict_discrete_set,
        values=range(1, 13),
        dynamic=True,
        cast=int,
        check_set_errors=True,
    )
    position_count = Instrument.control(
        "pcount?",
        "pcount=%d",
        "Control the number of positions (6 for the FW102C, 12 for the FW212C).",
        validator=strict_discrete_set,
        values=(6, 12),
        cast=int,
        check_set_errors=True,
    )
    speed_mode = Instrument.control(
        "speed?",
        "speed=%d",
        "Control the speed mode ('slow' or 'high').",
        validator=strict_discrete_set,
        values={"slow": 0, "high": 1},
        map_values=True,
        cast=int,
        check_set_errors=True,
    )
    trigger_mode = Instrument.control(
        "trig?",
        "trig=%d",
        "Control the trigger port ('input' or 'output').",
        validator=strict_discrete_set,
        values={"input": 0, "output": 1},
        map_values=True,
        cast=int,
        check_set_errors=True,
    )
    sensors_on = Instrument.control(
        "sensors?",
        "sensors=%d",
        "Control whether the position sensors stay on when idle (off: no stray light).",
        validator=strict_discrete_set,
        values={False: 0, True: 1},
        map_values=True,
        cast=int,
        check_set_errors=True,
    )

    def save(self) -> None:
        """Store the current settings as power-up defaults."""
        self.write("save")
        self.check_set_errors()


def slot_angles(
    position_count: int, open_slot: int, first_angle_deg: float, angle_step_deg: float
) -> dict[int, float]:
    """Polariser angle (0–180°) of every slot but the open one, in slot order."""
    slots = [s for s in range(1, position_count + 1) if s != open_slot]
    return {s: (first_angle_deg + k * angle_step_deg) % 180.0 for k, s in enumerate(slots)}


def _axial_distance(a: float, b: float) -> float:
    """Distance between two polariser angles (mod 180°)."""
    d = (a - b) % 180.0
    return min(d, 180.0 - d)


class FW102CPolariser(VisaRole, Polariser):
    """The :class:`Polariser` interface on a wheel of polarisers (``open_slot``: empty)."""

    def __init__(
        self,
        inst: ThorlabsFW102C,
        angles: dict[int, float],
        open_slot: int | None = None,
        tolerance_deg: float = 1.0,
        reopen=None,
    ):
        self._bind(inst, reopen)
        self.angles = dict(angles)
        self.open_slot = open_slot or None
        self.tolerance_deg = float(tolerance_deg)
        self.position_count = int(self._io(lambda: inst.position_count))
        used = set(self.angles) | ({self.open_slot} if self.open_slot else set())
        if not self.angles or max(used) > self.position_count:
            raise ValueError(
                f"slots {sorted(used)} do not fit the wheel's {self.position_count} positions"
            )
        inst.position_values = range(1, self.position_count + 1)
        pos = self._position()
        self._angle = self.angles.get(pos, next(iter(self.angles.values())))

    def _position(self) -> int:
        return int(self._io(lambda: self.inst.position))

    def _move(self, slot: int, current: int | None = None) -> None:
        if slot != (self._position() if current is None else current):
            self._io(lambda: setattr(self.inst, "position", slot))

    def slot_for(self, angle_deg: float) -> int:
        """The slot holding a polariser at ``angle_deg`` (± tolerance), else LimitError."""
        slot = min(self.angles, key=lambda s: _axial_distance(self.angles[s], angle_deg))
        if _axial_distance(self.angles[slot], angle_deg) > self.tolerance_deg:
            have = ", ".join(f"{a:g}" for a in sorted(self.angles.values()))
            raise LimitError(
                f"polariser angle {angle_deg:g}° is not in the wheel: it holds {have}° "
                f"(± {self.tolerance_deg:g}°, modulo 180°)"
            )
        return slot

    # ---- Polariser
    def _read_angle(self) -> float:
        return self.angles.get(self._position(), self._angle)

    def _write_angle(self, value: float) -> None:
        slot = self.slot_for(value)
        self._angle = self.angles[slot]
        pos = self._position()
        if pos != self.open_slot:
            self._move(slot, pos)

    def _read_in_path(self) -> bool:
        return self._position() != self.open_slot

    def _write_in_path(self, value: bool) -> None:
        if value:
            self._move(self.slot_for(self._angle))
        elif self.open_slot is None:
            raise LimitError("the wheel has no empty slot (open_slot: 0): the analyser stays in")
        else:
            self._move(self.open_slot)

    def snapshot(self) -> dict[str, Any]:
        pos = self._position()
        return {
            "angle_deg": self.angles.get(pos, self._angle),
            "in_path": pos != self.open_slot,
            "slot": pos,
            "slot_angles_deg": {str(s): a for s, a in self.angles.items()},
        }


# ----------------------------------------------------------------------------- registry
def _build(setup, spec, sim: SimConnector | None = None) -> FW102CPolariser:
    """The polariser role; ``sim(visa_settings, slot_angles=, position_count=)`` returns the
    session factory of a twin wheel holding the polarisers where the setup file says."""
    settings = setup.settings["polariser"]
    count = int(settings.get("position_count", 6))
    if count not in (6, 12):
        raise ValueError(f"position_count must be 6 (FW102C) or 12 (FW212C), got {count}")
    open_slot = int(settings.get("open_slot", 1))
    if open_slot > count:
        raise ValueError(f"open_slot {open_slot} > position_count {count}")
    step = settings.get("angle_step_deg", 180.0 / (count - (1 if open_slot else 0)))
    angles = slot_angles(count, open_slot, settings.get("first_angle_deg", 0.0), step)
    tolerance = settings.get("angle_tolerance_deg", 1.0)
    if sim is not None:
        reopen = sim(visa_settings(), slot_angles=angles, position_count=count)
        inst = ThorlabsFW102C(reopen())
    else:
        inst = open_real(ThorlabsFW102C, spec.address, **visa_settings())
        reopen = reopen_real(spec.address, **visa_settings())
    try:
        role = FW102CPolariser(inst, angles, open_slot, tolerance, reopen=reopen)
        if role.position_count != count:
            raise ValueError(f"the wheel reports pcount {role.position_count}, setup says {count}")
        return role
    except Exception:
        inst.adapter.close()
        raise


DRIVERS = [
    DriverInfo(
        "polariser",
        "ThorlabsFW102C",
        ("sim", "real"),
        (),
        _build,
        "linear polarisers at fixed angles in a Thorlabs FW102C/FW212C filter wheel (serial)",
        settings=(
            LimitRule("position_count", "value", 6, 12, required=False),
            LimitRule("open_slot", "value", 0, 12, required=False),
            LimitRule("first_angle_deg", "value", -180.0, 180.0, required=False, unit="°"),
            LimitRule("angle_step_deg", "value", 0.1, 180.0, required=False, unit="°"),
            LimitRule("angle_tolerance_deg", "value", 0.0, 90.0, required=False, unit="°"),
        ),
    )
]
