"""Wire-level twins of real serial/VISA devices (see :mod:`hbtscope.drivers_sim.wire`).

Each module simulates one device family at its published command set: it parses exactly the
text the real device accepts, answers as the device does (echo, prompt, data format, error
replies for unknown commands and bad arguments) and acts on the shared simulated
:class:`~hbtscope.drivers_sim.world.World`. The real driver in
:mod:`hbtscope.instruments.drivers` runs unchanged on it through
:class:`~hbtscope.drivers_sim.wire.SimAdapter`.

Every twin keeps ``received``: each command as it arrived on the wire, so tests can check
that nothing outside the hard limits ever reached the device.

- :mod:`.thorlabs_mdt69x` — Thorlabs MDT693B/MDT694B piezo controller → ``world.move_focus``
- :mod:`.coolled_pe` — CoolLED pE-100/pE-300/pE-4000 LED source → ``world.set_led``
- :mod:`.thorlabs_pm100` — Thorlabs PM100 power meter (SCPI) ← ``world.laser``
- :mod:`.thorlabs_fw102c` — Thorlabs FW102C filter wheel of polarisers → ``world.set_analyser``
- :mod:`.nidaqmx_ao` — not a wire twin: the ``nidaqmx`` functions the NI-DAQmx stage calls,
  acting on ``world.move_focus`` (an SDK twin, like :mod:`hbtscope.drivers_sim.timetagger`)
"""
