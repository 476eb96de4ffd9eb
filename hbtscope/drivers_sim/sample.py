"""Emitters of the simulated sample drawn from species presets (hbtscope.drivers_sim.presets).

:func:`draw_emitter` draws one emitter's properties from a preset's distributions (CEW,
linewidth, lifetime, cross-section, Weibull bleaching dose, dipole and DOLP);
:func:`draw_population` places Poisson-random spots, some of them small clusters.
"""

from __future__ import annotations

import math

import numpy as np

from hbtscope.drivers_sim.model import Emitter
from hbtscope.drivers_sim.presets import (
    CLUSTER_BLEACH_ROBUSTNESS,
    LED_REFERENCE_PHOTON_FLUX_PER_CM2_S,
    WEIBULL_SHAPE,
    SpeciesPreset,
)


def _truncated_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float):
    for _ in range(1000):
        x = rng.normal(mean, sd)
        if lo <= x <= hi:
            return float(x)
    return float(np.clip(mean, lo, hi))


def draw_emitter(
    preset: SpeciesPreset,
    rng: np.random.Generator,
    *,
    index: int,
    x_um: float,
    y_um: float,
    z_um: float = 0.0,
    dilution: float = 1.0,
    spot: int = 0,
    cluster_size: int = 1,
) -> Emitter:
    """One emitter of ``preset`` at a position, all properties drawn from the preset."""
    w = np.array([m[0] for m in preset.cew_modes])
    mode = preset.cew_modes[int(rng.choice(len(w), p=w / w.sum()))]
    cew = _truncated_normal(rng, mode[1], mode[2], *preset.cew_range_nm)
    r = float(preset.r_of_cew(cew))
    qy_x = preset.qy_x
    qy_xx = min(r, 1.0) * qy_x  # r <= 1: QY_XX <= QY_X
    sigma = preset.sigma_abs_cm2[0] * math.exp(rng.normal(0.0, preset.sigma_abs_cm2[1]))
    # the emitter's own absorption under the reference LED: survival S(t) there is the
    # preset's Weibull law whatever its cross-section
    d_scale = sigma * LED_REFERENCE_PHOTON_FLUX_PER_CM2_S * preset.bleach_scale_at(dilution)
    bleach_dose = d_scale * float(rng.weibull(WEIBULL_SHAPE))
    if cluster_size > 1:
        bleach_dose *= CLUSTER_BLEACH_ROBUSTNESS
    return Emitter(
        index=index,
        x_um=x_um,
        y_um=y_um,
        z_um=z_um,
        qy_x=qy_x,
        qy_xx=qy_xx,
        tau_x_ns=_truncated_normal(
            rng, *preset.tau_x_ns, 0.2 * preset.tau_x_ns[0], 3 * preset.tau_x_ns[0]
        ),
        tau_xx_ns=preset.tau_xx_ns,
        sigma_abs_cm2=sigma,
        spot=spot,
        cluster_size=cluster_size,
        species=preset.name,
        qy_grey=preset.qy_grey,
        tau_grey_ns=preset.tau_grey_ns,
        qy_off=preset.qy_off,
        tau_off_ns=preset.tau_off_ns,
        k_bg=preset.k_flicker[0],
        k_gb=preset.k_flicker[1],
        k_bo=preset.k_blink[0],
        k_ob=preset.k_blink[1],
        blink_exponent=preset.blink_exponent,
        powerlaw_m=preset.powerlaw_m,
        powerlaw_span=preset.powerlaw_span,
        brightening_fraction=preset.brightening[0],
        brightening_dose=preset.brightening[1],
        local_background_ratio=preset.local_background_ratio,
        bleach_dose=bleach_dose,
        cew_nm=cew,
        fwhm_nm=_truncated_normal(
            rng, *preset.fwhm_nm, 0.5 * preset.fwhm_nm[0], 2 * preset.fwhm_nm[0]
        ),
        tail=preset.tail,
        blueshift_nm_per_exc=preset.blueshift_nm_per_exc,
        dipole_deg=float(rng.uniform(0.0, 180.0)),
        dolp=float(np.clip(rng.normal(*preset.dolp), 0.0, 1.0)),
    )


def draw_population(
    preset: SpeciesPreset,
    rng: np.random.Generator,
    *,
    density_per_um2: float,
    area_um: tuple[float, float, float, float],
    dilution: float = 1.0,
    first_index: int = 0,
    first_spot: int = 0,
) -> list[Emitter]:
    """Emitters at Poisson-random positions in ``area_um`` = (x0, x1, y0, y1).

    A fraction ``cluster_fraction`` of the spots are small clusters of 2–4 crystals within
    30 nm, which do not antibunch (D'Amato et al.: residual PL of aggregates).
    """
    x0, x1, y0, y1 = area_um
    n_spots = int(rng.poisson(density_per_um2 * (x1 - x0) * (y1 - y0)))
    emitters: list[Emitter] = []
    for k in range(n_spots):
        x, y = float(rng.uniform(x0, x1)), float(rng.uniform(y0, y1))
        size = int(rng.integers(2, 5)) if rng.random() < preset.cluster_fraction else 1
        for _ in range(size):
            dx, dy = rng.normal(0, 0.03, 2) if size > 1 else (0.0, 0.0)
            emitters.append(
                draw_emitter(
                    preset,
                    rng,
                    index=first_index + len(emitters),
                    x_um=x + dx,
                    y_um=y + dy,
                    dilution=dilution,
                    spot=first_spot + k,
                    cluster_size=size,
                )
            )
    return emitters
