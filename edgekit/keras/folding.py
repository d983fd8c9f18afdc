"""Fold BatchNormalization into the Conv2D / DepthwiseConv2D / Dense layer before it.

The TFLite converter folds BatchNorm anyway. Doing it in Keras first matters for per-tensor
QAT: tfmot fake-quantizes a conv's kernel *before* the BatchNorm scale is applied, so once the
converter folds the per-channel BatchNorm scale into a per-tensor-quantized kernel the learned
range no longer fits and the conv is left in float. With BatchNorm folded first, the kernel
QAT trains is the kernel that ships.

    y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta
      = conv'(x) + b'   with  k' = k * s,  b' = (b - mean) * s + beta,  s = gamma / sqrt(var + eps)

>>> folded = fold_batchnorm(model)    # a new model, same Keras; `model` untouched # doctest: +SKIP
>>> [type(layer).__name__ for layer in folded.layers]                           # doctest: +SKIP
['Conv2D', 'ReLU', 'DepthwiseConv2D', 'ReLU', ...]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import UsageError
from edgekit.keras import surgery
from edgekit.keras._compat import tensorflow_backend

FOLDABLE = ("Conv2D", "DepthwiseConv2D", "Dense")


def foldable_pairs(model: Any) -> dict[str, Any]:
    """`{batchnorm_name: layer_before_it}` for every BatchNorm that can be folded.

    Foldable: the BatchNorm is called once, normalises the last axis, and its input comes from
    a Conv2D/DepthwiseConv2D/Dense with a linear activation whose output feeds nothing else.
    """
    pairs = {}
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization" or len(layer._inbound_nodes) != 1:
            continue
        inbound = surgery.producers(layer)
        if len(inbound) != 1:
            continue
        inbound = inbound[0]
        axis = [int(a) for a in np.atleast_1d(layer.axis)]
        last_axis = axis in ([-1], [len(inbound.output.shape) - 1])
        if (
            type(inbound).__name__ in FOLDABLE
            and last_axis
            and getattr(inbound.activation, "__name__", "") == "linear"
            and len(inbound._inbound_nodes) == 1
            and len(inbound._outbound_nodes) == 1
        ):
            pairs[layer.name] = inbound
    return pairs


def _folded_weights(layer: Any, bn: Any) -> list[np.ndarray]:
    kernel = layer.get_weights()[0]
    out_channels = bn.moving_mean.shape[0]
    bias = layer.bias.numpy() if layer.use_bias else np.zeros(out_channels, kernel.dtype)
    gamma = bn.gamma.numpy() if bn.scale else np.ones(out_channels, kernel.dtype)
    beta = bn.beta.numpy() if bn.center else np.zeros(out_channels, kernel.dtype)
    scale = gamma / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
    if type(layer).__name__ == "DepthwiseConv2D":  # output channel = in * multiplier + m
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:  # Conv2D (kh, kw, in, out), Dense (in, out)
        kernel = kernel * scale
    return [kernel, (bias - bn.moving_mean.numpy()) * scale + beta]


@tensorflow_backend
def fold_batchnorm(model: Any, *, strict: bool = False) -> Any:
    """A new model of the same Keras with each foldable BatchNorm merged into the layer before it.

    Inference outputs match the original up to float rounding (training-mode BatchNorm is gone,
    so fine-tune with a lower learning rate). `strict=True` raises if a BatchNorm remains.
    The input model is never modified.
    """
    pairs = foldable_pairs(model)
    if strict:
        left = [
            layer.name
            for layer in model.layers
            if type(layer).__name__ == "BatchNormalization" and layer.name not in pairs
        ]
        if left:
            raise UsageError(
                f"cannot fold BatchNormalization layer(s) {left} into the layer before them "
                f"(foldable: a {'/'.join(FOLDABLE)} with linear activation feeding only that "
                "BatchNorm, normalising the last axis)"
            )
    renames = {bn: layer.name for bn, layer in pairs.items()}
    folded = {layer.name: bn for bn, layer in pairs.items()}
    config = model.get_config()
    layers = [entry for entry in config["layers"] if entry["config"]["name"] not in renames]
    for entry in layers:
        if entry["config"]["name"] in folded:
            entry["config"]["use_bias"] = True
        if "inbound_nodes" in entry:
            entry["inbound_nodes"] = surgery.rename_references(entry["inbound_nodes"], renames)
    config["layers"] = layers
    if "output_layers" in config:
        config["output_layers"] = surgery.rename_references(config["output_layers"], renames)
    rebuilt = surgery.from_config(model, config)
    for layer in rebuilt.layers:
        source = model.get_layer(layer.name)
        if layer.name in folded:
            layer.set_weights(_folded_weights(source, model.get_layer(folded[layer.name])))
        else:
            layer.set_weights(source.get_weights())
    return rebuilt
