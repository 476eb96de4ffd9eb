"""Simulated ``nidaqmx``: the NI-DAQmx Python API the raster driver uses, on the world.

:func:`make_module` returns an object that stands where ``import nidaqmx`` stands: ``Task``,
``system.Device``, and NI's own ``nidaqmx.constants`` and ``nidaqmx.errors`` (pure Python, part
of the ``nidaqmx`` package hbtscope depends on), so errors and enums are the real ones. The
simulated card is an X-series board (PCIe-6363-like: AO ranges +-10 V / +-5 V, 2.86 MS/s
single-channel AO, 100 MHz timebase: a sample-clock rate is coerced to 100 MHz / N, as the
card does). Calls (as in nidaqmx 1.7): ``Task(new_task_name)``,
``ao_channels.add_ao_voltage_chan(physical_channel, name_to_assign_to_channel, min_val,
max_val, units)``, ``timing.cfg_samp_clk_timing(rate, source, active_edge, sample_mode,
samps_per_chan)``, ``timing.samp_clk_rate``, ``export_signals.export_signal(signal_id,
output_terminal)`` / ``export_signals.samp_clk_output_term``, ``write(data, auto_start)``,
``start()``, ``is_task_done()``, ``wait_until_done(timeout)``, ``stop()``, ``close()``.

The simulated lab's wiring: ``axes`` maps an axis to ``(ao channel, µm per V, offset V)`` of
the piezo controller's inputs (the same calibration the setup file gives the driver), and
``marker_wiring`` maps a PFI terminal (e.g. ``/Dev1/PFI12``) to the tagger input it is cabled
to. Starting a finite AO task with its sample clock exported to a wired terminal schedules the
raster on the world (``World.schedule_scan``): the focus follows the samples on the sample
clock and every clock edge is a marker tag, i.e. one per pixel plus the end. An axis with no
AO channel keeps its position. Faults from the setup file (role ``daq``) make ``start`` raise
``DaqError``.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from nidaqmx import constants
from nidaqmx import errors as ni_errors
from nidaqmx.error_codes import DAQmxErrors

TIMEBASE_HZ = 100e6
AO_RANGES = [-10.0, 10.0, -5.0, 5.0]


def _err(message: str, code: DAQmxErrors, task_name: str = "") -> ni_errors.DaqError:
    return ni_errors.DaqError(message, int(code), task_name=task_name)


class _Card:
    def __init__(self, world, device, axes, marker_wiring, product_type, ao_max_rate):
        self.world = world
        self.device = device
        self.product_type = product_type
        self.ao_max_rate = float(ao_max_rate)
        self.axes = dict(axes)  # axis -> (ao, um_per_V, offset_V)
        self.marker_wiring = dict(marker_wiring)
        self.channel_axis = {f"{device}/ao{ao}".lower(): axis for axis, (ao, _, _) in axes.items()}
        self.running = None  # the task generating now


class _AOChannels:
    def __init__(self, task):
        self._task = task

    def add_ao_voltage_chan(
        self,
        physical_channel,
        name_to_assign_to_channel="",
        min_val=-10.0,
        max_val=10.0,
        units=constants.VoltageUnits.VOLTS,
        custom_scale_name="",
    ):
        task = self._task
        task._check_open()
        card = task._card
        phys = str(physical_channel)
        dev, _, chan = phys.partition("/")
        if dev.lower() != card.device.lower() or not chan.lower().startswith("ao"):
            raise _err(f"physical channel {phys!r} does not exist", DAQmxErrors.INVALID_DEVICE_ID)
        if units != constants.VoltageUnits.VOLTS:
            raise _err("only volts are simulated", DAQmxErrors.INVALID_AO_DATA_WRITE, task.name)
        if not (
            min_val < max_val
            and any(
                a <= min_val and max_val <= b
                for a, b in zip(AO_RANGES[0::2], AO_RANGES[1::2], strict=False)
            )
        ):
            raise _err(
                f"requested AO range [{min_val}, {max_val}] V is not supported",
                DAQmxErrors.INVALID_AO_DATA_WRITE,
                task.name,
            )
        task.channels.append(
            (phys.lower(), name_to_assign_to_channel, float(min_val), float(max_val))
        )


class _Timing:
    def __init__(self, task):
        self._task = task
        self.samp_clk_rate = None
        self.samp_quant_samp_per_chan = None
        self.samp_quant_samp_mode = None

    def cfg_samp_clk_timing(
        self,
        rate,
        source="",
        active_edge=constants.Edge.RISING,
        sample_mode=constants.AcquisitionType.FINITE,
        samps_per_chan=1000,
    ):
        task = self._task
        task._check_open()
        if not 0 < rate <= task._card.ao_max_rate:
            raise _err(
                f"sample clock rate {rate} S/s unavailable (max {task._card.ao_max_rate})",
                DAQmxErrors.SAMP_CLK_RATE_UNAVAILABLE,
                task.name,
            )
        if source:
            raise _err("only the onboard clock is simulated", DAQmxErrors.INVALID_TERM, task.name)
        divisor = max(1, round(TIMEBASE_HZ / rate))
        self.samp_clk_rate = TIMEBASE_HZ / divisor
        self.samp_quant_samp_per_chan = int(samps_per_chan)
        self.samp_quant_samp_mode = sample_mode


class _ExportSignals:
    def __init__(self, task):
        self._task = task
        self.samp_clk_output_term = ""

    def export_signal(self, signal_id, output_terminal):
        self._task._check_open()
        if signal_id != constants.Signal.SAMPLE_CLOCK:
            raise _err("only the sample clock export is simulated", DAQmxErrors.INVALID_TERM)
        self.samp_clk_output_term = str(output_terminal)


class SimTask:
    """``nidaqmx.Task`` for a finite, sample-clocked AO generation on the simulated card."""

    start_latency_s = 1e-3

    def __init__(self, card: _Card, new_task_name: str = ""):
        self._card = card
        self.name = new_task_name or "_unnamedTask<0>"
        self.channels: list[tuple[str, str, float, float]] = []
        self.ao_channels = _AOChannels(self)
        self.timing = _Timing(self)
        self.export_signals = _ExportSignals(self)
        self._data: np.ndarray | None = None
        self._closed = False
        self._end_ps: int | None = None
        self._last_xyz: np.ndarray | None = None

    def _check_open(self) -> None:
        if self._closed:
            raise _err("the task has been closed", DAQmxErrors.INVALID_TASK, self.name)

    def write(self, data, auto_start=False, timeout=10.0):
        self._check_open()
        arr = np.atleast_2d(np.asarray(data, dtype=float))
        if arr.shape[0] != len(self.channels):
            raise _err(
                f"data for {arr.shape[0]} channels written to a task with {len(self.channels)}",
                DAQmxErrors.INVALID_AO_DATA_WRITE,
                self.name,
            )
        for row, (_phys, _name, lo, hi) in zip(arr, self.channels, strict=True):
            if row.min() < lo or row.max() > hi:
                raise _err(
                    "attempted to write analog output data outside the channel's range",
                    DAQmxErrors.INVALID_AO_DATA_WRITE,
                    self.name,
                )
        self._data = arr
        if auto_start is True:
            self.start()
        return arr.shape[1]

    def _positions(self) -> np.ndarray:
        card = self._card
        n = self._data.shape[1]
        xyz = np.tile(np.asarray(card.world.focus_at(), float), (n, 1))
        for row, (phys, _name, _lo, _hi) in zip(self._data, self.channels, strict=True):
            axis = card.channel_axis.get(phys)
            if axis is None:
                continue  # an AO line wired to nothing
            _ao, um_per_V, offset = card.axes[axis]
            xyz[:, "xyz".index(axis)] = (row - offset) * um_per_V
        return xyz

    def start(self):
        self._check_open()
        card = self._card
        if self._data is None or self.timing.samp_clk_rate is None:
            raise _err("no data written / no timing configured", DAQmxErrors.INVALID_AO_DATA_WRITE)
        n = self._data.shape[1]
        if n < 2 or n != self.timing.samp_quant_samp_per_chan:
            raise _err(
                f"finite generation of {self.timing.samp_quant_samp_per_chan} samples with "
                f"{n} written (at least 2 needed)",
                DAQmxErrors.INVALID_AO_DATA_WRITE,
                self.name,
            )
        if card.running is not None and card.running is not self and not card.running._done():
            raise _err("the AO timing engine is reserved by another task", DAQmxErrors.INVALID_TERM)
        world = card.world
        kind = world.faults.decide("daq") if getattr(world, "faults", None) else None
        if kind is not None:
            raise _err(
                f"device {card.device} not responding ({kind})", DAQmxErrors.TIMEOUT_EXCEEDED
            )
        world.clock.sleep(self.start_latency_s)  # committing and arming the task
        xyz = self._positions()
        dwell_ps = int(round(1e12 / self.timing.samp_clk_rate))
        marker = card.marker_wiring.get(self.export_signals.samp_clk_output_term)
        t0 = world.clock.now_ps()
        # clock edges at t0 + i dwell, i < n: n - 1 pixels plus the last edge ("end")
        self._end_ps = world.schedule_scan(t0, dwell_ps, xyz[:-1], marker)
        self._last_xyz = xyz[-1]
        card.running = self

    def _done(self) -> bool:
        return self._end_ps is None or self._card.world.clock.now_ps() >= self._end_ps

    def _finish(self) -> None:
        """At the last clock edge the output takes the last sample."""
        if self._end_ps is not None and self._done():
            world = self._card.world
            if not np.allclose(world.focus_at(), self._last_xyz):
                world.move_focus(*self._last_xyz)
            self._end_ps = None

    def is_task_done(self) -> bool:
        self._check_open()
        done = self._done()
        if done:
            self._finish()
        return done

    def wait_until_done(self, timeout=10.0):
        self._check_open()
        if self._end_ps is None:
            return
        clock = self._card.world.clock
        if timeout >= 0 and (self._end_ps - clock.now_ps()) * 1e-12 > timeout:
            clock.sleep(timeout)
            raise _err(
                "wait until done did not indicate done within the timeout",
                DAQmxErrors.WAIT_UNTIL_DONE_DOES_NOT_INDICATE_DONE,
                self.name,
            )
        clock.advance_to_ps(self._end_ps)
        self._finish()

    def stop(self):
        self._check_open()
        if self._end_ps is not None:
            if self._done():
                self._finish()
            else:
                self._card.world.cancel_scan()  # outputs hold the current sample
                self._end_ps = None
        if self._card.running is self:
            self._card.running = None

    def close(self):
        if self._closed:
            return
        if self._end_ps is not None and not self._done():
            self._card.world.cancel_scan()
        self._end_ps = None
        if self._card.running is self:
            self._card.running = None
        self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def make_module(
    world,
    *,
    device: str = "Dev1",
    axes: dict[str, tuple[int, float, float]],
    marker_wiring: dict[str, int] | None = None,
    product_type: str = "PCIe-6363",
    ao_max_rate: float = 2.86e6,
):
    """An ``nidaqmx``-like namespace with one simulated card ``device`` wired to the world."""
    card = _Card(world, device, axes, marker_wiring or {}, product_type, ao_max_rate)

    class Device:
        """``nidaqmx.system.Device``: properties of the simulated card."""

        def __init__(self, name):
            self.name = name

        def _card(self) -> _Card:
            if self.name.lower() != card.device.lower():
                raise _err(
                    f"device identifier {self.name!r} is invalid", DAQmxErrors.INVALID_DEVICE_ID
                )
            return card

        @property
        def product_type(self) -> str:
            return self._card().product_type

        @property
        def ao_max_rate(self) -> float:
            return self._card().ao_max_rate

        @property
        def ao_voltage_rngs(self) -> list[float]:
            self._card()
            return list(AO_RANGES)

    def Task(new_task_name="", **kwargs):  # noqa: N802 - nidaqmx's class name
        return SimTask(card, new_task_name)

    return SimpleNamespace(
        Task=Task,
        constants=constants,
        errors=ni_errors,
        system=SimpleNamespace(Device=Device),
        card=card,
        __name__="hbtscope.drivers_sim.twins.nidaqmx_twin.nidaqmx",
    )


#: driver name -> connector (hbtscope.drivers_sim.registry): the stand-in of ``nidaqmx`` with
#: one card whose AO channels drive the stage and whose sample clock marks the tagger
TWINS = {"NIDAQmxRaster": make_module}
