"""What every instrument role has in common."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class LimitError(ValueError):
    """A request outside an instrument's hard limits; nothing was changed."""


class Instrument(ABC):
    """Base of every role's interface: a snapshot of settings, a safe state, close."""

    role: str = ""

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """Current settings, for the run file (plain scalars and strings)."""

    def safe_state(self) -> None:  # noqa: B027 - most roles have nothing to switch off
        """Turn off emission, close shutters. Roles that emit nothing keep this no-op."""

    def close(self) -> None:  # noqa: B027
        """Release the connection."""
