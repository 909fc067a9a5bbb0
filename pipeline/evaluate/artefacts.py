"""Grid artefacts and high frequencies of a set of images, as figures that `dvc metrics diff` shows.

blockN: the mean absolute step in grey between neighbouring pixels across each column boundary i
(between columns i-1 and i, i = 1 .. W-1, averaged over all images and rows) and each row boundary;
the mean of those per-boundary values at i divisible by N over the mean of the rest (rows and columns
pooled). About 1 for natural images; a generator that paints N-pixel tiles scores far above 1.
hf: the share of the mean power spectrum (each image minus its mean, |FFT2|^2, averaged over images)
at normalised radius r > 0.5, r = sqrt((fy / (H/2))^2 + (fx / (W/2))^2) for integer frequencies
fy, fx (fftshifted, -H/2 .. H/2-1). Grey = the mean of R, G and B, as 0-255 floats.
"""
from __future__ import annotations

import numpy as np

CHUNK = 256                     # images at a time: bounded memory at any resolution


def _grey(images: np.ndarray) -> np.ndarray:
    assert images.ndim == 4 and images.shape[3] == 3, images.shape
    return images.astype(np.float64).mean(axis=3)


def boundary_steps(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(columns [W-1], rows [H-1]): mean |grey step| across boundary i = 1 .. W-1 (and 1 .. H-1)."""
    n, h, w = images.shape[:3]
    cols, rows = np.zeros(w - 1), np.zeros(h - 1)
    for start in range(0, n, CHUNK):
        g = _grey(images[start:start + CHUNK])
        cols += np.abs(np.diff(g, axis=2)).sum(axis=(0, 1))
        rows += np.abs(np.diff(g, axis=1)).sum(axis=(0, 2))
    return cols / (n * h), rows / (n * w)


def block_ratio(images: np.ndarray, period: int, steps=None) -> float:
    cols, rows = steps if steps is not None else boundary_steps(images)
    on = [v for i, v in enumerate(cols, 1) if i % period == 0] + [v for i, v in enumerate(rows, 1) if i % period == 0]
    off = [v for i, v in enumerate(cols, 1) if i % period] + [v for i, v in enumerate(rows, 1) if i % period]
    if not on or not off or np.mean(off) == 0:
        return float("nan")
    return float(np.mean(on) / np.mean(off))


def high_frequency_share(images: np.ndarray) -> float:
    n, h, w = images.shape[:3]
    power = np.zeros((h, w))
    for start in range(0, n, CHUNK):
        g = _grey(images[start:start + CHUNK])
        g = g - g.mean(axis=(1, 2), keepdims=True)
        power += (np.abs(np.fft.fft2(g)) ** 2).sum(axis=0)
    power = np.fft.fftshift(power)
    fy = np.arange(h) - h // 2
    fx = np.arange(w) - w // 2
    r = np.sqrt((fy[:, None] / (h / 2)) ** 2 + (fx[None, :] / (w / 2)) ** 2)
    total = power.sum()
    return float(power[r > 0.5].sum() / total) if total > 0 else 0.0


def _rounded(value: float, digits: int) -> float | None:
    # None where a figure has no meaning (block8 of 8-px images has no boundary to measure): JSON has no
    # NaN, and metrics.json must stay strict JSON for `dvc metrics diff` and other readers.
    return None if np.isnan(value) else round(value, digits)


def artefacts(images: np.ndarray) -> dict[str, float | None]:
    """{"block4", "block8", "hf"} of uint8 images [N, H, W, 3]; None where the images are too small."""
    steps = boundary_steps(images)
    return {"block4": _rounded(block_ratio(images, 4, steps), 4), "block8": _rounded(block_ratio(images, 8, steps), 4),
            "hf": round(high_frequency_share(images), 5)}
