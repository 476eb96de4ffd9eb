"""Wire-level simulation of serial/VISA instruments.

A real driver (a pymeasure :class:`~pymeasure.instruments.Instrument`) talks to its device
through an adapter; here :class:`SimAdapter` connects it to a :class:`WireTwin`, a simulator
that parses the device's *published command set* and answers as the device does (its error
replies included), while acting on the shared simulated world. So the same driver code runs
in the lab (``VISAAdapter`` on ``ASRL3::INSTR``) and in CI (``SimAdapter(twin)``).

Faults injected from the setup file act on the wire, as on real hardware: a *timeout* loses
the reply of one request (the driver's read times out after ``timeout_s`` on the setup clock
with pyvisa's ``VI_ERROR_TMO``), a *disconnect* fails every later request with
``VI_ERROR_CONN_LOST``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from pymeasure.adapters import Adapter


def _visa_error(code_name: str) -> Exception:
    from pyvisa import constants
    from pyvisa.errors import VisaIOError

    return VisaIOError(getattr(constants.StatusCode, code_name))


class WireTwin:
    """A simulated device at the wire: text commands in, text replies out.

    Subclasses implement :meth:`handle`, returning the reply lines of one command (``[]`` for
    none). ``role`` names the setup role, for fault injection. Messages are exchanged without
    their termination characters (the adapter strips them, as pyvisa does).
    """

    role: str = ""
    #: time one request takes on the wire (s), spent on the setup clock
    latency_s: float = 0.0

    def __init__(self, world):
        self.world = world

    def handle(self, command: str) -> list[str]:
        raise NotImplementedError  # pragma: no cover - abstract

    def handle_bytes(self, content: bytes) -> bytes:
        """Binary protocols override this; text twins decode and answer as text."""
        replies = self.handle(content.decode("ascii", errors="replace"))
        return "".join(replies).encode("ascii")


class SimAdapter(Adapter):
    """pymeasure adapter wired to a :class:`WireTwin` instead of a port.

    ``read_termination``/``write_termination`` are those of the device, applied here as a
    VISA session would. ``timeout_s`` is the read timeout (setup clock).
    """

    def __init__(
        self,
        twin: WireTwin,
        *,
        timeout_s: float = 2.0,
        write_termination: str = "\r",
        read_termination: str = "\r",
        log=None,
        **kwargs,
    ):
        super().__init__(log=log, **kwargs)
        self.twin = twin
        self.timeout_s = timeout_s
        self.write_termination = write_termination
        self.read_termination = read_termination
        self._replies: deque[str] = deque()
        self._bytes = bytearray()
        self.connection = twin  # what pymeasure's Instrument.adapter.connection points at
        self.closed = False

    # -- faults on the wire
    def _fault(self) -> bool:
        """True if this request's reply is lost (injected timeout); raises on a disconnect."""
        faults = getattr(self.twin.world, "faults", None)
        kind = faults.decide(self.twin.role) if faults is not None else None
        if kind == "disconnect":
            self.closed = True
            raise _visa_error("error_connection_lost")
        return kind == "timeout"

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.twin.world.clock.sleep(seconds)

    # -- pymeasure Adapter hooks
    def _write(self, command: str, **kwargs) -> None:
        if self.closed:
            raise _visa_error("error_connection_lost")
        if self.write_termination and command.endswith(self.write_termination):
            command = command[: -len(self.write_termination)]
        lost = self._fault()
        self._sleep(self.twin.latency_s)
        replies = self.twin.handle(command)
        if not lost:
            self._replies.extend(replies)

    def _read(self, **kwargs) -> str:
        if self.closed:
            raise _visa_error("error_connection_lost")
        if not self._replies:
            self._sleep(self.timeout_s)
            raise _visa_error("error_timeout")
        return self._replies.popleft()

    def _write_bytes(self, content: bytes, **kwargs) -> None:
        if self.closed:
            raise _visa_error("error_connection_lost")
        lost = self._fault()
        self._sleep(self.twin.latency_s)
        reply = self.twin.handle_bytes(bytes(content))
        if not lost:
            self._bytes.extend(reply)

    def _read_bytes(self, count: int, break_on_termchar: bool = False, **kwargs) -> bytes:
        if self.closed:
            raise _visa_error("error_connection_lost")
        if count < 0:
            out, self._bytes = bytes(self._bytes), bytearray()
            return out
        if len(self._bytes) < count:
            self._sleep(self.timeout_s)
            raise _visa_error("error_timeout")
        out = bytes(self._bytes[:count])
        del self._bytes[:count]
        return out

    def flush_read_buffer(self) -> None:
        self._replies.clear()
        self._bytes.clear()

    def close(self) -> None:
        self.closed = True

    def __repr__(self) -> str:
        return f"<SimAdapter({type(self.twin).__name__})>"


def sessions(twin: WireTwin, visa_settings: dict[str, Any]) -> Callable[[], SimAdapter]:
    """A factory of fresh :class:`SimAdapter` sessions on ``twin``, framed as a VISA session
    with the driver's ``visa_settings`` would be (its terminations and ``timeout`` in ms; the
    serial-port settings do not matter on a simulated wire).

    This is what a wire-level twin's connector returns: the driver opens its first session with
    it, and a new one after a lost connection (``VisaRole.reconnect``).
    """
    framing: dict[str, Any] = {}
    for key in ("read_termination", "write_termination"):
        if key in visa_settings:
            framing[key] = visa_settings[key]
    if "timeout" in visa_settings:
        framing["timeout_s"] = visa_settings["timeout"] / 1000.0

    def open_session() -> SimAdapter:
        return SimAdapter(twin, **framing)

    return open_session
