"""The built-in `digits` example: a small edge CNN trained on scikit-learn's bundled digits.

It uses the ops edge models are made of (Conv2D, DepthwiseConv2D, BatchNorm, ReLU/ReLU6, max
and average pooling, Dense), trains deterministically on the CPU, and is cached in the user
cache directory (override with `EDGEKIT_CACHE_DIR`). It brings its own calibration split and a
labelled validation split, so `edgekit deploy --example digits --target coral` needs nothing else.

>>> from edgekit.examples import load_example
>>> example = load_example("digits")        # doctest: +SKIP
>>> example.validation.x.shape              # doctest: +SKIP
(500, 8, 8, 1)
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import edgekit.examples.zoo as zoo
from edgekit._tf import tensorflow, tf_keras
from edgekit.data import Dataset
from edgekit.errors import UsageError
from edgekit.files import cache_root
from edgekit.keras import keras3_to_tf_keras

VERSION = 4  # bump when the architecture, data split or training changes
SEED = 0
EPOCHS = 30
VALIDATION_SAMPLES = 500
CALIBRATION_SAMPLES = 200


@dataclass(frozen=True)
class Example:
    """A ready model plus its data splits.

    `model_path` is the cached `.keras` file (written by Keras 3); `model()` gives the trained
    model live, as a Keras 3 model or, given tf_keras, a tf_keras model with the same layer
    names and weights.
    """

    name: str
    model_path: Path
    calibration: Dataset
    validation: Dataset

    def model(self, keras: Any = None) -> Any:
        """The trained example as a live model of `keras` (default: Keras 3, `import keras`);
        for tf_keras, the same architecture built by tf_keras with the file's weights.

        >>> load_example("digits").model().count_params() > 0          # doctest: +SKIP
        True
        """
        import keras as keras3

        trained = keras3.saving.load_model(self.model_path)  # safe mode (the default)
        if keras is None or not keras.__name__.startswith("tf_keras"):
            return trained
        return keras3_to_tf_keras(trained)  # same layer names and weights


def digits_splits() -> tuple[Dataset, Dataset, Dataset]:
    """(train, calibration, validation) from scikit-learn's bundled digits, scaled to [0, 1]."""
    from sklearn.datasets import load_digits  # scikit-learn is slow to import

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(SEED).permutation(len(x))
    x, y = x[order], y[order]
    val = Dataset(x[:VALIDATION_SAMPLES], y[:VALIDATION_SAMPLES], "digits:validation")
    train = Dataset(x[VALIDATION_SAMPLES:], y[VALIDATION_SAMPLES:], "digits:train")
    calib = Dataset(train.x[:CALIBRATION_SAMPLES], None, "digits:calibration (from train)")
    return train, calib, val


def build_model(keras):
    """The example CNN, for `keras` = Keras 3 or tf_keras. Layers carry the names a fresh
    process would give them, so they are the same whatever else the process has built."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1), name="image"),
            layers.Conv2D(32, 3, padding="same", use_bias=False, name="conv2d"),
            # momentum 0.9: moving statistics settle within a few epochs, so short
            # fine-tuning runs (pruning, QAT, distillation) evaluate sensibly.
            layers.BatchNormalization(momentum=0.9, name="batch_normalization"),
            layers.ReLU(name="re_lu"),
            layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise_conv2d"),
            layers.BatchNormalization(momentum=0.9, name="batch_normalization_1"),
            layers.ReLU(max_value=6.0, name="re_lu_1"),
            layers.Conv2D(64, 1, name="conv2d_1"),
            layers.ReLU(name="re_lu_2"),
            layers.MaxPooling2D(2, name="max_pooling2d"),
            layers.AveragePooling2D(2, name="average_pooling2d"),
            layers.Flatten(name="flatten"),
            layers.Dense(256, activation="relu", name="dense"),
            layers.Dense(10, name="dense_1"),
            layers.Softmax(name="softmax"),
        ],
        name="digits_cnn",
    )


def train_digits(out_dir: Path, epochs: int = EPOCHS) -> Path:
    """Train deterministically and save `digits.keras` (a Keras 3 file) into `out_dir`."""
    tf = tensorflow()
    keras = tf_keras()  # the training every published figure was measured on (see zoo.train)
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    train, _, _ = digits_splits()
    model = build_model(keras)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(train.x, train.y, epochs=epochs, batch_size=32, shuffle=True, verbose=0)
    path = out_dir / "digits.keras"
    zoo.save_keras3(model, build_model, path)
    return path


def cached_model(
    directory: str,
    filename: str,
    trainer: Callable[[Path], None],
    progress: Callable[[str], None] | None = None,
) -> Path:
    """The model file in the cache, trained by `trainer(staging_dir)` when missing.

    Training happens in a staging directory that is renamed into place, so concurrent
    processes and interrupted runs never leave a half-written model.
    """
    root = cache_root() / "examples" / directory
    model_path = root / filename
    if not model_path.exists():
        if progress:
            progress(f"training the {directory} example (once; cached in {root})")
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory}-", dir=root.parent))
        try:
            trainer(staging)
            try:
                staging.rename(root)
            except OSError:  # another process finished first: keep theirs
                pass
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return model_path


def load_example(name: str = "digits", progress: Callable[[str], None] | None = None) -> Example:
    """Return a built-in example, training it first when the cache is empty.

    `digits` is this module's; the others are :mod:`edgekit.examples.zoo`'s reference models.
    """
    if name != "digits":
        if name not in zoo.SPECS:
            names = ", ".join(["digits", *sorted(zoo.SPECS)])
            raise UsageError(f"unknown example {name!r}; available: {names}")
        path = cached_model(
            f"{name}-v{zoo.SPECS[name].version}",
            f"{name}.keras",
            lambda d: zoo.train(name, d / f"{name}.keras"),
            progress,
        )
        _, calib, val = zoo.splits(name)
        return Example(name, path, calib, val)
    path = cached_model(f"digits-v{VERSION}", "digits.keras", train_digits, progress)
    _, calib, val = digits_splits()
    return Example("digits", path, calib, val)
