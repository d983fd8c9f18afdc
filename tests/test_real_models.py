"""Verification on trained models with real structure (edgekit.examples.zoo): residual adds,
global pooling, a dense autoencoder, a two-headed model. The digits example hid a verification
bug that fails real residual nets; these would have caught it."""

from __future__ import annotations

import numpy as np
from helpers import tf_keras

import edgekit
from edgekit.data import Dataset
from edgekit.tflite_model import load_tflite


def _checks(bundle):
    return {c.name: c for c in bundle.report.checks}


def test_resnet8_on_cortex_m7_matches_the_reference_kernels(resnet8_m7):
    bundle = resnet8_m7
    checks = _checks(bundle)
    assert bundle.ok, bundle.report.failed_checks()
    assert checks["tflm_matches_litert"].ok, checks["tflm_matches_litert"].detail
    v = bundle.report.verification
    assert v["runtime"].startswith("TFLM") and v["kernel_check"]["samples"] >= 20
    m = bundle.report.metrics
    # Op by op, on identical inputs, no kernel differs by more than one step; what reaches the
    # outputs (a MEAN's one-step rounding, amplified by the dense layer and softmax) is allowed.
    ops = v["kernel_check"]["ops"]
    assert ops and all(op["local_diff_steps"] <= 1 for op in ops)
    assert m.tflm_max_diff_steps is not None
    # XNNPACK rounds differently: information, never a failure.
    assert m.optimized_vs_reference_steps is not None
    assert m.logits_sqnr_db is not None and m.output_sqnr_db is not None
    assert m.deployed_accuracy > 0.6 and m.top1_agreement >= 0.9
    ops = {op["op"] for op in bundle.report.ops}
    assert {"ADD", "MEAN", "CONV_2D", "SOFTMAX"} & ops >= {"ADD", "CONV_2D", "SOFTMAX"}


def _corrupt_weights(data: bytes, op_index: int) -> bytes:
    """The model with op `op_index`'s int8 weights shifted: what a broken kernel would give."""
    from edgekit.tflite_edit import pack, unpack

    model = unpack(data)
    graph = model.subgraphs[0]
    tensor = graph.tensors[graph.operators[op_index].inputs[1]]
    buffer = model.buffers[tensor.buffer]
    values = np.asarray(buffer.data, dtype=np.uint8).view(np.int8).copy()
    values[::3] = np.clip(values[::3].astype(np.int16) + 40, -127, 127).astype(np.int8)
    buffer.data = values.view(np.uint8)
    return pack(model)


def test_a_corrupted_tflm_result_fails_and_names_the_op(resnet8_m7):
    """TFLM runs a model whose conv #4 computes wrongly; LiteRT's reference kernels run the
    real one. The check fails and names op #4, not the softmax where the error shows."""
    from edgekit.bundle import Bundle
    from edgekit.report import Role
    from edgekit.runtimes import litert, tflm
    from edgekit.tflite_model import read_tflite
    from edgekit.verify import check_tflm_kernels

    bundle = Bundle.load(resnet8_m7.path)
    model = load_tflite(bundle.file(Role.DEPLOYED_MODEL))
    conv = next(op.index for op in model.operators if op.name == "CONV_2D" and op.index >= 3)
    broken = read_tflite(_corrupt_weights(model.data, conv), "broken.tflite")
    x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    feeds = litert.input_feeds(model, x)
    arena = bundle.report.metrics.tensor_arena_bytes
    outputs, _ = tflm.run_isolated(broken, feeds, arena)
    reference, _ = litert.run_isolated(model, feeds, "reference")
    check = check_tflm_kernels(
        model, feeds, dict(zip(model.outputs, outputs, strict=True)), reference, arena, broken
    )
    assert not check.ok
    assert check.first_divergent_op["index"] == conv
    assert f"op #{conv} CONV_2D" in check.detail
    # Ops before it match exactly: the divergence is located, not smeared.
    assert all(op["local_diff_steps"] <= 1 for op in check.ops if op["index"] < conv)
    # The same comparison on the real model passes.
    outputs, _ = tflm.run_isolated(model, feeds, arena)
    good = check_tflm_kernels(
        model, feeds, dict(zip(model.outputs, outputs, strict=True)), reference, arena
    )
    assert good.ok


