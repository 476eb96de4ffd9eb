"""Real instrument drivers, one module per device, each listing its DriverInfo in ``DRIVERS``.

A module here must import its vendor SDK lazily (inside functions), so hbtscope installs and
runs without it; serial/VISA drivers are pymeasure Instruments whose simulated twin lives in
``hbtscope.drivers_sim.twins`` and plugs in through ``SimAdapter``.
"""
