"""Thin driver for a Swabian Time Tagger through the vendor SDK's Python module.

The driver never imports the SDK: it is handed the module that provides the Swabian API —
the real one (``from Swabian import TimeTagger``, loaded when needed by
:func:`load_swabian_api`; :meth:`SwabianTimeTaggerDriver.from_sdk`), the simulated one from the
twin registry (``backend: sim``), or a mock in tests. It only makes these
SDK calls: ``createTimeTagger(serial)``, ``freeTimeTagger(tagger)`` and, on the tagger,
``setTriggerLevel``/``getTriggerLevel``, ``setInputDelay``/``getInputDelay``,
``setDeadtime``/``getDeadtime``, ``setEventDivider``/``getEventDivider``, ``setTestSignal``,
``getSerial``, ``getModel``, ``getChannelList``.

Settings are a plain dict, e.g. from a setup file::

    {"channels": {1: {"trigger_level_V": 0.5, "event_divider": 5},
                  2: {"trigger_level_V": 0.08, "input_delay_ps": 1200, "deadtime_ps": 22000}},
     "test_signal": {4: True}}
"""

from __future__ import annotations

import importlib
import math
from types import ModuleType
from typing import Any

#: Per-channel settings and the SDK setter/getter of each, in the order they are applied.
CHANNEL_SETTINGS: dict[str, tuple[str, str, type]] = {
    "trigger_level_V": ("setTriggerLevel", "getTriggerLevel", float),
    "input_delay_ps": ("setInputDelay", "getInputDelay", int),
    "deadtime_ps": ("setDeadtime", "getDeadtime", int),
    "event_divider": ("setEventDivider", "getEventDivider", int),
}
_MAX_DIVIDER = 65535


class MissingSDKError(RuntimeError):
    """The vendor SDK a real driver needs is not installed."""


def load_swabian_api() -> ModuleType:
    """The vendor's Swabian Time Tagger API module (PyPI ``Swabian-TimeTagger``:
    ``from Swabian import TimeTagger``; older installs: ``import TimeTagger``), imported now,
    never at import time of hbtscope. The simulated API is not loaded here: with
    ``backend: sim`` the Setup takes it from the twin registry."""
    try:
        from Swabian import TimeTagger  # type: ignore[import-not-found]

        return TimeTagger
    except ImportError:
        pass
    try:
        return importlib.import_module("TimeTagger")
    except ImportError:
        raise MissingSDKError(
            "the Swabian Time Tagger SDK is not installed: `pip install Swabian-TimeTagger` "
            "(or install the vendor software), or use backend: sim"
        ) from None


class SettingsError(ValueError):
    """A settings dict the driver cannot apply; nothing was sent to the tagger.

    ``loc`` is the path of the offending entry in the settings dict (for line numbers)."""

    def __init__(self, message: str, loc: tuple = ()):
        super().__init__(message)
        self.loc = loc


def _channel(key: Any) -> int:
    """A channel number from an int or a numeric string key (YAML/JSON)."""
    if isinstance(key, bool):
        raise SettingsError(f"channel {key!r} is not a channel number")
    try:
        ch = int(key)
    except (TypeError, ValueError):
        raise SettingsError(f"channel {key!r} is not a channel number") from None
    if isinstance(key, float) and key != ch:
        raise SettingsError(f"channel {key!r} is not a channel number")
    if ch == 0:
        raise SettingsError("channel 0 does not exist (channels count from 1, -1 falling)")
    return ch


#: the longest dead time hbtscope sets on a channel (1 ms: far beyond any SPAD's)
MAX_DEADTIME_PS = 1_000_000_000


def _value(name: str, value: Any, kind: type) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, not {value!r}")
    if kind is int:
        if float(value) != int(value):
            raise SettingsError(f"{name} must be a whole number of ps, not {value!r}")
        value = int(value)
    else:
        value = float(value)
    if name == "event_divider" and not 1 <= value <= _MAX_DIVIDER:
        raise SettingsError(f"event_divider must be in [1, {_MAX_DIVIDER}], not {value}")
    if name == "deadtime_ps" and not 0 <= value <= MAX_DEADTIME_PS:
        raise SettingsError(f"deadtime_ps must be in [0, {MAX_DEADTIME_PS}] ps, not {value}")
    if name == "trigger_level_V" and not -2.5 <= value <= 2.5:
        raise SettingsError(f"trigger_level_V must be in [-2.5, 2.5] V, not {value}")
    if name == "input_delay_ps" and not -2_000_000 <= value <= 2_000_000:
        raise SettingsError(f"input_delay_ps must be in [-2000000, 2000000] ps, not {value}")
    return value


