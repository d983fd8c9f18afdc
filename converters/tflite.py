"""Keras / SavedModel → `.tflite`: float32, float16, dynamic range, full int8 and 16x8.

The model is traced with a fixed batch of 1, so no SHAPE/STRIDED_SLICE pair is left over
from a dynamic batch. Full-integer schemes need representative inputs (`calibration`).

>>> from edgekit.converters.tflite import convert                       # doctest: +SKIP
>>> artifact = convert(loaded, "int8", io_dtype="int8", calibration=x)   # doctest: +SKIP
>>> artifact.scheme, len(artifact.data) > 0                               # doctest: +SKIP
('int8', True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit._fdcapture import capture_native_output
from edgekit._tf import tensorflow
from edgekit.data import sample_count, take
from edgekit.errors import ToolError, UsageError
from edgekit.models import LoadedModel, cached_model

SCHEMES = ("float32", "float16", "dynamic", "int8", "int16x8")
CONVERT_TIMEOUT = 1800.0  # seconds for one conversion in the worker
MAX_CALIBRATION_SAMPLES = 500


@dataclass(frozen=True)
class ConvertedModel:
    """One conversion's output: the flatbuffer bytes and how they were made."""

    data: bytes
    scheme: str
    io_dtype: str
    per_channel: bool
    calibration_samples: int
    seconds: float
    quantization: Any = None  # edgekit's engine result (QuantizationResult), when it made it
    power_of_two_ops: int = 0  # ops whose int8 weights are exactly 0 or ±2^k (QAT)

    @property
    def model_bytes(self) -> int:
        return len(self.data)


def _io_type(tf, io_dtype: str):
    return {"int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float32": tf.float32}[io_dtype]


def convert(
    loaded: LoadedModel,
    scheme: str,
    *,
    io_dtype: str = "float32",
    per_channel: bool = True,
    calibration: np.ndarray | None = None,
    sparse: bool = False,
) -> ConvertedModel:
    """Convert with the TFLite converter. Full-integer schemes need `calibration` inputs.

    `sparse=True` adds `EXPERIMENTAL_SPARSITY`: pruned weights are stored in TFLite's sparse
    format (smaller file; only some kernels, e.g. XNNPACK's, run it without densifying).
    """
    if scheme not in SCHEMES:
        raise UsageError(f"unknown quantization scheme {scheme!r}; expected one of {SCHEMES}")
    if loaded.is_tflite:
        raise UsageError(f"{loaded.source}: already a .tflite model; it cannot be re-converted")
    if loaded.worker is not None:  # the model lives in the conversion worker: convert there
        return loaded.worker.call(
            "edgekit.converters.tflite:convert_file",
            loaded.source,
            loaded.unsafe,
            scheme,
            io_dtype,
            per_channel,
            calibration,
            sparse,
            timeout=CONVERT_TIMEOUT,
        )
    needs_data = scheme in ("int8", "int16x8")
    if loaded.is_qat and scheme != "int8" and scheme != "float32":
        raise UsageError(f"{loaded.source}: a QAT model deploys as int8, not {scheme}")
    qat = loaded.is_qat and scheme == "int8"
    if needs_data and calibration is None and not qat:
        raise UsageError(f"{scheme} quantization needs calibration data")
    tf = tensorflow()
    started = time.perf_counter()
    samples = 0
    with capture_native_output() as log:
        try:
            converter = tf.lite.TFLiteConverter.from_concrete_functions(
                [loaded.concrete_function()], loaded.trackable
            )
            if scheme != "float32":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if sparse:
                converter.optimizations = [
                    *converter.optimizations,
                    tf.lite.Optimize.EXPERIMENTAL_SPARSITY,
                ]
            if scheme == "float16":
                converter.target_spec.supported_types = [tf.float16]
            if needs_data and not qat:  # QAT models bring the ranges learned in training
                data = take(calibration, slice(0, MAX_CALIBRATION_SAMPLES))
                samples = sample_count(data)
                converter.representative_dataset = representative_dataset(loaded, data)
            if needs_data:
                ops = (
                    tf.lite.OpsSet.TFLITE_BUILTINS_INT8
                    if scheme == "int8"
                    else tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
                )
                if not qat:  # for QAT, INT8-only would demand a representative dataset
                    converter.target_spec.supported_ops = [ops]
                converter.inference_input_type = _io_type(tf, io_dtype)
                converter.inference_output_type = _io_type(tf, io_dtype)
                if not per_channel:
                    converter._experimental_disable_per_channel = True
            flatbuffer = converter.convert()
            error = None
        except Exception as exc:  # the converter raises ConverterError and friends
            error = exc
    if error is not None:
        detail = _converter_error(str(error) + "\n" + log.text)
        raise ToolError(f"TFLite conversion ({scheme}) of {loaded.source} failed: {detail}")
    return ConvertedModel(
        data=bytes(flatbuffer),
        scheme=scheme,
        io_dtype=io_dtype if needs_data else "float32",
        per_channel=per_channel,
        calibration_samples=samples,
        seconds=time.perf_counter() - started,
    )


def representative_dataset(loaded: Any, calibration: Any) -> Any:
    """The converter's representative dataset: one sample per step, batch axis kept. Several
    inputs go by name (a dict keyed as the signature names them), never by position: the
    converted model's input order is not the source model's."""
    if isinstance(calibration, dict):
        data = {s.name: np.asarray(calibration[s.name], dtype=s.dtype) for s in loaded.input_specs}
    else:
        data = {"": np.asarray(calibration, dtype=loaded.input_dtype)}

    def representative():
        for i in range(sample_count(data)):
            one = {name: array[i : i + 1] for name, array in data.items()}
            yield one if len(one) > 1 else list(one.values())

    return representative


def convert_file(
    path: str,
    unsafe: bool,
    scheme: str,
    io_dtype: str,
    per_channel: bool,
    calibration: np.ndarray | None,
    sparse: bool,
) -> ConvertedModel:
    """Worker-side :func:`convert` of a model file (loaded once, then cached)."""
    return convert(
        cached_model(path, unsafe),
        scheme,
        io_dtype=io_dtype,
        per_channel=per_channel,
        calibration=calibration,
        sparse=sparse,
    )


def convert_for_target(
    loaded: LoadedModel, quantization: Any, calibration: np.ndarray | None = None
) -> ConvertedModel:
    """Convert with a target profile's quantization settings (scheme, IO dtype, per-channel).

    The deploy pipeline and `TargetFitCheck` both convert this way. A QAT model brings its own
    ranges, so `calibration` is only used for post-training quantization.
    """
    return convert(
        loaded,
        quantization.scheme,
        io_dtype=quantization.io_dtype,
        per_channel=quantization.per_channel,
        calibration=None if loaded.is_qat else calibration,
    )


def _converter_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "error:" in line:
            return line[line.index("error:") + 6 :].strip()
    return lines[0] if lines else "unknown error"
