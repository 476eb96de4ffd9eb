"""Mean arrival time: the fast lifetime estimator, written once.

* :func:`mean_arrival_time`: mean delay of a list of photons (optionally per group, e.g.
  per intensity-trace bin: the FLID estimator);
* :func:`histogram_mean_delay`: the same from TCSPC histograms (one or a stack),
  background subtracted, ``sum_k (t_k - t0)(n_k - B) / sum_k (n_k - B)``, with the standard
  error of that mean (``return_error``); the FLIM fallback
  (:func:`hbtscope.analysis.flim.mean_arrival_lifetime`) and the starting values of the
  decay fits are built on it;
* :func:`lifetime_from_mean`: tau from the mean of a truncated mono-exponential.

For a mono-exponential decay without background in an untruncated window the mean delay
after the excitation is tau (O'Connor & Phillips, *Time-correlated single photon counting*,
1984, ch. 7: "method of moments").
"""

from __future__ import annotations

import numpy as np

__all__ = ["histogram_mean_delay", "lifetime_from_mean", "mean_arrival_time"]


def mean_arrival_time(
    delays_ps: np.ndarray,
    groups: np.ndarray | None = None,
    n_groups: int | None = None,
    *,
    t0_ps: float = 0.0,
) -> float | np.ndarray:
    """Mean photon delay minus ``t0_ps`` (e.g. the IRF centroid): the fast lifetime.

    Negative delays (no preceding sync, see :func:`hbtscope.analysis.lifetime.photon_delays`)
    are ignored. With ``groups`` (one non-negative integer label per photon, e.g. its
    intensity-trace bin) the mean is computed per group by ``bincount`` (``n_groups`` groups,
    NaN where empty): the lifetime-per-bin / FLID estimator. For a mono-exponential decay
    without background and an untruncated range the result is tau; see
    :func:`lifetime_from_mean` for the truncation correction.
    """
    d = np.asarray(delays_ps)
    if d.ndim != 1:
        raise ValueError("delays_ps must be 1-D")
    ok = d >= 0
    if groups is None:
        if not ok.any():
            return float("nan")
        return float(np.mean(d[ok].astype(np.float64))) - float(t0_ps)
    g = np.asarray(groups)
    if g.shape != d.shape:
        raise ValueError("groups must have the same shape as delays_ps")
    if not np.issubdtype(g.dtype, np.integer):
        raise TypeError("groups must be integer labels")
    ok &= g >= 0
    ng = int(g[ok].max()) + 1 if n_groups is None and ok.any() else int(n_groups or 0)
    ok &= g < ng
    n = np.bincount(g[ok], minlength=ng).astype(np.float64)
    s = np.bincount(g[ok], weights=d[ok].astype(np.float64), minlength=ng)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s / n - float(t0_ps)


def histogram_mean_delay(
    counts: np.ndarray,
    bin_ps: float,
    *,
    t0_ps: float = 0.0,
    background: float | np.ndarray = 0.0,
    times_ps: np.ndarray | None = None,
    return_error: bool = False,
):
    """Mean delay of histograms minus ``t0_ps``: ``m = sum (t_k - t0)(n_k - B) / sum (n_k - B)``.

    ``counts``: one histogram or a stack ``(..., K)``; ``t_k`` the bin centres
    ``(k + 1/2) bin_ps`` unless ``times_ps`` (K values, e.g. times modulo the period measured
    from the IRF) are given; ``background`` B per bin (scalar or one per histogram). Applied
    to an IRF histogram it gives the IRF centroid. NaN where no signal is left. With
    ``return_error``: also the standard error of the mean, ``sqrt(sum n_k (t_k - m)^2) /
    sum (n_k - B)`` (Poisson counts). Returns floats for one histogram, arrays for a stack.
    """
    Y = np.asarray(counts, dtype=np.float64)
    t = (
        (np.arange(Y.shape[-1]) + 0.5) * float(bin_ps)
        if times_ps is None
        else np.asarray(times_ps, dtype=np.float64)
    ) - float(t0_ps)
    b = np.asarray(background, dtype=np.float64)
    if b.ndim and b.ndim == Y.ndim - 1:
        b = b[..., None]
    w = Y - b
    n_sig = w.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(n_sig > 0, (w * t).sum(axis=-1) / n_sig, np.nan)
        err = np.sqrt((Y * (t - m[..., None]) ** 2).sum(axis=-1)) / n_sig
    err = np.where(n_sig > 0, err, np.nan)
    if m.ndim == 0:
        m, err = float(m), float(err)
    return (m, err) if return_error else m


def lifetime_from_mean(mean_ps: float | np.ndarray, *, window_ps: float | None = None):
    """Lifetime from the mean delay after t0 of a mono-exponential decay.

    Without ``window_ps`` this is the identity (``<t> = tau``). With a detection window
    [t0, t0 + W) the mean of the truncated exponential is
    ``<t> = tau - W / (exp(W/tau) - 1)``, inverted here by Newton iterations (vectorised,
    NaN where ``<t>`` is not in (0, W/2)).
    """
    m = np.asarray(mean_ps, dtype=np.float64)
    if window_ps is None:
        return m if m.ndim else float(m)
    W = float(window_ps)
    ok = (m > 0) & (m < 0.5 * W)
    tau = np.where(ok, m, np.nan)
    for _ in range(60):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            z = W / tau
            em1 = np.expm1(z)
            f = tau - W / em1 - m
            # d/dtau [W / (e^z - 1)] = W e^z z / (tau (e^z - 1)^2)
            df = 1.0 - W * np.exp(z) * z / (tau * em1 * em1)
            df = np.where(np.isfinite(df), df, 1.0)
            step = f / df
        tau = np.where(ok, np.clip(tau - step, 1e-6 * m, np.inf), np.nan)
        if np.all(~ok | (np.abs(step) <= 1e-12 * np.abs(tau))):
            break
    return tau if tau.ndim else float(tau)
