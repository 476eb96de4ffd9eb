"""Simulated twins of real devices, each registered for the real driver(s) it stands in for.

Every module lists in ``TWINS`` the driver names it serves and a connector
``connect(world, ...)`` returning what that driver talks to with ``backend: sim``; the twin
registry (:mod:`hbtscope.drivers_sim.registry`) finds them, and the Setup hands the connector,
bound to its world, to the driver. The driver in :mod:`hbtscope.instruments.drivers` runs
unchanged and never imports these modules.

Wire-level twins parse exactly the text the real device accepts, answer as the device does
(echo, prompt, data format, error replies for unknown commands and bad arguments) and act on
the shared :class:`~hbtscope.drivers_sim.world.World`; their connector returns a factory of
:class:`~hbtscope.drivers_sim.wire.SimAdapter` sessions (:func:`~hbtscope.drivers_sim.wire.
sessions`). Every one keeps ``received``: each command as it arrived on the wire, so tests can
check that nothing outside the hard limits ever reached the device.

- :mod:`.thorlabs_mdt69x` — Thorlabs MDT693B/MDT694B piezo controller → ``world.move_focus``
- :mod:`.coolled_pe` — CoolLED pE-100/pE-300/pE-4000 LED source → ``world.set_led``
- :mod:`.thorlabs_pm100` — Thorlabs PM100 power meter (SCPI) ← ``world.laser``
- :mod:`.thorlabs_fw102c` — Thorlabs FW102C filter wheel of polarisers → ``world.set_analyser``
- :mod:`.toptica_ibeam` — Toptica iBeam smart CW laser → ``world.set_laser``

SDK twins implement the vendor functions at their boundary; their connector returns the
stand-in module or library:

- :mod:`.sepia2_twin` — ``Sepia2_Lib`` (PicoQuant Sepia II) → ``world.set_laser``
- :mod:`.nidaqmx_ao` — ``nidaqmx`` AO channels of the NI-DAQmx stage → ``world.move_focus``
- :mod:`.nidaqmx_twin` — ``nidaqmx`` hardware-timed raster with pixel markers → ``world``
- :mod:`.seabreeze_twin` — ``seabreeze.spectrometers`` (Ocean) ← the world's spectra
- :mod:`.dcam_twin` — ``pylablib.devices.DCAM`` (Hamamatsu ORCA) ← wide-field frames
- :mod:`.swabian` — the Swabian Time Tagger API (:mod:`hbtscope.drivers_sim.timetagger`)
"""
