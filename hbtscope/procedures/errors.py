"""Errors a user causes with a measurement's parameters or its output directory: raised before
anything moves or fires and before a run file exists (light module: the CLI imports it)."""

from __future__ import annotations


class ParameterError(ValueError):
    """A parameter the measurement or the setup does not allow (name, value, what is allowed)."""


class OutputDirError(ValueError):
    """The data directory cannot hold run files."""
