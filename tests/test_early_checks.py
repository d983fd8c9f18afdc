"""Input errors come before TensorFlow loads (issue 15, B.8): a wrong calibration shape, a NaN,
an unwritable or taken --out cost no model load. The input shape is read from the model file:
`.tflite` flatbuffers, `.keras` and `.h5` configs of Keras 3 and tf_keras."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from helpers import tf_keras

from edgekit.signature import input_signature


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, digits_tflite):
    import keras

    out = tmp_path_factory.mktemp("early")
    model = keras.Sequential(
        [
            keras.Input((12, 10, 1)),
            keras.layers.Conv2D(2, 3),
            keras.layers.Flatten(),
            keras.layers.Dense(3),
        ]
    )
    model.save(out / "k3.keras")
    model.save(out / "k3.h5")
    k2 = tf_keras()
    functional_input = k2.Input((12, 10, 1))
    legacy = k2.Model(functional_input, k2.layers.Dense(3)(k2.layers.Flatten()(functional_input)))
    legacy.save(out / "k2.h5")
    legacy.save(out / "k2.keras")
    return {
        "k3.keras": out / "k3.keras",
        "k3.h5": out / "k3.h5",
        "k2.h5": out / "k2.h5",
        "k2.keras": out / "k2.keras",
        "tflite": digits_tflite["int8"],
    }


@pytest.mark.parametrize("name", ["k3.keras", "k3.h5", "k2.h5", "k2.keras"])
def test_keras_files_declare_their_input(model_files, name):
    assert input_signature(model_files[name]) == ((1, 12, 10, 1), "float32")


def test_tflite_and_unknown_files(model_files, tmp_path):
    assert input_signature(model_files["tflite"]) == ((1, 8, 8, 1), "int8")
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"PK\x03\x04 not a zip")
    assert input_signature(junk) is None
    assert input_signature(tmp_path / "missing.keras") is None


def _deploy_without_tensorflow(args, cwd):
    """`edgekit deploy ARGS` with every import recorded: (result, heavy modules imported)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "edgekit", "deploy", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    heavy = {m for m in imported if m.split(".")[0] in ("tensorflow", "tf_keras", "keras")}
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return result, heavy, errors


@pytest.mark.parametrize("name", ["k3.keras", "k2.h5", "tflite"])
def test_bad_data_is_refused_before_the_model_loads(model_files, name, tmp_path):
    path = model_files[name]
    shape = input_signature(path)[0][1:]
    np.save(tmp_path / "wrong.npy", np.zeros((16, 5, 5, 1), np.float32))
    nan = np.zeros((16, *shape), np.float32)
    nan[1, 0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "good.npy", np.zeros((16, *shape), np.float32))
    (tmp_path / "a-file").write_text("")
    target = ["-t", "raspberry-pi-4"]
    cases = [
        (["--calibration", "wrong.npy"], "calibration data has shape [16, 5, 5, 1]; expected"),
        (["--calibration", "good.npy", "--validation", "wrong.npy"], "validation data has shape"),
        (["--calibration", "nan.npy"], "NaN"),
        (["--calibration", "good.npy", "--out", "a-file/x"], "is not a directory"),
    ]
    if name != "tflite":  # a .tflite is already quantized: its calibration data is ignored
        for args, expected in cases:
            result, heavy, errors = _deploy_without_tensorflow(
                [str(path), *target, *args], tmp_path
            )
            assert result.returncode == 2, (args, result.stderr[-500:])
            assert len(errors) == 1 and expected in errors[0], (args, errors)
            assert not heavy, (args, sorted(heavy)[:5])
    # A taken --out is refused before anything loads, for a model file and for --example.
    (tmp_path / "out" / f"{path.stem}-raspberry-pi-4").mkdir(parents=True)
    result, heavy, errors = _deploy_without_tensorflow(
        [str(path), *target, "--calibration", "good.npy", "--out", "out"], tmp_path
    )
    assert result.returncode == 2 and "already exists" in errors[0] and not heavy


