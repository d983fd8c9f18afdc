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


def test_dynamic_batch_is_flagged(tmp_path):
    tf = __import__("edgekit._tf", fromlist=["tensorflow"]).tensorflow()
    keras = tf_keras()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)  # keeps the None batch
    from edgekit.tflite_model import read_tflite

    converted = read_tflite(converter.convert())
    checks = _by_name(check_model(converted, load_target("raspberry-pi-4")))
    assert not checks["static_shapes"].ok
    assert not checks["io_dtype"].ok and "float32" in checks["io_dtype"].detail
