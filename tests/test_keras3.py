"""Keras 3 first (issue 16): today's Keras in, and edgekit never changes which Keras the user
has. Each check runs in a fresh interpreter, where "which Keras is tf.keras" is still open."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_edgekit

KERAS_CHOICE = """
import json, os, sys
import numpy as np
{before}
import edgekit
from edgekit.keras import prune_low_magnitude, strip_pruning, tf_keras
k2 = tf_keras()
model = k2.Sequential([k2.Input((8,)), k2.layers.Dense(4)])
stripped = strip_pruning(prune_low_magnitude(model))  # tfmot, which sets the switch on import
import tensorflow as tf
print(json.dumps({{"tf.keras": tf.keras.__name__, "env": os.environ.get("TF_USE_LEGACY_KERAS"),
                  "stripped": type(stripped).__module__.split(".")[0]}}))
"""


@pytest.mark.parametrize(
    "before", ["", "import tensorflow as tf"], ids=["edgekit-first", "tensorflow-first"]
)
def test_edgekit_leaves_the_users_keras_alone(before):
    """Importing edgekit and running a tfmot-backed wrapper on a tf_keras model leaves
    `tf.keras` as Keras 3 and no TF_USE_LEGACY_KERAS in the environment (tfmot sets it)."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run(
        [sys.executable, "-c", KERAS_CHOICE.format(before=before)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen == {"tf.keras": "keras._tf_keras.keras", "env": None, "stripped": "tf_keras"}


def test_a_keras3_h5_file_deploys_and_the_report_says_who_wrote_it(tmp_path):
    """`.h5` saved by today's tf.keras (Keras 3) failed: tf_keras cannot read `batch_shape`."""
    import keras

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    model.save(tmp_path / "cnn.h5")
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).random((20, 8, 8, 1), np.float32))
    result = run_edgekit(
        "deploy",
        str(tmp_path / "cnn.h5"),
        "-t",
        "raspberry-pi-4",
        "--calibration",
        str(tmp_path / "calib.npy"),
        "--out",
        str(tmp_path / "out"),
        "--no-analysis",
    )
    assert result.returncode == 0, result.stderr[-1500:]
    report = json.loads(next((tmp_path / "out").glob("*/report.json")).read_text())
    assert report["model"]["kind"] == "keras3"
    assert report["model"]["written_by"] == f"Keras {keras.__version__} (tensorflow backend)"
    assert f"written by Keras {keras.__version__}" in result.stderr


def test_a_keras_file_deploys_whatever_the_users_keras_backend(tmp_path):
    """A .keras file is backend-independent; the worker loads it with Keras 3's tensorflow
    backend even when the user's process asks for another (KERAS_BACKEND=jax here, where JAX is
    not installed: a worker that inherited it could not even import Keras)."""
    import keras

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3, activation="softmax")])
    model.save(tmp_path / "m.keras")
    result = run_edgekit(
        "deploy",
        str(tmp_path / "m.keras"),
        "-t",
        "raspberry-pi-4",
        "--calibration",
        "random",
        "--out",
        str(tmp_path / "out"),
        "--no-analysis",
        env={"KERAS_BACKEND": "jax"},
    )
    assert result.returncode == 0, result.stderr[-1500:]


