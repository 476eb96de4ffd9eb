"""Long-delay blinking bunching of an HBT experiment (D'Amato et al. Fig. 4d).

g2 on log bins from 10 ns to 1 s (:mod:`hbtscope.analysis.correlation_log`; bunching 1.18
below 10 us, back to 1 by 100 us in D'Amato et al.), averaged over a short-delay and a
long-delay window, and fitted by the telegraph (two-state blinking) model
``g2 = A [1 + C_b exp(-tau / tau_b)]`` integrated over each log bin with the finite-duration
weight (T - tau).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from hbtscope.analysis._fisher_scoring import _ml_fit
from hbtscope.analysis._log_pairs import add_pairs
from hbtscope.analysis._validate import as_edges_ps, as_tags
from hbtscope.analysis.correlation_log import (
    expected_pairs,
    g2_log_variance,
    log_edges,
    tau_centres,
)
from hbtscope.analysis.g2_cw import _ro, _scalars

__all__ = ["G2LongResult", "g2_long_delays"]


# ======================================================================================
# long delays: blinking bunching on log bins
# ======================================================================================


@dataclass(frozen=True, eq=False)
class G2LongResult:
    """Result of :func:`g2_long_delays`.

    ``tau_ps``, ``g2``, ``g2_err``, ``counts``, ``expected``, ``edges_ps``: the log-binned
    g2 (``g2 = counts / expected``, ``g2_err`` from :func:`g2_log_variance`). ``g2_short``,
    ``g2_long``: pooled g2 (sum counts / sum expected) over the short- and long-delay
    windows with Poisson errors (D'Amato et al.: 1.18 below 10 us, ~1 beyond 100 us).
    ``C_blink``, ``tau_blink_ps``, ``fit_baseline``: telegraph-model fit
    g2 = A [1 + C_b exp(-tau/tau_b)] over tau >= ``fit_min_ps`` (NaN when not fitted).
    """

    g2_short: float
    g2_short_err: float
    g2_long: float
    g2_long_err: float
    short_window_ps: tuple[float, float]
    long_window_ps: tuple[float, float]
    C_blink: float
    C_blink_err: float
    tau_blink_ps: float
    tau_blink_ps_err: float
    fit_baseline: float
    fit_baseline_err: float
    fit_chi2_red: float
    fit_converged: bool
    tau_ps: np.ndarray = field(repr=False)
    g2: np.ndarray = field(repr=False)
    g2_err: np.ndarray = field(repr=False)
    counts: np.ndarray = field(repr=False)
    expected: np.ndarray = field(repr=False)
    edges_ps: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, float | int | str | bool]:
        out = _scalars(self)
        for key in ("short_window_ps", "long_window_ps"):
            lo, hi = getattr(self, key)
            out[key.replace("_ps", "_lo_ps")] = float(lo)
            out[key.replace("_ps", "_hi_ps")] = float(hi)
        return out


def _telegraph_bins(
    a: np.ndarray, b: np.ndarray, T: float, tau_b: float
) -> tuple[np.ndarray, np.ndarray]:
    """integral_a^b (T - tau) exp(-tau/tau_b) d tau (0 <= a < b <= T), and its derivative
    with respect to log tau_b. Antiderivative: exp(-tau/tau_b) (tau_b^2 - tau_b (T - tau))."""

    def prim(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = np.exp(-t / tau_b)
        p = e * (tau_b**2 - tau_b * (T - t))
        # d/dtau_b: e*(t/tau_b^2)*(tau_b^2 - tau_b(T-t)) + e*(2 tau_b - (T - t))
        dp = e * (t / tau_b**2) * (tau_b**2 - tau_b * (T - t)) + e * (2 * tau_b - (T - t))
        return p, dp * tau_b

    pa, da = prim(a)
    pb, db = prim(b)
    return pb - pa, db - da


def g2_long_delays(
    t1_ps: np.ndarray,
    t2_ps: np.ndarray,
    duration_ps: float,
    *,
    edges_ps: np.ndarray | None = None,
    short_window_ps: tuple[float, float] = (1e6, 1e7),
    long_window_ps: tuple[float, float] = (1e8, 1e9),
    fit: bool = True,
    fit_min_ps: float = 1e6,
    max_iter: int = 200,
) -> G2LongResult:
    """g2 from 10 ns to 1 s on log bins, blinking bunching levels and telegraph fit.

    Parameters
    ----------
    t1_ps, t2_ps
        Sorted int64 tags of the two detectors.
    duration_ps
        Length T of the common recording interval.
    edges_ps
        Lag bin edges (default ``log_edges(10_000, 1e12, 10)``: 10 ns .. 1 s).
    short_window_ps, long_window_ps
        Lag windows whose pooled g2 is reported as ``g2_short`` (below 10 us, above the
        antibunching / pulse comb) and ``g2_long`` (~100 us - 1 ms).
    fit, fit_min_ps
        Fit the telegraph model to the bins with lower edge >= fit_min_ps: weighted least
        squares on the pair counts, mu_k = A (E_k + C_b X_k), E_k the expected
        uncorrelated pairs, X_k the same integral weighted by exp(-tau/tau_b), with the
        variance of :func:`g2_log_variance` (the pair counts of wide bins are far from
        Poisson). Bins are treated as independent; the long-lag bins share the slow shot
        noise, so ``fit_baseline_err`` is optimistic (C_b and tau_b, set by the short-lag
        bins, are not affected).
    """
    edges = as_edges_ps(log_edges(10_000, 1e12, 10) if edges_ps is None else edges_ps)
    t1 = as_tags(t1_ps, "t1_ps")
    t2 = as_tags(t2_ps, "t2_ps")
    T = float(duration_ps)
    if not T > 0:
        raise ValueError(f"duration_ps must be > 0, got {duration_ps!r}")
    counts = np.zeros(edges.size - 1, dtype=np.int64)
    add_pairs(t1, t2, edges, counts)
    exp = expected_pairs(edges, t1.size, t2.size, T)
    tau = tau_centres(edges)
    with np.errstate(divide="ignore", invalid="ignore"):
        g2 = np.where(exp > 0, counts / exp, np.nan)
    var = g2_log_variance(edges, t1.size, t2.size, T, np.nan_to_num(np.maximum(g2, 0.0)))
    g2_err = np.sqrt(var)

    def pooled(win: tuple[float, float]) -> tuple[float, float]:
        lo, hi = float(win[0]), float(win[1])
        m = (edges[:-1] >= lo) & (edges[1:] <= hi) & (exp > 0)
        if not m.any():
            return math.nan, math.nan
        n, e = float(counts[m].sum()), float(exp[m].sum())
        # pooled bin [lo', hi'): its own shot-noise + slow-noise variance
        sub = np.array([edges[:-1][m][0], edges[1:][m][-1]])
        v = g2_log_variance(sub, t1.size, t2.size, T, n / e)[0]
        return n / e, math.sqrt(v)

    gs, gs_err = pooled(short_window_ps)
    gl, gl_err = pooled(long_window_ps)

    Cb = Cb_err = tb = tb_err = A = A_err = chi2r = math.nan
    conv = False
    a_e = edges[:-1].astype(np.float64)
    b_e = edges[1:].astype(np.float64)
    m = (a_e >= fit_min_ps) & (b_e <= T) & (exp > 0)
    if fit and m.sum() >= 5 and t1.size and t2.size:
        a, b, n, E = a_e[m], b_e[m], counts[m].astype(np.float64), exp[m]
        # weighted least squares on the pair counts with the variance of
        # g2_log_variance (shot noise + slow shot noise of wide bins), not Poisson
        wts = 1.0 / np.maximum(E**2 * var[m], 1.0)
        norm = t1.size * t2.size / T**2

        def fun(th: np.ndarray):
            A_, C_, lt = th
            X, dX = _telegraph_bins(a, b, T, math.exp(lt))
            X, dX = norm * X, norm * dX
            mu = A_ * (E + C_ * X)
            J = np.column_stack((E + C_ * X, A_ * X, A_ * C_ * dX))
            return mu, J

        # initial values from the data: excess at the first fitted bins, 1/e time
        ex = g2[m] - 1.0
        C0 = float(max(ex[: max(1, ex.size // 10)].mean(), 1e-3))
        below = np.flatnonzero(ex < C0 / math.e)
        t0 = float(tau[m][below[0]]) if below.size else float(tau[m][ex.size // 2])
        th0 = np.array([1.0, C0, math.log(max(t0, a[0]))])
        lower = np.array([1e-6, -1.0, math.log(0.1 * a[0])])
        upper = np.array([np.inf, np.inf, math.log(10.0 * T)])
        try:
            out = _ml_fit(fun, n, th0, lower, upper, poisson=False, weights=wts, max_iter=max_iter)
            sd = np.sqrt(np.maximum(np.diag(out.cov), 0.0))
            A, Cb, tb = float(out.theta[0]), float(out.theta[1]), float(math.exp(out.theta[2]))
            A_err, Cb_err, tb_err = float(sd[0]), float(sd[1]), float(tb * sd[2])
            dof = n.size - 3
            chi2r = float(np.sum(wts * (n - out.mu) ** 2) / max(dof, 1))
            conv = out.converged
        except (ValueError, np.linalg.LinAlgError):
            pass

    edges_ro = edges.copy()
    edges_ro.setflags(write=False)
    counts_ro = counts.copy()
    counts_ro.setflags(write=False)
    return G2LongResult(
        g2_short=gs,
        g2_short_err=gs_err,
        g2_long=gl,
        g2_long_err=gl_err,
        short_window_ps=(float(short_window_ps[0]), float(short_window_ps[1])),
        long_window_ps=(float(long_window_ps[0]), float(long_window_ps[1])),
        C_blink=Cb,
        C_blink_err=Cb_err,
        tau_blink_ps=tb,
        tau_blink_ps_err=tb_err,
        fit_baseline=A,
        fit_baseline_err=A_err,
        fit_chi2_red=chi2r,
        fit_converged=conv,
        tau_ps=_ro(tau),
        g2=_ro(g2),
        g2_err=_ro(g2_err),
        counts=counts_ro,
        expected=_ro(exp),
        edges_ps=edges_ro,
    )
