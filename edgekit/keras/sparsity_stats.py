"""How sparse a model's prunable weights are, for both Kerases (wrapped or stripped).

>>> from edgekit.keras.sparsity_stats import total_sparsity
>>> total_sparsity(type("Empty", (), {"layers": []})())
0.0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.keras._compat import is_keras3
from edgekit.keras._tfmot import tfmot
from edgekit.keras.pruning3 import PruneLowMagnitude, prunable_weights, to_numpy


def _prunable_arrays(layer: Any) -> list[np.ndarray]:
    """The arrays pruning acts on: masks of wrapped layers, else the registry's kernels."""
    if is_keras3(layer):
        if isinstance(layer, PruneLowMagnitude):
            return [to_numpy(mask) for mask in layer.masks]
        return [to_numpy(weight) for weight in prunable_weights(layer)]
    sparsity = tfmot().sparsity.keras  # first: tfmot imported the edgekit way
    from tensorflow_model_optimization.python.core.sparsity.keras import (
        prune_registry,
        pruning_wrapper,
    )

    if isinstance(layer, pruning_wrapper.PruneLowMagnitude):
        return [mask.numpy() for _, mask, _ in layer.pruning_vars]
    if isinstance(layer, sparsity.PrunableLayer):
        return [w.numpy() for w in layer.get_prunable_weights()]
    names = prune_registry.PruneRegistry._LAYERS_WEIGHTS_MAP.get(type(layer), [])
    return [getattr(layer, name).numpy() for name in names if hasattr(layer, name)]


def layer_sparsity(model: Any) -> dict[str, float]:
    """Zero fraction of each prunable layer's pruned weights (wrapped or already stripped).

    >>> layer_sparsity(strip_pruning(pruned))                               # doctest: +SKIP
    {'conv2d': 0.8, 'dense': 0.8}
    """
    result = {}
    for layer in model.layers:
        arrays = _prunable_arrays(layer)
        if arrays:
            name = getattr(getattr(layer, "layer", None), "name", layer.name)
            zeros = sum(float(np.sum(a == 0)) for a in arrays)
            result[name] = zeros / sum(a.size for a in arrays)
    return result


def total_sparsity(model: Any) -> float:
    """Zero fraction over all prunable weights, weighted by size."""
    zeros = size = 0
    for layer in model.layers:
        for array in _prunable_arrays(layer):
            zeros += int(np.sum(array == 0))
            size += array.size
    return zeros / size if size else 0.0
