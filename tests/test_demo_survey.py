"""``hbtscope demo``: the emitter survey on the simulated microscope, checked against the
truth the simulator recorded in each run file (never the preset's own inputs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hbtscope.cli import main
from hbtscope.storage.reading import read_truth


def test_the_demo_survey_finds_characterises_and_sorts_the_emitters(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] == "finished" and out["n_failures"] == 0
    assert out["n_emitters"] >= 10
    qdir = Path(out["dir"])
    assert Path(out["report"]).is_file() and (qdir / "report.csv").is_file()
    report = json.loads((qdir / "report.json").read_text())
    n_single = 0
    for row in report["emitters"]:
        # every spot was characterised: refocus, saturation, spectra, g2 (trace: if it passed)
        assert {"refocus", "saturation", "spectrum_series", "g2"} <= set(row["runs"]), row
        truth = read_truth(qdir / row["runs"]["g2"])
        single = int(truth["n_emitters"]) == 1 and truth["species"] == ["cspbbr3_zn"]
        g2_true = float(truth["g2_0_with_background"])
        g2, g2_err = row["g2.g2_0"], row["g2.g2_0_err"]
        # g2(0) at P_sat against the truth of the spot: 4 sigma, plus 0.02 for the small
        # downward bias of the estimator at and above P_sat (docs/measurements/g2_power.md)
        assert abs(g2 - g2_true) < 4 * g2_err + 0.02, (row["emitter"], g2, g2_err, g2_true)
        if not single or g2_true > 0.6:
            # impurities and clusters (bright: picked first) fail the lab's cut
            assert row["single_photon"] is False, row["emitter"]
        if row["single_photon"]:  # nothing accepted that is not one nanocrystal
            assert single and g2_true < 0.5, row["emitter"]
        if single:
            n_single += 1
            cew, cew_err = (
                row["spectrum_series.cew_first_nm"],
                row["spectrum_series.cew_first_nm_err"],
            )
            cew_true = row["spectrum_series.truth_cew_first_nm"]
            assert abs(cew - cew_true) < 4 * cew_err + 0.3, (row["emitter"], cew, cew_true)
            assert math.isfinite(row["saturation.P_sat_W"]) and row["saturation.P_sat_W"] > 0
    # the survey rejects the impurities and clusters, and keeps most single nanocrystals
    assert out["rejected_of_not_single_photon"] == out["truth_not_single_photon"] > 0
    assert out["accepted_of_single_photon"] >= 0.5 * n_single > 0
    video = [r for r in report["other_runs"] if r["measurement"] == "bleaching_video"]
    assert len(video) == 1
