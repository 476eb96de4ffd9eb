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

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Annotated, Literal

from annotated_types import Ge, Interval, Len

from hbtscope.drivers_sim.emitters import ConfigError, Emitter, Fraction, floats_as_declared
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
        floats_as_declared(self)
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
        floats_as_declared(self)
        _check_preset(self.preset)
        v = self.area_um
        if not (v[0] < v[1] and v[2] < v[3]):
            raise ConfigError(
                "area_um", f"area_um is [x0, x1, y0, y1] with x0 < x1 and y0 < y1, got {list(v)}"
            )


@dataclass(frozen=True, kw_only=True)
class SampleConfig:
    """The sample: a fluorescent substrate, placed emitters and random populations."""

    #: substrate fluorescence detected per watt of excitation (cps/W), lifetime (ns)
    substrate_background_cps_per_W: Annotated[float, Interval(ge=0, le=1e16)] = 1.0e10
    substrate_lifetime_ns: Annotated[float, Interval(gt=0, le=1e4)] = 0.3
    emitters: list[Emitter | EmitterSpot] = field(default_factory=list)
    populations: list[PopulationConfig] = field(default_factory=list)

    def __post_init__(self) -> None:
        floats_as_declared(self)


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
        floats_as_declared(self)


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
        floats_as_declared(self)
        v = self.band_nm
        if v is not None and not (0 <= v[0] < v[1]):
            raise ConfigError(
                "band_nm", f"band_nm is [min, max] with 0 <= min < max, got {list(v)}"
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
        floats_as_declared(self)


@dataclass(frozen=True, kw_only=True)
class LaserConfig:
    """Emitted versus set power of the simulated laser: P = P_ref (P_set / P_ref)^exponent."""

    power_exponent: Annotated[float, Interval(ge=0.5, le=3)] = 1.0
    power_reference_W: Annotated[float, Interval(gt=0, le=10)] = 1.0e-6

    def __post_init__(self) -> None:
        floats_as_declared(self)


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    """The laser's sync output on the tagger."""

    tagger_channel: Channel = 1
    delay_ps: DelayPs = 0

    def __post_init__(self) -> None:
        floats_as_declared(self)


@dataclass(frozen=True, kw_only=True)
class ClockConfig:
    """Virtual time: as fast as possible, real time, or ``speed`` times real time."""

    mode: Literal["fast", "realtime", "scaled"] = "fast"
    speed: Annotated[float, Interval(gt=0, le=1e9)] = 1.0

    def __post_init__(self) -> None:
        floats_as_declared(self)


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
        floats_as_declared(self)
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
        floats_as_declared(self)
        if not 1 <= len(self.detectors) <= 8:
            raise ValueError(f"between 1 and 8 detectors, got {len(self.detectors)}")
        chans = [d.tagger_channel for d in self.detectors] + [self.sync.tagger_channel]
        if len(set(chans)) != len(chans):
            raise ValueError(f"detector and sync tagger channels must all differ, got {chans}")
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique, got {names}")
