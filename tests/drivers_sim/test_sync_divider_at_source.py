"""The sync channel's event divider is applied where the syncs are generated (world).

A divided sync must be what the tagger's divider would have kept -- every N-th laser pulse,
exactly N periods apart -- and must not change the photons (the generation is keyed by slice,
not by what is listened to).
"""

from __future__ import annotations

import numpy as np

import hbtscope
from hbtscope.drivers_sim import timetagger as tt
from hbtscope.units import PS_PER_S


def _record(setup, channels, seconds=0.3):
    dev = setup.tagger.device
    stream = tt.TimeTagStream(dev, 10**7, channels)
    stream.startFor(int(seconds * PS_PER_S))
    stream.waitUntilFinished()
    buf = stream.getData()
    return buf.getTimestamps(), buf.getChannels()


def test_divided_sync_is_every_nth_pulse_and_photons_unchanged(tmp_path):
    runs = {}
    for divider in (1, 997):
        with hbtscope.open_setup(data_dir=tmp_path) as setup:
            setup.stage.move_to(10.0, 10.0, 0.0)
            setup.laser.power_W = 24e-9
            setup.laser.enable()
            setup.tagger.device.setEventDivider(1, divider)
            assert setup.tagger.device.getEventDivider(1) == divider
            runs[divider] = _record(setup, [1, 2, 3])
            period = PS_PER_S / setup.laser.rep_rate_Hz
    (t1, c1), (tn, cn) = runs[1], runs[997]
    s1, sn = t1[c1 == 1], tn[cn == 1]
    assert sn.size == -(-s1.size // 997)  # the 1st, (N+1)-th, ... of the undivided ones
    np.testing.assert_array_equal(np.diff(sn), np.round(997 * period))
    np.testing.assert_array_equal(sn, s1[::997])
    np.testing.assert_array_equal(t1[c1 != 1], tn[cn != 1])  # same photons
