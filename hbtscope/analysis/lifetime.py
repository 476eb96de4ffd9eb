"""Fluorescence decays: TCSPC histograms and the maximum-likelihood multi-exponential fit of
one decay, :func:`fit_decay`, with its result :class:`DecayFitResult`.

Histogram (:func:`decay_histogram`): the delay of every photon after its preceding sync
(laser pulse), ``delay = photon - sync[last sync <= photon]``, binned in ``n_bins`` bins of
``bin_ps`` starting at delay 0; photons before the first sync or beyond the range are
dropped. Fast estimators (mean arrival time) live in :mod:`hbtscope.analysis.mean_arrival`.

Model: :mod:`hbtscope.analysis.decay_model` (Pierini et al. eq. 2): ``mu_k = sum_i a_i
u_k(tau_i, t0) + B``, the exact bin integrals of exponentials seen through the IRF (none,
Gaussian, measured array) with the pile-up wrap-around of earlier pulses (``period_ps``).
Without an IRF t0 is not a smooth parameter (its maximum-likelihood estimate is pinned to
the first photon), so it is not fitted: it defaults to the start of the brightest bin.

a_i is the number of photons of component i per full decay (including the part outside
the range), B the background per bin. Reported:

* ``amplitudes`` A_i = a_i (1 - exp(-dt/tau_i)): the pre-exponential factor of eq. 2, i.e.
  counts per bin of component i in the first bin after t0 (one pulse, no IRF);
* ``fractions`` f_i = a_i / sum a (fraction of signal photons), ``amplitude_fractions``
  alpha_i = A_i / sum A;
* ``tau_intensity_ps`` = sum f_i tau_i (what the mean arrival time estimates; also
  ``tau_mean_ps``) and ``tau_amplitude_ps`` = sum alpha_i tau_i.

Fit: Poisson maximum likelihood by the engine of :mod:`hbtscope.analysis._poisson_ml`
(Levenberg-Marquardt-damped Fisher scoring, lifetimes on a log scale, amplitudes >= 0,
background >= 1e-9 per bin), the same engine that fits each pixel of a FLIM image. The
Poisson MLE is unbiased at low counts where chi-square fits are not, and reaches the
Cramer-Rao bound (F-value ~1 for a mono-exponential with a narrow IRF). Uncertainties: square
roots of the diagonal of the inverse expected Fisher information at the optimum, over all
free parameters (also when a bounded parameter sits at its bound, which is conservative),
propagated to derived quantities to first order; error fields are ``<name>_err``. Goodness
of fit: Pearson ``chi2_red = sum (n - mu)^2 / mu / dof`` with ``dof = n_fit_bins - n_free``,
the Poisson deviance ``D``, and ``gof_p_value``: the probability of a deviance at least as
large under the fitted model, from a scaled chi-square with the exact low-count mean and
variance of D (``_gof.deviance_p_value``; Pearson's X^2 has a far heavier tail at low
counts). The objective is public: :func:`~hbtscope.analysis.decay_model.decay_deviance`
(= 2 NLL + a constant of the data) at any parameters through
:func:`~hbtscope.analysis.decay_model.decay_expectation`.

Multi-start: one start for a mono-exponential (the mean-delay lifetime), 4 lifetime splits
around it for two components and 3 for three, run in parallel; the best likelihood is
kept. Identifiability: ``identifiable`` is false (with a ``message``, and infinite errors
for the parameters concerned instead of numbers like 1e9) when the Fisher information is
singular (condition number of its correlation form > 1e12, e.g. two equal lifetimes) or a
relative error exceeds 1e3 (an error of ln tau above 10: known only within a factor e^10,
e.g. the lifetime of a component whose amplitude went to 0); ``at_bound`` when a lifetime,
an amplitude or t0 ended on its bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.special import gammaln

from hbtscope.analysis import _poisson_ml
from hbtscope.analysis._gof import (
    MAX_LOG_ERROR,
    MAX_RELATIVE_ERROR,
    deviance_p_value,
    identifiability,
    pearson_p_value,
    poisson_deviance,
)
from hbtscope.analysis._validate import as_tags
from hbtscope.analysis.decay_model import (
    I_AMP,
    I_BG,
    I_LOGTAU,
    I_T0,
    N_EXP_MAX,
    N_PARAMS,
    DecayModel,
    decay_deviance,
    decay_expectation,
    make_model,
)
from hbtscope.analysis.mean_arrival import (
    histogram_mean_delay,
    lifetime_from_mean,
    mean_arrival_time,
)

__all__ = [
    "DecayFitResult",
    "decay_deviance",
    "decay_expectation",
    "decay_histogram",
    "fit_decay",
    "histogram_mean_delay",
    "lifetime_from_mean",
    "mean_arrival_time",
    "photon_delays",
]

B_FLOOR = 1e-9  # lower bound of a fitted background (counts/bin): keeps mu > 0 everywhere


# ======================================================================================
# histograms
# ======================================================================================


def _as_int_array(x: object, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    if a.size == 0:
        return np.empty(0, dtype=np.int64)
    if not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name} must hold integer picosecond tags, got dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=np.int64)


def photon_delays(photon_ps: np.ndarray, sync_ps: np.ndarray) -> np.ndarray:
    """Delay of each photon after its preceding sync (``sync <= photon``), int64 ps.

    ``photon_ps`` need not be sorted; ``sync_ps`` must be sorted ascending. Photons
    before the first sync get -1. Vectorised with ``searchsorted``.
    """
    ph = _as_int_array(photon_ps, "photon_ps")
    sync = as_tags(sync_ps, "sync_ps")
    out = np.full(ph.size, -1, dtype=np.int64)
    if ph.size == 0 or sync.size == 0:
        return out
    idx = np.searchsorted(sync, ph, side="right") - 1
    ok = idx >= 0
    out[ok] = ph[ok] - sync[idx[ok]]
    return out


def decay_histogram(
    photon_ps: np.ndarray, sync_ps: np.ndarray, bin_ps: int, n_bins: int
) -> np.ndarray:
    """TCSPC histogram: counts of photon delays in ``[k*bin_ps, (k+1)*bin_ps)``.

    Delays are those of :func:`photon_delays`; photons before the first sync or with a
    delay >= ``n_bins * bin_ps`` are dropped. Returns int64 ``counts`` of length n_bins.
    """
    bw = int(bin_ps)
    nb = int(n_bins)
    if bw != bin_ps or bw <= 0:
        raise ValueError(f"bin_ps must be a positive integer number of ps, got {bin_ps!r}")
    if nb != n_bins or nb <= 0:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    d = photon_delays(photon_ps, sync_ps)
    d = d[d >= 0] // bw
    d = d[d < nb]
    return np.bincount(d, minlength=nb).astype(np.int64)


# ======================================================================================
# the result
# ======================================================================================


@dataclass(frozen=True, eq=False)
class DecayFitResult:
    """Result of :func:`fit_decay` (times in ps, counts per bin; see the module doc), also
    the global fit of :func:`hbtscope.analysis.flim.flim_fit`.

    Per-component arrays are sorted by increasing lifetime. ``*_err`` are 1-sigma
    uncertainties from the inverse Fisher information (NaN for fixed parameters; inf for
    parameters the data do not determine). Goodness of fit: ``chi2_red`` (Pearson / dof),
    ``deviance``, ``dof``, ``gof_p_value`` (deviance, low-count exact moments);
    ``identifiable``, ``at_bound`` and ``message`` as in the module doc. ``irf``: the IRF
    representation (``decay_model`` doc).
    """

    n_exp: int
    taus_ps: np.ndarray
    taus_ps_err: np.ndarray
    amplitudes: np.ndarray
    amplitudes_err: np.ndarray
    photons: np.ndarray
    photons_err: np.ndarray
    fractions: np.ndarray
    fractions_err: np.ndarray
    amplitude_fractions: np.ndarray
    amplitude_fractions_err: np.ndarray
    tau_intensity_ps: float
    tau_intensity_ps_err: float
    tau_amplitude_ps: float
    tau_amplitude_ps_err: float
    background: float
    background_err: float
    background_fraction: float
    t0_ps: float
    t0_ps_err: float
    log_likelihood: float
    deviance: float
    chi2_red: float
    dof: int
    n_photons: int
    n_iter: int
    converged: bool
    irf: str
    irf_sigma_ps: float
    period_ps: float
    bin_ps: float
    fit_start: int
    fit_stop: int
    model: np.ndarray = field(repr=False)
    param_names: tuple[str, ...] = field(repr=False)
    covariance: np.ndarray = field(repr=False)
    gof_p_value: float = math.nan
    identifiable: bool = True
    at_bound: bool = False
    message: str = ""

    @property
    def tau_ps(self) -> float:
        """Lifetime of a mono-exponential fit (the first component otherwise)."""
        return float(self.taus_ps[0])

    @property
    def tau_ps_err(self) -> float:
        return float(self.taus_ps_err[0])

    @property
    def tau_mean_ps(self) -> float:
        """The intensity-weighted mean lifetime (= ``tau_intensity_ps``)."""
        return self.tau_intensity_ps

    @property
    def tau_mean_ps_err(self) -> float:
        return self.tau_intensity_ps_err

    def as_dict(self) -> dict[str, float | int | str | bool]:
        """Scalars and per-component values flattened (``tau_1_ps``, ``fraction_1``, ...)."""
        out: dict[str, float | int | str | bool] = {}
        per = {
            "taus_ps": "tau_{}_ps",
            "taus_ps_err": "tau_{}_ps_err",
            "amplitudes": "amplitude_{}",
            "amplitudes_err": "amplitude_{}_err",
            "photons": "photons_{}",
            "photons_err": "photons_{}_err",
            "fractions": "fraction_{}",
            "fractions_err": "fraction_{}_err",
            "amplitude_fractions": "amplitude_fraction_{}",
            "amplitude_fractions_err": "amplitude_fraction_{}_err",
        }
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name in per:
                for i, v in enumerate(value, start=1):
                    out[per[name].format(i)] = float(v)
            elif name in ("model", "covariance", "param_names"):
                continue
            elif isinstance(value, bool | np.bool_):
                out[name] = bool(value)
            elif isinstance(value, str):
                out[name] = value
            elif isinstance(value, int | np.integer):
                out[name] = int(value)
            else:
                out[name] = float(value)
        return out


# ======================================================================================
# the fit
# ======================================================================================


def _rise_time(y: np.ndarray, dt: float, base: float) -> float:
    """Time of the first half-maximum crossing on the rising edge (bin centre)."""
    peak = int(np.argmax(y))
    half = base + 0.5 * (y[peak] - base)
    k = peak
    while k > 0 and y[k - 1] >= half:
        k -= 1
    return (k + 0.5) * dt


# lifetime splits around the mean-delay lifetime, per number of components
_STARTS = {
    1: [(1.0,)],
    2: [(0.3, 1.5), (0.1, 1.2), (0.5, 3.0), (0.05, 1.02)],
    3: [(0.15, 0.6, 1.6), (0.05, 0.3, 1.3), (0.3, 1.0, 2.5)],
}


def fit_decay(
    counts: np.ndarray,
    bin_ps: float,
    *,
    n_exp: int = 1,
    irf: None | np.ndarray | dict | tuple[float, float] = None,
    background: bool | float = True,
    t0_ps: float | None = None,
    period_ps: float | None = None,
    fit_range: tuple[int, int] | None = None,
    tau_init_ps: tuple[float, ...] | None = None,
    taus_ps: tuple[float, ...] | None = None,
    tau_bounds_ps: tuple[float, float] | None = None,
    max_iter: int = 200,
) -> DecayFitResult:
    """Poisson maximum-likelihood fit of IRF (x) sum_i A_i exp(-t/tau_i) + B to a decay.

    Parameters
    ----------
    counts
        TCSPC histogram (non-negative counts), bin k = [k, k+1) * ``bin_ps``.
    bin_ps
        Bin width in ps.
    n_exp
        Number of exponential components: 1, 2 or 3.
    irf
        ``None`` (no IRF, step at t0); a Gaussian ``{"gaussian": sigma_ps}`` (centre fitted
        as t0), ``{"gaussian": sigma_ps, "centre_ps": c}`` or ``(centre_ps, sigma_ps)``
        (centre fixed); or a measured IRF array on the same bins (normalised internally,
        shifted by a fitted t0).
    background
        ``True``: fit a constant background per bin; ``False``: none; a number: fixed
        background per bin.
    t0_ps
        Fixed pulse arrival time (Gaussian IRF: centre; measured IRF: shift of the IRF;
        no IRF: start of the exponential). ``None``: fitted (with an IRF whose centre is
        not given) or the start of the brightest bin (without).
    period_ps
        Laser period for the pile-up wrap-around of earlier pulses' tails (None: no wrap).
    fit_range
        (start, stop) bin indices of the likelihood (default: all bins).
    tau_init_ps
        Optional initial lifetimes (length n_exp).
    taus_ps
        Fixed lifetimes (length n_exp): only amplitudes, background and t0 are fitted.
    tau_bounds_ps
        Allowed lifetimes (default ``(0.02 bin, 1000 x max(range, period))``).
    max_iter
        Iterations of the engine per starting point.

    Returns
    -------
    DecayFitResult
    """
    n_all = np.asarray(counts, dtype=np.float64)
    if n_all.ndim != 1 or n_all.size < 3:
        raise ValueError("counts must be a 1-D histogram with at least 3 bins")
    if n_exp not in (1, 2, 3):
        raise ValueError(f"n_exp must be 1, 2 or 3, got {n_exp!r}")
    dt = float(bin_ps)
    if not dt > 0:
        raise ValueError(f"bin_ps must be > 0, got {bin_ps!r}")
    model = make_model(irf, n_all.size, dt, period_ps)
    if t0_ps is None and not math.isnan(model.centre_ps):
        t0_ps = model.centre_ps
    return fit_histogram(
        n_all, model, n_exp=n_exp, background=background, t0_ps=t0_ps, fit_range=fit_range,
        tau_init_ps=tau_init_ps, taus_ps=taus_ps, tau_bounds_ps=tau_bounds_ps,
        max_iter=max_iter,
    )  # fmt: skip


def _initial_lifetime(n_all: np.ndarray, model: DecayModel, b0: float, t0_fixed: float | None):
    """(t0 start, mean-delay lifetime start) from the data (module doc)."""
    nb, dt = n_all.size, model.bin_ps
    P = model.period_ps or None
    if model.kind == "array":
        t0_init = _rise_time(n_all, dt, b0) - _rise_time(model.irf, dt, 0.0)
        ref = histogram_mean_delay(model.irf, dt) + t0_init  # IRF centroid, after shift
    elif model.kind in ("gaussian", "grid"):
        t0_init = _rise_time(n_all, dt, b0)
        ref = t0_init
    else:
        t0_init = int(np.argmax(n_all)) * dt
        ref = t0_init
    if t0_fixed is not None:
        ref = ref - t0_init + t0_fixed
        t0_init = t0_fixed
    # mean delay after the reference time, background removed -> mono-exp guess
    tc = (np.arange(nb) + 0.5) * dt
    after = tc >= ref
    window = max(nb * dt - ref, 2 * dt)
    m = histogram_mean_delay(np.maximum(n_all[after] - b0, 0.0), dt, t0_ps=ref,
                             times_ps=tc[after]) if after.any() else math.nan  # fmt: skip
    if math.isfinite(m):
        tau_m = lifetime_from_mean(m, window_ps=window) if m < 0.5 * window else m
        if not math.isfinite(tau_m):
            tau_m = m
    else:
        tau_m = 0.2 * window
    return t0_init, float(np.clip(tau_m, 0.5 * dt, 10 * max(window, P or 0.0)))


def fit_histogram(
    n_all: np.ndarray,
    model: DecayModel,
    *,
    n_exp: int = 1,
    background: bool | float = True,
    t0_ps: float | None = None,
    fit_range: tuple[int, int] | None = None,
    tau_init_ps: tuple[float, ...] | None = None,
    taus_ps: tuple[float, ...] | None = None,
    tau_bounds_ps: tuple[float, float] | None = None,
    max_iter: int = 200,
) -> DecayFitResult:
    """:func:`fit_decay` for a prepared :class:`~hbtscope.analysis.decay_model.DecayModel`
    (also the global fit of a FLIM image, on the "grid" form)."""
    n_all = np.asarray(n_all, dtype=np.float64)
    if np.any(n_all < 0) or not np.all(np.isfinite(n_all)):
        raise ValueError("counts must be finite and non-negative")
    nb, dt = n_all.size, model.bin_ps
    P = model.period_ps or None
    lo, hi = (0, nb) if fit_range is None else (int(fit_range[0]), int(fit_range[1]))
    if not 0 <= lo < hi <= nb or hi - lo < 2 * n_exp + 3:
        raise ValueError(f"fit_range must be within [0, {nb}] and hold enough bins")
    n = n_all[lo:hi]
    n_tot = float(n.sum())
    if not n_tot > 0:
        raise ValueError("no counts in the fit range")
    if isinstance(background, bool | np.bool_):
        fit_bg = bool(background)
        b_fixed = None if fit_bg else 0.0
    else:
        fit_bg = False
        b_fixed = float(background)
    if b_fixed is not None and b_fixed < 0:
        raise ValueError("a fixed background must be >= 0")
    fixed_taus = None
    if taus_ps is not None:
        fixed_taus = np.asarray(taus_ps, dtype=np.float64).ravel()
        if fixed_taus.shape != (n_exp,) or not np.all(fixed_taus > 0):
            raise ValueError(f"taus_ps must give {n_exp} positive lifetimes")

    tail = n_all[-max(3, nb // 10) :]
    head = n_all[: max(3, nb // 20)]
    b0 = float(min(tail.mean(), head.mean()))
    t0_fit = t0_ps is None and model.t0_is_parameter
    t0_val, tau_m = _initial_lifetime(n_all, model, b0, None if t0_ps is None else float(t0_ps))
    if not model.t0_is_parameter and model.kind == "grid":
        t0_val = 0.0

    # parameters and bounds (theta layout of decay_model)
    free = [I_AMP + i for i in range(n_exp)]
    if fixed_taus is None:
        free += [I_LOGTAU + i for i in range(n_exp)]
    if t0_fit:
        free.append(I_T0)
    if fit_bg:
        free.append(I_BG)
    free = np.array(sorted(free), dtype=np.int64)
    lower = np.zeros(N_PARAMS)
    upper = np.zeros(N_PARAMS)
    tlo, thi = (0.02 * dt, 1e3 * max(nb * dt, P or 0.0)) if tau_bounds_ps is None else tau_bounds_ps
    lower[I_LOGTAU : I_LOGTAU + N_EXP_MAX] = math.log(tlo)
    upper[I_LOGTAU : I_LOGTAU + N_EXP_MAX] = math.log(thi)
    upper[I_AMP : I_AMP + N_EXP_MAX] = np.inf
    lower[I_T0], upper[I_T0] = (-0.5 * nb * dt, (P or nb * dt) * (1.0 - 1e-9)) if t0_fit else (
        -np.inf, np.inf)  # fmt: skip
    lower[I_BG], upper[I_BG] = (B_FLOOR, np.inf) if fit_bg else (-np.inf, np.inf)

    def start(taus: np.ndarray) -> np.ndarray:
        th = np.zeros(N_PARAMS)
        th[I_LOGTAU : I_LOGTAU + N_EXP_MAX] = math.log(tlo)
        th[I_LOGTAU : I_LOGTAU + n_exp] = np.log(taus)
        th[I_T0] = t0_val
        bg = max(b0, 1e-3 * n_tot / n.size) if fit_bg else b_fixed
        th[I_BG] = bg
        signal = max(n_tot - bg * n.size, 0.1 * n_tot)
        # photons per component so that the range holds the signal
        fr = np.array([model.expectation([t], [1.0], 0.0, t0_val)[lo:hi].sum() for t in taus])
        th[I_AMP : I_AMP + n_exp] = signal / n_exp / np.maximum(fr, 1e-3)
        return th

    if fixed_taus is not None:
        inits = [fixed_taus]
    elif tau_init_ps is not None:
        inits = [np.asarray(tau_init_ps, dtype=np.float64)]
        if inits[0].shape != (n_exp,) or np.any(inits[0] <= 0):
            raise ValueError(f"tau_init_ps must hold {n_exp} positive lifetimes")
    else:
        inits = [tau_m * np.array(f) for f in _STARTS[n_exp]]
    th0 = np.array([start(np.clip(t, max(0.1 * dt, tlo), thi)) for t in inits])
    rows = np.broadcast_to(n_all, (th0.shape[0], nb))
    th, _, ll, _, it, st = _poisson_ml.run(
        rows, th0, free, lower, upper, model, n_exp, fit_range=(lo, hi), max_iter=max_iter,
        tight=True,
    )  # fmt: skip
    ok = st != _poisson_ml.STATUS_BAD_START
    if not ok.any():
        raise ValueError("the decay fit failed from every starting point")
    best = int(np.flatnonzero(ok)[np.argmax(ll[ok])])
    return _result(
        n_all, model, n_exp, th[best], free, lower, upper, (lo, hi), int(it[best]),
        bool(st[best] == _poisson_ml.STATUS_CONVERGED),
    )  # fmt: skip


def _param_name(p: int) -> str:
    if p == I_T0:
        return "t0_ps"
    if p == I_BG:
        return "background"
    if p >= I_LOGTAU:
        return f"log_tau_{p - I_LOGTAU + 1}"
    return f"photons_{p - I_AMP + 1}"


def _components(theta: np.ndarray, C: np.ndarray, n_exp: int, dt: float) -> dict:
    """Per-component quantities of the module doc (lifetimes, eq. 2 amplitudes, photon and
    amplitude fractions, intensity- and amplitude-weighted mean lifetimes) with first-order
    errors from the full-size covariance ``C`` (zeros for fixed parameters)."""

    def grad_err(g: np.ndarray) -> float:
        return float(math.sqrt(max(g @ C @ g, 0.0)))

    ia, il = np.arange(n_exp) + I_AMP, np.arange(n_exp) + I_LOGTAU
    taus = np.exp(theta[il])
    a = theta[ia]
    x = dt / taus
    kfac = -np.expm1(-x)  # A_i = a_i (1 - e^{-dt/tau})
    amps = a * kfac
    dk_dlogtau = -x * np.exp(-x)  # d(1 - e^{-dt/tau}) / d ln tau
    sa, sA = a.sum(), amps.sum()
    fr = a / sa if sa > 0 else np.full(n_exp, np.nan)
    afr = amps / sA if sA > 0 else np.full(n_exp, np.nan)
    tau_int = float(np.sum(fr * taus))
    tau_amp = float(np.sum(afr * taus))
    dA = np.zeros((n_exp, N_PARAMS))  # gradients of A_j
    for j in range(n_exp):
        dA[j, ia[j]] = kfac[j]
        dA[j, il[j]] = a[j] * dk_dlogtau[j]
    amps_err, fr_err, afr_err = np.empty(n_exp), np.empty(n_exp), np.empty(n_exp)
    g_ti, g_ta = np.zeros(N_PARAMS), np.zeros(N_PARAMS)
    for i in range(n_exp):
        amps_err[i] = grad_err(dA[i])
        g = np.zeros(N_PARAMS)  # f_i = a_i / sum a
        if sa > 0:
            g[ia] = -a[i] / sa**2
            g[ia[i]] += 1.0 / sa
        fr_err[i] = grad_err(g)
        g = np.zeros(N_PARAMS)  # alpha_i = A_i / sum A
        if sA > 0:
            for j in range(n_exp):
                g += ((1.0 if i == j else 0.0) / sA - amps[i] / sA**2) * dA[j]
        afr_err[i] = grad_err(g)
    if sa > 0:
        g_ti[ia] = (taus - tau_int) / sa
        g_ti[il] = fr * taus
    if sA > 0:
        for j in range(n_exp):
            g_ta += (taus[j] - tau_amp) / sA * dA[j]
            g_ta[il[j]] += afr[j] * taus[j]
    return {
        "taus": taus, "a": a, "amps": amps, "amps_err": amps_err,
        "fr": fr, "fr_err": fr_err, "afr": afr, "afr_err": afr_err, "tau_int": tau_int,
        "tau_int_err": grad_err(g_ti), "tau_amp": tau_amp, "tau_amp_err": grad_err(g_ta),
    }  # fmt: skip


def _result(n_all, model: DecayModel, n_exp, theta, free, lower, upper, fit_range, n_iter,
            converged) -> DecayFitResult:  # fmt: skip
    """Errors, derived quantities, goodness of fit and identifiability at the optimum."""
    lo, hi = fit_range
    nb, dt = n_all.size, model.bin_ps
    P = model.period_ps or None
    n = n_all[lo:hi]
    n_tot = float(n.sum())
    # parameters in the reported order: log taus, t0, photons, background
    order_p = [p for p in free if I_LOGTAU <= p < I_T0]
    order_p += [p for p in free if p == I_T0] + [p for p in free if p < I_LOGTAU]
    order_p += [p for p in free if p == I_BG]
    names = [_param_name(p) for p in order_p]
    mu_all, J_all = _poisson_ml.model_and_jacobian(theta, model, n_exp, I_T0 in free)
    mu = mu_all[lo:hi]
    J = J_all[lo:hi][:, order_p]
    wmu = 1.0 / np.maximum(mu, 1e-300)
    info = (J * wmu[:, None]).T @ J
    try:
        cov = np.linalg.inv(info)
    except np.linalg.LinAlgError:
        cov = np.linalg.pinv(info)
    th_r = theta[order_p]
    sd = np.sqrt(np.maximum(np.diag(cov), 0.0))
    # identifiability (module doc): errors of parameters the data do not determine -> inf
    lw, up = lower[order_p], upper[order_p]
    span = np.where(np.isfinite(up - lw), up - lw, 1.0)
    tol = 1e-6 * np.maximum(span, 1.0)
    hit = np.isfinite(lw) & (th_r - lw <= np.where(lw <= B_FLOOR, B_FLOOR, tol))
    hit |= np.isfinite(up) & (up - th_r <= tol)
    # limits of a sane error: ln tau within a factor e^10, photons within 1e3 x the photons
    # seen, background within 1e3 x the mean count per bin, t0 within the range
    limit = MAX_RELATIVE_ERROR * np.maximum(np.abs(th_r), n_tot)
    for j, p in enumerate(order_p):
        if I_LOGTAU <= p < I_T0:
            limit[j] = MAX_LOG_ERROR
        elif p == I_T0:
            limit[j] = max(nb * dt, P or 0.0)
        elif p == I_BG:
            limit[j] = MAX_RELATIVE_ERROR * max(abs(th_r[j]), n_tot / n.size)
    identifiable, message, bad = identifiability(info, limit, names=names, at_bound=hit, cov=cov)
    sd = np.where(bad, np.inf, sd)
    at_bound = bool(np.any(hit[[p != I_BG for p in order_p]]))
    # full-size covariance (zeros for fixed parameters) and errors (NaN for fixed ones)
    C = np.zeros((N_PARAMS, N_PARAMS))
    C[np.ix_(order_p, order_p)] = cov
    sd_full = np.full(N_PARAMS, np.nan)
    sd_full[order_p] = sd

    c = _components(theta, C, n_exp, dt)
    n_par = len(order_p)
    dof = int(n.size - n_par)
    chi2_red, _ = pearson_p_value(n, mu, dof)
    p_gof = deviance_p_value(n, np.maximum(mu, 1e-300), n_par)
    deviance = poisson_deviance(n, np.maximum(mu, 1e-300))
    loglik = float(np.sum(n * np.log(np.maximum(mu, 1e-300)) - mu - gammaln(n + 1.0)))
    order = np.argsort(c["taus"])

    def ro(v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float64)[order].copy()
        v.setflags(write=False)
        return v

    model_all = mu_all.copy()
    model_all.setflags(write=False)
    cov_ro = cov.copy()
    cov_ro.setflags(write=False)
    t0_fit = I_T0 in free
    return DecayFitResult(
        n_exp=n_exp,
        taus_ps=ro(c["taus"]),
        taus_ps_err=ro(c["taus"] * sd_full[I_LOGTAU : I_LOGTAU + n_exp]),
        amplitudes=ro(c["amps"]),
        amplitudes_err=ro(c["amps_err"]),
        photons=ro(c["a"]),
        photons_err=ro(sd_full[I_AMP : I_AMP + n_exp]),
        fractions=ro(c["fr"]),
        fractions_err=ro(c["fr_err"]),
        amplitude_fractions=ro(c["afr"]),
        amplitude_fractions_err=ro(c["afr_err"]),
        tau_intensity_ps=c["tau_int"],
        tau_intensity_ps_err=c["tau_int_err"],
        tau_amplitude_ps=c["tau_amp"],
        tau_amplitude_ps_err=c["tau_amp_err"],
        background=float(theta[I_BG]),
        background_err=float(sd_full[I_BG]),
        background_fraction=float(theta[I_BG]) * n.size / n_tot,
        t0_ps=float(theta[I_T0]) if model.kind != "grid" else model.centre_ps,
        t0_ps_err=float(sd_full[I_T0]) if t0_fit else math.nan,
        log_likelihood=loglik,
        deviance=deviance,
        chi2_red=chi2_red,
        dof=dof,
        n_photons=int(round(n_tot)),
        n_iter=n_iter,
        converged=converged,
        irf=model.kind,
        irf_sigma_ps=model.sigma_ps,
        period_ps=math.nan if P is None else P,
        bin_ps=dt,
        fit_start=lo,
        fit_stop=hi,
        model=model_all,
        param_names=tuple(names),
        covariance=cov_ro,
        gof_p_value=p_gof,
        identifiable=identifiable,
        at_bound=at_bound,
        message=message,
    )
