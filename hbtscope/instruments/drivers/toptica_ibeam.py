"""Toptica iBeam smart diode laser as a :class:`~hbtscope.instruments.laser.ExcitationLaser`.

Built on pymeasure's :class:`pymeasure.instruments.toptica.IBeamSmart` (serial, 115200 baud,
CR LF; see pymeasure ``instruments/toptica/ibeamsmart.py``): ``ch_2.power`` (``ch 2 pow X
mic``, µW), ``ch_1.power``, ``emission`` (``la on|off`` / ``sta la``), ``ch_2.enabled``
(``en 2`` / ``di 2`` / ``sta ch 2``), ``enable_continous()`` (``di ext``, ``la on``,
``en 2``), ``enable_pulsing()`` (``la on``, ``en 2``, ``en ext``), ``disable()`` (``di 0``,
``la off``), and ``ask("sh level pow")`` for the set levels (``CH2, PWR: 1.000 mW``, the
format Qudi's and Micro-Manager's iBeam drivers parse). In the simulator the same pymeasure
instrument talks through :class:`~hbtscope.drivers_sim.wire.SimAdapter` to
:class:`hbtscope.drivers_sim.twins.toptica_ibeam.IBeamSmartTwin`.

The iBeam smart is a **CW** diode laser, not a picosecond source. It can be pulsed only by
digital modulation from an external TTL generator on its modulation input (``en ext``): the
output then follows the TTL between channel 1 (the off level, set to 0 here) and channel 2,
giving ns pulses at the generator's rate. So:

* without ``ext_trigger_Hz`` in the setup file it runs CW: ``rep_rate_Hz`` reads 0 and only 0
  is accepted; ``power_W`` is the channel-2 level;
* with ``ext_trigger_Hz`` and ``ext_pulse_width_s`` (the generator's settings, which this
  driver cannot change) it runs modulated: ``rep_rate_Hz`` is that rate and only that rate is
  accepted, and ``power_W`` is the *average* power, so the channel-2 level is
  ``power_W / duty`` with ``duty = ext_trigger_Hz * ext_pulse_width_s``.

``power_W`` is at the sample: with ND filters in the beam, ``transmission`` (setting) divides
it back to the laser's level (which the laser sets and reports with 1 µW resolution).

Which driver suits which lab: see :mod:`hbtscope.instruments.drivers.picoquant_sepia` (a Sepia
II / LDH head for TCSPC lifetimes and pulsed g2; an iBeam for CW excitation, saturation
curves, CW g2 as in Baronnier et al., spectra and wide-field work).

Hard limits: ``max_power_W`` (average power, the interface) and ``rated_power_W`` (the
laser's maximum channel level; pymeasure's validator allows up to 200 mW) are checked before
anything is sent.
"""

from __future__ import annotations

import math
import re
from typing import Any

from hbtscope.instruments.base import LimitError
from hbtscope.instruments.laser import ExcitationLaser
from hbtscope.instruments.registry import DriverInfo, LimitRule, SimConnector

PYMEASURE_MAX_UW = 200_000.0  # IBeamSmart's strict_range for channel power (µW)
_LEVEL = re.compile(r"CH(\d)\s*,\s*PWR\s*:\s*([-+0-9.eE]+)\s*(mW|uW|µW)", re.IGNORECASE)


