"""NI-DAQmx raster driver: the exact nidaqmx calls (module mocked at its boundary), voltage
ranges and travel enforced before ``task.write``, and the same driver on the simulated
nidaqmx: a confocal image gated by CountBetweenMarkers in the simulated tagger."""

from __future__ import annotations

import re
import sys
from unittest.mock import MagicMock, call

import nidaqmx.constants as C
import nidaqmx.errors
import numpy as np
import pytest

import hbtscope
from hbtscope.clock import VirtualClock
from hbtscope.drivers_sim.twins.nidaqmx_twin import make_module
from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.nidaq_scan import NIDAQmxRasterScan, load_nidaqmx
from hbtscope.setup import default_setup_path

AXES = {"x": (0, 10.0, 0.0), "y": (1, 10.0, 0.0), "z": (2, 2.0, 5.0)}
TRAVEL = {"x": (0.0, 80.0), "y": (0.0, 80.0), "z": (-10.0, 10.0)}


def _mock_ni(rate=None):
    ni = MagicMock(name="nidaqmx")
    ni.constants = C
    ni.errors = nidaqmx.errors
    dev = ni.system.Device.return_value
    dev.product_type = "PCIe-6343"
    dev.ao_max_rate = 900_000.0
    dev.ao_voltage_rngs = [-10.0, 10.0]
    task = ni.Task.return_value
    task.timing.samp_clk_rate = rate
    task.is_task_done.return_value = False
    return ni, task


def _scan(ni, clock=None, **kwargs):
    args = dict(
        travel_um=TRAVEL,
        axes=AXES,
        voltage_range_V=(0.0, 10.0),
        marker_pfi=12,
        clock=clock or VirtualClock("fast"),
        marker_tagger_channel=4,
    )
    args.update(kwargs)
    return NIDAQmxRasterScan(ni, "Dev1", **args)


def _raster(cx, cy, half, n, z=0.0):
    xs = np.linspace(cx - half, cx + half, n)
    ys = np.linspace(cy - half, cy + half, n)
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel(), np.full(gx.size, z)]), xs, ys


def test_construction_reads_the_device_limits():
    ni, task = _mock_ni()
    scan = _scan(ni)
    ni.system.Device.assert_called_once_with("Dev1")
    assert scan.min_dwell_s == pytest.approx(1 / 900_000.0)
    assert _scan(ni, min_dwell_s=1e-4).min_dwell_s == 1e-4
    ni.Task.assert_not_called()
    with pytest.raises(LimitError, match=r"outside the AO ranges of Dev1 \(PCIe-6343\)"):
        _scan(ni, voltage_range_V=(-12.0, 10.0))
    with pytest.raises(LimitError, match="non-zero"):
        _scan(ni, axes={"x": (0, 0.0, 0.0), "y": (1, 10.0, 0.0)})
    with pytest.raises(LimitError, match="x and y"):
        _scan(ni, axes={"x": (0, 10.0, 0.0)})


def test_load_raster_makes_exactly_these_calls():
    ni, task = _mock_ni(rate=500.0)
    scan = _scan(ni)
    xyz, _, _ = _raster(10.0, 20.0, 1.0, 3, z=1.0)
    scan.load_raster(xyz, 2e-3, marker_channel=4)
    ni.Task.assert_called_once_with("hbtscope-raster")
    chan = [
        call.ao_channels.add_ao_voltage_chan(
            f"Dev1/ao{i}",
            name_to_assign_to_channel=axis,
            min_val=0.0,
            max_val=10.0,
            units=C.VoltageUnits.VOLTS,
        )
        for i, axis in enumerate("xyz")
    ]
    expected = chan + [
        call.timing.cfg_samp_clk_timing(
            500.0,
            source="",
            active_edge=C.Edge.RISING,
            sample_mode=C.AcquisitionType.FINITE,
            samps_per_chan=10,
        ),
        call.export_signals.export_signal(C.Signal.SAMPLE_CLOCK, "/Dev1/PFI12"),
    ]
    assert task.method_calls[:-1] == expected
    name, args, kwargs = task.method_calls[-1]
    assert name == "write" and kwargs == {"auto_start": False}
    volts = args[0]
    assert volts.shape == (3, 10)  # x, y, z by 9 pixels + the end sample
    assert np.allclose(volts[0, :9], xyz[:, 0] / 10.0)
    assert np.allclose(volts[1, :9], xyz[:, 1] / 10.0)
    assert np.allclose(volts[2], 5.0 + 1.0 / 2.0)
    assert np.allclose(volts[:, 9], volts[:, 8])  # holds the last pixel
    assert scan.snapshot()["sample_rate_Hz"] == 500.0
    assert scan.snapshot()["loaded_pixels"] == 9


