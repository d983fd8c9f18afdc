"""Shared fixtures. Expensive things (training the example, converting it) happen once."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
from helpers import missing_part, shared_dir

# The examples train into a fresh cache for the session, as on a new machine; the session
# removes it at the end (unless EDGEKIT_CACHE_DIR was given, e.g. to reuse trained models).
_OWN_CACHE = None
if "EDGEKIT_CACHE_DIR" not in os.environ:
    _OWN_CACHE = tempfile.mkdtemp(prefix="edgekit-test-cache-")
    os.environ["EDGEKIT_CACHE_DIR"] = _OWN_CACHE


# edgekit's tables follow COLUMNS. Under pytest, GNU readline (imported on the way) has put
# COLUMNS=80 into the process's C environment, which subprocesses inherit although os.environ
# does not show it: the CLI's tables came out 80 columns wide and folded names ("coral-" /
# "usb"). The suite pins one width, wide enough for every table; tests of the width itself
# pass their own COLUMNS.
try:
    import readline  # noqa: F401  (its environment side effect happens here, not later)
except ImportError:
    pass
os.environ["COLUMNS"] = "250"


def pytest_unconfigure(config):
    if _OWN_CACHE is not None:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def example():
    from edgekit.examples import load_example

    return load_example("digits")


@pytest.fixture(scope="session")
def example_loaded(example):
    from edgekit.models import load_model

    return load_model(example.model_path)


@pytest.fixture(scope="session")
def digits_tflite(example, example_loaded, tmp_path_factory):
    """The example converted once per scheme/IO: {name: Path}."""
    from edgekit.converters.tflite import convert

    out = tmp_path_factory.mktemp("digits-tflite")
    variants = {
        "float32": dict(scheme="float32"),
        "int8": dict(scheme="int8", io_dtype="int8"),
        "uint8": dict(scheme="int8", io_dtype="uint8"),
    }
    paths = {}
    for name, kwargs in variants.items():
        converted = convert(example_loaded, calibration=example.calibration.x, **kwargs)
        path = out / f"digits_{name}.tflite"
        path.write_bytes(converted.data)
        paths[name] = path
    return paths


@pytest.fixture()
def base_model(example):
    """A fresh tf_keras copy of the trained example (tests may wrap and train it)."""
    from edgekit._tf import tf_keras

    return example.model(tf_keras())


@pytest.fixture(scope="session")
def keras3_digits_model(digits_data):
    """helpers.keras3_digits_cnn trained 6 epochs (Keras 3); tests copy it, never change it."""
    import keras
    from helpers import compile_keras3, keras3_digits_cnn

    keras.utils.set_random_seed(0)
    train = digits_data[0]
    model = compile_keras3(keras3_digits_cnn())
    model.fit(train.x, train.y, epochs=6, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="session")
def digits_data():
    from edgekit.examples.digits import digits_splits

    return digits_splits()


@pytest.fixture(scope="session")
def fit_jobs(keras3_digits_model, digits_data):
    """An `edgekit fit` context for the trained digits CNN on cortex-m4 (tiny data, one epoch),
    two jobs (a quarter and half the channels cut) and their outcomes in this process: what
    every runner must give back."""
    from types import SimpleNamespace

    from edgekit.fitting.budgets import Budgets
    from edgekit.fitting.jobs import FitContext, keras_bytes
    from edgekit.fitting.runners import InProcessRunner
    from edgekit.fitting.trial import Candidate, FitData, prunable_groups
    from edgekit.options import DeployOptions
    from edgekit.targets import load_target

    train, _, val = digits_data
    m4 = load_target("cortex-m4")
    model = keras3_digits_model
    context = FitContext(
        model=keras_bytes(model),
        model_name=model.name,
        profile=m4,
        budgets=Budgets().for_target(m4),
        data=FitData(train.x[:128], train.y[:128], val.x[:64], val.y[:64]),
        options=DeployOptions(analysis=False),
        epochs=1,
        threads=1,
    )
    groups = prunable_groups(model)
    jobs = [(n, Candidate(tuple((g, share) for g in groups))) for n, share in ((1, 0.25), (2, 0.5))]
    runner = InProcessRunner(context, model)
    try:
        reference = runner.run(jobs)
    finally:
        runner.close()
    assert [o.number for o in reference] == [1, 2] and all(o.ok for o in reference), reference
    macs = [o.report["metrics"]["macs"] for o in reference]
    assert macs[0] > macs[1], macs  # the jobs differ: an answer in the wrong order shows
    return SimpleNamespace(context=context, jobs=jobs, reference=reference)


@pytest.fixture(scope="session")
def resnet8():
    """The reference ResNet-8 (residual adds, a global average pool), trained once a session."""
    from edgekit.examples import load_example

    return load_example("resnet8")


@pytest.fixture(scope="session")
def resnet8_float(resnet8, tmp_path_factory):
    """(float32 .tflite path, TFLiteModel) of the ResNet-8."""
    from edgekit.converters.tflite import convert
    from edgekit.models import load_model
    from edgekit.tflite_model import read_tflite

    data = convert(load_model(resnet8.model_path), "float32").data
    path = tmp_path_factory.mktemp("r8f") / "resnet8_float32.tflite"
    path.write_bytes(data)
    return path, read_tflite(data, str(path))


@pytest.fixture(scope="session")
def resnet8_m7(resnet8, tmp_path_factory):
    """The ResNet-8 deployed to cortex-m7 with every default (engine, analysis, TFLM)."""
    import edgekit

    return edgekit.deploy(None, "cortex-m7", example="resnet8", out=tmp_path_factory.mktemp("r8"))


# --- the Cortex-M firmware under QEMU (tests/test_qemu.py, tests/test_bench_mcu.py) ----------

TOOLS = ("arm-none-eabi-gcc", "qemu-system-arm", "make")


def need_qemu_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        missing_part(
            "QEMU",
            f"{', '.join(missing)} not installed (apt-get install "
            "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)",
        )


@pytest.fixture(scope="session")
def tflm_tree():
    need_qemu_tools()
    return shared_dir("tflm") / "cortex-m"


@pytest.fixture(scope="session")
def digits_m4_deploy(example, tflm_tree, tmp_path_factory):
    """The digits example deployed to cortex-m4 with a TFLM tree: deploy runs the firmware,
    building the TFLM library first in a fresh cache (CI). Its notes: (seconds, message)."""
    import time

    import edgekit

    notes: list[tuple[float, str]] = []

    def listen(event: str, message: str, step: object) -> None:
        if event == "note":
            notes.append((time.monotonic(), message))

    out = tmp_path_factory.mktemp("m4") / "digits-m4"
    bundle = edgekit.deploy(
        None, "cortex-m4", example="digits", tflm_dir=tflm_tree, out=out, on_step=listen
    )
    return bundle, notes


@pytest.fixture(scope="session")
def digits_m4_bundle(digits_m4_deploy):
    return digits_m4_deploy[0]


@pytest.fixture(scope="session")
def digits_m4(digits_m4_bundle):
    return digits_m4_bundle.path


@pytest.fixture(scope="session")
def qemu_run(digits_m4, tflm_tree, tmp_path_factory):
    """The digits bundle benched on QEMU once (building the TFLM library: minutes, once)."""
    from edgekit.bench.runner import bench

    db = tmp_path_factory.mktemp("db") / "results.db"
    messages: list[str] = []
    result = bench(
        digits_m4,
        device="qemu",
        tflm_dir=tflm_tree,
        runs=5,
        warmup=1,
        db=db,
        on_progress=messages.append,
    )
    return result, db, messages
