"""Wire-level twin of a Toptica iBeam smart diode laser (serial, 115200 baud, CR LF).

It answers the iBeam's text protocol the way pymeasure's ``IBeamSmart`` expects it
(pymeasure ``instruments/toptica/ibeamsmart.py`` and its ``tests/.../test_ibeamsmart.py``):
every command is answered by an empty line (the CR LF the laser sends first), the reply lines,
then ``[OK]``; an error is a ``%SYS-<severity>-<code>: text`` line before the ``[OK]``. At power
on the laser echoes each command and prompts ``CMD>``; ``echo off`` / ``prom off`` (sent by
pymeasure on connecting, followed by a buffer flush) switch both off, and ``talk usual``
selects the terse reply format.

Commands (Toptica's iBeam smart command set as used by pymeasure, Qudi's
``toptica_laser.py`` and Micro-Manager's iBeamSmart adapter): ``la on|off``, ``sta la``
(``ON``/``OFF``), ``en N`` / ``di N`` (channel N, 0 = all), ``sta ch N``, ``ch N pow X [mic]``
(µW with ``mic``, else mW), ``sh pow`` (``PIC  = 000123 uW``), ``sh level pow``
(``CH1, PWR: 0.000 mW`` per channel), ``en ext`` / ``di ext`` / ``sta ext`` (digital
modulation by the external TTL input), ``ver``, ``serial``, ``sh temp``, ``sh cur``,
``echo on|off``, ``prom on|off``, ``talk usual|gabby``. The numeric ``%SYS`` codes of the
twin's error lines are illustrative.

Physics: channel 2 is the emission level, channel 1 the bias; with ``en ext`` the external
generator (``ext_trigger_Hz``, ``ext_pulse_width_s``: the simulated lab's pulse generator)
switches between them, so the average power is ``P1 (1 - d) + P2 d`` with duty ``d``. The
world sees a pulsed laser at ``ext_trigger_Hz`` (the simulator's pulses are instantaneous, the
iBeam's are ns long: lifetimes shorter than the pulse are not modelled) or a CW laser, with
``transmission`` the simulated ND filters between laser and sample.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hbtscope.drivers_sim.wire import SimAdapter, WireTwin, sessions

_POW = re.compile(r"^ch\s+([12])\s+pow\s+([-+0-9.eE]+)(?:\s+(mic|mil))?$")


class IBeamSmartTwin(WireTwin):
    role = "laser"
    latency_s = 0.002

    def __init__(
        self,
        world,
        *,
        rated_power_W: float = 0.1,
        ext_trigger_Hz: float | None = None,
        ext_pulse_width_s: float | None = None,
        transmission: float = 1.0,
        serial: str = "iBEAM-SMART-405-S-HP-12345",
        firmware: str = "iBEAM-SMART-TOPTICA-V2.01.14",
    ):
        super().__init__(world)
        self.rated_power_W = float(rated_power_W)
        self.ext_trigger_Hz = ext_trigger_Hz
        self.ext_pulse_width_s = ext_pulse_width_s
        self.transmission = float(transmission)
        self.serial = serial
        self.firmware = firmware
        self.echo = True
        self.prompt = True
        self.talk = "usual"
        self.laser_on = False
        self.enabled = {1: False, 2: False}
        self.level_W = {1: 0.0, 2: 0.0}
        self.ext = False
        self._apply()

    # ---------------------------------------------------------------- physics
    @property
    def duty(self) -> float:
        if not (self.ext_trigger_Hz and self.ext_pulse_width_s):
            return 1.0
        return min(1.0, self.ext_trigger_Hz * self.ext_pulse_width_s)

    def output_W(self) -> float:
        """Average optical output (W)."""
        if not self.laser_on:
            return 0.0
        p1 = self.level_W[1] if self.enabled[1] else 0.0
        p2 = self.level_W[2] if self.enabled[2] else 0.0
        if self.ext:
            return p1 * (1.0 - self.duty) + p2 * self.duty
        return max(p1, p2)

    def _apply(self) -> None:
        pulsed = self.ext and bool(self.ext_trigger_Hz)
        at_sample = self.output_W() * self.transmission
        kwargs = {"on": at_sample > 0.0, "power_W": at_sample, "cw": not pulsed}
        if pulsed:
            kwargs["rep_rate_Hz"] = float(self.ext_trigger_Hz)
        self.world.set_laser(**kwargs)

    # ---------------------------------------------------------------- protocol
    def handle(self, command: str) -> list[str]:
        cmd = " ".join(command.strip().split())
        lines: list[str] = [cmd] if self.echo else []
        lines.append("")  # the laser always starts its answer with CR LF
        try:
            lines += self._execute(cmd.lower())
        except ValueError as exc:
            lines.append(str(exc))
        lines.append("[OK]")
        if self.prompt:
            lines.append("CMD>")
        return lines

    def _execute(self, cmd: str) -> list[str]:
        if cmd in ("echo on", "echo off"):
            self.echo = cmd.endswith("on")
            return []
        if cmd in ("prom on", "prom off"):
            self.prompt = cmd.endswith("on")
            return []
        if cmd in ("talk usual", "talk gabby"):
            self.talk = cmd.split()[1]
            return []
        if cmd == "ver":
            return [self.firmware]
        if cmd in ("serial", "id"):
            return [f"SN: {self.serial}"]
        if cmd in ("la on", "la off"):
            self.laser_on = cmd.endswith("on")
            self._apply()
            return []
        if cmd == "sta la":
            return ["ON" if self.laser_on else "OFF"]
        if cmd in ("en ext", "di ext"):
            self.ext = cmd.startswith("en")
            self._apply()
            return []
        if cmd == "sta ext":
            return ["ON" if self.ext else "OFF"]
        m = re.fullmatch(r"(en|di)\s+([0-2])", cmd)
        if m:
            channels = (1, 2) if m.group(2) == "0" else (int(m.group(2)),)
            for ch in channels:
                self.enabled[ch] = m.group(1) == "en"
            self._apply()
            return []
        m = re.fullmatch(r"sta\s+ch\s+([12])", cmd)
        if m:
            return ["ON" if self.enabled[int(m.group(1))] else "OFF"]
        m = _POW.fullmatch(cmd)
        if m:
            value = float(m.group(2)) * (1e-6 if m.group(3) == "mic" else 1e-3)
            if not 0.0 <= value <= self.rated_power_W:
                raise ValueError(
                    f"%SYS-W-018: power {value * 1e3:.3f} mW out of range "
                    f"[0, {self.rated_power_W * 1e3:.1f}] mW"
                )
            self.level_W[int(m.group(1))] = value
            self._apply()
            return []
        if cmd == "sh pow":
            return [f"PIC  = {round(self.output_W() * 1e6):06d} uW  "]
        if cmd == "sh level pow":
            return [f"CH{ch}, PWR: {self.level_W[ch] * 1e3:8.3f} mW" for ch in (1, 2)]
        if cmd == "sh temp":
            return ["TEMP = 25.0 C"]
        if cmd == "sh temp sys":
            return ["TEMP = 28.4 C"]
        if cmd in ("sh cur", "sh curr"):
            return [f"LDC  = {40.0 + 600.0 * self.output_W():.1f} mA"]
        raise ValueError(f"%SYS-W-113: unknown command '{cmd}'")


def connect(world, visa_settings: dict, **twin_kwargs) -> Callable[[], SimAdapter]:
    """The ``TopticaIBeamSmart`` driver's connection on ``backend: sim``: sessions on an
    :class:`IBeamSmartTwin` built with ``twin_kwargs`` (rated power, external modulation,
    transmission to the sample)."""
    return sessions(IBeamSmartTwin(world, **twin_kwargs), visa_settings)


#: driver name -> connector (hbtscope.drivers_sim.registry)
TWINS = {"TopticaIBeamSmart": connect}
