"""hbtscope.units: one definition of each shared constant, and the constants mean what they say."""

from __future__ import annotations

import math

import numpy as np

from hbtscope import clock, units


def test_fwhm_per_sigma_is_the_width_at_half_maximum_of_a_gaussian():
    half = units.FWHM_PER_SIGMA / 2.0
    assert math.isclose(math.exp(-0.5 * half**2), 0.5, rel_tol=1e-14)
    # a finely sampled Gaussian of sigma 3 has its half-maximum crossings FWHM apart
    x = np.linspace(-20, 20, 400_001)
    above = x[np.exp(-0.5 * (x / 3.0) ** 2) >= 0.5]
    assert math.isclose(above[-1] - above[0], 3.0 * units.FWHM_PER_SIGMA, abs_tol=2e-4)


def test_ps_per_s_is_one_exact_integer_shared_by_the_clock():
    assert isinstance(units.PS_PER_S, int) and units.PS_PER_S == 10**12
    assert clock.PS_PER_S is units.PS_PER_S
    # whole seconds stay exact integers of picoseconds (time tags are int64 ps)
    assert 86_400 * units.PS_PER_S == 86_400_000_000_000_000


def test_hc_converts_a_wavelength_to_the_photon_energy():
    exact_ev_nm = units.H_PLANCK_J_S * units.C_LIGHT_M_PER_S / units.ELEMENTARY_CHARGE_C * 1e9
    assert math.isclose(units.HC_EV_NM, exact_ev_nm, rel_tol=1e-9)
    # a 500 nm photon carries 2.48 eV
    assert math.isclose(units.HC_EV_NM / 500.0, 2.4797, abs_tol=1e-4)


def test_units_is_a_leaf_module():
    import ast
    from pathlib import Path

    tree = ast.parse(Path(units.__file__).read_text())
    imported = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (n.names if isinstance(n, ast.Import) else [n])
    }
    assert imported <= {"__future__", "math"}, imported
