"""Keras 3 QAT, natively: Keras 3 in, Keras 3 out, a real int8 model with the learned ranges."""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pytest
from helpers import WEIGHTED_OPS, compile_keras3, off_power_of_two, run_edgekit, trained_keras3

import edgekit
from edgekit import keras as ek
from edgekit.bundle import Role
from edgekit.errors import UsageError
from edgekit.keras.qat3_layers import QuantizeActivation, QuantizeWeights
from edgekit.targets import Quantization, load_target
from edgekit.tflite_model import read_tflite
from edgekit.verify import output_step, run_model, within_one_step

BATCH = 32
WEIGHTED = WEIGHTED_OPS


def _cnn() -> keras.Model:
    """Conv2D+BN+ReLU, a depthwise branch added back (residual), pooling, Dense."""
    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(x)
    y = keras.layers.ReLU(name="relu_dw")(y)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="label")(x)
    return keras.Model(inputs, outputs, name="digits3_qat")


@pytest.fixture(scope="module")
def float_model(digits_data):
    return trained_keras3(_cnn(), digits_data[0], epochs=8, batch_size=BATCH)


@pytest.fixture(scope="module")
def qat(float_model, digits_data):
    before = [w.copy() for w in float_model.get_weights()]
    model = compile_keras3(ek.quantize_model(float_model, target="cortex-m4"), 5e-4)
    model.fit(digits_data[0].x, digits_data[0].y, epochs=2, batch_size=BATCH, verbose=0)
    for old, new in zip(before, float_model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # the user's model keeps its weights
    return model


@pytest.fixture(scope="module")
def bundle(qat, digits_data, tmp_path_factory):
    val = digits_data[2]
    out = tmp_path_factory.mktemp("qat3")
    return edgekit.deploy(qat, "cortex-m4", validation=(val.x, val.y), out=out, analysis=False)


def test_the_layout_follows_tfmots_default_8bit_scheme(qat):
    assert type(qat).__module__.startswith("keras")
    kinds = [(type(layer).__name__, layer.name) for layer in qat.layers]
    assert ("BatchNormalization", "bn") not in kinds  # folded into the conv first
    wrapped = {
        layer.layer.name: layer.per_channel
        for layer in qat.layers
        if isinstance(layer, QuantizeWeights)
    }
    assert wrapped == {"conv": True, "depthwise": True, "hidden": True, "label": True}
    quantizers = [layer.name for layer in qat.layers if isinstance(layer, QuantizeActivation)]
    # conv → ReLU fuse (the ReLU quantizes); pooling/flatten keep the range; softmax is fixed.
    assert quantizers == [
        "image_quant",
        "relu_quant",
        "relu_dw_quant",
        "add_quant",
        "hidden_quant",
        "label_quant",
    ]
    assert kinds[-1] == ("Activation", "label_activation")
    assert qat.get_layer("image_quant").learned_range() == (0.0, 1.0)  # every input value seen
    low, high = qat.get_layer("relu_quant").learned_range()  # a moving average from tfmot's ±6
    assert -6.0 < low < 0.0 and high != 6.0


def test_it_deploys_to_int8_with_the_learned_ranges_and_matches_the_simulation(
    qat, float_model, bundle, digits_data
):
    assert bundle.ok, bundle.report.failed_checks()
    deployed = read_tflite(bundle.file(Role.DEPLOYED_MODEL).read_bytes())
    ops = [op for op in deployed.operators if op.name in WEIGHTED]
    assert sorted(op.name for op in ops) == [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "FULLY_CONNECTED",
        "FULLY_CONNECTED",
    ]
    for op in ops:  # int8 in, int8 weights (one scale per output channel), int8 out
        weight = deployed.tensors[op.inputs[1]]
        assert (deployed.tensors[op.inputs[0]].dtype, weight.dtype) == ("INT8", "INT8")
        assert len(weight.quant.scales) == weight.shape[weight.quant.axis] > 1
    activations = [t for t in deployed.tensors if not t.is_constant and t.quant is not None]
    scales = [t.quant.scales[0] for t in activations if len(t.quant.scales) == 1]
    for layer in qat.layers:
        if isinstance(layer, QuantizeActivation) and layer.name != "label_quant":
            low, high = layer.learned_range()
            assert min(abs(s / ((high - low) / 255) - 1) for s in scales) < 1e-5, layer.name
    step = next(s for s in bundle.report.steps if s.name == "convert int8")
    assert "ranges from quantization-aware training" in step.detail  # no calibration data

    # The QAT model's own (simulated int8) output against the int8 model's, same inputs.
    val = digits_data[2]
    simulated = qat.predict(val.x, verbose=0)
    reference = read_tflite(bundle.file(Role.FLOAT_REFERENCE).read_bytes())
    converted_simulation = next(iter(run_model(reference, val.x, "builtin").values()))
    converted_simulation = converted_simulation.reshape(simulated.shape)
    # The float reference is the QAT model converted (its fake quantization kept): the same
    # values, up to a rounding tie in some fake-quant step now and then.
    assert np.mean(np.abs(converted_simulation - simulated) < 1e-4) > 0.99
    int8 = next(iter(run_model(deployed, val.x, "builtin").values())).reshape(simulated.shape)
    share = within_one_step(simulated, int8, output_step(deployed, deployed.outputs[0]))
    metrics = bundle.report.metrics
    print(
        f"QAT agreement {share:.4f} (report {metrics.qat_agreement:.4f}), accuracy float "
        f"{float_model.evaluate(val.x, val.y, verbose=0)[1]:.3f}, deployed "
        f"{metrics.deployed_accuracy:.3f}"
    )
    assert share >= 0.95 and metrics.qat_agreement >= 0.95
    assert any(
        n.startswith("QAT agreement:") and "within one int8 step" in n for n in bundle.report.notes
    )
    float_accuracy = float_model.evaluate(val.x, val.y, verbose=0)[1]
    assert metrics.deployed_accuracy >= float_accuracy - 0.03
    assert bundle.report.verification["runtime"].startswith("TFLM")


@pytest.mark.slow
def test_it_saves_as_keras_reloads_and_the_cli_deploys_it_without_calibration(
    qat, digits_data, tmp_path
):
    val = digits_data[2]
    path = tmp_path / "qat.keras"
    qat.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(val.x[:64], verbose=0), qat.predict(val.x[:64], verbose=0), atol=1e-6
    )
    learned = qat.get_layer("add_quant").learned_range()
    assert reloaded.get_layer("add_quant").learned_range() == learned
    np.savez(tmp_path / "val.npz", x=val.x[:100], y=val.y[:100])
    result = run_edgekit(
        "deploy",
        str(path),
        "-t",
        "raspberry-pi-4",
        "--validation",
        str(tmp_path / "val.npz"),
        "--out",
        str(tmp_path / "out"),
        "--no-analysis",
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert "QAT agreement" in (next((tmp_path / "out").iterdir()) / "report.md").read_text()
    assert "qat_agreement" in result.stdout + result.stderr  # in the summary table too


def test_a_per_tensor_target_gets_one_scale_per_kernel(float_model, digits_data, tmp_path):
    per_tensor = replace(
        load_target("raspberry-pi-4"), quantization=Quantization("int8", "int8", per_channel=False)
    )
    model = compile_keras3(ek.quantize_model(float_model, target=per_tensor))
    assert {layer.per_channel for layer in model.layers if isinstance(layer, QuantizeWeights)} == {
        False
    }
    model.fit(digits_data[0].x[:256], digits_data[0].y[:256], epochs=1, verbose=0)
    val = digits_data[2]
    bundle = edgekit.deploy(
        model, per_tensor, validation=(val.x[:100], val.y[:100]), out=tmp_path, analysis=False
    )
    deployed = read_tflite(bundle.file(Role.DEPLOYED_MODEL).read_bytes())
    counts = [
        len(deployed.tensors[op.inputs[1]].quant.scales)
        for op in deployed.operators
        if op.name in WEIGHTED
    ]
    assert counts == [1, 1, 1, 1]


def test_refusals_name_the_reason(float_model):
    with pytest.raises(UsageError, match="QAT trains for int8"):
        ek.quantize_model(float_model, target=load_target("android-arm64").with_delegate("gpu"))
    with pytest.raises(UsageError, match="preserve='clusters'.*tf_keras models only"):
        ek.quantize_model(float_model, preserve="clusters")
    inputs = keras.Input((8, 4))
    x = keras.layers.Conv1D(4, 3, name="temporal")(inputs)
    x = keras.layers.LSTM(4, name="memory")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    with pytest.raises(UsageError, match=r"'temporal' \(Conv1D\), 'memory' \(LSTM\)"):
        ek.quantize_model(model)


def test_power_of_two_trains_in_keras3_and_deploys_exact_powers(float_model, digits_data, tmp_path):
    pot = compile_keras3(ek.quantize_power_of_two(float_model), 5e-4)
    assert type(pot).__module__.startswith("keras")
    assert {layer.weights_mode for layer in pot.layers if isinstance(layer, QuantizeWeights)} == {
        "power_of_two"
    }
    pot.fit(digits_data[0].x, digits_data[0].y, epochs=1, batch_size=BATCH, verbose=0)
    val = digits_data[2]
    bundle = edgekit.deploy(
        pot, "raspberry-pi-4", validation=(val.x, val.y), out=tmp_path, analysis=False
    )
    assert bundle.ok, bundle.report.failed_checks()
    model = read_tflite(bundle.file(Role.DEPLOYED_MODEL).read_bytes())
    assert off_power_of_two(model) == {}
    assert "power-of-two weights" in next(
        s.detail for s in bundle.report.steps if s.name == "convert int8"
    )
    assert bundle.report.metrics.deployed_accuracy > 0.8


def test_concatenate_pools_leaky_relu_and_softmax_layer_deploy_fully_int8(digits_data, tmp_path):
    inputs = keras.Input((8, 8, 1))
    a = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    b = keras.layers.LeakyReLU(0.1)(keras.layers.Conv2D(8, 1)(inputs))
    x = keras.layers.AveragePooling2D(2)(keras.layers.Concatenate()([a, b]))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu6")(x)
    x = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, keras.layers.Softmax()(x))
    trained_keras3(model, digits_data[0], epochs=4)  # QAT fine-tunes a trained model
    qat = trained_keras3(ek.quantize_model(model), digits_data[0].head(1024), epochs=2)
    val = digits_data[2]
    bundle = edgekit.deploy(
        qat, "cortex-m4", validation=(val.x[:100], val.y[:100]), out=tmp_path, analysis=False
    )
    assert bundle.ok, bundle.report.failed_checks()
    deployed = read_tflite(bundle.file(Role.DEPLOYED_MODEL).read_bytes())
    # The two branches may come in either order (the converter orders by tensor names).
    assert sorted(
        (op.name, deployed.tensors[op.inputs[0]].dtype) for op in deployed.operators
    ) == sorted(
        (name, "INT8")
        for name in (
            "CONV_2D",
            "LEAKY_RELU",
            "CONV_2D",
            "CONCATENATION",
            "AVERAGE_POOL_2D",
            "CONV_2D",
            "MEAN",
            "FULLY_CONNECTED",
            "SOFTMAX",
        )
    )
    # Ranges are moving averages from tfmot's ±6: after 64 steps they are still wide, so int8
    # rounds coarsely and drifts from the simulation a little more than after a long fine-tune.
    assert bundle.report.metrics.qat_agreement >= 0.8


