"""Thorlabs MDT693B (3 axes) and MDT694B (1 axis) open-loop piezo controllers, serial.

Protocol, as published and as observed (sources):

- Thorlabs MDT693B/MDT694B manual, command table (as transcribed in the ``mdt69x`` package by
  C. Arena, PyPI ``mdt69x``, and in the ``Thorpezo`` module of several lab repositories):
  ``id?``, ``serial?``, ``friendly?``, ``echo?``/``echo=n``, ``vlimit?`` (the front-panel limit
  switch: 75, 100 or 150 V), ``xvoltage?``/``xvoltage=v`` (and ``y``/``z`` on the MDT693B),
  ``xmin?``/``xmin=``, ``xmax?``/``xmax=`` (per-axis output limits), ``xyzvoltage?`` and
  ``xyzvoltage=x,y,z`` and ``allvoltage=v`` (MDT693B only), ``restore``, ``cm?``.
- Serial settings: 115200 Bd, 8 data bits, no parity, 1 stop bit, no flow control (manual;
  pylablib ``Thorlabs.serial.ThorlabsSerialInterface`` defaults ``("COM1", 115200)``).
- Framing: a command ends with CR. With echo on (the factory default) the controller first
  echoes the command and a CR; data lines end with CR; every reply ends with the prompt ``>``
  (no CR after it). Voltages read back in brackets with one decimal, ``[  24.8]``; ``vlimit?``
  as ``[ 100]``. Observed replies: ``xvoltage=24.680`` → echo + ``>``; ``xvoltage?`` →
  ``[  24.8]`` (the read-back is the measured output, not the set point).
- Errors: an unknown command answers ``CMD_NOT_DEFINED``, a bad argument ``CMD_ARG_INVALID``
  (Thorlabs serial-device family: the ``mdt69x`` port probe expects ``CMD_NOT_DEFINED>``;
  InstrumentKit ``thorlabs_utils.check_cmd`` treats both strings as failures). What the
  controller does with a voltage above ``xmax`` is not in the sources we found; our twin
  answers ``CMD_ARG_INVALID`` and changes nothing — this driver never sends one anyway.

VISA framing used here: ``read_termination=">"`` (the prompt), so each command is exactly one
read: ``[echo CR] [data CR ...]``. :meth:`ThorlabsMDT694B.read` removes the echo (so it works
with echo on or off, e.g. after a power cycle) and raises :class:`MDTCommandError` on an error
reply. Set commands read their prompt (``check_set_errors``), so an error is never missed and
replies never pile up.

Safety layers, outermost first: the :class:`~hbtscope.instruments.stage.Stage` interface checks
the travel in µm (``x_um``, ``y_um``, ``z_um`` in the setup file); :class:`MDT69xStage` checks the
voltage against ``max_voltage_V`` (setup file) and the controller's own ``vlimit?`` and refuses,
at setup time, a travel that would need more; the pymeasure properties validate against the
same range (``strict_range``). An out-of-range request raises before anything is written.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pymeasure.instruments import Instrument
from pymeasure.instruments.validators import strict_discrete_set, strict_range

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers._common import (
    VisaRole,
    open_real,
    reopen_real,
)
from hbtscope.instruments.registry import DriverInfo, LimitRule, SimConnector
from hbtscope.instruments.stage import AXES, Stage

ERROR_REPLIES = ("CMD_NOT_DEFINED", "CMD_ARG_INVALID")
#: hardware output range of the MDT69xB (limit switch at 150 V)
HARDWARE_MAX_V = 150.0


class MDTCommandError(RuntimeError):
    """The controller answered CMD_NOT_DEFINED or CMD_ARG_INVALID."""


def visa_settings() -> dict[str, Any]:
    """pyvisa session settings of the MDT69xB serial port."""
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
        "timeout": 2000,
    }


def _unbracket(reply: str) -> str:
    """``[  24.8]`` → ``24.8``; ``[ 10.0, 20.0, 30.0]`` → ``10.0, 20.0, 30.0``."""
    return reply.replace("[", "").replace("]", "").replace("*", "").strip()


def _three_voltages(value, values):
    """Validator of an (x, y, z) voltage triple: each within ``values`` (one ``(min, max)``
    for all, or one per axis)."""
    xyz = tuple(value)
    if len(xyz) != 3:
        raise ValueError(f"need three voltages (x, y, z), got {value!r}")
    ranges = values if isinstance(values[0], tuple | list) else (values,) * 3
    return tuple(strict_range(float(v), r) for v, r in zip(xyz, ranges, strict=True))


def _voltage(axis: str):
    return Instrument.control(
        f"{axis}voltage?",
        f"{axis}voltage=%.3f",
        f"Control the {axis} output voltage (V); reads back the measured output (0.1 V).",
        validator=strict_range,
        values=(0.0, HARDWARE_MAX_V),
        dynamic=True,
        preprocess_reply=_unbracket,
        check_set_errors=True,
    )


def _limit(axis: str, which: str):
    return Instrument.control(
        f"{axis}{which}?",
        f"{axis}{which}=%.1f",
        f"Control the {which}imum output voltage of the {axis} axis (V).",
        validator=strict_range,
        values=(0.0, HARDWARE_MAX_V),
        dynamic=True,
        preprocess_reply=_unbracket,
        check_set_errors=True,
    )


class ThorlabsMDT694B(Instrument):
    """Thorlabs MDT694B single-axis open-loop piezo controller (the ``x`` output)."""

    model = "MDT694B"
    channels: tuple[str, ...] = ("x",)

    def __init__(self, adapter, name: str | None = None, **kwargs):
        for key, value in visa_settings().items():
            kwargs.setdefault(key, value)
        super().__init__(adapter, name or f"Thorlabs {self.model}", includeSCPI=False, **kwargs)
        self._last_command: str | None = None

    # ---- framing: echo, prompt and error replies
    def write(self, command: str, **kwargs) -> None:
        self._last_command = command
        super().write(command, **kwargs)

    def read(self, **kwargs) -> str:
        """One reply up to the prompt, without the echo; raises on an error reply."""
        raw = super().read(**kwargs)
        lines = [line.strip() for line in re.split(r"[\r\n]+", raw) if line.strip()]
        last = self._last_command
        if lines and last is not None and lines[0].lower() == last.strip().lower():
            lines = lines[1:]
        text = "\n".join(lines)
        for code in ERROR_REPLIES:
            if code in text:
                raise MDTCommandError(f"{self.name} rejected {last!r}: {code}")
        return text

    def check_set_errors(self) -> list:
        """Read the prompt that closes a set command (raises on an error reply)."""
        self.read()
        return []

    def check_errors(self) -> list:
        return []

    # ---- identification and settings
    id = Instrument.measurement(
        "id?", "Get the identification (model, firmware, voltage range, ...).", cast=str, maxsplit=0
    )
    serial_number = Instrument.measurement(
        "serial?", "Get the serial number.", cast=str, maxsplit=0
    )
    voltage_limit = Instrument.measurement(
        "vlimit?",
        "Get the output voltage limit set by the front-panel switch (75, 100 or 150 V).",
        preprocess_reply=_unbracket,
    )
    echo = Instrument.control(
        "echo?",
        "echo=%d",
        "Control whether the controller echoes commands (True after power-up).",
        validator=strict_discrete_set,
        values={False: 0, True: 1},
        map_values=True,
        cast=str,
        preprocess_reply=_unbracket,
        get_process=lambda r: 1 if "on" in str(r).lower() else 0,
        check_set_errors=True,
    )

    x_voltage = _voltage("x")
    x_min = _limit("x", "min")
    x_max = _limit("x", "max")

    def restore(self) -> None:
        """Restore the factory settings (echo on, limits)."""
        self.write("restore")
        self.check_set_errors()


class ThorlabsMDT693B(ThorlabsMDT694B):
    """Thorlabs MDT693B three-axis open-loop piezo controller."""

    model = "MDT693B"
    channels = ("x", "y", "z")

    y_voltage = _voltage("y")
    z_voltage = _voltage("z")
    y_min = _limit("y", "min")
    y_max = _limit("y", "max")
    z_min = _limit("z", "min")
    z_max = _limit("z", "max")

    xyz_voltage = Instrument.control(
        "xyzvoltage?",
        "xyzvoltage=%.3f,%.3f,%.3f",
        "Control the x, y and z output voltages together (V), in one command.",
        validator=_three_voltages,
        values=(0.0, HARDWARE_MAX_V),
        dynamic=True,
        preprocess_reply=_unbracket,
        check_set_errors=True,
    )
    all_voltage = Instrument.setting(
        "allvoltage=%.3f",
        "Set all three outputs to the same voltage (V).",
        validator=strict_range,
        values=(0.0, HARDWARE_MAX_V),
        dynamic=True,
        check_set_errors=True,
    )


class MDT69xStage(VisaRole, Stage):
    """The :class:`Stage` interface on an MDT69xB: µm ↔ V with ``um_per_V`` and offsets.

    ``channel_of`` maps stage axes to controller outputs: ``{"x": "x", "y": "y", "z": "z"}``
    for an MDT693B, ``{"z": "x"}`` for an MDT694B driving the focus; a stage axis with no
    output stays at its ``offset_um`` and refuses to move.

    Position reports the last set point (open loop: no sensor). The controller's read-back
    (0.1 V resolution) is :meth:`measured_voltages_V`; it seeds the set points at start.

    Each driven output may only take the voltages of its axis's travel (rounded inwards to the
    1 mV the driver sends), and never more than ``max_voltage_V`` nor the controller's limit
    switch; the pymeasure instrument's validators are narrowed to the same ranges, so even a
    procedure reaching past the stage to ``stage.inst`` cannot leave the travel.
    """

    def __init__(
        self,
        inst: ThorlabsMDT694B,
        travel_um: dict[str, tuple[float, float]],
        *,
        um_per_V: dict[str, float],
        offset_um: dict[str, float],
        max_voltage_V: float,
        channel_of: dict[str, str] | None = None,
        reopen=None,
        voltage_limit_switch_V: float | None = None,
    ):
        Stage.__init__(self, travel_um)
        self._bind(inst, reopen)
        self.channel_of = dict(channel_of or {a: a for a in inst.channels})
        self.um_per_V = {a: float(um_per_V[a]) for a in self.channel_of}
        self.offset_um = {a: float(offset_um.get(a, 0.0)) for a in AXES}
        if not (math.isfinite(max_voltage_V) and 0 < max_voltage_V <= HARDWARE_MAX_V):
            raise ValueError(f"max_voltage_V must be in (0, {HARDWARE_MAX_V}], got {max_voltage_V}")
        self.controller_limit_V = float(self._io(lambda: inst.voltage_limit))
        if voltage_limit_switch_V is not None and self.controller_limit_V != voltage_limit_switch_V:
            raise ValueError(
                f"the {inst.model}'s voltage limit switch is at {self.controller_limit_V:g} V, the "
                f"setup file says voltage_limit_switch_V: {voltage_limit_switch_V:g}"
            )
        self.max_voltage_V = min(float(max_voltage_V), self.controller_limit_V)
        self.voltage_range_V: dict[str, tuple[float, float]] = {}
        for axis, ch in self.channel_of.items():
            lo, hi = self.travel_um.get(axis, (None, None))
            if lo is None:
                raise ValueError(f"stage axis {axis} is driven but has no {axis}_um travel limit")
            v_lo, v_hi = self._volts(axis, lo), self._volts(axis, hi)
            if v_lo < -1e-9 or v_hi > self.max_voltage_V + 1e-9:
                raise ValueError(
                    f"{axis}_um travel [{lo:g}, {hi:g}] µm needs {v_lo:.3f} to {v_hi:.3f} V "
                    f"(um_per_V {self.um_per_V[axis]:g}, {axis}_offset_um "
                    f"{self.offset_um[axis]:g}); allowed 0 to {self.max_voltage_V:g} V "
                    f"(max_voltage_V {max_voltage_V:g}, controller limit "
                    f"{self.controller_limit_V:g} V)"
                )
            self.voltage_range_V[axis] = (
                max(0.0, math.ceil(v_lo * 1000 - 1e-6) / 1000),
                min(self.max_voltage_V, math.floor(v_hi * 1000 + 1e-6) / 1000),
            )
            # the pymeasure validators enforce the same range: a third layer
            setattr(inst, f"{ch}_voltage_values", self.voltage_range_V[axis])
        self._axis_of = {ch: a for a, ch in self.channel_of.items()}
        if len(inst.channels) == 3:
            # outputs no stage axis drives are held at 0 V by the validators
            ranges = tuple(
                self.voltage_range_V[self._axis_of[ch]] if ch in self._axis_of else (0.0, 0.0)
                for ch in inst.channels
            )
            inst.xyz_voltage_values = ranges
            lo, hi = max(r[0] for r in ranges), min(r[1] for r in ranges)
            inst.all_voltage_values = (lo, hi) if lo <= hi else (math.nan, math.nan)
        self._setpoint_V = self.measured_voltages_V()

    # ---- conversions
    def _volts(self, axis: str, um: float) -> float:
        return (um - self.offset_um[axis]) / self.um_per_V[axis]

    def _um(self, axis: str, volts: float) -> float:
        return self.offset_um[axis] + volts * self.um_per_V[axis]

    def measured_voltages_V(self) -> dict[str, float]:
        """The controller's read-back of each driven output (V)."""
        return {
            axis: float(self._io(lambda ch=ch: getattr(self.inst, f"{ch}_voltage")))
            for axis, ch in self.channel_of.items()
        }

    # ---- Stage
    def _read_position_um(self) -> tuple[float, float, float]:
        return tuple(
            self._um(a, self._setpoint_V[a]) if a in self.channel_of else self.offset_um[a]
            for a in AXES
        )

    def _write_position_um(self, xyz) -> None:
        volts: dict[str, float] = {}
        for axis, value in zip(AXES, xyz, strict=True):
            if axis not in self.channel_of:
                if abs(value - self.offset_um[axis]) > 1e-9:
                    raise LimitError(
                        f"stage {axis} is not driven by the {self.inst.model} (it drives "
                        f"{', '.join(self.channel_of)}); {axis} stays at "
                        f"{self.offset_um[axis]:g} µm"
                    )
                continue
            v = self._volts(axis, float(value))
            lo, hi = self.voltage_range_V[axis]
            q = round(v, 3)  # what "%.3f" sends
            if lo - 2e-3 <= q <= hi + 2e-3:  # travel ends: rounding onto the 1 mV grid
                q = min(max(q, lo), hi)
            if not (math.isfinite(q) and lo <= q <= hi):
                raise LimitError(
                    f"stage {axis} = {value!r} µm needs {v:.3f} V, outside {lo:g} to {hi:g} V "
                    f"(its travel, max_voltage_V and the controller limit)"
                )
            volts[axis] = q
        changed = {a: v for a, v in volts.items() if v != self._setpoint_V[a]}
        if not changed:
            return
        if len(self.channel_of) == 3 and len(changed) > 1:
            triple = tuple(volts[self._axis_of[ch]] for ch in self.inst.channels)
            self._io(lambda: setattr(self.inst, "xyz_voltage", triple))
            self._setpoint_V.update(volts)
            return
        for axis, v in changed.items():
            ch = self.channel_of[axis]
            self._io(lambda ch=ch, v=v: setattr(self.inst, f"{ch}_voltage", v))
            self._setpoint_V[axis] = v

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap.update(
            {
                "controller": self.inst.model,
                "voltages_V": dict(self._setpoint_V),
                "max_voltage_V": self.max_voltage_V,
                "controller_limit_V": self.controller_limit_V,
                "um_per_V": dict(self.um_per_V),
            }
        )
        return snap


