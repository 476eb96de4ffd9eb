"""Long-delay blinking bunching (D'Amato et al. Fig. 4d): log-binned g2 of a telegraph
(ON/OFF) emitter and its telegraph-model fit."""

from __future__ import annotations

import numpy as np

from hbtscope.analysis.g2_long import g2_long_delays

# --- long delays (blinking) --------------------------------------------------------------


def telegraph_tags(rng, T_s, k_off, k_on, i_on, i_off):
    """ON/OFF emitter seen by two detectors (see test_correlation_log.py for the model)."""
    p_on = k_on / (k_on + k_off)
    n = int(T_s * (k_on + k_off)) + 1_000
    states = (np.arange(n) % 2 == 0) == (rng.random() < p_on)
    bounds = np.minimum(
        np.r_[0.0, np.cumsum(rng.exponential(np.where(states, 1 / k_off, 1 / k_on)))], T_s
    )
    dur = np.diff(bounds)
    out = []
    for _ in range(2):
        k = rng.poisson(np.where(states, i_on, i_off) * dur)
        t = np.repeat(bounds[:-1], k) + rng.random(k.sum()) * np.repeat(dur, k)
        out.append(np.sort(np.round(t * 1e12).astype(np.int64)))
    mean_i = i_off + (i_on - i_off) * p_on
    return (
        out[0],
        out[1],
        p_on * (1 - p_on) * (i_on - i_off) ** 2 / mean_i**2,
        1e12 / (k_on + k_off),
    )


def test_g2_long_delays_recovers_blinking_contrast_and_time():
    """D'Amato et al. Fig. 4d-like blinking: bunching above 1 below 10 us, back to 1 by 100 us.
    The telegraph fit recovers C_b and tau_b within 3 sigma, its chi2 is ~1 with the
    slow-shot-noise variance (it would be ~50 with Poisson weights), the pooled short-delay
    window sits at 1 + C <exp> and the long-delay window at 1."""
    rng = np.random.default_rng(8)
    t1, t2, C, tau_c = telegraph_tags(rng, 10.0, k_off=2e4, k_on=2e5, i_on=1e5, i_off=2e4)
    r = g2_long_delays(t1, t2, 10e12)
    assert r.fit_converged
    assert abs(r.C_blink - C) < 3 * r.C_blink_err
    assert abs(r.tau_blink_ps - tau_c) < 3 * r.tau_blink_ps_err
    assert r.tau_blink_ps_err / tau_c < 0.15
    assert 0.6 < r.fit_chi2_red < 1.6  # ~70 bins
    # the baseline is set by the long-lag bins, which share the slow shot noise (their
    # errors are correlated, so fit_baseline_err is optimistic): g2 there scatters by
    # ~sqrt(2/r (a + W/3))/T ~ 1e-4 (10 ms) .. 5e-4 (1 s) for r = 93 kcps, T = 10 s
    assert abs(r.fit_baseline - 1) < 5e-4
    # windows: 1-10 us holds part of the bunching (tau_c ~ 4.5 us), 0.1-1 ms none
    assert r.g2_short > 1 + 3 * r.g2_short_err
    assert abs(r.g2_long - 1) < 4 * r.g2_long_err
    assert r.counts.sum() > 0 and r.tau_ps.size == r.g2.size == r.edges_ps.size - 1
    d = r.as_dict()
    assert d["short_window_lo_ps"] == 1e6 and "g2" not in d