def test_preserve_sparsity_keeps_a_pruned_models_zeros_through_qat(
    float_model, digits_data, tmp_path
):
    """Plain QAT refills a pruned kernel's zeros; preserve="sparsity" keeps every one, into the
    int8 file."""
    train, val = digits_data[0], digits_data[2]
    keras.utils.set_random_seed(0)  # unseeded, the accuracy wandered around the bar
    steps = int(np.ceil(len(train.x) / BATCH))
    pruned = compile_keras3(
        ek.prune_low_magnitude(
            float_model, ek.pruning_schedule(0.75, epochs=2, steps_per_epoch=steps)
        )
    )
    pruned.fit(
        train.x,
        train.y,
        epochs=2,
        batch_size=BATCH,
        verbose=0,
        callbacks=[ek.callbacks.UpdatePruningStep()],
    )
    sparse = ek.strip_pruning(pruned)
    zeros = {}
    for preserve in (None, "sparsity"):
        model = compile_keras3(
            ek.quantize_model(sparse, target="cortex-m4", preserve=preserve), 5e-4
        )
        model.fit(train.x, train.y, epochs=1, batch_size=BATCH, verbose=0)
        bundle = edgekit.deploy(
            model,
            "cortex-m4",
            validation=(val.x, val.y),
            out=tmp_path / str(preserve),
            analysis=False,
        )
        zeros[preserve] = bundle.report.metrics["weight_sparsity"]
        if preserve:
            assert bundle.report.metrics["deployed_accuracy"] > 0.85, bundle.report.verification
    assert zeros["sparsity"] >= 0.74 > zeros[None] + 0.1, zeros


