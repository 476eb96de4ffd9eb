"""The simulated microscope's configuration: plain, frozen dataclasses with defaults and units.

One definition of every field, default and allowed range of the simulated world. The allowed
ranges are ``Annotated`` bounds (``annotated_types``), which the setup-file schema
(``hbtscope.config_schema``) enforces with file and line; the cross-field rules are checked in
``__post_init__``, so a configuration built in Python is checked the same way. Nothing here
knows of YAML or pydantic: a notebook builds a :class:`~hbtscope.drivers_sim.world.World`
directly::

    from hbtscope.clock import VirtualClock
    from hbtscope.drivers_sim.model import Emitter, SampleConfig, SimulationConfig
    from hbtscope.drivers_sim.world import World

    config = SimulationConfig(sample=SampleConfig(emitters=[Emitter(x_um=5.0, y_um=5.0)]))
    world = World(config, VirtualClock("fast"))

Every default not given is the ideal instrument: no drift, no afterpulsing, no crosstalk, no
piezo hysteresis or creep, a laser that emits what it is told (docs/simulator.md).
"""

from __future__ import annotations

import functools
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Annotated, Literal

import annotated_types as at
import numpy as np
from annotated_types import Ge, Gt, Interval, Len

from hbtscope.drivers_sim.presets import PRESETS

__all__ = [
    "EMITTER_PROPERTIES",
    "ClockConfig",
    "ConfigError",
    "DetectorConfig",
    "Emitter",
    "EmitterSpot",
    "FaultConfig",
    "LaserConfig",
    "OpticsConfig",
    "PopulationConfig",
    "SampleConfig",
    "SimulationConfig",
    "StageConfig",
    "SyncConfig",
]

#: a number in [0, 1]
Fraction = Annotated[float, Interval(ge=0, le=1)]
#: states of the blinking chain: bright, grey, off ("bleached" is handled outside the chain)
N_STATES = 3


class ConfigError(ValueError):
    """A configuration that breaks a rule of the simulated world; ``field`` names the culprit
    (the setup-file schema points at it)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


_BOUNDS = (
    ("ge", ">=", float.__ge__),
    ("gt", ">", float.__gt__),
    ("le", "<=", float.__le__),
    ("lt", "<", float.__lt__),
)


@functools.cache
def _declared(cls: type) -> tuple[tuple[str, bool, tuple], ...]:
    """Per field of dataclass ``cls``: (name, declared float?, its bounds as (word, op, limit)).

    A field is a float if its type is ``float``, ``Annotated[float, ...]`` or either
    ``| None``; its bounds are the ``annotated_types`` constraints of its ``Annotated`` type.
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in fields(cls):
        tp = hints[f.name]
        options = [a for a in (typing.get_args(tp) or (tp,)) if a is not type(None)]
        if typing.get_origin(tp) is Annotated:
            options = [tp]
        bounds: list[tuple[str, object, float]] = []
        bases = set()
        for opt in options:
            if typing.get_origin(opt) is Annotated:
                base, *meta = typing.get_args(opt)
                for m in meta:
                    for c in m if isinstance(m, at.GroupedMetadata) else [m]:
                        for attr, word, op in _BOUNDS:
                            if getattr(c, attr, None) is not None and not isinstance(c, at.Len):
                                bounds.append((word, op, float(getattr(c, attr))))
                bases.add(base)
            else:
                bases.add(opt)
        is_float = float in bases and int not in bases
        out.append((f.name, is_float, tuple(bounds)))
    return tuple(out)


def check_declared(obj: object) -> None:
    """Hold the frozen dataclass ``obj`` to its declared types and ranges, as the setup-file
    schema does: ints given to ``float`` fields become floats (``Emitter(x_um=5, ...)`` in a
    notebook; the simulator's arrays stay float64), and a number outside its ``Annotated``
    bounds (or NaN) raises :class:`ConfigError` naming the field and the allowed range."""
    for name, is_float, bounds in _declared(type(obj)):
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, int | float):
            continue
        if is_float and isinstance(v, int):
            v = float(v)
            object.__setattr__(obj, name, v)
        if not all(op(float(v), limit) for _, op, limit in bounds):
            allowed = " and ".join(f"{word} {limit:g}" for word, _, limit in bounds)
            raise ConfigError(name, f"{name} out of range: allowed {allowed} (got {v!r})")


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
        check_declared(self)
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