def test_an_autoencoder_gets_regression_metrics_not_agreement(tmp_path):
    bundle = edgekit.deploy(None, "raspberry-pi-4", example="autoencoder", out=tmp_path)
    assert bundle.ok, bundle.report.failed_checks()
    (out,) = bundle.report.verification["outputs"]
    assert out["task"] == "regression" and "input's size" in out["task_reason"]
    assert out["top1_agreement"] is None and "top1_agreement" not in _checks(bundle)
    m = bundle.report.metrics
    assert m.top1_agreement is None and m.deployed_accuracy is None
    assert m.output_sqnr_db > 20 and m.output_cosine_similarity > 0.99
    assert m.output_max_abs_error > 0
    assert bundle.report.verification["runtime"] == "LiteRT + XNNPACK"


def test_task_can_be_forced(resnet8_m7, tmp_path):
    model = resnet8_m7.path / "resnet8_int8.tflite"
    regression = edgekit.deploy(model, "cortex-m7", task="regression", out=tmp_path)
    (out,) = regression.report.verification["outputs"]
    assert out["task"] == "regression" and out["task_reason"] == "--task"
    assert regression.report.metrics.top1_agreement is None


def _two_heads():
    """Keras outputs [main (10 classes), aux (3)]; the converter orders them otherwise."""
    keras = tf_keras()
    inputs = keras.Input((16,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    main = keras.layers.Dense(10, activation="softmax", name="main")(hidden)
    aux = keras.layers.Dense(3, activation="softmax", name="aux")(keras.layers.Dense(8)(hidden))
    model = keras.Model(inputs, [main, aux], name="two_heads")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 16)).astype(np.float32)
    y_main, y_aux = (x[:, :10].argmax(1)), (x[:, 10:13].argmax(1))
    model.compile("adam", ["sparse_categorical_crossentropy"] * 2)
    model.fit(x, [y_main, y_aux], epochs=15, verbose=0)
    return model, x


def test_every_output_is_verified_matched_by_name(tmp_path):
    model, x = _two_heads()
    bundle = edgekit.deploy(
        model, "cortex-m4", calibration=x[:200], validation=x[200:], out=tmp_path
    )
    outputs = {o["name"]: o for o in bundle.report.verification["outputs"]}
    assert set(outputs) == {"main", "aux"}
    assert outputs["main"]["shape"] == [1, 10] and outputs["aux"]["shape"] == [1, 3]
    for out in outputs.values():
        assert out["task"] == "classification"
        assert out["sqnr_db"] > 15 and out["top1_agreement"] > 0.9, out
    assert len([c for c in bundle.report.checks if c.name == "top1_agreement"]) == 2


def test_each_target_reports_the_runtime_its_device_runs(example, digits_tflite, tmp_path):
    data = Dataset(example.validation.x[:50], example.validation.y[:50], "val")
    runs = {}
    for target in ("raspberry-pi-4", "coral", "cortex-m4"):
        bundle = edgekit.deploy(
            digits_tflite["uint8" if target == "coral" else "int8"],
            target,
            validation=(data.x, data.y),
            out=tmp_path / target,
        )
        runs[target] = bundle.report
    assert runs["raspberry-pi-4"].verification["runtime"] == "LiteRT + XNNPACK"
    assert runs["cortex-m4"].verification["runtime"].startswith("TFLM")
    coral = runs["coral"]
    assert coral.verification["runtime"] == "LiteRT builtin kernels"
    assert any("Edge TPU is not on this host" in n for n in coral.notes)
