"""The CW side of the g2 measurement (``g2`` with ``excitation = "cw"``): analysis of the
histogram and its figure, kept apart from the pulsed code of :mod:`hbtscope.procedures.g2`.

Under continuous-wave excitation the coincidence histogram of a single emitter is an
antibunching dip (Baronnier et al., eq. 4)::

    g2(tau) = 1 - C exp(-|tau - tau_off| / tau0),   tau0 = 1 / (k_exc + 1/tau_X)

convolved with the coincidence IRF (Gaussian, sigma = both SPADs' jitters in quadrature:
``irf_sigma_ps``), fitted by Poisson maximum likelihood (:func:`hbtscope.analysis.g2_cw_fit`)
over |tau - tau_off| <= ``cw_fit_range_ps``, with g2 = 1 fixed by the mean of the bins near
``norm_delay_ps`` +- ``norm_halfwidth_ps`` (beyond the blinking bunching). g2(0) = 1 - C
(IRF-free) with its error. The zero delay is the calibration's ``hbt_zero_delay_ps`` or the
parameter, else fitted. SPAD crosstalk: the calibration's ``crosstalk_windows_ps`` (around the
zero delay), else narrow excess peaks found in the residuals of a first fit (bins more than
5 sigma above the model, widened by 1 ns) are excluded and the fit repeated.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from hbtscope.analysis import g2_cw_fit, g2_cw_model

#: a crosstalk bin lies this many Poisson sigma above the first fit
CROSSTALK_Z = 5.0
#: each crosstalk cluster is widened by this much on each side (ps)
CROSSTALK_PAD_PS = 1000.0


def _clusters(lag: np.ndarray, flagged: np.ndarray, pad_ps: float) -> list[tuple[float, float]]:
    """Runs of flagged bins as (lo, hi) windows widened by ``pad_ps``."""
    windows: list[tuple[float, float]] = []
    for i in np.flatnonzero(flagged):
        lo, hi = float(lag[i]) - pad_ps, float(lag[i]) + pad_ps
        if windows and lo <= windows[-1][1]:
            windows[-1] = (windows[-1][0], hi)
        else:
            windows.append((lo, hi))
    return windows


def analyse_cw(
    lag_ps: np.ndarray,
    counts: np.ndarray,
    params: dict[str, Any],
    calibrations: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(values, errors, summary) of a CW g2 histogram (module doc); ValueError if it cannot
    be fitted at all."""
    lag = np.asarray(lag_ps, dtype=np.float64)
    y = np.asarray(counts).astype(np.int64)
    sigma = float(params.get("irf_sigma_ps") or 210.0)
    fit_range = float(params.get("cw_fit_range_ps") or 200_000.0)
    norm_delay = float(params.get("norm_delay_ps") or 10_000_000.0)
    norm_half = float(params.get("norm_halfwidth_ps") or 1_000_000.0)
    zero = params.get("zero_delay_ps")
    z_fixed = None
    source = "fitted"
    if zero is not None and math.isfinite(float(zero)):
        z_fixed, source = float(zero), "parameter"
    elif calibrations.get("hbt_zero_delay_ps") is not None:
        z_fixed, source = float(calibrations["hbt_zero_delay_ps"]), "calibration"
    centre = z_fixed if z_fixed is not None else 0.0
    fit_lo = centre - fit_range
    fit_hi = centre + fit_range
    norm = (max(norm_delay - norm_half, 0.0), norm_delay + norm_half)

    def fit(windows):
        return g2_cw_fit(
            lag,
            y,
            irf=sigma,
            normalise_by=norm,
            fit_range_ps=(fit_lo, fit_hi),
            tau_offset_ps=z_fixed,
            data="counts",
            exclude_ps=windows,
        )

    exclude = bool(params.get("exclude_crosstalk", True))
    windows: list[tuple[float, float]] = []
    xt_source = "off"
    if exclude and calibrations.get("crosstalk_windows_ps") is not None:
        windows = [(centre + lo, centre + hi) for lo, hi in calibrations["crosstalk_windows_ps"]]
        xt_source = "calibration"
        res = fit(windows)
    else:
        res = fit([])
        if exclude:
            mu = g2_cw_model(lag, res.baseline, res.C, res.tau0_ps, res.tau_offset_ps, sigma)
            inside = (lag >= fit_lo) & (lag <= fit_hi)
            z = (y - mu) / np.sqrt(np.maximum(mu, 1.0))
            windows = _clusters(lag, inside & (z > CROSSTALK_Z), CROSSTALK_PAD_PS)
            xt_source = "data"
            if windows:
                res = fit(windows)
    values: dict[str, Any] = {
        "excitation": "cw",
        **{k: v for k, v in res.as_dict().items() if not k.endswith("_err")},
        "tau0_ns": res.tau0_ps * 1e-3,
        "zero_delay_ps": res.tau_offset_ps,
        "zero_delay_source": source,
        "crosstalk_windows_ps": np.asarray(windows, dtype=np.float64).reshape(-1, 2),
        "crosstalk_source": xt_source,
        "fit_lag_ps": res.lag_ps,
        "fit_g2": res.g2,
        "fit_model_g2": res.model_g2,
    }
    errors = {
        "g2_0": res.g2_0_err,
        "C": res.C_err,
        "tau0_ps": res.tau0_ps_err,
        "tau0_ns": res.tau0_ps_err * 1e-3,
        "tau_offset_ps": res.tau_offset_ps_err,
        "baseline": res.baseline_err,
    }
    summary = {
        "excitation": "cw",
        "g2_0": res.g2_0,
        "g2_0_err": res.g2_0_err,
        "tau0_ns": res.tau0_ps * 1e-3,
        "tau0_ns_err": res.tau0_ps_err * 1e-3,
        "C": res.C,
        "C_err": res.C_err,
        "converged": res.converged,
        "identifiable": res.identifiable,
        "chi2_red": res.chi2_red,
        "gof_p_value": res.gof_p_value,
        "zero_delay_ps": res.tau_offset_ps,
        "crosstalk_windows_ps": values["crosstalk_windows_ps"].tolist(),
    }
    if res.message:
        summary["message"] = res.message
    return values, errors, summary


