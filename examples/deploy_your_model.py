"""Deploy your own Keras model from Python, with your own calibration and validation data.

    python examples/deploy_your_model.py [OUT_DIR]

Here the "own model" is a small classifier on scikit-learn's bundled digits; swap in yours.
"""

from __future__ import annotations

import sys

import keras
import numpy as np
from sklearn.datasets import load_digits

import edgekit


def main(out: str = "edgekit-out") -> int:
    keras.utils.set_random_seed(1)
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ],
        name="my_classifier",
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1200], y[:1200], epochs=5, verbose=0)

    bundle = edgekit.deploy(
        model,
        "cortex-m7",
        calibration=x[:200],  # representative inputs fix the int8 ranges
        validation=(x[1200:], y[1200:]),  # held-out, labelled
        out=out,
        force=True,
    )
    m = bundle.report.metrics
    print(f"{bundle.path}: {'deployed' if bundle.ok else 'FAILED'}")
    print(
        f"accuracy float {m.float_accuracy:.3f} → int8 {m.deployed_accuracy:.3f} "
        f"(on {bundle.report.verification['runtime']})"
    )
    print(f"model {m.model_bytes} B, tensor arena {m.tensor_arena_bytes} B")
    return 0 if bundle.ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
