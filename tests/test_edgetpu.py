"""Edge TPU rule analysis on real converted models, and the compiler-log parser."""

from __future__ import annotations

import pytest
from helpers import convert_keras, tf_keras

from edgekit.converters.edgetpu import parse_compiler_log, run_compiler
from edgekit.runtimes.edgetpu import PARAMETER_CACHE_BYTES, analyze
from edgekit.tflite_model import load_tflite

# Output in the format edgetpu_compiler 16 prints (coral.ai/docs/edgetpu/compiler).
COMPILER_OUTPUT = """\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1197 ms.

Input model: mobilenet_v2_int8.tflite
Input size: 3.85MiB
Output model: mobilenet_v2_int8_edgetpu.tflite
Output size: 4.21MiB
On-chip memory used for caching model parameters: 4.21MiB
On-chip memory remaining for caching model parameters: 3.26MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 72
Operation log: mobilenet_v2_int8_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 70
Number of operations that will run on CPU: 2

Operator                       Count      Status

ADD                            10         Mapped to Edge TPU
CONV_2D                        35         Mapped to Edge TPU
DEPTHWISE_CONV_2D              17         Mapped to Edge TPU
QUANTIZE                       1          Mapped to Edge TPU
MEAN                           1          Mapped to Edge TPU
FULLY_CONNECTED                1          Mapped to Edge TPU
SOFTMAX                        1          Mapped to Edge TPU
RESHAPE                        4          Mapped to Edge TPU
DEQUANTIZE                     1          Operation is working on an unsupported data type
EXP                            1          Operation not supported
"""


def test_compiler_log_parser_reads_the_documented_format():
    log = parse_compiler_log(COMPILER_OUTPUT)
    assert log.version == "16.0.384591198"
    assert (log.ops_on_tpu, log.ops_on_cpu, log.total_ops, log.subgraphs) == (70, 2, 72, 1)
    assert log.cache_used_bytes == round(4.21 * 1024**2)
    assert log.cache_remaining_bytes == round(3.26 * 1024**2)
    assert log.off_chip_bytes == 0
    assert ("EXP", 1, "Operation not supported") in log.operators
    assert ("DEQUANTIZE", 1, "Operation is working on an unsupported data type") in log.operators
    assert sum(count for _, count, _ in log.operators) == 72
    assert log.success


def test_parser_counts_from_table_when_summary_lines_are_missing():
    table = COMPILER_OUTPUT[COMPILER_OUTPUT.index("Operator ") :]
    log = parse_compiler_log(table)
    assert (log.ops_on_tpu, log.ops_on_cpu) == (70, 2)
    assert log.version is None and not log.success


def test_example_maps_fully(digits_tflite):
    analysis = analyze(load_tflite(digits_tflite["uint8"]))
    assert analysis.on_cpu == []
    assert len(analysis.mapped) == len(load_tflite(digits_tflite["uint8"]).operators)
    assert analysis.fits_cache and analysis.cache_bytes == PARAMETER_CACHE_BYTES


def test_float_io_leaves_quantize_and_dequantize_on_cpu(example, example_loaded):
    from edgekit.converters.tflite import convert
    from edgekit.tflite_model import read_tflite

    # int8 internals with float IO: QUANTIZE in, DEQUANTIZE out, neither on the Edge TPU
    data = convert(
        example_loaded, "int8", io_dtype="float32", calibration=example.calibration.x
    ).data
    placements = analyze(read_tflite(data)).placements
    assert (placements[0].op, placements[-1].op) == ("QUANTIZE", "DEQUANTIZE")
    assert not placements[-1].on_tpu and placements[-1].reason
    assert all(p.on_tpu for p in placements[1:-1])


def test_a_dynamic_range_model_leaves_the_tpu_at_its_first_float_op(example_loaded):
    from edgekit.converters.tflite import convert
    from edgekit.tflite_model import read_tflite

    # int8 weights, float activations: the very first op already computes in float
    analysis = analyze(read_tflite(convert(example_loaded, "dynamic").data))
    assert analysis.first_cpu_op is analysis.placements[0]
    assert "float32" in analysis.first_cpu_op.reason


