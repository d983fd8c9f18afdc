"""edgekit's int8 quantizer: the converter's own quantizer, fed better ranges.

The TFLite converter quantizes in two steps: it *calibrates* (records each tensor's min/max
over the representative data into a float model) and then its MLIR quantizer turns that model
into int8. edgekit keeps both halves and changes what passes between them:

1. the converter's calibrate-only model (`converter._experimental_calibrate_only`), or for a
   float `.tflite` the model itself with range fields added;
2. histograms of every activation over the calibration set (:mod:`.calibration`), and a range
   per tensor by the chosen method;
3. the converter's MLIR quantizer (`tensorflow.lite.python.convert.mlir_quantize`) on the model
   with those ranges: the int8 graph is the converter's, never hand-built;
4. optionally, learned rounding (AdaRound, :mod:`.rounding`): each conv/dense op's integer
   weights rounded up or down to lower its output error on the calibration data, written into
   the int8 model;
5. empirical bias correction: each conv/dense output's mean shift per channel (float minus
   int8), measured on the calibration data, folded into its int32 bias (ops without a fused
   activation; see :func:`correct_biases`).

Steps 1 and 3 use private TensorFlow APIs, pinned by `tests/test_quantization.py`: with
`minmax` ranges the result equals the plain converter's to the byte of every output.

>>> from edgekit.quantization.engine import quantize_int8    # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit._fdcapture import capture_native_output
from edgekit._tf import tensorflow
from edgekit.converters.tflite import representative_dataset
from edgekit.data import as_float32, sample_count, take
from edgekit.errors import ToolError, UsageError
from edgekit.isolation import call
from edgekit.models import cached_model
from edgekit.quantization.block_ranges import block_ranges
from edgekit.quantization.calibration import Statistics, choose_range
from edgekit.quantization.rounding import LearnedRounding, learn_rounding
from edgekit.runtimes.litert import dequantize_tensor, input_feeds, run_isolated, run_timeout
from edgekit.tflite_edit import pack, unpack
from edgekit.tflite_model import Operator, TFLiteModel, read_tflite
from edgekit.verify import logits_tensor

WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
TIMEOUT = 1800.0
BIAS_CORRECTION_SAMPLES = 100
# Narrowest range given to a tensor: an int8 scale of 3.9e-8 (LiteRT's softmax needs > 1.5e-8).
MIN_RANGE = 1e-5
DEFAULT_METHOD = "minmax"  # with the MEAN rewrite and bias correction: docs/benchmarks.md
ROUNDINGS = ("nearest", "learned")


# --- TensorFlow side (runs where the model lives: the conversion worker, or in-process) -----


def calibrate_only(loaded: Any, calibration: Any) -> bytes:
    """The converter's calibrate-only float model (ranges recorded per tensor)."""
    if loaded.worker is not None:
        return loaded.worker.call(
            "edgekit.quantization.engine:calibrate_only_file",
            loaded.source,
            loaded.unsafe,
            calibration,
            timeout=TIMEOUT,
        )
    tf = tensorflow()
    representative = representative_dataset(loaded, calibration)

    with capture_native_output() as log:
        try:
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [loaded.concrete_function()], loaded.trackable
            )
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = representative
            converter._experimental_calibrate_only = True  # private: pinned by a test
            return bytes(converter.convert())
        except Exception as exc:
            error = exc
    raise ToolError(f"calibration of {loaded.source} failed: {error} {log.text[-300:]}")


def calibrate_only_file(path: str, unsafe: bool, calibration: Any) -> bytes:
    """Worker-side :func:`calibrate_only` of a model file."""
    return calibrate_only(cached_model(path, unsafe), calibration)


def mlir_quantize(
    calibrated: bytes,
    io_dtype: str,
    per_channel: bool,
    denylisted: tuple[str, ...] = (),
    activations: str = "int8",
) -> bytes:
    """The converter's MLIR quantizer on a model carrying ranges. TensorFlow side.

    `activations` "int16" makes the 16x8 model (int16 activations, int8 weights), with
    per-tensor FULLY_CONNECTED weights: CMSIS-NN's s16 fully-connected kernel refuses
    per-channel ones (its Prepare fails on the board; TFLM's reference kernels take both)."""
    tf = tensorflow()
    from tensorflow.compiler.mlir.lite import types_pb2  # private: pinned by a test
    from tensorflow.lite.python import convert as tf_convert  # private: pinned by a test

    types = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32, "int16": tf.int16}
    inference = {"int8": types_pb2.QUANTIZED_INT8, "int16": types_pb2.QUANTIZED_INT16}
    with capture_native_output() as log:
        try:
            return bytes(
                tf_convert.mlir_quantize(
                    calibrated,
                    not per_channel,
                    inference_type=inference[activations],
                    input_data_type=types[io_dtype],
                    output_data_type=types[io_dtype],
                    denylisted_nodes=list(denylisted) or None,
                    disable_per_channel_for_dense_layers=activations == "int16",
                )
            )
        except Exception as exc:
            error = exc
    raise ToolError(f"the TFLite quantizer failed: {error} {log.text[-300:]}")


