"""How much each channel matters: the criteria channel pruning ranks by (higher = keep).

For a group of channels pruned together (:mod:`edgekit.keras.channels`), each producer layer
(a conv or dense whose filters the channels are) scores its filters; scores are divided by the
layer's mean, so layers of different scale add up, and summed over the group's producers (both
branches of a residual add). W_f is filter f flattened, a and g an activation and the loss's
gradient at it, s a spatial position, n a sample:

| criterion | score of channel f | source |
|---|---|---|
| `l1` | Σ|W_f| | Li et al. 2017, "Pruning filters for efficient convnets" |
| `l2` | ‖W_f‖₂ | Li et al. 2017 |
| `bn_gamma` | |γ_f| of the BatchNormalization after the layer | Liu et al. 2017, network slimming |
| `fpgm` | Σ_j ‖W_f − W_j‖₂ (a filter near the layer's geometric median is replaceable) | He et al. 2019 |
| `taylor` | mean over batches of (Σ_{n,s} a·g)² | Molchanov et al. 2019, first-order Taylor |
| `fisher` | 1/(2N) Σ_n (Σ_s a·g)² (diagonal Fisher, OBD-style second order) | Theis et al. 2018 |

`taylor` and `fisher` take data: `(x, y)`, or `x` alone (the model's own predictions then serve
as labels: the empirical Fisher of the calibration data). Activations are read after the
BatchNormalization that follows a layer, where there is one, else at the layer's output.
Gradients come from a `tf.GradientTape` over the model's own Keras (Keras 3 on the TensorFlow
backend, or tf_keras): one code path for both.

>>> CRITERIA
('l1', 'l2', 'bn_gamma', 'fpgm', 'taylor', 'fisher')
"""  # noqa: E501

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit._tf import tensorflow
from edgekit.errors import UsageError
from edgekit.keras.surgery import keras_of

CRITERIA = ("l1", "l2", "bn_gamma", "fpgm", "taylor", "fisher")
DATA_CRITERIA = ("taylor", "fisher")


def _filters(layer: Any) -> np.ndarray:
    """A producer's filters as rows: [out, everything else]."""
    kind = type(layer).__name__
    weights = layer.get_weights()
    kernel = weights[1] if kind == "SeparableConv2D" else weights[0]
    return np.moveaxis(kernel, -1, 0).reshape(kernel.shape[-1], -1).astype(np.float64)


def _normalized(scores: np.ndarray) -> np.ndarray:
    mean = float(np.mean(np.abs(scores)))
    return scores / mean if mean > 0 else scores


def _following_bn(graph: Any, producer: str) -> Any:
    """The BatchNormalization that directly consumes `producer`, if any."""
    for name, inbound in graph.inputs_of.items():
        layer = graph.layers.get(name)
        if inbound == [producer] and type(layer).__name__ == "BatchNormalization":
            return layer
    return None


def weight_scores(layer: Any, criterion: str) -> np.ndarray:
    filters = _filters(layer)
    if criterion == "l1":
        return np.abs(filters).sum(axis=1)
    if criterion == "l2":
        return np.sqrt((filters**2).sum(axis=1))
    if criterion == "fpgm":
        squared = (filters**2).sum(axis=1)
        gram = squared[:, None] + squared[None, :] - 2 * filters @ filters.T
        distances = np.sqrt(np.maximum(gram, 0.0))
        return distances.sum(axis=1)
    raise ValueError(criterion)


def _taps(graph: Any, groups: list[Any]) -> dict[int, list[str]]:
    """Per group: the layers whose outputs carry its activations (after BN where present)."""
    taps = {}
    for group in groups:
        names = []
        for producer in group.producers:
            bn = _following_bn(graph, producer)
            names.append(bn.name if bn is not None else producer)
        taps[group.id] = names
    return taps


def gradient_scores(
    model: Any, graph: Any, groups: list[Any], criterion: str, data: Any, batch_size: int = 32
) -> dict[int, np.ndarray]:
    """Taylor or Fisher scores per group from activations and loss gradients on `data`."""
    tf = tensorflow()
    keras = keras_of(model)  # a GradientTape sees either Keras's variables (TF backend)
    x, y = data if isinstance(data, tuple) else (data, None)
    x = np.asarray(x, dtype=np.float32)
    taps = _taps(graph, groups)
    names = sorted({name for group_taps in taps.values() for name in group_taps})
    tap_model = keras.Model(model.input, [model.output] + [graph.layers[n].output for n in names])
    probabilities = _ends_in_softmax(model)
    totals = {name: None for name in names}
    batches = 0
    for start in range(0, len(x), batch_size):
        xb = tf.constant(x[start : start + batch_size])
        with tf.GradientTape() as tape:
            outs = tap_model(xb, training=False)
            prediction, acts = outs[0], outs[1:]
            if y is not None:
                target = tf.constant(np.asarray(y)[start : start + batch_size])
            else:
                target = tf.stop_gradient(tf.argmax(prediction, axis=-1))
            loss = keras.losses.sparse_categorical_crossentropy(
                target, prediction, from_logits=not probabilities
            )
            loss = tf.reduce_sum(loss)
        grads = tape.gradient(loss, acts)
        for name, act, grad in zip(names, acts, grads, strict=True):
            product = (act * grad).numpy().astype(np.float64)
            per_sample = product.reshape(product.shape[0], -1, product.shape[-1]).sum(axis=1)
            if criterion == "taylor":
                contribution = per_sample.sum(axis=0) ** 2
            else:
                contribution = (per_sample**2).sum(axis=0) / 2.0
            totals[name] = contribution if totals[name] is None else totals[name] + contribution
        batches += 1
    scores = {}
    for group in groups:
        total = np.zeros(group.size)
        for name in taps[group.id]:
            value = totals[name] / (batches if criterion == "taylor" else len(x))
            total += _normalized(value)
        scores[group.id] = total
    return scores


def _ends_in_softmax(model: Any) -> bool:
    last = model.layers[-1]
    kind = type(last).__name__
    activation = getattr(getattr(last, "activation", None), "__name__", "")
    return kind == "Softmax" or activation == "softmax"


def channel_scores(
    model: Any, graph: Any, groups: list[Any], criterion: str, data: Any = None
) -> dict[int, np.ndarray]:
    """{group id: a score per channel} by `criterion` (see the module docstring)."""
    if criterion not in CRITERIA:
        raise UsageError(f"unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")
    if criterion in DATA_CRITERIA:
        if data is None:
            raise UsageError(f"criterion {criterion} needs data=(x, y) or data=x")
        return gradient_scores(model, graph, groups, criterion, data)
    scores = {}
    for group in groups:
        total = np.zeros(group.size)
        for producer in group.producers:
            layer = graph.layers[producer]
            if criterion == "bn_gamma":
                bn = _following_bn(graph, producer)
                if bn is None or not bn.scale:
                    raise UsageError(
                        f"criterion bn_gamma: layer {producer} has no BatchNormalization with a "
                        "scale after it; use l1, l2, fpgm, taylor or fisher"
                    )
                value = np.abs(bn.get_weights()[0]).astype(np.float64)
            else:
                value = weight_scores(layer, criterion)
            total += _normalized(value)
        scores[group.id] = total
    return scores
