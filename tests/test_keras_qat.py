"""QAT: the profile decides per-axis or per-tensor; the deployed model uses learned ranges."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import model_with_custom_layer

import edgekit
from edgekit import keras as ek
from edgekit.errors import EdgekitError
from edgekit.inspection import weight_sparsity, weight_tensors
from edgekit.models import from_keras
from edgekit.targets import Quantization, load_target
from edgekit.tflite_model import load_tflite, read_tflite


def _train(model, data, epochs=1, callbacks=()):
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(data.x, data.y, epochs=epochs, batch_size=32, verbose=0, callbacks=list(callbacks))
    return model


def _weight_scales(model, ops=("CONV_2D", "DEPTHWISE_CONV_2D")):
    return {
        op.name + str(op.index): len(model.tensors[idx].quant.scales)
        for op, idx in weight_tensors(model)
        if op.name in ops
    }


def test_per_axis_or_per_tensor_comes_from_the_target(base_model, digits_data):
    from edgekit.converters.tflite import convert

    train = digits_data[0].head(256)
    qat = _train(ek.quantize_model(base_model, target="cortex-m4"), train)
    model = read_tflite(convert(from_keras(qat), "int8", io_dtype="int8").data)
    scales = _weight_scales(model)
    assert len(scales) == 3 and all(n > 1 for n in scales.values())
    assert {t.dtype for t in model.tensors if not t.is_constant} == {"INT8"}

    per_tensor = replace(
        load_target("cortex-m4"), quantization=Quantization("int8", "int8", per_channel=False)
    )
    qat = _train(ek.quantize_model(base_model, target=per_tensor), train)
    assert "BatchNormalization" not in {
        type(layer.layer).__name__ for layer in qat.layers if hasattr(layer, "layer")
    }
    model = read_tflite(convert(from_keras(qat), "int8", io_dtype="int8", per_channel=False).data)
    # Every conv kernel (the BatchNorm-followed ones and the Conv+ReLU one) has one scale.
    assert _weight_scales(model, ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")) == {
        "CONV_2D0": 1,
        "DEPTHWISE_CONV_2D1": 1,
        "CONV_2D2": 1,
        "FULLY_CONNECTED7": 1,
        "FULLY_CONNECTED8": 1,
    }
    assert {t.dtype for t in model.tensors if not t.is_constant} == {"INT8"}
    with pytest.raises(EdgekitError, match="per-tensor weights.*per-axis only"):
        ek.quantize_model(base_model, target=per_tensor, preserve="sparsity")


def test_saved_qat_model_loads_from_h5_and_keras_files_get_a_hint(base_model, tmp_path):
    from edgekit.models import load_model

    qat = ek.quantize_model(base_model, target="cortex-m4")
    qat.save(tmp_path / "qat.h5")
    assert load_model(tmp_path / "qat.h5").is_qat
    # Its ranges came from training: the early "needs calibration data" check lets it through.
    from edgekit.options import DeployOptions
    from edgekit.stages.load import precheck
    from edgekit.targets import load_target

    precheck(tmp_path / "qat.h5", load_target("cortex-m4"), DeployOptions())
    qat.save(tmp_path / "qat.keras")
    with pytest.raises(EdgekitError, match=r"qat.keras: cannot load.*save them as .h5"):
        load_model(tmp_path / "qat.keras")


def test_qat_rejects_float_targets_and_subclassed_models(base_model):
    with pytest.raises(EdgekitError, match="QAT trains for int8"):
        ek.quantize_model(base_model, target=load_target("android-arm64").with_delegate("gpu"))
    with pytest.raises(EdgekitError, match="preserve must be one of"):
        ek.quantize_model(base_model, preserve="everything")


def test_unsupported_layer_is_named(tmp_path):
    model = model_with_custom_layer()
    with pytest.raises(EdgekitError, match=r"'my_scale' \(Scale\).*QuantizeConfig"):
        ek.quantize_model(model)


@pytest.mark.slow
def test_qat_deploys_with_learned_ranges_on_litert_and_tflm(base_model, digits_data, tmp_path):
    train, _, val = digits_data
    qat = _train(ek.quantize_model(base_model, target="cortex-m4"), train, epochs=1)
    quantize_layer = qat.layers[0]
    learned_min = next(float(v.numpy()) for v in quantize_layer.weights if "_min" in v.name)
    learned_max = next(float(v.numpy()) for v in quantize_layer.weights if "_max" in v.name)
    m4 = edgekit.deploy(qat, "cortex-m4", validation=(val.x, val.y), out=tmp_path)  # no calibration
    assert m4.ok, m4.report.failed_checks()
    assert any("ranges come from training" in note for note in m4.report.notes)
    model = load_tflite(m4.path / "digits_cnn_int8.tflite")
    (inp,) = model.input_tensors()
    lo = (-128 - inp.quant.zero_points[0]) * inp.quant.scales[0]
    hi = (127 - inp.quant.zero_points[0]) * inp.quant.scales[0]
    assert lo == pytest.approx(learned_min, abs=1e-3)
    assert hi == pytest.approx(learned_max, abs=1e-2)
    metrics = m4.report.metrics
    assert metrics.deployed_accuracy > 0.9 and m4.report.verification["runtime"].startswith("TFLM")
    assert metrics["tflm_max_diff_steps"] <= 1
    assert metrics.qat_agreement >= 0.9  # tfmot's QAT model gets the figure too

    coral = edgekit.deploy(qat, "coral", validation=(val.x, val.y), out=tmp_path)
    assert coral.ok, coral.report.failed_checks()
    assert coral.report.edgetpu["analysis"]["ops_on_cpu"] == 0
    assert load_tflite(coral.path / "digits_cnn_int8.tflite").input_tensors()[0].dtype == "UINT8"


@pytest.mark.slow
def test_prune_preserving_qat_keeps_sparsity(base_model, digits_data, tmp_path):
    train, calib, val = digits_data
    pruned = ek.prune_low_magnitude(base_model, ek.ConstantSparsity(0.75, 0, frequency=1))
    _train(pruned, train.head(512), callbacks=[ek.callbacks.UpdatePruningStep()])
    stripped = ek.strip_pruning(pruned)
    pqat = _train(
        ek.quantize_model(stripped, target="cortex-m4", preserve="sparsity"), train.head(600)
    )
    bundle = edgekit.deploy(pqat, "cortex-m4", validation=(val.x, val.y), out=tmp_path)
    model = load_tflite(bundle.path / "digits_cnn_int8.tflite")
    assert weight_sparsity(model, ("CONV_2D", "FULLY_CONNECTED")) >= 0.73
    plain = _train(ek.quantize_model(stripped, target="cortex-m4"), train.head(600))
    plain_bundle = edgekit.deploy(
        plain, "cortex-m4", validation=(val.x, val.y), out=tmp_path / "plain"
    )
    plain_model = load_tflite(plain_bundle.path / "digits_cnn_int8.tflite")
    # Without the preserving scheme, QAT training refills zeros: below the target.
    assert weight_sparsity(plain_model, ("CONV_2D", "FULLY_CONNECTED")) < 0.73
    assert bundle.ok and plain_bundle.ok, (
        bundle.report.failed_checks(),
        plain_bundle.report.failed_checks(),
    )
    for b in (bundle, plain_bundle):
        metrics = b.report.metrics
        assert metrics["deployed_accuracy"] > 0.9  # 95.8 % here, float 95.6 %
