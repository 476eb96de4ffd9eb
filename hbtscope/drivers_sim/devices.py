"""Simulated devices: the same interfaces as real drivers, acting on the shared World.

Behaviour only; the wire protocols of real devices are put in front of it separately."""

from __future__ import annotations

import numpy as np

from hbtscope.drivers_sim.presets import LED_REFERENCE_W_PER_CM2
from hbtscope.drivers_sim.render import render_spectrum, render_widefield_frame
from hbtscope.drivers_sim.world import World
from hbtscope.instruments.imaging import Camera, Spectrometer
from hbtscope.instruments.laser import PulsedLaser
from hbtscope.instruments.optics import LED, FlipMirror, Polarizer, PowerMeter
from hbtscope.instruments.scanclock import ScanClock
from hbtscope.instruments.stage import Stage

SIM_REP_RATES_HZ = (1.0e6, 80.0e6)


class SimPulsedLaser(PulsedLaser):
    """A picosecond diode laser in the simulated world; ``cw = True`` runs it continuous-wave
    (as a PicoQuant LDH head can, and as Baronnier et al.'s CW excitation needs)."""

    @property
    def cw(self) -> bool:
        return self._world.laser.cw

    @cw.setter
    def cw(self, value: bool) -> None:
        self._world.faults.before_io("laser")
        self._world.set_laser(cw=bool(value))

    def snapshot(self):
        snap = super().snapshot()
        snap["cw"] = self.cw
        return snap

    def __init__(self, world: World, max_power_W: float, rep_rate_Hz: float = 5.0e6):
        super().__init__(max_power_W, SIM_REP_RATES_HZ)
        self._world = world
        self.rep_rate_Hz = rep_rate_Hz

    def _read_power_W(self) -> float:
        self._world.faults.before_io("laser")
        return self._world.laser.set_power_W  # the set point: emitted power is not linear

    def _write_power_W(self, value: float) -> None:
        self._world.faults.before_io("laser")
        self._world.set_laser(power_W=value)

    def _read_rep_rate_Hz(self) -> float:
        self._world.faults.before_io("laser")
        return self._world.laser.rep_rate_Hz

    def _write_rep_rate_Hz(self, value: float) -> None:
        self._world.faults.before_io("laser")
        self._world.set_laser(rep_rate_Hz=value)

    def _read_emission(self) -> bool:
        self._world.faults.before_io("laser")
        return self._world.laser.on

    def _write_emission(self, on: bool) -> None:
        self._world.faults.before_io("laser")
        self._world.set_laser(on=on)


class SimPiezoStage(Stage):
    """A closed-loop piezo stage; moving takes ``settle_s`` on the setup clock."""

    def __init__(self, world: World, travel_um, settle_s: float = 0.005):
        super().__init__(travel_um)
        self._world = world
        self.settle_s = settle_s

    def _read_position_um(self) -> tuple[float, float, float]:
        self._world.faults.before_io("stage")
        x, y, z = self._world.focus_at()
        return float(x), float(y), float(z)

    def _write_position_um(self, xyz) -> None:
        self._world.faults.before_io("stage")
        self._world.move_focus(*xyz)
        self._world.clock.sleep(self.settle_s)


class SimLED(LED):
    """Wide-field LED; full power gives the presets' reference illumination (Pierini et al. and
    D'Amato et al.)."""

    def __init__(
        self,
        world: World,
        max_fraction: float = 1.0,
        full_power_W_cm2: float = LED_REFERENCE_W_PER_CM2,
    ):
        super().__init__(max_fraction)
        self._world = world
        self._fraction = 0.0
        self.full_power_W_cm2 = full_power_W_cm2

    def _read_fraction(self) -> float:
        self._world.faults.before_io("led")
        return self._fraction

    def _write_fraction(self, value: float) -> None:
        self._world.faults.before_io("led")
        self._fraction = value
        self._world.set_led(intensity_W_cm2=value * self.full_power_W_cm2)

    def _read_on(self) -> bool:
        self._world.faults.before_io("led")
        return self._world.led.on

    def _write_on(self, on: bool) -> None:
        self._world.faults.before_io("led")
        self._world.set_led(on=on)


class SimPowerMeter(PowerMeter):
    """Thermal/photodiode power meter at the sample: the laser's power with 0.5 % noise."""

    def __init__(self, world: World, noise_rel: float = 0.005):
        self._world = world
        self.noise_rel = noise_rel
        self._n = 0

    def read_power_W(self) -> float:
        self._world.faults.before_io("powermeter")
        self._world.clock.sleep(0.1)  # one reading takes ~100 ms
        self._n += 1
        laser = self._world.laser
        p = laser.power_W if laser.on else 0.0
        rng = np.random.default_rng([self._world.seed, 0x504D, self._n])
        return float(p * (1.0 + self.noise_rel * rng.standard_normal()) + 1e-12 * rng.random())


class SimPolarizer(Polarizer):
    """Motorised rotating analyser in the detection path."""

    def __init__(self, world: World, deg_per_s: float = 25.0):
        self._world = world
        self._angle = 0.0
        self._in_path = False
        self.deg_per_s = deg_per_s

    def _read_angle(self) -> float:
        self._world.faults.before_io("polarizer")
        return self._angle

    def _write_angle(self, value: float) -> None:
        self._world.faults.before_io("polarizer")
        travel = abs((value - self._angle + 180.0) % 360.0 - 180.0)
        self._world.clock.sleep(travel / self.deg_per_s)
        self._angle = value
        if self._in_path:
            self._world.set_analyser(value)

    def _read_in_path(self) -> bool:
        self._world.faults.before_io("polarizer")
        return self._in_path

    def _write_in_path(self, value: bool) -> None:
        self._world.faults.before_io("polarizer")
        self._in_path = value
        self._world.set_analyser(self._angle if value else None)


