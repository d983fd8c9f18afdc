"""Helpers shared by the tests (imported as `helpers`; pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def run_edgekit(*args: str, cwd: Path | None = None, env: dict | None = None, timeout=600):
    """Run the installed console script as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "edgekit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )


def tf_keras():
    from edgekit._tf import tf_keras as _tf_keras

    return _tf_keras()


def keras3_digits_cnn():
    """A small Keras 3 CNN for the 8×8 digits: conv, depthwise, pool, dense, dense."""
    import keras

    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="depthwise")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="label")(x)
    return keras.Model(inputs, outputs, name="digits3")


def compile_keras3(model, learning_rate=1e-3):
    """Compile a Keras 3 classifier: Adam, sparse categorical cross-entropy, accuracy."""
    import keras

    model.compile(
        keras.optimizers.Adam(learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def deploy_digits(model, target, digits_data, out):
    """edgekit.deploy a digits model (64 calibration images, the validation split); asserts it
    went through and returns (bundle, the deployed TFLiteModel)."""
    import edgekit
    from edgekit.tflite_model import load_tflite

    calib, val = digits_data[1], digits_data[2]
    bundle = edgekit.deploy(
        model, target, calibration=calib.x[:64], validation=(val.x, val.y), out=out
    )
    assert bundle.ok, bundle.report.failed_checks()
    deployed = next(a.path for a in bundle.report.artifacts if a.role == "deployed model")
    return bundle, load_tflite(bundle.path / deployed)


def deploy_saved(model, calibration, tmp_path):
    """Save `model` as .keras and deploy the file to cortex-m4 with the CLI (a fresh process);
    asserts it went through and returns the file's path."""
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    np.save(tmp_path / "calib.npy", calibration)
    result = run_edgekit(
        "deploy",
        str(path),
        "-t",
        "cortex-m4",
        "--calibration",
        str(tmp_path / "calib.npy"),
        "--out",
        str(tmp_path / "out"),
        "--no-analysis",
    )
    assert result.returncode == 0, result.stderr[-1500:]
    return path


def convert_keras(model, scheme="int8", io_dtype="int8", calibration=None, per_channel=True):
    """Convert a live Keras model with edgekit's converter; returns (bytes, TFLiteModel)."""
    from edgekit.converters.tflite import convert
    from edgekit.models import from_keras
    from edgekit.tflite_model import read_tflite

    loaded = from_keras(model)
    if calibration is None and scheme in ("int8", "int16x8"):
        rng = np.random.default_rng(0)
        calibration = rng.random((32, *loaded.input_shape[1:]), dtype=np.float32)
    data = convert(
        loaded, scheme, io_dtype=io_dtype, calibration=calibration, per_channel=per_channel
    ).data
    return data, read_tflite(data, f"{model.name}.tflite")


def trained_keras3(model, data, epochs: int, batch_size: int = 32):
    """`model` (Keras 3) compiled and trained from seed 0 on a Dataset."""
    import keras

    keras.utils.set_random_seed(0)
    compile_keras3(model).fit(data.x, data.y, epochs=epochs, batch_size=batch_size, verbose=0)
    return model


WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def off_power_of_two(model) -> dict[str, list[int]]:
    """{op: int8 weight magnitudes that are not 0 or 2^k} for each conv/dense of a .tflite."""
    from edgekit.quantization.power_of_two import levels

    allowed, found = set(levels()), {}
    for op in model.operators:
        if op.name in WEIGHTED_OPS:
            values = set(np.abs(model.weights(op.inputs[1]).astype(int)).ravel().tolist())
            if values - allowed:
                found[f"{op.name} #{op.index}"] = sorted(values - allowed)[:5]
    return found


def masked_matches_rebuilt(
    model, x, criterion: str, ratio: float, atol: float, min_channels: int = 4
):
    """Channel-prune `model` (either Keras) two ways, zeroing the pruned channels in place
    and rebuilding without them; assert both compute the same on `x`. Returns the rebuilt."""
    from edgekit.keras.channel_pruning import ChannelPruner
    from edgekit.keras.masks import apply_masks

    pruner = ChannelPruner(model, criterion=criterion, min_channels=min_channels)
    keep = pruner.plan(ratio, pruner.scores())
    smaller = pruner.rebuild(keep)
    apply_masks(pruner.masks(keep))
    np.testing.assert_allclose(
        smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=atol
    )
    return smaller


def subclassed_model(keras):
    """A built subclassed model (one Dense) of `keras`, tf_keras or Keras 3."""

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 4), np.float32))
    return net


