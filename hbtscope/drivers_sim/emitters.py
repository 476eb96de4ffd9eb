"""The ground truth of one simulated emitter, and its three-state blinking dynamics.

States (type-A blinking, seeds 000/001): 0 = bright (neutral exciton: ``qy_x``, ``tau_x_ns``),
1 = grey (charged/trion: short lifetime, low QY; fast flicker), 2 = off/dim (slow blinking;
``qy_off`` may be 0), 3 = bleached (absorbing). Switching is a continuous-time Markov chain
whose rates out of the bright state grow with the excitation (photo-charging), the return
rates do not:

    k_0->j(t) = k_0->j at P_sat * (x(t)/x_sat)**blink_exponent,  x = 1 - exp(-<N>)
    (pulsed: fraction of pulses that excite; CW: k_exc/(k_exc + 1/tau_x)), x_sat = 1 - 1/e;
    blink_exponent is 1 by default, 0 where a seed reports rates independent of the power.

Bleaching: each emitter has a dose threshold D_b (absorbed photons) drawn from a Weibull law
S(D) = exp(-(D/D_scale)^k), k > 1, so the hazard grows with the dose (seed 000 Fig. 4b,
seed 001 Fig. 2a); D_scale shrinks with dilution (preset table).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit
from scipy.linalg import expm

N_STATES = 3  # bright, grey, off; "bleached" is handled outside the chain
BLEACHED = 3


@dataclass(frozen=True)
class Emitter:
    """Ground truth of one emitter (positions in sample coordinates, µm)."""

    index: int
    x_um: float
    y_um: float
    z_um: float
    qy_x: float
    qy_xx: float
    tau_x_ns: float
    tau_xx_ns: float
    sigma_abs_cm2: float
    spot: int = 0  # emitters of one cluster share a spot number
    cluster_size: int = 1
    species: str = "custom"
    qy_grey: float = 0.1
    tau_grey_ns: float = 2.0
    qy_off: float = 0.0
    tau_off_ns: float = 1.0
    # switching rates (1/s) at P_sat: bright->grey, grey->bright, bright->off, off->bright
    k_bg: float = 0.0
    k_gb: float = 1.0
    k_bo: float = 0.0
    k_ob: float = 1.0
    #: rates out of bright scale as (x/x_sat)**blink_exponent (1: photo-charging, linear in
    #: the excitation; 0: independent of it, as Pierini et al. (seed 000) report up to 2 I_sat)
    blink_exponent: float = 1.0
    bleach_dose: float = math.inf  # absorbed photons at which it bleaches
    cew_nm: float = 510.0
    fwhm_nm: float = 15.0
    tail: float = 0.1
    blueshift_nm_per_exc: float = 0.0
    dipole_deg: float = 0.0
    dolp: float = 0.0
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def state_qy_tau(self) -> tuple[np.ndarray, np.ndarray]:
        """(QY, lifetime in ps) of the exciton in each state (bright, grey, off)."""
        qy = np.array([self.qy_x, self.qy_grey, self.qy_off])
        tau = np.array([self.tau_x_ns, self.tau_grey_ns, self.tau_off_ns]) * 1e3
        return qy, tau

    def rate_matrix(self, excitation_ratio: float) -> np.ndarray:
        """Generator Q (1/s) of the blinking chain at excitation x/x_sat = ``excitation_ratio``."""
        r = max(excitation_ratio, 0.0)
        r = r**self.blink_exponent if r > 0 else 0.0  # no light: no photo-induced switching
        q = np.zeros((N_STATES, N_STATES))
        q[0, 1] = self.k_bg * r
        q[1, 0] = self.k_gb
        q[0, 2] = self.k_bo * r
        q[2, 0] = self.k_ob
        np.fill_diagonal(q, -q.sum(axis=1))
        return q

    def stationary(self, excitation_ratio: float) -> np.ndarray:
        """Fraction of time in bright, grey, off at constant excitation."""
        q = self.rate_matrix(excitation_ratio)
        if not np.any(q):
            return np.array([1.0, 0.0, 0.0])
        a = np.vstack([q.T, np.ones(N_STATES)])
        b = np.zeros(N_STATES + 1)
        b[-1] = 1.0
        p, *_ = np.linalg.lstsq(a, b, rcond=None)
        p = np.clip(p, 0, None)
        return p / p.sum()


@njit(cache=True)
def _ctmc_path(seed, state0, t0_ps, t1_ps, q):
    """Switch times (ps) and states of a CTMC from ``state0`` at t0 until t1."""
    np.random.seed(seed)  # noqa: NPY002 - numba supports only the legacy RNG API
    cap = 64
    times = np.empty(cap, np.int64)
    states = np.empty(cap, np.int64)
    times[0] = t0_ps
    states[0] = state0
    n = 1
    s = state0
    t = float(t0_ps)
    while True:
        out = -q[s, s]
        if out <= 0.0:
            break
        t += np.random.exponential(1e12 / out)  # noqa: NPY002
        if t >= t1_ps:
            break
        u = np.random.random() * out  # noqa: NPY002
        acc = 0.0
        nxt = s
        for j in range(q.shape[0]):
            if j == s:
                continue
            acc += q[s, j]
            if u < acc:
                nxt = j
                break
        s = nxt
        if n >= times.shape[0]:
            t2 = np.empty(2 * n, np.int64)
            s2 = np.empty(2 * n, np.int64)
            t2[:n] = times[:n]
            s2[:n] = states[:n]
            times, states = t2, s2
        times[n] = np.int64(t)
        states[n] = s
        n += 1
    return times[:n], states[:n]


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
        self.dose = 0.0
        self.t_dose_ps = t_ps
        self.dose_rate = 0.0  # absorbed photons per second
        self.excitation_ratio = 0.0
        self.bleach_time_ps: int | None = None if math.isfinite(emitter.bleach_dose) else None
        # the path generated ahead of "now" for the current piece
        self._path_t = np.empty(0, np.int64)
        self._path_s = np.empty(0, np.int64)

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
            if math.isfinite(remaining) and dose_rate > 0:
                self.bleach_time_ps = t_ps + int(max(remaining, 0.0) / dose_rate * 1e12)
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
            self.t_state_ps = t_ps
        self._path_t = self._path_t[:0]
        self._path_s = self._path_s[:0]

    def cew_at(self, t_ps: int) -> float:
        """Central emission wavelength after the blue-shift of the dose so far."""
        return self.e.cew_nm - self.e.blueshift_nm_per_exc * self.dose_at(t_ps)

    # -- blinking path
    def path(self, a_ps: int, b_ps: int, piece_seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Blinking states over [a, b): switch times (first = a) and states (3 = bleached)."""
        q = self.e.rate_matrix(self.excitation_ratio)
        s = self.state
        if a_ps > self.t_state_ps:  # nobody listened since: propagate exactly
            dt_s = (a_ps - self.t_state_ps) * 1e-12
            p = expm(q * dt_s)[s] if np.any(q) else np.eye(N_STATES)[s]
            u = np.random.default_rng(piece_seed ^ 0x5EED).random()
            s = int(min(np.searchsorted(np.cumsum(p), u, side="right"), N_STATES - 1))
        times, states = _ctmc_path(piece_seed % (2**32), s, a_ps, b_ps, q)
        if self.bleach_time_ps is not None and self.bleach_time_ps < b_ps:
            tb = max(self.bleach_time_ps, a_ps)
            keep = times < tb
            times = np.append(times[keep], tb)
            states = np.append(states[keep], BLEACHED)
        self._path_t, self._path_s = times, states
        self.state = int(states[-1]) if states[-1] != BLEACHED else self.state
        self.t_state_ps = b_ps
        return times, states

    def truncate(self, t_ps: int) -> None:
        """Forget the path beyond t_ps (the world changes at t_ps)."""
        if self._path_t.size and self._path_t[0] <= t_ps:
            i = int(np.searchsorted(self._path_t, t_ps, side="right")) - 1
            st = int(self._path_s[i])
            self.state = st if st != BLEACHED else self.state
            self.t_state_ps = t_ps
            self._path_t = self._path_t[:0]
            self._path_s = self._path_s[:0]
