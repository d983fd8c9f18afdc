"""Verification figures on real runtimes, and what a collapse looks like."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgekit.data import Dataset
from edgekit.verify import dequantize, quantize, sqnr_db, verify


def test_sqnr_definition():
    ref = np.array([3.0, 4.0])
    assert sqnr_db(ref, ref + np.array([0.3, 0.4])) == pytest.approx(20.0)
    assert sqnr_db(ref, ref) is None
    assert math.isclose(sqnr_db(ref, np.zeros(2)), 0.0, abs_tol=1e-9)


def test_quantize_round_trip_and_clipping():
    x = np.array([-1.0, 0.0, 0.5, 10.0], dtype=np.float32)
    q = quantize(x, np.int8, (1 / 127, 0))
    assert q.dtype == np.int8 and q.tolist() == [-127, 0, 64, 127]
    assert dequantize(q, (1 / 127, 0))[2] == pytest.approx(64 / 127)
    assert quantize(x * 1.2, np.uint8, (1 / 255, 0)).tolist() == [0, 0, 153, 255]


def test_example_int8_matches_float_on_litert_and_tflm(example, digits_tflite):
    from edgekit.converters.tflm import measure_arena
    from edgekit.tflite_model import load_tflite

    arena = measure_arena(load_tflite(digits_tflite["int8"])).tensor_arena_bytes
    result = verify(
        digits_tflite["int8"].read_bytes(),
        example.validation,
        reference=digits_tflite["float32"].read_bytes(),
        tflm_arena_bytes=arena,
    )
    assert result.samples == 500 and result.runtimes == ["litert", "tflm"]
    assert result.top1_agreement >= 0.97 and not result.collapsed
    assert result.output_sqnr_db > 20
    assert abs(result.float_accuracy - result.deployed_accuracy) <= 0.02
    assert result.float_accuracy > 0.9
    assert result.tflm_max_diff_steps <= 1
    assert result.tflm_accuracy == pytest.approx(result.deployed_accuracy, abs=0.004)


def test_collapse_is_detected(example, example_loaded):
    """Calibrating on inputs 1000x too small clips every real input: the model collapses."""
    from edgekit.converters.tflite import convert

    bad = convert(example_loaded, "int8", io_dtype="int8", calibration=example.calibration.x / 1000)
    result = verify(
        bad.data,
        Dataset(example.validation.x, example.validation.y, "val"),
        reference=convert(example_loaded, "float32").data,
    )
    assert result.collapsed and result.top1_agreement < 0.9
    assert result.deployed_accuracy < 0.5