class SimFlipMirror(FlipMirror):
    """Flip mirror between the HBT SPADs and the spectrometer (0.5 s to flip)."""

    def __init__(self, world: World):
        self._world = world

    def _read_position(self) -> str:
        self._world.faults.before_io("flip_mirror")
        return self._world.light_path

    def _write_position(self, value: str) -> None:
        self._world.faults.before_io("flip_mirror")
        if value != self._world.light_path:
            self._world.clock.sleep(0.5)
        self._world.set_light_path(value)


class SimCamera(Camera):
    """sCMOS wide-field camera (Pierini et al. and D'Amato et al.: Hamamatsu ORCA-Flash 4.0) on the
    world.

    The field of view is centred on the stage position; each emitter's brightness is its
    LED-driven emission averaged over the exposure (blinking, bleaching), times
    ``collection_efficiency``. Noise model: ``render.render_widefield_frame``.
    """

    def __init__(
        self,
        world: World,
        shape_px=(256, 256),
        pixel_um: float = 0.1625,
        collection_efficiency: float = 0.05,
        cosmic_rate_per_cm2_s: float = 0.01,
    ):
        super().__init__((1e-4, 100.0))
        self._world = world
        self.shape_px = tuple(shape_px)
        self._pixel_um = pixel_um
        self.collection_efficiency = collection_efficiency
        self.cosmic_rate_per_cm2_s = cosmic_rate_per_cm2_s

    @property
    def pixel_um(self) -> float:
        return self._pixel_um

    def field_um(self) -> tuple[tuple[float, float], tuple[float, float]]:
        x, y, _ = self._world.actual_focus_um()  # the sample really under the objective
        h, w = self.shape_px
        x0, y0 = x - w * self._pixel_um / 2, y - h * self._pixel_um / 2
        return (x0, x0 + w * self._pixel_um), (y0, y0 + h * self._pixel_um)

    def acquire(self) -> np.ndarray:
        self._world.faults.before_io("camera")
        clock = self._world.clock
        a = clock.now_ps()
        clock.sleep(self.exposure_s)
        b = clock.now_ps()
        xr, yr = self.field_um()
        x, y, rate = self._world.widefield_emission(a, b, xr, yr)
        rng = np.random.default_rng([self._world.seed, 0xCA3, a & 0xFFFFFFFF, a >> 32])
        return render_widefield_frame(
            rng,
            shape_px=self.shape_px,
            pixel_um=self._pixel_um,
            origin_um=(xr[0], yr[0]),
            x_um=x,
            y_um=y,
            photons_per_s=rate * self.collection_efficiency,
            exposure_s=self.exposure_s,
            cosmic_rate_per_cm2_s=self.cosmic_rate_per_cm2_s,
        )


class SimSpectrometer(Spectrometer):
    """Grating spectrometer with a cooled CCD: spectra of the emitters at the focus when the
    flip mirror sends the light to it. Noise model: ``render_spectrum``."""

    def __init__(
        self, world: World, range_nm=(400.0, 800.0), n_pixels: int = 1024, efficiency: float = 0.3
    ):
        super().__init__((1e-3, 3600.0))
        self._world = world
        self._wl = np.linspace(range_nm[0], range_nm[1], n_pixels)
        self.efficiency = efficiency

    @property
    def wavelengths_nm(self) -> np.ndarray:
        return self._wl

    def acquire(self) -> np.ndarray:
        self._world.faults.before_io("spectrometer")
        clock = self._world.clock
        a = clock.now_ps()
        clock.sleep(self.integration_s)
        b = clock.now_ps()
        comps = [
            (r * self.efficiency, cew, fwhm, tail)
            for r, cew, fwhm, tail in self._world.spectrum_components(a, b)
        ]
        rng = np.random.default_rng([self._world.seed, 0x5BEC, a & 0xFFFFFFFF, a >> 32])
        return render_spectrum(
            rng, wavelengths_nm=self._wl, components=comps, exposure_s=self.integration_s
        )


class SimScanClock(ScanClock):
    """NI-DAQ-like hardware-timed raster on the simulated stage, with pixel markers into the
    simulated tagger (``marker_channel``). Starting takes ``latency_s`` (task start)."""

    def __init__(self, world: World, travel_um, latency_s: float = 1e-3):
        super().__init__(travel_um)
        self._world = world
        self.latency_s = latency_s
        self._end_ps: int | None = None

    def start(self) -> float:
        self._world.faults.before_io("daq")
        if self._loaded is None:
            raise RuntimeError("no raster loaded: call load_raster() first")
        xyz, dwell, marker = self._loaded
        t0 = self._world.clock.now_ps() + int(self.latency_s * 1e12)
        self._end_ps = self._world.schedule_scan(t0, int(round(dwell * 1e12)), xyz, marker)
        return t0 * 1e-12

    def is_done(self) -> bool:
        return self._end_ps is None or self._world.clock.now_ps() >= self._end_ps

    def wait_done(self) -> None:
        if self._end_ps is not None:
            self._world.clock.advance_to_ps(self._end_ps)

    def stop(self) -> None:
        if self._end_ps is not None and not self.is_done():
            self._world.cancel_scan()
        self._end_ps = None

    def safe_state(self) -> None:
        self.stop()
