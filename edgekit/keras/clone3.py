"""Copy a Keras 3 model layer by layer, replacing some layers (wrap or unwrap them).

Pruning and clustering wrap chosen layers of a copy (`wrap_layers`) and unwrap them again
(`unwrap_layers`); both go through `rebuilt`, so the copy shares no variable with the user's
model.

>>> import keras
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="d")])
>>> copy = rebuilt(model, lambda layer: None, "wrap its layers")
>>> copy.get_layer("d").kernel is model.get_layer("d").kernel
False
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgekit._tf import keras3
from edgekit.errors import UsageError
from edgekit.keras._compat import require_built

keras = keras3()

Replacement = tuple[Any, Any, list[np.ndarray]]


def rebuilt(model: Any, replace: Callable[[Any], Replacement | None], hint: str) -> Any:
    """`model` cloned layer by layer, with the weights copied: it shares no variable with
    `model`. `replace(layer)` returns (new layer, the layer to load, weights) or None (a copy).
    A subclassed model raises a UsageError ending in `hint` (what else the user can do)."""
    if not isinstance(model, keras.Sequential) and type(model).__name__ != "Functional":
        raise UsageError(
            f"model {getattr(model, 'name', '?')!r} ({type(model).__name__}) is a subclassed "
            "Keras 3 model; rebuild it functionally (keras.Input → layers → keras.Model), or "
            + hint
        )
    require_built(model)
    loads: list[tuple[Any, list[np.ndarray]]] = []

    def clone(layer: Any) -> Any:
        replaced = replace(layer)
        if replaced is None:
            new = type(layer).from_config(layer.get_config())
            replaced = new, new, layer.get_weights()
        loads.append(replaced[1:])
        return replaced[0]

    copy = keras.models.clone_model(model, clone_function=clone)
    for target, weights in loads:
        if weights:
            target.set_weights(weights)
    return copy


def wrap_layers(
    model: Any,
    wrapper: type,
    wanted: Callable[[Any], bool],
    make: Callable[[Any], Any],
    what: str,
    hint: str,
) -> Any:
    """A copy whose `wanted` layers are wrapped by `make(copy of the layer)` (a `wrapper`);
    `what` ("prune", "cluster") and `hint` word the errors (none wanted, a subclassed model)."""

    def replace(layer: Any) -> Replacement | None:
        if isinstance(layer, wrapper) or not wanted(layer):
            return None
        inner = type(layer).from_config(layer.get_config())
        return make(inner), inner, layer.get_weights()

    copy = rebuilt(model, replace, hint)
    if not any(isinstance(layer, wrapper) for layer in copy._flatten_layers()):
        raise UsageError(
            f"model {model.name!r} has no layer edgekit can {what} (Dense, Conv, DepthwiseConv, "
            f"SeparableConv, Embedding, or a layer with get_{what}able_weights())"
        )
    return copy


def unwrap_layers(model: Any, wrapper: type, weights: Callable[[Any], list], hint: str) -> Any:
    """A copy with each `wrapper` replaced by a copy of its layer holding `weights(wrapper)`."""

    def replace(layer: Any) -> Replacement | None:
        if not isinstance(layer, wrapper):
            return None
        inner = type(layer.layer).from_config(layer.layer.get_config())
        return inner, inner, weights(layer)

    return rebuilt(model, replace, hint)
