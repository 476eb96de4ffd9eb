"""Injected faults give the errors a real device would cause."""

from __future__ import annotations

import numpy as np
import pytest
from pyvisa import constants
from pyvisa.errors import VisaIOError

import hbtscope
from hbtscope.setup import default_setup_path


def _setup_with_faults(tmp_path, faults_yaml: str):
    text = (
        default_setup_path()
        .read_text()
        .replace(
            "  sync: {tagger_channel: 1, delay_ps: 0}\n",
            "  sync: {tagger_channel: 1, delay_ps: 0}\n  faults:\n" + faults_yaml,
        )
        # the subject is not the stage: an ideal one puts the focus exactly on the emitter
        .replace("hysteresis_um: 0.15", "hysteresis_um: 0.0")
        .replace("creep_per_decade: 0.01", "creep_per_decade: 0.0")
    )
    path = tmp_path / "faulty.yaml"
    path.write_text(text)
    return hbtscope.open_setup(path, data_dir=tmp_path)


def test_serial_timeout_at_a_given_time(tmp_path):
    with _setup_with_faults(tmp_path, "    - {kind: timeout, role: stage, at_s: 10}\n") as s:
        s.stage.move_to(1.0, 1.0, 0.0)  # before 10 s: fine
        s.clock.sleep(10.0)
        t0 = s.clock.now()
        with pytest.raises(VisaIOError) as info:
            s.stage.move_to(2.0, 2.0, 0.0)
        assert info.value.error_code == constants.StatusCode.error_timeout
        assert s.clock.now() - t0 >= 2.0  # the request blocked for the VISA timeout
        s.stage.move_to(2.0, 2.0, 0.0)  # one timeout only: a retry succeeds
        assert s.stage.position_um[:2] == (2.0, 2.0)
        assert s.world.faults.log[0][1:] == ("stage", "timeout")


def test_disconnect_is_permanent(tmp_path):
    with _setup_with_faults(tmp_path, "    - {kind: disconnect, role: powermeter, at_s: 5}\n") as s:
        s.powermeter.read_power_W()
        s.clock.sleep(5.0)
        for _ in range(3):
            with pytest.raises(VisaIOError) as info:
                s.powermeter.read_power_W()
            assert info.value.error_code == constants.StatusCode.error_connection_lost


def test_random_timeouts_have_the_given_probability(tmp_path):
    with _setup_with_faults(tmp_path, "    - {kind: timeout, role: led, probability: 0.1}\n") as s:
        n, failed = 400, 0
        for _ in range(n):
            try:
                s.led.power_fraction = 0.5
            except VisaIOError:
                failed += 1
        # binomial(400, 0.1): mean 40, sigma 6
        assert abs(failed - 40) < 4 * 6


def test_forced_bleaching_darkens_the_emitter(tmp_path):
    with _setup_with_faults(tmp_path, "    - {kind: bleach, emitter: 0, at_s: 3}\n") as s:
        s.stage.move_to(10.0, 10.0, 0.0)
        s.laser.power_W = 24e-9
        s.laser.enable()
        tt = s.tagger
        cr = tt.api.Countrate(tt.device, list(tt.spad_channels))
        cr.startFor(int(2e12))
        cr.waitUntilFinished()
        before = cr.getData().sum()
        s.clock.sleep(2.0)
        cr.startFor(int(2e12))
        cr.waitUntilFinished()
        after = cr.getData().sum()
        assert before > 50_000
        assert after < 1_000  # dark counts + substrate only
        assert s.truth()["bleached"] == [True]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{kind: timeout, role: stage}", "needs at_s"),
        ("{kind: disconnect, role: toaster, at_s: 1}", "needs role"),
        ("{kind: bleach, at_s: 1}", "needs emitter"),
        ("{kind: meteor, at_s: 1}", "must be one of"),
    ],
)
def test_bad_fault_entries_are_setup_errors(tmp_path, entry, message):
    from hbtscope.config_schema import SetupFileError

    with pytest.raises(SetupFileError, match=message):
        _setup_with_faults(tmp_path, f"    - {entry}\n")


def test_tagger_overflow_from_the_setup_file(tmp_path):
    """An overflow interval in the setup file: the stream reports it and loses those tags."""
    faults = "    - {kind: tagger_overflow, at_s: 1.0, duration_s: 0.5}\n"
    with _setup_with_faults(tmp_path, faults) as s:
        s.stage.move_to(10.0, 10.0, 0.0)
        s.laser.power_W = 24e-9
        s.laser.enable()
        tt = s.tagger
        api = tt.api
        stream = api.TimeTagStream(tt.device, 10_000_000, list(tt.spad_channels))
        stream.startFor(int(3e12))
        stream.waitUntilFinished()
        buf = stream.getData()
        types = buf.getEventTypes()
        ts = buf.getTimestamps()[types == api.TagType.TimeTag]
        assert buf.hasOverflows
        assert api.TagType.OverflowBegin in types and api.TagType.OverflowEnd in types
        assert not np.any((ts >= 1.0e12) & (ts < 1.5e12))
        assert buf.getMissedEvents().sum() > 10_000
        assert tt.device.getOverflows() >= 1


def test_tagger_disconnect(tmp_path):
    with _setup_with_faults(tmp_path, "    - {kind: disconnect, role: tagger, at_s: 2}\n") as s:
        tt = s.tagger
        cr = tt.api.Countrate(tt.device, [2])
        s.clock.sleep(2.5)
        with pytest.raises(RuntimeError, match="disconnected"):
            cr.getData()
