"""A piezo stage driven by NI-DAQmx analogue outputs (seeds: Nanomax on NI-DAQ AO).

API (source): NI's ``nidaqmx`` Python package (PyPI ``nidaqmx``, docs at
nidaqmx-python.readthedocs.io): ``nidaqmx.Task(new_task_name)``,
``task.ao_channels.add_ao_voltage_chan(physical_channel, name_to_assign_to_channel, min_val,
max_val, units=nidaqmx.constants.VoltageUnits.VOLTS)``, ``task.write(data, auto_start=True)``
(one sample per channel: a list with one float per channel), ``task.stop()``,
``task.close()``. ``nidaqmx`` is imported lazily, when the stage is built, so hbtscope runs
without the NI driver installed.

One on-demand AO task holds the driven axes (``Dev1/ao0`` … from the setup file's address and
``x_ao``/``y_ao``/``z_ao``). Position = ``offset_um + V * um_per_V`` per axis.

Safety layers: the :class:`Stage` interface checks the travel (µm); this driver refuses, at
setup time, a travel needing voltages outside ``[min_voltage_V, max_voltage_V]`` and checks
every voltage before writing; and the AO channels are created with that same
``min_val``/``max_val``, so the DAQmx driver itself refuses anything outside it.

Open loop, no read-back: the stage does not know its position until the first move of all
three axes (``position_um`` is NaN until then, and a move of only some axes is refused).
"""

from __future__ import annotations

import importlib
import math
from typing import Any

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.registry import DriverInfo, LimitRule, SimConnector
from hbtscope.instruments.stage import AXES, Stage


class NIDAQmxStage(Stage):
    """xyz stage on NI-DAQmx analogue outputs; ``nidaqmx`` may be given (tests, simulation)."""

    def __init__(
        self,
        travel_um: dict[str, tuple[float, float]],
        *,
        device: str,
        um_per_V: dict[str, float],
        offset_um: dict[str, float] | None = None,
        ao_channels: dict[str, int] | None = None,
        min_voltage_V: float = 0.0,
        max_voltage_V: float = 10.0,
        nidaqmx=None,
        task_name: str = "hbtscope-stage",
    ):
        super().__init__(travel_um)
        if not (math.isfinite(min_voltage_V) and math.isfinite(max_voltage_V)):
            raise ValueError("min_voltage_V and max_voltage_V must be finite")
        if not -10.0 <= min_voltage_V < max_voltage_V <= 10.0:
            raise ValueError(
                f"need -10 <= min_voltage_V < max_voltage_V <= 10 V, got "
                f"[{min_voltage_V}, {max_voltage_V}]"
            )
        self.device = device
        self.ao_channels = dict(ao_channels or {"x": 0, "y": 1, "z": 2})
        self.um_per_V = {a: float(um_per_V[a]) for a in AXES}
        self.offset_um = {a: float((offset_um or {}).get(a, 0.0)) for a in AXES}
        self.voltage_range_V = (float(min_voltage_V), float(max_voltage_V))
        for axis in AXES:
            lo, hi = self.travel_um[axis]
            v = sorted((self._volts(axis, lo), self._volts(axis, hi)))
            if v[0] < min_voltage_V - 1e-9 or v[1] > max_voltage_V + 1e-9:
                raise ValueError(
                    f"{axis}_um travel [{lo:g}, {hi:g}] µm needs {v[0]:.4f} to {v[1]:.4f} V "
                    f"(um_per_V {self.um_per_V[axis]:g}, offset {self.offset_um[axis]:g} µm); "
                    f"allowed {min_voltage_V:g} to {max_voltage_V:g} V"
                )
        self._daq = nidaqmx if nidaqmx is not None else importlib.import_module("nidaqmx")
        self._task = self._daq.Task(task_name)
        try:
            for axis in AXES:
                self._task.ao_channels.add_ao_voltage_chan(
                    f"{device}/ao{self.ao_channels[axis]}",
                    name_to_assign_to_channel=f"stage_{axis}",
                    min_val=self.voltage_range_V[0],
                    max_val=self.voltage_range_V[1],
                    units=self._daq.constants.VoltageUnits.VOLTS,
                )
        except Exception:
            self._task.close()
            raise
        self._setpoint_V: dict[str, float] | None = None

    def _volts(self, axis: str, um: float) -> float:
        return (um - self.offset_um[axis]) / self.um_per_V[axis]

    def _read_position_um(self) -> tuple[float, float, float]:
        if self._setpoint_V is None:
            return (math.nan, math.nan, math.nan)
        return tuple(self.offset_um[a] + self._setpoint_V[a] * self.um_per_V[a] for a in AXES)

    def _write_position_um(self, xyz) -> None:
        lo_v, hi_v = self.voltage_range_V
        volts = []
        for axis, value in zip(AXES, xyz, strict=True):
            if not math.isfinite(value):
                raise LimitError(
                    "the NI-DAQmx stage does not know where it is until its first move: "
                    "give x_um, y_um and z_um"
                )
            v = self._volts(axis, float(value))
            if lo_v - 1e-9 <= v <= hi_v + 1e-9:
                v = min(max(v, lo_v), hi_v)
            else:
                raise LimitError(
                    f"stage {axis} = {value!r} µm needs {v:.4f} V, outside "
                    f"[{lo_v:g}, {hi_v:g}] V (min/max_voltage_V)"
                )
            volts.append(v)
        self._task.write(volts, auto_start=True)
        self._setpoint_V = dict(zip(AXES, volts, strict=True))

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap["voltages_V"] = dict(self._setpoint_V) if self._setpoint_V else None
        snap["ao_channels"] = {a: f"{self.device}/ao{n}" for a, n in self.ao_channels.items()}
        snap["voltage_range_V"] = list(self.voltage_range_V)
        return snap

    def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            try:
                task.stop()
            finally:
                task.close()