def validate_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The normalised settings (int channels, typed values); raises SettingsError."""
    if not isinstance(settings, dict):
        raise SettingsError("settings must be a dict")
    unknown = set(settings) - {"channels", "test_signal"}
    if unknown:
        raise SettingsError(f"unknown settings {sorted(unknown)}; known: channels, test_signal")
    for part in ("channels", "test_signal"):
        if not isinstance(settings.get(part) or {}, dict):
            raise SettingsError(f"{part} must be a mapping of channel numbers")
    channels: dict[int, dict[str, int | float]] = {}
    for key, per in (settings.get("channels") or {}).items():
        ch = _channel(key)
        if not isinstance(per, dict):
            raise SettingsError(f"settings of channel {ch} must be a dict", ("channels", key))
        bad = set(per) - set(CHANNEL_SETTINGS)
        if bad:
            raise SettingsError(
                f"channel {ch}: unknown settings {sorted(bad)}; known: {list(CHANNEL_SETTINGS)}",
                ("channels", key, sorted(bad)[0]),
            )
        channels[ch] = {}
        for name in CHANNEL_SETTINGS:
            if name in per:
                try:
                    channels[ch][name] = _value(name, per[name], CHANNEL_SETTINGS[name][2])
                except SettingsError as exc:
                    raise SettingsError(str(exc), ("channels", key, name)) from None
    test_signal: dict[int, bool] = {}
    for key, on in (settings.get("test_signal") or {}).items():
        if not isinstance(on, bool):
            raise SettingsError(f"test_signal of channel {key!r} must be true or false")
        test_signal[_channel(key)] = on
    return {"channels": channels, "test_signal": test_signal}


class SwabianTimeTaggerDriver:
    """Open a Time Tagger with ``api_module.createTimeTagger(serial)``, configure it, describe
    it, free it. ``tagger`` is the SDK object, for the measurements."""

    def __init__(self, api_module: ModuleType, serial: str = ""):
        self.api = api_module
        self.tagger = api_module.createTimeTagger(serial)
        self._configured: list[int] = []

    @classmethod
    def from_sdk(cls, serial: str = "") -> SwabianTimeTaggerDriver:
        """Open the tagger ``serial`` (empty: the first found) through the vendor SDK."""
        return cls(load_swabian_api(), serial)

    def _device(self):
        if self.tagger is None:
            raise RuntimeError("the time tagger has been closed")
        return self.tagger

    def apply_settings(self, settings: dict[str, Any]) -> dict[str, Any]:
        """Validate everything, then apply channel by channel (ascending) in the order of
        :data:`CHANNEL_SETTINGS`, then the test signal. Returns what was applied, with the
        dead time the tagger actually set (``setDeadtime`` returns it)."""
        dev = self._device()
        norm = validate_settings(settings)
        applied: dict[str, Any] = {"channels": {}, "test_signal": {}}
        for ch in sorted(norm["channels"]):
            per = norm["channels"][ch]
            done: dict[str, int | float] = {}
            for name, (setter, _getter, _kind) in CHANNEL_SETTINGS.items():
                if name not in per:
                    continue
                result = getattr(dev, setter)(ch, per[name])
                done[name] = (
                    int(result) if name == "deadtime_ps" and result is not None else per[name]
                )
            applied["channels"][ch] = done
            if ch not in self._configured:
                self._configured.append(ch)
        for ch in sorted(norm["test_signal"]):
            dev.setTestSignal(ch, norm["test_signal"][ch])
            applied["test_signal"][ch] = norm["test_signal"][ch]
        return applied

    def snapshot(self, channels: list[int] | None = None) -> dict[str, Any]:
        """Serial, model and the settings of ``channels`` (default: the configured ones, or
        else every rising-edge channel of the tagger)."""
        dev = self._device()
        if channels is None:
            channels = sorted(self._configured) or [
                int(c) for c in dev.getChannelList() if int(c) > 0
            ]
        snap: dict[str, Any] = {"serial": dev.getSerial(), "model": dev.getModel(), "channels": {}}
        for ch in channels:
            snap["channels"][int(ch)] = {
                name: kind(getattr(dev, getter)(ch))
                for name, (_setter, getter, kind) in CHANNEL_SETTINGS.items()
            }
        return snap

    def close(self) -> None:
        """Free the tagger (idempotent)."""
        if self.tagger is not None:
            tagger, self.tagger = self.tagger, None
            self.api.freeTimeTagger(tagger)

    def __enter__(self) -> SwabianTimeTaggerDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
