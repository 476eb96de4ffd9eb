"""hbtscope: control and acquisition for a confocal microscope with a Hanbury Brown-Twiss arm."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hbtscope")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "open_setup"]


def open_setup(path=None, **overrides):
    """Build the Setup described by a setup file (``None``: the bundled simulated microscope).

    See :func:`hbtscope.setup.open_setup`.
    """
    from hbtscope.setup import open_setup as _open_setup

    return _open_setup(path, **overrides)