def quantize_in_worker(
    worker: Any,
    calibrated: bytes,
    io_dtype: str,
    per_channel: bool,
    denylisted=(),
    activations: str = "int8",
) -> bytes:
    """:func:`mlir_quantize` where TensorFlow lives (a worker, or this process)."""
    if worker is None:
        return mlir_quantize(calibrated, io_dtype, per_channel, tuple(denylisted), activations)
    return worker.call(
        "edgekit.quantization.engine:mlir_quantize",
        calibrated,
        io_dtype,
        per_channel,
        tuple(denylisted),
        activations,
        timeout=TIMEOUT,
    )


# --- ranges on the flatbuffer ----------------------------------------------------------------


def ranged_tensors(model: TFLiteModel) -> list[int]:
    """Float activations the quantizer needs a range for (graph inputs and op outputs)."""
    produced = {i for op in model.operators for i in op.outputs if i >= 0}
    return [
        i
        for i in sorted(produced | set(model.inputs))
        if model.tensors[i].dtype == "FLOAT32"
        and not model.tensors[i].is_constant
        and not model.tensors[i].is_variable
    ]


def with_ranges(model_bytes: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """The model with each tensor's recorded min/max replaced (added where missing)."""
    from ai_edge_litert import schema_py_generated as schema  # heavy: loaded when used

    model = unpack(model_bytes)
    tensors = model.subgraphs[0].tensors
    for index, (lo, hi) in ranges.items():
        tensor = tensors[index]
        if tensor.quantization is None:
            tensor.quantization = schema.QuantizationParametersT()
        tensor.quantization.min = [float(lo)]
        tensor.quantization.max = [float(hi)]
    return pack(model)


# --- bias correction -------------------------------------------------------------------------


def dequantized_weights(model: TFLiteModel, index: int) -> np.ndarray:
    """A constant weight tensor as float64, dequantized (per channel) when it is quantized."""
    values = model.weights(index).astype(np.float64)
    quant = model.tensors[index].quant
    if model.tensors[index].dtype == "FLOAT32" or quant is None:
        return values
    scales = np.asarray(quant.scales, dtype=np.float64)
    zeros = np.asarray(quant.zero_points, dtype=np.float64)
    if len(scales) == 1:
        return (values - zeros[0]) * scales[0]
    shape = [1] * values.ndim
    shape[quant.axis] = len(scales)
    zero = zeros.reshape(shape) if len(zeros) == len(scales) else zeros[0]
    return (values - zero) * scales.reshape(shape)


def correct_biases(quantized: bytes, float_model: TFLiteModel, x: np.ndarray) -> tuple[bytes, int]:
    """Empirical bias correction: run both models on the calibration inputs `x`, measure each
    conv/dense output's mean shift per channel (float minus int8), and fold it into that op's
    int32 bias. Only ops without a fused activation: behind a ReLU the shift that matters is
    the one while the unit is active, which a plain mean does not give (measured: correcting
    them lost 1-4 dB). Ops are matched to the float model by their output tensor's name.

    Sequential, in waves: an op is measured only after every corrected op upstream of it has
    its correction, so a shift that an upstream correction removes is not corrected twice
    (all at once over-corrected a residual CNN about 3x at the logits: 22.3 dB against
    28.9 dB uncorrected). One int8 run per wave (the longest chain of corrected ops).
    Returns the model and how many ops were corrected.
    """
    model = read_tflite(quantized, "int8.tflite")
    names = {t.name: t.index for t in float_model.tensors}
    ops = [
        op
        for op in model.operators
        if op.name in WEIGHTED
        and op.fused_activation == "NONE"
        and len(op.inputs) > 2
        and op.inputs[2] >= 0
        and model.tensors[op.inputs[2]].dtype == "INT32"
        and model.tensors[op.inputs[0]].quant is not None
        and model.tensors[op.inputs[1]].quant is not None
        and model.tensors[op.outputs[0]].name in names
    ]
    if not ops:
        return quantized, 0
    outputs = tuple(op.outputs[0] for op in ops)
    twins = tuple(names[model.tensors[o].name] for o in outputs)
    # Reference kernels: the integer arithmetic TFLM runs (XNNPACK's rounding differs by CPU,
    # and correcting for it cost 0.9 dB on ResNet-8). A mean settles well before 500 samples.
    x = as_float32(take(x, slice(0, BIAS_CORRECTION_SAMPLES)))
    _, reference = run_isolated(float_model, input_feeds(float_model, x), "builtin", 2, keep=twins)
    feeds = input_feeds(model, x)
    edited = unpack(quantized)
    tensors, buffers = edited.subgraphs[0].tensors, edited.buffers
    current = quantized
    for wave in _correction_waves(model, ops):
        _, deployed = run_isolated(
            read_tflite(current, model.source),
            feeds,
            "reference",
            1,
            keep=tuple(op.outputs[0] for op in wave),
        )
        for op in wave:
            out = op.outputs[0]
            got = dequantize_tensor(deployed[out], model.tensors[out]).astype(np.float64)
            shift = reference[names[model.tensors[out].name]].astype(np.float64) - got
            shift = shift.reshape(-1, shift.shape[-1]).mean(axis=0)
            bias = model.weights(op.inputs[2]).astype(np.int64)
            scales = model.tensors[op.inputs[0]].quant.scales[0] * np.asarray(
                model.tensors[op.inputs[1]].quant.scales, dtype=np.float64
            )
            if shift.shape != bias.shape:
                continue
            steps = np.round(shift / np.broadcast_to(scales, bias.shape)).astype(np.int64)
            updated = np.clip(bias + steps, -(2**31), 2**31 - 1).astype(np.int32)
            buffers[tensors[op.inputs[2]].buffer].data = updated.view(np.uint8)
        current = pack(edited)
    return current, len(ops)


def _correction_waves(model: TFLiteModel, ops: list[Operator]) -> list[list[Operator]]:
    """`ops` grouped so that each op comes after every op of `ops` upstream of it: wave k
    holds the ops whose longest chain of `ops` above them has k ops."""
    producer = {i: op for op in model.operators for i in op.outputs}
    chosen = {op.index for op in ops}
    depth: dict[int, int] = {}  # op index → corrected ops on its longest chain, itself included
    for op in model.operators:  # operators are stored in execution (topological) order
        above = [depth[producer[i].index] for i in op.inputs if i in producer]
        depth[op.index] = max(above, default=0) + (op.index in chosen)
    waves: dict[int, list[Operator]] = {}
    for op in ops:
        waves.setdefault(depth[op.index], []).append(op)
    return [waves[k] for k in sorted(waves)]


# --- the whole engine ------------------------------------------------------------------------


@dataclass
class QuantizationResult:
    """An int8 model from edgekit's engine, and how it was made."""

    data: bytes
    method: str
    io_dtype: str
    per_channel: bool
    calibration_samples: int
    bias_corrected_ops: int
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    calibrated: bytes = b""
    statistics: Statistics | None = None
    denylisted: tuple[str, ...] = ()
    rewrites: list[str] = field(default_factory=list)
    search: dict[str, Any] | None = None  # --optimize accuracy / mixed-precision results
    all_int8: bytes = b""  # with mixed precision: the model before ops were kept in float
    rounding: LearnedRounding | None = None  # learned rounding: what it did per op
    int16_tensors: tuple[str, ...] = ()  # mixed precision: activations carried in int16


def collect_statistics(calibrated: TFLiteModel, x: np.ndarray, threads: int = 2) -> Statistics:
    """Histograms and channel means of the calibrated float model, in a LiteRT worker."""
    return call(
        "edgekit.quantization.calibration:collect",
        calibrated.data,
        input_feeds(calibrated, x),
        ranged_tensors(calibrated),
        threads,
        timeout=2 * run_timeout(calibrated, sample_count(x)),
        what=f"LiteRT calibration of {calibrated.source}",
    )


def ranges_for(
    calibrated: TFLiteModel, statistics: Statistics, method: str, x: Any = None
) -> dict[int, tuple[float, float]]:
    """A range per tensor; graph inputs keep their observed extremes (clipping inputs only
    loses information the model was given). `block` ranges need the calibration inputs `x`
    the first time; they are kept on `statistics` for later calls."""
    if method == "block":
        if statistics.block is None:
            if x is None:
                raise ValueError("block ranges need the calibration inputs")
            probe = logits_tensor(calibrated, calibrated.outputs[0]) or calibrated.outputs[0]
            statistics.block = block_ranges(
                calibrated,
                statistics,
                x,
                probe,
                fixed=lambda i: _input_range(calibrated, statistics, i),
            )
        return {i: widened(*r) for i, r in statistics.block.items()}
    ranges = {}
    for index, histogram in statistics.histograms.items():
        if index in calibrated.inputs:
            ranges[index] = widened(histogram.lo, histogram.hi)
        else:
            ranges[index] = widened(*choose_range(histogram, method))
    return ranges


def _input_range(
    model: TFLiteModel, statistics: Statistics, index: int
) -> tuple[float, float] | None:
    if index not in model.inputs:
        return None
    histogram = statistics.histograms[index]
    return histogram.lo, histogram.hi


def widened(lo: float, hi: float) -> tuple[float, float]:
    """(lo, hi) at least MIN_RANGE wide, on the side of zero the values are on.

    A tensor that is constant on the calibration data (a dead ReLU in an untrained net, logits
    of a head whose input is all zero) would get a scale near 1e-9; LiteRT's SOFTMAX, LOGISTIC
    and TANH kernels abort on such a scale (their rescale multiplier must exceed one), and
    every other op loses nothing from the wider range: the values are still exact.

    >>> widened(0.0, 0.0), widened(-2.0, 3.0)
    ((0.0, 1e-05), (-2.0, 3.0))
    """
    if hi - lo >= MIN_RANGE:
        return lo, hi
    if lo >= 0:
        return lo, lo + MIN_RANGE
    if hi <= 0:
        return hi - MIN_RANGE, hi
    middle = (lo + hi) / 2
    return middle - MIN_RANGE / 2, middle + MIN_RANGE / 2


def quantize_int8(
    calibrated_bytes: bytes,
    x: np.ndarray,
    *,
    method: str = DEFAULT_METHOD,
    io_dtype: str = "int8",
    per_channel: bool = True,
    bias_correction: bool = True,
    denylisted: tuple[str, ...] = (),
    worker: Any = None,
    statistics: Statistics | None = None,
    rounding: str = "nearest",
    rounding_x: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
) -> QuantizationResult:
    """int8 from a calibrated (or any float) `.tflite` and calibration inputs `x`.

    `rounding` "learned" learns each conv/dense op's weight rounding (:mod:`.rounding`) on
    `rounding_x` (default `x`); `progress` hears what it is doing.
    """
    if rounding not in ROUNDINGS:
        raise UsageError(f"rounding must be one of {', '.join(ROUNDINGS)}; received {rounding!r}")
    times: dict[str, float] = {}
    started = time.perf_counter()
    calibrated = read_tflite(calibrated_bytes, "calibrated.tflite")
    if statistics is None:
        statistics = collect_statistics(calibrated, x)
    times["statistics"] = time.perf_counter() - started
    ranges = ranges_for(calibrated, statistics, method, x)
    started = time.perf_counter()
    data = quantize_in_worker(
        worker, with_ranges(calibrated_bytes, ranges), io_dtype, per_channel, denylisted
    )
    times["quantize"] = time.perf_counter() - started
    learned = None
    if rounding == "learned":
        started = time.perf_counter()
        learned = learn_rounding(
            data, calibrated, x if rounding_x is None else rounding_x, progress=progress
        )
        data = learned.data
        times["learned rounding"] = time.perf_counter() - started
    corrected = 0
    if bias_correction:
        started = time.perf_counter()
        data, corrected = correct_biases(data, calibrated, x)
        times["bias correction"] = time.perf_counter() - started
    return QuantizationResult(
        data=data,
        method=method,
        io_dtype=io_dtype,
        per_channel=per_channel,
        calibration_samples=sample_count(x),
        bias_corrected_ops=corrected,
        ranges={calibrated.tensors[i].name: r for i, r in ranges.items()},
        seconds=times,
        calibrated=calibrated_bytes,
        statistics=statistics,
        denylisted=tuple(denylisted),
        rounding=learned,
    )