class IBeamSmartLaser(ExcitationLaser):
    """``instrument`` is a pymeasure ``IBeamSmart`` (on a VISA port or a SimAdapter)."""

    def __init__(
        self,
        instrument,
        max_power_W: float,
        *,
        rated_power_W: float = 0.1,
        ext_trigger_Hz: float | None = None,
        ext_pulse_width_s: float | None = None,
        transmission: float = 1.0,
    ):
        if not (math.isfinite(transmission) and 0 < transmission <= 1):
            raise LimitError(f"transmission must be in (0, 1], got {transmission!r}")
        if (ext_trigger_Hz is None) != (ext_pulse_width_s is None):
            raise LimitError("ext_trigger_Hz and ext_pulse_width_s go together (or neither: CW)")
        if ext_trigger_Hz is not None:
            duty = float(ext_trigger_Hz) * float(ext_pulse_width_s)
            if not (math.isfinite(duty) and 0 < duty <= 1):
                raise LimitError(
                    f"duty cycle ext_trigger_Hz * ext_pulse_width_s = {duty} not in (0, 1]"
                )
            rate = float(ext_trigger_Hz)
        else:
            duty, rate = 1.0, 0.0
        super().__init__(max_power_W, (rate, rate))
        if not (math.isfinite(rated_power_W) and rated_power_W > 0):
            raise LimitError(f"rated_power_W must be positive, got {rated_power_W!r}")
        self.rated_power_W = min(float(rated_power_W), PYMEASURE_MAX_UW * 1e-6)
        self.duty = duty
        self.transmission = float(transmission)
        self.pulsed = ext_trigger_Hz is not None
        self.inst = instrument
        if self.pulsed:
            self.inst.ch_1.power = 0.0  # the level between pulses: dark

    def _level_uW(self, channel: int) -> float:
        reply = self.inst.ask("sh level pow")
        for ch, value, unit in _LEVEL.findall(reply):
            if int(ch) == channel:
                return float(value) * (1e3 if unit.lower() == "mw" else 1.0)
        raise ValueError(f"no level of channel {channel} in the iBeam's reply {reply!r}")

    # ---------------------------------------------------------------- ExcitationLaser
    def _read_power_W(self) -> float:
        return self._level_uW(2) * 1e-6 * self.duty * self.transmission

    def _write_power_W(self, value: float) -> None:
        level_W = value / (self.duty * self.transmission)
        if level_W > self.rated_power_W:
            raise LimitError(
                f"{value} W average at the sample needs a channel-2 level of {level_W} W, above "
                f"the laser's rating of {self.rated_power_W} W (duty cycle {self.duty:g}, "
                f"transmission {self.transmission:g})"
            )
        self.inst.ch_2.power = level_W * 1e6

    def _read_rep_rate_Hz(self) -> float:
        return self.rep_rate_range_Hz[0]

    def _write_rep_rate_Hz(self, value: float) -> None:
        # the rate is the external generator's (or 0 for CW); the range check already held it
        return None

    def _read_emission(self) -> bool:
        return bool(self.inst.emission) and bool(self.inst.ch_2.enabled)

    def _write_emission(self, on: bool) -> None:
        if not on:
            self.inst.disable()
        elif self.pulsed:
            self.inst.enable_pulsing()
        else:
            self.inst.enable_continous()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap.update(
            mode="external digital modulation" if self.pulsed else "cw",
            duty=self.duty,
            transmission=self.transmission,
        )
        return snap

    def close(self) -> None:
        self.inst.adapter.close()


# -------------------------------------------------------------------- catalogue
def _build(setup, spec, sim: SimConnector | None = None) -> IBeamSmartLaser:
    """The laser role; ``sim(framing, rated_power_W=, ext_trigger_Hz=, ext_pulse_width_s=,
    transmission=)`` returns the twin's session factory."""
    from pymeasure.instruments.toptica import IBeamSmart

    limits, settings = setup.limits["laser"], setup.settings["laser"]
    rated = settings.get("rated_power_W", 0.1)
    ext_f = settings.get("ext_trigger_Hz")
    ext_w = settings.get("ext_pulse_width_s")
    if sim is not None:
        sessions = sim(
            {"write_termination": "\r\n", "read_termination": "\r\n"},  # as IBeamSmart's
            rated_power_W=rated,
            ext_trigger_Hz=ext_f,
            ext_pulse_width_s=ext_w,
            transmission=settings.get("transmission", 1.0),
        )
        inst = IBeamSmart(sessions())
    else:
        baud = int(settings.get("baud_rate", 115200))
        inst = IBeamSmart(spec.address, baud_rate=baud)
    try:
        return IBeamSmartLaser(
            inst,
            limits["max_power_W"],
            rated_power_W=rated,
            ext_trigger_Hz=ext_f,
            ext_pulse_width_s=ext_w,
            transmission=settings.get("transmission", 1.0),
        )
    except Exception:
        inst.adapter.close()
        raise


DRIVERS = [
    DriverInfo(
        "laser",
        "TopticaIBeamSmart",
        ("real", "sim"),
        (LimitRule("max_power_W", "value", 1e-12, 0.2, unit="W"),),
        _build,
        "Toptica iBeam smart CW diode laser (serial, pymeasure IBeamSmart), optionally "
        "digitally modulated by an external TTL generator",
        settings=(
            LimitRule("rated_power_W", "value", 1e-6, 0.2, required=False, unit="W"),
            LimitRule("ext_trigger_Hz", "value", 1.0, 250.0e6, required=False, unit="Hz"),
            LimitRule("ext_pulse_width_s", "value", 1e-9, 1.0, required=False, unit="s"),
            LimitRule("transmission", "value", 1e-9, 1.0, required=False),
            LimitRule("baud_rate", "value", 9600, 115200, required=False),
        ),
    )
]
