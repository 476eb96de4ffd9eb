"""The simulated world from plain Python objects, and its one definition shared with the schema."""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import hbtscope
from hbtscope.clock import PS_PER_S, VirtualClock
from hbtscope.config_schema import EmitterSpec, SetupFileError, SimulationSpec, parse_setup_text
from hbtscope.drivers_sim.model import (
    EMITTER_PROPERTIES,
    ConfigError,
    DetectorConfig,
    Emitter,
    EmitterSpot,
    SampleConfig,
    SimulationConfig,
)
from hbtscope.drivers_sim.world import World

DRIVERS_SIM = pathlib.Path(hbtscope.__file__).parent / "drivers_sim"


def test_notebook_world_without_yaml_or_pydantic_counts_its_emitter():
    """A World from dataclasses alone, defaults for everything but the emitter's position: at
    the emitter the SPADs count its photons (far above the 2 x 100 cps of dark counts), and the
    truth says the same rate."""
    config = SimulationConfig(sample=SampleConfig(emitters=[Emitter(x_um=5.0, y_um=5.0)]))
    world = World(config, VirtualClock("fast"))
    world.move_focus(5.0, 5.0, 0.0)
    world.set_laser(on=True, power_W=24e-9)
    ts, ch = world.clicks_until(world.clock.now_ps() + 2 * PS_PER_S)
    spad_rate = np.isin(ch, [2, 3]).sum() / 2.0
    truth = world.truth_at_focus()
    expected = truth["emitter_rate_cps"] + truth["background_rate_cps"] + 200.0
    assert spad_rate > 10 * 200.0
    assert abs(spad_rate - expected) < 5 * np.sqrt(expected / 2.0) + 0.05 * expected


def test_notebook_world_places_spots_and_draws_presets():
    """An Emitter is a spot of one; an EmitterSpot of count 3 from a preset draws 3 emitters of
    that species at one spot, with the given property fixed and the others drawn."""
    config = SimulationConfig(
        seed=5,
        sample=SampleConfig(
            emitters=[
                Emitter(x_um=1.0, y_um=2.0, qy_xx=0.02),
                EmitterSpot(
                    x_um=9.0, y_um=5.0, preset="cspbbr3_zn", count=3, properties={"k_bo": 0.0}
                ),
            ]
        ),
    )
    world = World(config, VirtualClock("fast"))
    first, *cluster = world.emitters
    assert (first.index, first.spot, first.cluster_size, first.qy_xx) == (0, 0, 1, 0.02)
    assert [e.index for e in cluster] == [1, 2, 3]
    assert {(e.spot, e.cluster_size, e.species, e.k_bo) for e in cluster} == {
        (1, 3, "cspbbr3_zn", 0.0)
    }
    assert len({e.cew_nm for e in cluster}) == 3  # drawn, not copied


def test_plain_objects_refuse_what_the_setup_file_refuses():
    """The dataclasses' own rules hold without the schema, naming the culprit field."""
    with pytest.raises(ConfigError, match="unknown preset 'nope'") as info:
        EmitterSpot(x_um=0.0, y_um=0.0, preset="nope")
    assert info.value.field == "preset"
    with pytest.raises(ConfigError, match="powerlaw_m"):
        Emitter(x_um=0.0, y_um=0.0, powerlaw_m=0.5)
    with pytest.raises(ValueError, match="tagger channels must all differ"):
        SimulationConfig(detectors=[DetectorConfig(name="a", tagger_channel=1)])
    with pytest.raises(ConfigError, match="unknown emitter properties"):
        EmitterSpot(x_um=0.0, y_um=0.0, properties={"colour": 1.0})
    with pytest.raises(ConfigError, match=r"allowed > 0 and <= 1 \(got 1.5\)") as info:
        Emitter(x_um=0.0, y_um=0.0, qy_x=1.5)
    assert info.value.field == "qy_x"
    with pytest.raises(ConfigError, match="efficiency"):
        DetectorConfig(name="a", tagger_channel=2, efficiency=float("nan"))
    with pytest.raises(TypeError, match="to_config"):
        World(SimulationSpec(), VirtualClock("fast"))  # the schema's model, not the config


