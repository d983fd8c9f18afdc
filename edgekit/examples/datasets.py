"""Training data made offline: patches of the photos scikit-learn ships, and synthetic audio.

Nothing is downloaded. Both sets have the statistics edge models meet in the field, which the
8x8 digits do not: natural-image colour and texture, and log-mel spectrograms of tonal sounds
in noise.

- :func:`photo_patches`: 32x32 RGB crops of `sklearn.datasets.load_sample_images()` (a temple
  and a flower, 427x640 each), labelled by where they come from: which photo and which quarter
  of it (8 classes, a self-supervised label a small CNN learns to ~80 %). Half are mirrored.
- :func:`keyword_spectrograms`: 1 s clips at 8 kHz of six tone "keywords" (rising, falling,
  two steady pitches, a warble, a two-note call), pitch- and time-shifted, in noise; as 49x10
  log-mel frames, the input of the DS-CNN keyword spotters of MLPerf Tiny.
- :func:`machine_frames`: five stacked 32-band log-mel frames of a humming machine (harmonics
  of a random fundamental with noise): the input of a dense anomaly-detection autoencoder.

>>> x, y = photo_patches(4, seed=0)
>>> x.shape, x.dtype, int(y.max()) < 8
((4, 32, 32, 3), dtype('float32'), True)
"""

from __future__ import annotations

from functools import cache

import numpy as np

SAMPLE_RATE = 8000
KEYWORDS = ("rising", "falling", "low", "high", "warble", "two-note")


@cache
def _photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images  # scikit-learn is slow to import

    return tuple(image.astype(np.float32) / 255.0 for image in load_sample_images().images)


def photo_patches(
    n: int, size: int = 32, seed: int = 0, grid: tuple[int, int] = (2, 2)
) -> tuple[np.ndarray, np.ndarray]:
    """`n` crops in [0, 1] and their location labels (photo, grid cell)."""
    photos = _photos()
    rng = np.random.default_rng(seed)
    xs = np.empty((n, size, size, 3), dtype=np.float32)
    ys = np.empty(n, dtype=np.int64)
    cells = grid[0] * grid[1]
    for i in range(n):
        k = int(rng.integers(len(photos)))
        image = photos[k]
        row, col = int(rng.integers(grid[0])), int(rng.integers(grid[1]))
        h, w = image.shape[0] // grid[0], image.shape[1] // grid[1]
        r = row * h + int(rng.integers(0, h - size))
        c = col * w + int(rng.integers(0, w - size))
        patch = image[r : r + size, c : c + size]
        xs[i] = patch[:, ::-1] if rng.random() < 0.5 else patch
        ys[i] = k * cells + row * grid[1] + col
    return xs, ys


def _mel_filters(bands: int, fft_bins: int, low: float = 60.0, high: float = 3800.0) -> np.ndarray:
    def mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    edges = 700.0 * (10 ** (np.linspace(mel(low), mel(high), bands + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0, SAMPLE_RATE / 2, fft_bins)
    filters = np.zeros((bands, fft_bins), dtype=np.float32)
    for b in range(bands):
        left, centre, right = edges[b], edges[b + 1], edges[b + 2]
        rise = (freqs - left) / (centre - left)
        fall = (right - freqs) / (right - centre)
        filters[b] = np.clip(np.minimum(rise, fall), 0.0, None)
    return filters


def log_mel(signal: np.ndarray, bands: int, frame: int = 240, hop: int = 160) -> np.ndarray:
    """Log-mel energies, frames x bands (Hann window, 256-point FFT)."""
    count = 1 + (len(signal) - frame) // hop
    index = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    frames = signal[index] * np.hanning(frame)[None, :]
    power = np.abs(np.fft.rfft(frames, n=256)) ** 2
    return np.log(power @ _mel_filters(bands, power.shape[1]).T + 1e-6).astype(np.float32)


def _keyword(label: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    base = 300.0 * 2 ** rng.uniform(-0.5, 0.5)
    start, length = rng.uniform(0.05, 0.35), rng.uniform(0.4, 0.6)
    active = (t >= start) & (t < start + length)
    u = np.clip((t - start) / length, 0.0, 1.0)
    shapes = {
        0: base * (1 + 2 * u),  # rising
        1: base * (3 - 2 * u),  # falling
        2: base * np.ones_like(u),  # low
        3: 4 * base * np.ones_like(u),  # high
        4: 2 * base * (1 + 0.2 * np.sin(2 * np.pi * 8 * u)),  # warble
        5: np.where(u < 0.5, 1.5 * base, 3 * base),  # two-note
    }
    phase = 2 * np.pi * np.cumsum(shapes[label]) / SAMPLE_RATE
    tone = np.sin(phase) + 0.3 * np.sin(2 * phase)
    envelope = active * np.sin(np.pi * u) ** 0.5
    return (tone * envelope * rng.uniform(0.3, 1.0)).astype(np.float32)


def keyword_spectrograms(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` clips as (49, 10, 1) log-mel frames (roughly standardised) and keyword labels."""
    rng = np.random.default_rng(seed)
    xs = np.empty((n, 49, 10, 1), dtype=np.float32)
    ys = rng.integers(len(KEYWORDS), size=n)
    for i, label in enumerate(ys):
        noise = rng.normal(0, rng.uniform(0.02, 0.15), SAMPLE_RATE).astype(np.float32)
        features = log_mel(_keyword(int(label), rng) + noise, bands=10)
        xs[i, :, :, 0] = (features - 2.2) / 2.0
    return xs, ys.astype(np.int64)


def machine_frames(n: int, seed: int = 0, anomalous: bool = False) -> np.ndarray:
    """`n` vectors of 5 stacked 32-band log-mel frames (160 values) of a humming machine;
    `anomalous` adds a rattle the normal sound never has."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, 160), dtype=np.float32)
    t = np.arange(SAMPLE_RATE // 4) / SAMPLE_RATE
    for i in range(n):
        f0 = rng.uniform(90, 140)
        hum = sum(rng.uniform(0.2, 1.0) / h * np.sin(2 * np.pi * h * f0 * t) for h in range(1, 6))
        signal = hum + rng.normal(0, 0.05, len(t))
        if anomalous:
            signal += 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(900, 1500) * t))
        features = log_mel(signal.astype(np.float32), bands=32)[:5]
        out[i] = ((features - 1.4) / 2.5).reshape(-1)
    return out
