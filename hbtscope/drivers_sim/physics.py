"""Photophysics of one quantum emitter (pure functions): the multi-exciton ladder.

Pulsed excitation (Pierini et al.; D'Amato et al.; Feld et al.).
Each laser pulse creates N ~ Poisson(<N>) excitons, <N> = sigma_abs F (absorption
cross-section times photon fluence of the pulse at the emitter); P_sat is the power where
<N> = 1 at the centre of the focus (D'Amato et al.'s definition, "N_eh = 1"). N beyond ``N_MAX``
relaxes (intraband, ps) to the top rung n0 = min(N, N_MAX). The n-exciton state then
cascades n0 -> n0 - 1 -> ... -> 1 -> 0; rung n emits one photon with quantum yield QY_n (or
loses the exciton by Auger recombination), after an exponential delay of lifetime tau_n.
Every emitted photon is detected with probability eta, independently: rung n gives a click
with p_n = QY_n eta.

Quantum yields of the rungs (Auger-limited, "statistical scaling"). With n electrons and n
holes, radiative and trap decay scale with the number of electron-hole pairs that can
recombine, n^2 (k_r + k_nr), and Auger recombination with the number of three-carrier
combinations, n^2 (n - 1)/2 (eeh + ehh), i.e. k_A,n = k_A,2 n^2 (n - 1)/4. Then

    QY_n = n^2 k_r / (n^2 (k_r + k_nr) + k_A,n) = qy_x / (1 + beta (n - 1)),
    beta = k_A,2 / (4 (k_r + k_nr)) = qy_x / qy_xx - 1,

so QY_1 = qy_x and QY_2 = qy_xx (the two yields the presets and setup files give), and the
ladder follows without a further parameter. r = qy_xx/qy_x = 1 (no Auger) makes every rung
as bright as the exciton: the crystal emits a Poisson number of photons, the classical
limit. For qy_xx > qy_x (not physical in this model; presets never do it) the rungs n >= 2
all get QY_n = min(qy_xx, 1).

Lifetimes of the rungs: the total decay rate is Gamma_n = n^2 (k_r + k_nr)(1 + beta (n-1))
(same scaling), anchored at the measured biexciton lifetime: tau_1 = tau_x,
tau_n = tau_xx Gamma_2/Gamma_n = tau_xx 4 (1 + beta) / (n^2 (1 + beta (n - 1))) for n >= 2
(tau_xx given, not derived from tau_x: Pierini et al. and Feld et al. measure it). Only photon
timing within a pulse depends on them (TCSPC, not the g2 peak areas).

Closed form, per pulse, with G_n = P(N >= n) = P(n, <N>) (regularised lower incomplete
gamma function; G_N_MAX includes the relaxed remainder):

- mean detected photons   m      = sum_n p_n G_n
- mean detected pairs     E[M(M-1)] = 2 sum_{i<j} p_i p_j G_j
  (rungs i < j both occur iff N >= j; the clicks of different rungs are independent)
- pulsed g2(0)            = E[M(M-1)] / m^2.

Limits: g2(0) -> QY_2/QY_1 = qy_xx/qy_x at low power (Nair et al. 2011, quoted by seed
002); it rises monotonically with <N> (more rungs below the top are occupied) towards
1 - sum p_n^2/(sum p_n)^2 (about 1 - 1/N_MAX for r = 1) when every rung is occupied.
The count rate saturates for the exciton and keeps growing with the higher rungs, the
A (1 - e^(-P/P_sat)) + B P of D'Amato et al. eq. 1 with B > 0 from the emitter itself.

CW excitation (Baronnier et al.): absorption at rate k = sigma Phi. Ground
G -> X at k; X -> G at gamma = 1/tau_x (photon with qy_x); X -> XX at k (a second exciton
absorbed while the first lives); XX -> X at Gamma_2 = 1/tau_xx (photon with qy_xx).
Absorption while in XX is neglected (k tau_xx < 0.01 at any CW intensity the seeds use).
Stationary: P_X = P_G k/gamma, P_XX = P_X k/Gamma_2; detected rate
R = P_X (a gamma + b k) with a = qy_x eta, b = qy_xx eta; and

    g2(0) = (b k P_X)(a gamma) / R^2 = a b gamma k / (P_X (a gamma + b k)^2)

(after an XX photon the emitter is in X and emits at a gamma; after an X photon it is in
G). It rises from qy_xx/qy_x at low k. g2(tau) of the chain is :func:`cw_g2_tau`.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.linalg import expm
from scipy.special import gammainc

H_PLANCK_J_S = 6.62607015e-34
C_LIGHT_M_S = 299_792_458.0

#: top rung of the exciton ladder (N > N_MAX relaxes to N_MAX); P(N > 10) < 3e-4 at 3 P_sat
N_MAX = 10


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
    """Average power for which <N> = 1 at the centre of the focus (P_sat, D'Amato et al.)."""
    w_cm = w_um * 1e-4
    return (
        rep_rate_Hz * photon_energy_J(wavelength_nm) * math.pi * w_cm * w_cm / (2.0 * sigma_abs_cm2)
    )


def focus_weight(dx_um, dy_um, dz_um, w_xy_um: float, w_z_um: float):
    """Relative intensity of the Gaussian focus at an offset: exp(-2 r^2/w^2) exp(-2 z^2/w_z^2)."""
    r2 = np.asarray(dx_um) ** 2 + np.asarray(dy_um) ** 2
    return np.exp(-2.0 * r2 / w_xy_um**2) * np.exp(-2.0 * np.asarray(dz_um) ** 2 / w_z_um**2)


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


def _beta(qy_x: float, qy_xx: float) -> float | None:
    """Auger parameter beta = qy_x/qy_xx - 1 (None: qy_xx > qy_x, no Auger scaling)."""
    if qy_xx > qy_x:
        return None
    if qy_xx <= 0.0:
        return math.inf
    return qy_x / qy_xx - 1.0


def ladder_qy(qy_x: float, qy_xx: float, n_max: int = N_MAX) -> np.ndarray:
    """QY_n for n = 1 .. n_max (index n - 1): qy_x / (1 + beta (n - 1)), module doc."""
    n = np.arange(1, n_max + 1, dtype=float)
    beta = _beta(qy_x, qy_xx)
    if beta is None:
        qy = np.full(n_max, min(qy_xx, 1.0))
    elif math.isinf(beta):
        qy = np.zeros(n_max)
    else:
        qy = qy_x / (1.0 + beta * (n - 1.0))
    qy[0] = qy_x
    return qy


def ladder_tau(tau_x: float, tau_xx: float, qy_x: float, qy_xx: float, n_max: int = N_MAX):
    """Lifetimes tau_n for n = 1 .. n_max (same unit as the inputs), module doc."""
    n = np.arange(1, n_max + 1, dtype=float)
    beta = _beta(qy_x, qy_xx)
    if beta is None:
        tau = tau_xx * 4.0 / n**2
    elif math.isinf(beta):
        tau = np.full(n_max, tau_xx)  # no emission from n >= 2: the timing is irrelevant
    else:
        tau = tau_xx * 4.0 * (1.0 + beta) / (n**2 * (1.0 + beta * (n - 1.0)))
    tau[0] = tau_x
    return tau


def rung_occupation(mean_n: float, n_max: int = N_MAX) -> np.ndarray:
    """G_n = P(min(N, n_max) >= n) = P(N >= n) for n = 1 .. n_max, N ~ Poisson(mean_n)."""
    if mean_n <= 0:
        return np.zeros(n_max)
    return gammainc(np.arange(1, n_max + 1, dtype=float), mean_n)


def ladder_moments(mean_n: float, p: np.ndarray) -> tuple[float, float]:
    """(E[M], E[M(M-1)]) per pulse of detected clicks, rung click probabilities ``p``."""
    p = np.asarray(p, float)
    g = rung_occupation(mean_n, p.size)
    below = np.concatenate([[0.0], np.cumsum(p)[:-1]])  # sum_{i<j} p_i
    return float(p @ g), float(2.0 * np.sum(p * below * g))


def mean_detected_per_pulse(mean_n: float, qy_x: float, qy_xx: float, eta: float) -> float:
    """E[M]: mean detected photons per pulse (module doc)."""
    return ladder_moments(mean_n, ladder_qy(qy_x, qy_xx) * eta)[0]


def detected_pairs_per_pulse(mean_n: float, qy_x: float, qy_xx: float, eta: float) -> float:
    """E[M(M-1)]: mean detected pairs per pulse (module doc)."""
    return ladder_moments(mean_n, ladder_qy(qy_x, qy_xx) * eta)[1]


def g2_zero_pulsed(mean_n: float, qy_x: float, qy_xx: float, eta: float = 1e-3) -> float:
    """Pulsed g2(0) = E[M(M-1)]/E[M]^2 of one emitter (closed form, module doc)."""
    m, pairs = ladder_moments(mean_n, ladder_qy(qy_x, qy_xx) * eta)
    return pairs / m**2 if m > 0 else float("nan")


def ladder_classes(n_max: int = N_MAX) -> tuple[np.ndarray, np.ndarray]:
    """(top rung n0, highest clicking rung j) of the outcome classes, ordered by n0, then j
    ascending: (1, 1), (2, 1), (2, 2), (3, 1), ... -- n_max (n_max + 1)/2 classes; class
    (n0, j) has index n0 (n0 - 1)/2 + j - 1 (the generator relies on it)."""
    tops = [n0 for n0 in range(1, n_max + 1) for _ in range(n0)]
    firsts = [j for n0 in range(1, n_max + 1) for j in range(1, n0 + 1)]
    return np.array(tops, np.int64), np.array(firsts, np.int64)


@functools.lru_cache(maxsize=8)
def _ladder_classes_cached(n_max: int) -> tuple[np.ndarray, np.ndarray]:
    top, first = ladder_classes(n_max)
    top.flags.writeable = False
    first.flags.writeable = False
    return top, first


def ladder_outcomes(mean_n: float, p) -> np.ndarray:
    """Probabilities of the outcome classes of a pulse with at least one click.

    Class (n0, j) (:func:`ladder_classes`): top rung n0 = min(N, n_max) and j the highest
    rung that clicks; the rungs below j then click independently with their p_n (the photon
    generator draws those). P(n0, j) = P(n0) p_j prod_{j < n <= n0} (1 - p_n); summed over
    the classes, P(at least one click). ``p``: rung click probabilities, shape (n_max,) or
    (n_states, n_max); the result has the same leading shape.
    """
    p = np.asarray(p, float)
    n_max = p.shape[-1]
    top, first = _ladder_classes_cached(n_max)
    g = np.append(rung_occupation(mean_n, n_max), 0.0)
    p_top = np.maximum(g[:-1] - g[1:], 0.0)  # P(n0 = n); the last one holds N >= n_max
    log_miss = np.log1p(-np.minimum(p, 1.0 - 1e-15))
    cum = np.concatenate([np.zeros(p.shape[:-1] + (1,)), np.cumsum(log_miss, axis=-1)], -1)
    return p_top[top - 1] * p[..., first - 1] * np.exp(cum[..., top] - cum[..., first])


# ----------------------------------------------------------------------------- CW
def cw_populations(k_exc: float, tau_x: float, tau_xx: float) -> np.ndarray:
    """Stationary (P_G, P_X, P_XX) of the CW chain (module doc); rates in 1/time unit."""
    gamma, gamma2 = 1.0 / tau_x, 1.0 / tau_xx
    w = np.array([1.0, k_exc / gamma, k_exc**2 / (gamma * gamma2)])
    return w / w.sum()


def cw_detected_rate(k_exc, tau_x, tau_xx, qy_x, qy_xx, eta) -> float:
    """Detected photons per time unit under CW: eta (qy_x gamma P_X + qy_xx Gamma_2 P_XX)."""
    _, px, pxx = cw_populations(k_exc, tau_x, tau_xx)
    return eta * (qy_x * px / tau_x + qy_xx * pxx / tau_xx)


def cw_g2_zero(k_exc: float, tau_x: float, tau_xx: float, qy_x: float, qy_xx: float) -> float:
    """CW g2(0) of one emitter: qy_x qy_xx gamma k / (P_X (qy_x gamma + qy_xx k)^2)."""
    if k_exc <= 0:
        return qy_xx / qy_x
    gamma = 1.0 / tau_x
    p_x = cw_populations(k_exc, tau_x, tau_xx)[1]
    return float(qy_x * qy_xx * gamma * k_exc / (p_x * (qy_x * gamma + qy_xx * k_exc) ** 2))


def cw_g2_tau(tau, k_exc: float, tau_x: float, tau_xx: float, qy_x: float, qy_xx: float):
    """g2(tau) of the CW chain (any tau, symmetric): after a photon of either kind, the
    detected emission rate at |tau| over the mean rate."""
    gamma, gamma2 = 1.0 / tau_x, 1.0 / tau_xx
    q = np.array([[-k_exc, k_exc, 0.0], [gamma, -(gamma + k_exc), k_exc], [0.0, gamma2, -gamma2]])
    pop = cw_populations(k_exc, tau_x, tau_xx)
    emit = np.array([0.0, qy_x * gamma, qy_xx * gamma2])  # photon rate out of each state
    rate = float(pop @ emit)
    # state right after a photon: X photon -> G, XX photon -> X
    after = np.array([pop[1] * qy_x * gamma, pop[2] * qy_xx * gamma2, 0.0]) / rate
    t = np.abs(np.atleast_1d(np.asarray(tau, float)))
    out = np.array([after @ expm(q * ti) @ emit for ti in t]) / rate
    return out if np.ndim(tau) else float(out[0])