def test_ints_typed_in_a_notebook_become_floats():
    """Emitter(x_um=5, ...) gives the same world as 5.0: float fields hold floats."""
    e = Emitter(x_um=5, y_um=5, tau_x_ns=10)
    assert type(e.x_um) is float and type(e.tau_x_ns) is float
    assert e == Emitter(x_um=5.0, y_um=5.0, tau_x_ns=10.0)
    assert type(DetectorConfig(name="a", tagger_channel=2).delay_ps) is int


def test_setup_file_emitter_fields_are_the_emitter_dataclass_fields():
    """One definition: the flat setup-file emitter has exactly Emitter's properties with
    Emitter's defaults, plus the spot's fields; a setup file with nothing but positions gives
    the same World emitters as the dataclasses with nothing but positions."""
    spot_fields = {f.name for f in dataclasses.fields(EmitterSpot)} - {"properties"}
    assert set(EmitterSpec.model_fields) == spot_fields | set(EMITTER_PROPERTIES)
    defaults = Emitter(x_um=0.0, y_um=0.0)
    for name in EMITTER_PROPERTIES:
        assert EmitterSpec.model_fields[name].default == getattr(defaults, name), name
    yaml_world = SimulationSpec.model_validate(
        {"sample": {"emitters": [{"x_um": 3.0, "y_um": 4.0}]}}
    ).to_config()
    plain = SimulationConfig(sample=SampleConfig(emitters=[Emitter(x_um=3.0, y_um=4.0)]))
    clock = VirtualClock("fast")
    assert World(yaml_world, clock).emitters == World(plain, clock).emitters
    assert yaml_world.detectors == plain.detectors and yaml_world.optics == plain.optics


def test_setup_file_range_error_names_the_dataclass_bound():
    text = (pathlib.Path(hbtscope.__file__).parent / "config" / "sim.yaml").read_text()
    bad = text.replace(
        "qy_x: 0.8, qy_xx: 0.04, tau_x_ns: 10.2", "qy_x: 0.8, qy_xx: 1.5, tau_x_ns: 10.2"
    )
    assert bad != text
    with pytest.raises(SetupFileError) as info:
        parse_setup_text(bad, "sim.yaml")
    assert info.value.where == "simulation.sample.emitters.0.qy_xx"
    assert "allowed >= 0 and <= 1 (got 1.5)" in str(info.value)


def test_drivers_sim_never_imports_the_setup_file_schema():
    """Not even lazily: no import of hbtscope.config_schema anywhere in drivers_sim's source,
    and importing the World in a fresh interpreter does not load the schema."""
    for path in DRIVERS_SIM.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any("config_schema" in n for n in names), path
    code = (
        "import sys; from hbtscope.drivers_sim.world import World; "
        "print('hbtscope.config_schema' in sys.modules, 'pydantic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["False", "False"]


def test_an_emitter_microns_from_the_focus_never_bleaches_and_does_not_crash():
    """4 µm from a 0.25 µm focus the dose rate is ~1e-300 /s: the time to bleach overflows
    any clock, so the emitter simply does not bleach (it used to raise OverflowError)."""
    config = SimulationConfig(
        seed=9,
        sample=SampleConfig(emitters=[EmitterSpot(preset="cdse_in_mapbbr3", x_um=9, y_um=5)]),
    )
    world = World(config, VirtualClock("fast"))
    assert np.isfinite(world.emitters[0].bleach_dose)
    world.move_focus(5.0, 5.0, 0.0)
    world.set_laser(on=True, power_W=24e-9)
    world.clicks_until(int(0.2e12))
    assert world.dynamics[0].bleach_time_ps is None
