"""The multi-exciton ladder on simulated photons, through the analysis library.

Every expected value comes from the closed forms in ``hbtscope.drivers_sim.physics``
(exact sums over the Poisson ladder); every measured value from simulated detector clicks
through ``hbtscope.analysis`` (correlate, g2_pulsed, saturation_fit). Detectors are ideal
(no dead time, no dark counts) and the substrate is dark, so the emitter alone is measured.
"""

from __future__ import annotations

import numpy as np
import pytest

from hbtscope.analysis import correlate, g2_pulsed, saturation_fit
from hbtscope.clock import VirtualClock
from hbtscope.drivers_sim import physics
from hbtscope.drivers_sim.model import (
    DetectorConfig,
    Emitter,
    OpticsConfig,
    SampleConfig,
    SimulationConfig,
)
from hbtscope.drivers_sim.world import World

FACTORS = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


def _world(qy_xx: float, seed: int, jitter_ps: float = 350.0, **emitter) -> World:
    detectors = [
        DetectorConfig(
            name=n, tagger_channel=c, dead_time_ns=0.0, dark_cps=0.0, jitter_fwhm_ps=jitter_ps
        )
        for n, c in (("a", 2), ("b", 3))
    ]
    spec = SimulationConfig(
        seed=seed,
        detectors=detectors,
        optics=OpticsConfig(collection_efficiency=0.3),
        sample=SampleConfig(
            substrate_background_cps_per_W=0.0,
            emitters=[Emitter(x_um=5.0, y_um=5.0, qy_x=0.8, qy_xx=qy_xx, tau_x_ns=10.0, **emitter)],
        ),
    )
    world = World(spec, VirtualClock("fast"))
    world.move_focus(5.0, 5.0, 0.0)
    return world


@pytest.mark.parametrize("ratio", [0.05, 0.3, 0.8])
def test_pulsed_g2_versus_power_follows_the_ladder(ratio):
    """g2(0) at 0.25, 0.5, 1, 1.5, 2, 3 P_sat (D'Amato et al. Fig. 5a) for
    QY_XX/QY_X = 0.05, 0.3, 0.8, measured with g2_pulsed on simulated clicks.

    Tolerance: g2_pulsed's sigma is the Poisson error of the centre and mean side peak;
    18 comparisons at 4 sigma fail by chance with probability 18 x 6.3e-5 ~ 1e-3. The trend:
    g2(3 P_sat) - g2(0.25 P_sat) must exceed 3 sigma of the difference (the closed form
    predicts rises of 0.073, 0.198, 0.052; with these counts sigma of the difference is
    0.002-0.007, i.e. the rise is >= 7 sigma and chance failure < 0.01 %), and equal the
    predicted rise within 4 sigma.
    """
    world = _world(0.8 * ratio, seed=31)
    world.set_laser(rep_rate_Hz=2.5e6)
    p_sat = world.saturation_power_W(world.emitters[0])
    qy_n = physics.ladder_qy(0.8, 0.8 * ratio)
    measured, errors, expected = [], [], []
    for f in FACTORS:
        world.set_laser(on=True, power_W=f * p_sat)
        mean_n, eta = world._excitation()
        m, pairs = physics.ladder_moments(float(mean_n[0]), qy_n * float(eta[0]))
        seconds = 30.0 if f < 0.3 else 12.0 if f < 1 else 5.0
        ts, ch = world.record(seconds)
        lag, counts = correlate(ts[ch == 2], ts[ch == 3], 1000, 12_000_000)
        res = g2_pulsed(lag, counts, 400_000)
        measured.append(res.g2_0)
        errors.append(res.g2_0_err)
        expected.append(pairs / m**2)
        assert abs(res.g2_0 - pairs / m**2) < 4 * res.g2_0_err, (f, res.g2_0, pairs / m**2)
    assert np.all(np.diff(expected) > 0)  # the closed form itself rises monotonically
    assert expected[0] == pytest.approx(ratio, rel=0.2)  # ~ QY_XX/QY_X at low power
    rise, sigma = measured[-1] - measured[0], float(np.hypot(errors[0], errors[-1]))
    assert rise > 3 * sigma, (rise, sigma)
    assert abs(rise - (expected[-1] - expected[0])) < 4 * sigma


