"""Simulated grating spectrometer with a cooled CCD on the world."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hbtscope.drivers_sim.devices._options import options
from hbtscope.drivers_sim.render import render_spectrum
from hbtscope.instruments.imaging import Spectrometer
from hbtscope.instruments.registry import DriverInfo, LimitRule

if TYPE_CHECKING:
    from hbtscope.drivers_sim.world import World


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


def _build(setup, spec, sim=None) -> SimSpectrometer:
    opts = options(setup, "spectrometer")
    if "n_pixels" in opts:
        opts["n_pixels"] = int(opts["n_pixels"])
    return SimSpectrometer(setup.world, **opts)


DRIVERS = [
    DriverInfo(
        "spectrometer",
        "GratingSpectrometer",
        ("sim",),
        (),
        _build,
        "grating spectrometer with CCD, simulated",
        settings=(
            LimitRule("n_pixels", "value", 16, 8192, required=False),
            LimitRule("efficiency", "value", 1e-6, 1.0, required=False),
        ),
    )
]
