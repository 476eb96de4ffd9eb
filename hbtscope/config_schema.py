"""The setup file: schema, loading, and line-numbered errors.

A setup file (YAML) names each instrument *role* with its driver, backend and limits, the
calibrations, the data directory and — for the simulated microscope — the world to simulate.
Validation happens before anything is opened, so a bad file never moves or fires anything.
Every error names the file, the line and what is allowed (:class:`SetupFileError`).

The world to simulate is defined in :mod:`hbtscope.drivers_sim.model` (plain dataclasses, one
definition of every field, default and range); this module validates the ``simulation:``
section against it and turns it into a :class:`~hbtscope.drivers_sim.model.SimulationConfig`
(``SetupSpec.simulation``). The dependency goes this way only: the simulator knows no schema.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from hbtscope.drivers_sim import model
from hbtscope.strict_yaml import (
    StrictYAMLError,
    line_map,
    load_text,
    nearest_line,
    read_text,
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
    #: NaN and infinity are refused in every number of a setup file (issue 16)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, allow_inf_nan=False)


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Channel = Annotated[int, Field(ge=1, le=64)]


# ----------------------------------------------------------------------------- simulation
# The simulated world is defined once, as plain dataclasses in hbtscope.drivers_sim.model
# (fields, defaults, units, allowed ranges); pydantic validates those directly. Only the
# sample's emitters need a model of their own: a YAML emitter is flat (preset, count and the
# Emitter's properties side by side) and, with a preset, only the properties it names replace
# the drawn ones, so the model must know which were given. That model is generated from the
# dataclasses' fields, so nothing is written twice.
def _model_fields(dc: type, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """pydantic field definitions (type, default) of the dataclass ``dc``'s fields."""
    hints = typing.get_type_hints(dc, include_extras=True)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(dc):
        if f.name in skip:
            continue
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        out[f.name] = (hints[f.name], default)
    return out


def _known_fault_role(fault: model.FaultConfig) -> model.FaultConfig:
    if fault.kind in ("timeout", "disconnect") and fault.role not in ROLES:
        raise model.ConfigError("role", f"{fault.kind} needs role: one of {', '.join(ROLES)}")
    return fault


_PROPERTIES = model.EMITTER_PROPERTIES


class _EmitterBase(_Strict):
    def to_config(self) -> model.EmitterSpot:
        """The emitters of this entry, with the properties the file names."""
        given = {k: getattr(self, k) for k in self.model_fields_set if k in _PROPERTIES}
        return model.EmitterSpot(
            x_um=self.x_um,
            y_um=self.y_um,
            z_um=self.z_um,
            preset=self.preset,
            dilution=self.dilution,
            count=self.count,
            properties=given,
        )

    @model_validator(mode="after")
    def _valid_spot(self) -> _EmitterBase:
        self.to_config()  # the dataclasses' own rules (preset names, powerlaw_m)
        return self


EmitterSpec = create_model(
    "EmitterSpec",
    __base__=_EmitterBase,
    __doc__="""One emitter (or a cluster of ``count`` identical emitters at one spot).

    The fields of :class:`hbtscope.drivers_sim.model.EmitterSpot` and the properties of
    :class:`hbtscope.drivers_sim.emitters.Emitter`, flat. With ``preset``, every property not
    given here is drawn from that species preset; without, Emitter's defaults apply.
    """,
    **_model_fields(model.EmitterSpot, skip=("properties",)),
    **_model_fields(
        model.Emitter,
        skip=tuple(f.name for f in dataclasses.fields(model.Emitter) if f.name not in _PROPERTIES),
    ),
)


class _SampleBase(_Strict):
    def to_config(self) -> model.SampleConfig:
        values = {name: getattr(self, name) for name in type(self).model_fields}
        values["emitters"] = [e.to_config() for e in self.emitters]
        return model.SampleConfig(**values)

    @model_validator(mode="after")
    def _valid_sample(self) -> _SampleBase:
        self.to_config()  # the sample's own rules (the emitter budget), located in it
        return self


SampleSpec = create_model(
    "SampleSpec",
    __base__=_SampleBase,
    __doc__="The sample (:class:`hbtscope.drivers_sim.model.SampleConfig`) as the file spells it.",
    **{
        **_model_fields(model.SampleConfig),
        "emitters": (list[EmitterSpec], Field(default_factory=list)),
    },
)


class _SimulationBase(_Strict):
    def to_config(self) -> model.SimulationConfig:
        """The World's configuration (checks the cross-field rules)."""
        values = {name: getattr(self, name) for name in type(self).model_fields}
        if isinstance(values["sample"], _SampleBase):
            values["sample"] = values["sample"].to_config()
        return model.SimulationConfig(**values)

    @model_validator(mode="after")
    def _valid_world(self) -> _SimulationBase:
        self.to_config()
        return self


SimulationSpec = create_model(
    "SimulationSpec",
    __base__=_SimulationBase,
    __doc__="The ``simulation:`` section (:class:`hbtscope.drivers_sim.model.SimulationConfig`).",
    **{
        **_model_fields(model.SimulationConfig),
        "sample": (SampleSpec, Field(default_factory=SampleSpec)),
        "faults": (
            list[Annotated[model.FaultConfig, AfterValidator(_known_fault_role)]],
            Field(default_factory=list),
        ),
    },
)
#: the ``simulation:`` section, validated and turned into the World's configuration
Simulation = Annotated[SimulationSpec, AfterValidator(lambda spec: spec.to_config())]


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
        shared = {ch: [n for n in v if v[n] == ch] for ch in set(v.values())}
        shared = {ch: names for ch, names in shared.items() if len(names) > 1}
        if shared:
            ch, names = next(iter(shared.items()))
            raise ValueError(
                f"{' and '.join(names)} are both on tagger channel {ch}; each "
                "detector, the sync and the pixel marker need their own channel"
            )
        return v


