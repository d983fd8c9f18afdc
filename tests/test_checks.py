"""Runtime versions and budgets: the checks that catch device failures before the device."""

from __future__ import annotations

from dataclasses import replace

from helpers import convert_keras, tf_keras

from edgekit.checks import check_model, check_runtime_ops, min_runtime_for, version_tuple
from edgekit.targets import load_target
from edgekit.tflite_model import load_tflite


def _by_name(checks):
    return {c.name: c for c in checks}


def test_runtime_table_facts():
    assert min_runtime_for("CONV_2D", 5) == "2.4.0"
    assert min_runtime_for("FULLY_CONNECTED", 12) == "2.17.0"
    assert min_runtime_for("CONV_2D", 99) is None
    assert version_tuple("2.5.0.post1") > version_tuple("2.5.0") > version_tuple("2.4.9")


def test_old_runtime_names_op_version_and_runtime(digits_tflite):
    model = load_tflite(digits_tflite["uint8"])
    conv_version = dict(model.opcodes)["CONV_2D"]
    needed = min_runtime_for("CONV_2D", conv_version)
    old = replace(load_target("coral"), runtime_version="1.13.0", runtime_label="tflite 1.13")
    check = check_runtime_ops(model, old)
    assert not check.ok
    assert f"CONV_2D version {conv_version} needs runtime {needed}" in check.detail
    assert "tflite 1.13" in check.detail
    assert check_runtime_ops(model, load_target("coral")).ok


def test_newer_ops_fail_on_coral_but_not_on_android():
    # GELU arrived in TF Lite 2.9: Coral's tflite_runtime 2.5.0 cannot run it.
    keras = tf_keras()
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="gelu")])
    _, converted = convert_keras(model)
    gelu_version = dict(converted.opcodes)["GELU"]
    check = check_runtime_ops(converted, load_target("coral"))
    assert not check.ok
    assert f"GELU version {gelu_version} needs runtime 2.9.0" in check.detail
    assert "2.5.0" in check.detail
    assert check_runtime_ops(converted, load_target("android-arm64")).ok


def test_flash_over_budget_gives_numbers():
    keras = tf_keras()
    model = keras.Sequential([keras.Input((1200,)), keras.layers.Dense(1000)])
    data, converted = convert_keras(model)
    checks = _by_name(check_model(converted, load_target("cortex-m4")))
    flash = checks["flash_budget"]
    assert not flash.ok
    assert f"{len(data) / 1024:.1f} KiB" in flash.detail and "896.0 KiB" in flash.detail


def test_ram_over_budget_from_measured_arena():
    keras = tf_keras()
    model = keras.Sequential(
        [keras.Input((112, 112, 8)), keras.layers.Conv2D(16, 3, padding="same")]
    )
    _, converted = convert_keras(model)
    m4 = _by_name(check_model(converted, load_target("cortex-m4")))
    m7 = _by_name(check_model(converted, load_target("cortex-m7")))
    # 112*112*(8+16) bytes (294 KiB) of activations cannot fit 224 KiB; they fit the M7's 960 KiB.
    assert not m4["ram_budget"].ok and "224.0 KiB" in m4["ram_budget"].detail
    assert m7["ram_budget"].ok


def _free_batch_model(shape_op: bool = False):
    """Converted straight from Keras, keeping the None batch in shape_signature; with
    `shape_op`, a reshape computes its shape at run time (a SHAPE op)."""
    tf = __import__("edgekit._tf", fromlist=["tensorflow"]).tensorflow()
    keras = tf_keras()
    inputs = keras.Input((4, 2))
    x = inputs
    if shape_op:
        x = keras.layers.Lambda(lambda t: tf.reshape(t, [tf.shape(t)[0], 8]))(x)
    else:
        x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    from edgekit.tflite_model import read_tflite

    return read_tflite(converter.convert())


def test_a_free_batch_is_static_for_tflm_and_litert_but_not_for_the_edgetpu():
    converted = _free_batch_model()
    assert any(t.dynamic for t in converted.tensors)  # -1 in shape_signature
    assert all(d > 0 for t in converted.tensors for d in t.shape)  # concrete shapes
    for target in ("raspberry-pi-4", "cortex-m4"):
        check = _by_name(check_model(converted, load_target(target)))["static_shapes"]
        assert check.ok and "shape_signature" in check.detail, (target, check)
    coral = _by_name(check_model(converted, load_target("coral")))["static_shapes"]
    assert not coral.ok and "Edge TPU compiler needs static shapes" in coral.detail
    # A float model on an int8 target: the runtime runs float32 too, so IO is a note.
    rpi = _by_name(check_model(converted, load_target("raspberry-pi-4")))
    assert rpi["precision"].ok and "float32 model on a int8 target" in rpi["precision"].detail
    assert not _by_name(check_model(converted, load_target("coral")))["precision"].ok


def test_shapes_computed_at_run_time_are_flagged():
    converted = _free_batch_model(shape_op=True)
    assert "SHAPE" in {op.name for op in converted.operators}
    for target in ("raspberry-pi-4", "cortex-m4"):
        check = _by_name(check_model(converted, load_target(target)))["static_shapes"]
        assert not check.ok and "SHAPE" in check.detail
