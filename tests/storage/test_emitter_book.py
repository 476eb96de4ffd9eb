"""The emitter book: results and positions per emitter, kept across runs and processes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hbtscope.storage.emitter_book import EmitterBook, EmitterBookError, check_name


def test_remember_and_look_up_across_instances(tmp_path):
    book = EmitterBook(tmp_path)
    book.remember(
        "E07",
        "saturation",
        {
            "P_sat_W": np.float64(2e-8),
            "converged": np.bool_(True),
            "powers_W": np.ones(3),
            "big": np.zeros(1000),
            "label": "ok",
        },
        {"P_sat_W": 1e-9},
        run=tmp_path / "r.h5",
    )
    again = EmitterBook(tmp_path).require("E07")  # a new reader, e.g. the next process
    assert again.value("saturation.P_sat_W") == (2e-8, 1e-9)
    values = again.results["saturation"]["values"]
    assert values["converged"] is True and values["powers_W"] == [1.0, 1.0, 1.0]
    assert "big" not in values  # long arrays stay in the run file
    assert again.results["saturation"]["run"].endswith("r.h5")
    assert EmitterBook(tmp_path).names() == ["E07"]


def test_missing_results_and_names_are_clear_errors(tmp_path):
    book = EmitterBook(tmp_path)
    assert book.get("E1") is None
    with pytest.raises(EmitterBookError, match="no record"):
        book.require("E1")
    book.remember("E1", "g2", {"g2_0": 0.1})
    with pytest.raises(EmitterBookError, match="no saturation result"):
        book.require("E1").value("saturation.P_sat_W")
    with pytest.raises(EmitterBookError, match="has no 'P_sat_W'"):
        book.require("E1").value("g2.P_sat_W")
    assert math.isnan(book.require("E1").value("g2.g2_0")[1])  # no error recorded
    for bad in ("", "../x", ".hidden", "a/b", "x" * 65, "E 1"):
        with pytest.raises(EmitterBookError, match="not allowed"):
            check_name(bad)


def test_positions_are_a_history_and_corrupt_records_are_refused(tmp_path):
    book = EmitterBook(tmp_path)
    assert book.add_position("P1", (1, 2, 3), "scan").position_um() == (1.0, 2.0, 3.0)
    rec = book.add_position("P1", (1.1, 2.0, 3.0), "refocus")
    assert [p["source"] for p in rec.positions] == ["scan", "refocus"]
    with pytest.raises(EmitterBookError, match="not finite"):
        book.add_position("P1", (math.nan, 0, 0), "refocus")
    (tmp_path / "emitters" / "bad.json").write_text("{not json")
    with pytest.raises(EmitterBookError, match="bad.json: not a readable"):
        book.get("bad")
    (tmp_path / "emitters" / "list.json").write_text(json.dumps({"results": []}))
    with pytest.raises(EmitterBookError, match="not a readable"):
        book.get("list")
    assert not list((tmp_path / "emitters").glob(".*"))  # no temporary files left


def test_points_of_interest_create_rename_remove(tmp_path):
    book = EmitterBook(tmp_path)
    assert book.next_name() == "P01"
    book.create("P01", (1.0, 2.0, 0.5), "crosshair")
    assert book.next_name() == "P02"
    with pytest.raises(EmitterBookError, match="already"):
        book.create("P01", (0.0, 0.0, 0.0), "crosshair")  # nothing overwritten
    assert book.require("P01").position_um() == (1.0, 2.0, 0.5)
    book.remember("P01", "g2", {"g2_0": 0.2}, {"g2_0": 0.05})
    book.add_position("P01", (1.1, 2.0, 0.5), "refocus")
    renamed = book.rename("P01", "E07")
    assert book.names() == ["E07"]
    assert renamed.value("g2.g2_0") == (0.2, 0.05)
    assert [p["source"] for p in book.require("E07").positions] == ["crosshair", "refocus"]
    book.create("P01", (3.0, 3.0, 0.0), "scan")
    with pytest.raises(EmitterBookError, match="already"):
        book.rename("P01", "E07")
    with pytest.raises(EmitterBookError, match="not allowed"):
        book.rename("P01", "bad name")
    book.remove("P01")
    assert book.names() == ["E07"]
    with pytest.raises(EmitterBookError, match="no record"):
        book.remove("P01")
