"""The time tagger role: the Swabian Time Tagger API, real SDK or simulated.

Procedures use ``setup.tagger.api`` (the module: ``Correlation``, ``TimeTagStream``, ...) and
``setup.tagger.device`` (the object from ``createTimeTagger``). With ``backend: real`` the API is
the vendor SDK (:func:`~hbtscope.instruments.swabian.load_swabian_api`); with ``backend: sim``
it is the simulated module the twin registry hands the driver, which has the same names and
signatures. Procedures cannot tell which. The driver module that builds this role is
:mod:`hbtscope.instruments.drivers.swabian_timetagger`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from hbtscope.instruments.base import Instrument
from hbtscope.instruments.swabian import (  # noqa: F401 - re-exported, as before
    MissingSDKError,
    SwabianTimeTaggerDriver,
    load_swabian_api,
)


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
