"""The ground truth of one simulated emitter, and its three-state blinking dynamics.

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

import functools
import math
import typing
from dataclasses import dataclass, field, fields
from typing import Annotated

import numpy as np
from annotated_types import Gt, Interval
from numba import njit
from scipy.linalg import expm

#: a number in [0, 1]
Fraction = Annotated[float, Interval(ge=0, le=1)]

N_STATES = 3  # bright, grey, off; "bleached" is handled outside the chain
BLEACHED = 3


class ConfigError(ValueError):
    """A configuration that breaks a rule of the simulated world; ``field`` names the culprit
    (the setup-file schema points at it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@functools.cache
def _float_fields(cls: type) -> tuple[str, ...]:
    """Names of the fields of dataclass ``cls`` declared ``float`` (possibly Annotated, or
    ``float | None``)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in fields(cls):
        tp = hints[f.name]
        args = {tp} | set(typing.get_args(tp))
        args |= {typing.get_args(a)[0] for a in list(args) if typing.get_origin(a) is Annotated}
        if float in args and int not in args:
            out.append(f.name)
    return tuple(out)


def floats_as_declared(obj: object) -> None:
    """Turn the ints given to the ``float`` fields of the frozen dataclass ``obj`` into floats
    (``Emitter(x_um=5, ...)`` in a notebook), so the simulator's arrays are float64 whatever
    was typed."""
    for name in _float_fields(type(obj)):
        v = getattr(obj, name)
        if isinstance(v, int) and not isinstance(v, bool):
            object.__setattr__(obj, name, float(v))


@dataclass(frozen=True, kw_only=True)
class Emitter:
    """Ground truth of one emitter: position (sample coordinates, µm) and photophysics.

    The one definition of an emitter's fields, defaults and allowed ranges (the ``Annotated``
    bounds, which the setup-file schema enforces). A notebook builds one with
    ``Emitter(x_um=10.0, y_um=10.0)`` and gets a bright, non-blinking, non-bleaching emitter;
    the :class:`~hbtscope.drivers_sim.world.World` assigns ``index``, ``spot`` and
    ``cluster_size`` when it places it in the sample.
    """

    x_um: Annotated[float, Interval(ge=-1e4, le=1e4)]
    y_um: Annotated[float, Interval(ge=-1e4, le=1e4)]
    z_um: Annotated[float, Interval(ge=-1e3, le=1e3)] = 0.0
    #: exciton (X) and biexciton (XX) quantum yields; g2(0) -> qy_xx/qy_x at low power
    qy_x: Annotated[float, Interval(gt=0, le=1)] = 0.8
    qy_xx: Fraction = 0.04
    tau_x_ns: Annotated[float, Interval(gt=0, le=1e4)] = 10.0
    tau_xx_ns: Annotated[float, Interval(gt=0, le=1e4)] = 0.8
    #: absorption cross-section at the excitation wavelength (cm²)
    sigma_abs_cm2: Annotated[float, Interval(gt=0, le=1e-10)] = 1.0e-13
    index: int = 0  # position in the World's emitter list
    spot: int = 0  # emitters of one cluster share a spot number
    cluster_size: int = 1
    species: str = "custom"
    #: blinking (type-A): QY and lifetime of the grey (trion) and off states
    qy_grey: Fraction = 0.1
    tau_grey_ns: Annotated[float, Interval(gt=0, le=1e4)] = 2.0
    qy_off: Fraction = 0.0
    tau_off_ns: Annotated[float, Interval(gt=0, le=1e4)] = 1.0
    #: switching rates (1/s) at P_sat: bright->grey, grey->bright, bright->off, off->bright
    k_bg: Annotated[float, Interval(ge=0, le=1e9)] = 0.0
    k_gb: Annotated[float, Interval(gt=0, le=1e9)] = 1.0
    k_bo: Annotated[float, Interval(ge=0, le=1e9)] = 0.0
    k_ob: Annotated[float, Interval(gt=0, le=1e9)] = 1.0
    #: rates out of bright scale as (x/x_sat)**blink_exponent (1: photo-charging, linear in
    #: the excitation; 0: independent of it, as Pierini et al. report up to 2 I_sat)
    blink_exponent: Annotated[float, Interval(ge=0, le=4)] = 1.0
    #: absorbed photons at which it bleaches (inf: never)
    bleach_dose: Annotated[float, Gt(0)] = math.inf
    #: emission spectrum: centre wavelength, FWHM, red-tail weight, blue-shift per excitation
    cew_nm: Annotated[float, Interval(ge=200, le=2000)] = 510.0
    fwhm_nm: Annotated[float, Interval(gt=0, le=500)] = 15.0
    tail: Fraction = 0.1
    blueshift_nm_per_exc: Annotated[float, Interval(ge=0, le=1e-3)] = 0.0
    #: emission dipole angle (degrees) and degree of linear polarisation
    dipole_deg: Annotated[float, Interval(ge=-360, le=360)] = 0.0
    dolp: Fraction = 0.0
    #: power-law ON/OFF dwell times (Shimizu et al. 2001; Kuno et al.): 0 = exponential;
    #: 1 < m < 3: each ON and each OFF period gets its own bright<->off rate, drawn with
    #: density ∝ k^(m-2) over a range ``powerlaw_span`` wide, so dwell times are ∝ t^-m
    #: between the range's ends; the mean dwell (hence the ON fraction) is unchanged
    powerlaw_m: Annotated[float, Interval(ge=0, le=3)] = 0.0
    powerlaw_span: Annotated[float, Interval(ge=1, le=1e8)] = 1.0e3
    #: photobrightening: the PL starts low by this fraction and recovers as
    #: 1 - a exp(-dose / brightening_dose) with the absorbed dose (photons)
    brightening_fraction: Annotated[float, Interval(ge=0, le=0.95)] = 0.0
    brightening_dose: Annotated[float, Interval(gt=0, le=1e20)] = 1.0e9
    #: uncorrelated light from the matrix around the emitter, within its detection band,
    #: as a fraction of the emitter's own detected rate (Baronnier et al.: the QDs enhance
    #: the perovskite's PL around them; CW antibunching contrast C = 1/(1 + ratio)^2)
    local_background_ratio: Annotated[float, Interval(ge=0, le=100)] = 0.0
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        floats_as_declared(self)
        if self.powerlaw_m != 0 and not 1 < self.powerlaw_m < 3:
            raise ConfigError(
                "powerlaw_m",
                f"powerlaw_m is 0 (exponential) or between 1 and 3, got {self.powerlaw_m}",
            )

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

    def powerlaw_params(self) -> tuple[float, float, float]:
        """(m, span, c) of the per-period rate multipliers (0, 1, 1: none); c makes the
        multiplier's E[1/x] = 1, so the mean ON and OFF dwell times are the Markov ones."""
        m, span = float(self.powerlaw_m), float(self.powerlaw_span)
        if m <= 0.0 or span <= 1.0:
            return 0.0, 1.0, 1.0

        def integral(p: float) -> float:  # int_1^span x^p dx
            return math.log(span) if abs(p + 1.0) < 1e-12 else (span ** (p + 1) - 1) / (p + 1)

        return m, span, integral(m - 3.0) / integral(m - 2.0)

    def brightness(self, dose: float) -> float:
        """PL relative to the fully brightened emitter after an absorbed ``dose``."""
        if self.brightening_fraction <= 0.0:
            return 1.0
        return 1.0 - self.brightening_fraction * math.exp(-dose / self.brightening_dose)

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


@njit(cache=True)
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