# ----------------------------------------------------------------------------- registry
def _build(cls: type[ThorlabsMDT694B], channel_of: dict[str, str]):
    def build(setup, spec, sim: SimConnector | None = None) -> MDT69xStage:
        """The stage role; ``sim(visa_settings, model=, voltage_limit_V=, um_per_V=,
        offset_um=, stage_axis=)`` (per controller channel) returns the twin's session
        factory."""
        limits = setup.limits["stage"]
        settings = setup.settings["stage"]
        travel = {a: limits[f"{a}_um"] for a in AXES if f"{a}_um" in limits}
        um_per_V = {a: settings.get(f"{a}_um_per_V", settings["um_per_V"]) for a in AXES}
        offset = {a: settings.get(f"{a}_offset_um", 0.0) for a in AXES}
        switch = settings.get("voltage_limit_switch_V")
        if sim is not None:
            reopen = sim(
                visa_settings(),
                model=cls.model,
                voltage_limit_V=switch if switch is not None else HARDWARE_MAX_V,
                um_per_V={channel_of[a]: um_per_V[a] for a in channel_of},
                offset_um={channel_of[a]: offset[a] for a in channel_of},
                stage_axis={ch: a for a, ch in channel_of.items()},
            )
            inst = cls(reopen())
        else:
            inst = open_real(cls, spec.address, **visa_settings())
            reopen = reopen_real(spec.address, **visa_settings())
        try:
            return MDT69xStage(
                inst,
                travel,
                um_per_V=um_per_V,
                offset_um=offset,
                max_voltage_V=limits["max_voltage_V"],
                channel_of=channel_of,
                reopen=reopen,
                voltage_limit_switch_V=switch,
            )
        except Exception:
            inst.adapter.close()
            raise

    return build


