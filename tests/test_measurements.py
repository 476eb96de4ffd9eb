"""A measurement is one module, found without editing anything else; the run's events, its
file, its analysis and its figure are the same data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

import hbtscope
from hbtscope import events as ev
from hbtscope.analysis import g2_pulsed
from hbtscope.procedures.g2 import G2Measurement
from hbtscope.procedures.registry import all_measurements, runnable
from hbtscope.procedures.runner import run_procedure
from hbtscope.reanalyse import analyse_run, redraw
from hbtscope.storage import open_run, read_values

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""Count rate of the two SPADs (a lab's own measurement, installed from outside hbtscope)."""

from pathlib import Path

from pymeasure.experiment import FloatParameter

from hbtscope.procedures.base import AnalysisOutput, HbtProcedure, Measurement
from hbtscope.storage.runfile import read_values


class CountRate(HbtProcedure):
    """Count rate of both SPADs at the focus."""

    NAME = "count_rate"
    duration_s = FloatParameter("Counting time", units="s", minimum=0.01, default=0.5)
    laser_power_W = FloatParameter("Laser power", units="W", minimum=0, default=24e-9)

    def startup(self):
        self.setup.stage.move_to(10.0, 10.0, 0.0)
        self.setup.laser.power_W = self.laser_power_W
        self.setup.laser.enable()

    def execute(self):
        tagger = self.setup.tagger
        channels = list(tagger.spad_channels)
        rate = tagger.api.Countrate(tagger.device, channels)
        rate.startFor(int(self.duration_s * 1e12))
        self.setup.clock.sleep(self.duration_s)
        rate.waitUntilFinished()
        counts = rate.getCountsTotal()
        self.publish_values("count", {"a": int(counts[0]), "b": int(counts[1])})
        self.progress(100)

    def shutdown(self):
        self.setup.laser.disable()


def analyse(run):
    params = dict(run["parameters"].attrs)
    counts = read_values(run["data/count"])
    total = counts["a"] + counts["b"]
    rate = total / float(params["duration_s"])
    err = total**0.5 / float(params["duration_s"])
    return AnalysisOutput("count_rate", {"rate_cps": rate}, {"rate_cps": err},
                          {"rate_cps": rate})


