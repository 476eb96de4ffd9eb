"""The setup file: schema, loading, and line-numbered errors.

A setup file (YAML) names each instrument *role* with its driver, backend and limits, the
calibrations, the data directory and — for the simulated microscope — the world to simulate.
Validation happens before anything is opened, so a bad file never moves or fires anything.
Every error names the file, the line and what is allowed (:class:`SetupFileError`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ROLES = (
    "laser",
    "stage",
    "led",
    "spectrometer",
    "camera",
    "tagger",
    "powermeter",
    "polariser",
    "flip_mirror",
    "daq",
)


class SetupFileError(ValueError):
    """A setup file that cannot be used; the message names file, line and what is allowed."""

    def __init__(self, path: str | Path, line: int | None, where: str, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.where = where
        self.problem = message
        loc = f"{self.path}, line {line}" if line else self.path
        field = f" ({where})" if where else ""
        super().__init__(f"{loc}{field}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Channel = Annotated[int, Field(ge=1, le=64)]


# ----------------------------------------------------------------------------- simulation
def _check_preset(v: str | None) -> str | None:
    from hbtscope.drivers_sim.presets import PRESETS

    if v is not None and v not in PRESETS:
        raise ValueError(f"unknown preset {v!r}; allowed: {', '.join(sorted(PRESETS))}")
    return v


class EmitterSpec(_Strict):
    """One emitter (or a cluster of ``count`` identical emitters at one spot).

    With ``preset``, every property not given here is drawn from that species preset
    (hbtscope.drivers_sim.presets); without, the defaults below apply (no blinking, no
    bleaching).
    """

    preset: str | None = None
    dilution: Annotated[float, Field(ge=1, le=1e6)] = 1.0
    x_um: Annotated[float, Field(ge=-1e4, le=1e4, allow_inf_nan=False)]
    y_um: Annotated[float, Field(ge=-1e4, le=1e4, allow_inf_nan=False)]
    z_um: Annotated[float, Field(ge=-1e3, le=1e3, allow_inf_nan=False)] = 0.0
    qy_x: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.8
    qy_xx: Fraction = 0.04
    tau_x_ns: Annotated[float, Field(gt=0, le=1e4, allow_inf_nan=False)] = 10.0
    tau_xx_ns: Annotated[float, Field(gt=0, le=1e4, allow_inf_nan=False)] = 0.8
    sigma_abs_cm2: Annotated[float, Field(gt=0, le=1e-10, allow_inf_nan=False)] = 1.0e-13
    count: Annotated[int, Field(ge=1, le=100)] = 1
    # blinking (type-A): grey and off states, switching rates (1/s) out of bright at P_sat
    qy_grey: Fraction = 0.1
    tau_grey_ns: Annotated[float, Field(gt=0, le=1e4)] = 2.0
    qy_off: Fraction = 0.0
    tau_off_ns: Annotated[float, Field(gt=0, le=1e4)] = 1.0
    k_bg: Annotated[float, Field(ge=0, le=1e9)] = 0.0
    k_gb: Annotated[float, Field(gt=0, le=1e9)] = 1.0
    k_bo: Annotated[float, Field(ge=0, le=1e9)] = 0.0
    k_ob: Annotated[float, Field(gt=0, le=1e9)] = 1.0
    # rates out of bright scale as (excitation / excitation at P_sat) ** blink_exponent
    blink_exponent: Annotated[float, Field(ge=0, le=4)] = 1.0
    bleach_dose: Annotated[float, Field(gt=0)] = float("inf")  # absorbed photons
    # spectrum and polarisation
    cew_nm: Annotated[float, Field(ge=200, le=2000)] = 510.0
    fwhm_nm: Annotated[float, Field(gt=0, le=500)] = 15.0
    tail: Fraction = 0.1
    blueshift_nm_per_exc: Annotated[float, Field(ge=0, le=1e-3)] = 0.0
    dipole_deg: Annotated[float, Field(ge=-360, le=360)] = 0.0
    dolp: Fraction = 0.0
    # power-law ON/OFF dwell times (drivers_sim/emitters.py): exponent m (0 = exponential,
    # else 1 < m < 3) and the span of the dwell-time scales it covers
    powerlaw_m: Annotated[float, Field(ge=0, le=3)] = 0.0
    powerlaw_span: Annotated[float, Field(ge=1, le=1e8)] = 1.0e3
    # photobrightening: PL starts low by this fraction, recovers with the absorbed dose
    brightening_fraction: Annotated[float, Field(ge=0, le=0.95)] = 0.0
    brightening_dose: Annotated[float, Field(gt=0, le=1e20)] = 1.0e9
    # uncorrelated matrix light around the emitter (CW), fraction of its detected rate
    local_background_ratio: Annotated[float, Field(ge=0, le=100)] = 0.0

    _known_preset = field_validator("preset")(_check_preset)

    @field_validator("powerlaw_m")
    @classmethod
    def _powerlaw_range(cls, v: float) -> float:
        if v != 0 and not 1 < v < 3:
            raise ValueError(f"powerlaw_m is 0 (exponential) or between 1 and 3, got {v}")
        return v


class PopulationSpec(_Strict):
    """Emitters of one species preset at random positions (hbtscope.drivers_sim.presets)."""

    preset: str
    density_per_um2: Annotated[float, Field(ge=0, le=100)] = 0.05
    dilution: Annotated[float, Field(ge=1, le=1e6)] = 1.0
    area_um: tuple[float, float, float, float] = (0.0, 80.0, 0.0, 80.0)

    _known_preset = field_validator("preset")(_check_preset)

    @field_validator("area_um")
    @classmethod
    def _ordered_area(cls, v: tuple[float, float, float, float]):
        if not (v[0] < v[1] and v[2] < v[3]):
            raise ValueError(f"area_um is [x0, x1, y0, y1] with x0 < x1 and y0 < y1, got {list(v)}")
        return v


class SampleSpec(_Strict):
    substrate_background_cps_per_W: NonNegFloat = 1.0e10
    substrate_lifetime_ns: PositiveFloat = 0.3
    emitters: list[EmitterSpec] = Field(default_factory=list)
    populations: list[PopulationSpec] = Field(default_factory=list)


class OpticsSpec(_Strict):
    excitation_wavelength_nm: Annotated[float, Field(ge=200, le=2000)] = 405.0
    psf_w_xy_um: Annotated[float, Field(gt=0.05, le=10)] = 0.25
    psf_w_z_um: Annotated[float, Field(gt=0.1, le=50)] = 0.8
    collection_efficiency: Fraction = 0.05
    split_ratio: Fraction = 0.5
    # slow thermal drift of the sample against the focus (Baronnier et al.: repeat-and-sum with
    # drift correction); direction drawn from the seed
    drift_nm_per_min: Annotated[float, Field(ge=0, le=1e4)] = 0.0
    # 1/e^2 radius of the collection spot (pinhole / fibre core imaged at the emission
    # wavelength); None: as wide as the excitation spot
    collection_w_xy_um: Annotated[float, Field(gt=0.05, le=10)] | None = None


class DetectorSpec(_Strict):
    name: str
    tagger_channel: Channel
    efficiency: Fraction = 0.6
    dark_cps: Annotated[float, Field(ge=0, le=1e7)] = 100.0
    dead_time_ns: Annotated[float, Field(ge=0, le=1e6)] = 22.0
    jitter_fwhm_ps: Annotated[float, Field(ge=0, le=1e5)] = 350.0
    delay_ps: Annotated[int, Field(ge=0, le=1_000_000)] = 2000
    # afterpulsing: probability per click, mean delay after the dead time
    afterpulse_prob: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    afterpulse_tau_ns: Annotated[float, Field(gt=0, le=1e6)] = 100.0
    # timing response (IRF) beyond the Gaussian jitter: a diffusion tail of this weight
    jitter_tail_fraction: Fraction = 0.0
    jitter_tail_ps: Annotated[float, Field(gt=0, le=1e6)] = 300.0
    # spectral filter in front of this SPAD: [min, max] nm (Baronnier et al.: 530 and 650 nm bands)
    band_nm: tuple[float, float] | None = None
    # breakdown-flash crosstalk (drivers_sim/imperfections.py): probability per avalanche
    # that this SPAD's flash fires the other HBT detector, and the flash's optical path
    crosstalk_prob: Annotated[float, Field(ge=0, le=0.1)] = 0.0
    crosstalk_delay_ps: Annotated[int, Field(ge=0, le=1_000_000)] = 0

    @field_validator("band_nm")
    @classmethod
    def _ordered_band(cls, v):
        if v is not None and not (0 <= v[0] < v[1]):
            raise ValueError(f"band_nm is [min, max] with 0 <= min < max, got {list(v)}")
        return v


class StageSimSpec(_Strict):
    """Open-loop piezo imperfections of the simulated stage (drivers_sim/imperfections.py)."""

    hysteresis_um: Annotated[float, Field(ge=0, le=10)] = 0.0
    hysteresis_scale_um: Annotated[float, Field(gt=0, le=100)] = 2.0
    creep_per_decade: Annotated[float, Field(ge=0, le=0.2)] = 0.0
    creep_t0_s: Annotated[float, Field(gt=0, le=100)] = 0.1


class LaserSimSpec(_Strict):
    """Emitted versus set power of the simulated laser: P = P_ref (P_set / P_ref)^exponent."""

    power_exponent: Annotated[float, Field(ge=0.5, le=3)] = 1.0
    power_reference_W: Annotated[float, Field(gt=0, le=10)] = 1.0e-6


class SyncSpec(_Strict):
    tagger_channel: Channel = 1
    delay_ps: Annotated[int, Field(ge=0, le=1_000_000)] = 0


class ClockSpec(_Strict):
    mode: Literal["fast", "realtime", "scaled"] = "fast"
    speed: Annotated[float, Field(gt=0, le=1e9)] = 1.0


class FaultSpec(_Strict):
    """One injected fault (hbtscope.drivers_sim.faults)."""

    kind: Literal["timeout", "disconnect", "tagger_overflow", "bleach"]
    role: str | None = None
    at_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    probability: Fraction = 0.0
    duration_s: Annotated[float, Field(gt=0, le=3600)] = 0.1
    emitter: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _complete(self) -> FaultSpec:
        if self.kind in ("timeout", "disconnect"):
            if self.role not in ROLES:
                raise ValueError(f"{self.kind} needs role: one of {', '.join(ROLES)}")
            if self.at_s is None and not (self.kind == "timeout" and self.probability > 0):
                raise ValueError(f"{self.kind} needs at_s (or, for a timeout, probability)")
        if self.kind == "tagger_overflow" and self.at_s is None:
            raise ValueError("tagger_overflow needs at_s (and duration_s)")
        if self.kind == "bleach" and (self.at_s is None or self.emitter is None):
            raise ValueError("bleach needs emitter (index) and at_s")
        return self


class SimulationSpec(_Strict):
    seed: Annotated[int, Field(ge=0, lt=2**63)] = 0
    clock: ClockSpec = ClockSpec()
    sample: SampleSpec = SampleSpec()
    optics: OpticsSpec = OpticsSpec()
    detectors: list[DetectorSpec] = Field(
        default_factory=lambda: [
            DetectorSpec(name="spad_a", tagger_channel=2),
            DetectorSpec(name="spad_b", tagger_channel=3),
        ],
        min_length=1,
        max_length=8,
    )
    sync: SyncSpec = SyncSpec()
    stage: StageSimSpec = StageSimSpec()
    laser: LaserSimSpec = LaserSimSpec()
    faults: list[FaultSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _channels_distinct(self) -> SimulationSpec:
        chans = [d.tagger_channel for d in self.detectors] + [self.sync.tagger_channel]
        if len(set(chans)) != len(chans):
            raise ValueError(f"detector and sync tagger channels must all differ, got {chans}")
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise ValueError(f"detector names must be unique, got {names}")
        return self


# ----------------------------------------------------------------------------- instruments
class Range(_Strict):
    """An allowed closed interval [min, max]."""

    min: float = Field(allow_inf_nan=False)
    max: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.min < self.max:
            raise ValueError(f"min must be below max, got min={self.min}, max={self.max}")
        return self


class InstrumentSpec(_Strict):
    """One role: which driver, which backend, where, and its hard limits."""

    driver: str
    backend: Literal["sim", "real"] = "sim"
    address: str = ""
    # checked against the driver's own rules (kind, hardware range) in hbtscope.setup
    limits: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)


class CalibrationSpec(_Strict):
    detector_channels: dict[str, Channel] = Field(
        default_factory=lambda: {"sync": 1, "spad_a": 2, "spad_b": 3}
    )
    spot_area_um2: PositiveFloat = 0.098
    # HBT arm: delay of the k = 0 coincidence peak (t_B - t_A, ps) and breakdown-flash
    # crosstalk windows [lo, hi] (ps from the zero delay) measured once; when absent the
    # g2 analysis finds both from each run's data (hbtscope.analysis.hbt_delays)
    hbt_zero_delay_ps: Annotated[float, Field(ge=-1e6, le=1e6, allow_inf_nan=False)] | None = None
    crosstalk_windows_ps: list[tuple[float, float]] | None = None

    @field_validator("crosstalk_windows_ps")
    @classmethod
    def _windows(cls, v):
        for lo, hi in v or []:
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"each crosstalk window is [lo, hi] with lo < hi, got {[lo, hi]}")
        return v

    @field_validator("detector_channels")
    @classmethod
    def _needs_two_spads(cls, v: dict[str, int]) -> dict[str, int]:
        missing = {"spad_a", "spad_b"} - set(v)
        if missing:
            raise ValueError(f"needs channels for spad_a and spad_b (missing {sorted(missing)})")
        return v


class DemoSpec(_Strict):
    """Where ``hbtscope demo`` looks for its emitter."""

    x_um: float = 10.0
    y_um: float = 10.0
    z_um: float = 0.0


class SetupSpec(_Strict):
    """The whole setup file."""

    name: str = "unnamed setup"
    data_dir: str = "hbtscope-runs"
    instruments: dict[str, InstrumentSpec]
    calibrations: CalibrationSpec = CalibrationSpec()
    simulation: SimulationSpec | None = None
    demo: DemoSpec = DemoSpec()

    @model_validator(mode="after")
    def _sim_needs_world(self) -> SetupSpec:
        if any(spec.backend == "sim" for spec in self.instruments.values()):
            if self.simulation is None:
                raise ValueError("a 'sim' backend needs a 'simulation:' section (the world)")
        return self


# ----------------------------------------------------------------------------- loading
def _line_map(text: str) -> dict[tuple, int]:
    """Map every key path in a YAML document to its 1-based line number."""
    lines: dict[tuple, int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(node: yaml.Node, path: tuple) -> None:
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                lines[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
                lines[path + (key,)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    return lines


def _nearest_line(lines: dict[tuple, int], loc: tuple) -> int | None:
    loc = tuple(str(p) if not isinstance(p, int) else p for p in loc)
    for n in range(len(loc), -1, -1):
        key = loc[:n]
        if key in lines:
            return lines[key]
        # YAML keys may be numbers (e.g. a role spelled 1); compare as strings too
        for k, line in lines.items():
            if len(k) == n and tuple(str(p) for p in k) == tuple(str(p) for p in key):
                return line
    return None


def _field_bounds(loc: tuple) -> str:
    """The full allowed range of the field at ``loc`` (e.g. ">= 0 and <= 1"), or ''."""
    import typing

    import annotated_types as at

    tp: Any = SetupSpec
    metadata: list = []
    for part in loc:
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            field = tp.model_fields.get(part)
            if field is None:
                return ""
            tp, metadata = field.annotation, list(field.metadata)
        elif origin in (list, dict):
            tp, metadata = typing.get_args(tp)[-1], []
        else:
            return ""
        while typing.get_origin(tp) is Annotated:
            args = typing.get_args(tp)
            tp = args[0]
            for m in args[1:]:
                metadata.extend(getattr(m, "metadata", [m]))
        if typing.get_origin(tp) in (typing.Union, __import__("types").UnionType):
            non_none = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = non_none[0] if len(non_none) == 1 else tp
    words = []
    for m in metadata:
        for cls, attr, word in (
            (at.Ge, "ge", ">="),
            (at.Gt, "gt", ">"),
            (at.Le, "le", "<="),
            (at.Lt, "lt", "<"),
        ):
            if isinstance(m, cls):
                words.append(f"{word} {getattr(m, attr)}")
    return " and ".join(words)


def _describe(err: dict) -> str:
    msg = err["msg"]
    ctx = err.get("ctx") or {}
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field; check the spelling against docs/setup-file.md"
    if kind == "missing":
        return "required field is missing"
    if kind == "literal_error" and "expected" in ctx:
        return f"must be one of {ctx['expected']}"
    if any(key in ctx for key in ("ge", "gt", "le", "lt")):
        bounds = _field_bounds(tuple(err["loc"]))
        if not bounds:
            bounds = " and ".join(
                f"{w} {ctx[k]}"
                for k, w in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                if k in ctx
            )
        return f"out of range: allowed {bounds} (got {err.get('input')!r})"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = err.get("input")
    if got is not None and kind not in ("model_type", "dict_type") and not isinstance(got, dict):
        return f"{msg} (got {got!r})"
    return msg


def parse_setup_text(text: str, path: str | Path = "<setup>") -> SetupSpec:
    """Validate setup-file text; raise :class:`SetupFileError` naming file and line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SetupFileError(path, line, "", f"not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise SetupFileError(
            path, 1, "", "a setup file is a YAML mapping with at least 'instruments:'"
        )
    instruments = data.get("instruments")
    if isinstance(instruments, dict):
        for role in instruments:
            if role not in ROLES:
                line = _nearest_line(_line_map(text), ("instruments", role))
                hint = "the role is spelt 'polariser' now; " if role == "polarizer" else ""
                raise SetupFileError(
                    path,
                    line,
                    f"instruments.{role}",
                    f"unknown role {role!r}; {hint}allowed roles: {', '.join(ROLES)}",
                )
    try:
        spec = SetupSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        lines = _line_map(text)
        line = _nearest_line(lines, loc)
        where = ".".join(str(p) for p in loc)
        n_more = len(exc.errors()) - 1
        msg = _describe(err) + (f" (and {n_more} more problem(s))" if n_more else "")
        raise SetupFileError(path, line, where, msg) from None
    return spec


def load_setup_file(path: str | Path) -> tuple[SetupSpec, str]:
    """Read and validate a setup file; returns the spec and the file's text."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SetupFileError(p, None, "", "setup file not found") from None
    except UnicodeDecodeError as exc:
        raise SetupFileError(p, None, "", f"not UTF-8 text ({exc.reason})") from None
    return parse_setup_text(text, p), text
