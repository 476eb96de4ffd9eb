"""Benchmark of hbtscope.analysis.flim_fit: a 100 x 100 FLIM image, ~1000 photons per pixel.

Synthetic stack: 10 MHz excitation, one period of 512 TCSPC bins of 195.3 ps, Gaussian IRF
(sigma 150 ps at 3 ns), two lifetimes 1.4 ns and 10 ns (Pierini et al.'s biexciton-like fast
component and a long one), amplitude fraction 0.3 in the left half and 0.7 in the right half,
0.02 background counts per bin. Pixel photon numbers are Poisson with mean 1000.

Reported: median wall time (s) of one ``flim_fit`` call over the image, after a warm-up call
(numba compilation excluded, reported separately), for

* ``seconds_bi_free``: bi-exponential + background, all parameters per pixel (the design
  number);
* ``seconds_bi_global``: lifetimes from the summed image, amplitudes/background per pixel;
* ``seconds_mono``: mono-exponential + background per pixel;

plus the fraction of converged pixels and the number of threads numba used. Prints one JSON
line.

    python bench/bench_flim.py
"""

from __future__ import annotations

import json
import platform
import time

import numba
import numpy as np

from hbtscope.analysis.flim import decay_model, flim_fit

NY = NX = 100
PHOTONS = 1000
N_BINS = 512
BIN_PS = 1e5 / N_BINS  # one 100 ns period
IRF = (3000.0, 150.0)
TAUS = (1400.0, 10000.0)
BACKGROUND = 0.02
REPEATS = 3
SEED = 2024


def make_stack(rng: np.random.Generator) -> np.ndarray:
    alpha = np.where(np.arange(NX)[None, :] < NX // 2, 0.3, 0.7) * np.ones((NY, 1))
    shapes = {}
    for a in (0.3, 0.7):
        a1, a2 = a, 1 - a
        w1, w2 = a1 * TAUS[0], a2 * TAUS[1]  # photons per component ~ a_i tau_i
        f1 = w1 / (w1 + w2)
        signal = PHOTONS - BACKGROUND * N_BINS
        shapes[a] = decay_model(
            N_BINS, BIN_PS, IRF, TAUS, [signal * f1, signal * (1 - f1)], BACKGROUND
        )
    mean = np.stack([shapes[a] for a in alpha.ravel()]).reshape(NY, NX, N_BINS)
    return rng.poisson(mean).astype(np.float64)


def timed(fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), result


def main() -> None:
    rng = np.random.default_rng(SEED)
    stack = make_stack(rng)
    t0 = time.perf_counter()
    flim_fit(stack[:2, :2], BIN_PS, IRF, model="bi")  # compile (or load the numba cache)
    compile_s = time.perf_counter() - t0
    t_free, r_free = timed(lambda: flim_fit(stack, BIN_PS, IRF, model="bi", taus="free"))
    t_glob, r_glob = timed(lambda: flim_fit(stack, BIN_PS, IRF, model="bi", taus="global"))
    t_mono, r_mono = timed(lambda: flim_fit(stack, BIN_PS, IRF, model="mono"))
    out = {
        "bench": "flim_fit",
        "image": [NY, NX],
        "photons_per_pixel": PHOTONS,
        "n_bins": N_BINS,
        "seconds_bi_free": round(t_free, 4),
        "seconds_bi_global": round(t_glob, 4),
        "seconds_mono": round(t_mono, 4),
        "pixels_per_s_bi_free": round(NY * NX / t_free),
        "converged_bi_free": round(float(r_free.converged.mean()), 4),
        "converged_bi_global": round(float(r_glob.converged.mean()), 4),
        "converged_mono": round(float(r_mono.converged.mean()), 4),
        "median_iterations_bi_free": float(np.median(r_free.n_iter)),
        "global_taus_ps": [round(float(t), 1) for t in r_glob.global_taus_ps],
        "compile_or_cache_load_s": round(compile_s, 3),
        "numba_threads": numba.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
