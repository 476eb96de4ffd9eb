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
    """A time tagger (through :class:`~hbtscope.instruments.swabian.SwabianTimeTaggerDriver`)
    and the detector channel map from the setup's calibrations."""

    role = "tagger"

    def __init__(
        self,
        api: ModuleType,
        serial: str,
        channels: dict[str, int],
        settings: dict[str, Any] | None = None,
    ):
        from hbtscope.instruments.swabian import SwabianTimeTaggerDriver

        self.api = api
        self.driver = SwabianTimeTaggerDriver(api, serial)
        self.channels = dict(channels)
        try:
            if settings:
                self.driver.apply_settings(settings)
        except Exception:
            self.driver.close()
            raise

    @property
    def device(self):
        """The SDK's tagger object, for constructing measurements."""
        return self.driver.tagger

    @device.setter
    def device(self, value) -> None:
        self.driver.tagger = value

    @property
    def spad_channels(self) -> tuple[int, int]:
        return self.channels["spad_a"], self.channels["spad_b"]

    @property
    def sync_channel(self) -> int | None:
        return self.channels.get("sync")

    def snapshot(self) -> dict[str, Any]:
        snap = self.driver.snapshot(sorted(set(self.channels.values())))
        snap["channel_map"] = self.channels
        return snap

    def close(self) -> None:
        self.driver.close()
