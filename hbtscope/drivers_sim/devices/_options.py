"""What the simulated devices' builders share (not a device module: no ``DRIVERS``)."""

from __future__ import annotations

from typing import Any


def options(setup, role: str) -> dict[str, Any]:
    """The role's parsed limits and settings from the setup file, as constructor keywords."""
    return {**setup.limits.get(role, {}), **setup.settings.get(role, {})}


def stage_travel_um(setup) -> dict[str, tuple[float, float]]:
    """The stage's travel per axis from its limits ({} without a stage)."""
    stage = setup.limits.get("stage", {})
    return {axis: stage[f"{axis}_um"] for axis in ("x", "y", "z") if f"{axis}_um" in stage}
