"""BatchNormalization statistics re-estimated on data, after the layers before them changed.

Pruning channels, factorising layers or shrinking γ during training changes what each
BatchNormalization sees, while its moving mean and variance still describe the old network
(or lag behind by their momentum): the model is then wrong at inference though right in
training. Re-estimating the statistics on a few hundred inputs, layer by layer in graph order
(each layer sees inputs normalised by the already corrected ones before it), repairs that
without any gradient step: "adaptive BN" (Li et al. 2020, EagleEye).

Either Keras: the probes are models of the model's own Keras.

>>> recalibrate_batchnorm(smaller, x_train[:512])   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import UsageError
from edgekit.keras._compat import tensorflow_backend
from edgekit.keras.surgery import keras_of


@tensorflow_backend
def recalibrate_batchnorm(model: Any, x: Any, batch_size: int = 128) -> int:
    """Set every BatchNormalization's moving mean/variance to its inputs' statistics on `x`,
    in graph order. Returns how many layers were updated. The model is changed in place."""
    keras = keras_of(model)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2 or len(x) == 0:
        raise UsageError(f"recalibrate_batchnorm needs a batch of inputs; received {x.shape}")
    norms = [layer for layer in model.layers if type(layer).__name__ == "BatchNormalization"]
    for layer in norms:
        rank = len(layer.input.shape)
        if [a % rank for a in np.atleast_1d(layer.axis)] != [rank - 1]:
            raise UsageError(
                f"{layer.name}: recalibration handles channels-last BatchNormalization"
                f" only (axis={layer.axis})"
            )
        probe = keras.Model(model.input, layer.input)
        count, total, squares = 0, 0.0, 0.0
        for start in range(0, len(x), batch_size):
            values = np.asarray(probe(x[start : start + batch_size], training=False), np.float64)
            values = values.reshape(-1, values.shape[-1])
            count += len(values)
            total = total + values.sum(axis=0)
            squares = squares + (values**2).sum(axis=0)
        mean = total / count
        variance = np.maximum(squares / count - mean**2, 0.0)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
    return len(norms)
