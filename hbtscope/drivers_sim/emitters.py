"""The three-state blinking dynamics of one simulated emitter (its ground truth, :class:`Emitter`,
is defined in :mod:`hbtscope.drivers_sim.model`).

States (type-A blinking, Pierini et al. and D'Amato et al.): 0 = bright (neutral exciton: ``qy_x``,
``tau_x_ns``), 1 = grey (charged/trion: short lifetime, low QY; fast flicker), 2 = off/dim (slow
blinking; ``qy_off`` may be 0), 3 = bleached (absorbing). Switching is a continuous-time Markov
chain whose rates out of the bright state grow with the excitation (photo-charging), the return
rates do not:

    k_0->j(t) = k_0->j at P_sat * (x(t)/x_sat)**blink_exponent,  x = 1 - exp(-<N>)
    (pulsed: fraction of pulses that excite; CW: k_exc/(k_exc + 1/tau_x)), x_sat = 1 - 1/e;
    blink_exponent is 1 by default, 0 where a seed reports rates independent of the power.

Bleaching: each emitter has a dose threshold D_b (absorbed photons) drawn from a Weibull law
S(D) = exp(-(D/D_scale)^k), k > 1, so the hazard grows with the dose (Pierini et al. Fig. 4b,
D'Amato et al. Fig. 2a); D_scale shrinks with dilution (preset table).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from scipy.linalg import expm

from hbtscope.drivers_sim.model import N_STATES, Emitter

BLEACHED = 3  # the state after the three of the blinking chain (N_STATES)
__all__ = ["BLEACHED", "N_STATES", "Emitter", "EmitterDynamics"]


@njit(cache=True, nogil=True)
def _draw_multiplier(m, span, c):
    """A rate multiplier x c with density of x ∝ x^(m-2) on [1, span] (none: 1)."""
    if m <= 0.0:
        return 1.0
    u = np.random.random()  # noqa: NPY002
    p1 = m - 1.0
    if abs(p1) < 1e-12:
        x = span**u
    else:
        x = (1.0 + u * (span**p1 - 1.0)) ** (1.0 / p1)
    return x * c


@njit(cache=True, nogil=True)
def _ctmc_path(seed, state0, t0_ps, t1_ps, q, mult0, m, span, c):
    """Switch times (ps), states and bright<->off rate multipliers of the blinking chain
    from ``state0`` at t0 until t1.

    The bright->off and off->bright rates are multiplied by the current period's multiplier
    (``mult0`` at the start), redrawn at every ON<->OFF switch (power-law dwell times,
    :meth:`Emitter.powerlaw_params`); with ``m = 0`` the multiplier is 1 (a Markov chain).
    """
    np.random.seed(seed)  # noqa: NPY002 - numba supports only the legacy RNG API
    cap = 64
    times = np.empty(cap, np.int64)
    states = np.empty(cap, np.int64)
    mults = np.empty(cap, np.float64)
    times[0] = t0_ps
    states[0] = state0
    mults[0] = mult0
    n = 1
    s = state0
    x = mult0
    t = float(t0_ps)
    ns = q.shape[0]
    rates = np.empty(ns)
    while True:
        out = 0.0
        for j in range(ns):
            r = q[s, j] if j != s else 0.0
            if (s == 0 and j == 2) or (s == 2 and j == 0):
                r *= x
            rates[j] = r
            out += r
        if out <= 0.0:
            break
        t += np.random.exponential(1e12 / out)  # noqa: NPY002
        if t >= t1_ps:
            break
        u = np.random.random() * out  # noqa: NPY002
        acc = 0.0
        nxt = s
        for j in range(ns):
            if j == s:
                continue
            acc += rates[j]
            if u < acc:
                nxt = j
                break
        if (s == 0 and nxt == 2) or (s == 2 and nxt == 0):
            x = _draw_multiplier(m, span, c)  # a new ON or OFF period
        s = nxt
        if n >= times.shape[0]:
            t2 = np.empty(2 * n, np.int64)
            s2 = np.empty(2 * n, np.int64)
            m2 = np.empty(2 * n, np.float64)
            t2[:n] = times[:n]
            s2[:n] = states[:n]
            m2[:n] = mults[:n]
            times, states, mults = t2, s2, m2
        times[n] = np.int64(t)
        states[n] = s
        mults[n] = x
        n += 1
    return times[:n], states[:n], mults[:n]


class EmitterDynamics:
    """The time-dependent state of one emitter: blinking path, dose, bleaching, blue-shift.

    Conditions (excitation, dose rate) are constant between calls of :meth:`set_conditions`,
    which the world makes at every change. The blinking path is generated piece by piece with
    seeds keyed by the piece start, and propagated exactly across gaps nobody listened to
    (transition matrix exp(Q Δt)).
    """

    def __init__(self, emitter: Emitter, seed: int, t_ps: int = 0):
        self.e = emitter
        self.seed = seed
        self.state = 0
        self.t_state_ps = t_ps
        self._pl = emitter.powerlaw_params()
        self.mult = 1.0 if self._pl[0] <= 0 else self._draw_mult(seed)
        self.dose = 0.0
        self.t_dose_ps = t_ps
        self.dose_rate = 0.0  # absorbed photons per second
        self.excitation_ratio = 0.0
        self.bleach_time_ps: int | None = None if math.isfinite(emitter.bleach_dose) else None
        # the path generated ahead of "now" for the current piece
        self._path_t = np.empty(0, np.int64)
        self._path_s = np.empty(0, np.int64)
        self._path_m = np.empty(0, np.float64)

    def _draw_mult(self, seed: int) -> float:
        m, span, c = self._pl
        u = np.random.default_rng(seed ^ 0xB11C).random()
        p1 = m - 1.0
        x = span**u if abs(p1) < 1e-12 else (1.0 + u * (span**p1 - 1.0)) ** (1.0 / p1)
        return float(x * c)

    # -- dose and bleaching
    def dose_at(self, t_ps: int) -> float:
        return self.dose + self.dose_rate * max(0, t_ps - self.t_dose_ps) * 1e-12

    def bleached_at(self, t_ps: int) -> bool:
        return self.bleach_time_ps is not None and t_ps >= self.bleach_time_ps

    def force_bleach_at(self, t_ps: int) -> None:
        """Fault injection: this emitter bleaches at t_ps whatever its dose."""
        self.forced_bleach_ps = t_ps
        if self.bleach_time_ps is None or self.bleach_time_ps > t_ps:
            self.bleach_time_ps = t_ps

    def set_conditions(self, t_ps: int, dose_rate: float, excitation_ratio: float) -> None:
        """New constant conditions from t_ps on (call at every change of the world)."""
        self.dose = self.dose_at(t_ps)
        self.t_dose_ps = t_ps
        self._settle_state(t_ps)
        self.dose_rate = dose_rate
        self.excitation_ratio = excitation_ratio
        if self.bleach_time_ps is None or self.bleach_time_ps > t_ps:
            remaining = self.e.bleach_dose - self.dose
            # a vanishing dose rate (an emitter microns from the focus: ~1e-300 /s) puts
            # bleaching beyond any int64 time: never
            wait_ps = max(remaining, 0.0) / dose_rate * 1e12 if dose_rate > 0 else math.inf
            if math.isfinite(remaining) and wait_ps < 2.0**62:
                self.bleach_time_ps = t_ps + int(wait_ps)
            else:
                self.bleach_time_ps = None if remaining > 0 else t_ps
        forced = getattr(self, "forced_bleach_ps", None)
        if forced is not None and (self.bleach_time_ps is None or self.bleach_time_ps > forced):
            self.bleach_time_ps = forced

    def _settle_state(self, t_ps: int) -> None:
        """Fix the blinking state at t_ps from the path generated so far."""
        if self._path_t.size and self._path_t[0] <= t_ps:
            i = int(np.searchsorted(self._path_t, t_ps, side="right")) - 1
            self.state = int(self._path_s[i])
            self.mult = float(self._path_m[i])
            self.t_state_ps = t_ps
        self._path_t = self._path_t[:0]
        self._path_s = self._path_s[:0]
        self._path_m = self._path_m[:0]

    def cew_at(self, t_ps: int) -> float:
        """Central emission wavelength after the blue-shift of the dose so far."""
        return self.e.cew_nm - self.e.blueshift_nm_per_exc * self.dose_at(t_ps)

    # -- blinking path
    def path(self, a_ps: int, b_ps: int, piece_seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Blinking states over [a, b): switch times (first = a) and states (3 = bleached)."""
        q = self.e.rate_matrix(self.excitation_ratio)
        s = self.state
        if a_ps > self.t_state_ps:  # nobody listened since: propagate exactly
            # (with power-law dwell times: with the mean rates, and a new period after)
            dt_s = (a_ps - self.t_state_ps) * 1e-12
            p = expm(q * dt_s)[s] if np.any(q) else np.eye(N_STATES)[s]
            u = np.random.default_rng(piece_seed ^ 0x5EED).random()
            s_new = int(min(np.searchsorted(np.cumsum(p), u, side="right"), N_STATES - 1))
            if self._pl[0] > 0 and (s_new == 2) != (s == 2):
                self.mult = self._draw_mult(piece_seed)
            s = s_new
        m, span, c = self._pl
        times, states, mults = _ctmc_path(
            piece_seed % (2**32), s, a_ps, b_ps, q, self.mult, m, span, c
        )
        if self.bleach_time_ps is not None and self.bleach_time_ps < b_ps:
            tb = max(self.bleach_time_ps, a_ps)
            keep = times < tb
            times = np.append(times[keep], tb)
            states = np.append(states[keep], BLEACHED)
            mults = np.append(mults[keep], mults[keep][-1] if keep.any() else self.mult)
        self._path_t, self._path_s, self._path_m = times, states, mults
        self.mult = float(mults[-1])
        self.state = int(states[-1]) if states[-1] != BLEACHED else self.state
        self.t_state_ps = b_ps
        return times, states

    def truncate(self, t_ps: int) -> None:
        """Forget the path beyond t_ps (the world changes at t_ps)."""
        if self._path_t.size and self._path_t[0] <= t_ps:
            i = int(np.searchsorted(self._path_t, t_ps, side="right")) - 1
            st = int(self._path_s[i])
            self.state = st if st != BLEACHED else self.state
            self.mult = float(self._path_m[i])
            self.t_state_ps = t_ps
            self._path_t = self._path_t[:0]
            self._path_s = self._path_s[:0]
            self._path_m = self._path_m[:0]
