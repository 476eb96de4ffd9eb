"""Goodness of fit on real TCSPC decays (the HydraHarp T3 files in tests/data/picoquant,
BSD-3-Clause, sample unknown).

The review found mono-exponential fits of these decays with chi2_red up to 1.16 and no
goodness of fit reported. With 3000+ degrees of freedom a chi2_red of 1.1 is many sigma
(sd of chi2_red = sqrt(2 / 3121) = 0.025), so the fit's p-value must reject the
mono-exponential model, and a bi-exponential fit must be acceptable (p > 0.01) on every
channel. The IRF is taken as a 100 ps Gaussian (HydraHarp + SPAD); its exact width does not
matter on ns decays.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from hbtscope.analysis import fit_decay
from hbtscope.storage.ptu_import import import_ptu

DATA = Path(__file__).resolve().parents[1] / "data" / "picoquant"


@pytest.mark.parametrize("name", ["hydraharp/v20_t3.ptu", "hydraharp/v10_t3.ptu"])
def test_goodness_of_fit_rejects_one_exponential_and_accepts_two(tmp_path, name):
    run = import_ptu(DATA / name, tmp_path)
    with h5py.File(run, "r") as f:
        counts = f["data/decay/counts"][()]
        time_ps = f["data/decay/time_ps"][()]
    bin_ps = float(time_ps[1] - time_ps[0])
    for hist in counts:
        assert hist.sum() > 30_000
        one = fit_decay(hist, bin_ps, n_exp=1, irf={"gaussian": 100.0})
        two = fit_decay(hist, bin_ps, n_exp=2, irf={"gaussian": 100.0})
        assert one.dof > 3000 and np.isfinite(one.chi2_red)
        assert one.gof_p_value < 1e-3, one.gof_p_value
        assert two.gof_p_value > 0.01, two.gof_p_value
        assert two.identifiable
