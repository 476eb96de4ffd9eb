"""The Setup: the instruments by role, built from a setup file, plus the clock everything waits on.

``hbtscope.open_setup(path=None)`` builds it; ``None`` means the bundled simulated microscope
(``hbtscope/config/sim.yaml``). One Setup lives for a whole session, so instrument state (and the
simulated sample's history) persists across procedures.

This module is the composition root: it joins the driver catalogue (real drivers and simulated
devices, :func:`driver_catalogue`) with the twin registry of :mod:`hbtscope.drivers_sim`, so that
a real driver with ``backend: sim`` is handed its twin's connection and never imports the
simulation itself.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

from hbtscope.clock import VirtualClock, WallClock
from hbtscope.config_schema import (
    InstrumentSpec,
    SetupFileError,
    SetupSpec,
    load_setup_file,
)
from hbtscope.instruments.base import Instrument
from hbtscope.instruments.registry import (
    DRIVER_PACKAGE,
    DriverInfo,
    LimitRule,
    SimConnector,
    all_drivers,
)
from hbtscope.strict_yaml import line_map, nearest_line


def default_setup_path() -> Path:
    """The bundled setup file of the simulated microscope."""
    return Path(str(files("hbtscope") / "config" / "sim.yaml"))


def driver_catalogue() -> dict[tuple[str, str], DriverInfo]:
    """Every driver a setup file may name, (role, name) -> DriverInfo: the real drivers
    (:mod:`hbtscope.instruments.drivers`) and the simulated behaviour-level devices
    (:mod:`hbtscope.drivers_sim.devices`), both collected from their modules' ``DRIVERS`` lists
    by :func:`~hbtscope.instruments.registry.all_drivers`."""
    from hbtscope.drivers_sim.registry import simulated_drivers

    simulated, real = simulated_drivers(), all_drivers(DRIVER_PACKAGE)
    both = set(simulated) & set(real)
    if both:
        raise RuntimeError(f"drivers registered both as simulated devices and as real: {both}")
    return {**simulated, **real}


#: every driver a setup file may name (see :func:`driver_catalogue`)
DRIVERS: dict[tuple[str, str], DriverInfo] = driver_catalogue()
#: the real drivers among them: with ``backend: sim`` these get their twin's connection
REAL_DRIVERS: frozenset[tuple[str, str]] = frozenset(all_drivers(DRIVER_PACKAGE))


def _number(value: Any) -> float | None:
    """A finite float, or None. Strings like '5.0e6' count: YAML 1.1 reads them as text."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _check_drivers(spec: SetupSpec, path: Path, text: str) -> tuple[dict, dict]:
    """Driver names, backends and limits, with file and line in every message.

    Returns the parsed limits by role: a float for a value, a (min, max) tuple for a range.
    """
    lines = line_map(text)

    def fail(loc: tuple, msg: str) -> None:
        raise SetupFileError(path, nearest_line(lines, loc), ".".join(map(str, loc)), msg)

    parsed: dict[str, dict[str, Any]] = {}
    settings: dict[str, dict[str, Any]] = {}
    for role, inst in spec.instruments.items():
        info = DRIVERS.get((role, inst.driver))
        if info is None:
            allowed = sorted(name for (r, name) in DRIVERS if r == role) or ["(none yet)"]
            fail(
                ("instruments", role, "driver"),
                f"unknown driver {inst.driver!r} for role {role!r}; allowed: {', '.join(allowed)}",
            )
        if inst.backend not in info.backends:
            fail(
                ("instruments", role, "backend"),
                f"driver {inst.driver} has no {inst.backend!r} backend; allowed: "
                f"{', '.join(info.backends)}",
            )
        if (role, inst.driver) == ("tagger", "SwabianTimeTagger"):
            from hbtscope.instruments.swabian import SettingsError, validate_settings

            try:
                validate_settings(dict(inst.settings))
            except SettingsError as exc:
                fail(("instruments", role, "settings", *exc.loc), str(exc))
            parsed[role] = {}
            settings[role] = {}
            continue
        parsed[role] = _check_values(
            inst.limits, info.limits, ("instruments", role, "limits"), "limit", fail
        )
        settings[role] = _check_values(
            inst.settings, info.settings, ("instruments", role, "settings"), "setting", fail
        )
    return parsed, settings


def _check_values(
    given: dict[str, Any],
    rules_: tuple[LimitRule, ...],
    where: tuple,
    what: str,
    fail: Callable[[tuple, str], None],
) -> dict[str, Any]:
    rules = {r.name: r for r in rules_}
    for key in given:
        if key not in rules:
            allowed = "; ".join(r.describe() for r in rules_) or "none"
            fail(where + (key,), f"unknown {what}; allowed: {allowed}")
    parsed: dict[str, Any] = {}
    for rule in rules_:
        loc = where + (rule.name,)
        if rule.name not in given:
            if rule.required:
                fail(where, f"missing {what} {rule.describe()}")
            continue
        raw = given[rule.name]
        if rule.kind == "value":
            value = _number(raw)
            if value is None:
                fail(loc, f"must be a finite number: {rule.describe()} (got {raw!r})")
            if not rule.lo <= value <= rule.hi:
                fail(loc, f"out of range: {rule.describe()} (got {value})")
            parsed[rule.name] = value
        else:
            lo = _number(raw.get("min")) if isinstance(raw, dict) else None
            hi = _number(raw.get("max")) if isinstance(raw, dict) else None
            if lo is None or hi is None or set(raw) != {"min", "max"}:
                fail(loc, f"must be a range of finite numbers: {rule.describe()} (got {raw!r})")
            if not lo < hi:
                fail(loc, f"min must be below max (got min={lo}, max={hi})")
            if not (rule.lo <= lo and hi <= rule.hi):
                fail(loc, f"out of range: {rule.describe()} (got [{lo}, {hi}])")
            parsed[rule.name] = (lo, hi)
    return parsed


