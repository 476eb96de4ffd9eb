"""CoolLED pE series LED illuminators (pE-100, pE-300, pE-4000), serial over USB.

Protocol (sources):

- Micro-Manager device adapter ``pE4000.cpp`` (written by CoolLED Ltd, 2017, BSD): commands end
  with CR, replies are lines ending with LF (read up to ``\\n``); ``CSS?`` answers ``CSS``
  followed by 6 characters per channel, ``xsnNNN``: channel letter ``A``–``H``, ``S``elected or
  ``X`` (not selected), o``N`` or o``F``f, intensity in integer percent ``000``–``100``;
  ``CSN``/``CSF`` switch all selected channels on/off; ``XVER`` answers several ``XVER …`` lines
  (main board, hardware, data, pod, one per back end), ``XMODEL`` the model, ``LAMS`` one
  ``LAM:<ch>:<nm>`` line per channel. On connection the unit sends a greeting (two lines).
- python-microscope ``microscope/controllers/coolled.py`` (tested on a pE-300 ultra): 57600 Bd,
  8N1, no flow control ("the manual only has the baud rate"); greeting "CoolLED precisExcite,
  Hello, pleased to meet you"; ``CSS<ch><S|X><N|F><NNN>`` sets any number of channels and is
  answered by the ``CSS…`` status line; replies end with CR LF.
- CoolLED Commands Manual DOC-038 (pE-4000, pE-300 series, pE-340fura) for the command names;
  its text of the error reply was not available to us: the twin answers an unrecognised or
  out-of-range command with a line that is not a ``CSS`` status (``Unrecognised command: …``),
  and this driver — like the two adapters above — treats any reply that is not the expected
  ``CSS`` status as an error, never as success. (The pE-100 is assumed to answer the same
  commands with one channel, ``A``.)

VISA framing: ``write_termination="\\r"``, ``read_termination="\\n"`` (the CR before it is
stripped here). :meth:`CoolLEDpESeries.read` skips the greeting and empty lines.

Safety: the :class:`~hbtscope.instruments.optics.LED` interface refuses a power fraction above
``max_fraction`` (setup file); this driver rounds to whole percent *down* to the limit, so no
command above ``max_fraction`` is ever sent; at connection an LED found above the limit is
switched off and brought to the limit; ``safe_state()`` sends ``CSF`` (all channels off).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from pymeasure.instruments import Instrument

from hbtscope.instruments.drivers._common import VisaRole, open_real, reopen_real
from hbtscope.instruments.optics import LED
from hbtscope.instruments.registry import DriverInfo, LimitRule, SimConnector

log = logging.getLogger(__name__)

_CSS = re.compile(r"CSS((?:[A-H][SX][NF]\d{3})+)")
_GREETING = ("hello", "pleased to meet you", "precisexcite")
CHANNELS = "ABCDEFGH"


class CoolLEDError(RuntimeError):
    """The unit answered something other than the expected status."""


@dataclass(frozen=True)
class ChannelState:
    selected: bool
    on: bool
    intensity: int  # percent

    def css(self, channel: str) -> str:
        return (
            f"{channel}{'S' if self.selected else 'X'}{'N' if self.on else 'F'}{self.intensity:03d}"
        )


def parse_css(reply: str) -> dict[str, ChannelState]:
    """``CSSASN050BXF000`` → {"A": ChannelState(True, True, 50), "B": ...}; raises otherwise."""
    m = _CSS.fullmatch(reply.strip())
    if not m:
        raise CoolLEDError(f"expected a CSS channel status, got {reply!r}")
    body = m.group(1)
    out = {}
    for i in range(0, len(body), 6):
        ch, sel, on, pct = body[i], body[i + 1], body[i + 2], int(body[i + 3 : i + 6])
        if pct > 100:
            raise CoolLEDError(f"intensity {pct} % in status {reply!r}")
        out[ch] = ChannelState(sel == "S", on == "N", pct)
    return out


def visa_settings() -> dict[str, Any]:
    from pyvisa import constants

    return {
        "asrl": {
            "baud_rate": 57600,
            "data_bits": 8,
            "parity": constants.Parity.none,
            "stop_bits": constants.StopBits.one,
            "flow_control": constants.ControlFlow.none,
        },
        "read_termination": "\n",
        "write_termination": "\r",
        "timeout": 2000,
    }


class CoolLEDpESeries(Instrument):
    """CoolLED pE-100 / pE-300 / pE-4000 (one pymeasure Instrument for the whole unit)."""

    def __init__(self, adapter, name: str = "CoolLED pE", **kwargs):
        for key, value in visa_settings().items():
            kwargs.setdefault(key, value)
        super().__init__(adapter, name, includeSCPI=False, **kwargs)

    def read(self, **kwargs) -> str:
        """The next reply line, skipping the connection greeting and empty lines."""
        for _ in range(8):
            line = super().read(**kwargs).strip()
            if line and not any(word in line.lower() for word in _GREETING):
                return line
            if line:
                log.info("%s greets: %s", self.name, line)
        raise CoolLEDError(f"{self.name}: no reply among the greeting lines")

    status = Instrument.measurement(
        "CSS?",
        "Get the state of every channel: {letter: ChannelState(selected, on, intensity %)}.",
        cast=str,
        maxsplit=0,
        get_process=parse_css,
    )
    model = Instrument.measurement(
        "XMODEL",
        "Get the model name (e.g. 'pE-4000').",
        cast=str,
        maxsplit=0,
        get_process=lambda r: r[len("XMODEL") :].strip(" :=") if r.startswith("XMODEL") else r,
    )

    def set_channels(self, states: dict[str, ChannelState]) -> dict[str, ChannelState]:
        """Send ``CSS`` for the given channels; returns the status the unit answers."""
        for ch, state in states.items():
            if ch not in CHANNELS or not 0 <= int(state.intensity) <= 100:
                raise ValueError(f"channel {ch!r} at {state.intensity!r} %: need A-H, 0-100 %")
        body = "".join(state.css(ch) for ch, state in states.items())
        self.write("CSS" + body)
        return parse_css(self.read())

    def all_on(self) -> dict[str, ChannelState]:
        """``CSN``: every selected channel on."""
        self.write("CSN")
        return parse_css(self.read())

    def all_off(self) -> dict[str, ChannelState]:
        """``CSF``: every channel off."""
        self.write("CSF")
        return parse_css(self.read())

    def versions(self) -> dict[str, str]:
        """``XVER`` lines as {part: version}. Their number depends on the model, so a ``CSS?``
        follows and the lines are read up to its answer (as Micro-Manager's adapter does)."""
        self.write("XVER")
        self.write("CSS?")
        out: dict[str, str] = {}
        for _ in range(32):
            line = self.read()
            if line.startswith("CSS"):
                parse_css(line)
                return out
            if not line.startswith("XVER"):
                raise CoolLEDError(f"unexpected reply to XVER: {line!r}")
            key, _, value = line[len("XVER") :].strip().partition("=")
            out[key.strip()] = value.strip()
        raise CoolLEDError("XVER: no end to the version lines")

    def wavelengths_nm(self, n_channels: int) -> dict[str, int]:
        """``LAMS``: the wavelength (nm) loaded in each of the ``n_channels`` channels."""
        self.write("LAMS")
        out = {}
        for _ in range(n_channels):
            line = self.read()
            m = re.fullmatch(r"LAM:([A-H]):(\d+)", line)
            if not m:
                raise CoolLEDError(f"unexpected reply to LAMS: {line!r}")
            out[m.group(1)] = int(m.group(2))
        return out


class CoolLEDpE(VisaRole, LED):
    """The :class:`LED` interface on one channel (default ``A``) of a CoolLED pE unit."""

    def __init__(self, inst: CoolLEDpESeries, max_fraction: float = 1.0, channel="A", reopen=None):
        LED.__init__(self, max_fraction)
        self._bind(inst, reopen)
        self.channel = channel
        self.max_percent = math.floor(self.max_fraction * 100 + 1e-9)
        status = self._io(lambda: inst.status)
        if channel not in status:
            raise ValueError(f"channel {channel} is not on this unit (it has {', '.join(status)})")
        self.model = self._io(lambda: inst.model)
        state = status[channel]
        if state.intensity > self.max_percent:
            log.warning(
                "%s channel %s found at %d %% > max_fraction: switching it off at %d %%",
                self.model,
                channel,
                state.intensity,
                self.max_percent,
            )
            self._set(ChannelState(state.selected, False, self.max_percent))

    def _state(self) -> ChannelState:
        return self._io(lambda: self.inst.status)[self.channel]

    def _set(self, wanted: ChannelState) -> None:
        if wanted.intensity > self.max_percent:  # cannot happen through the interface
            raise AssertionError("intensity above max_fraction reached the driver")
        got = self._io(lambda: self.inst.set_channels({self.channel: wanted}))
        state = got.get(self.channel)
        if state is None or state.intensity != wanted.intensity or state.on != wanted.on:
            raise CoolLEDError(
                f"{self.model} channel {self.channel}: asked {wanted.css(self.channel)}, "
                f"the unit reports {state.css(self.channel) if state else 'no such channel'}"
                " (not selected on the control pod?)"
            )

    # ---- LED
    def _read_fraction(self) -> float:
        return self._state().intensity / 100.0

    def _write_fraction(self, value: float) -> None:
        percent = min(int(round(value * 100)), self.max_percent)
        state = self._state()
        self._set(ChannelState(True, state.on, percent))

    def _read_on(self) -> bool:
        state = self._state()
        return state.on and state.selected

    def _write_on(self, on: bool) -> None:
        state = self._state()
        self._set(ChannelState(state.selected or on, on, min(state.intensity, self.max_percent)))

    def safe_state(self) -> None:
        """Every channel of the unit off (``CSF``), not only ours."""
        status = self._io(self.inst.all_off)
        if any(s.on for s in status.values()):
            raise CoolLEDError(f"{self.model}: channels still on after CSF: {status}")

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap.update({"model": self.model, "channel": self.channel})
        return snap


# ----------------------------------------------------------------------------- registry
def _build(setup, spec, sim: SimConnector | None = None) -> CoolLEDpE:
    """The LED role; ``sim(visa_settings)`` returns the twin's session factory."""
    limits = setup.limits["led"]
    settings = setup.settings["led"]
    channel = CHANNELS[int(settings.get("channel_number", 1)) - 1]
    if sim is not None:
        reopen = sim(visa_settings())
        inst = CoolLEDpESeries(reopen())
    else:
        inst = open_real(CoolLEDpESeries, spec.address, **visa_settings())
        reopen = reopen_real(spec.address, **visa_settings())
    try:
        return CoolLEDpE(inst, limits.get("max_fraction", 1.0), channel=channel, reopen=reopen)
    except Exception:
        inst.adapter.close()
        raise


DRIVERS = [
    DriverInfo(
        "led",
        "CoolLEDpE",
        ("sim", "real"),
        (LimitRule("max_fraction", "value", 1e-6, 1.0, required=False),),
        _build,
        "CoolLED pE-100/pE-300/pE-4000 LED source (serial; sim: wire-level twin of a pE-100)",
        settings=(LimitRule("channel_number", "value", 1, 8, required=False),),
    )
]
