"""Drift registration: sub-pixel shift between two images, and align-and-sum of a stack.

Drift (:func:`drift_by_cross_correlation`): the cross-correlation of the two images is
computed by FFT, its peak located on the pixel grid and refined on a grid ``upsample`` times
finer by a matrix-multiply DFT of the cross-power spectrum around the peak (the method of
Guizar-Sicairos, Thurman & Fienup, Opt. Lett. 33, 156 (2008)), then by a parabola through the
finest grid's maximum. :func:`register_and_sum` aligns and sums a stack with it (Baronnier et al.'s
repeat-and-sum).

"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hbtscope.analysis._validate import as_image

__all__ = ["RegisteredSum", "drift_by_cross_correlation", "register_and_sum"]


def _dft_upsampled(spec: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Inverse DFT of ``spec`` evaluated at fractional ``rows`` x ``cols`` (matrix multiply)."""
    ny, nx = spec.shape
    ky = np.fft.fftfreq(ny) * ny
    kx = np.fft.fftfreq(nx) * nx
    ey = np.exp(2j * np.pi * np.outer(rows, ky) / ny)
    ex = np.exp(2j * np.pi * np.outer(kx, cols) / nx)
    return ey @ spec @ ex


def _parabola_peak(c: np.ndarray, i: int, j: int) -> tuple[float, float]:
    def vertex(m1, m0, p1):
        d = m1 - 2 * m0 + p1
        return 0.0 if d >= 0 else float(np.clip(0.5 * (m1 - p1) / d, -0.5, 0.5))

    di = vertex(c[i - 1, j], c[i, j], c[i + 1, j]) if 0 < i < c.shape[0] - 1 else 0.0
    dj = vertex(c[i, j - 1], c[i, j], c[i, j + 1]) if 0 < j < c.shape[1] - 1 else 0.0
    return di, dj


def drift_by_cross_correlation(
    ref, img, *, upsample: int = 50, window: bool = False
) -> tuple[float, float]:
    """Sub-pixel shift ``(dy, dx)`` of ``img`` relative to ``ref`` (img(r) ~ ref(r - d)).

    Each image has its median subtracted (and is multiplied by a Hann window when ``window``);
    the cross-correlation peak is found by FFT and refined by an upsampled matrix DFT to
    ``1/upsample`` pixel and a final parabola. Shifts are modulo the image size (within
    +-N/2).
    """
    a = as_image(ref, "ref")
    b = as_image(img, "img")
    if a.shape != b.shape:
        raise ValueError(f"ref and img must have the same shape, got {a.shape} and {b.shape}")
    up = int(upsample)
    if up < 1:
        raise ValueError("upsample must be >= 1")
    a = a - np.median(a)
    b = b - np.median(b)
    if window:
        w = np.outer(np.hanning(a.shape[0]), np.hanning(a.shape[1]))
        a, b = a * w, b * w
    ny, nx = a.shape
    spec = np.fft.fft2(b) * np.conj(np.fft.fft2(a))
    if ny % 2 == 0:
        spec[ny // 2, :] = 0.0
    if nx % 2 == 0:
        spec[:, nx // 2] = 0.0
    cc = np.fft.ifft2(spec).real
    i, j = np.unravel_index(int(np.argmax(cc)), cc.shape)
    dy = float(i if i <= ny // 2 else i - ny)
    dx = float(j if j <= nx // 2 else j - nx)
    if up > 1:
        half = int(math.ceil(1.5 * up))
        steps = np.arange(-half, half + 1) / up
        fine = _dft_upsampled(spec, dy + steps, dx + steps).real
        fi, fj = np.unravel_index(int(np.argmax(fine)), fine.shape)
        pi_, pj = _parabola_peak(fine, fi, fj)
        dy += (fi - half + pi_) / up
        dx += (fj - half + pj) / up
    else:
        pi_, pj = _parabola_peak(np.fft.fftshift(cc), (i + ny // 2) % ny, (j + nx // 2) % nx)
        dy, dx = dy + pi_, dx + pj
    return float(dy), float(dx)


@dataclass(frozen=True)
class RegisteredSum:
    """Result of :func:`register_and_sum`."""

    image: np.ndarray  # sum of the aligned images
    shifts: np.ndarray  # (n, 2) drift (dy, dx) of each image relative to the reference
    reference: int


def register_and_sum(
    images, *, upsample: int = 50, reference: int = 0, window: bool = False, order: int = 3
) -> RegisteredSum:
    """Align every image of a stack to ``images[reference]`` and sum (repeat-and-sum).

    Shifts come from :func:`drift_by_cross_correlation`; each image is moved back by its shift
    with ``scipy.ndimage.shift`` (spline of ``order``, edges extended).
    """
    stack = np.asarray(images, dtype=np.float64)
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise ValueError(f"images must be a non-empty (n, ny, nx) stack, got {stack.shape}")
    ref = stack[reference]
    shifts = np.zeros((stack.shape[0], 2))
    total = np.zeros(stack.shape[1:])
    for k, im in enumerate(stack):
        if k != reference:
            shifts[k] = drift_by_cross_correlation(ref, im, upsample=upsample, window=window)
            im = ndimage.shift(im, -shifts[k], order=order, mode="nearest")
        total += im
    return RegisteredSum(image=total, shifts=shifts, reference=int(reference))