class MissingInstrumentError(LookupError):
    """A procedure asked for a role the setup file does not define."""


class Setup:
    """Instruments by role, the clock, the calibrations and (simulated) the world."""

    def __init__(
        self,
        spec: SetupSpec,
        path: Path,
        text: str,
        limits: dict[str, dict[str, Any]],
        settings: dict[str, dict[str, Any]],
        data_dir: str | Path | None = None,
        keep_going: bool = False,
    ):
        self.spec = spec
        self.limits = limits
        self.settings = settings
        self.path = path
        self.text = text
        self.data_dir = Path(data_dir if data_dir is not None else spec.data_dir).expanduser()
        self.world = None
        if spec.simulation is not None:
            from hbtscope.drivers_sim.world import World

            sim = spec.simulation
            self.clock: Any = VirtualClock(sim.clock.mode, sim.clock.speed)
            self.world = World(sim, self.clock)
        else:
            self.clock = WallClock()
        self.instruments: dict[str, Instrument] = {}
        role = ""
        #: roles that could not be opened (only with keep_going): role -> the error
        self.failed: dict[str, str] = {}
        try:
            for role, inst in spec.instruments.items():
                info = DRIVERS[(role, inst.driver)]
                try:
                    built = info.build(self, inst, self._connector(info, inst))
                    self.instruments[role] = built
                    # a run that crashed or was killed may have left a light source on: every
                    # device starts in its safe state, before anything else is done with it
                    built.safe_state()
                except Exception as exc:
                    if not keep_going:
                        raise
                    self.failed[role] = f"{type(exc).__name__}: {exc}"
        except ValueError as exc:  # the device refused what the setup file asks of it
            self.close()
            line = nearest_line(line_map(text), ("instruments", role))
            raise SetupFileError(
                path, line, f"instruments.{role}", f"{spec.instruments[role].driver}: {exc}"
            ) from None
        except Exception:
            self.close()
            raise

    def _connector(self, info: DriverInfo, inst: InstrumentSpec) -> SimConnector | None:
        """What the driver gets for its backend: for a real driver on ``backend: sim`` the
        twin registry's connector on this setup's world; else None (a real driver opens its
        port or SDK itself; a simulated behaviour-level device is the simulation)."""
        if inst.backend != "sim" or (info.role, info.name) not in REAL_DRIVERS:
            return None
        from hbtscope.drivers_sim.registry import twin_connector

        return twin_connector(info.name, self.world)

    @property
    def is_simulated(self) -> bool:
        return self.world is not None

    def __getattr__(self, role: str) -> Instrument:
        # roles as attributes: setup.laser, setup.stage, setup.tagger, ...
        instruments = self.__dict__.get("instruments", {})
        if role in instruments:
            return instruments[role]
        from hbtscope.config_schema import ROLES

        if role in ROLES:
            raise MissingInstrumentError(
                f"this measurement needs a '{role}' but {self.path} defines none "
                f"(roles defined: {', '.join(instruments) or 'none'})"
            )
        raise AttributeError(role)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every instrument's current settings, by role."""
        return {role: inst.snapshot() for role, inst in self.instruments.items()}

    def calibrations(self) -> dict[str, Any]:
        return self.spec.calibrations.model_dump(exclude_none=True)

    def truth(self) -> dict[str, Any]:
        """Simulator ground truth at the current focus ({} on real hardware)."""
        return self.world.truth_at_focus() if self.world is not None else {}

    def safe_state(self) -> None:
        """Lasers and LED off, shutters closed: every instrument's safe state."""
        errors = []
        for inst in self.instruments.values():
            try:
                inst.safe_state()
            except Exception as exc:  # keep going: switch off everything else
                errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.safe_state()
        for inst in self.instruments.values():
            with contextlib.suppress(Exception):
                inst.close()
        if self.world is not None:
            from hbtscope.drivers_sim.registry import release

            release(self.world)
        self.instruments = {}

    def __enter__(self) -> Setup:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_setup(
    path: str | Path | None = None,
    *,
    data_dir: str | Path | None = None,
    keep_going: bool = False,
) -> Setup:
    """Validate a setup file and build its Setup (``None``: the bundled simulated microscope).

    Raises :class:`~hbtscope.config_schema.SetupFileError` naming the file, the line and what is
    allowed, before any instrument is opened. With ``keep_going`` a device that fails to open
    is recorded in ``setup.failed`` and the others still open (for ``hbtscope devices``).
    """
    p = Path(path) if path is not None else default_setup_path()
    spec, text = load_setup_file(p)
    limits, settings = _check_drivers(spec, p, text)
    return Setup(spec, p, text, limits, settings, data_dir=data_dir, keep_going=keep_going)
