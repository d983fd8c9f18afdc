"""Magnitude pruning, backed by tfmot, with a schedule helper that thinks in epochs.

>>> import numpy as np
>>> from edgekit.keras import pruning_schedule
>>> schedule = pruning_schedule(0.8, epochs=10, steps_per_epoch=50)
>>> schedule.end_step, schedule.final_sparsity  # pruning ends at 80 % of training
(400, 0.8)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgekit.errors import UsageError
from edgekit.keras._compat import copy_model, ensure_tf_keras, unsupported_layers_error
from edgekit.keras._tfmot import tfmot

PRUNING_ALTERNATIVES = (
    "implement tfmot's PrunableLayer (get_prunable_weights) on the layer, or prune only the "
    "layers that support it: prune_low_magnitude(layer) inside the model definition"
)


def __getattr__(name: str) -> Any:
    # tfmot's schedule classes, under tfmot's names, imported on first use.
    if name in ("ConstantSparsity", "PolynomialDecay", "UpdatePruningStep", "PruningSummaries"):
        return getattr(tfmot().sparsity.keras, name)
    raise AttributeError(name)


def pruning_schedule(
    final_sparsity: float,
    *,
    epochs: int,
    steps_per_epoch: int,
    initial_sparsity: float = 0.0,
    begin_epoch: int = 0,
    end_epoch: int | None = None,
    frequency: int | None = None,
    constant: bool = False,
    power: int = 3,
) -> Any:
    """A tfmot schedule from epochs instead of steps.

    By default Zhu & Gupta's cubic `PolynomialDecay` from `initial_sparsity` to
    `final_sparsity` between `begin_epoch` and `end_epoch` (default: the last 20 % of training
    is left for recovery, so pruning ends at 80 % of `epochs`). `constant=True` gives
    `ConstantSparsity` from `begin_epoch`. `frequency` defaults to about 10 updates per epoch.
    """
    if not 0.0 <= initial_sparsity <= final_sparsity < 1.0:
        raise UsageError(
            f"sparsity must satisfy 0 <= initial <= final < 1; received initial="
            f"{initial_sparsity}, final={final_sparsity}"
        )
    if epochs <= 0 or steps_per_epoch <= 0:
        raise UsageError(
            f"epochs and steps_per_epoch must be > 0; received {epochs}, {steps_per_epoch}"
        )
    sparsity = tfmot().sparsity.keras
    end_epoch = (
        end_epoch if end_epoch is not None else max(begin_epoch + 1, math.ceil(0.8 * epochs))
    )
    begin_step = begin_epoch * steps_per_epoch
    end_step = end_epoch * steps_per_epoch
    frequency = frequency or max(1, steps_per_epoch // 10)
    if constant:
        return sparsity.ConstantSparsity(final_sparsity, begin_step, frequency=frequency)
    return sparsity.PolynomialDecay(
        initial_sparsity, final_sparsity, begin_step, end_step, power=power, frequency=frequency
    )


def _prunable(layer: Any) -> bool:
    keras_sparsity = tfmot().sparsity.keras
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    if not layer.weights:
        return True
    return isinstance(layer, keras_sparsity.PrunableLayer) or prune_registry.PruneRegistry.supports(
        layer
    )


def prune_low_magnitude(
    model_or_layers: Any,
    schedule: Any = None,
    block_size: tuple[int, int] = (1, 1),
    sparsity_m_by_n: tuple[int, int] | None = None,
    **kwargs: Any,
) -> Any:
    """Wrap a model (or a layer, or a list of layers) for magnitude pruning (tfmot).

    Keras 3 models are rebuilt in tf_keras first. Train with `UpdatePruningStep` in the
    callbacks, then `strip_pruning` before deploying. A whole model is copied first: tfmot
    wraps the model's own layers, so pruning would otherwise zero the original's kernels too
    (and a teacher made of it would be the student).
    """
    sparsity = tfmot().sparsity.keras
    schedule = schedule if schedule is not None else sparsity.ConstantSparsity(0.5, 0)
    if isinstance(model_or_layers, (list, tuple)) or not hasattr(model_or_layers, "layers"):
        target = model_or_layers
        layers = list(target) if isinstance(target, (list, tuple)) else [target]
    else:
        target = _own_copy(ensure_tf_keras(model_or_layers))
        layers = target.layers
    bad = [layer for layer in layers if not _prunable(layer)]
    if bad:
        raise unsupported_layers_error("prune", bad, PRUNING_ALTERNATIVES)
    options = dict(pruning_schedule=schedule, block_size=block_size, **kwargs)
    if sparsity_m_by_n is not None:
        options["sparsity_m_by_n"] = sparsity_m_by_n
    return sparsity.prune_low_magnitude(target, **options)


def _own_copy(model: Any) -> Any:
    """A Sequential/Functional model with its own variables (same weights); others as given."""
    if type(model).__name__ not in ("Sequential", "Functional"):
        return model
    return copy_model(model)


def strip_pruning(model: Any) -> Any:
    """Remove pruning wrappers; the zeros stay in the weights."""
    return tfmot().sparsity.keras.strip_pruning(model)


def _prunable_arrays(layer: Any) -> list[np.ndarray]:
    """The arrays pruning acts on: masks of wrapped layers, else the registry's kernels."""
    from tensorflow_model_optimization.python.core.sparsity.keras import (
        prune_registry,
        pruning_wrapper,
    )

    sparsity = tfmot().sparsity.keras
    if isinstance(layer, pruning_wrapper.PruneLowMagnitude):
        return [mask.numpy() for _, mask, _ in layer.pruning_vars]
    if isinstance(layer, sparsity.PrunableLayer):
        return [w.numpy() for w in layer.get_prunable_weights()]
    names = prune_registry.PruneRegistry._LAYERS_WEIGHTS_MAP.get(type(layer), [])
    return [getattr(layer, name).numpy() for name in names if hasattr(layer, name)]


def layer_sparsity(model: Any) -> dict[str, float]:
    """Zero fraction of each prunable layer's pruned weights (wrapped or already stripped).

    >>> from edgekit._tf import tf_keras                                   # doctest: +SKIP
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
