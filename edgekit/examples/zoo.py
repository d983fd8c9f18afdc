"""Trained reference models with real structure, made offline and cached.

The digits example is easy: every quantizer gets it right. These are the shapes edge models
really have, trained on :mod:`edgekit.examples.datasets`:

| name | structure | data | task |
|---|---|---|---|
| `resnet8` | MLPerf Tiny's CIFAR ResNet-8: 3 residual stages (16/32/64), ADD, an 8x8 average pool | photo patches | 8 classes |
| `mobilenet` | MobileNet-v1 style (MLPerf Tiny VWW), width 0.25: depthwise-separable blocks, ReLU6, average pool | photo patches | 8 classes |
| `dscnn` | DS-CNN keyword spotter (MLPerf Tiny KWS, 64 channels) on 49x10 log-mel frames, average pool | synthetic keywords | 6 classes |
| `autoencoder` | dense anomaly-detection autoencoder (MLPerf Tiny AD, narrower) on 160 log-mel values | synthetic machine hum | reconstruction |

As in MLPerf Tiny, the classifiers end in an `AveragePooling2D` over the whole feature map,
`Flatten` and a `Dense` softmax: the global average pool that int8 handles badly (its output
must keep its input's scale). Every layer has a stable name (`stem`, `s2_conv1`, `dw3_bn`,
`logits`, ...), whatever else the process has built. Each is trained deterministically once
and cached beside the digits example (`EDGEKIT_CACHE_DIR`). Training takes 10-45 s on two cores.

>>> sorted(SPECS)
['autoencoder', 'dscnn', 'mobilenet', 'resnet8']
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit._tf import tensorflow, tf_keras
from edgekit.data import Dataset
from edgekit.examples.datasets import keyword_spectrograms, machine_frames, photo_patches


def _average_pool_head(keras: Any, x: Any, classes: int) -> Any:
    """MLPerf Tiny's classifier head: average pool over the whole map, flatten, softmax."""
    layers = keras.layers
    x = layers.AveragePooling2D(pool_size=tuple(int(d) for d in x.shape[1:3]), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(classes, name="logits")(x)
    return layers.Softmax(name="softmax")(x)


def resnet8(keras: Any, classes: int = 8, widths: tuple[int, int, int] = (16, 32, 64)) -> Any:
    """MLPerf Tiny's ResNet-8 for 32x32x3 inputs, ending in softmax."""
    layers = keras.layers
    inputs = keras.Input((32, 32, 3), name="image")

    def conv_bn(x: Any, name: str, filters: int, strides: int = 1, relu: bool = True) -> Any:
        x = layers.Conv2D(filters, 3, strides, padding="same", use_bias=False, name=name)(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x) if relu else x

    x = conv_bn(inputs, "stem", widths[0])
    for stage, filters in enumerate(widths, start=1):
        strides = 1 if stage == 1 else 2
        y = conv_bn(x, f"s{stage}_conv1", filters, strides)
        y = conv_bn(y, f"s{stage}_conv2", filters, relu=False)
        if strides != 1 or x.shape[-1] != filters:
            x = layers.Conv2D(filters, 1, strides, use_bias=False, name=f"s{stage}_shortcut")(x)
            x = layers.BatchNormalization(momentum=0.9, name=f"s{stage}_shortcut_bn")(x)
        x = layers.Add(name=f"s{stage}_add")([x, y])
        x = layers.ReLU(name=f"s{stage}_relu")(x)
    return keras.Model(inputs, _average_pool_head(keras, x, classes), name="resnet8")


def mobilenet(keras: Any, classes: int = 8, alpha: float = 0.25, size: int = 32) -> Any:
    """MobileNet-v1 style depthwise-separable net for size x size x 3 inputs (32 for the
    reference example; the structured-compression benchmark also trains α 0.5 at 64)."""
    layers = keras.layers
    inputs = keras.Input((size, size, 3), name="image")

    def bn_relu6(x: Any, name: str) -> Any:
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_relu")(x)

    stem = layers.Conv2D(int(32 * alpha), 3, 2, padding="same", use_bias=False, name="stem")
    x = bn_relu6(stem(inputs), "stem")
    blocks = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2))
    for block, (filters, strides) in enumerate(blocks, start=1):
        x = layers.DepthwiseConv2D(3, strides, padding="same", use_bias=False, name=f"dw{block}")(x)
        x = bn_relu6(x, f"dw{block}")
        x = bn_relu6(
            layers.Conv2D(int(filters * alpha), 1, use_bias=False, name=f"pw{block}")(x),
            f"pw{block}",
        )
    return keras.Model(inputs, _average_pool_head(keras, x, classes), name="mobilenet")


