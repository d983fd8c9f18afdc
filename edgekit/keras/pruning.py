"""Magnitude pruning: edgekit's own for Keras 3 models, tfmot for tf_keras ones.

`prune_low_magnitude` looks at the model: a Keras 3 model gets a Keras 3 copy with
edgekit's `PruneLowMagnitude` layers (edgekit.keras.pruning3), a tf_keras model tfmot's
wrappers. The schedules (edgekit.keras.schedules), `UpdatePruningStep`, `strip_pruning`,
`layer_sparsity` and `total_sparsity` are the same names for both.

>>> import numpy as np
>>> from edgekit.keras import pruning_schedule
>>> schedule = pruning_schedule(0.8, epochs=10, steps_per_epoch=50)
>>> schedule.end_step, schedule.final_sparsity  # pruning ends at 80 % of training
(400, 0.8)
"""

from __future__ import annotations

from typing import Any

from edgekit.errors import UsageError
from edgekit.keras._compat import (
    copy_model,
    ensure_tf_keras,
    is_keras3,
    tensorflow_backend,
    unsupported_layers_error,
)
from edgekit.keras._tfmot import tfmot
from edgekit.keras.pruning3 import prune_keras3, strip_keras3
from edgekit.keras.schedules import ConstantSparsity, PolynomialDecay, pruning_schedule
from edgekit.keras.sparsity_stats import (  # noqa: F401  (public here as before)
    layer_sparsity,
    total_sparsity,
)

__all__ = [
    "ConstantSparsity",
    "PolynomialDecay",
    "layer_sparsity",
    "prune_low_magnitude",
    "pruning_schedule",
    "strip_pruning",
    "total_sparsity",
]

PRUNING_ALTERNATIVES = (
    "implement tfmot's PrunableLayer (get_prunable_weights) on the layer, or prune only the "
    "layers that support it: prune_low_magnitude(layer) inside the model definition"
)


def __getattr__(name: str) -> Any:
    # tfmot's own names, imported on first use.
    if name == "PruningSummaries":
        return getattr(tfmot().sparsity.keras, name)
    if name == "UpdatePruningStep":
        # on first use: edgekit.keras.callbacks loads tf_keras and the deploy pipeline
        from edgekit.keras.callbacks import UpdatePruningStep

        return UpdatePruningStep
    raise AttributeError(name)


def _prunable(layer: Any) -> bool:
    keras_sparsity = tfmot().sparsity.keras
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    if not layer.weights:
        return True
    return isinstance(layer, keras_sparsity.PrunableLayer) or prune_registry.PruneRegistry.supports(
        layer
    )


@tensorflow_backend
def prune_low_magnitude(
    model_or_layers: Any,
    schedule: Any = None,
    block_size: tuple[int, int] = (1, 1),
    sparsity_m_by_n: tuple[int, int] | None = None,
    **kwargs: Any,
) -> Any:
    """Wrap a model (or, for tf_keras, a layer or a list of layers) for magnitude pruning.

    A Keras 3 model gives a Keras 3 model (edgekit's `PruneLowMagnitude` layers; Keras 3
    saves and reloads it as `.keras`); a tf_keras one goes to tfmot (`block_size`,
    `sparsity_m_by_n` and tfmot's other options: tf_keras only; rebuild a Keras 3 model with
    `ensure_tf_keras` to use them). Train with `UpdatePruningStep` in the callbacks, then
    `strip_pruning` before deploying. The model is copied first, so the original keeps its
    weights (a teacher made of it is not the student).
    """
    schedule = schedule if schedule is not None else ConstantSparsity(0.5, 0)
    if is_keras3(model_or_layers):
        if block_size != (1, 1) or sparsity_m_by_n is not None or kwargs:
            options = ["block_size"] * (block_size != (1, 1)) + list(kwargs)
            options += ["sparsity_m_by_n"] * (sparsity_m_by_n is not None)
            raise UsageError(
                f"{', '.join(options)}: tfmot options, for tf_keras models only; prune "
                "ensure_tf_keras(model) to use them"
            )
        return prune_keras3(model_or_layers, schedule)
    sparsity = tfmot().sparsity.keras
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


@tensorflow_backend
def strip_pruning(model: Any) -> Any:
    """Remove pruning wrappers; the zeros stay in the weights (a new model for Keras 3)."""
    if is_keras3(model):
        return strip_keras3(model)
    return tfmot().sparsity.keras.strip_pruning(model)