@pytest.mark.parametrize(
    "xyz, match",
    [
        (_raster(79.5, 10.0, 1.0, 5)[0], "outside the stage travel"),
        (_raster(10.0, 10.0, 1.0, 5, z=-11.0)[0], "outside the stage travel"),
        (_raster(10.0, 10.0, 1.0, 5, z=np.nan)[0], "finite"),
    ],
)
def test_out_of_travel_rasters_never_reach_the_card(xyz, match):
    ni, task = _mock_ni(rate=1000.0)
    scan = _scan(ni)
    with pytest.raises(LimitError, match=match):
        scan.load_raster(xyz, 1e-3, marker_channel=4)
    ni.Task.assert_not_called()
    task.write.assert_not_called()


def test_rasters_outside_the_controller_voltage_never_reach_the_card():
    ni, task = _mock_ni(rate=1000.0)
    scan = _scan(ni, axes={"x": (0, 5.0, 0.0), "y": (1, 10.0, 0.0)})  # 80 µm needs 16 V
    good, _, _ = _raster(10.0, 10.0, 1.0, 3)
    scan.load_raster(good, 1e-3, marker_channel=4)
    ni.reset_mock()
    task.reset_mock()
    bad, _, _ = _raster(70.0, 10.0, 1.0, 3)
    with pytest.raises(LimitError, match=r"outside the controller input range voltage_V"):
        scan.load_raster(bad, 1e-3, marker_channel=4)
    ni.Task.assert_not_called()
    task.write.assert_not_called()
    assert scan.snapshot()["loaded_pixels"] == 9  # the previous raster stays loaded
    with pytest.raises(LimitError, match="no z axis"):
        scan.load_raster(np.array([[1.0, 1.0, 0.0], [1.0, 1.0, 0.5]]), 1e-3)
    with pytest.raises(LimitError, match="below the minimum"):
        scan.load_raster(good, 1e-7)
    with pytest.raises(LimitError, match="wired to tagger channel 4, not 5"):
        scan.load_raster(good, 1e-3, marker_channel=5)
    task.write.assert_not_called()


def test_start_wait_stop_and_close():
    clock = VirtualClock("fast")
    ni, task = _mock_ni(rate=1000.0)
    scan = _scan(ni, clock=clock)
    with pytest.raises(RuntimeError, match="no raster loaded"):
        scan.start()
    assert scan.is_done()
    xyz, _, _ = _raster(10.0, 10.0, 1.0, 3)
    scan.load_raster(xyz, 1e-3, marker_channel=4)
    task.reset_mock()
    clock.sleep(2.0)
    assert scan.start() == pytest.approx(2.0)
    assert not scan.is_done()
    scan.wait_done()
    scan.stop()
    assert task.method_calls == [
        call.start(),
        call.is_task_done(),
        call.wait_until_done(timeout=10 / 1000.0 + 10.0),
        call.stop(),
    ]
    task.reset_mock()
    scan.start()
    scan.start()  # a finished finite task is stopped before it starts again
    assert task.method_calls == [call.start(), call.stop(), call.start()]
    task.reset_mock()
    scan.safe_state()
    scan.close()
    scan.close()
    assert task.method_calls == [call.stop(), call.close()]


def test_a_card_that_is_not_there():
    ni, task = _mock_ni()
    type(ni.system.Device.return_value).product_type = property(
        lambda self: (_ for _ in ()).throw(
            nidaqmx.errors.DaqError("Device identifier is invalid.", -200220)
        )
    )
    with pytest.raises(RuntimeError, match="'Dev1' not found or not usable"):
        _scan(ni)


def test_missing_sdk_says_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nidaqmx", None)
    with pytest.raises(RuntimeError, match="pip install nidaqmx"):
        load_nidaqmx()


