"""Wire-level twin of the Thorlabs MDT693B / MDT694B open-loop piezo controller.

Command set, framing and error replies: see
:mod:`hbtscope.instruments.drivers.thorlabs_mdt69x` (sources cited there). One reply is the
text before the prompt ``>``: the echo of the command and a CR while echo is on (the power-up
default), then each data line and a CR. ``CMD_NOT_DEFINED`` answers an unknown command (also
``y``/``z``/``xyz`` commands on the single-axis MDT694B), ``CMD_ARG_INVALID`` a malformed
number or a voltage outside the axis's ``[xmin, xmax]`` (``xmax`` defaults to the limit switch);
a rejected command changes nothing.

Physics: output ``c`` at ``V`` volts puts the stage axis it drives at
``offset_um + V * um_per_V`` (``world.move_focus``); an open-loop piezo's hysteresis and creep
are not modelled. The read-back (``xvoltage?``) is the output rounded to 0.1 V, as on the
device. Each exchange takes ``latency_s`` on the setup clock (115200 Bd round trip and
settling).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from hbtscope.drivers_sim.wire import SimAdapter, WireTwin, sessions

_INDEX = {"x": 0, "y": 1, "z": 2}

HELP = (
    "List of available commands:",
    "echo? echo= id? friendly? friendly= serial? cm? restore vlimit?",
    "xvoltage? xvoltage= xmin? xmin= xmax? xmax=",
    "yvoltage? yvoltage= ymin? ymin= ymax? ymax=",
    "zvoltage? zvoltage= zmin? zmin= zmax? zmax=",
    "xyzvoltage? xyzvoltage= allvoltage=",
)


class _NotDefined(Exception):
    pass


class _ArgInvalid(Exception):
    pass


def _number(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise _ArgInvalid from None
    if not math.isfinite(value):
        raise _ArgInvalid
    return value


class MDT69xTwin(WireTwin):
    """An MDT693B (``model="MDT693B"``, outputs x, y, z) or MDT694B (output x) on the world.

    ``um_per_V``/``offset_um`` are keyed by controller output, ``stage_axis`` maps each output to
    the world axis it moves. The outputs start where the world's focus is (clipped to the
    output range), i.e. the controller was left at those voltages.
    """

    role = "stage"
    latency_s = 0.002

    def __init__(
        self,
        world,
        *,
        model: str = "MDT693B",
        voltage_limit_V: float = 150.0,
        um_per_V: dict[str, float],
        offset_um: dict[str, float] | None = None,
        stage_axis: dict[str, str] | None = None,
        serial: str = "SIM-MDT-0001",
        firmware: str = "1.09",
    ):
        super().__init__(world)
        if model not in ("MDT693B", "MDT694B"):
            raise ValueError(f"model must be MDT693B or MDT694B, got {model!r}")
        if voltage_limit_V not in (75, 100, 150):
            raise ValueError(f"the limit switch has 75, 100 or 150 V, got {voltage_limit_V}")
        self.model = model
        self.outputs = ("x", "y", "z") if model == "MDT693B" else ("x",)
        self.vlimit = int(voltage_limit_V)
        self.serial = serial
        self.firmware = firmware
        self.friendly = model
        self.echo = True
        self.um_per_V = {c: float(um_per_V[c]) for c in self.outputs}
        self.offset_um = {c: float((offset_um or {}).get(c, 0.0)) for c in self.outputs}
        self.stage_axis = dict(stage_axis or {c: c for c in self.outputs})
        self.minimum = dict.fromkeys(self.outputs, 0.0)
        self.maximum = dict.fromkeys(self.outputs, float(self.vlimit))
        #: every command as it arrived on the wire (without the CR)
        self.received: list[str] = []
        focus = world.focus_at()
        self.voltage = {}
        for c in self.outputs:
            v = (float(focus[_INDEX[self.stage_axis[c]]]) - self.offset_um[c]) / self.um_per_V[c]
            self.voltage[c] = min(max(v, 0.0), float(self.vlimit))
        self._apply(self.voltage)

    # ---- the wire
    def handle(self, command: str) -> list[str]:
        cmd = command.strip()
        self.received.append(cmd)
        echo = [cmd] if self.echo else []  # echoed as it arrives, before it is executed
        try:
            body = self._execute(cmd.lower())
        except _NotDefined:
            body = ["CMD_NOT_DEFINED"]
        except _ArgInvalid:
            body = ["CMD_ARG_INVALID"]
        return ["".join(line + "\r" for line in echo + body)]

    def _execute(self, c: str) -> list[str]:
        if c == "id?":
            return [
                f"Model {self.model} Piezo Control Module",
                f"Firmware Version: {self.firmware}",
                f"Voltage Range: {self.vlimit}V",
                f"Serial#: {self.serial}",
                f"Name: {self.friendly}",
            ]
        if c == "?":
            return list(HELP)
        if c == "serial?":
            return [self.serial]
        if c == "friendly?":
            return [self.friendly]
        if c.startswith("friendly="):
            name = c[len("friendly=") :]
            if not 0 < len(name) <= 64:
                raise _ArgInvalid
            self.friendly = name
            return []
        if c == "echo?":
            return ["[Echo On]" if self.echo else "[Echo Off]"]
        if c.startswith("echo="):
            value = c[len("echo=") :].strip()
            if value not in ("0", "1"):
                raise _ArgInvalid
            self.echo = value == "1"
            return []
        if c == "cm?":
            return ["[MDT693A Compatibility Mode Off]"]
        if c == "restore":
            self.echo = True
            self.minimum = dict.fromkeys(self.outputs, 0.0)
            self.maximum = dict.fromkeys(self.outputs, float(self.vlimit))
            return []
        if c == "vlimit?":
            return [f"[{self.vlimit:4d}]"]
        m = re.fullmatch(r"([xyz])voltage(\?|=(.*))", c)
        if m:
            out = self._output(m.group(1))
            if m.group(2) == "?":
                return [f"[{round(self.voltage[out], 1):6.1f}]"]
            self._set({out: self._check(out, _number(m.group(3)))})
            return []
        m = re.fullmatch(r"([xyz])(min|max)(\?|=(.*))", c)
        if m:
            out = self._output(m.group(1))
            table = self.minimum if m.group(2) == "min" else self.maximum
            if m.group(3) == "?":
                return [f"{table[out]:g}"]
            value = _number(m.group(4))
            if not 0.0 <= value <= self.vlimit:
                raise _ArgInvalid
            lo = value if table is self.minimum else self.minimum[out]
            hi = value if table is self.maximum else self.maximum[out]
            if lo > hi:
                raise _ArgInvalid
            table[out] = value
            return []
        if self.model == "MDT693B":
            if c == "xyzvoltage?":
                return ["[" + ",".join(f"{round(self.voltage[o], 1):6.1f}" for o in "xyz") + "]"]
            if c.startswith("xyzvoltage="):
                parts = c[len("xyzvoltage=") :].split(",")
                if len(parts) != 3:
                    raise _ArgInvalid
                values = {o: self._check(o, _number(p)) for o, p in zip("xyz", parts, strict=True)}
                self._set(values)
                return []
            if c.startswith("allvoltage="):
                v = _number(c[len("allvoltage=") :])
                self._set({o: self._check(o, v) for o in "xyz"})
                return []
        raise _NotDefined

    def _output(self, name: str) -> str:
        if name not in self.outputs:
            raise _NotDefined
        return name

    def _check(self, out: str, volts: float) -> float:
        if not self.minimum[out] <= volts <= self.maximum[out]:
            raise _ArgInvalid
        return volts

    # ---- the world
    def _set(self, volts: dict[str, float]) -> None:
        self.voltage.update(volts)
        self._apply(volts)

    def _apply(self, volts: dict[str, float]) -> None:
        focus = [float(v) for v in self.world.focus_at()]
        new = list(focus)
        for out, v in volts.items():
            new[_INDEX[self.stage_axis[out]]] = self.offset_um[out] + v * self.um_per_V[out]
        if new != focus:
            self.world.move_focus(*new)

    def position_um(self, out: str) -> float:
        """Where output ``out`` puts its axis (for tests)."""
        return self.offset_um[out] + self.voltage[out] * self.um_per_V[out]


def connect(world, visa_settings: dict, **twin_kwargs) -> Callable[[], SimAdapter]:
    """The ``ThorlabsMDT693B``/``ThorlabsMDT694B`` drivers' connection on ``backend: sim``:
    sessions on an :class:`MDT69xTwin` built with ``twin_kwargs`` (model, voltage limit switch,
    the stage's µm/V calibration and which channel moves which stage axis)."""
    return sessions(MDT69xTwin(world, **twin_kwargs), visa_settings)


#: driver name -> connector (hbtscope.drivers_sim.registry)
TWINS = {"ThorlabsMDT693B": connect, "ThorlabsMDT694B": connect}