#: a tagger input channel
Channel = Annotated[int, Interval(ge=1, le=64)]
#: a delay on the tagger's time axis (ps)
DelayPs = Annotated[int, Interval(ge=0, le=1_000_000)]

#: the fields of :class:`Emitter` a sample description sets: everything but the World's
#: bookkeeping (index, spot, cluster size, species, extra) and the position
EMITTER_PROPERTIES: tuple[str, ...] = tuple(
    f.name
    for f in fields(Emitter)
    if f.name not in ("index", "spot", "cluster_size", "species", "extra", "x_um", "y_um", "z_um")
)


def _check_preset(preset: str | None) -> None:
    if preset is not None and preset not in PRESETS:
        raise ConfigError(
            "preset", f"unknown preset {preset!r}; allowed: {', '.join(sorted(PRESETS))}"
        )


@dataclass(frozen=True, kw_only=True)
class EmitterSpot:
    """``count`` emitters at one spot (a cluster if ``count`` > 1).

    With ``preset`` (hbtscope.drivers_sim.presets), each emitter's properties are drawn from
    that species at ``dilution``, and ``properties`` (names of :data:`EMITTER_PROPERTIES`)
    replace the drawn values; without, the emitters are ``Emitter(**properties)`` with
    :class:`Emitter`'s defaults for the rest. A plain :class:`Emitter` in
    :attr:`SampleConfig.emitters` is a spot of one.
    """

    x_um: Annotated[float, Interval(ge=-1e4, le=1e4)]
    y_um: Annotated[float, Interval(ge=-1e4, le=1e4)]
    z_um: Annotated[float, Interval(ge=-1e3, le=1e3)] = 0.0
    preset: str | None = None
    #: dilution of the colloid (1: as synthesised; 200: 1:200), sets the bleaching scale
    dilution: Annotated[float, Interval(ge=1, le=1e6)] = 1.0
    count: Annotated[int, Interval(ge=1, le=100)] = 1
    properties: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_declared(self)
        _check_preset(self.preset)
        unknown = sorted(set(self.properties) - set(EMITTER_PROPERTIES))
        if unknown:
            raise ConfigError(
                "properties", f"unknown emitter properties {unknown}; allowed: {EMITTER_PROPERTIES}"
            )
        if self.preset is None:  # the emitter as given must be valid
            Emitter(x_um=self.x_um, y_um=self.y_um, z_um=self.z_um, **self.properties)


@dataclass(frozen=True, kw_only=True)
class PopulationConfig:
    """Emitters of one species preset at Poisson-random positions in ``area_um``."""

    preset: str
    density_per_um2: Annotated[float, Interval(ge=0, le=100)] = 0.05
    dilution: Annotated[float, Interval(ge=1, le=1e6)] = 1.0
    #: [x0, x1, y0, y1] (µm)
    area_um: tuple[float, float, float, float] = (0.0, 80.0, 0.0, 80.0)

    def __post_init__(self) -> None:
        check_declared(self)
        _check_preset(self.preset)
        v = self.area_um
        if not (v[0] < v[1] and v[2] < v[3]):
            raise ConfigError(
                "area_um", f"area_um is [x0, x1, y0, y1] with x0 < x1 and y0 < y1, got {list(v)}"
            )


#: the most emitters a simulated sample may hold: building a world costs ~0.1 ms and ~5 kB
#: per emitter (measured: 1e5 emitters, 12 s and 0.45 GB more than an empty sample)
MAX_EMITTERS = 100_000
EMITTER_BYTES = 5_000