def _build(setup, spec, sim: SimConnector | None = None) -> NIDAQmxStage:
    """The stage role; ``sim(device=, channel_axis=, um_per_V=, offset_um=)`` returns the
    stand-in of ``nidaqmx`` whose AO channels move the stage."""
    limits = setup.limits["stage"]
    settings = setup.settings["stage"]
    travel = {a: limits[f"{a}_um"] for a in AXES}
    um_per_V = {a: settings.get(f"{a}_um_per_V", settings["um_per_V"]) for a in AXES}
    offset = {a: settings.get(f"{a}_offset_um", 0.0) for a in AXES}
    channels = {a: int(settings.get(f"{a}_ao", i)) for i, a in enumerate(AXES)}
    if len(set(channels.values())) != 3:
        raise ValueError(f"x_ao, y_ao and z_ao must differ, got {channels}")
    device = spec.address or "Dev1"
    daq = None
    if sim is not None:
        daq = sim(
            device=device,
            channel_axis={f"{device}/ao{n}": a for a, n in channels.items()},
            um_per_V=um_per_V,
            offset_um=offset,
        )
    return NIDAQmxStage(
        travel,
        device=device,
        um_per_V=um_per_V,
        offset_um=offset,
        ao_channels=channels,
        min_voltage_V=settings.get("min_voltage_V", 0.0),
        max_voltage_V=limits["max_voltage_V"],
        nidaqmx=daq,
    )


DRIVERS = [
    DriverInfo(
        "stage",
        # named after PiezoStage so the catalogue lists the simulated stage first
        "PiezoStageNIDAQmx",
        ("sim", "real"),
        (
            *(LimitRule(f"{a}_um", "range", -500.0, 500.0, unit="µm") for a in AXES),
            LimitRule("max_voltage_V", "value", -10.0, 10.0, unit="V"),
        ),
        _build,
        "piezo stage on NI-DAQmx analogue outputs (address: the DAQ device, e.g. Dev1)",
        settings=(
            LimitRule("um_per_V", "value", 1e-3, 1e3, unit="µm/V"),
            *(LimitRule(f"{a}_um_per_V", "value", 1e-3, 1e3, required=False) for a in AXES),
            *(LimitRule(f"{a}_offset_um", "value", -1e3, 1e3, required=False) for a in AXES),
            *(LimitRule(f"{a}_ao", "value", 0, 31, required=False) for a in AXES),
            LimitRule("min_voltage_V", "value", -10.0, 10.0, required=False, unit="V"),
        ),
    )
]
