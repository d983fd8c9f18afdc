"""Keras → TFLite with the real converter, every scheme, read back with LiteRT's schema."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import convert_keras, run_edgekit, tf_keras

from edgekit.converters.tflite import convert
from edgekit.errors import EdgekitError
from edgekit.models import load_model
from edgekit.tflite_model import read_tflite


def _weights_dtypes(model):
    return {t.dtype for t in model.tensors if t.is_constant and t.elements > 16}


def _activation_dtypes(model):
    return {t.dtype for t in model.tensors if not t.is_constant}


@pytest.mark.parametrize(
    "scheme, io, weights, activations",
    [
        ("float32", "float32", {"FLOAT32"}, {"FLOAT32"}),
        ("float16", "float32", {"FLOAT16"}, {"FLOAT32"}),
        ("dynamic", "float32", {"INT8"}, {"FLOAT32"}),
        ("int8", "int8", {"INT8"}, {"INT8"}),
        ("int8", "uint8", {"INT8"}, {"INT8", "UINT8"}),
        ("int16x8", "int16", {"INT8"}, {"INT16"}),
    ],
)
def test_every_scheme_converts_with_static_batch_one(
    example, example_loaded, scheme, io, weights, activations
):
    artifact = convert(example_loaded, scheme, io_dtype=io, calibration=example.calibration.x)
    model = read_tflite(artifact.data, f"digits_{scheme}.tflite")
    assert _weights_dtypes(model) >= weights
    assert _activation_dtypes(model) == activations
    assert model.input_tensors()[0].shape == (1, 8, 8, 1)
    assert model.input_tensors()[0].dtype == io.upper()
    assert not any(t.dynamic for t in model.tensors)
    assert not {"SHAPE", "STRIDED_SLICE", "VAR_HANDLE", "READ_VARIABLE"} & {
        name for name, _ in model.opcodes
    }


def test_uint8_and_int8_io_quantization_parameters(digits_tflite):
    uint8 = read_tflite(digits_tflite["uint8"].read_bytes())
    int8 = read_tflite(digits_tflite["int8"].read_bytes())
    # Same real range, shifted zero point: uint8 zp = int8 zp + 128.
    (u,), (i,) = uint8.input_tensors(), int8.input_tensors()
    assert u.quant.scales == pytest.approx(i.quant.scales)
    assert u.quant.zero_points[0] == i.quant.zero_points[0] + 128


def test_per_tensor_when_asked():
    keras = tf_keras()
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(8, 3)])
    _, per_channel = convert_keras(model, per_channel=True)
    _, per_tensor = convert_keras(model, per_channel=False)
    conv_weights = [t for t in per_channel.tensors if t.is_constant and len(t.shape) == 4]
    assert conv_weights[0].quant.per_channel
    conv_weights = [t for t in per_tensor.tensors if t.is_constant and len(t.shape) == 4]
    assert not conv_weights[0].quant.per_channel


def test_keras3_h5_and_savedmodel_sources_convert(tmp_path, example):
    import keras as keras3

    k3 = keras3.Sequential(
        [keras3.Input((8, 8, 1)), keras3.layers.Flatten(), keras3.layers.Dense(4)]
    )
    k3_path = tmp_path / "k3.keras"
    k3.save(k3_path)
    loaded = load_model(k3_path)
    assert loaded.kind == "keras3" and loaded.input_shape == (1, 8, 8, 1)
    out = read_tflite(convert(loaded, "float32").data)
    assert [name for name, _ in out.opcodes] == ["RESHAPE", "FULLY_CONNECTED"]

    keras = tf_keras()
    k2 = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4)])
    h5 = tmp_path / "legacy.h5"
    k2.save(h5)
    assert load_model(h5).kind == "keras2"
    saved = tmp_path / "saved"
    k2.save(saved, save_format="tf")
    loaded = load_model(saved)
    assert loaded.kind == "savedmodel" and loaded.input_shape == (1, 8, 8, 1)
    converted = read_tflite(
        convert(loaded, "int8", io_dtype="int8", calibration=example.calibration.x).data
    )
    assert converted.input_tensors()[0].dtype == "INT8"
    assert [name for name, _ in converted.opcodes] == ["RESHAPE", "FULLY_CONNECTED"]


def test_full_integer_without_calibration_is_an_error(example_loaded):
    with pytest.raises(EdgekitError, match="needs calibration data"):
        convert(example_loaded, "int8", io_dtype="int8")


def test_keras_file_needs_explicit_custom_objects(tmp_path):
    keras = tf_keras()

    @keras.utils.register_keras_serializable(package="edgekit_test")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    model = keras.Sequential([keras.Input((4,)), Doubler()])
    path = tmp_path / "custom.keras"
    model.save(path)
    # Registered in this process, so it loads here (a worker process would not know the class).
    loaded = load_model(path)
    assert loaded.keras_model is not None and loaded.worker is None
    # A process where it is not registered (the CLI) refuses it in one line and says what to do.
    result = run_edgekit(
        "deploy",
        str(path),
        "-t",
        "raspberry-pi-4",
        "--calibration",
        "random",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "edgekit_test>Doubler" in last, last
    assert "custom_objects" in last, last
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()
    text_model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 3)])
    lam = tmp_path / "lambda.keras"
    text_model.save(lam)
    with pytest.raises(EdgekitError, match="Lambda layer holds Python code"):
        load_model(lam)  # safe mode refuses the lambda's bytecode


def test_models_with_unknown_spatial_dims_are_refused():
    keras = tf_keras()
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3)])
    from edgekit.models import from_keras

    with pytest.raises(EdgekitError, match="static shapes"):
        from_keras(model)


def test_int8_outputs_track_float_outputs(example, digits_tflite):
    from edgekit.tflite_model import load_tflite
    from edgekit.verify import run_model

    x = example.validation.x[:64]
    (ref,) = run_model(load_tflite(digits_tflite["float32"]), x).values()
    (q,) = run_model(load_tflite(digits_tflite["int8"]), x).values()
    assert np.mean(ref.reshape(64, -1).argmax(1) == q.reshape(64, -1).argmax(1)) > 0.95
