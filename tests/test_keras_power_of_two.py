"""Power-of-two weights: trained with QAT, exported as exact 0/±2^k int8, deployed and run."""

from __future__ import annotations

import gzip

import pytest
from helpers import off_power_of_two, tf_keras

import edgekit
from edgekit.quantization.power_of_two import snap_power_of_two
from edgekit.report import Role
from edgekit.tflite_model import read_tflite


@pytest.fixture(scope="module")
def pot_model(base_model_module, digits_data):
    from edgekit.keras import quantize_power_of_two

    keras = tf_keras()
    train, _, _ = digits_data
    keras.utils.set_random_seed(0)  # unseeded, the shuffle made the SQNR ordering a coin toss
    qat = quantize_power_of_two(base_model_module)
    qat.compile(keras.optimizers.Adam(5e-4), "sparse_categorical_crossentropy", ["accuracy"])
    qat.fit(train.x, train.y, epochs=2, batch_size=32, verbose=0)
    return qat


@pytest.fixture(scope="module")
def base_model_module(example):
    return example.model(tf_keras())


def test_power_of_two_weights_deploy_exactly_and_run_on_tflm(
    pot_model, example, digits_data, tmp_path
):
    _, calib, val = digits_data
    pot = edgekit.deploy(pot_model, "cortex-m4", validation=(val.x, val.y), out=tmp_path / "p")
    assert pot.ok, pot.report.failed_checks()
    model = read_tflite(pot.file(Role.DEPLOYED_MODEL).read_bytes())
    assert off_power_of_two(model) == {}
    assert pot.report.verification["runtime"].startswith("TFLM")
    assert any("power-of-two weights" in n and "still multiply" in n for n in pot.report.notes)
    step = next(s for s in pot.report.steps if s.name == "convert int8")
    assert "power-of-two weights" in step.detail
    # Against uniform int8 of the same float model: a few points at most, and smaller gzip.
    uniform = edgekit.deploy(
        example.model_path,
        "cortex-m4",
        calibration=calib.x,
        validation=(val.x, val.y),
        out=tmp_path / "u",
    )
    pm, um = pot.report.metrics, uniform.report.metrics
    assert pm.deployed_accuracy >= um.deployed_accuracy - 0.03
    assert pm.output_sqnr_db < um.output_sqnr_db  # the constraint costs SQNR, and says so
    assert pm.model_gzip_bytes < 0.8 * um.model_gzip_bytes


def test_snap_leaves_uniform_weights_alone(digits_tflite):
    data = digits_tflite["int8"].read_bytes()
    snapped, count = snap_power_of_two(data)
    assert count == 0 and snapped == data


def test_snap_keeps_the_model_computing_the_same(pot_model, digits_data):
    """Snapping only undoes the converter's rounding: outputs barely move."""
    from edgekit.converters.tflite import convert
    from edgekit.models import from_keras
    from edgekit.verify import run_model, sqnr_db

    _, _, val = digits_data
    raw = convert(from_keras(pot_model), "int8", io_dtype="int8").data
    snapped, count = snap_power_of_two(raw)
    assert count == 5
    a = run_model(read_tflite(raw), val.x[:100], "reference")["output_0"]
    b = run_model(read_tflite(snapped), val.x[:100], "reference")["output_0"]
    assert sqnr_db(a, b) > 25
    assert len(gzip.compress(snapped, 9)) <= len(gzip.compress(raw, 9))