def test_missing_ni_daqmx_runtime_says_how_to_install_it():
    ni = load_nidaqmx()  # the real package; this machine has no NI-DAQmx runtime
    try:
        scan = _scan(ni)
    except RuntimeError as exc:
        assert "installdriver" in str(exc) or "not found" in str(exc)
    else:  # pragma: no cover - a machine with NI-DAQmx and a Dev1
        scan.close()


# ------------------------------------------------------------------ the simulated nidaqmx
def _plain(c):
    name, args, kwargs = c
    args = tuple(a.round(12).tolist() if isinstance(a, np.ndarray) else a for a in args)
    return name, args, kwargs


class _Spy:
    """Records every method call below ``target`` (``ao_channels.add...`` included)."""

    def __init__(self, target, calls=None, prefix=""):
        self._target, self._prefix = target, prefix
        self.method_calls = [] if calls is None else calls

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        path = self._prefix + name
        if callable(attr):

            def method(*args, **kwargs):
                self.method_calls.append((path, args, kwargs))
                return attr(*args, **kwargs)

            return method
        if attr is None or isinstance(attr, int | float | str | tuple | list | np.ndarray):
            return attr
        return _Spy(attr, self.method_calls, path + ".")


class _World:
    def __init__(self):
        self.clock = VirtualClock("fast")
        self.faults = None
        self.focus = np.zeros(3)
        self.scans = []

    def focus_at(self, t_ps=None):
        return self.focus.copy()

    def schedule_scan(self, start_ps, dwell_ps, xyz, marker):
        self.scans.append((start_ps, dwell_ps, np.array(xyz), marker))
        return start_ps + dwell_ps * len(xyz)

    def move_focus(self, x, y, z):
        self.focus = np.array([x, y, z])

    def cancel_scan(self):
        self.scans.append("cancelled")


def test_the_twin_answers_the_same_calls_identically():
    world = _World()
    twin = make_module(world, device="Dev1", axes=AXES, marker_wiring={"/Dev1/PFI12": 4})
    spies = []
    original_task = twin.Task

    def task_factory(name=""):
        spies.append(_Spy(original_task(name)))
        return spies[-1]

    twin.Task = task_factory
    ni, task = _mock_ni(rate=500.0)
    xyz, _, _ = _raster(10.0, 20.0, 1.0, 3, z=1.0)
    for module in (twin, ni):
        scan = _scan(module, clock=world.clock)
        scan.load_raster(xyz, 2e-3, marker_channel=4)
        scan.start()
        scan.wait_done()
        scan.stop()
        scan.close()
    assert [_plain(c) for c in spies[0].method_calls] == [
        _plain(c) for c in task.method_calls if c[0] != "is_task_done"
    ]
    start_ps, dwell_ps, positions, marker = world.scans[0]
    assert dwell_ps == 2_000_000_000 and marker == 4
    assert np.allclose(positions, xyz)  # volts back to µm through the simulated amplifier


def _setup_file(tmp_path, settings=""):
    text = default_setup_path().read_text()
    # the subject is not the stage: an ideal one puts the focus exactly on the emitter
    text = text.replace("hysteresis_um: 0.15", "hysteresis_um: 0.0").replace(
        "creep_per_decade: 0.01", "creep_per_decade: 0.0"
    )
    block = (
        "  daq:\n    driver: NIDAQmxRaster\n    backend: sim\n    address: sim://Dev1\n"
        "    limits:\n      voltage_V: {min: 0.0, max: 10.0}\n    settings:\n"
        "      x_um_per_V: 10.0\n      y_um_per_V: 10.0\n      z_um_per_V: 2.0\n"
        "      z_offset_V: 5.0\n" + settings
    )
    text = re.sub(r"  daq:\n(    .*\n)+", block, text, count=1)
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return path


@pytest.fixture()
def setup(tmp_path):
    with hbtscope.open_setup(_setup_file(tmp_path), data_dir=tmp_path) as s:
        yield s


