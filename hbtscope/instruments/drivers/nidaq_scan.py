"""Hardware-timed confocal raster on an NI-DAQmx card, as a :class:`ScanClock` (role ``daq``).

One buffered analogue-output task drives the piezo controller's x/y(/z) inputs on the card's
sample clock (one sample per pixel, ``rate = 1 / dwell``), and the AO sample clock is exported
on a PFI line wired to a time-tagger input: one TTL edge per pixel start and one at the end
(the raster is written with one extra sample that holds the last position), so the tagger
gates counts and TCSPC histograms per pixel (``CountBetweenMarkers``, ``TimeDifferences``).

Positions become volts with the setup file's calibration, per axis
``V = offset_V + µm / µm_per_V``; every pixel is checked against the stage travel and the
controller's input range (``voltage_V``) before anything is sent: an out-of-range raster
raises :class:`~hbtscope.instruments.base.LimitError` and never reaches ``task.write``.

NI-DAQmx calls (``nidaqmx`` Python API, PyPI ``nidaqmx``, docs nidaqmx-python.readthedocs.io;
checked against nidaqmx 1.7): ``nidaqmx.system.Device(name)`` (``product_type``,
``ao_max_rate``, ``ao_voltage_rngs``: the device's limits), ``nidaqmx.Task(name)``,
``task.ao_channels.add_ao_voltage_chan(physical_channel, name_to_assign_to_channel, min_val,
max_val, units=VoltageUnits.VOLTS)``, ``task.timing.cfg_samp_clk_timing(rate, source="",
active_edge=Edge.RISING, sample_mode=AcquisitionType.FINITE, samps_per_chan)``,
``task.timing.samp_clk_rate`` (the rate the card coerced to), ``task.export_signals.
export_signal(Signal.SAMPLE_CLOCK, "/Dev1/PFI12")``, ``task.write(data, auto_start=False)``
(data: channels x samples, volts), ``task.start()``, ``task.is_task_done()``,
``task.wait_until_done(timeout)``, ``task.stop()``, ``task.close()``. Errors are
``nidaqmx.errors.DaqError``; a machine without the NI-DAQmx runtime raises
``DaqNotFoundError``.

The simulated twin :mod:`hbtscope.drivers_sim.twins.nidaqmx_twin` is a fake ``nidaqmx``
module (same calls, NI's own constants and error classes) whose task moves the simulated
stage and sends the pixel markers into the simulated tagger.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.registry import DriverInfo, LimitRule, SimConnector
from hbtscope.instruments.scanclock import ScanClock

INSTALL_HINT = (
    "pip install nidaqmx, and install NI's NI-DAQmx runtime (`python -m nidaqmx installdriver`)"
)
AXES = ("x", "y", "z")


def load_nidaqmx():
    """The ``nidaqmx`` package with ``nidaqmx.system``, imported now."""
    try:
        import nidaqmx
        import nidaqmx.system  # noqa: F401 - makes nidaqmx.system available
    except ImportError as exc:
        raise RuntimeError(
            f"the NI-DAQmx Python API is not installed ({exc}): {INSTALL_HINT}"
        ) from None
    return nidaqmx


class NIDAQmxRasterScan(ScanClock):
    """``ni`` is the ``nidaqmx`` module (or its twin); ``device`` e.g. ``"Dev1"``.

    ``axes``: per axis driven, ``(ao channel number, µm per V, offset V)``; an axis not given
    is not driven (a raster must then keep it constant). ``clock``: the setup clock (the time
    returned by :meth:`start`).
    """

    def __init__(
        self,
        ni,
        device: str,
        *,
        travel_um: dict[str, tuple[float, float]],
        axes: dict[str, tuple[int, float, float]],
        voltage_range_V: tuple[float, float],
        marker_pfi: int,
        clock,
        marker_tagger_channel: int | None = None,
        min_dwell_s: float | None = None,
        max_pixels: int = 4_000_000,
    ):
        self.ni = ni
        self.device = device
        self.clock = clock
        for axis, (_ao, um_per_V, offset) in axes.items():
            if axis not in AXES:
                raise LimitError(f"unknown axis {axis!r}; axes are x, y, z")
            if not (math.isfinite(um_per_V) and um_per_V != 0 and math.isfinite(offset)):
                raise LimitError(f"{axis}: µm per V must be finite and non-zero, got {um_per_V}")
        if "x" not in axes or "y" not in axes:
            raise LimitError("a raster needs the x and y axes calibrated")
        self.axes = dict(axes)
        try:
            dev = ni.system.Device(device)
            self.product_type = str(dev.product_type)
            ao_max_rate = float(dev.ao_max_rate)
            rngs = [float(v) for v in dev.ao_voltage_rngs]
        except getattr(ni.errors, "DaqNotFoundError", ()) as exc:
            raise RuntimeError(f"NI-DAQmx is not usable here ({exc}): {INSTALL_HINT}") from None
        except ni.errors.DaqError as exc:
            raise RuntimeError(
                f"NI-DAQmx device {device!r} not found or not usable: {exc} (NI MAX lists the "
                "device names)"
            ) from None
        lo, hi = float(voltage_range_V[0]), float(voltage_range_V[1])
        pairs = list(zip(rngs[0::2], rngs[1::2], strict=False))
        if not any(a <= lo and hi <= b for a, b in pairs):
            raise LimitError(
                f"voltage_V [{lo}, {hi}] V is outside the AO ranges of {device} "
                f"({self.product_type}): {pairs}"
            )
        self.voltage_range_V = (lo, hi)
        self.ao_max_rate = ao_max_rate
        floor = 1.0 / ao_max_rate
        super().__init__(
            travel_um,
            min_dwell_s=max(floor, min_dwell_s or 0.0),
            max_pixels=max_pixels,
        )
        self.marker_pfi = int(marker_pfi)
        self.marker_tagger_channel = marker_tagger_channel
        self._task = None
        self._volts: np.ndarray | None = None
        self.sample_rate_Hz: float | None = None
        self._started = False

    # ---------------------------------------------------------------- helpers
    @property
    def marker_terminal(self) -> str:
        return f"/{self.device}/PFI{self.marker_pfi}"

    def volts_for(self, xyz_um: np.ndarray) -> np.ndarray:
        """(driven axes, samples) volts for positions (samples, 3) µm."""
        rows = []
        for i, axis in enumerate(AXES):
            if axis in self.axes:
                _ao, um_per_V, offset = self.axes[axis]
                rows.append(offset + xyz_um[:, i] / um_per_V)
        return np.vstack(rows)

    def _close_task(self) -> None:
        task, self._task = self._task, None
        self._started = False
        if task is not None:
            task.close()

    # ---------------------------------------------------------------- ScanClock
    def load_raster(
        self, xyz_um: np.ndarray, dwell_s: float, marker_channel: int | None = None
    ) -> None:
        if (
            marker_channel is not None
            and self.marker_tagger_channel is not None
            and int(marker_channel) != int(self.marker_tagger_channel)
        ):
            raise LimitError(
                f"the DAQ's pixel markers ({self.marker_terminal}) are wired to tagger channel "
                f"{self.marker_tagger_channel}, not {marker_channel} (calibrations: pixel_marker)"
            )
        previous = self._loaded
        super().load_raster(xyz_um, dwell_s, marker_channel)
        xyz, dwell, _marker = self._loaded
        try:
            if "z" not in self.axes and np.ptp(xyz[:, 2]) > 0:
                raise LimitError("this scanner drives no z axis: a raster must keep z constant")
            # one extra sample holding the last position: its clock edge is the end marker
            samples = np.vstack([xyz, xyz[-1:]])
            volts = self.volts_for(samples)
            lo, hi = self.voltage_range_V
            if volts.min() < lo or volts.max() > hi:
                raise LimitError(
                    f"raster needs [{volts.min():.4g}, {volts.max():.4g}] V, outside the "
                    f"controller input range voltage_V [{lo}, {hi}] V"
                )
        except LimitError:
            self._loaded = previous
            raise
        self._close_task()
        self._configure(volts, dwell)

    def _configure(self, volts: np.ndarray, dwell: float) -> None:
        ni = self.ni
        c = ni.constants
        lo, hi = self.voltage_range_V
        task = ni.Task("hbtscope-raster")
        try:
            for axis in AXES:
                if axis in self.axes:
                    ao = self.axes[axis][0]
                    task.ao_channels.add_ao_voltage_chan(
                        f"{self.device}/ao{ao}",
                        name_to_assign_to_channel=axis,
                        min_val=lo,
                        max_val=hi,
                        units=c.VoltageUnits.VOLTS,
                    )
            task.timing.cfg_samp_clk_timing(
                1.0 / dwell,
                source="",
                active_edge=c.Edge.RISING,
                sample_mode=c.AcquisitionType.FINITE,
                samps_per_chan=volts.shape[1],
            )
            task.export_signals.export_signal(c.Signal.SAMPLE_CLOCK, self.marker_terminal)
            task.write(volts, auto_start=False)
            self.sample_rate_Hz = float(task.timing.samp_clk_rate)
        except Exception:
            task.close()
            raise
        self._task = task
        self._volts = volts

    def start(self) -> float:
        if self._task is None:
            raise RuntimeError("no raster loaded: call load_raster() first")
        if self._started:
            self._task.stop()  # a finished finite task restarts from its first sample
        self._task.start()
        self._started = True
        return self.clock.now()

    def is_done(self) -> bool:
        if self._task is None or not self._started:
            return True
        return bool(self._task.is_task_done())

    def wait_done(self) -> None:
        if self._task is None or not self._started:
            return
        n = self._volts.shape[1]
        self._task.wait_until_done(timeout=n / self.sample_rate_Hz + 10.0)

    def stop(self) -> None:
        """Stop the raster; the stage stays at the last sample output."""
        if self._task is not None and self._started:
            self._task.stop()
            self._started = False

    def safe_state(self) -> None:
        self.stop()

    def close(self) -> None:
        self._close_task()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap.update(
            device=self.device,
            product_type=self.product_type,
            marker_terminal=self.marker_terminal,
            voltage_min_V=self.voltage_range_V[0],
            voltage_max_V=self.voltage_range_V[1],
        )
        if self.sample_rate_Hz is not None:
            snap["sample_rate_Hz"] = self.sample_rate_Hz
        for axis, (ao, um_per_V, offset) in self.axes.items():
            snap[f"{axis}_ao"] = int(ao)
            snap[f"{axis}_um_per_V"] = um_per_V
            snap[f"{axis}_offset_V"] = offset
        return snap


# -------------------------------------------------------------------- catalogue
def _device_name(address: str) -> str:
    address = (address or "").strip()
    if address.startswith("sim://"):
        address = address[len("sim://") :]
    if not address:
        raise LimitError("the NI-DAQmx device name is missing (address, e.g. Dev1)")
    return address


def _build(setup, spec, sim: SimConnector | None = None) -> NIDAQmxRasterScan:
    """The scan clock role; ``sim(device=, axes=, marker_wiring=)`` returns the stand-in of
    ``nidaqmx`` with one card wired to the stage and the tagger as the setup file says."""
    limits, settings = setup.limits["daq"], setup.settings["daq"]
    travel = {}
    for axis in AXES:
        if f"{axis}_um" in limits:
            travel[axis] = limits[f"{axis}_um"]
        elif f"{axis}_um" in setup.limits.get("stage", {}):
            travel[axis] = setup.limits["stage"][f"{axis}_um"]
    axes = {}
    for n, axis in enumerate(AXES):
        if f"{axis}_um_per_V" in settings:
            axes[axis] = (
                int(settings.get(f"{axis}_ao", n)),
                float(settings[f"{axis}_um_per_V"]),
                float(settings.get(f"{axis}_offset_V", 0.0)),
            )
    missing = [a for a in axes if a not in travel]
    if missing:
        raise LimitError(
            f"no travel for axis {', '.join(missing)}: give {missing[0]}_um in the daq or the "
            "stage limits"
        )
    device = _device_name(spec.address)
    marker_pfi = int(settings.get("marker_pfi", 12))
    marker = setup.spec.calibrations.detector_channels.get("pixel_marker")
    if sim is not None:
        ni = sim(
            device=device,
            axes=axes,
            marker_wiring={f"/{device}/PFI{marker_pfi}": marker} if marker else {},
        )
    else:
        ni = load_nidaqmx()
    return NIDAQmxRasterScan(
        ni,
        device,
        travel_um=travel,
        axes=axes,
        voltage_range_V=limits["voltage_V"],
        marker_pfi=marker_pfi,
        clock=setup.clock,
        marker_tagger_channel=marker,
        min_dwell_s=settings.get("min_dwell_s"),
    )


DRIVERS = [
    DriverInfo(
        "daq",
        "NIDAQmxRaster",
        ("real", "sim"),
        (
            LimitRule("voltage_V", "range", -10.0, 10.0, unit="V"),
            LimitRule("x_um", "range", -1000.0, 1000.0, required=False, unit="µm"),
            LimitRule("y_um", "range", -1000.0, 1000.0, required=False, unit="µm"),
            LimitRule("z_um", "range", -1000.0, 1000.0, required=False, unit="µm"),
        ),
        _build,
        "NI-DAQmx hardware-timed raster: AO x/y(/z) on the sample clock, the clock exported on "
        "a PFI line as pixel markers into the tagger (address: device name, e.g. Dev1)",
        settings=(
            LimitRule("x_um_per_V", "value", -1000.0, 1000.0, unit="µm/V"),
            LimitRule("y_um_per_V", "value", -1000.0, 1000.0, unit="µm/V"),
            LimitRule("z_um_per_V", "value", -1000.0, 1000.0, required=False, unit="µm/V"),
            LimitRule("x_offset_V", "value", -10.0, 10.0, required=False, unit="V"),
            LimitRule("y_offset_V", "value", -10.0, 10.0, required=False, unit="V"),
            LimitRule("z_offset_V", "value", -10.0, 10.0, required=False, unit="V"),
            LimitRule("x_ao", "value", 0, 31, required=False),
            LimitRule("y_ao", "value", 0, 31, required=False),
            LimitRule("z_ao", "value", 0, 31, required=False),
            LimitRule("marker_pfi", "value", 0, 15, required=False),
            LimitRule("min_dwell_s", "value", 1e-7, 10.0, required=False, unit="s"),
        ),
    )
]
