"""Wire-level twin of a Thorlabs FW102C (6 slots) / FW212C (12 slots) filter wheel.

Command set, framing and errors: see :mod:`hbtscope.instruments.drivers.thorlabs_fw102c`
(sources cited there). The wheel always echoes: a reply is the command and CR, the value and
CR for a query, then the prompt ``"> "``. With VISA's ``read_termination=">"`` a message is the
text before ``>``; the space after it arrives at the start of the next message, and so it does
here. ``Command error CMD_NOT_DEFINED`` answers an unknown command, ``Command error
CMD_ARG_INVALID`` a bad or out-of-range argument (nothing moves).

Motion: ``pos=n`` turns the short way round, 1 s per slot at high speed (``speed=1``, the
default) or 2 s at low speed, on the setup clock, and only then answers (as the wheel does).

Physics: the wheel holds linear polarisers at ``slot_angles`` (slot → degrees); the other
slots are empty. A polariser slot in the beam puts the world's detection analyser at its
angle (``world.set_analyser``), an empty slot removes it (Malus's law is the world's).
"""

from __future__ import annotations

from collections.abc import Callable

from hbtscope.drivers_sim.wire import SimAdapter, WireTwin, sessions

IDN = "THORLABS FW102C/FW212C Filter Wheel version 1.07"


class _Invalid(Exception):
    pass


class _NotDefined(Exception):
    pass


class FW102CTwin(WireTwin):
    """The wheel in the detection path of the simulated microscope."""

    role = "polariser"
    latency_s = 0.002
    seconds_per_slot = {1: 1.0, 0: 2.0}

    def __init__(
        self,
        world,
        *,
        slot_angles: dict[int, float],
        position_count: int = 6,
        position: int | None = None,
    ):
        super().__init__(world)
        if position_count not in (6, 12):
            raise ValueError("position_count is 6 (FW102C) or 12 (FW212C)")
        self.slot_angles = {int(k): float(v) for k, v in slot_angles.items()}
        self.pcount = position_count
        empty = [s for s in range(1, position_count + 1) if s not in self.slot_angles]
        self.pos = position or (empty[0] if empty else 1)
        self.speed = 1
        self.trig = 0
        self.sensors = 0
        self.received: list[str] = []
        self._prefix = ""  # the space after the previous prompt
        self._apply()

    def handle(self, command: str) -> list[str]:
        cmd = command.strip()
        self.received.append(cmd)
        try:
            body = self._execute(cmd)
        except _NotDefined:
            body = ["Command error CMD_NOT_DEFINED"]
        except _Invalid:
            body = ["Command error CMD_ARG_INVALID"]
        message = self._prefix + "".join(line + "\r" for line in [cmd, *body])
        self._prefix = " "
        return [message]

    def _execute(self, cmd: str) -> list[str]:
        if cmd == "*idn?":
            return [IDN]
        queries = {
            "pos?": self.pos,
            "pcount?": self.pcount,
            "speed?": self.speed,
            "trig?": self.trig,
            "sensors?": self.sensors,
        }
        if cmd in queries:
            return [str(queries[cmd])]
        if cmd == "save":
            return []
        name, eq, arg = cmd.partition("=")
        if not eq or name not in ("pos", "pcount", "speed", "trig", "sensors"):
            raise _NotDefined
        try:
            value = int(arg)
        except ValueError:
            raise _Invalid from None
        if name == "pos":
            if not 1 <= value <= self.pcount:
                raise _Invalid
            self._move(value)
        elif name == "pcount":
            if value not in (6, 12):
                raise _Invalid
            self.pcount = value
        else:
            if value not in (0, 1):
                raise _Invalid
            setattr(self, name, value)
        return []

    def _move(self, target: int) -> None:
        steps = abs(target - self.pos)
        steps = min(steps, self.pcount - steps)
        if steps:
            self.world.clock.sleep(steps * self.seconds_per_slot[self.speed])
        self.pos = target
        self._apply()

    def _apply(self) -> None:
        angle = self.slot_angles.get(self.pos)
        if self.world.analyser_deg != angle:
            self.world.set_analyser(angle)


def connect(
    world, visa_settings: dict, *, slot_angles: dict[int, float], position_count: int = 6
) -> Callable[[], SimAdapter]:
    """The ``ThorlabsFW102C`` driver's connection on ``backend: sim``: sessions on a wheel twin
    holding polarisers at the driver's ``slot_angles`` (the setup file's wheel layout)."""
    twin = FW102CTwin(world, slot_angles=slot_angles, position_count=position_count)
    return sessions(twin, visa_settings)


#: driver name -> connector (hbtscope.drivers_sim.registry)
TWINS = {"ThorlabsFW102C": connect}
