"""NI-DAQmx stage: the nidaqmx calls it makes (mocked at the function boundary), its limits,
and the same driver on the simulated DAQ in the simulated microscope."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from unittest.mock import MagicMock, call

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hbtscope
from hbtscope.config_schema import SetupFileError
from hbtscope.instruments.base import LimitError
from hbtscope.instruments.drivers.nidaq_stage import NIDAQmxStage
from hbtscope.setup import default_setup_path

TRAVEL = {"x": (0.0, 80.0), "y": (0.0, 80.0), "z": (-10.0, 10.0)}
UM_PER_V = {"x": 10.0, "y": 10.0, "z": 2.0}
OFFSET = {"x": 0.0, "y": 0.0, "z": -10.0}


def _mock_daq():
    daq = MagicMock(name="nidaqmx")
    return daq, daq.Task.return_value


def _stage(daq, **kw):
    kw.setdefault("max_voltage_V", 10.0)
    return NIDAQmxStage(
        TRAVEL, device="Dev1", um_per_V=UM_PER_V, offset_um=OFFSET, nidaqmx=daq, **kw
    )


def test_creates_one_task_with_three_ao_channels_in_the_allowed_range():
    daq, task = _mock_daq()
    _stage(daq, ao_channels={"x": 2, "y": 3, "z": 0})
    daq.Task.assert_called_once_with("hbtscope-stage")
    volts = daq.constants.VoltageUnits.VOLTS
    assert task.ao_channels.add_ao_voltage_chan.call_args_list == [
        call(
            "Dev1/ao2", name_to_assign_to_channel="stage_x", min_val=0.0, max_val=10.0, units=volts
        ),
        call(
            "Dev1/ao3", name_to_assign_to_channel="stage_y", min_val=0.0, max_val=10.0, units=volts
        ),
        call(
            "Dev1/ao0", name_to_assign_to_channel="stage_z", min_val=0.0, max_val=10.0, units=volts
        ),
    ]
    task.write.assert_not_called()  # opening does not move the stage


def test_moves_write_one_sample_per_channel_and_close_stops_the_task():
    daq, task = _mock_daq()
    stage = _stage(daq)
    assert all(math.isnan(v) for v in stage.position_um)  # open loop: unknown until moved
    stage.move_to(10.0, 20.0, 0.0)
    stage.move_to(z_um=10.0)
    assert task.write.call_args_list == [
        call([1.0, 2.0, 5.0], auto_start=True),
        call([1.0, 2.0, 10.0], auto_start=True),
    ]
    assert stage.position_um == pytest.approx((10.0, 20.0, 10.0))
    assert stage.snapshot()["ao_channels"] == {"x": "Dev1/ao0", "y": "Dev1/ao1", "z": "Dev1/ao2"}
    stage.close()
    assert task.method_calls[-2:] == [call.stop(), call.close()]


def test_first_move_needs_all_three_axes_and_nothing_is_written_before():
    daq, task = _mock_daq()
    stage = _stage(daq)
    with pytest.raises(LimitError, match="first move"):
        stage.move_to(x_um=5.0)
    task.write.assert_not_called()


@pytest.mark.parametrize("move", [{"x_um": 80.1}, {"z_um": -10.5}, {"y_um": math.nan}])
def test_out_of_travel_writes_nothing(move):
    daq, task = _mock_daq()
    stage = _stage(daq)
    stage.move_to(1.0, 1.0, 0.0)
    with pytest.raises(LimitError):
        stage.move_to(**move)
    assert task.write.call_count == 1


def test_travel_beyond_the_voltage_range_is_refused_at_setup():
    daq, _ = _mock_daq()
    with pytest.raises(ValueError, match=r"x_um travel \[0, 80\] µm needs 0.0000 to 16.0000 V"):
        NIDAQmxStage(
            TRAVEL,
            device="Dev1",
            um_per_V={"x": 5.0, "y": 10.0, "z": 2.0},
            offset_um=OFFSET,
            nidaqmx=daq,
        )
    daq.Task.assert_not_called()


def test_a_failing_channel_closes_the_task():
    daq, task = _mock_daq()
    task.ao_channels.add_ao_voltage_chan.side_effect = [None, RuntimeError("no ao1")]
    with pytest.raises(RuntimeError, match="no ao1"):
        _stage(daq)
    task.close.assert_called_once()


def test_importing_the_driver_does_not_import_nidaqmx():
    code = (
        "import sys, hbtscope.instruments.drivers.nidaq_stage\n"
        "assert 'nidaqmx' not in sys.modules, 'imported at import time'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ----------------------------------------------------------------------------- setup file
NI_STAGE = """  stage:
    driver: PiezoStageNIDAQmx
    backend: {backend}
    address: Dev1
    limits:
      x_um: {{min: 0.0, max: 80.0}}
      y_um: {{min: 0.0, max: 80.0}}
      z_um: {{min: -10.0, max: 10.0}}
      max_voltage_V: 10
    settings:
      um_per_V: 10
      z_um_per_V: 2
      z_offset_um: -10