def test_partition_at_first_unsupported_op():
    import tensorflow as tf

    keras = tf_keras()
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.Lambda(lambda t: tf.math.exp(t))(x)  # EXP: not on the Edge TPU
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.ReLU()(x)
    _, model = convert_keras(keras.Model(inputs, x), io_dtype="uint8")
    analysis = analyze(model)
    names = [p.op for p in analysis.placements]
    exp_at = names.index("EXP")
    assert all(p.on_tpu for p in analysis.placements[:exp_at])
    assert analysis.placements[exp_at].reason == "operation is not supported by the Edge TPU"
    after = analysis.placements[exp_at + 1 :]
    assert after and all(not p.on_tpu for p in after)
    assert all("partition at op" in p.reason for p in after)


def test_unequal_dilation_is_not_mapped():
    keras = tf_keras()
    model = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, dilation_rate=(2, 1))]
    )
    _, converted = convert_keras(model, io_dtype="uint8")
    conv = next(p for p in analyze(converted).placements if p.op == "CONV_2D")
    assert not conv.on_tpu and "dilation" in conv.reason


def test_softmax_over_two_dims_is_not_mapped():
    keras = tf_keras()
    model = keras.Sequential([keras.Input((4, 6)), keras.layers.Softmax(axis=-1)])
    _, converted = convert_keras(model, io_dtype="uint8")
    softmax = next(p for p in analyze(converted).placements if p.op == "SOFTMAX")
    assert not softmax.on_tpu and "one-dimensional" in softmax.reason


def test_parameter_cache_budget():
    keras = tf_keras()
    model = keras.Sequential([keras.Input((3000,)), keras.layers.Dense(3000)])
    _, converted = convert_keras(model, io_dtype="uint8")
    analysis = analyze(converted)
    assert analysis.parameter_bytes >= 3000 * 3000 and not analysis.fits_cache


def test_absent_compiler_is_reported_not_faked(tmp_path, monkeypatch, digits_tflite):
    monkeypatch.setenv("PATH", str(tmp_path))
    run = run_compiler(digits_tflite["uint8"], tmp_path)
    assert not run.ran and run.output_model is None
    assert "not installed" in run.detail
    assert run.command == ["edgetpu_compiler", "-s", "-o", ".", "digits_uint8.tflite"]


@pytest.mark.parametrize("text", ["", "garbage\nlines\n"])
def test_parser_tolerates_unrelated_text(text):
    log = parse_compiler_log(text)
    assert log.ops_on_tpu is None and log.operators == ()


def test_compiler_integration_path_with_a_stand_in(example, tmp_path, monkeypatch):
    """The real edgetpu_compiler cannot be installed here (its apt repository is unreachable).
    A stand-in on PATH prints the documented output and writes `<name>_edgetpu.tflite`, so the
    subprocess call, file placement, log parsing and report wiring run for real."""
    import json

    import edgekit

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "log.txt").write_text(COMPILER_OUTPUT)
    stand_in = bin_dir / "edgetpu_compiler"
    stand_in.write_text(
        "#!/bin/sh\n"
        "# usage: edgetpu_compiler -s -o OUT MODEL\n"
        'out="$3"; model="$4"; name=$(basename "$model" .tflite)\n'
        f'cp "$model" "$out/${{name}}_edgetpu.tflite"\ncat "{bin_dir}/log.txt"\n'
        f'cp "{bin_dir}/log.txt" "$out/${{name}}_edgetpu.log"\n'
    )
    stand_in.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    bundle = edgekit.deploy(None, "coral", example="digits", out=tmp_path / "out")
    files = {a.path: a.role for a in bundle.report.artifacts}
    assert files["digits_int8_edgetpu.tflite"] == "Edge TPU model"
    assert files["digits_int8_edgetpu.log"] == "Edge TPU compiler log"
    step = next(s for s in bundle.report.steps if s.name == "edgetpu_compiler")
    assert step.ran and step.detail == "compiled"
    report = json.loads((bundle.path / "report.json").read_text())
    assert report["edgetpu"]["compiler"]["log"]["ops_on_cpu"] == 2
    # The stand-in's log says two ops stay on the CPU: that fails the deploy.
    failed = {c.name for c in bundle.report.failed_checks()}
    assert failed == {"edgetpu_compiler_ops"} and not bundle.ok
    assert not (bundle.path / ".edgetpu").exists()