def model_with_custom_layer():
    """Sequential model whose layer 'my_scale' (class Scale) has weights tfmot cannot wrap."""
    keras = tf_keras()

    class Scale(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(name="w", shape=(shape[-1],))

        def call(self, x):
            return x * self.w

    return keras.Sequential([keras.Input((4,)), Scale(name="my_scale"), keras.layers.Dense(2)])


def required(part: str) -> bool:
    """True when a missing `part` (SHARED, QEMU, SSHD, GXX, MOUNT, JAX) must fail rather than skip:
    EDGEKIT_REQUIRE_<PART>=1, or in CI (EDGEKIT_REQUIRE_ALL=1, or CI=true as CI services set),
    where every part a test needs can be installed and a skip would hide a missing one."""
    env = os.environ
    return (
        env.get(f"EDGEKIT_REQUIRE_{part}") == "1"
        or env.get("EDGEKIT_REQUIRE_ALL") == "1"
        or env.get("CI", "").lower() in ("true", "1")
    )


def missing_part(part: str, message: str) -> NoReturn:
    """Skip a test whose `part` is missing here; fail instead when it is required (CI)."""
    import pytest

    if required(part):
        pytest.fail(f"{message} (required here: EDGEKIT_REQUIRE_{part}, EDGEKIT_REQUIRE_ALL or CI)")
    pytest.skip(message)


def need_gxx() -> None:
    """The host C++ compiler the generated sources are checked with."""
    if shutil.which("g++") is None:
        missing_part("GXX", "g++ not installed (apt-get install g++)")


def shared_dir(name: str) -> Path:
    """A folder of the workplace's shared material (`tflm`, `tflm-models`): from
    EDGEKIT_SHARED_DIR, beside the repository, or /work/shared. Missing: the test skips, unless
    it is required (see :func:`required`)."""
    candidates = [os.environ.get("EDGEKIT_SHARED_DIR"), REPO.parent / "shared", "/work/shared"]
    for base in candidates:
        if base and (Path(base) / name).is_dir():
            return Path(base) / name
    missing_part("SHARED", f"shared folder {name!r} not found (set EDGEKIT_SHARED_DIR)")


def compile_tflm_sources(bundle: Path, tree: Path, out: Path) -> None:
    """The bundle's generated sources compile as C++ against a TFLM tree: main.cc with the
    model's headers and model_data.cc, each to an object (the library is test_qemu's)."""
    third = tree / "third_party"
    includes = []
    for path in (
        tree,
        third / "flatbuffers" / "include",
        third / "gemmlowp",
        third / "ruy",
        bundle / "tflm",
        REPO / "devices" / "mcu",
    ):
        includes += ["-I", str(path)]
    flags = ["-std=c++17", "-Wall", "-Werror", "-fno-exceptions", "-DTF_LITE_STATIC_MEMORY", "-c"]
    for source in (REPO / "devices" / "mcu" / "main.cc", bundle / "tflm" / "model_data.cc"):
        obj = out / (source.stem + ".o")
        subprocess.run(
            ["g++", *flags, *includes, str(source), "-o", str(obj)],
            check=True,
            capture_output=True,
            text=True,
        )


def assert_same_trials(outcomes, reference) -> None:
    """Another runner's outcomes for the `fit_jobs` fixture's jobs: in the jobs' order, each a
    real deploy with the same MACs, model size and arena as in this process (fine-tuning in
    another process may move the accuracy a little; the cut does not)."""
    assert [o.number for o in outcomes] == [o.number for o in reference]
    for got, want in zip(outcomes, reference, strict=True):
        assert got.ok, got.error
        assert got.model and got.model[:2] == b"PK"  # the fitted model, a `.keras` zip
        for figure in ("macs", "model_bytes", "tensor_arena_bytes"):
            assert got.report["metrics"][figure] == want.report["metrics"][figure], figure
