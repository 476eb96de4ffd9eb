"""D'Amato et al. Fig. 4a,b on the simulated microscope, with the analysis library only: the decays
of the high- and low-intensity windows of a blinking trace give the bright (10.2 ns) and dim
(1.3 ns) lifetimes."""

from __future__ import annotations

import numpy as np

from hbtscope.analysis import (
    decay_histogram,
    fit_decay,
    intensity_trace,
    photons_in_windows,
    two_level_fit,
    window_mask,
)
from hbtscope.clock import VirtualClock
from hbtscope.config_schema import EmitterSpec, SampleSpec, SimulationSpec
from hbtscope.drivers_sim.world import World


def test_high_and_low_windows_give_the_state_lifetimes():
    """Windows of 10 ms bins near each fitted level; mono-exponential + background fits with a
    Gaussian IRF (150 ps, the simulated jitter). At 0.2 P_sat few pulses make biexcitons
    (P(N>=2)/P(N>=1) ~ 10 %, their 0.8 ns delays the X photon of a cascade); tolerance:
    4 sigma of the fit plus 6 % for that and for the few straddling bins left."""
    spec = SimulationSpec(
        seed=31,
        sample=SampleSpec(
            substrate_background_cps_per_W=0.0,
            emitters=[
                EmitterSpec(
                    preset="cspbbr3_zn",
                    x_um=5.0,
                    y_um=5.0,
                    tau_x_ns=10.2,
                    tau_grey_ns=1.3,
                    qy_grey=0.2,
                    k_bg=2.0,
                    k_gb=2.0,
                    k_bo=0.0,
                )
            ],
        ),
    )
    world = World(spec.to_config(), VirtualClock("fast"))
    world.move_focus(5.0, 5.0, 0.0)
    world.set_laser(on=True, power_W=0.2 * world.saturation_power_W(world.emitters[0]))
    world.set_sync_enabled(True)
    ts, ch = world.record(15.0)
    sync, photons = ts[ch == 1], ts[(ch == 2) | (ch == 3)]
    bins, counts = intensity_trace(photons, 10_000_000_000)
    levels = two_level_fit(counts)
    assert levels.n_levels == 2 and 0.5 < levels.on_fraction < 0.97  # the trace blinks
    lo_level, hi_level = sorted(levels.means)
    # strict windows: within 2 Poisson sigma of each level, so that bins straddling a
    # switch (a mixture of both lifetimes) stay out
    high = photons_in_windows(
        photons, bins, window_mask(counts, low=hi_level - 2 * np.sqrt(hi_level))
    )
    low = photons_in_windows(
        photons, bins, window_mask(counts, high=lo_level + 2 * np.sqrt(lo_level))
    )
    for mask, tau_true in ((high, 10_200.0), (low, 1_300.0)):
        hist = decay_histogram(photons[mask], sync, 50, 4000)
        fit = fit_decay(hist, 50, n_exp=1, irf={"gaussian": 150.0}, background=True)
        tau, err = fit.taus_ps[0], fit.taus_ps_err[0]
        assert abs(tau - tau_true) < 4 * err + 0.06 * tau_true, (tau, err, tau_true)
