"""The part of the ``nidaqmx`` API the NI-DAQmx stage calls, acting on the simulated world.

Not a wire twin (DAQmx is an SDK, not a text protocol): like
:mod:`hbtscope.drivers_sim.timetagger` it implements the vendor functions at their boundary —
``Task(name)``, ``task.ao_channels.add_ao_voltage_chan(physical_channel,
name_to_assign_to_channel, min_val, max_val, units)``, ``task.write(data, auto_start)``,
``task.start()``, ``task.stop()``, ``task.close()`` and ``constants.VoltageUnits.VOLTS`` —
with DAQmx's behaviour where it matters for safety: a sample outside a channel's
``[min_val, max_val]`` is refused with ``DaqError`` (DAQmx error -200561) and nothing is
output; writing to a closed task fails (-200088).

Each AO channel drives one stage axis: ``offset_um + V * um_per_V`` → ``world.move_focus``.
``written`` keeps every sample set the task accepted or refused (for the limit tests).
"""

from __future__ import annotations

import math
from enum import Enum
from types import SimpleNamespace


class DaqError(RuntimeError):
    """Stands for ``nidaqmx.errors.DaqError`` (message and ``error_code``)."""

    def __init__(self, message: str, error_code: int):
        super().__init__(f"{message}\nStatus Code: {error_code}")
        self.error_code = error_code


class VoltageUnits(Enum):
    VOLTS = 10348


class _AOChannels:
    def __init__(self, task: _Task):
        self._task = task

    def add_ao_voltage_chan(
        self,
        physical_channel: str,
        name_to_assign_to_channel: str = "",
        min_val: float = -10.0,
        max_val: float = 10.0,
        units=VoltageUnits.VOLTS,
        custom_scale_name: str = "",
    ):
        hw = self._task.hw
        if physical_channel not in hw.channel_axis:
            raise DaqError(f"Physical channel {physical_channel!r} does not exist", -200170)
        if not -10.0 <= min_val < max_val <= 10.0:
            raise DaqError("Requested output range not supported by the device", -200077)
        if units is not VoltageUnits.VOLTS:
            raise DaqError("only volts are simulated", -200077)
        self._task.channels.append((physical_channel, float(min_val), float(max_val)))
        return SimpleNamespace(name=name_to_assign_to_channel or physical_channel)


class _Task:
    def __init__(self, hw: SimulatedDAQ, new_task_name: str = ""):
        self.hw = hw
        self.name = new_task_name
        self.channels: list[tuple[str, float, float]] = []
        self.ao_channels = _AOChannels(self)
        self.running = False
        self.closed = False
        hw.tasks.append(self)

    def write(self, data, auto_start=True, timeout: float = 10.0) -> int:
        if self.closed:
            raise DaqError("Task specified is invalid or does not exist", -200088)
        samples = [float(v) for v in (data if isinstance(data, (list, tuple)) else [data])]
        self.hw.written.append(samples)
        if len(samples) != len(self.channels):
            raise DaqError("Write cannot be performed: wrong number of channels", -200524)
        for (name, lo, hi), v in zip(self.channels, samples, strict=True):
            if not (math.isfinite(v) and lo <= v <= hi):
                raise DaqError(
                    f"Attempted writing analog data that is too large or too small ({name}: "
                    f"{v} V, range [{lo}, {hi}] V)",
                    -200561,
                )
        if auto_start:
            self.running = True
        self.hw.output(dict(zip((c[0] for c in self.channels), samples, strict=True)))
        return 1

    def start(self) -> None:
        self.running = True

    def stop(self) -> None:
        self.running = False

    def close(self) -> None:
        self.closed = True
        self.running = False


class SimulatedDAQ:
    """An NI DAQ device's AO lines wired to the piezo axes of the simulated stage."""

    def __init__(self, world, *, channel_axis, um_per_V, offset_um):
        self.world = world
        self.channel_axis = dict(channel_axis)
        self.um_per_V = dict(um_per_V)
        self.offset_um = dict(offset_um)
        self.tasks: list[_Task] = []
        self.written: list[list[float]] = []  # every sample set written, accepted or not
        self.volts: dict[str, float] = {}

    def output(self, volts: dict[str, float]) -> None:
        self.volts.update(volts)
        focus = [float(v) for v in self.world.focus_at()]
        index = {"x": 0, "y": 1, "z": 2}
        for ch, v in volts.items():
            axis = self.channel_axis[ch]
            focus[index[axis]] = self.offset_um.get(axis, 0.0) + v * self.um_per_V[axis]
        self.world.move_focus(*focus)


def simulated_nidaqmx(world, *, device="Dev1", channel_axis, um_per_V, offset_um):
    """A stand-in for the ``nidaqmx`` module whose one device drives the world's stage."""
    hw = SimulatedDAQ(world, channel_axis=channel_axis, um_per_V=um_per_V, offset_um=offset_um)
    return SimpleNamespace(
        Task=lambda new_task_name="": _Task(hw, new_task_name),
        constants=SimpleNamespace(VoltageUnits=VoltageUnits),
        errors=SimpleNamespace(DaqError=DaqError),
        device=device,
        hardware=hw,
    )


#: driver name -> connector (hbtscope.drivers_sim.registry): the stand-in of ``nidaqmx`` whose
#: AO channels drive the stage
TWINS = {"PiezoStageNIDAQmx": simulated_nidaqmx}
