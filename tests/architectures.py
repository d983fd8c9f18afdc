"""Architectures edgekit's own zoo does not have, built with Keras 3 as users build them.

`keras.applications` models come with ``weights=None``: nothing is downloaded. Each entry gives
the model and the range its inputs take (0..255 for the applications that rescale inside,
so their input scale is exactly 1.0 once quantized). Used by tests/test_unseen_architectures.py
and benchmarks/corpus.py.

>>> sorted(ARCHITECTURES)[:3]
['attention', 'densenet121', 'efficientnetb0']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[], object]
    input_range: tuple[float, float] = (-1.0, 1.0)
    classes: int = 10


def _mobilenet_v2():
    import keras

    return keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10
    )


def _mobilenet_v3(minimalistic: bool):
    import keras

    return keras.applications.MobileNetV3Small(
        input_shape=(96, 96, 3), weights=None, classes=10, minimalistic=minimalistic
    )


def _efficientnet_b0():
    import keras

    return keras.applications.EfficientNetB0(input_shape=(96, 96, 3), weights=None, classes=10)


def _resnet50():
    import keras

    return keras.applications.ResNet50(input_shape=(64, 64, 3), weights=None, classes=10)


def _densenet121():
    import keras

    return keras.applications.DenseNet121(input_shape=(64, 64, 3), weights=None, classes=10)


def _audio_rnn():
    """Keyword spotting on 49 frames of 40 log-mel features: Conv1D, then a GRU and an LSTM."""
    import keras
    from keras import layers

    inputs = keras.Input((49, 40), name="mel")
    x = layers.Conv1D(32, 3, strides=2, activation="relu")(inputs)
    x = layers.GRU(32, return_sequences=True, unroll=False)(x)
    x = layers.LSTM(32)(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="audio_rnn")


def _attention():
    """A transformer encoder block on 16 tokens: MultiHeadAttention, LayerNormalization."""
    import keras
    from keras import layers

    inputs = keras.Input((16, 32), name="tokens")
    attended = layers.MultiHeadAttention(num_heads=2, key_dim=16)(inputs, inputs)
    x = layers.LayerNormalization()(layers.Add()([inputs, attended]))
    hidden = layers.Dense(64, activation="gelu")(x)
    x = layers.LayerNormalization()(layers.Add()([x, layers.Dense(32)(hidden)]))
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="attention")


def _two_in_two_out():
    """An image and a feature vector in; a class and a regression value out."""
    import keras
    from keras import layers

    image = keras.Input((32, 32, 3), name="image")
    meta = keras.Input((8,), name="meta")
    x = layers.Conv2D(16, 3, strides=2, activation="relu")(image)
    x = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Concatenate()([x, layers.Dense(16, activation="relu")(meta)])
    label = layers.Dense(10, activation="softmax", name="label")(x)
    value = layers.Dense(1, name="value")(x)
    return keras.Model([image, meta], [label, value], name="two_in_two_out")


def _pixels_cnn():
    """A small CNN that takes 0..255 pixels and rescales inside (as keras.applications do):
    its int8 input scale is exactly 1.0. A residual add, a depthwise conv, pooling."""
    import keras
    from keras import layers

    inputs = keras.Input((32, 32, 3), name="pixels")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    y = layers.Conv2D(16, 1)(y)
    x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.MaxPooling2D()(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="pixels_cnn")


ARCHITECTURES = {
    a.name: a
    for a in (
        Architecture("mobilenetv2", _mobilenet_v2),
        Architecture("mobilenetv3small", lambda: _mobilenet_v3(False), (0.0, 255.0)),
        Architecture("mobilenetv3small_min", lambda: _mobilenet_v3(True), (0.0, 255.0)),
        Architecture("efficientnetb0", _efficientnet_b0, (0.0, 255.0)),
        Architecture("resnet50", _resnet50),
        Architecture("densenet121", _densenet121),
        Architecture("audio_rnn", _audio_rnn),
        Architecture("attention", _attention),
        Architecture("two_in_two_out", _two_in_two_out),
        Architecture("pixels_cnn", _pixels_cnn, (0.0, 255.0)),
    )
}


def inputs_for(model, arch: Architecture, n: int, seed: int = 0) -> list[np.ndarray]:
    """`n` samples per model input, uniform over the architecture's input range (whole
    numbers for 0..255 pixels)."""
    rng = np.random.default_rng(seed)
    lo, hi = arch.input_range
    if arch.input_range == (0.0, 255.0):  # pixels are whole numbers, 0 and 255 included
        return [rng.integers(0, 256, (n, *t.shape[1:])).astype("float32") for t in model.inputs]
    return [
        rng.uniform(lo, hi, (n, *tensor.shape[1:])).astype("float32") for tensor in model.inputs
    ]


def train_briefly(model, arch: Architecture, steps: int = 3, seed: int = 0) -> None:
    """A few steps of training on synthetic data: weights that are no longer initial."""
    import keras

    x = inputs_for(model, arch, 16 * steps, seed)
    rng = np.random.default_rng(seed + 1)
    y = []
    for output in model.outputs:
        if output.shape[-1] == arch.classes:
            y.append(keras.utils.to_categorical(rng.integers(0, arch.classes, len(x[0])), 10))
        else:
            y.append(rng.normal(size=(len(x[0]), *output.shape[1:])).astype("float32"))
    losses = [
        "categorical_crossentropy" if o.shape[-1] == arch.classes else "mse" for o in model.outputs
    ]
    model.compile(optimizer="adam", loss=losses if len(losses) > 1 else losses[0])
    model.fit(
        x if len(x) > 1 else x[0], y if len(y) > 1 else y[0], batch_size=16, epochs=1, verbose=0
    )


def save(
    arch_name: str, directory: Path, trained: bool = False, samples: int = 32
) -> tuple[Path, Path]:
    """(model.keras, calibration file) for one architecture, untrained or briefly trained.

    One input: a `.npy`; several: a `.npz` with one array per input name.
    """
    import keras

    arch = ARCHITECTURES[arch_name]
    keras.utils.set_random_seed(0)
    model = arch.build()
    if trained:
        train_briefly(model, arch)
    suffix = "trained" if trained else "untrained"
    path = directory / f"{arch_name}_{suffix}.keras"
    model.save(path)
    x = inputs_for(model, arch, samples, seed=1)
    if len(x) == 1:
        calib = directory / f"{arch_name}_calib.npy"
        np.save(calib, x[0])
    else:
        calib = directory / f"{arch_name}_calib.npz"
        np.savez(calib, **{t.name.split(":")[0]: a for t, a in zip(model.inputs, x, strict=True)})
    return path, calib
