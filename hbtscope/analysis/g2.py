"""g2(0) from a pulsed Hanbury Brown-Twiss coincidence histogram.

Under pulsed excitation with period T the coincidence histogram is a comb of peaks at
tau = k*T. The area of the k = 0 peak relative to the k != 0 ("side") peaks is g2(0).

Method (see :func:`g2_pulsed`):

* peak areas M_k are integrated over [k*T - W/2, k*T + W/2);
* the reference is the mean of the side peaks around tau ~ +-10 us rather than the
  k = +-1 peaks, because blinking/shelving bunches the near side peaks above 1
  (Pierini et al.: normalisation at 10 us);
* the accidental background under each peak, M_b, is measured between the peaks and
  removed with one of the corrections of D'Amato et al. SI section IV (background);
* next to the linearised sigma, a confidence interval from the conditional binomial of
  the centre-peak counts given centre + reference side-peak counts (Clopper-Pearson),
  which stays honest at zero and few coincidences (see :func:`g2_pulsed`, "Interval").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import special

from hbtscope.analysis._result import scalar_dict

__all__ = [
    "BACKGROUND_METHODS",
    "NORM_DELAY_PS",
    "NORM_HALFWIDTH_PS",
    "G2PulsedResult",
    "g2_pulsed",
]

BackgroundMethod = Literal["linear", "sqrt", "none", "seed001"]
BACKGROUND_METHODS: tuple[str, ...] = ("linear", "sqrt", "none")
# Old name of "sqrt" (run files written before 2026-12 carry it): still accepted.
_METHOD_ALIASES = {"seed001": "sqrt"}
CI_LEVEL = 0.682689492137086  # two-sided 1-sigma
UPPER_LEVEL = 0.977249868051821  # one-sided 2-sigma


#: The side peaks that normalise g2 lie within NORM_DELAY_PS +- NORM_HALFWIDTH_PS of zero delay
#: (near 10 µs, where the blinking bunching of the near peaks has decayed: Pierini et al.).
#: The one default of the library, the g2 measurement and its figure.
NORM_DELAY_PS = 10_000_000
NORM_HALFWIDTH_PS = 1_500_000


@dataclass(frozen=True, eq=False)
class G2PulsedResult:
    """Result of :func:`g2_pulsed`. Areas are in coincidence counts.

    Attributes
    ----------
    g2_0, g2_0_err
        g2(0) = centre_area / side_mean and its 1-sigma uncertainty: the larger of the
        linearised Poisson sigma and the distances from the interval's centre (the linear
        estimate, clipped at 0) to the ends of ``g2_0_ci``,
        so it is never 0 and ``g2_0 + 2 g2_0_err`` is close to ``g2_0_upper`` also when
        the centre peak is empty. With the linear correction g2_0 can be negative (a
        centre below its background): honest, not clipped.
    g2_0_ci
        Central 68.27 % confidence interval of g2(0) >= 0 (Clopper-Pearson, conditional
        binomial of the centre counts given centre + reference counts, background
        included; see :func:`g2_pulsed`).
    g2_0_upper
        One-sided 97.72 % upper limit of g2(0) (the "2 sigma" upper limit): the number a
        purity cut "g2(0) < 0.5" should use at low counts.
    centre_counts, reference_counts
        Raw (uncorrected) coincidences in the centre peak and summed over the reference
        side peaks: the counts the interval is built on.
    centre_area_clipped
        True when the square-root correction met M < M_b and set the centre area to 0
        (its sigma is then that of the linear correction).
    method
        Background correction used ("linear", "sqrt" or "none").
    centre_area, centre_area_err
        Background-corrected area of the k = 0 peak and its uncertainty.
    centre_background
        M_b of the k = 0 peak (accidentals expected in its window; 0 for "none").
    side_mean, side_mean_err
        Mean corrected area of the reference side peaks and its counting uncertainty.
        The detector shot noise common to all peaks (fluctuation of the singles) is not
        included; it cancels to first order in g2(0).
    n_side_peaks
        Number of reference side peaks averaged (both signs of tau).
    period_ps, window_ps, background_window_ps
        T, W and the width of one background window.
    norm_delay_ps, norm_halfwidth_ps, zero_delay_ps
        Reference-band centre and half width; position of the k = 0 peak.
    peak_index, peak_delays_ps, peak_areas_norm
        For every peak that could be analysed: k, its delay (zero_delay + k*T) and its
        corrected area divided by side_mean (g2 versus k, for plotting).
    """

    g2_0: float
    g2_0_err: float
    g2_0_ci: tuple[float, float]
    g2_0_upper: float
    centre_counts: float
    reference_counts: float
    centre_area_clipped: bool
    method: str
    centre_area: float
    centre_area_err: float
    centre_background: float
    side_mean: float
    side_mean_err: float
    n_side_peaks: int
    period_ps: float
    window_ps: float
    background_window_ps: float
    norm_delay_ps: float
    norm_halfwidth_ps: float
    zero_delay_ps: float
    peak_index: np.ndarray = field(repr=False)
    peak_delays_ps: np.ndarray = field(repr=False)
    peak_areas_norm: np.ndarray = field(repr=False)

    def as_dict(self) -> dict[str, float | int | str | bool | list[float]]:
        """All scalar fields as plain Python scalars (arrays are left out)."""
        return scalar_dict(self)


def _bin_geometry(lag_ps: np.ndarray) -> tuple[float, float]:
    """Left edge of the first bin and the bin width, from uniformly spaced bin centres."""
    if lag_ps.size < 2:
        raise ValueError("the histogram needs at least two bins")
    step = np.diff(lag_ps)
    bw = float(lag_ps[-1] - lag_ps[0]) / (lag_ps.size - 1)
    if bw <= 0 or np.max(np.abs(step - bw)) > 1e-6 * bw:
        raise ValueError("lag_ps must be uniformly spaced, ascending bin centres")
    return float(lag_ps[0]) - 0.5 * bw, bw


class _Integrator:
    """Window sums of a histogram with fractional overlap of partially covered bins.

    The counts of a bin are taken as uniformly spread over the bin, so the cumulative
    count C(x) is piecewise linear and a window sum is C(b) - C(a). Windows whose edges
    fall on bin edges are summed exactly.
    """

    def __init__(self, lag_ps: np.ndarray, counts: np.ndarray) -> None:
        self.edge0, self.bw = _bin_geometry(lag_ps)
        self.n = lag_ps.size
        self.lo = self.edge0
        self.hi = self.edge0 + self.n * self.bw
        self.counts = counts.astype(np.float64)
        self.cum = np.concatenate(([0.0], np.cumsum(self.counts)))

    def _cumulative(self, x: np.ndarray) -> np.ndarray:
        f = (x - self.edge0) / self.bw
        nearest = np.round(f)
        f = np.where(np.abs(f - nearest) < 1e-9, nearest, f)  # snap to bin edges
        i = np.clip(np.floor(f).astype(np.int64), 0, self.n - 1)
        return self.cum[i] + self.counts[i] * np.clip(f - i, 0.0, 1.0)

    def sum(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._cumulative(np.asarray(b, float)) - self._cumulative(np.asarray(a, float))


def _correct(
    m: np.ndarray, mb: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Corrected areas M_c, the partial derivatives dM_c/dM, dM_c/dM_b, and a clip mask."""
    if method == "none":
        return m.copy(), np.ones_like(m), np.zeros_like(m), np.zeros(m.shape, bool)
    if method == "linear":
        return m - mb, np.ones_like(m), -np.ones_like(m), np.zeros(m.shape, bool)
    # sqrt: M_c = (sqrt(M) - sqrt(M_b))^2 where M >= M_b, else 0 (clipped). Where it clips,
    # or where M = 0, the derivative of the square root is useless for the error (0 or
    # infinite), so the linear correction's derivatives (1, -1) carry the uncertainty.
    sm, sb = np.sqrt(np.maximum(m, 0.0)), np.sqrt(np.maximum(mb, 0.0))
    ok = (m >= mb) & (sm > 0)
    clipped = m < mb
    mc = np.where(m >= mb, (sm - sb) ** 2, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dm = np.where(ok, 1.0 - sb / sm, 1.0)
        # With M_b = 0 its Poisson variance estimate is 0 too; take dM_c/dM_b = 0 there.
        db = np.where(ok & (sb > 0), 1.0 - sm / sb, np.where(ok, 0.0, -1.0))
    return mc, dm, db, clipped


def _beta_ppf(q: float, a: float, b: float) -> float:
    """Quantile of Beta(a, b) with the Clopper-Pearson edge cases (a = 0 -> 0, b = 0 -> 1)."""
    if a <= 0:
        return 0.0
    if b <= 0:
        return 1.0
    return float(special.betaincinv(a, b, q))


def _g2_from_fraction(pi: float, n_ref: int, b0: float, b_ref: float, s: float) -> float:
    """g2 such that the centre's share of centre + reference counts equals ``pi``.

    Expected counts: centre b0 + g s, reference b_ref + n_ref s, so
    pi = (b0 + g s) / (b0 + g s + b_ref + n_ref s)  =>
    g = (pi (b_ref + n_ref s) / (1 - pi) - b0) / s.
    """
    if pi >= 1.0:
        return math.inf
    return (pi * (b_ref + n_ref * s) / (1.0 - pi) - b0) / s


def g2_pulsed(
    lag_ps: np.ndarray,
    counts: np.ndarray,
    period_ps: float,
    *,
    window_ps: float | None = None,
    norm_delay_ps: float = NORM_DELAY_PS,
    norm_halfwidth_ps: float = NORM_HALFWIDTH_PS,
    background: BackgroundMethod = "linear",
    background_window_ps: float | None = None,
    zero_delay_ps: float = 0.0,
    exclude_ps: tuple[tuple[float, float], ...] | list = (),
) -> G2PulsedResult:
    r"""g2(0) of a pulsed HBT coincidence histogram, normalised to the side peaks at ~10 us.

    Peaks. Peak k (any integer, zero_delay_ps + k*T) has raw area M_k = counts in
    [k*T - W/2, k*T + W/2), W = ``window_ps`` (default 0.8*T, 0 < W <= T). Bins that are
    only partly inside a window contribute the overlapping fraction of their counts
    (counts assumed uniform within a bin), so W and T need not be multiples of the bin
    width; the result is exact when the window edges fall on bin edges.

    Background (D'Amato et al. SI section IV). Two background windows of width
    B = ``background_window_ps`` (default 0.1*T, W + B <= T) centred at (k - 1/2)*T and
    (k + 1/2)*T, with raw counts n_-, n_+; scaled to the peak window:

        M_b,k = (W / B) * (n_- + n_+) / 2

    Corrected area, ``background``:

    * ``"linear"``:  M_c = M - M_b  (unbiased for uniform uncorrelated accidentals,
      i.e. dark counts x signal and dark x dark);
    * ``"sqrt"``: M_c = M + M_b - 2*sqrt(M*M_b) = (sqrt(M) - sqrt(M_b))^2 where
      M >= M_b, else 0 and ``centre_area_clipped`` (D'Amato et al. SI section IV; it assumes
      the accidentals add in amplitude, and is biased low for uniform accidentals -- the
      old name ``"seed001"`` is still accepted);
    * ``"none"``:    M_c = M.

    Normalisation (Pierini et al.: normalisation at 10 us). Blinking makes the near side peaks
    exceed 1, so the reference S is the mean M_c of all side peaks with
    | |k|*T - norm_delay_ps | <= norm_halfwidth_ps, on both signs of tau:

        g2(0) = A0 / S,   A0 = M_c,0,   S = mean_ref(M_c,k)

    All reference peaks must be inside the histogram, except that the outermost one on
    each side is dropped if its (peak or background) window is cut by the histogram edge
    (e.g. when max_lag = norm_delay + norm_halfwidth); otherwise ValueError.

    Uncertainty. Poisson statistics, var(M) = M, and var(n) = n for each background window,
    i.e. var(M_b) = M_b * W / (2B) for a two-window average. These are propagated to first
    order through the correction (for sqrt through its derivatives
    dM_c/dM = 1 - sqrt(M_b/M), dM_c/dM_b = 1 - sqrt(M/M_b); where it clips, through the
    linear ones), keeping the covariance of background windows shared by neighbouring
    peaks. For independent A0 and S this is

        sigma_g^2 = sigma_A0^2 / S^2 + A0^2 * sigma_S^2 / S^4 .

    Interval. The linearised sigma is useless at few counts (0 +- 0 for an empty centre).
    Given the n_c = M_0 + sum_ref M_k coincidences in the centre and reference peaks, the
    centre's share is binomial, M_0 ~ Bin(n_c, pi), with

        pi = (b_0 + g s) / (b_0 + g s + b_ref + n_ref s),

    b_0 and b_ref the background expected in the centre and the reference windows (the
    measured M_b, 0 for ``"none"``) and s the background-free side-peak area (the linear
    estimate). The Clopper-Pearson interval of pi (Clopper & Pearson 1934; central,
    15.87 % in each tail; an empty centre gives the one-sided bound) maps monotonically to
    g; the lower end is clipped at g = 0. The background's own counting error is added in
    quadrature to the distance of each end from g2_0 (linearised, it is small when the
    background windows hold many counts). ``g2_0_upper`` is the one-sided 97.72 %
    Clopper-Pearson limit, treated the same way. The interval is that of the linear
    correction's model whatever ``background`` (for ``"none"`` without background);
    ``g2_0_err`` is at least the distance from max(linear g2, 0) to either end. Coverage
    of both is measured by simulation in tests/analysis/test_g2_intervals.py at 0-1000
    centre counts.

    Parameters
    ----------
    lag_ps, counts
        Histogram as returned by :func:`hbtscope.analysis.correlate` (uniform bins).
    period_ps
        Excitation period T in ps.
    window_ps, norm_delay_ps, norm_halfwidth_ps, background, background_window_ps
        See above.
    zero_delay_ps
        Delay of the k = 0 peak (electronic/cable offset between channels), default 0;
        :func:`hbtscope.analysis.find_zero_delay` finds it from the side peaks.
    exclude_ps
        Sub-windows (lo, hi), as offsets from each peak's centre, left out of *every*
        peak window alike (breakdown-flash crosstalk peaks near the zero delay, from
        :func:`hbtscope.analysis.find_crosstalk_peaks`). The peak window then has the
        width W_eff = W - (excluded width inside it), which also scales the background.

    Returns
    -------
    G2PulsedResult

    Raises
    ------
    ValueError
        Bad parameters, non-uniform bins or a histogram not reaching the reference peaks.
        A histogram whose reference side peaks hold no signal above their background (no
        emitter, too short an acquisition) is not an error: g2_0 is NaN, g2_0_err and the
        upper ends of the interval are infinite (nothing is measured) -- never 0 +- 0.
    """
    lag = np.asarray(lag_ps, dtype=np.float64)
    cnt = np.asarray(counts, dtype=np.float64)
    if lag.ndim != 1 or cnt.shape != lag.shape:
        raise ValueError("lag_ps and counts must be 1-D arrays of the same length")
    background = _METHOD_ALIASES.get(background, background)
    if background not in BACKGROUND_METHODS:
        raise ValueError(f"background must be one of {BACKGROUND_METHODS}, got {background!r}")
    T = float(period_ps)
    if not T > 0:
        raise ValueError(f"period_ps must be > 0, got {period_ps!r}")
    W = 0.8 * T if window_ps is None else float(window_ps)
    if not 0 < W <= T:
        raise ValueError(f"window_ps must satisfy 0 < window_ps <= period_ps, got {W}")
    B = 0.1 * T if background_window_ps is None else float(background_window_ps)
    use_bg = background != "none"
    if use_bg and not (B > 0 and W + B <= T * (1 + 1e-12)):
        raise ValueError(
            f"background_window_ps must be > 0 with window_ps + background_window_ps <= "
            f"period_ps (got W={W}, B={B}, T={T}) so background and peak windows do not overlap"
        )
    D, H = float(norm_delay_ps), float(norm_halfwidth_ps)
    if not (D > 0 and H >= 0):
        raise ValueError("norm_delay_ps must be > 0 and norm_halfwidth_ps >= 0")
    z = float(zero_delay_ps)

    integ = _Integrator(lag, cnt)
    # sub-windows excluded from every peak, clipped to the peak window and merged
    cuts: list[list[float]] = []
    for pair in sorted((float(a), float(b)) for a, b in exclude_ps):
        lo, hi = max(pair[0], -0.5 * W), min(pair[1], 0.5 * W)
        if not (math.isfinite(pair[0]) and math.isfinite(pair[1]) and pair[0] < pair[1]):
            raise ValueError(f"exclude_ps windows must be finite (lo, hi) with lo < hi, got {pair}")
        if hi <= lo:
            continue
        if cuts and lo <= cuts[-1][1]:
            cuts[-1][1] = max(cuts[-1][1], hi)
        else:
            cuts.append([lo, hi])
    w_eff = W - sum(hi - lo for lo, hi in cuts)
    if not w_eff > 0:
        raise ValueError("exclude_ps leaves nothing of the peak window")

    # Candidate peaks: all k whose peak (and background) windows lie inside the histogram.
    reach = 0.5 * T + 0.5 * B if use_bg else 0.5 * W
    k_lo = math.ceil((integ.lo - z + reach) / T - 1e-9)
    k_hi = math.floor((integ.hi - z - reach) / T + 1e-9)
    if k_hi < k_lo or not (k_lo <= 0 <= k_hi):
        raise ValueError("the histogram does not contain the k = 0 peak with its windows")
    k = np.arange(k_lo, k_hi + 1)
    centre = z + k * T
    m = integ.sum(centre - 0.5 * W, centre + 0.5 * W)
    for lo, hi in cuts:
        m = m - integ.sum(centre + lo, centre + hi)

    # Reference band, required on both signs of tau.
    k_ref_max = math.floor((D + H) / T + 1e-9)
    k_ref_min = max(1, math.ceil((D - H) / T - 1e-9))
    if k_ref_max < k_ref_min:
        raise ValueError(
            f"no side peak lies within norm_delay_ps +- norm_halfwidth_ps ({D} +- {H} ps) "
            f"for period {T} ps"
        )
    for sign in (-1, 1):
        outer_needed = k_ref_max - 1  # the outermost may be truncated by the edge
        have = k_hi if sign > 0 else -k_lo
        if have < max(outer_needed, k_ref_min):
            raise ValueError(
                f"the histogram does not reach the reference side peaks at tau = "
                f"{'+' if sign > 0 else '-'}({D} +- {H}) ps: it must extend to about "
                f"{sign * (D + H)} ps around zero delay (max_lag_ps >= norm_delay_ps + "
                f"norm_halfwidth_ps)"
            )
    abs_k = np.abs(k)
    ref = (abs_k >= k_ref_min) & (abs_k <= k_ref_max)
    n_ref = int(ref.sum())

    # Background windows: index w = j - k_lo for the window centred at (j - 1/2) T,
    # j = k_lo .. k_hi + 1; peak k uses windows (k - k_lo) and (k - k_lo + 1).
    if use_bg:
        j = np.arange(k_lo, k_hi + 2)
        wc = z + (j - 0.5) * T
        n_w = integ.sum(wc - 0.5 * B, wc + 0.5 * B)
        scale = w_eff / (2.0 * B)
        mb = scale * (n_w[:-1] + n_w[1:])
    else:
        n_w = np.zeros(0)
        scale = 0.0
        mb = np.zeros_like(m)

    mc, dmc_dm, dmc_dmb, clipped = _correct(m, mb, background)
    i0 = int(np.flatnonzero(k == 0)[0])
    a0 = float(mc[i0])
    s = float(mc[ref].mean())
    measured = s > 0
    g = a0 / s if measured else math.nan

    def sigma(grad_mc: np.ndarray) -> float:
        """Linear error propagation of a quantity with gradient grad_mc w.r.t. M_c."""
        var = np.sum((grad_mc * dmc_dm) ** 2 * np.maximum(m, 0.0))
        if use_bg:
            g_mb = grad_mc * dmc_dmb * scale
            coef_w = np.zeros(n_w.size)
            coef_w[:-1] += g_mb
            coef_w[1:] += g_mb
            var += np.sum(coef_w**2 * np.maximum(n_w, 0.0))
        return float(math.sqrt(var))

    e0 = np.zeros(k.size)
    e0[i0] = 1.0
    es = np.where(ref, 1.0 / n_ref, 0.0)
    sigma_a0 = sigma(e0)
    sigma_s = sigma(es)
    sigma_g = sigma(e0 / s - es * a0 / s**2) if measured else math.inf

    # Interval from the conditional binomial (docstring, "Interval").
    m0, m_ref = float(max(m[i0], 0.0)), float(np.maximum(m[ref], 0.0).sum())
    b0, b_ref = float(mb[i0]), float(mb[ref].sum())
    s_lin = (m_ref - b_ref) / n_ref
    if not s_lin > 0:
        s_lin = s if measured else 0.0
    n_c = m0 + m_ref
    # background-only part of the linearised error of g (b0 and b_ref enter through M_b)
    g_lin = (m0 - b0) / s_lin if s_lin > 0 else math.nan  # the interval's centre
    if use_bg and s_lin > 0:
        grad_b = np.zeros(k.size)
        grad_b[i0] = -1.0 / s_lin
        grad_b[ref] += g_lin / (n_ref * s_lin)
        coef_w = np.zeros(n_w.size)
        coef_w[:-1] += grad_b * scale
        coef_w[1:] += grad_b * scale
        sigma_bg = float(math.sqrt(np.sum(coef_w**2 * np.maximum(n_w, 0.0))))
    else:
        sigma_bg = 0.0
    tail = 0.5 * (1.0 - CI_LEVEL)
    pi_lo = _beta_ppf(tail, m0, n_c - m0 + 1.0)
    pi_hi = _beta_ppf(1.0 - tail, m0 + 1.0, n_c - m0)
    pi_up = _beta_ppf(UPPER_LEVEL, m0 + 1.0, n_c - m0)
    if s_lin > 0:
        g_mid = max(g_lin, 0.0)
        g_lo = _g2_from_fraction(pi_lo, n_ref, b0, b_ref, s_lin)
        g_hi = _g2_from_fraction(pi_hi, n_ref, b0, b_ref, s_lin)
        g_up = _g2_from_fraction(pi_up, n_ref, b0, b_ref, s_lin)
        ci_lo = max(0.0, g_mid - math.hypot(max(g_mid - g_lo, 0.0), sigma_bg))
        ci_hi = g_mid + math.hypot(max(g_hi - g_mid, 0.0), sigma_bg)
        upper = g_mid + math.hypot(max(g_up - g_mid, 0.0), 2.0 * sigma_bg)
        sigma_g = max(sigma_g, ci_hi - g_mid, g_mid - ci_lo)
    else:
        # no side-peak signal above the background: g2(0) is not measured, every value
        # >= 0 is consistent with the data
        ci_lo, ci_hi, upper = 0.0, math.inf, math.inf

    peak_index = k.astype(np.int64)
    norm = mc / s if measured else np.full(mc.shape, math.nan)
    for arr in (peak_index, centre, norm):
        arr.setflags(write=False)
    return G2PulsedResult(
        g2_0=g,
        g2_0_err=sigma_g,
        g2_0_ci=(ci_lo, ci_hi),
        g2_0_upper=upper,
        centre_counts=m0,
        reference_counts=m_ref,
        centre_area_clipped=bool(clipped[i0]),
        method=background,
        centre_area=a0,
        centre_area_err=sigma_a0,
        centre_background=float(mb[i0]),
        side_mean=s,
        side_mean_err=sigma_s,
        n_side_peaks=n_ref,
        period_ps=T,
        window_ps=W,
        background_window_ps=B,
        norm_delay_ps=D,
        norm_halfwidth_ps=H,
        zero_delay_ps=z,
        peak_index=peak_index,
        peak_delays_ps=centre,
        peak_areas_norm=norm,
    )
