"""Learned rounding (AdaRound) on real int8 models: every conv geometry reproduced, the error
it lowers on samples it did not learn on, the integers it writes run in LiteRT and TFLM."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_edgekit

import edgekit
from edgekit.errors import UsageError
from edgekit.quantization.engine import quantize_int8
from edgekit.quantization.rounding import learn_rounding
from edgekit.tflite_model import read_tflite
from edgekit.verify import sqnr_db


def _geometries_model():
    """Stride 2 SAME, VALID with dilation 2, depthwise with a multiplier of 2 and stride 2,
    a 1×1 conv, and dense layers on a flat and on a 3-D input."""
    import keras

    inputs = keras.Input((17, 15, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(8, (3, 2), dilation_rate=2, padding="valid")(x)
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(x)
    x = keras.layers.Conv2D(6, 1, activation="relu6")(x)
    x = keras.layers.Reshape((-1, 6))(x)
    x = keras.layers.Dense(5)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(4, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _float_tflite(model) -> bytes:
    from edgekit.converters.tflite import convert
    from edgekit.models import load_model

    return convert(load_model(model), "float32").data


def test_every_conv_geometry_is_learned_and_written_as_int8():
    """The patches reproduce each float op's output (else the op is skipped, saying why): no
    op is skipped, only weight integers change (same scales, same graph) and the error each
    op's objective measures goes down."""
    rng = np.random.default_rng(0)
    float_model = read_tflite(_float_tflite(_geometries_model()))
    x = rng.normal(size=(64, 17, 15, 3)).astype(np.float32)
    nearest = quantize_int8(float_model.data, x, bias_correction=False).data
    seen: list[str] = []
    result = learn_rounding(nearest, float_model, x, iterations=200, progress=seen.append)
    kinds = sorted(op.kind for op in result.ops)
    assert result.skipped == {}
    assert kinds == ["CONV_2D"] * 3 + ["DEPTHWISE_CONV_2D"] + ["FULLY_CONNECTED"] * 2
    assert seen[0].startswith("learned rounding 1/6: ") and seen[-1].startswith(
        "learned rounding 6/6"
    )
    assert all(";" not in line and len(line) < 80 for line in seen), seen  # layer names
    assert all(op.error_learned <= op.error_nearest for op in result.ops)
    assert sum(op.flipped for op in result.ops) > 0
    before, after = read_tflite(nearest), read_tflite(result.data)
    assert [op.name for op in before.operators] == [op.name for op in after.operators]
    changed = 0
    for a, b in zip(before.tensors, after.tensors, strict=True):
        assert (a.dtype, a.shape, a.quant) == (b.dtype, b.shape, b.quant)
        if a.is_constant and not np.array_equal(before.weights(a.index), after.weights(b.index)):
            assert a.dtype == "INT8"
            step = np.abs(before.weights(a.index).astype(int) - after.weights(b.index))
            assert step.max() == 1, "rounding moves a weight by one step at most"
            changed += 1
    assert changed >= 1


@pytest.fixture(scope="module")
def resnet8_per_tensor(resnet8, resnet8_float):
    """ResNet-8 with per-tensor weights (where rounding costs most): nearest and learned, both
    without bias correction, learned on 128 calibration samples."""
    _, float_model = resnet8_float
    x = resnet8.calibration.x[:128]
    nearest = quantize_int8(float_model.data, x, per_channel=False, bias_correction=False)
    learned = quantize_int8(
        float_model.data,
        x,
        per_channel=False,
        bias_correction=False,
        rounding="learned",
        statistics=nearest.statistics,
    )
    return float_model, nearest, learned


def test_learned_rounding_lowers_the_error_on_samples_it_did_not_learn_on(
    resnet8, resnet8_per_tensor
):
    """Measured: 28.9 → 38.7 dB at the logits on the validation set (docs/benchmarks.md)."""
    from edgekit.quantization.analysis import _outputs, probe_tensor

    float_model, nearest, learned = resnet8_per_tensor
    v = resnet8.validation.x[:200]
    probe = float_model.tensors[probe_tensor(float_model)].name
    reference = _outputs(float_model, v, "reference", probe)

    def score(data: bytes) -> float:
        return sqnr_db(reference, _outputs(read_tflite(data), v, "reference", probe))

    assert learned.rounding is not None and nearest.rounding is None
    assert len(learned.rounding.ops) == 10 and learned.rounding.samples == 128
    assert "learned rounding" in learned.seconds
    assert score(learned.data) > score(nearest.data) + 3.0


def test_tflm_runs_the_learned_integers(resnet8, resnet8_per_tensor):
    """TFLM computes what LiteRT's reference kernels compute with the learned weights."""
    from edgekit.runtimes import litert, tflm

    _, _, learned = resnet8_per_tensor
    model = read_tflite(learned.data)
    feeds = litert.input_feeds(model, resnet8.validation.x[:8])
    arena = tflm.measure_arena(model).tensor_arena_bytes
    micro, _ = tflm.run_isolated(model, feeds, arena)
    reference, _ = litert.run_isolated(model, feeds, "reference")
    for got, index in zip(micro, model.outputs, strict=True):
        assert np.array_equal(got.reshape(reference[index].shape), reference[index])


def test_deploy_with_learned_rounding_says_so(tmp_path):
    """`--rounding learned` and `--equalize` reach the engine; the report says what they
    did, and TFLM's verification on the MCU target passes."""
    import json

    result = run_edgekit(
        "deploy",
        "--example",
        "digits",
        "--target",
        "cortex-m4",
        "--rounding",
        "learned",
        "--equalize",
        "--no-analysis",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    q = json.loads(result.stdout)["quantization"]
    assert q["rounding"]["ops"] and q["rounding"]["samples"] > 0
    assert any("equalisation" in r for r in q["rewrites"]), q["rewrites"]
    (report,) = tmp_path.glob("*/report.md")
    assert "learned rounding in" in report.read_text()
    bad = run_edgekit("deploy", "--example", "digits", "-t", "cortex-m4", "--rounding", "up")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    with pytest.raises(UsageError, match="rounding"):
        edgekit.deploy(None, "cortex-m4", example="digits", rounding="stochastic", out=tmp_path)