def test_keras3_models_convert_as_they_are_custom_and_keras3_only_layers(tmp_path):
    """No rebuild into tf_keras: a layer registered with keras.saving.register_keras_serializable
    (written with keras.ops) and a layer only Keras 3 has (RMSNormalization) deploy from a
    .keras file and from the live model."""
    import keras

    import edgekit

    @keras.saving.register_keras_serializable(package="edgekit_test")
    class WavyScale(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w + keras.ops.sin(x)

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = WavyScale()(keras.layers.Conv2D(4, 3, activation="relu")(inputs))
    x = keras.layers.Flatten()(keras.layers.RMSNormalization()(x))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
    model.save(tmp_path / "custom.keras")
    calib = np.random.default_rng(0).random((32, 8, 8, 1), np.float32)
    for source in (str(tmp_path / "custom.keras"), model):
        bundle = edgekit.deploy(
            source,
            "raspberry-pi-4",
            calibration=calib,
            out=tmp_path / "o",
            force=True,
            analysis=False,
        )
        assert bundle.ok, [c.detail for c in bundle.report.failed_checks()]
        assert bundle.report.model["kind"] == "keras3"
        assert bundle.report.metrics.output_sqnr_db > 25


JAX_USER = """
import json, os
import numpy as np
import keras
assert keras.backend.backend() == "jax", keras.backend.backend()
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                          keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(np.random.rand(32, 8, 8, 1), np.arange(32) % 3, epochs=1, verbose=0)
model.save("jax.keras")
import edgekit
from edgekit import keras as ek
from edgekit.errors import UsageError
errors = {}
for name, call in [("prune", lambda: ek.prune_low_magnitude(model)),
                   ("fold", lambda: ek.fold_batchnorm(model)),
                   ("cluster", lambda: ek.cluster_weights(model, 4)),
                   ("qat", lambda: ek.quantize_model(model)),
                   ("channels", lambda: ek.prune_channels(model, ratio=0.5)),
                   ("distill", lambda: ek.Distiller(model, model))]:
    try:
        call()
        errors[name] = None
    except UsageError as error:
        errors[name] = str(error)
bundle = edgekit.deploy(model, "raspberry-pi-4", calibration=np.random.rand(32, 8, 8, 1),
                        out="live", analysis=False)
print(json.dumps({"errors": errors, "live_ok": bundle.ok}))
"""


def test_under_the_jax_backend_files_and_live_models_deploy_and_wrappers_say_what_is_supported(
    tmp_path,
):
    """Point 5: a model trained and saved under JAX deploys (file: the worker loads it on the
    TensorFlow backend; live: Keras 3 exports it through jax2tf); edgekit's training wrappers,
    which run TensorFlow ops, refuse it in one line naming the backend and the way out."""
    try:
        import jax  # noqa: F401
    except ImportError:
        from helpers import missing_part

        missing_part("JAX", "jax not installed (pip install -e '.[test]' installs it)")
    env = {**__import__("os").environ, "KERAS_BACKEND": "jax"}
    result = subprocess.run(
        [sys.executable, "-c", JAX_USER],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["live_ok"] is True
    for name, message in seen["errors"].items():
        assert message is not None, name
        assert "\n" not in message and "'jax'" in message and "KERAS_BACKEND=tensorflow" in message
    cli = run_edgekit(
        "deploy",
        str(tmp_path / "jax.keras"),
        "-t",
        "raspberry-pi-4",
        "--calibration",
        "random",
        "--out",
        str(tmp_path / "out"),
        "--no-analysis",
        env={"KERAS_BACKEND": "jax"},
    )
    assert cli.returncode == 0, cli.stderr[-1500:]
    report = json.loads(next((tmp_path / "out").glob("*/report.json")).read_text())
    assert report["model"]["written_by"].startswith("Keras 3.")  # .keras files omit the backend


def test_the_built_in_examples_come_as_keras3_models_with_the_trained_weights(example):
    """The built-in examples are trained and saved by Keras 3 (a user following the README
    meets no tf_keras); `load_example(...).model(tf_keras())` rebuilds one for tf_keras users."""
    from edgekit._tf import tf_keras
    from edgekit.models import keras_file_writer

    assert keras_file_writer(example.model_path)[0].startswith("3.")

    model = example.model()
    assert type(model).__module__.startswith("keras.")
    x = example.validation.x[:64]
    reference = example.model(tf_keras())
    np.testing.assert_allclose(
        model.predict(x, verbose=0), reference.predict(x, verbose=0), atol=1e-5
    )
    assert type(example.model(tf_keras())).__module__.startswith("tf_keras")
