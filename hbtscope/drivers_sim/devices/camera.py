"""Simulated sCMOS wide-field camera on the world."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hbtscope.drivers_sim.devices._options import options
from hbtscope.drivers_sim.render import render_widefield_frame
from hbtscope.instruments.imaging import Camera
from hbtscope.instruments.registry import DriverInfo, LimitRule

if TYPE_CHECKING:
    from hbtscope.drivers_sim.world import World


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


def _build(setup, spec, sim=None) -> SimCamera:
    return SimCamera(setup.world, **options(setup, "camera"))


DRIVERS = [
    DriverInfo(
        "camera",
        "SCMOSCamera",
        ("sim",),
        (),
        _build,
        "sCMOS camera (seeds: Hamamatsu ORCA-Flash 4.0), simulated",
        settings=(
            LimitRule("pixel_um", "value", 0.01, 10.0, required=False, unit="µm"),
            LimitRule("collection_efficiency", "value", 1e-6, 1.0, required=False),
        ),
    )
]