_TRAVEL = {a: LimitRule(f"{a}_um", "range", -500.0, 500.0, unit="µm") for a in AXES}
_MAX_V = LimitRule("max_voltage_V", "value", 1.0, HARDWARE_MAX_V, unit="V")
_CAL = (
    LimitRule("um_per_V", "value", 1e-3, 1e3, unit="µm/V"),
    *(LimitRule(f"{a}_um_per_V", "value", 1e-3, 1e3, required=False, unit="µm/V") for a in AXES),
    *(LimitRule(f"{a}_offset_um", "value", -1e3, 1e3, required=False, unit="µm") for a in AXES),
    LimitRule("voltage_limit_switch_V", "value", 75.0, 150.0, required=False, unit="V"),
)

DRIVERS = [
    DriverInfo(
        "stage",
        "ThorlabsMDT693B",
        ("sim", "real"),
        (_TRAVEL["x"], _TRAVEL["y"], _TRAVEL["z"], _MAX_V),
        _build(ThorlabsMDT693B, {"x": "x", "y": "y", "z": "z"}),
        "Thorlabs MDT693B 3-axis open-loop piezo controller (serial; sim: wire-level twin)",
        settings=_CAL,
    ),
    DriverInfo(
        "stage",
        "ThorlabsMDT694B",
        ("sim", "real"),
        (
            _TRAVEL["z"],
            _MAX_V,
            # x, y are not driven; their ranges (optional) are what the scan clock may use
            LimitRule("x_um", "range", -500.0, 500.0, required=False, unit="µm"),
            LimitRule("y_um", "range", -500.0, 500.0, required=False, unit="µm"),
        ),
        _build(ThorlabsMDT694B, {"z": "x"}),
        "Thorlabs MDT694B 1-axis piezo controller driving the focus (z); x, y fixed",
        settings=_CAL,
    ),
]
