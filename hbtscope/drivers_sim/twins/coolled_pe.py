"""Wire-level twin of a CoolLED pE LED illuminator (pE-100 by default; pE-300, pE-4000).

Command set and framing: see :mod:`hbtscope.instruments.drivers.coolled_pe` (sources cited
there). Every reply is a line ending CR LF (the adapter strips the LF, as VISA does with
``read_termination="\\n"``). After a power-up or reconnection the unit first sends its greeting
(two lines) — here, ahead of the reply to the first command.

Implemented: ``CSS?``; ``CSS<ch><S|X><N|F><NNN>…`` (any number of channels, answered by the full
status; an unselected channel cannot be on); ``CSN``/``CSF``; ``XVER``; ``XMODEL``; ``LAMS``.
Anything else, or a ``CSS`` with an unknown channel or an intensity above 100, is answered
``Unrecognised command: <text>`` and changes nothing (the error text is an assumption: see the
driver's docstring).

Physics: channel ``A`` is the world's 400 nm wide-field LED: on and selected at ``p`` % it
illuminates the field with ``p/100 × full_power_W_cm2`` (default: the presets' reference
illumination of Pierini et al. and D'Amato et al., ``LED_REFERENCE_W_PER_CM2``) through
``world.set_led``; dose and bleaching of the emitters follow from the world.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from hbtscope.drivers_sim.presets import LED_REFERENCE_W_PER_CM2
from hbtscope.drivers_sim.wire import SimAdapter, WireTwin, sessions

MODELS = {
    "pE-100": {"A": 400},
    "pE-300": {"A": 400, "B": 470, "C": 635},
    "pE-4000": {"A": 405, "B": 470, "C": 550, "D": 635},
}
GREETING = ("CoolLED precisExcite, Hello, pleased to meet you", "")
_SET = re.compile(r"CSS((?:[A-Z][SX][NF]\d{3})+)")


class CoolLEDTwin(WireTwin):
    """A CoolLED pE unit whose channel ``A`` drives the simulated world's LED."""

    role = "led"
    latency_s = 0.003  # a few lines at 57600 Bd

    def __init__(
        self,
        world,
        *,
        model: str = "pE-100",
        full_power_W_cm2: float = LED_REFERENCE_W_PER_CM2,
        firmware: str = "1.4.2",
    ):
        super().__init__(world)
        if model not in MODELS:
            raise ValueError(f"model must be one of {', '.join(MODELS)}")
        self.model = model
        self.wavelengths = dict(MODELS[model])
        self.full_power_W_cm2 = float(full_power_W_cm2)
        self.firmware = firmware
        # power-up state: all channels selected, off, at 0 %
        self.selected = dict.fromkeys(self.wavelengths, True)
        self.on = dict.fromkeys(self.wavelengths, False)
        self.intensity = dict.fromkeys(self.wavelengths, 0)
        #: every command as it arrived on the wire
        self.received: list[str] = []
        self.greet_pending = True
        self._apply()

    def power_cycle(self) -> None:
        """Switched off and on: outputs off, greeting again at the next exchange."""
        self.on = dict.fromkeys(self.wavelengths, False)
        self.greet_pending = True
        self._apply()

    # ---- the wire
    def handle(self, command: str) -> list[str]:
        cmd = command.strip()
        self.received.append(cmd)
        lines = list(GREETING) if self.greet_pending else []
        self.greet_pending = False
        lines += self._execute(cmd)
        return [line + "\r" for line in lines]

    def status_line(self) -> str:
        return "CSS" + "".join(
            f"{ch}{'S' if self.selected[ch] else 'X'}{'N' if self.on[ch] else 'F'}"
            f"{self.intensity[ch]:03d}"
            for ch in self.wavelengths
        )

    def _execute(self, cmd: str) -> list[str]:
        if cmd == "CSS?":
            return [self.status_line()]
        if cmd in ("CSN", "CSF"):
            for ch in self.wavelengths:
                self.on[ch] = cmd == "CSN" and self.selected[ch]
            self._apply()
            return [self.status_line()]
        m = _SET.fullmatch(cmd)
        if m:
            body = m.group(1)
            fields = [body[i : i + 6] for i in range(0, len(body), 6)]
            if any(f[0] not in self.wavelengths or int(f[3:]) > 100 for f in fields):
                return [f"Unrecognised command: {cmd}"]
            for f in fields:
                ch = f[0]
                self.selected[ch] = f[1] == "S"
                self.on[ch] = f[2] == "N" and self.selected[ch]
                self.intensity[ch] = int(f[3:])
            self._apply()
            return [self.status_line()]
        if cmd == "XMODEL":
            return [f"XMODEL {self.model}"]
        if cmd == "XVER":
            lines = [
                f"XVER MB={self.firmware}",
                "XVER HW=2",
                "XVER DT=1.0.0",
                "XVER PD=1.1.0",
            ]
            if self.model == "pE-4000":
                lines += [f"XVER BE:{ch}=1.0.3" for ch in self.wavelengths]
            return lines
        if cmd == "LAMS":
            return [f"LAM:{ch}:{nm}" for ch, nm in self.wavelengths.items()]
        return [f"Unrecognised command: {cmd}"]

    # ---- the world
    def _apply(self) -> None:
        on = self.on["A"] and self.selected["A"]
        intensity = self.intensity["A"] / 100.0 * self.full_power_W_cm2
        led = self.world.led
        if led.on != on or led.intensity_W_cm2 != intensity:
            self.world.set_led(on=on, intensity_W_cm2=intensity)


def connect(world, visa_settings: dict) -> Callable[[], SimAdapter]:
    """The ``CoolLEDpE`` driver's connection on ``backend: sim``: sessions on a pE-100 twin."""
    return sessions(CoolLEDTwin(world, model="pE-100"), visa_settings)


#: driver name -> connector (hbtscope.drivers_sim.registry)
TWINS = {"CoolLEDpE": connect}
