"""Pure image helpers of the image views: percentile colour levels, a per-pixel lifetime
estimate from TCSPC histograms and the FLIM colouring (hue = lifetime, lightness = counts).

No Qt here: numpy in, numpy out, so that the views stay thin and these are tested alone.
"""

from __future__ import annotations

import numpy as np

#: the colour scale's default percentiles
DEFAULT_PERCENTILES = (1.0, 99.5)
#: hue of the shortest lifetime (red) ... of the longest (blue), on the HSV circle
HUE_RANGE = (0.0, 0.66)
#: at most this many pixels are sorted for the percentiles (a regular subsample beyond)
MAX_PERCENTILE_PIXELS = 1 << 16


def percentile_levels(
    image: np.ndarray, low: float = DEFAULT_PERCENTILES[0], high: float = DEFAULT_PERCENTILES[1]
) -> tuple[float, float]:
    """The values at the ``low`` and ``high`` percentiles of the finite pixels of ``image``
    (a regular subsample of at most :data:`MAX_PERCENTILE_PIXELS` pixels for large images);
    ``(0, 1)`` for an image without finite pixels; ``hi > lo`` always."""
    flat = np.asarray(image).ravel()
    if flat.size > MAX_PERCENTILE_PIXELS:
        flat = flat[:: flat.size // MAX_PERCENTILE_PIXELS + 1]
    if flat.dtype.kind == "f":
        flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(flat, [low, high])
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


def mean_arrival_lifetime_ps(tcspc: np.ndarray, bin_ps: float) -> np.ndarray:
    """Per-pixel lifetime estimate (ps) from TCSPC histograms ``(..., n_bins)``: the mean
    arrival time after the peak of the summed histogram (the IRF's position). For a mono-
    exponential decay much shorter than the window this is the lifetime (the first moment of
    an exponential); a window cut at a few lifetimes biases it low but keeps it monotonic in
    the lifetime, which is what the colour needs. NaN where a pixel has no photon after the
    peak."""
    h = np.asarray(tcspc, dtype=np.float64)
    total = h.reshape(-1, h.shape[-1]).sum(axis=0)
    peak = int(np.argmax(total)) if total.any() else 0
    tail = h[..., peak:]
    t_ps = (np.arange(tail.shape[-1]) + 0.0) * float(bin_ps)
    photons = tail.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(photons > 0, (tail @ t_ps) / photons, np.nan)


def lifetime_colours(lifetime_ps: np.ndarray, lifetime_levels: tuple[float, float]) -> np.ndarray:
    """The FLIM hue of each pixel as RGB in [0, 1] ``(..., 3)`` float32 (red =
    ``lifetime_levels[0]`` ... blue = ``[1]``); white (grey once scaled by the brightness)
    where a pixel has no lifetime. Depends on the lifetimes only: a view computes it once per
    lifetime image and scales it by each new intensity (:func:`flim_rgb`)."""
    t_lo, t_hi = lifetime_levels
    tau = np.asarray(lifetime_ps, float)
    frac = np.clip((tau - t_lo) / max(t_hi - t_lo, 1e-300), 0.0, 1.0)
    hue = HUE_RANGE[0] + np.nan_to_num(frac) * (HUE_RANGE[1] - HUE_RANGE[0])
    h6 = (np.mod(hue, 1.0) * 6.0)[..., None]
    # the piecewise-linear HSV wheel at full saturation and value: channel k peaks at hue k/3
    k = np.array([5.0, 3.0, 1.0])
    rgb = 1.0 - np.clip(np.minimum(np.mod(k + h6, 6.0), 4.0 - np.mod(k + h6, 6.0)), 0.0, 1.0)
    rgb[~np.isfinite(tau)] = 1.0
    return rgb.astype(np.float32)


def flim_rgb(
    counts: np.ndarray,
    lifetime_ps: np.ndarray,
    count_levels: tuple[float, float],
    lifetime_levels: tuple[float, float],
    colours: np.ndarray | None = None,
) -> np.ndarray:
    """Lifetime-coloured intensity image ``(ny, nx, 3)`` uint8: hue from the lifetime
    (red = ``lifetime_levels[0]`` ... blue = ``[1]``), brightness from the counts scaled to
    ``count_levels``; a pixel without a lifetime is grey at its brightness. ``colours``: the
    :func:`lifetime_colours` of these lifetimes and levels, if already computed."""
    c_lo, c_hi = count_levels
    value = np.clip((np.asarray(counts, np.float32) - c_lo) / max(c_hi - c_lo, 1e-30), 0.0, 1.0)
    if colours is None:
        colours = lifetime_colours(lifetime_ps, lifetime_levels)
    out = colours * (value * np.float32(255.0))[..., None]
    return (out + np.float32(0.5)).astype(np.uint8)


def pixel_rect(fast_um: np.ndarray, slow_um: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, width, height) in µm of an image whose pixel centres are ``fast_um`` (columns)
    and ``slow_um`` (rows): the pixel edges, for pyqtgraph's ``ImageItem.setRect``."""
    nx, ny = len(fast_um), len(slow_um)
    dx = (fast_um[-1] - fast_um[0]) / max(nx - 1, 1) if nx > 1 else 1.0
    dy = (slow_um[-1] - slow_um[0]) / max(ny - 1, 1) if ny > 1 else 1.0
    return float(fast_um[0] - dx / 2), float(slow_um[0] - dy / 2), float(nx * dx), float(ny * dy)
