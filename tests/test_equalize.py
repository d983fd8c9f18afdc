"""Cross-layer equalisation on real float and int8 `.tflite` models: the float function kept,
channel ranges evened, and the int8 error it removes (a test that fails when it is off)."""

from __future__ import annotations

import numpy as np

import edgekit
from edgekit.quantization.activations import kept_activations
from edgekit.quantization.engine import quantize_int8
from edgekit.quantization.equalize import RELU6_MARGIN, equalize, find_pairs
from edgekit.stages.convert import float_difference
from edgekit.tflite_model import read_tflite
from edgekit.verify import run_model, sqnr_db


def _separable(activation: str, seed: int = 0):
    """A depthwise-separable net whose depthwise channels span 1000× in range, the next
    pointwise conv compensating (the same function as the balanced net: ReLU is scale-free)."""
    import keras

    rng = np.random.default_rng(seed)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", activation=activation)(inputs)
    dw = keras.layers.DepthwiseConv2D(3, padding="same", activation=activation)
    pw = keras.layers.Conv2D(16, 1, activation=activation)
    x = pw(dw(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(5)(x)
    model = keras.Model(inputs, outputs)
    c = 10.0 ** rng.uniform(-1.5, 1.5, 16)
    kernel, bias = dw.get_weights()
    dw.set_weights([kernel * c[None, None, :, None], bias * c])
    kernel, bias = pw.get_weights()
    pw.set_weights([kernel / c[None, None, :, None], bias])
    return model


def _float(model) -> bytes:
    from edgekit.converters.tflite import convert
    from edgekit.models import load_model

    return convert(load_model(model), "float32").data


def test_equalisation_keeps_the_function_and_wins_back_per_tensor_int8():
    float_data = _float(_separable("relu"))
    float_model = read_tflite(float_data)
    rng = np.random.default_rng(1)
    x, v = rng.normal(size=(2, 64, 16, 16, 3)).astype(np.float32)
    pairs = find_pairs(float_model)
    kinds = sorted((p.first.name, p.second.name) for p in pairs)
    assert kinds == [("CONV_2D", "DEPTHWISE_CONV_2D"), ("DEPTHWISE_CONV_2D", "CONV_2D")]
    made = equalize(float_data, x)
    assert made.range_ratio_before > 100 and made.range_ratio_after < 10
    assert float_difference(float_model, read_tflite(made.data), v) < 1e-5

    def int8_sqnr(data: bytes) -> float:
        int8 = quantize_int8(data, x, per_channel=False, bias_correction=False).data
        reference = run_model(float_model, v, "reference")
        got = run_model(read_tflite(int8), v, "reference")
        return sqnr_db(*(np.concatenate(list(r.values())) for r in (reference, got)))

    assert int8_sqnr(made.data) > int8_sqnr(float_data) + 6.0


def test_relu6_channels_that_reach_the_clip_are_left_alone():
    """ReLU6(x/s) ≠ ReLU6(x)/s where x reaches 6: such channels keep s = 1, the others are
    scaled only as far as their largest value stays below 6; the function is kept."""
    model = _separable("relu6")
    float_data = _float(model)
    float_model = read_tflite(float_data)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 16, 16, 3)).astype(np.float32)
    made = equalize(float_data, x)
    assert made.pairs
    assert float_difference(float_model, read_tflite(made.data), x) < 1e-5
    (first,) = [p.first for p in made.pairs if p.first.name == "DEPTHWISE_CONV_2D"]
    index = first.outputs[0]

    def peaks(model) -> np.ndarray:  # each channel's largest value behind the ReLU6
        values = kept_activations(model, x, [index])[index]
        return values.reshape(-1, values.shape[-1]).max(axis=0)

    before, after = peaks(float_model), peaks(read_tflite(made.data))
    clipped = before >= 6.0 / RELU6_MARGIN
    moved = ~np.isclose(before, after, rtol=1e-4)
    assert after.max() <= 6.0
    assert clipped.any() and (~clipped).any(), "the net has channels at the clip and below"
    assert not moved[clipped].any(), "channels that reach the clip are left alone"
    assert moved[~clipped].any(), "the others are equalised"


def test_deploy_equalize_reports_the_pairs(tmp_path):
    bundle = edgekit.deploy(
        _separable("relu"),
        "cortex-m4",
        calibration="random",
        equalize=True,
        analysis=False,
        out=tmp_path,
    )
    assert bundle.ok
    (note,) = [r for r in bundle.report.quantization["rewrites"] if "equalisation" in r]
    assert note.startswith("cross-layer equalisation of 2 op pairs")
    assert "cross-layer equalisation of 2 op pairs" in (bundle.path / "report.md").read_text()
