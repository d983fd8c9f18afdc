"""Verification figures on real runtimes, and what a collapse looks like."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgekit.data import Dataset
from edgekit.verify import DeviceRuntime, dequantize, quantize, sqnr_db, verify


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


def _digits(digits_tflite, name):
    from edgekit.tflite_model import load_tflite

    return load_tflite(digits_tflite[name])


def test_example_int8_matches_float_on_tflm(example, digits_tflite):
    from edgekit.runtimes.tflm import measure_arena

    deployed = _digits(digits_tflite, "int8")
    arena = measure_arena(deployed).tensor_arena_bytes
    result = verify(
        deployed,
        example.validation,
        reference=_digits(digits_tflite, "float32"),
        runtime=DeviceRuntime("tflm", "reference", "TFLM"),
        tflm_arena_bytes=arena,
    )
    assert result.samples == 500 and result.runtime == "TFLM"
    (out,) = result.outputs
    assert out.task == "classification" and "SOFTMAX" in out.task_reason
    assert out.top1_agreement >= 0.97 and not result.collapsed
    assert out.sqnr_db > 20 and out.logits_sqnr_db > out.sqnr_db - 10
    assert abs(out.float_accuracy - out.deployed_accuracy) <= 0.02 and out.float_accuracy > 0.9
    assert result.kernel_check.ok and result.kernel_check.max_diff_steps <= 1
    assert result.optimized_vs_reference_steps is not None


def test_collapse_is_detected(example, example_loaded, digits_tflite):
    """Calibrating on inputs 1000x too small clips every real input: the model collapses."""
    from edgekit.converters.tflite import convert
    from edgekit.tflite_model import read_tflite

    bad = convert(example_loaded, "int8", io_dtype="int8", calibration=example.calibration.x / 1000)
    result = verify(
        read_tflite(bad.data),
        Dataset(example.validation.x, example.validation.y, "val"),
        reference=_digits(digits_tflite, "float32"),
    )
    assert result.collapsed and result.top1_agreement < 0.9
    assert result.primary.deployed_accuracy < 0.5


def test_a_runtime_crash_names_the_op_that_caused_it(digits_tflite):
    """A softmax input scale of 1e-9 (what a dead layer once got) aborts LiteRT's SOFTMAX in
    Prepare: the worker dies of SIGABRT, and the error names the op and its scales."""
    from edgekit.errors import RuntimeCrash
    from edgekit.runtimes.litert import run_isolated
    from edgekit.tflite_edit import pack, unpack
    from edgekit.tflite_model import read_tflite

    model = read_tflite(digits_tflite["int8"].read_bytes())
    softmax = next(op for op in model.operators if op.name == "SOFTMAX")
    edited = unpack(model.data)
    edited.subgraphs[0].tensors[softmax.inputs[0]].quantization.scale = [1e-9]
    broken = read_tflite(pack(edited), "broken.tflite")
    feed = np.zeros((2, *model.input_tensors()[0].shape[1:]), np.int8)
    with pytest.raises(RuntimeCrash, match=rf"crashed \(SIGABRT\) in op #{softmax.index} SOFTMAX"):
        run_isolated(broken, [feed], "reference")
    outputs, _ = run_isolated(model, [feed], "reference")  # the unbroken model runs
    assert len(outputs) == 1
