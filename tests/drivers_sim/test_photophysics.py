"""Statistical checks that the simulated emitters have the properties the presets claim."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from hbtscope.analysis import correlate
from hbtscope.clock import VirtualClock
from hbtscope.drivers_sim import physics
from hbtscope.drivers_sim.model import (
    DetectorConfig,
    Emitter,
    EmitterSpot,
    OpticsConfig,
    PopulationConfig,
    SampleConfig,
    SimulationConfig,
)
from hbtscope.drivers_sim.presets import LED_REFERENCE_W_PER_CM2, PRESETS
from hbtscope.drivers_sim.world import World


def _population_world(preset: str, dilution: float, density: float = 0.06, seed: int = 7):
    spec = SimulationConfig(
        seed=seed,
        sample=SampleConfig(
            populations=[
                PopulationConfig(
                    preset=preset,
                    dilution=dilution,
                    density_per_um2=density,
                    area_um=(0.0, 80.0, 0.0, 80.0),
                )
            ]
        ),
    )
    return World(spec, VirtualClock("fast"))


def _alive_fraction_after(world: World, seconds: float) -> tuple[float, int]:
    world.set_led(on=True, intensity_W_cm2=LED_REFERENCE_W_PER_CM2)
    world.clock.sleep(seconds)
    now = world.clock.now_ps()
    # single crystals: the seeds' survival numbers are those of individual NCs; aggregates
    # (robust, residual PL) are checked separately
    alive = [not d.bleached_at(now) for d in world.dynamics if d.e.cluster_size == 1]
    return float(np.mean(alive)), len(alive)


@pytest.mark.parametrize(
    ("preset", "dilution", "minutes", "seed_fraction"),
    [
        # D'Amato et al. Fig. 2a: surviving after 1 h of LED light, by dilution
        ("cspbbr3_zn", 10, 60, 0.72),
        ("cspbbr3_zn", 20, 60, 0.55),
        ("cspbbr3_zn", 50, 60, 0.40),
        ("cspbbr3_zn", 100, 60, 0.20),
        ("cspbbr3_zn", 200, 15, 0.05),
        # Pierini et al. Fig. 4b: concentrated > 80 % after 20 min; diluted: half bleached in 3 min
        ("cspbbr3_nanocube", 1, 20, 0.82),
        ("cspbbr3_nanocube", 10, 3, 0.50),
    ],
)
def test_bleaching_survival_calibration_check(preset, dilution, minutes, seed_fraction):
    """CALIBRATION CHECK, circular by construction: the presets' Weibull scales are fitted to
    exactly these (time, surviving fraction) pairs (presets.py, bleach_scale_s), so this only
    checks the dose plumbing of the LED path (absorption, thresholds, clusters excluded):
    the fraction still emitting under the reference LED is within 3 binomial sigma. The
    non-circular check of the bleaching model is
    test_presets_measured.py::test_confocal_survival_follows_the_dose_calibrated_under_the_led."""
    world = _population_world(preset, dilution)
    frac, n = _alive_fraction_after(world, minutes * 60.0)
    assert n > 200
    sigma = np.sqrt(seed_fraction * (1 - seed_fraction) / n)
    assert abs(frac - seed_fraction) < 3 * sigma + 1e-9, (frac, seed_fraction, n)


def test_bleaching_hazard_grows_with_dose():
    """Weibull shape > 1: the second half-life is shorter than the first."""
    world = _population_world("cspbbr3_zn", 50, density=0.15)
    world.set_led(on=True, intensity_W_cm2=LED_REFERENCE_W_PER_CM2)
    times = np.array([d.bleach_time_ps for d in world.dynamics], float) * 1e-12
    t50, t75 = np.quantile(times, [0.5, 0.75])
    assert (t75 - t50) < t50  # exponential law would give t75 - t50 == t50


def _bunching_theory(e, mean_n: float, eta: float, taus_s: np.ndarray) -> np.ndarray:
    """g2(tau) of the blinking chain: sum_ij p_i I_i [exp(Q tau)]_ij I_j / (sum p_i I_i)^2."""
    qy, _ = e.state_qy_tau()
    intens = np.array(
        [physics.mean_detected_per_pulse(mean_n, q, e.qy_xx * q / e.qy_x, eta) for q in qy]
    )
    ratio = -np.expm1(-mean_n) / (1 - np.exp(-1))
    qm = e.rate_matrix(ratio)
    p = e.stationary(ratio)
    mean = p @ intens
    return np.array([(p * intens) @ expm(qm * t) @ intens for t in taus_s]) / mean**2


def test_blinking_bunching_of_zn_preset_matches_seed_001():
    """cspbbr3_zn: g2 ≈ 1.18 below 10 µs, back to ~1 by 100 µs (D'Amato et al. Fig. 4d).

    The measured long-delay g2 (correlation of the two SPADs, 400 ns bins = one period,
    normalised by N1 N2 bw / T) agrees with the exact g2 of the three-state chain within
    4 sigma of its counting noise, and the chain itself gives the seed's numbers.
    """
    spec = SimulationConfig(
        seed=11,
        sample=SampleConfig(
            substrate_background_cps_per_W=0.0,
            emitters=[
                EmitterSpot(
                    preset="cspbbr3_zn",
                    x_um=5.0,
                    y_um=5.0,
                    properties={"cew_nm": 510.0, "k_bo": 0.0},
                )
            ],
        ),
    )
    world = World(spec, VirtualClock("fast"))
    e = world.emitters[0]
    world.move_focus(5.0, 5.0, 0.0)
    world.set_laser(rep_rate_Hz=2.5e6)
    p_sat = world.saturation_power_W(e)
    world.set_laser(on=True, power_W=p_sat)
    seconds = 40.0
    ts, ch = world.record(seconds)
    t1, t2 = ts[ch == 2], ts[ch == 3]
    bw = 400_000
    lag, counts = correlate(t1, t2, bw, 400_000_000)
    g2 = counts / (t1.size * t2.size * bw / (seconds * 1e12))
    mean_n, eta = world._excitation()
    sel_short = (np.abs(lag) > 1e6) & (np.abs(lag) < 3e6)
    sel_long = (np.abs(lag) > 2e8) & (np.abs(lag) < 4e8)
    short, long_ = g2[sel_short].mean(), g2[sel_long].mean()
    err_short = np.sqrt(counts[sel_short].sum()) / counts[sel_short].sum() * short
    th_short = _bunching_theory(e, mean_n[0], eta[0], np.array([2e-6]))[0]
    th_long = _bunching_theory(e, mean_n[0], eta[0], np.array([3e-4]))[0]
    assert th_short == pytest.approx(1.18, abs=0.03)  # the preset reproduces D'Amato et al.
    assert th_long == pytest.approx(1.0, abs=0.01)
    assert abs(short - th_short) < 4 * err_short + 0.01, (short, th_short)
    assert abs(long_ - th_long) < 0.03, long_


def test_every_preset_names_its_paper_and_has_a_table_row():
    """Each preset names the paper its numbers come from (docs/references.md; "none" for the
    generic fluorescent impurity) and has a row in the presets module's table, so the docs
    cannot forget a species."""
    import hbtscope.drivers_sim.presets as presets

    authors = ("Pierini", "D'Amato", "Feld", "Farrow", "Baronnier")
    for name, preset in PRESETS.items():
        cited = preset.seed_paper == "none" or any(a in preset.seed_paper for a in authors)
        assert cited, (name, preset.seed_paper)
        assert f"``{name}``" in presets.__doc__, name


def _two_spad_clicks(world: World, seconds: float, step_s: float = 0.5):
    ts, ch = world.record(seconds, step_s)
    return ts[ch == 2], ts[ch == 3]


def test_cw_antibunching_rise_time_matches_rates():
    """CW (Baronnier et al.): g2(tau) = 1 - C exp(-|tau|/tau0) with 1/tau0 = k_exc + 1/tau_x.

    Fit of the normalised histogram (1 ns bins, |tau| < 150 ns) with C, tau0 free; tau0
    within 4 sigma of its fit error (+ 0.5 ns for the 350 ps detector jitter) of the truth.
    """
    from scipy.optimize import curve_fit

    spec = SimulationConfig(
        seed=5,
        sample=SampleConfig(
            substrate_background_cps_per_W=0.0,
            emitters=[Emitter(x_um=5.0, y_um=5.0, qy_x=0.8, tau_x_ns=12.0, sigma_abs_cm2=1e-14)],
        ),
    )
    world = World(spec, VirtualClock("fast"))
    world.move_focus(5.0, 5.0, 0.0)
    world.set_laser(cw=True, on=True, power_W=2e-6)
    truth = world.truth_at_focus()
    assert truth["excitation"] == "cw"
    seconds = 20.0
    t1, t2 = _two_spad_clicks(world, seconds)
    lag, counts = correlate(t1, t2, 1000, 150_000)
    g2 = counts / (t1.size * t2.size * 1000 / (seconds * 1e12))
    tau_ns = lag / 1000.0

    def model(t, c, tau0):
        return 1 - c * np.exp(-np.abs(t) / tau0)

    err = np.sqrt(np.maximum(counts, 1)) * g2 / np.maximum(counts, 1)
    (c, tau0), cov = curve_fit(model, tau_ns, g2, p0=[1.0, 10.0], sigma=err, absolute_sigma=True)
    sigma_tau0 = float(np.sqrt(cov[1, 1]))
    assert abs(tau0 - truth["cw_tau0_ns"]) < 4 * sigma_tau0 + 0.5, (tau0, truth["cw_tau0_ns"])
    # dark counts (2 x 100 cps) against ~1e4 cps signal: contrast close to 1
    assert c > 0.9
    rate = (t1.size + t2.size) / seconds
    expected = truth["emitter_rate_cps"] + truth["dark_rate_cps"]
    assert abs(rate - expected) < 4 * np.sqrt(expected / seconds) + 0.01 * expected


def test_pulsed_g2_rises_with_power_as_the_biexciton_model_says():
    """g2(0) at 0.25, 1 and 3 P_sat (D'Amato et al. Fig. 5a) equals E[m(m-1)]/E[m]^2 of the
    ladder (world truth; with the default detectors: dead time, dark counts). The full power
    series for three QY ratios is in test_multiexciton.py."""
    from hbtscope.analysis import g2_pulsed

    spec = SimulationConfig(
        seed=9,
        sample=SampleConfig(
            substrate_background_cps_per_W=0.0,
            emitters=[
                Emitter(x_um=5.0, y_um=5.0, qy_x=0.8, qy_xx=0.08, tau_x_ns=10.0, tau_xx_ns=0.8)
            ],
        ),
    )
    world = World(spec, VirtualClock("fast"))
    world.move_focus(5.0, 5.0, 0.0)
    p_sat = world.saturation_power_W(world.emitters[0])
    measured, errors, truth = [], [], []
    for factor in (0.25, 1.0, 3.0):
        world.set_laser(on=True, power_W=factor * p_sat)
        tr = world.truth_at_focus()
        t1, t2 = _two_spad_clicks(world, 60.0)
        lag, counts = correlate(t1, t2, 1000, 12_000_000)
        res = g2_pulsed(lag, counts, 200_000)
        assert abs(res.g2_0 - tr["g2_0_with_background"]) < 3 * res.g2_0_err, (factor, res)
        measured.append(res.g2_0)
        errors.append(res.g2_0_err)
        truth.append(tr["g2_0"])
    assert truth[0] < truth[1] < truth[2]
    # the rise from 0.25 to 3 P_sat is resolved: truth 0.111 -> 0.235 (r = 0.1), measured
    # difference within 3 sigma of it and clearly above 0
    rise, sigma = measured[2] - measured[0], np.hypot(errors[0], errors[2])
    assert abs(rise - (truth[2] - truth[0])) < 3 * sigma
    assert rise > 2 * sigma


def test_thermal_drift_moves_the_emitter_out_of_focus():
    """60 nm/min drift: after 5 min the emitter sits 0.3 µm away; the count rate at the old
    position falls as the Gaussian focus says (collection x excitation: exp(-4 d^2/w^2))."""
    spec = SimulationConfig(
        seed=3,
        optics=OpticsConfig(drift_nm_per_min=60.0),
        sample=SampleConfig(
            substrate_background_cps_per_W=0.0, emitters=[Emitter(x_um=5.0, y_um=5.0)]
        ),
    )
    world = World(spec, VirtualClock("fast"))
    world.move_focus(5.0, 5.0, 0.0)
    world.set_laser(on=True, power_W=2e-9)  # far below saturation: rate ∝ intensity
    r0 = world.truth_at_focus()["emitter_rate_cps"]
    world.clock.sleep(300.0)
    world.move_focus(5.0, 5.0, 0.0)  # a change: conditions re-evaluated now
    world.skip_until(world.clock.now_ps())  # nobody listened during the wait
    d = world.drift_um()
    assert np.hypot(d[0], d[1]) == pytest.approx(0.3, rel=1e-9)
    t1, t2 = _two_spad_clicks(world, 5.0)
    rate = (t1.size + t2.size) / 5.0 - 200.0  # minus dark counts
    expected = r0 * np.exp(-4 * 0.3**2 / 0.25**2)
    assert abs(rate - expected) < 4 * np.sqrt(rate / 5.0) + 0.02 * expected
    world.move_focus(5.0 + d[0], 5.0 + d[1], 0.0)  # refocus onto the drifted emitter
    # 5 s more drift (5 nm) while recording: exp(-4 (0.005/0.25)^2) = 0.998
    assert world.truth_at_focus()["emitter_rate_cps"] == pytest.approx(r0, rel=3e-3)


def test_detection_bands_route_by_wavelength():
    """Baronnier et al.: one SPAD behind a 530 nm band, the other behind 650 nm: a 650 nm QD is seen
    by the second only, in proportion to the band fractions of its line."""
    from hbtscope.drivers_sim.render import band_fraction

    spec = SimulationConfig(
        seed=4,
        detectors=[
            DetectorConfig(name="matrix", tagger_channel=2, band_nm=(505.0, 555.0)),
            DetectorConfig(name="qd", tagger_channel=3, band_nm=(625.0, 675.0)),
        ],
        sample=SampleConfig(
            substrate_background_cps_per_W=0.0,
            emitters=[Emitter(x_um=5.0, y_um=5.0, cew_nm=650.0, fwhm_nm=30.0, tail=0.1)],
        ),
    )
    world = World(spec, VirtualClock("fast"))
    world.move_focus(5.0, 5.0, 0.0)
    world.set_laser(on=True, power_W=24e-9)
    t1, t2 = _two_spad_clicks(world, 5.0)
    dark = 100.0 * 5.0
    assert t1.size < dark + 4 * np.sqrt(dark)  # the matrix channel sees only dark counts
    frac = band_fraction(650.0, 30.0, 0.1, (625.0, 675.0))
    assert 0.7 < frac < 0.95
    full = World(SimulationConfig(seed=4, sample=spec.sample), VirtualClock("fast"))
    full.move_focus(5.0, 5.0, 0.0)
    full.set_laser(on=True, power_W=24e-9)
    rate_all = full.truth_at_focus()["emitter_rate_cps"]
    expected = rate_all * 0.5 * frac * 5.0  # half the light goes to the QD arm
    n_qd = t2.size - dark
    assert abs(n_qd - expected) < 4 * np.sqrt(t2.size)


def test_state_resolved_decays_give_the_state_lifetimes():
    """Type-A blinking: photons sorted by the (true) state at emission decay with the bright
    (10.2 ns) and grey (1.3 ns) lifetimes of cspbbr3_zn (D'Amato et al. Fig. 4b).

    Exponential tail MLE (mean delay beyond a cut past the jitter, minus the cut, corrected
    for the finite window): relative error 1/sqrt(N) for N photons; tolerance 4 sigma plus
    3 % for the biexciton cascade (0.8 ns added to a few X delays) and the 350 ps jitter.
    """
    spec = SimulationConfig(
        seed=21,
        sample=SampleConfig(
            substrate_background_cps_per_W=0.0,
            emitters=[
                EmitterSpot(
                    preset="cspbbr3_zn",
                    x_um=5.0,
                    y_um=5.0,
                    properties=dict(
                        tau_x_ns=10.2, tau_grey_ns=1.3, qy_grey=0.3, k_bg=2.0, k_gb=2.0, k_bo=0.0
                    ),
                )
            ],
        ),
        detectors=[
            DetectorConfig(name="a", tagger_channel=2, dark_cps=0.0),
            DetectorConfig(name="b", tagger_channel=3, dark_cps=0.0),
        ],
    )
    world = World(spec, VirtualClock("fast"))
    world.record_paths = True
    world.move_focus(5.0, 5.0, 0.0)
    world.set_laser(on=True, power_W=0.3 * world.saturation_power_W(world.emitters[0]))
    world.set_sync_enabled(True)
    ts, ch = world.record(10.0)
    sync = ts[ch == 1]
    photons = ts[ch != 1]
    last_sync = sync[np.searchsorted(sync, photons, side="right") - 1]
    delay_ns = (photons - last_sync - 2000) / 1000.0  # minus the detector delay
    state = world.state_at(0, last_sync)
    window = 150.0
    for s, tau_true in ((0, 10.2), (1, 1.3)):
        cut = 1.0 if s == 1 else 2.0
        d = delay_ns[(state == s) & (delay_ns > cut) & (delay_ns < window)] - cut
        assert d.size > 2000, (s, d.size)
        # truncated-exponential MLE by fixed-point iteration
        tau = d.mean()
        for _ in range(50):
            span = window - cut
            tau = d.mean() + span / np.expm1(span / tau)
        assert abs(tau - tau_true) < 4 * tau_true / np.sqrt(d.size) + 0.03 * tau_true, (s, tau)


def _g2_at_psat(e) -> float:
    return physics.g2_zero_pulsed(1.0, e.qy_x, e.qy_xx, 0.03)


def test_nanocube_population_purity_vs_cew_as_seed_000():
    """CALIBRATION CHECK of the preset's r(CEW) (closed form, not photons): Pierini et al.
    (Pierini et al.) Fig. 6b at I_sat: about half the emitters g2(0) < 0.2; above 505 nm all > 0.5;
    best ~0.02. Binomial tolerance on the half (n ~ 380: sigma 0.026, 3 sigma). The closed
    form itself is checked against simulated photons in test_multiexciton.py."""
    world = _population_world("cspbbr3_nanocube", 1.0)
    singles = [e for e in world.emitters if e.cluster_size == 1]
    g2 = np.array([_g2_at_psat(e) for e in singles])
    cew = np.array([e.cew_nm for e in singles])
    assert abs(np.mean(g2 < 0.2) - 0.5) < 3 * np.sqrt(0.25 / g2.size) + 0.02
    assert np.all(g2[cew > 505] > 0.5)
    assert 0.01 < g2.min() < 0.04
    assert all(e.qy_xx <= e.qy_x for e in singles)  # no crystal is bunched at low power


def test_zn_population_purity_vs_cew_as_seed_001():
    """CALIBRATION CHECK of the preset's r(CEW) (closed form at P_sat, not photons):
    D'Amato et al. Fig. 3: CEW 512.5 ± 3.3 nm; ~94 % antibunched (< 0.5) below
    515 nm; g2 rises with CEW from ~0.08 (best) to ~1 (the ladder's classical limit at r = 1,
    reached without qy_xx > qy_x)."""
    world = _population_world("cspbbr3_zn", 10.0)
    singles = [e for e in world.emitters if e.cluster_size == 1]
    g2 = np.array([_g2_at_psat(e) for e in singles])
    cew = np.array([e.cew_nm for e in singles])
    assert np.mean(cew) == pytest.approx(512.5, abs=3 * 3.3 / np.sqrt(cew.size) + 0.3)
    below = g2[cew < 515]
    assert abs(np.mean(below < 0.5) - 0.94) < 3 * np.sqrt(0.94 * 0.06 / below.size) + 0.02
    assert np.corrcoef(cew, g2)[0, 1] > 0.5
    assert 0.05 < g2.min() < 0.11
    assert g2.max() > 0.9  # "0.1 -> 1 with CEW": 0.93 at the 518 nm end of the range
    assert all(e.qy_xx <= e.qy_x for e in singles)


def test_blue_shift_under_illumination():
    """D'Amato et al. Fig. 2b: CEW blue-shifts by < 4 nm in 1 h at P_sat (2.5 MHz)."""
    spec = SimulationConfig(
        seed=2,
        sample=SampleConfig(
            emitters=[
                EmitterSpot(
                    preset="cspbbr3_zn", x_um=5.0, y_um=5.0, properties={"bleach_dose": 1e30}
                )
            ]
        ),
    )
    world = World(spec, VirtualClock("fast"))
    e = world.emitters[0]
    world.move_focus(5.0, 5.0, 0.0)
    world.set_laser(rep_rate_Hz=2.5e6)
    world.set_laser(on=True, power_W=world.saturation_power_W(e))
    cew0 = world.truth_at_focus()["cew_nm"][0]
    world.clock.sleep(3600.0)
    cew1 = world.truth_at_focus()["cew_nm"][0]
    assert 1.0 < cew0 - cew1 < 4.0


def test_afterpulsing_adds_correlated_clicks_after_the_dead_time():
    """One SPAD with 2 % afterpulsing (100 ns): its autocorrelation has a bump after the dead
    time holding p N pairs, and its rate grows by ~p; the other SPAD has none."""
    spec = SimulationConfig(
        seed=13,
        detectors=[
            DetectorConfig(name="a", tagger_channel=2, afterpulse_prob=0.02, afterpulse_tau_ns=100),
            DetectorConfig(name="b", tagger_channel=3),
        ],
        sample=SampleConfig(
            substrate_background_cps_per_W=0.0, emitters=[Emitter(x_um=5.0, y_um=5.0)]
        ),
    )
    world = World(spec, VirtualClock("fast"))
    world.move_focus(5.0, 5.0, 0.0)
    world.set_laser(on=True, power_W=24e-9)
    t1, t2 = _two_spad_clicks(world, 10.0, step_s=0.37)
    assert np.all(np.diff(t1) >= 22_000)  # dead time holds, afterpulses included
    # pairs on the same SPAD 22 ns .. 1 µs apart, beyond those of the SPAD without
    # afterpulsing (scaled to the same rate; the pulsed comb makes both non-flat alike)
    lag, counts = correlate(t1, t1, 2000, 1_000_000)
    sel = (lag > 22_000) & (lag < 1_000_000)
    _, counts_b = correlate(t2, t2, 2000, 1_000_000)
    excess = counts[sel].sum() - counts_b[sel].sum() * (t1.size / t2.size) ** 2
    n_ap = 0.02 * t1.size / 1.02  # afterpulses among t1's clicks
    # 5 sigma of the pair counts; 10 % for afterpulses beyond 1 µs (e^-9.8) and those lost
    # in the dead time of a following photon
    assert abs(excess - n_ap) < 5 * np.sqrt(counts[sel].sum()) + 0.10 * n_ap, (excess, n_ap)


def test_irf_model_matches_measured_timing_of_a_fast_source():
    """Substrate light with a 0.1 ps lifetime timed against the sync reproduces world.irf():
    Gaussian jitter plus a 20 % diffusion tail of 400 ps (chi-square test)."""
    spec = SimulationConfig(
        seed=17,
        detectors=[
            DetectorConfig(
                name="a",
                tagger_channel=2,
                jitter_fwhm_ps=350,
                jitter_tail_fraction=0.2,
                jitter_tail_ps=400,
                dark_cps=0.0,
            ),
            DetectorConfig(name="b", tagger_channel=3, dark_cps=0.0),
        ],
        sample=SampleConfig(substrate_background_cps_per_W=2.0e11, substrate_lifetime_ns=1e-4),
    )
    world = World(spec, VirtualClock("fast"))
    world.move_focus(50.0, 50.0, 0.0)
    world.set_laser(on=True, power_W=2e-7)
    world.set_sync_enabled(True)
    ts, ch = world.record(2.0)
    sync, clicks = ts[ch == 1], ts[ch == 2]
    d = clicks - sync[np.searchsorted(sync, clicks, side="right") - 1]
    bins = 50
    hist, _ = np.histogram(d, bins=np.arange(0, 6001, bins))
    model = world.irf(0, bins, hist.size) * d.size
    use = model > 20
    chi2 = np.sum((hist[use] - model[use]) ** 2 / model[use])
    dof = use.sum()
    assert chi2 < dof + 5 * np.sqrt(2 * dof), (chi2, dof)


def test_aggregates_leave_residual_light_when_singles_have_bleached():
    """D'Amato et al. Fig. 2a, 1:200: bleached in ~15 min, with constant residual PL of
    aggregates."""
    world = _population_world("cspbbr3_zn", 200, density=0.3)
    world.set_led(on=True, intensity_W_cm2=LED_REFERENCE_W_PER_CM2)
    world.clock.sleep(1800.0)
    now = world.clock.now_ps()
    singles = [not d.bleached_at(now) for d in world.dynamics if d.e.cluster_size == 1]
    clusters = [not d.bleached_at(now) for d in world.dynamics if d.e.cluster_size > 1]
    assert len(clusters) > 30
    assert np.mean(singles) < 0.01
    assert np.mean(clusters) > 0.5