def figure_cw(values: dict[str, Any], path: Path, title: str = "") -> Path:
    """CW antibunching like Baronnier et al. Fig. 6: the normalised histogram around the zero
    delay with the IRF-convolved fit, g2(0) and tau0 with their errors, excluded crosstalk
    windows shaded."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    z = float(values["zero_delay_ps"])
    lag = (np.asarray(values["fit_lag_ps"], float) - z) * 1e-3
    ax.step(lag, np.asarray(values["fit_g2"], float), where="mid", lw=0.8, color="tab:blue")
    ax.plot(lag, np.asarray(values["fit_model_g2"], float), color="k", lw=1.2, label="fit")
    for lo, hi in np.asarray(values.get("crosstalk_windows_ps", []), float).reshape(-1, 2):
        ax.axvspan((lo - z) * 1e-3, (hi - z) * 1e-3, color="tab:red", alpha=0.15)
    ax.axhline(1.0, color="0.6", lw=0.8, ls="--")
    ax.axhline(0.5, color="tab:red", lw=0.8, ls=":")
    ax.set_xlim(max(lag.min(), -100.0), min(lag.max(), 100.0))
    ax.set_xlabel("delay τ − zero delay (ns)")
    ax.set_ylabel("g²(τ)")
    g_err = float(values.get("g2_0_err", math.nan))
    t_err = float(values.get("tau0_ns_err", math.nan))
    ax.text(
        0.02,
        0.05,
        f"g²(0) = {float(values['g2_0']):.3f} ± {g_err:.3f} (CW, IRF-free)\n"
        f"τ0 = {float(values['tau0_ns']):.2f} ± {t_err:.2f} ns\n"
        f"χ²_red = {float(values['chi2_red']):.2f}",
        transform=ax.transAxes,
        va="bottom",
        fontsize=8,
    )
    ax.legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