def dscnn(keras: Any, classes: int = 6, filters: int = 64) -> Any:
    """DS-CNN keyword spotter (MLPerf Tiny KWS) on (49, 10, 1) log-mel frames."""
    layers = keras.layers
    inputs = keras.Input((49, 10, 1), name="mfcc")

    def bn_relu(x: Any, name: str) -> Any:
        x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    stem = layers.Conv2D(filters, (10, 4), (2, 2), padding="same", use_bias=False, name="stem")
    x = bn_relu(stem(inputs), "stem")
    for block in range(1, 5):
        x = bn_relu(
            layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{block}")(x),
            f"dw{block}",
        )
        x = bn_relu(layers.Conv2D(filters, 1, use_bias=False, name=f"pw{block}")(x), f"pw{block}")
    return keras.Model(inputs, _average_pool_head(keras, x, classes), name="dscnn")


def autoencoder(keras: Any, width: int = 64, bottleneck: int = 8) -> Any:
    """Dense autoencoder (MLPerf Tiny AD shape, narrower): 160 → 8 → 160."""
    layers = keras.layers
    inputs = keras.Input((160,), name="frames")
    x = inputs
    for index, units in enumerate((width, width, width, bottleneck, width, width, width), 1):
        x = layers.Dense(units, name=f"dense{index}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"dense{index}_bn")(x)
        x = layers.ReLU(name=f"dense{index}_relu")(x)
    outputs = layers.Dense(160, name="reconstruction")(x)
    return keras.Model(inputs, outputs, name="autoencoder")


def _splits(
    sample: Callable[[int, int], tuple[np.ndarray, np.ndarray | None]], name: str, train: int
) -> tuple[Dataset, Dataset, Dataset]:
    """(train, calibration, validation) from `sample(n, seed)`, each split its own seed."""
    x, y = sample(train, 0)
    calibration, _ = sample(200, 2)
    vx, vy = sample(500, 1)
    return (
        Dataset(x, y, f"{name}:train"),
        Dataset(calibration, None, f"{name}:calibration"),
        Dataset(vx, vy, f"{name}:validation"),
    )


def _photo_data() -> tuple[Dataset, Dataset, Dataset]:
    return _splits(lambda n, seed: photo_patches(n, seed=seed), "photo patches", 6000)


def _keyword_data() -> tuple[Dataset, Dataset, Dataset]:
    return _splits(keyword_spectrograms, "keywords", 3000)


def _machine_data() -> tuple[Dataset, Dataset, Dataset]:
    return _splits(lambda n, seed: (machine_frames(n, seed), None), "machine hum", 3000)


@dataclass(frozen=True)
class Spec:
    """How to build, feed and train one reference model."""

    build: Callable[[Any], Any]
    data: Callable[[], tuple[Dataset, Dataset, Dataset]]
    epochs: int
    learning_rate: float
    loss: str
    task: str
    version: int = 4  # 3: every layer has a stable name; 4: saved as a Keras 3 file


SPECS = {
    "resnet8": Spec(
        resnet8, _photo_data, 12, 3e-3, "sparse_categorical_crossentropy", "classification"
    ),
    "mobilenet": Spec(
        mobilenet, _photo_data, 12, 3e-3, "sparse_categorical_crossentropy", "classification"
    ),
    "dscnn": Spec(
        dscnn, _keyword_data, 8, 3e-3, "sparse_categorical_crossentropy", "classification"
    ),
    "autoencoder": Spec(autoencoder, _machine_data, 12, 2e-3, "mse", "regression"),
}


def train(name: str, path: Any, epochs: int | None = None) -> None:
    """Train `name` deterministically and save it to `path` as a Keras 3 `.keras` file.

    The training runs in tf_keras, as it has since these models were first published, so every
    figure measured on them (docs/benchmarks.md) still holds; the file is Keras 3's.
    """
    spec = SPECS[name]
    tf = tensorflow()
    keras = tf_keras()
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    train_set, _, _ = spec.data()
    model = spec.build(keras)
    metrics = ["accuracy"] if spec.task == "classification" else []
    model.compile(
        optimizer=keras.optimizers.Adam(spec.learning_rate), loss=spec.loss, metrics=metrics
    )
    y = train_set.y if spec.task == "classification" else train_set.x
    model.fit(train_set.x, y, epochs=epochs or spec.epochs, batch_size=64, shuffle=True, verbose=0)
    save_keras3(model, spec.build, path)


def save_keras3(trained: Any, build: Callable[[Any], Any], path: Any) -> None:
    """Save a trained model as a Keras 3 `.keras` file: `build(keras)` makes the same
    architecture (the same layer names) in Keras 3, which takes the trained weights."""
    import keras

    model = build(keras)
    model.set_weights(trained.get_weights())
    model.save(path)


def splits(name: str) -> tuple[Dataset, Dataset, Dataset]:
    """(train, calibration, validation) of a reference model; regression validation sets
    carry no labels."""
    return SPECS[name].data()
