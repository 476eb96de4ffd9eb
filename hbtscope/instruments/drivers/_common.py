"""What the serial/VISA drivers share: opening a pymeasure Instrument on the real port, and
surviving a timeout or a lost connection.

With ``backend: sim`` a driver does not open anything itself: the Setup hands it a connector from
the twin registry (:data:`hbtscope.instruments.registry.SimConnector`) which, given the driver's
:func:`visa_settings`, returns a factory of adapter sessions on the device's simulated twin. That
factory is the driver's ``reopen``, exactly as :func:`reopen_real` is on a real port.

Not a driver module (no ``DRIVERS``); the registry skips it.

Recovery policy (design §1: an overnight queue survives a serial timeout):

- a **timeout** (``VI_ERROR_TMO``) flushes the input buffer, so that a late reply cannot be read
  as the answer to the next command, and repeats the request once. Every request the drivers
  make is idempotent (an absolute voltage, an absolute wheel position, a query), so repeating
  one the device did execute is harmless. A second timeout is raised.
- a **lost connection** (``VI_ERROR_CONN_LOST``: USB unplugged, device power-cycled) closes the
  session, opens a new one on the same address and repeats the request once. If the device is
  still gone the error is raised.

Limits are checked by the role interface *before* any of this runs, so a retry never sends
anything the first attempt could not have sent.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def visa_status(exc: BaseException):
    """The pyvisa status code of a VisaIOError, or None for any other exception."""
    try:
        from pyvisa.errors import VisaIOError
    except ImportError:  # pragma: no cover - pyvisa is a dependency
        return None
    return exc.error_code if isinstance(exc, VisaIOError) else None


def open_real(cls, address: str, **visa_kwargs):
    """The pymeasure Instrument ``cls`` on the VISA resource ``address`` (opened now, never at
    import time), with the device's serial settings in ``visa_kwargs``."""
    if not address:
        raise ValueError(f"{cls.__name__}: backend 'real' needs an address (e.g. ASRL3::INSTR)")
    return cls(address, **visa_kwargs)


def reopen_real(address: str, **visa_kwargs) -> Callable[[], Any]:
    """A factory of fresh VISA sessions on ``address`` (for :meth:`VisaRole.reconnect`)."""

    def reopen():
        from pymeasure.adapters import VISAAdapter

        return VISAAdapter(address, **visa_kwargs)

    return reopen


class VisaRole:
    """Mixin for a role implementation that talks through a pymeasure Instrument ``self.inst``.

    ``self._io(fn)`` runs one exchange with the recovery policy of this module.
    """

    inst: Any
    _reopen: Callable[[], Any] | None = None

    def _bind(self, inst, reopen: Callable[[], Any] | None) -> None:
        self.inst = inst
        self._reopen = reopen
        self.recoveries: list[str] = []  # what was recovered from, for the log and the tests

    def _io(self, fn: Callable[[], Any]) -> Any:
        from pyvisa import constants

        try:
            return fn()
        except Exception as exc:
            code = visa_status(exc)
            if code == constants.StatusCode.error_timeout:
                log.warning("%s: timeout, flushing and repeating the request once", self.inst.name)
                self.recoveries.append("timeout")
                with contextlib.suppress(Exception):
                    self.inst.adapter.flush_read_buffer()
                return fn()
            if code == constants.StatusCode.error_connection_lost and self._reopen is not None:
                log.warning("%s: connection lost, reconnecting once", self.inst.name)
                self.recoveries.append("reconnect")
                self.reconnect()
                return fn()
            raise

    def reconnect(self) -> None:
        """Close the session and open a new one on the same address (or twin)."""
        if self._reopen is None:
            raise ConnectionError(f"{self.inst.name}: no way to reopen the connection")
        with contextlib.suppress(Exception):
            self.inst.adapter.close()
        self.inst.adapter = self._reopen()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.inst.adapter.close()
