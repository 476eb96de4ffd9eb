"""Photon-HDF5 export: phconvert loads and validates the files; time tags round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hbtscope
from hbtscope.procedures.g2 import G2Measurement
from hbtscope.procedures.runner import run_procedure
from hbtscope.storage import RunWriter, open_run, read_values
from hbtscope.storage.photon_hdf5 import default_export_path, export_photon_hdf5
from hbtscope.storage.reading import RunFileError

phc = pytest.importorskip("phconvert")

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "picoquant"  # real files, BSD-3-Clause (LICENSE there)


def load(path: Path) -> dict:
    """Open with phconvert (which validates the file against the spec) and read it all."""
    h5 = phc.hdf5.load_photon_hdf5(str(path), warnings=False)
    try:
        phc.hdf5.assert_valid_photon_hdf5(h5, warnings=False, require_rootformat=True)
        return phc.hdf5.dict_from_group(h5.root)
    finally:
        h5.close()


@pytest.fixture(scope="module")
def g2_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("g2runs")
    with hbtscope.open_setup(data_dir=out) as setup:
        outcome = run_procedure(
            G2Measurement(x_um=10.0, y_um=10.0, duration_s=1.0), setup, figure=False
        )
    assert outcome.status == "finished"
    return outcome.path


def test_simulated_g2_run_exports_and_validates(g2_run, tmp_path):
    out = export_photon_hdf5(g2_run, tmp_path / "g2.photon.hdf5")
    assert out == tmp_path / "g2.photon.hdf5"
    d = load(out)
    with open_run(g2_run) as f:
        ts = f["tttr/timestamps"][:]
        ch = f["tttr/channels"][:]
        acquired = read_values(f["analysis/g2"])["acquired_s"]
        uuid = f.attrs["uuid"]
    pd = d["photon_data"]
    np.testing.assert_array_equal(pd["timestamps"], ts)  # exact round trip, int64 ps
    np.testing.assert_array_equal(pd["detectors"], ch)
    assert pd["timestamps"].dtype == np.int64
    assert pd["timestamps_specs"]["timestamps_unit"] == pytest.approx(1e-12)
    ms = pd["measurement_specs"]
    assert ms["measurement_type"] == b"generic" or ms["measurement_type"] == "generic"
    assert ms["laser_repetition_rate"] == pytest.approx(5e6)
    np.testing.assert_array_equal(ms["detectors_specs"]["split_ch1"], [2])
    np.testing.assert_array_equal(ms["detectors_specs"]["split_ch2"], [3])
    setup = d["setup"]
    assert setup["num_pixels"] == 2 and setup["num_split_ch"] == 2
    assert not setup["lifetime"]
    assert list(setup["excitation_cw"]) == [False]
    np.testing.assert_array_equal(setup["detectors"]["id"], [2, 3])
    assert [bytes(x).decode() for x in setup["detectors"]["label"]] == ["spad_a", "spad_b"]
    np.testing.assert_array_equal(setup["detectors"]["counts"], [np.sum(ch == 2), np.sum(ch == 3)])
    assert d["acquisition_duration"] == pytest.approx(acquired)
    desc = d["description"]
    desc = desc.decode() if isinstance(desc, bytes) else desc
    assert uuid in desc and "'g2'" in desc
    prov = d["provenance"]
    assert Path(_s(prov["filename"])).name == Path(g2_run).name
    assert _s(prov["software"]) == "hbtscope"
    assert _s(d["identity"]["creator"]) == "hbtscope"


def _s(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def test_default_path_overwrite_and_errors(g2_run, tmp_path):
    out = export_photon_hdf5(g2_run)
    assert out == default_export_path(g2_run) and out.name.endswith(".photon.hdf5")
    with pytest.raises(FileExistsError):
        export_photon_hdf5(g2_run)
    assert export_photon_hdf5(g2_run, overwrite=True) == out
    out.unlink()
    with pytest.raises(RunFileError, match="no such file"):
        export_photon_hdf5(tmp_path / "missing.h5", tmp_path / "x.hdf5")
    not_h5 = tmp_path / "x.h5"
    not_h5.write_text("hello")
    with pytest.raises(RunFileError, match="not an HDF5 file"):
        export_photon_hdf5(not_h5, tmp_path / "y.hdf5")
    empty = tmp_path / "empty.h5"
    with RunWriter(empty, "g2", {"rep_rate_Hz": 5e6}):
        pass
    with pytest.raises(RunFileError, match="no time tags"):
        export_photon_hdf5(empty, tmp_path / "z.hdf5")
    # a Photon-HDF5 file is not a run file
    other = export_photon_hdf5(g2_run, tmp_path / "ok.hdf5")
    with pytest.raises(RunFileError, match="not an hbtscope run file"):
        export_photon_hdf5(other, tmp_path / "again.hdf5")


def test_sync_channel_is_a_non_photon_detector(tmp_path):
    run = tmp_path / "sync.h5"
    ts = np.arange(3000, dtype=np.int64) * 1000 + 7
    ch = np.where(np.arange(3000) % 3 == 0, 1, np.where(np.arange(3000) % 3 == 1, 2, 3))
    with RunWriter(run, "custom", {"note": "synthetic"}) as w:
        w.set_tttr_info(1.0, {"sync": 1, "spad_a": 2, "spad_b": 3})
        w.append_tags(ts, ch)
    d = load(export_photon_hdf5(run))
    specs = d["photon_data"]["measurement_specs"]["detectors_specs"]
    np.testing.assert_array_equal(specs["non_photon_id1"], [1])
    np.testing.assert_array_equal(specs["split_ch1"], [2])
    np.testing.assert_array_equal(specs["split_ch2"], [3])
    assert d["setup"]["num_pixels"] == 2
    assert list(d["setup"]["excitation_cw"]) == [True]  # unknown excitation: recorded as CW
    np.testing.assert_array_equal(d["photon_data"]["timestamps"], ts)


def test_t3_import_exports_nanotimes(tmp_path):
    from hbtscope.storage.ptu_import import import_ptu

    run = import_ptu(DATA / "hydraharp/v10_t3.ptu", tmp_path)
    d = load(export_photon_hdf5(run))
    with open_run(run) as f:
        dtime = f["data/ptu/dtime"][:]
        res_ps = f["parameters"].attrs["tcspc_resolution_ps"]
    pd = d["photon_data"]
    np.testing.assert_array_equal(pd["nanotimes"], dtime)
    assert pd["nanotimes_specs"]["tcspc_unit"] == pytest.approx(res_ps * 1e-12)
    assert pd["nanotimes_specs"]["tcspc_num_bins"] == 3125
    assert d["setup"]["lifetime"]
    assert pd["measurement_specs"]["laser_repetition_rate"] == pytest.approx(2.5e6)
    assert d["acquisition_duration"] == pytest.approx(30.0, rel=1e-3)