@pytest.mark.parametrize(("ratio", "linear_term"), [(0.3, True), (0.0, False)])
def test_saturation_fit_of_the_emitter_alone_finds_the_linear_term(ratio, linear_term):
    """D'Amato et al. eq. 1, I = A (1 - e^(-P/P_sat)) + B P, fitted (saturation_fit) to simulated
    click counts of one emitter (dark substrate, ideal detectors) at 12 powers 0.05-5 P_sat.

    With QY_XX/QY_X = 0.3 the higher rungs of the ladder keep the count rate growing: B
    must be positive at more than 5 sigma (the noise-free closed form, fitted the same way,
    gives B/B_err ~ 25 at these counts). Control: without multi-exciton emission
    (qy_xx = 0) the curve saturates completely and B is 0 within 4 sigma (eq. 1 is then
    exact, B = 0 is the truth), so the first assertion can fail.
    """
    world = _world(0.8 * ratio, seed=41)
    world.set_laser(rep_rate_Hz=2.5e6)
    p_sat = world.saturation_power_W(world.emitters[0])
    powers = p_sat * np.geomspace(0.05, 5.0, 12)
    counts = []
    for p in powers:
        world.set_laser(on=True, power_W=p)
        ts, _ = world.record(1.0)
        counts.append(ts.size)
    fit = saturation_fit(powers * 1e9, np.array(counts, float))
    if linear_term:
        assert fit.B > 5 * fit.B_err, fit
    else:
        assert abs(fit.B) < 4 * fit.B_err, fit
        assert fit.P_sat * 1e-9 == pytest.approx(p_sat, rel=5 * fit.P_sat_err / fit.P_sat)


def test_cw_g2_zero_rises_with_the_excitation_rate():
    """CW: a second exciton absorbed while the first lives gives XX-X pairs, so g2(0) of one
    emitter rises with k_exc (physics.cw_g2_zero; Baronnier et al. work far below
    saturation). QY_XX/QY_X = 0.1 at k tau_x = 0.1, 0.5, 2: averaged over |tau| < 1 ns the
    chain gives 0.155, 0.199, 0.329 (g2 rises from the cusp at 0 on the 1/(k + gamma) scale).

    Measured: coincidences within |tau| < 1 ns (50 ps jitter) over the Poissonian level
    N1 N2 bw / T; expected: the chain's g2(tau) (physics.cw_g2_tau) averaged over the same
    bins. Tolerance 4 sigma of the Poisson count of the window (3 comparisons), plus 0.005
    for the jitter smearing of the cusp (its slope x jitter: < 0.05/ns x 0.03 ns). The rise
    between the extreme powers must exceed 5 sigma.
    """
    world = _world(0.08, seed=51, jitter_ps=50.0, tau_xx_ns=0.5, sigma_abs_cm2=1e-14)
    e = world.emitters[0]
    measured, errors = [], []
    for k_tau in (0.1, 0.5, 2.0):
        # power for k_exc = k_tau / tau_x at the focus centre (k is linear in the power)
        world.set_laser(cw=True, on=True, power_W=1e-6)
        k_per_w = float(world._cw_rates()[0][0]) / 1e-6
        k = k_tau / (e.tau_x_ns * 1e-9)
        world.set_laser(power_W=k / k_per_w)
        seconds = 1.5
        ts, ch = world.record(seconds)
        t1, t2 = ts[ch == 2], ts[ch == 3]
        bw = 100
        lag, c = correlate(t1, t2, bw, 1000)
        norm = t1.size * t2.size * bw / (seconds * 1e12)
        g2 = c.sum() / (norm * c.size)
        err = np.sqrt(c.sum()) / (norm * c.size)
        expected = float(np.mean(physics.cw_g2_tau(lag * 1e-12, k, 10e-9, 0.5e-9, 0.8, 0.08)))
        assert abs(g2 - expected) < 4 * err + 0.005, (k_tau, g2, expected, err)
        assert physics.cw_g2_zero(k, 10e-9, 0.5e-9, 0.8, 0.08) == pytest.approx(
            float(physics.cw_g2_tau(0.0, k, 10e-9, 0.5e-9, 0.8, 0.08)), rel=1e-9
        )
        measured.append(g2)
        errors.append(err)
    assert measured[2] - measured[0] > 5 * np.hypot(errors[0], errors[2])
    assert measured[0] < measured[1] < measured[2]


def test_ladder_class_kernel_equals_ladder_outcomes():
    """The world's kernel for the outcome-class probabilities is physics.ladder_outcomes."""
    from hbtscope.drivers_sim._kernels import ladder_class_probs

    rng = np.random.default_rng(5)
    top, first = physics.ladder_classes(physics.N_MAX)
    for mean_n in [1e-4, 0.03, 0.5, 2.0, 30.0]:
        p = rng.random((3, physics.N_MAX)) * rng.choice([1e-3, 0.1, 1.0])
        p[0, 0] = 1.0  # clipped to 1 - 1e-15 in both
        g = np.append(physics.rung_occupation(mean_n, physics.N_MAX), 0.0)
        out = np.zeros((4, top.size))
        ladder_class_probs(np.maximum(g[:-1] - g[1:], 0.0), p, top, first, out)
        np.testing.assert_allclose(out[:3], physics.ladder_outcomes(mean_n, p), rtol=1e-12)
        assert not out[3].any()