def figure(run, path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    fig.subplots().bar([0], [read_values(run["analysis/count_rate"])["rate_cps"]])
    fig.savefig(path)
    return Path(path)


MEASUREMENT = Measurement("count_rate", CountRate, analyse, figure)
'''


def _install_plugin(where: Path) -> dict[str, str]:
    """A package ``labplug`` with one measurement module, registered through an entry point
    of a distribution on ``where`` (as ``pip install`` would leave it); env for a subprocess."""
    (where / "labplug").mkdir(parents=True)
    (where / "labplug" / "__init__.py").write_text("")
    (where / "labplug" / "count_rate.py").write_text(textwrap.dedent(PLUGIN))
    dist = where / "labplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: labplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[hbtscope.measurements]\ncount_rate = labplug.count_rate\n"
    )
    path = os.pathsep.join([str(where), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "MPLBACKEND": "Agg"}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hbtscope.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_measurement_installed_from_outside_is_found_everywhere(tmp_path):
    env = _install_plugin(tmp_path / "site")
    listed = _cli(env, "procedures")
    assert listed.returncode == 0, listed.stderr
    assert "count_rate: Count rate of both SPADs at the focus." in listed.stdout
    assert "g2:" in listed.stdout  # the built-in ones are still there

    ran = _cli(
        env, "run", "count_rate", "--set", "duration_s=0.2", "--out", str(tmp_path), "--json"
    )
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["status"] == "finished" and Path(out["figure"]).read_bytes()[:4] == b"\x89PNG"
    # the demo emitter at 24 nW gives tens of kcps on the two SPADs: a real measurement ran
    assert 1e4 < out["rate_cps"] < 1e6

    Path(out["figure"]).unlink()
    again = _cli(env, "analyse", out["file"], "--figure", "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["procedure"] == "count_rate"
    assert result["rate_cps"] == out["rate_cps"]
    assert result["rate_cps_err"] == pytest.approx(np.sqrt(out["rate_cps"] * 0.2) / 0.2)
    assert Path(result["figure"]).read_bytes()[:4] == b"\x89PNG"


def test_the_built_in_catalogue():
    found = all_measurements()
    assert found["g2"].procedure is G2Measurement
    assert found["import_ptu"].procedure is None  # imported, not measured: analysis only
    assert set(runnable()) == {n for n, m in found.items() if m.procedure is not None}


@pytest.fixture(scope="module")
def g2_run(tmp_path_factory):
    """A short g2 run on the demo emitter with a non-default normalisation band, and every
    event its subscribers saw."""
    seen: list = []
    out = tmp_path_factory.mktemp("g2run")
    with hbtscope.open_setup(data_dir=out) as setup:
        proc = G2Measurement(
            x_um=10.0, y_um=10.0, duration_s=3.0, laser_power_W=30e-9, norm_halfwidth_ps=1_000_000
        )
        outcome = run_procedure(proc, setup, subscribers=[seen.append])
    assert outcome.status == "finished"
    return outcome, seen


def test_subscribers_see_what_lands_in_the_file(g2_run):
    outcome, seen = g2_run
    kinds = [type(e) for e in seen]
    assert kinds[0] is ev.RunStarted and kinds[-1] is ev.RunEnded
    assert kinds.index(ev.AnalysisResult) > max(
        i for i, k in enumerate(kinds) if k is ev.TagsRecorded
    )
    assert any(k is ev.Progress for k in kinds)
    tags = [e for e in seen if isinstance(e, ev.TagsRecorded)]
    arrays = {e.name: e.data for e in seen if isinstance(e, ev.ArrayRecorded)}
    (analysis,) = [e for e in seen if isinstance(e, ev.AnalysisResult)]
    with open_run(outcome.path) as f:
        np.testing.assert_array_equal(
            np.concatenate([t.timestamps_ps for t in tags]), f["tttr/timestamps"][()]
        )
        np.testing.assert_array_equal(
            np.concatenate([t.channels for t in tags]), f["tttr/channels"][()]
        )
        np.testing.assert_array_equal(arrays["g2/coincidences"], f["data/g2/coincidences"][()])
        stored = read_values(f["analysis/g2"])
    for key in ("g2_0", "g2_0_err", "g2_0_upper", "centre_counts", "reference_counts"):
        assert stored[key] == analysis.values[key]
    assert stored["g2_0_sqrt_err"] == analysis.errors["g2_0_sqrt"]


def test_snapshot_is_taken_after_the_set_up_and_at_the_end(g2_run):
    outcome, seen = g2_run
    start = seen[0].snapshot["laser"]
    assert start["emission_on"] and start["power_W"] == pytest.approx(30e-9)
    with h5py.File(outcome.path, "r") as f:
        at_start = dict(f["setup/snapshot/laser"].attrs)
        at_end = dict(f["setup/snapshot_end/laser"].attrs)
        stage = dict(f["setup/snapshot/stage"].attrs)
    assert at_start["emission_on"] and at_start["power_W"] == pytest.approx(30e-9)
    assert at_end["emission_on"]  # measured until the end; the safe state comes after
    assert stage["x_um"] == pytest.approx(10.0) and stage["y_um"] == pytest.approx(10.0)


def test_analysis_and_figure_again_from_the_file_are_what_the_run_wrote(g2_run, tmp_path):
    outcome, _ = g2_run
    result = analyse_run(outcome.path)
    with open_run(outcome.path) as f:
        stored = read_values(f["analysis/g2"])
        lag, counts = f["data/g2/lag_ps"][()], f["data/g2/coincidences"][()]
    assert result["histogram_matches_stored"] is True
    for key in ("g2_0", "g2_0_err", "g2_0_upper", "g2_0_sqrt", "g2_0_sqrt_err"):
        assert result[key] == stored[key]
    assert list(result["g2_0_ci"]) == list(stored["g2_0_ci"])
    # the run's own (non-default) normalisation band, stored and used
    assert stored["norm_halfwidth_ps"] == 1_000_000
    direct = g2_pulsed(
        lag,
        counts,
        stored["period_ps"],
        norm_delay_ps=10_000_000,
        norm_halfwidth_ps=1_000_000,
        zero_delay_ps=stored["zero_delay_ps"],
        exclude_ps=[tuple(w) for w in np.asarray(stored["crosstalk_windows_ps"])],
    )
    assert direct.g2_0 == stored["g2_0"]
    png = redraw(outcome.path, tmp_path / "again.png")
    assert png.read_bytes() == outcome.figure.read_bytes()


def test_a_run_in_the_older_layout_is_drawn_as_it_was(g2_run, tmp_path):
    """Runs written before the g2 analysis moved to the run file's analysis/ group (no band,
    no peak arrays there) are analysed again from the file for their figure."""
    import shutil

    outcome, _ = g2_run
    old = tmp_path / outcome.path.name  # same name: same title on the figure
    shutil.copy(outcome.path, old)
    with h5py.File(old, "r+") as f:
        g = f["analysis/g2"]
        for key in ("peak_delays_ps", "peak_areas_norm", "crosstalk_windows_ps"):
            del g[key]
        for key in ("norm_delay_ps", "norm_halfwidth_ps"):
            del g.attrs[key]
    png = redraw(old)
    assert png.read_bytes() == outcome.figure.read_bytes()


def test_a_failing_display_does_not_stop_the_run(tmp_path):
    """A display that raises is dropped (logged); the run and its file go on."""
    calls: list = []

    def broken_display(event):
        calls.append(event)
        raise RuntimeError("window closed")

    with hbtscope.open_setup(data_dir=tmp_path) as setup:
        proc = G2Measurement(x_um=10.0, y_um=10.0, duration_s=1.0)
        outcome = run_procedure(proc, setup, displays=[broken_display])
    assert outcome.status == "finished" and len(calls) == 1
    with open_run(outcome.path) as f:
        assert f.attrs["status"] == "finished" and f["tttr/timestamps"].size > 0


def test_a_failing_file_writer_stops_the_stream():
    stream = ev.EventStream()
    seen: list = []

    def writer(event):
        raise OSError("disk full")

    stream.subscribe(writer)
    stream.subscribe(seen.append)
    with pytest.raises(OSError, match="disk full"):
        stream.publish(ev.Progress(1.0))
    assert seen == []
