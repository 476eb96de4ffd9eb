"""Photophysics of one quantum emitter under pulsed excitation (pure functions).

Model (seeds 000, 001, 002): each laser pulse creates N ~ Poisson(<N>) excitons, with
<N> = sigma_abs * F the absorption cross-section times the photon fluence of the pulse at the
emitter. Multi-excitons beyond two relax (Auger) to the biexciton; a biexciton (N >= 2) emits
its XX photon with quantum yield ``qy_xx`` after an exponential delay tau_XX, then the
remaining exciton emits its X photon with ``qy_x`` after a further exponential tau_X. A single
exciton (N = 1) emits with ``qy_x``. Every emitted photon is detected with probability eta.

Per pulse, with P1 = <N> e^-<N>, P2 = 1 - e^-<N> - P1, a = qy_x*eta, b = qy_xx*eta:

- mean detected photons   m = a (1 - e^-<N>) + b P2
- mean detected pairs     E[m(m-1)] = 2 a b P2
- pulsed g2(0)            = E[m(m-1)] / m^2  -> qy_xx/qy_x at low power (Nair et al. 2011),
                            2 r / (1 + r)^2 with r = qy_xx/qy_x in saturation.

So saturation, I = A(1 - e^(-P/P_sat)) + B P (seed 001 eq. 1), and the rise of g2(0) with power
(seeds 001/002) come out of the physics rather than being pasted in. P_sat is the power where
<N> = 1 at the centre of the focus (seed 001's definition).
"""

from __future__ import annotations

import math

import numpy as np

H_PLANCK_J_S = 6.62607015e-34
C_LIGHT_M_S = 299_792_458.0


def photon_energy_J(wavelength_nm: float) -> float:
    """E = h c / lambda."""
    return H_PLANCK_J_S * C_LIGHT_M_S / (wavelength_nm * 1e-9)


def peak_fluence_per_cm2(power_W: float, rep_rate_Hz: float, wavelength_nm: float, w_um: float):
    """Photon fluence per pulse at the centre of a Gaussian focus of 1/e^2 radius ``w_um``.

    F0 = 2 E_pulse / (h nu pi w^2), E_pulse = P / f_rep.
    """
    if power_W <= 0 or rep_rate_Hz <= 0:
        return 0.0
    w_cm = w_um * 1e-4
    photons = power_W / rep_rate_Hz / photon_energy_J(wavelength_nm)
    return 2.0 * photons / (math.pi * w_cm * w_cm)


def saturation_power_W(sigma_abs_cm2: float, rep_rate_Hz: float, wavelength_nm: float, w_um: float):
    """Average power for which <N> = 1 at the centre of the focus (P_sat, seed 001)."""
    w_cm = w_um * 1e-4
    return (
        rep_rate_Hz * photon_energy_J(wavelength_nm) * math.pi * w_cm * w_cm / (2.0 * sigma_abs_cm2)
    )


def focus_weight(dx_um, dy_um, dz_um, w_xy_um: float, w_z_um: float):
    """Relative intensity of the Gaussian focus at an offset: exp(-2 r^2/w^2) exp(-2 z^2/w_z^2)."""
    r2 = np.asarray(dx_um) ** 2 + np.asarray(dy_um) ** 2
    return np.exp(-2.0 * r2 / w_xy_um**2) * np.exp(-2.0 * np.asarray(dz_um) ** 2 / w_z_um**2)


def exciton_occupation(mean_n: float) -> tuple[float, float, float]:
    """(P(N=0), P(N=1), P(N>=2)) for N ~ Poisson(mean_n)."""
    p0 = math.exp(-mean_n)
    p1 = mean_n * p0
    p2 = max(0.0, 1.0 - p0 - p1)
    # for small mean_n, 1 - p0 - p1 loses precision: use the series
    if mean_n < 1e-3:
        p2 = mean_n**2 / 2.0 - mean_n**3 / 3.0
    return p0, p1, p2


def pulse_outcome_probabilities(mean_n: float, qy_x: float, qy_xx: float, eta: float):
    """Probabilities per pulse of the four detectable outcomes.

    Returns (c1, c2, c3, c4):
      c1 X photon only, from a single exciton;
      c2 X photon only, after an undetected biexciton decay (cascade timing);
      c3 XX photon only;
      c4 both XX and X photons.
    """
    _, p1, p2 = exciton_occupation(mean_n)
    a = qy_x * eta
    b = qy_xx * eta
    return p1 * a, p2 * a * (1.0 - b), p2 * b * (1.0 - a), p2 * a * b


def mean_detected_per_pulse(mean_n: float, qy_x: float, qy_xx: float, eta: float) -> float:
    c1, c2, c3, c4 = pulse_outcome_probabilities(mean_n, qy_x, qy_xx, eta)
    return c1 + c2 + c3 + 2.0 * c4


def detected_pairs_per_pulse(mean_n: float, qy_x: float, qy_xx: float, eta: float) -> float:
    """E[m(m-1)] per pulse: twice the probability that both photons are detected."""
    return 2.0 * pulse_outcome_probabilities(mean_n, qy_x, qy_xx, eta)[3]


def g2_zero_mixture(means: list[float], pairs: list[float], poisson_mean: float = 0.0) -> float:
    """Pulsed g2(0) of independent sources detected together.

    g2(0) = E[M(M-1)] / E[M]^2 with M = sum of independent counts m_i:
    E[M(M-1)] = sum_i E[m_i(m_i-1)] + sum_{i != j} m_i m_j; Poisson light adds mu^2 pairs.
    """
    total = sum(means) + poisson_mean
    if total <= 0:
        return float("nan")
    pairs_total = sum(pairs) + poisson_mean**2
    cross = total**2 - sum(m * m for m in means) - poisson_mean**2
    return (pairs_total + cross) / total**2
