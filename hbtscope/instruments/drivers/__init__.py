"""Real instrument drivers, one module per device, each listing its DriverInfo in ``DRIVERS``.

A module here must import its vendor SDK lazily (inside functions), so hbtscope installs and
runs without it, and must never import the simulation: with ``backend: sim`` its builder is
handed the twin's connection by the Setup (see :mod:`hbtscope.instruments.registry` and
docs/adding-a-driver.md).
"""