"""


def _with_role(text: str, role: str, block: str) -> str:
    """sim.yaml's text with the block of ``role`` (its line and the lines indented below it)
    replaced by ``block``."""
    pattern = re.compile(rf"^  {role}:[^\n]*\n(?:(?:    [^\n]*)?\n)*", re.M)
    assert pattern.search(text), f"no '{role}:' block in sim.yaml"
    return pattern.sub(lambda m: block, text, count=1)


def _setup(tmp_path, backend="sim", block=None):
    text = default_setup_path().read_text()
    text = _with_role(text, "stage", block or NI_STAGE.format(backend=backend))
    path = tmp_path / "setup.yaml"
    path.write_text(text)
    return hbtscope.open_setup(path, data_dir=tmp_path)


def test_real_backend_calls_the_nidaqmx_module(tmp_path, monkeypatch):
    daq, task = _mock_daq()
    monkeypatch.setitem(sys.modules, "nidaqmx", daq)
    with _setup(tmp_path, "real") as s:
        s.stage.move_to(40.0, 30.0, 0.0)
        task.write.assert_called_once_with([4.0, 3.0, 5.0], auto_start=True)
    task.close.assert_called_once()


def test_sim_backend_moves_the_simulated_focus(tmp_path):
    with _setup(tmp_path) as s:
        s.stage.move_to(10.0, 10.0, 0.0)
        assert s.world.focus_um == pytest.approx([10.0, 10.0, 0.0])
        hw = s.stage._daq.hardware
        assert hw.written == [[1.0, 1.0, 5.0]]
        assert hw.tasks[0].channels[2] == ("Dev1/ao2", 0.0, 10.0)


def test_duplicate_ao_channels_are_a_setup_error(tmp_path):
    block = NI_STAGE.format(backend="sim").replace(
        "z_offset_um: -10", "z_offset_um: -10\n      z_ao: 0"
    )
    with pytest.raises(SetupFileError, match="must differ"):
        _setup(tmp_path, block=block)


positions = st.one_of(
    st.floats(min_value=-150, max_value=150),
    st.sampled_from([math.nan, math.inf, 80.0, 80.000001, -10.0, -10.000001]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=st.lists(st.tuples(positions, positions, positions), min_size=1, max_size=10))
def test_no_sequence_of_requests_gets_a_voltage_past_the_limits(tmp_path_factory, moves):
    with _setup(tmp_path_factory.mktemp("ni")) as s:
        for x, y, z in moves:
            try:
                s.stage.move_to(x, y, z)
            except LimitError:
                pass
        hw = s.stage._daq.hardware
        assert all(0.0 <= v <= 10.0 for sample in hw.written for v in sample), hw.written
        x, y, z = s.world.focus_um
        assert 0.0 <= x <= 80.0 and 0.0 <= y <= 80.0 and -10.0 <= z <= 10.0