class DemoSpec(_Strict):
    """Where ``hbtscope demo`` looks for its emitter."""

    x_um: float = 10.0
    y_um: float = 10.0
    z_um: float = 0.0


class NotifySpec(_Strict):
    """Where the lab's mail goes out: the SMTP server a queue's ``notify: {mail_to: ...}``
    uses (plain SMTP, optionally STARTTLS; the password, if any, from an environment
    variable, never from the file)."""

    smtp_host: str
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    sender: str = "hbtscope@localhost"
    starttls: bool = False
    username: str = ""
    password_env: str = ""
    timeout_s: Annotated[float, Field(gt=0, le=120, allow_inf_nan=False)] = 10.0


class SetupSpec(_Strict):
    """The whole setup file."""

    name: str = "unnamed setup"
    data_dir: str = "hbtscope-runs"
    instruments: dict[str, InstrumentSpec]
    calibrations: CalibrationSpec = CalibrationSpec()
    simulation: Simulation | None = None
    demo: DemoSpec = DemoSpec()
    notify: NotifySpec | None = None

    @model_validator(mode="after")
    def _sim_needs_world(self) -> SetupSpec:
        if any(spec.backend == "sim" for spec in self.instruments.values()):
            if self.simulation is None:
                raise ValueError("a 'sim' backend needs a 'simulation:' section (the world)")
        return self

    @model_validator(mode="after")
    def _faults_on_roles_of_this_setup(self) -> SetupSpec:
        for i, fault in enumerate(getattr(self.simulation, "faults", None) or ()):
            role = getattr(fault, "role", None)
            if role and role not in self.instruments:
                raise model.ConfigError(
                    f"simulation.faults.{i}.role",
                    f"a {fault.kind} fault on role {role!r}, which this setup does not define "
                    f"(its roles: {', '.join(self.instruments)})",
                )
        return self


# ----------------------------------------------------------------------------- loading
def _field_bounds(loc: tuple) -> str:
    """The full allowed range of the field at ``loc`` (e.g. ">= 0 and <= 1"), or ''.

    Walks the schema along ``loc``: pydantic models, the simulator's dataclasses, lists and
    dicts, collecting the field's ``Annotated`` bounds.
    """
    import types

    import annotated_types as at

    tp: Any = SetupSpec
    metadata: list = []

    def unwrap(tp: Any) -> Any:
        while True:
            if typing.get_origin(tp) is Annotated:
                args = typing.get_args(tp)
                tp = args[0]
                for m in args[1:]:
                    metadata.extend(getattr(m, "metadata", [m]))
            elif typing.get_origin(tp) in (typing.Union, types.UnionType):
                non_none = [a for a in typing.get_args(tp) if a is not type(None)]
                if len(non_none) != 1:
                    return tp
                tp = non_none[0]
            else:
                return tp

    for part in loc:
        tp = unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            field = tp.model_fields.get(part)
            if field is None:
                return ""
            tp, metadata = field.annotation, list(field.metadata)
        elif dataclasses.is_dataclass(tp) and isinstance(part, str):
            hints = typing.get_type_hints(tp, include_extras=True)
            if part not in hints:
                return ""
            tp, metadata = hints[part], []
        elif origin in (list, dict):
            tp, metadata = typing.get_args(tp)[-1], []
        else:
            return ""
    unwrap(tp)
    flat: list = []
    for m in metadata:
        flat.extend(m if isinstance(m, at.GroupedMetadata) else [m])
    words = []
    for m in flat:
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
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
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


#: a setup file is a page of YAML: anything far bigger is a mistake (or /dev/zero)
MAX_SETUP_BYTES = 1_000_000


def parse_setup_text(text: str, path: str | Path = "<setup>") -> SetupSpec:
    """Validate setup-file text; raise :class:`SetupFileError` naming file and line."""
    try:
        data = load_text(text)
    except StrictYAMLError as exc:
        raise SetupFileError(path, exc.line, "", exc.problem) from None
    if not isinstance(data, dict):
        raise SetupFileError(
            path, 1, "", "a setup file is a YAML mapping with at least 'instruments:'"
        )
    instruments = data.get("instruments")
    if isinstance(instruments, dict):
        for role in instruments:
            if role not in ROLES:
                line = nearest_line(line_map(text), ("instruments", role))
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
        culprit = getattr((err.get("ctx") or {}).get("error"), "field", None)
        if isinstance(culprit, str):  # a rule naming its field (a dotted path from loc)
            loc += tuple(int(p) if p.isdigit() else p for p in culprit.split("."))
        lines = line_map(text)
        line = nearest_line(lines, loc)
        where = ".".join(str(p) for p in loc)
        n_more = len(exc.errors()) - 1
        msg = _describe(err) + (f" (and {n_more} more problem(s))" if n_more else "")
        raise SetupFileError(path, line, where, msg) from None
    return spec


def load_setup_file(path: str | Path) -> tuple[SetupSpec, str]:
    """Read and validate a setup file; returns the spec and the file's text."""
    p = Path(path)
    try:
        text = read_text(p, MAX_SETUP_BYTES, "setup file")
    except StrictYAMLError as exc:
        raise SetupFileError(p, None, "", exc.problem) from None
    return parse_setup_text(text, p), text