def test_confocal_image_from_the_daq_pixel_markers(setup):
    """A 21x21 raster over the demo emitter, run by the NI-DAQmx driver on the simulated card:
    CountBetweenMarkers gives a confocal image with the spot on the emitter."""
    assert isinstance(setup.daq, NIDAQmxRasterScan)
    tt, api = setup.tagger, setup.tagger.api
    marker = tt.channels["pixel_marker"]
    xyz, xs, ys = _raster(10.0, 10.0, 1.0, 21)
    setup.laser.power_W = 10e-9
    setup.laser.enable()
    dwell = 2e-3
    setup.daq.load_raster(xyz, dwell, marker_channel=marker)
    cbm = [
        api.CountBetweenMarkers(tt.device, ch, marker, n_values=xyz.shape[0])
        for ch in tt.spad_channels
    ]
    t0 = setup.daq.start()
    assert t0 == pytest.approx(setup.clock.now())
    assert not setup.daq.is_done()
    setup.daq.wait_done()
    assert setup.daq.is_done()
    setup.clock.sleep(0.01)
    assert all(c.ready() for c in cbm)
    assert np.allclose(cbm[0].getBinWidths(), dwell * 1e12, atol=1)
    image = (cbm[0].getData() + cbm[1].getData()).reshape(21, 21).astype(float)
    assert setup.stage.position_um[:2] == pytest.approx((11.0, 11.0))
    w = np.clip(image - np.median(image), 0, None)
    gx, gy = np.meshgrid(xs, ys)
    cx, cy = (w * gx).sum() / w.sum(), (w * gy).sum() / w.sum()
    pixel = xs[1] - xs[0]
    assert abs(cx - 10.0) < 0.2 * pixel and abs(cy - 10.0) < 0.2 * pixel
    assert image.max() > 10 * (np.median(image) + 1)
    snap = setup.snapshot()["daq"]
    assert snap["loaded_pixels"] == 441 and snap["sample_rate_Hz"] == 500.0


def test_out_of_travel_raster_is_refused_before_anything_moves(setup):
    xyz, _, _ = _raster(79.5, 10.0, 1.0, 5)
    before = setup.stage.position_um
    with pytest.raises(LimitError, match="outside the stage travel"):
        setup.daq.load_raster(xyz, 1e-3, marker_channel=4)
    assert setup.stage.position_um == before
    assert setup.world._sched_t.size == 0


def test_stop_midway_leaves_the_stage_at_the_current_pixel(setup):
    xyz, _, _ = _raster(20.0, 20.0, 1.0, 11)
    setup.daq.load_raster(xyz, 0.01, marker_channel=4)
    t0 = setup.daq.start()
    setup.clock.sleep(0.5)
    setup.daq.stop()
    i = int((setup.clock.now() - t0) / 0.01)
    assert setup.stage.position_um == pytest.approx(tuple(xyz[i]))
    setup.clock.sleep(1.0)
    assert setup.stage.position_um == pytest.approx(tuple(xyz[i]))
    assert setup.daq.is_done()


def test_a_raster_can_run_again(setup):
    xyz, _, _ = _raster(10.0, 10.0, 0.5, 3)
    setup.daq.load_raster(xyz, 1e-3, marker_channel=4)
    for _ in range(2):
        setup.daq.start()
        setup.daq.wait_done()
        assert setup.stage.position_um == pytest.approx(tuple(xyz[-1]))


def test_a_daq_fault_is_a_daq_error(tmp_path):
    text = _setup_file(tmp_path).read_text()
    text = text.replace(
        "  sample:", "  faults:\n    - {kind: disconnect, role: daq, at_s: 0}\n  sample:", 1
    )
    path = tmp_path / "faulty.yaml"
    path.write_text(text)
    with hbtscope.open_setup(path, data_dir=tmp_path) as s:
        xyz, _, _ = _raster(10.0, 10.0, 0.5, 3)
        s.daq.load_raster(xyz, 1e-3, marker_channel=4)
        with pytest.raises(nidaqmx.errors.DaqError, match="not responding"):
            s.daq.start()


def test_marker_line_and_calibration_come_from_the_setup_file(tmp_path):
    path = _setup_file(tmp_path, settings="      marker_pfi: 8\n      x_ao: 3\n")
    with hbtscope.open_setup(path, data_dir=tmp_path) as s:
        snap = s.daq.snapshot()
        assert snap["marker_terminal"] == "/Dev1/PFI8"
        assert (snap["x_ao"], snap["x_um_per_V"], snap["z_offset_V"]) == (3, 10.0, 5.0)
        xyz, _, _ = _raster(10.0, 10.0, 0.5, 3)
        s.daq.load_raster(xyz, 1e-3, marker_channel=4)
        s.daq.start()
        s.daq.wait_done()
        assert s.stage.position_um == pytest.approx(tuple(xyz[-1]))
