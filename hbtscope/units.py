"""Unit conversions and physical constants used in more than one place (stdlib only).

A leaf module: it imports nothing from hbtscope, so every layer (analysis, clock, storage,
procedures, the simulator) may use it without creating a dependency.

* ``PS_PER_S``: picoseconds per second, an ``int`` (10**12): time tags are integer
  picoseconds, and ``int(seconds * PS_PER_S)`` stays exact for whole seconds. Dividing by it
  gives a float as usual.
* ``FWHM_PER_SIGMA``: full width at half maximum of a Gaussian in units of its standard
  deviation, ``2 sqrt(2 ln 2) = 2.35482...``.
* ``H_PLANCK_J_S``, ``C_LIGHT_M_PER_S``: exact SI values (CODATA 2018);
  ``HC_EV_NM``: ``h c`` in eV nm, to convert a photon wavelength to its energy
  (``E_eV = HC_EV_NM / lambda_nm``).
"""

from __future__ import annotations

import math

__all__ = [
    "C_LIGHT_M_PER_S",
    "ELEMENTARY_CHARGE_C",
    "FWHM_PER_SIGMA",
    "HC_EV_NM",
    "H_PLANCK_J_S",
    "PS_PER_S",
]

#: picoseconds per second (int: time tags are integer picoseconds)
PS_PER_S: int = 1_000_000_000_000

#: FWHM / sigma of a Gaussian, 2 sqrt(2 ln 2)
FWHM_PER_SIGMA: float = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: Planck constant, J s (exact SI value)
H_PLANCK_J_S: float = 6.62607015e-34

#: speed of light in vacuum, m/s (exact SI value)
C_LIGHT_M_PER_S: float = 299_792_458.0

#: elementary charge, C (exact SI value)
ELEMENTARY_CHARGE_C: float = 1.602176634e-19

#: h c in eV nm, to 10 significant digits (h c / e x 1e9 = 1239.8419843...)
HC_EV_NM: float = 1239.841984
