"""The time tagger role: the Swabian Time Tagger API, real SDK or simulated.

Procedures use ``setup.tagger.api`` (the module: ``Correlation``, ``TimeTagStream``, ...) and
``setup.tagger.device`` (the object from ``createTimeTagger``). With ``backend: real`` the API is
the vendor SDK (PyPI ``Swabian-TimeTagger``: ``from Swabian import TimeTagger``, older installs
``import TimeTagger``); with ``backend: sim`` it is :mod:`hbtscope.drivers_sim.timetagger`, which
has the same names and signatures. Procedures cannot tell which.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from hbtscope.instruments.base import Instrument


class MissingSDKError(RuntimeError):
    """The vendor SDK a real driver needs is not installed."""


def load_swabian_api(backend: str) -> ModuleType:
    """The module providing the Swabian Time Tagger API for this backend."""
    if backend == "sim":
        return importlib.import_module("hbtscope.drivers_sim.timetagger")
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


class TimeTaggerInstrument(Instrument):
    """A time tagger and the detector channel map from the setup's calibrations."""

    role = "tagger"

    def __init__(self, api: ModuleType, serial: str, channels: dict[str, int]):
        self.api = api
        self.device = api.createTimeTagger(serial)
        self.channels = dict(channels)

    @property
    def spad_channels(self) -> tuple[int, int]:
        return self.channels["spad_a"], self.channels["spad_b"]

    @property
    def sync_channel(self) -> int | None:
        return self.channels.get("sync")

    def snapshot(self) -> dict[str, Any]:
        d = self.device
        snap: dict[str, Any] = {"serial": d.getSerial(), "channels": self.channels}
        try:
            snap["model"] = d.getModel()
        except AttributeError:
            pass
        for name, ch in self.channels.items():
            snap[f"{name}_trigger_level_V"] = d.getTriggerLevel(ch)
            snap[f"{name}_input_delay_ps"] = d.getInputDelay(ch)
            snap[f"{name}_deadtime_ps"] = d.getDeadtime(ch)
        return snap

    def close(self) -> None:
        if self.device is not None:
            self.api.freeTimeTagger(self.device)
            self.device = None
