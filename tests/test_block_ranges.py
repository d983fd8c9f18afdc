"""`block` ranges: each tensor's range chosen by the error at the model's logits, the rest of
the float network run from it on (a sub-model of the real `.tflite`)."""

from __future__ import annotations

import numpy as np

from edgekit.quantization.activations import kept_activations
from edgekit.quantization.block_ranges import block_ranges, downstream, fake_quant
from edgekit.quantization.calibration import choose_range
from edgekit.quantization.engine import collect_statistics
from edgekit.runtimes.litert import run_isolated
from edgekit.tflite_edit import sub_model
from edgekit.tflite_model import read_tflite


def _pooled_model():
    """Conv → ReLU with long-tailed outputs → global average pool → dense logits."""
    import keras

    inputs = keras.Input((12, 12, 2))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4)(x))


def _float(model) -> bytes:
    from edgekit.converters.tflite import convert
    from edgekit.models import load_model

    return convert(load_model(model), "float32").data


def test_the_rest_of_the_network_reproduces_the_logits(resnet8, resnet8_float):
    """The sub-model from a residual block's inputs on, fed the float model's own tensors,
    gives the float model's logits: the machinery block ranges score with is exact."""
    _, model = resnet8_float
    add = next(op for op in model.operators if op.name == "ADD")
    probe = model.outputs[0]
    ops = downstream(model, list(add.inputs), probe)
    assert add.index in ops and ops[-1] == len(model.operators) - 1
    data, inputs = sub_model(model.data, ops, [probe])
    x = resnet8.calibration.x[:8]
    kept = kept_activations(model, x, [*inputs, probe])
    outputs, _ = run_isolated(read_tflite(data), [kept[i] for i in inputs], "builtin")
    np.testing.assert_allclose(outputs[probe], kept[probe], rtol=1e-4, atol=1e-5)


def test_each_range_is_the_candidate_with_the_least_error_at_the_logits():
    """Long-tailed ReLU outputs before a global pool: the range chosen for them is, of every
    candidate, the one whose int8 grid moves the logits least (recomputed here through the
    sub-model), and here it is not min/max, what the default would take."""
    from edgekit.quantization.block_ranges import CANDIDATES

    model = _pooled_model()
    conv = model.layers[1]
    kernel, bias = conv.get_weights()
    conv.set_weights([np.abs(kernel), bias])  # every output a sum: few exact zeros
    float_model = read_tflite(_float(model))
    x = np.random.default_rng(0).standard_exponential((64, 12, 12, 2)).astype(np.float32) ** 2
    statistics = collect_statistics(float_model, x)
    relu = next(op for op in float_model.operators if op.name == "CONV_2D").outputs[0]
    probe = float_model.outputs[0]
    chosen = block_ranges(float_model, statistics, x, probe)[relu]

    data, inputs = sub_model(float_model.data, downstream(float_model, [relu], probe), [probe])
    kept = kept_activations(float_model, x, [relu, probe])

    def error(bounds) -> float:
        outputs, _ = run_isolated(read_tflite(data), [fake_quant(kept[relu], bounds)], "builtin")
        return float(np.sum((outputs[probe] - kept[probe]) ** 2))

    histogram = statistics.histograms[relu]
    errors = {m: error(choose_range(histogram, m)) for m in CANDIDATES}
    assert inputs == [relu]
    assert error(chosen) == min(errors.values())
    assert chosen != (histogram.lo, histogram.hi)
