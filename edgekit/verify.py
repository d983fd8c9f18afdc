"""Run the float and the deployed model on the same inputs and compare them.

LiteRT (`ai_edge_litert`) is the reference runtime for every target; MCU targets also run the
deployed model in the TFLM interpreter (`tflite_micro`). The figures:

- `top1_agreement`: share of samples where float and deployed agree on the arg-max class;
- `output_sqnr_db`: 10·log10(Σ float² / Σ (float − deployed)²) over the first output;
- `float_accuracy` / `deployed_accuracy`: with labels;
- `tflm_max_diff_steps`: the largest |TFLM − LiteRT builtin kernels| of the quantized output,
  in quantization steps.

>>> from edgekit.verify import sqnr_db
>>> round(sqnr_db(np.array([1.0, 2.0]), np.array([1.0, 2.1])), 1)
27.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgekit.data import Dataset

COLLAPSE_AGREEMENT = 0.90


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float | None:
    """Signal-to-quantization-noise ratio in dB; None when the outputs are identical."""
    reference = reference.astype(np.float64)
    noise = float(np.sum((reference - test.astype(np.float64)) ** 2))
    if noise == 0.0:
        return None
    return 10.0 * math.log10(max(float(np.sum(reference**2)), 1e-300) / noise)


def quantize(x: np.ndarray, dtype: np.dtype, quant: tuple[float, int]) -> np.ndarray:
    """Float inputs → the integer input tensor's dtype with its scale and zero point."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero_point = quant
    info = np.iinfo(dtype)
    if scale == 0:
        return np.clip(np.round(x), info.min, info.max).astype(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, quant: tuple[float, int]) -> np.ndarray:
    scale, zero_point = quant
    if not np.issubdtype(q.dtype, np.integer) or scale == 0:
        return q.astype(np.float32)
    return ((q.astype(np.int64) - zero_point) * scale).astype(np.float32)


@dataclass
class RuntimeRun:
    """Outputs of one model on one runtime: raw (as stored) and dequantized to float."""

    runtime: str
    raw: np.ndarray
    values: np.ndarray
    output_quant: tuple[float, int]


def run_litert(
    model: bytes, x: np.ndarray, threads: int = 2, builtin_kernels: bool = False
) -> RuntimeRun:
    """Invoke the LiteRT interpreter sample by sample on float inputs `x`.

    With `builtin_kernels`, XNNPACK is left out: LiteRT's builtin int8 kernels compute exactly
    what TFLM's reference kernels compute, while XNNPACK rounds differently (measured: up to 7
    output steps on the digits example).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgekit._fdcapture import capture_native_output

    resolver = (
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin_kernels else OpResolverType.AUTO
    )
    with capture_native_output():  # "Created TensorFlow Lite XNNPACK delegate" and friends
        interp = Interpreter(
            model_content=model, num_threads=threads, experimental_op_resolver_type=resolver
        )
        interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    raws = []
    for sample in x:
        interp.set_tensor(inp["index"], quantize(sample[None], inp["dtype"], inp["quantization"]))
        interp.invoke()
        raws.append(interp.get_tensor(out["index"])[0].copy())
    raw = np.stack(raws)
    return RuntimeRun("litert", raw, dequantize(raw, out["quantization"]), out["quantization"])


def run_tflm(model: bytes, x: np.ndarray, arena_bytes: int) -> RuntimeRun:
    """Invoke the TFLM interpreter (`tflite_micro`) sample by sample."""
    from edgekit.converters.tflm import tflm_interpreter

    interp = tflm_interpreter(model, arena_bytes)
    inp = interp.get_input_details(0)
    out = interp.get_output_details(0)
    in_q = _first_quant(inp)
    out_q = _first_quant(out)
    raws = []
    for sample in x:
        interp.set_input(quantize(sample[None], inp["dtype"], in_q), 0)
        interp.invoke()
        raws.append(np.array(interp.get_output(0))[0].copy())
    raw = np.stack(raws)
    return RuntimeRun("tflm", raw, dequantize(raw, out_q), out_q)


def _first_quant(details: dict) -> tuple[float, int]:
    q = details.get("quantization_parameters") or {}
    scales, zeros = q.get("scales", []), q.get("zero_points", [])
    return (float(scales[0]), int(zeros[0])) if len(scales) else (0.0, 0)


@dataclass
class VerificationResult:
    """How the deployed model compares with the float model on the validation inputs."""

    samples: int
    runtimes: list[str]
    top1_agreement: float | None = None
    output_sqnr_db: float | None = None
    float_accuracy: float | None = None
    deployed_accuracy: float | None = None
    tflm_accuracy: float | None = None
    tflm_top1_agreement: float | None = None
    tflm_max_diff_steps: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def collapsed(self) -> bool:
        return self.top1_agreement is not None and self.top1_agreement < COLLAPSE_AGREEMENT


def _accuracy(values: np.ndarray, y: np.ndarray | None) -> float | None:
    if y is None or values.ndim != 2 or values.shape[1] < 2:
        return None
    return float(np.mean(values.argmax(axis=1) == y))


def _agreement(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.ndim != 2 or a.shape[1] < 2:
        return None
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def verify(
    deployed: bytes,
    data: Dataset,
    *,
    reference: bytes | None = None,
    tflm_arena_bytes: int | None = None,
    threads: int = 2,
) -> VerificationResult:
    """Compare `deployed` with the float `reference` (both `.tflite` bytes) on `data`."""
    x = data.x.astype(np.float32)
    result = VerificationResult(samples=len(x), runtimes=["litert"])
    # For MCU targets LiteRT runs its builtin kernels, the ones TFLM's kernels mirror.
    deployed_run = run_litert(deployed, x, threads, builtin_kernels=tflm_arena_bytes is not None)
    flat = deployed_run.values.reshape(len(x), -1)
    result.deployed_accuracy = _accuracy(flat, data.y)
    if reference is not None:
        ref = run_litert(reference, x, threads).values.reshape(len(x), -1)
        result.float_accuracy = _accuracy(ref, data.y)
        result.top1_agreement = _agreement(ref, flat)
        result.output_sqnr_db = sqnr_db(ref, flat)
        if result.output_sqnr_db is None:
            result.notes.append("deployed outputs are identical to the float model's")
    else:
        result.notes.append("no float model to compare with (a .tflite was given)")
    if tflm_arena_bytes is not None:
        result.runtimes.append("tflm")
        tflm = run_tflm(deployed, x, tflm_arena_bytes)
        tflm_flat = tflm.values.reshape(len(x), -1)
        result.tflm_accuracy = _accuracy(tflm_flat, data.y)
        result.tflm_top1_agreement = _agreement(flat, tflm_flat)
        if np.issubdtype(tflm.raw.dtype, np.integer):
            diff = np.abs(tflm.raw.astype(np.int64) - deployed_run.raw.astype(np.int64))
            result.tflm_max_diff_steps = int(diff.max())
        else:
            result.notes.append("TFLM output is float: difference not counted in steps")
    return result
