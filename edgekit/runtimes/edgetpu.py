"""The Edge TPU's mapping rules: which ops of a `.tflite` the compiler can put on the TPU.

The rules follow Coral's "TensorFlow models on the Edge TPU" page: 8-bit tensors, static shapes,
at most three innermost dimensions larger than one, a supported op within its limits, and a
single partition: the compiler maps ops in execution order and everything from the first op it
cannot map runs on the CPU.

The compiler itself (run when installed) and its log parser are in
:mod:`edgekit.converters.edgetpu`.

>>> sorted(SUPPORTED_OPS)[:3]
['ADD', 'AVERAGE_POOL_2D', 'CONCATENATION']
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.tflite_model import Operator, TFLiteModel

EIGHT_BIT = ("INT8", "UINT8")
PARAMETER_CACHE_BYTES = 8 * 1024 * 1024
SOFTMAX_MAX_ELEMENTS = 16000

# Ops the Edge TPU compiler can map; limits are checked in _op_limit().
SUPPORTED_OPS = frozenset(
    {
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "EXPAND_DIMS",
        "FULLY_CONNECTED",
        "L2_NORMALIZATION",
        "LOGISTIC",
        "LSTM",
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MUL",
        "PACK",
        "PAD",
        "PRELU",
        "QUANTIZE",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SQUEEZE",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "SQUARED_DIFFERENCE",
        "TANH",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
    }
)


@dataclass(frozen=True)
class OpPlacement:
    index: int
    op: str
    on_tpu: bool
    reason: str  # why it is not on the TPU; "" when mapped


@dataclass(frozen=True)
class EdgeTPUAnalysis:
    """Where each op would run, by the published rules, without the compiler."""

    placements: tuple[OpPlacement, ...]
    parameter_bytes: int
    cache_bytes: int = PARAMETER_CACHE_BYTES

    @property
    def mapped(self) -> list[OpPlacement]:
        return [p for p in self.placements if p.on_tpu]

    @property
    def on_cpu(self) -> list[OpPlacement]:
        return [p for p in self.placements if not p.on_tpu]

    @property
    def first_cpu_op(self) -> OpPlacement | None:
        """The op where the graph is cut (float IO boundary ops do not cut it)."""
        cpu = [p for p in self.on_cpu if p.reason != BOUNDARY_REASON]
        return cpu[0] if cpu else None

    @property
    def boundary_ops(self) -> list[OpPlacement]:
        return [p for p in self.on_cpu if p.reason == BOUNDARY_REASON]

    @property
    def fits_cache(self) -> bool:
        return self.parameter_bytes <= self.cache_bytes

    def to_dict(self) -> dict:
        return {
            "ops_on_tpu": len(self.mapped),
            "ops_on_cpu": len(self.on_cpu),
            "cpu_ops": [vars(p) for p in self.on_cpu],
            "parameter_bytes": self.parameter_bytes,
            "parameter_cache_bytes": self.cache_bytes,
        }


def _dims_rule(shape: tuple[int, ...]) -> bool:
    """Only the three innermost dimensions may be larger than 1."""
    return all(d == 1 for d in shape[:-3])


def _op_limit(model: TFLiteModel, op: Operator) -> str:
    """The reason an otherwise supported op cannot be mapped, or ""."""
    t = model.tensors
    out = t[op.outputs[0]] if op.outputs else None
    act = op.fused_activation
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if op.options.get("dilationHFactor", 1) != op.options.get("dilationWFactor", 1):
            return "x and y dilation differ"
    elif op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION") and act != "NONE":
        return f"fused activation {act} is not supported"
    elif op.name == "FULLY_CONNECTED":
        if op.options.get("weightsFormat", 0) != 0:
            return "only the default weights format is supported"
        if out is not None and sum(d > 1 for d in out.shape) > 1:
            return f"output must be one-dimensional; has shape {list(out.shape)}"
    elif op.name == "SOFTMAX":
        src = t[op.inputs[0]]
        if sum(d > 1 for d in src.shape) > 1:
            return f"input must be one-dimensional; has shape {list(src.shape)}"
        if src.elements > SOFTMAX_MAX_ELEMENTS:
            return f"input has {src.elements} elements (max {SOFTMAX_MAX_ELEMENTS})"
    elif op.name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        axes = model.weights(op.inputs[1]) if len(op.inputs) > 1 else None
        rank = len(t[op.inputs[0]].shape)
        if axes is not None and any(int(a) % max(rank, 1) == 0 for a in axes.ravel()):
            return "reduction over the batch dimension"
    elif op.name == "STRIDED_SLICE":
        strides = model.weights(op.inputs[3]) if len(op.inputs) > 3 else None
        if strides is None or any(int(s) != 1 for s in strides.ravel()):
            return "only strides of 1 are supported"
        if op.options.get("ellipsisMask", 0) or op.options.get("newAxisMask", 0):
            return "ellipsis and new-axis masks are not supported"
    elif op.name in ("PACK", "SPLIT", "PAD") and op.options.get("axis", None) == 0:
        return "operates on the batch dimension"
    return ""


def _op_reason(model: TFLiteModel, op: Operator) -> str:
    if op.name not in SUPPORTED_OPS:
        return "operation is not supported by the Edge TPU"
    for idx in op.inputs + op.outputs:
        if idx < 0:
            continue
        tensor = model.tensors[idx]
        if tensor.dynamic:
            return f"tensor {tensor.name!r} has a dynamic shape"
        if not tensor.is_constant and not _dims_rule(tensor.shape):
            return f"tensor {tensor.name!r} {list(tensor.shape)} has more than 3 dims > 1"
        is_bias = tensor.is_constant and tensor.dtype == "INT32"
        is_index = tensor.is_constant and tensor.dtype in ("INT32", "INT64")
        if tensor.dtype not in EIGHT_BIT and not (is_bias or is_index):
            return f"tensor {tensor.name!r} is {tensor.dtype.lower()}, not 8-bit quantized"
    return _op_limit(model, op)


def _io_boundary(model: TFLiteModel, op: Operator) -> bool:
    """A QUANTIZE of a float model input or a DEQUANTIZE to a float model output: the compiler
    leaves these on the CPU without cutting the graph."""
    if op.name == "QUANTIZE":
        source = model.tensors[op.inputs[0]]
        return op.inputs[0] in model.inputs and source.dtype not in EIGHT_BIT
    if op.name == "DEQUANTIZE":
        return op.outputs[0] in model.outputs
    return False


BOUNDARY_REASON = "float input/output conversion runs on the CPU (the graph is not cut)"


def analyze(model: TFLiteModel, cache_bytes: int | None = None) -> EdgeTPUAnalysis:
    """Place every op on the TPU or CPU by the rules, with one partition."""
    placements = []
    partition_at: Operator | None = None
    for op in model.operators:
        if _io_boundary(model, op):
            placements.append(OpPlacement(op.index, op.name, False, BOUNDARY_REASON))
            continue
        if partition_at is not None:
            reason = f"after the partition at op #{partition_at.index} ({partition_at.name})"
            placements.append(OpPlacement(op.index, op.name, False, reason))
            continue
        reason = _op_reason(model, op)
        if reason:
            partition_at = op
        placements.append(OpPlacement(op.index, op.name, not reason, reason))
    parameter_bytes = sum(t.bytes for t in model.tensors if t.is_constant)
    return EdgeTPUAnalysis(tuple(placements), parameter_bytes, cache_bytes or PARAMETER_CACHE_BYTES)