@dataclass(frozen=True, kw_only=True)
class SampleConfig:
    """The sample: a fluorescent substrate, placed emitters and random populations."""

    #: substrate fluorescence detected per watt of excitation (cps/W), lifetime (ns)
    substrate_background_cps_per_W: Annotated[float, Interval(ge=0, le=1e16)] = 1.0e10
    substrate_lifetime_ns: Annotated[float, Interval(gt=0, le=1e4)] = 0.3
    emitters: list[Emitter | EmitterSpot] = field(default_factory=list)
    populations: list[PopulationConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_declared(self)
        expected = self.expected_emitters()
        if expected > MAX_EMITTERS:
            raise ConfigError(
                "populations",
                f"the sample would hold about {expected:.3g} emitters (density x area of each "
                f"population, plus the placed ones); at most {MAX_EMITTERS:,} are simulated "
                f"(~{MAX_EMITTERS * EMITTER_BYTES / 2**30:.1f} GB and seconds to build): "
                "lower density_per_um2 or shrink area_um",
            )

    def expected_emitters(self) -> float:
        """Mean number of emitters of the sample (Poisson populations + placed spots)."""
        placed = sum(getattr(e, "count", 1) for e in self.emitters)
        drawn = sum(
            p.density_per_um2 * (p.area_um[1] - p.area_um[0]) * (p.area_um[3] - p.area_um[2])
            for p in self.populations
        )
        return placed + drawn


@dataclass(frozen=True, kw_only=True)
class OpticsConfig:
    """The confocal path: Gaussian excitation focus, collection, HBT beam splitter."""

    excitation_wavelength_nm: Annotated[float, Interval(ge=200, le=2000)] = 405.0
    #: 1/e² intensity radius of the excitation focus, laterally and axially (µm)
    psf_w_xy_um: Annotated[float, Interval(gt=0.05, le=10)] = 0.25
    psf_w_z_um: Annotated[float, Interval(gt=0.1, le=50)] = 0.8
    #: objective + filters + fibre coupling
    collection_efficiency: Fraction = 0.05
    #: fraction of the collected light sent to the first detector
    split_ratio: Fraction = 0.5
    #: slow thermal drift of the sample against the focus (Baronnier et al.: repeat-and-sum
    #: with drift correction); direction drawn from the seed
    drift_nm_per_min: Annotated[float, Interval(ge=0, le=1e4)] = 0.0
    #: 1/e² radius of the collection spot (pinhole / fibre core imaged at the emission
    #: wavelength); None: as wide as the excitation spot
    collection_w_xy_um: Annotated[float, Interval(gt=0.05, le=10)] | None = None

    def __post_init__(self) -> None:
        check_declared(self)


@dataclass(frozen=True, kw_only=True)
class DetectorConfig:
    """One SPAD of the HBT arm, on one tagger channel."""

    name: str
    tagger_channel: Channel
    efficiency: Fraction = 0.6
    dark_cps: Annotated[float, Interval(ge=0, le=1e7)] = 100.0
    dead_time_ns: Annotated[float, Interval(ge=0, le=1e6)] = 22.0
    jitter_fwhm_ps: Annotated[float, Interval(ge=0, le=1e5)] = 350.0
    #: cable and electronics delay of this channel (ps)
    delay_ps: DelayPs = 2000
    #: afterpulsing: probability per click, mean delay after the dead time (ns)
    afterpulse_prob: Annotated[float, Interval(ge=0, le=0.5)] = 0.0
    afterpulse_tau_ns: Annotated[float, Interval(gt=0, le=1e6)] = 100.0
    #: timing response (IRF) beyond the Gaussian jitter: a diffusion tail of this weight
    jitter_tail_fraction: Fraction = 0.0
    jitter_tail_ps: Annotated[float, Interval(gt=0, le=1e6)] = 300.0
    #: spectral filter in front of this SPAD: [min, max] nm (Baronnier et al.: 530 and 650 nm
    #: bands); None: no filter
    band_nm: tuple[float, float] | None = None
    #: breakdown-flash crosstalk (drivers_sim/imperfections.py): probability per avalanche
    #: that this SPAD's flash fires the other HBT detector, and the flash's optical path (ps)
    crosstalk_prob: Annotated[float, Interval(ge=0, le=0.1)] = 0.0
    crosstalk_delay_ps: DelayPs = 0

    def __post_init__(self) -> None:
        check_declared(self)
        v = self.band_nm
        if v is not None and not (0 <= v[0] < v[1] and math.isfinite(v[1])):
            raise ConfigError(
                "band_nm", f"band_nm is [min, max] with 0 <= min < max < inf, got {list(v)}"
            )


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """Open-loop piezo imperfections of the simulated stage (drivers_sim/imperfections.py)."""

    #: lag behind a long move (µm) and the move length over which it builds up (µm)
    hysteresis_um: Annotated[float, Interval(ge=0, le=10)] = 0.0
    hysteresis_scale_um: Annotated[float, Interval(gt=0, le=100)] = 2.0
    #: creep after a step: fraction of the step per decade of time after creep_t0_s
    creep_per_decade: Annotated[float, Interval(ge=0, le=0.2)] = 0.0
    creep_t0_s: Annotated[float, Interval(gt=0, le=100)] = 0.1

    def __post_init__(self) -> None:
        check_declared(self)


@dataclass(frozen=True, kw_only=True)
class LaserConfig:
    """Emitted versus set power of the simulated laser: P = P_ref (P_set / P_ref)^exponent."""

    power_exponent: Annotated[float, Interval(ge=0.5, le=3)] = 1.0
    power_reference_W: Annotated[float, Interval(gt=0, le=10)] = 1.0e-6

    def __post_init__(self) -> None:
        check_declared(self)


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    """The laser's sync output on the tagger."""

    tagger_channel: Channel = 1
    delay_ps: DelayPs = 0

    def __post_init__(self) -> None:
        check_declared(self)


@dataclass(frozen=True, kw_only=True)
class ClockConfig:
    """Virtual time: as fast as possible, real time, or ``speed`` times real time."""

    mode: Literal["fast", "realtime", "scaled"] = "fast"
    #: virtual/wall time in ``scaled`` mode; below 0.1 (ten times slower than real time) a
    #: run would look hung, so it is refused
    speed: Annotated[float, Interval(ge=0.1, le=1e9)] = 1.0

    def __post_init__(self) -> None:
        check_declared(self)


FaultKind = Literal["timeout", "disconnect", "tagger_overflow", "bleach"]


@dataclass(frozen=True, kw_only=True)
class FaultConfig:
    """One injected fault (hbtscope.drivers_sim.faults): which, on which role, when (s)."""

    kind: FaultKind
    role: str | None = None
    at_s: Annotated[float, Interval(ge=0, le=1e9)] | None = None
    #: per-request probability of a timeout (instead of, or besides, at_s)
    probability: Fraction = 0.0
    duration_s: Annotated[float, Interval(gt=0, le=3600)] = 0.1
    #: index of the emitter a ``bleach`` fault bleaches
    emitter: Annotated[int, Ge(0)] | None = None

    def __post_init__(self) -> None:
        check_declared(self)
        if self.kind in ("timeout", "disconnect"):
            if not self.role:
                raise ConfigError("role", f"{self.kind} needs role (an instrument role)")
            if self.at_s is None and not (self.kind == "timeout" and self.probability > 0):
                raise ValueError(f"{self.kind} needs at_s (or, for a timeout, probability)")
        if self.kind == "tagger_overflow" and self.at_s is None:
            raise ValueError("tagger_overflow needs at_s (and duration_s)")
        if self.kind == "bleach" and (self.at_s is None or self.emitter is None):
            raise ValueError("bleach needs emitter (index) and at_s")


def _two_spads() -> list[DetectorConfig]:
    return [
        DetectorConfig(name="spad_a", tagger_channel=2),
        DetectorConfig(name="spad_b", tagger_channel=3),
    ]


@dataclass(frozen=True, kw_only=True)
class SimulationConfig:
    """The whole simulated world: what :class:`~hbtscope.drivers_sim.world.World` takes."""

    #: every random draw of the world follows from this seed
    seed: Annotated[int, Interval(ge=0, lt=2**63)] = 0
    clock: ClockConfig = field(default_factory=ClockConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    optics: OpticsConfig = field(default_factory=OpticsConfig)
    detectors: Annotated[list[DetectorConfig], Len(1, 8)] = field(default_factory=_two_spads)
    sync: SyncConfig = field(default_factory=SyncConfig)
    stage: StageConfig = field(default_factory=StageConfig)
    laser: LaserConfig = field(default_factory=LaserConfig)
    faults: list[FaultConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_declared(self)
        if not 1 <= len(self.detectors) <= 8:
            raise ValueError(f"between 1 and 8 detectors, got {len(self.detectors)}")
        chans = [d.tagger_channel for d in self.detectors] + [self.sync.tagger_channel]
        if len(set(chans)) != len(chans):
            raise ValueError(f"detector and sync tagger channels must all differ, got {chans}")
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique, got {names}")
