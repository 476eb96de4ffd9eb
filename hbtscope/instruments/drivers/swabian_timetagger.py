"""Swabian Time Tagger (Time Tagger 20 / Ultra / X) through the vendor's Python API.

Backend ``real``: the vendor SDK (:func:`~hbtscope.instruments.swabian.load_swabian_api`), the
tagger opened by its serial number (``address``; empty = the first one found). Backend ``sim``:
the twin registry's connector ``sim(serial=address)`` returns the simulated API module and the
serial of the simulated tagger it plugged in; the same driver and the same procedures run on
both. The per-channel settings of the setup file are checked by
:func:`~hbtscope.instruments.swabian.validate_settings` (with file and line) before anything
is opened, and applied by :class:`~hbtscope.instruments.swabian.SwabianTimeTaggerDriver`.
"""

from __future__ import annotations

from hbtscope.instruments.registry import DriverInfo, SimConnector
from hbtscope.instruments.swabian import load_swabian_api
from hbtscope.instruments.timetagger import TimeTaggerInstrument


def _build(setup, spec, sim: SimConnector | None = None) -> TimeTaggerInstrument:
    if sim is not None:
        api, serial = sim(serial=spec.address)
    else:
        api, serial = load_swabian_api(), spec.address
    return TimeTaggerInstrument(
        api, serial, setup.spec.calibrations.detector_channels, settings=spec.settings or None
    )


DRIVERS = [
    DriverInfo(
        "tagger",
        "SwabianTimeTagger",
        ("sim", "real"),
        (),
        _build,
        "Swabian Time Tagger (real SDK or the simulated twin)",
    )
]