def test_user_mistakes_get_one_line_errors(qat, tmp_path):
    """Found by a new user: a subclassed Keras 3 model was called "not a Keras model", an
    unbuilt one raised Keras's AttributeError (QAT) or failed inside fit (pruning,
    clustering), and a QAT model deployed to a float32 profile as a float graph."""

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(3)

        def call(self, x):
            return self.dense(x)

    sub = Sub()
    sub(np.zeros((1, 4), np.float32))
    with pytest.raises(UsageError, match="subclassed"):
        ek.quantize_model(sub, target="cortex-m4")
    unbuilt = keras.Sequential([keras.layers.Dense(4), keras.layers.Dense(2)])
    schedule = ek.pruning_schedule(0.5, epochs=1, steps_per_epoch=1)
    for wrap in (
        lambda m: ek.quantize_model(m, target="cortex-m4"),
        lambda m: ek.prune_low_magnitude(m, schedule),
        lambda m: ek.cluster_weights(m, 4),
    ):
        with pytest.raises(UsageError, match="not built; define it with keras.Input"):
            wrap(unbuilt)
    float_only = Quantization(scheme="float32", io_dtype="float32")
    float_target = replace(load_target("raspberry-pi-4"), name="float-pi", quantization=float_only)
    with pytest.raises(UsageError, match="QAT model deploys as int8; target float-pi runs float32"):
        edgekit.deploy(qat, float_target, out=tmp_path, analysis=False)
