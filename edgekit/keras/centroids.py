"""Initial cluster centroids for weight clustering, in NumPy (the maths tfmot's options name).

- ``"kmeans++"`` (the default): greedy k-means++ seeding (Arthur & Vassilvitskii 2007): the
  first centroid is a random weight; each next one is the best, by total squared distance, of
  2 + ⌊ln k⌋ weights drawn with probability ∝ D² (the squared distance to the nearest
  centroid so far). Seeded: the same weights give the same centroids.
- ``"linear"``: k values evenly spaced from min(w) to max(w).
- ``"density_based"``: from the weights' CDF sampled on 30 points spanning [min − gap,
  max + gap]: centroid i is the first grid point whose CDF exceeds p_i, p evenly spaced in
  [0.01, 1] (more centroids where the weights are dense).
- ``"random"``: uniform in [min(w), max(w)].

With `preserve_sparsity`, one centroid is exactly 0 and the others are shared between the
negative and the positive weights in proportion to their counts, each side initialised alone.
`init_method` also takes tfmot's `CentroidInitialization` values.

>>> import numpy as np
>>> initial_centroids(np.array([-1.0, 0.0, 0.5, 1.0]), 3, "linear").tolist()
[-1.0, 0.0, 1.0]
>>> initial_centroids(np.array([-2.0, -1.0, 0.0, 1.0, 3.0]), 5, "linear", True).tolist()
[-2.0, -1.0, 0.0, 1.0, 3.0]
>>> init_method("CentroidInitialization.KMEANS_PLUS_PLUS"), init_method("Density-Based")
('kmeans++', 'density_based')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import UsageError

METHODS = ("kmeans++", "linear", "density_based", "random")
_ALIASES = {"kmeans_plus_plus": "kmeans++", "kmeans": "kmeans++", "density": "density_based"}
CDF_POINTS = 30


def init_method(value: Any) -> str:
    """edgekit's name for a centroid initialisation: a string or tfmot's enum; None → k-means++."""
    if value is None:
        return "kmeans++"
    text = str(getattr(value, "value", value)).rsplit(".", 1)[-1].lower().replace("-", "_")
    method = _ALIASES.get(text, text)
    if method not in METHODS:
        raise UsageError(f"cluster_centroids_init must be one of {METHODS}; received {value!r}")
    return method


def initial_centroids(
    weights: Any,
    number_of_clusters: int,
    method: str = "kmeans++",
    preserve_sparsity: bool = False,
    seed: int = 9,
) -> np.ndarray:
    """`number_of_clusters` float32 centroids for `weights` (any shape), by `method`."""
    values = np.asarray(weights, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    k = number_of_clusters
    if not preserve_sparsity:
        parts = [_interval(values, k, method, rng, 0.01)]
    else:
        negative, positive = values[values < 0], values[values > 0]
        if negative.size + positive.size == 0:
            return np.zeros(k, np.float32)
        n_negative = int(np.round((k - 1) * negative.size / (negative.size + positive.size)))
        parts = [
            _interval(negative, n_negative, method, rng, _gap(negative)),
            np.zeros(1),
            _interval(positive, k - 1 - n_negative, method, rng, _gap(positive)),
        ]
    return np.concatenate(parts).astype(np.float32)


def _gap(side: np.ndarray) -> float:
    """The CDF grid's margin for one side of zero: at most half its distance to zero."""
    return min(0.01, abs(side.min()) / 2, abs(side.max()) / 2) if side.size else 0.0


def _interval(values: np.ndarray, n: int, method: str, rng: Any, gap: float) -> np.ndarray:
    if n <= 0:
        return np.zeros(0)
    if values.size == 0:
        return np.zeros(n)
    low, high = values.min(), values.max()
    if method == "linear":
        return np.linspace(low, high, n)
    if method == "random":
        return rng.uniform(low, high, n)
    if method == "density_based":
        grid = np.linspace(low - gap, high + gap, CDF_POINTS)
        cdf = np.searchsorted(np.sort(values), grid, side="right") / values.size
        first = np.searchsorted(cdf, np.linspace(0.01, 1, n), side="right")
        return grid[np.minimum(first, CDF_POINTS - 1)]
    return kmeans_plus_plus(values, n, rng)


def kmeans_plus_plus(values: np.ndarray, n: int, rng: Any) -> np.ndarray:
    """Greedy k-means++ seeding of 1-D `values`: n centroids, each one of the values.

    >>> kmeans_plus_plus(np.array([0.0, 0.1, 5.0, 5.1]), 2, np.random.default_rng(0)).tolist()
    [5.1, 0.0]
    """
    centroids = [values[rng.integers(values.size)]]
    nearest = (values - centroids[0]) ** 2
    trials = 2 + int(np.log(n))
    for _ in range(1, n):
        total = nearest.sum()
        if total <= 0:  # fewer distinct values than centroids: repeat one
            centroids.append(centroids[-1])
            continue
        candidates = values[rng.choice(values.size, trials, p=nearest / total)]
        distances = np.minimum(nearest, (values[None, :] - candidates[:, None]) ** 2)
        best = int(np.argmin(distances.sum(axis=1)))
        centroids.append(candidates[best])
        nearest = distances[best]
    return np.asarray(centroids)
