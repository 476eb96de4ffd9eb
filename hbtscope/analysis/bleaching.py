"""Bleaching videos: when a survival curve crosses a level, and following the field's drift.

:func:`time_to_fraction` reads the time at which a survival curve (fraction of emitters still
emitting versus time, e.g. :func:`hbtscope.analysis.images.survival_curve`) first falls to a
level (0.5: the half-life of the ensemble, "half bleached in 3 min", Pierini et al.
Fig. 4b; D'Amato et al. Fig. 2a). Linear interpolation between the two frames around the
crossing; its interval is where the curve's lower and upper confidence bounds cross the same
level (a band read sideways). When the curve never reaches the level within the video the time
is NaN and ``reached`` is False, and the video only says "later than the last frame".

:class:`DriftFollower` follows the field's drift through a video: each frame is registered on
the last frame it accepted, and the steps add up to the shift relative to frame 0. On the
previous frame, not on frame 0: once most emitters have bleached, the few left in a late frame
match any of frame 0's many spots (an ambiguous correlation peak), but themselves in the frame
before. The whole-pixel step is the cross-correlation maximum within a search radius: an emitter
that goes out between two frames still correlates with its neighbours in the next (a bright one
going out beside a dim one makes that the highest peak), so the search stays close to the
expected step: ``max_step_px`` for the first step, then twice the last step plus 1 px, at least
``min_radius_px`` (a drift slows down: creep per decade of time); the fraction of a pixel from a
parabola through the logarithm of the peak and its neighbours (the correlation of two Gaussian
spots is a Gaussian, whose logarithm is a parabola: no bias from the interpolation itself, which
a parabola through the peak has -- 0.1 px per step, adding up). A step the frame does not
support is refused (the previous shift is kept): at the whole-pixel step, the Pearson
correlation of the two median-subtracted frames must exceed ``min_z`` times its no-signal
standard deviation 1/sqrt(n_pixels) -- a frame with nothing left to correlate. The summed error
grows like sqrt(frames) times one registration's (hundredths of a pixel on spots of hundreds of
photons; a tenth on a single faint spot). ``max_step_px`` must exceed the largest drift between
two frames: an open-loop piezo creeps by a fixed amount per decade of time after a move, ~10 px
between a frame taken right after an 80 um move and one 20 s later for the simulated 1 %/decade
creep.

Pure numpy; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["DriftFollower", "FractionCrossing", "time_to_fraction"]


@dataclass(frozen=True)
class FractionCrossing:
    """Result of :func:`time_to_fraction` (times in the unit of ``times``)."""

    level: float
    time: float  # NaN when not reached
    lower: float  # the lower confidence bound's crossing (earliest plausible)
    upper: float  # the upper bound's crossing (NaN: later than the video)
    reached: bool

    @property
    def error(self) -> float:
        """Half the width of the interval (inf when one end lies beyond the video)."""
        if not self.reached:
            return math.nan
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            return math.inf
        return 0.5 * (self.upper - self.lower)


def _first_crossing(t: np.ndarray, y: np.ndarray, level: float) -> float:
    """First time ``y`` falls to ``level`` or below (linear between samples), NaN if never."""
    below = np.flatnonzero(y <= level)
    if below.size == 0:
        return math.nan
    k = int(below[0])
    if k == 0:
        return float(t[0])
    y0, y1 = float(y[k - 1]), float(y[k])
    if y0 == y1:
        return float(t[k])
    return float(t[k - 1] + (y0 - level) / (y0 - y1) * (t[k] - t[k - 1]))


def time_to_fraction(times, fraction, lower, upper, level: float = 0.5) -> FractionCrossing:
    """When the surviving fraction first falls to ``level`` (module doc).

    ``lower``/``upper`` are the curve's confidence bounds: the upper bound crosses later, the
    lower one earlier, and these two crossings bound the time.
    """
    t = np.asarray(times, dtype=float).ravel()
    f, lo, hi = (np.asarray(a, dtype=float).ravel() for a in (fraction, lower, upper))
    if not (t.size == f.size == lo.size == hi.size) or t.size == 0:
        raise ValueError("times, fraction, lower and upper must be 1-D of one (non-zero) length")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    t_mid = _first_crossing(t, f, level)
    return FractionCrossing(
        level=float(level),
        time=t_mid,
        lower=_first_crossing(t, lo, level),
        upper=_first_crossing(t, hi, level),
        reached=bool(math.isfinite(t_mid)),
    )


class DriftFollower:
    """Shift ``(dy, dx)`` of each frame relative to the reference frame 0 (module doc)."""

    def __init__(
        self,
        reference,
        *,
        max_step_px: float = 25.0,
        min_radius_px: float = 3.0,
        min_z: float = 8.0,
    ):
        self.previous = np.asarray(reference, dtype=np.float64)
        self.max_step_px = float(max_step_px)
        self.min_radius_px = float(min_radius_px)
        self.radius_px = float(max_step_px)
        self.min_z = float(min_z)
        self.last = np.zeros(2)
        self.n_refused = 0

    @staticmethod
    def significance(ref: np.ndarray, img: np.ndarray, d) -> float:
        """Pearson r of ``ref`` and ``img`` moved back by the whole-pixel shift ``d``, in units
        of its no-signal standard deviation 1/sqrt(n)."""
        a = ref - np.median(ref)
        b = np.roll(img - np.median(img), (-int(round(d[0])), -int(round(d[1]))), (0, 1))
        den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
        return float((a * b).sum()) / den * math.sqrt(a.size) if den > 0 else 0.0

    def _step(self, img: np.ndarray) -> np.ndarray:
        """Maximum of the cross-correlation within the search radius, to a fraction of a
        pixel by a parabola through it and its neighbours along each axis."""
        a = self.previous - np.median(self.previous)
        b = img - np.median(img)
        cc = np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))).real
        ny, nx = cc.shape
        dy = np.fft.fftfreq(ny, 1.0 / ny)[:, None]
        dx = np.fft.fftfreq(nx, 1.0 / nx)[None, :]
        masked = np.where(dy**2 + dx**2 > self.radius_px**2, -np.inf, cc)
        i, j = np.unravel_index(int(np.argmax(masked)), cc.shape)

        def vertex(m: float, c: float, p: float) -> float:
            if min(m, c, p) > 0:  # a Gaussian peak: its logarithm is a parabola
                m, c, p = math.log(m), math.log(c), math.log(p)
            den = m - 2.0 * c + p
            return float(np.clip(0.5 * (m - p) / den, -0.5, 0.5)) if den < 0 else 0.0

        fy = vertex(cc[(i - 1) % ny, j], cc[i, j], cc[(i + 1) % ny, j])
        fx = vertex(cc[i, (j - 1) % nx], cc[i, j], cc[i, (j + 1) % nx])
        return np.array([dy[i, 0] + fy, dx[0, j] + fx])

    def shift(self, frame) -> np.ndarray:
        """The frame's shift from frame 0; the previous one when the frame does not support a
        new one (then the frame is not used as the next reference either)."""
        img = np.asarray(frame, dtype=np.float64)
        d = self._step(img)
        if np.all(np.isfinite(d)) and self.significance(self.previous, img, d) >= self.min_z:
            self.last = self.last + d
            self.previous = img
            step = 2.0 * float(np.hypot(*d)) + 1.0
            self.radius_px = min(self.max_step_px, max(self.min_radius_px, step))
        else:
            self.n_refused += 1
        return self.last.copy()
