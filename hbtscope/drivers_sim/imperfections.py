"""What a real confocal HBT microscope does that an ideal one does not.

Each model is switchable in the setup file (``simulation:``) and documented in
docs/simulator.md. Magnitudes in the default ``sim.yaml`` are those of a typical lab
microscope; every default in ``drivers_sim/model.py`` is "off", so a setup file that says
nothing gets the ideal instrument.

* :func:`crosstalk_clicks` -- SPAD breakdown flash. An avalanche in a silicon SPAD emits a
  faint flash of near-infrared light (Kurtsiefer 2001); in an HBT arm whose two detectors look
  at each other through the beam splitter, a flash photon from one SPAD can fire the other
  one. The coincidence histogram gets narrow peaks at the zero delay +- the optical path
  between the detectors, inside the antibunching dip, which inflate g2(0) unless excluded.
* :class:`OpenLoopPiezo` -- an open-loop piezo stage (Thorlabs MDT693B driving a NanoMax):
  the position follows the commanded voltage with hysteresis (the displacement lags behind
  the command along the direction of motion, by up to ``hysteresis_um`` after a long move)
  and creeps after each step, ``creep_per_decade`` of the step per decade of time after
  ``creep_t0_s`` (the logarithmic creep law of piezo actuators). A go-to-emitter after a
  scan therefore misses by ~0.1 um; refocusing must be closed-loop on counts.
* :func:`laser_emitted_power_W` -- a diode laser whose emitted power is not linear in its
  set point: ``P = P_ref (P_set / P_ref)^gamma``, exact at ``P_ref`` and low at small set
  points for ``gamma > 1`` (near threshold). Only a power meter tells the truth.
"""

from __future__ import annotations

import math

import numpy as np

from hbtscope.drivers_sim._kernels import crosstalk_kernel, rng_state

__all__ = ["OpenLoopPiezo", "crosstalk_clicks", "laser_emitted_power_W"]


def laser_emitted_power_W(set_W: float, reference_W: float, exponent: float) -> float:
    """Emitted power of a laser set to ``set_W``: ``reference_W * (set_W/reference_W)^exponent``.

    ``exponent = 1`` is a linear laser; ``reference_W`` is where set and emitted agree.
    """
    if set_W <= 0 or exponent == 1.0:
        return max(float(set_W), 0.0)
    return float(reference_W * (set_W / reference_W) ** exponent)


def crosstalk_clicks(
    rng: np.random.Generator,
    ts: np.ndarray,
    ch: np.ndarray,
    prob: np.ndarray,
    target: np.ndarray,
    shift_ps: np.ndarray,
    jitter_sigma_ps: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Clicks caused by breakdown flashes of the clicks ``(ts, ch)``.

    A click on channel c fires channel ``target[c]`` with probability ``prob[c]``, at
    ``ts + shift_ps[c]`` plus the target's Gaussian timing jitter (``jitter_sigma_ps`` per
    target channel). ``shift_ps[c]`` is the optical path of the flash plus the difference
    of the two detectors' electronic delays, so the histogram peaks sit at the zero delay
    +- the optical path. Arrays are indexed by tagger channel (0 where nothing happens).
    Returns (times, channels); flashes of flash clicks are neglected (prob^2).
    """
    if ts.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int16)
    t, c = crosstalk_kernel(
        rng_state(int(rng.integers(2**63))),
        np.asarray(ts, np.int64),
        np.asarray(ch, np.int64),
        np.asarray(prob, np.float64),
        np.asarray(target, np.int64),
        np.asarray(shift_ps, np.float64),
        np.asarray(jitter_sigma_ps, np.float64),
    )
    return t, c.astype(np.int16)


class OpenLoopPiezo:
    """Actual position of an open-loop piezo stage for a sequence of commanded positions.

    Hysteresis, per axis: an offset ``o`` (actual - commanded) relaxes, over a travel of
    ``scale_um`` in one direction, towards ``-sign(step) * hysteresis_um``::

        o <- o + (-sign(d) h - o) (1 - exp(-|d| / scale))

    (a smooth backlash / play operator: after a long move the stage lags by h, a reversal
    first takes up the lag). Creep, per axis: each step d keeps moving the stage by
    ``creep * d * log10(1 + (t - t_step) / t0)``; old steps' creep is folded into the
    offset when a new one starts (creep is slow: the error is a few per cent of the last
    step). All zero: the stage goes exactly where it is told.
    """

    def __init__(
        self,
        hysteresis_um: float = 0.0,
        scale_um: float = 2.0,
        creep_per_decade: float = 0.0,
        creep_t0_s: float = 0.1,
    ) -> None:
        self.h = float(hysteresis_um)
        self.scale = float(scale_um)
        self.creep = float(creep_per_decade)
        self.t0_ps = float(creep_t0_s) * 1e12
        self.commanded = np.zeros(3)
        self.offset = np.zeros(3)
        self.last_step = np.zeros(3)
        self.t_step_ps = 0

    @property
    def ideal(self) -> bool:
        return self.h == 0.0 and self.creep == 0.0

    def _creep(self, t_ps: int) -> np.ndarray:
        if self.creep == 0.0 or t_ps <= self.t_step_ps:
            return np.zeros(3)
        return self.creep * self.last_step * math.log10(1.0 + (t_ps - self.t_step_ps) / self.t0_ps)

    def command(self, xyz_um, t_ps: int) -> None:
        """The controller is told to go to ``xyz_um`` at time ``t_ps``."""
        new = np.asarray(xyz_um, dtype=float)
        step = new - self.commanded
        if self.ideal:
            self.commanded = new.copy()
            return
        self.offset = self.offset + self._creep(t_ps)
        moved = step != 0
        if moved.any() and self.h > 0:
            target = -np.sign(step) * self.h
            relax = -np.expm1(-np.abs(step) / self.scale)
            self.offset = np.where(moved, self.offset + (target - self.offset) * relax, self.offset)
        self.commanded = new.copy()
        self.last_step = step
        self.t_step_ps = int(t_ps)

    def actual(self, t_ps: int) -> np.ndarray:
        """Where the stage really is at ``t_ps`` (µm)."""
        if self.ideal:
            return self.commanded.copy()
        return self.commanded + self.offset + self._creep(t_ps)
