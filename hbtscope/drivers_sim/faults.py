"""Fault injection for the simulated microscope, configured in the setup file.

``simulation: faults:`` is a list of entries such as

    - {kind: timeout, role: stage, at_s: 120}               # one timed-out request at t >= 120 s
    - {kind: timeout, role: led, probability: 0.01}         # each request times out with p
    - {kind: disconnect, role: powermeter, at_s: 60}        # gone for good from 60 s on
    - {kind: tagger_overflow, at_s: 30, duration_s: 0.2}    # tags lost in [30, 30.2) s
    - {kind: bleach, emitter: 0, at_s: 45}                  # emitter 0 bleaches at 45 s

A simulated device calls :meth:`FaultInjector.before_io` before each request; the error it
raises is the one the real driver would see: pyvisa's ``VisaIOError`` with ``VI_ERROR_TMO``
for a serial/VISA timeout, ``VI_ERROR_CONN_LOST`` for a device that disconnected (for the time
tagger: the SDK's ``RuntimeError``).
"""

from __future__ import annotations

import numpy as np

from hbtscope.clock import PS_PER_S

VISA_ROLES = {
    "laser",
    "stage",
    "led",
    "powermeter",
    "polariser",
    "flip_mirror",
    "spectrometer",
    "camera",
}


def _visa_error(code_name: str) -> Exception:
    from pyvisa import constants
    from pyvisa.errors import VisaIOError

    return VisaIOError(getattr(constants.StatusCode, code_name))


class FaultInjector:
    """Decides, per request, whether a simulated device fails, from the setup's fault list."""

    def __init__(self, faults, clock, seed: int):
        self.faults = list(faults)
        self.clock = clock
        self._rng = np.random.default_rng([seed, 0xFA17])
        self._fired: set[int] = set()
        self.log: list[tuple[float, str, str]] = []  # (time s, role, kind): what was injected

    def decide(self, role: str) -> str | None:
        """The fault (``"timeout"``, ``"disconnect"`` or None) hitting this request of
        ``role``; an injected one is logged. Wire-level simulators act on it themselves."""
        now = self.clock.now()
        for n, f in enumerate(self.faults):
            if f.role != role or f.kind not in ("timeout", "disconnect"):
                continue
            due = f.at_s is not None and now >= f.at_s
            hit = False
            if f.kind == "disconnect" and due:
                hit = True
            elif f.kind == "timeout":
                if due and n not in self._fired:
                    self._fired.add(n)
                    hit = True
                elif f.probability and self._rng.random() < f.probability:
                    hit = True
            if hit:
                self.log.append((now, role, f.kind))
                return f.kind
        return None

    def before_io(self, role: str) -> None:
        """Raise the error of an injected fault for this request of ``role``, if any."""
        kind = self.decide(role)
        if kind is not None:
            self._raise(role, kind)

    def _raise(self, role: str, kind: str) -> None:
        if role == "tagger":
            raise RuntimeError(
                "Time Tagger disconnected" if kind == "disconnect" else "Time Tagger timeout"
            )
        if kind == "timeout":
            # a real serial request blocks for the VISA timeout before failing
            self.clock.sleep(2.0)
            raise _visa_error("error_timeout")
        raise _visa_error("error_connection_lost")

    def overflow_intervals_ps(self) -> list[tuple[int, int]]:
        return [
            (int(f.at_s * PS_PER_S), int((f.at_s + f.duration_s) * PS_PER_S))
            for f in self.faults
            if f.kind == "tagger_overflow"
        ]

    def forced_bleaching(self) -> list[tuple[int, int]]:
        """(emitter index, time in ps) of every forced bleaching."""
        return [(f.emitter, int(f.at_s * PS_PER_S)) for f in self.faults if f.kind == "bleach"]