def test_example_with_a_taken_out_is_refused_before_training(tmp_path):
    (tmp_path / "edgekit-out" / "resnet8-coral-usb").mkdir(parents=True)
    result, heavy, errors = _deploy_without_tensorflow(
        ["--example", "resnet8", "-t", "coral"], tmp_path
    )
    assert result.returncode == 2 and "already exists" in errors[0] and not heavy


@pytest.mark.skipif(sys.platform != "linux", reason="a read-only bind needs Linux")
def test_unwritable_out_is_refused_before_the_model_loads(model_files, tmp_path):
    """As root, permission bits do not stop a write: a read-only file system does. /proc is
    one on every Linux machine."""
    result, heavy, errors = _deploy_without_tensorflow(
        [
            str(model_files["k3.keras"]),
            "-t",
            "raspberry-pi-4",
            "--calibration",
            "random",
            "--out",
            "/proc/edgekit-out",
        ],
        tmp_path,
    )
    assert result.returncode == 2 and "cannot write to --out /proc/edgekit-out" in errors[0]
    assert not heavy


@pytest.fixture(scope="module")
def two_input_files(tmp_path_factory):
    """One model with inputs `meta` (8,) and `image` (6, 6, 1), in that order, as Keras 3
    `.keras` and tf_keras `.h5`."""
    import keras

    out = tmp_path_factory.mktemp("two-inputs")
    meta, image = keras.Input((8,), name="meta"), keras.Input((6, 6, 1), name="image")
    joined = keras.layers.Concatenate()([meta, keras.layers.Flatten()(image)])
    keras.Model([meta, image], keras.layers.Dense(2)(joined)).save(out / "k3.keras")
    k2 = tf_keras()
    meta2, image2 = k2.Input((8,), name="meta"), k2.Input((6, 6, 1), name="image")
    joined2 = k2.layers.Concatenate()([meta2, k2.layers.Flatten()(image2)])
    k2.Model([meta2, image2], k2.layers.Dense(2)(joined2)).save(out / "k2.h5")
    return out


@pytest.mark.parametrize("name", ["k3.keras", "k2.h5"])
def test_several_inputs_are_read_in_the_models_order(two_input_files, name, tmp_path):
    from edgekit.signature import input_specs

    specs = input_specs(two_input_files / name)
    assert [(s.name, s.shape) for s in specs] == [("meta", (1, 8)), ("image", (1, 6, 6, 1))]
    assert input_signature(two_input_files / name) is None  # not one input
    # An .npz whose `image` has the wrong shape is refused before TensorFlow loads.
    np.savez(
        tmp_path / "bad.npz",
        meta=np.zeros((12, 8), np.float32),
        image=np.zeros((12, 6, 6, 2), np.float32),
    )
    np.save(tmp_path / "one.npy", np.zeros((12, 8), np.float32))
    for data, expected in (
        ("bad.npz", "calibration input 'image' data has shape [12, 6, 6, 2]"),
        ("one.npy", "the model has 2 inputs; pass an .npz"),
    ):
        result, heavy, errors = _deploy_without_tensorflow(
            [str(two_input_files / name), "-t", "raspberry-pi-4", "--calibration", data],
            tmp_path,
        )
        assert result.returncode == 2 and len(errors) == 1 and expected in errors[0], errors
        assert not heavy, sorted(heavy)[:5]


def test_missing_calibration_is_refused_before_the_model_loads(
    model_files, two_input_files, tmp_path
):
    """An int8 target without --calibration: said in 0.4 s, not after a 4 s model load; for a
    model with two inputs the advice names the .npz it needs."""
    two = "FILE.npz with one array per input (meta, image; or x0, x1...)"
    for path, advice in (
        (model_files["k2.h5"], "FILE.npy (or .npz with 'x')"),
        (two_input_files / "k3.keras", two),
    ):
        result, heavy, errors = _deploy_without_tensorflow([str(path), "-t", "cortex-m4"], tmp_path)
        assert result.returncode == 2 and len(errors) == 1, result.stderr[-800:]
        assert "needs calibration data" in errors[0] and advice in errors[0], errors
        assert not heavy, sorted(heavy)[:5]
