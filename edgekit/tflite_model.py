"""Read a `.tflite` flatbuffer into plain objects, with the schema LiteRT ships.

This module never imports TensorFlow: `edgekit inspect` and the Edge TPU analysis stay light.

>>> import numpy as np
>>> from edgekit.tflite_model import read_tflite
>>> read_tflite(b"not a model", "x.tflite")  # doctest: +IGNORE_EXCEPTION_DETAIL
Traceback (most recent call last):
edgekit.errors.UsageError: x.tflite: not a .tflite model (no TFL3 identifier)
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import regular_file
from edgekit.errors import EdgekitError, UsageError

DTYPE_BYTES = {
    "FLOAT32": 4,
    "FLOAT16": 2,
    "INT32": 4,
    "UINT8": 1,
    "INT64": 8,
    "STRING": 0,
    "BOOL": 1,
    "INT16": 2,
    "COMPLEX64": 8,
    "INT8": 1,
    "FLOAT64": 8,
    "COMPLEX128": 16,
    "UINT64": 8,
    "RESOURCE": 0,
    "VARIANT": 0,
    "UINT32": 4,
    "UINT16": 2,
    "INT4": 0.5,
    "BFLOAT16": 2,
}
MAX_MODEL_BYTES = 2 * 1024**3  # flatbuffers address 2 GiB; larger models are refused unread
# The fewest inputs each op's kernel reads (its optional inputs are not counted), and the
# rank its weights must have: a model breaking these is corrupt, whatever a runtime would do.
MIN_INPUTS = {
    "CONV_2D": 2,
    "DEPTHWISE_CONV_2D": 2,
    "FULLY_CONNECTED": 2,
    "TRANSPOSE_CONV": 3,
    "ADD": 2,
    "SUB": 2,
    "MUL": 2,
    "DIV": 2,
    "MAXIMUM": 2,
    "MINIMUM": 2,
    "SQUARED_DIFFERENCE": 2,
    "BATCH_MATMUL": 2,
    "MEAN": 2,
    "SUM": 2,
    "REDUCE_MAX": 2,
    "REDUCE_MIN": 2,
    "PAD": 2,
    "PADV2": 2,
    "RESHAPE": 1,
    "SOFTMAX": 1,
    "LOGISTIC": 1,
    "TANH": 1,
    "RELU": 1,
    "RELU6": 1,
    "AVERAGE_POOL_2D": 1,
    "MAX_POOL_2D": 1,
    "QUANTIZE": 1,
    "DEQUANTIZE": 1,
    "CONCATENATION": 1,
    "STRIDED_SLICE": 4,
    "SLICE": 3,
    "GATHER": 2,
    "TRANSPOSE": 2,
    "RESIZE_BILINEAR": 2,
    "RESIZE_NEAREST_NEIGHBOR": 2,
    "LEAKY_RELU": 1,
    "HARD_SWISH": 1,
    "PRELU": 2,
    "SPLIT": 2,
    "SPLIT_V": 3,
    "EXPAND_DIMS": 2,
    "SQUEEZE": 1,
    "L2_NORMALIZATION": 1,
}
WEIGHT_RANK = {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 4, "TRANSPOSE_CONV": 4, "FULLY_CONNECTED": 2}
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


@cache
def _enum_names(enum_name: str) -> dict[int, str]:
    enum = getattr(_schema(), enum_name)
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class Quant:
    """Affine quantization of one tensor: real = scale * (q - zero_point)."""

    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dynamic: bool  # the shape signature has a -1
    dtype: str  # schema name, e.g. "INT8"
    is_constant: bool
    quant: Quant | None
    is_variable: bool = False

    @property
    def elements(self) -> int:
        return math.prod(self.shape) if self.shape else 1

    @property
    def bytes(self) -> int:
        return int(math.ceil(self.elements * DTYPE_BYTES.get(self.dtype, 0)))


@dataclass(frozen=True)
class Operator:
    index: int
    name: str  # builtin name, or "CUSTOM:<code>"
    version: int
    inputs: tuple[int, ...]  # -1 marks an omitted optional input
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def fused_activation(self) -> str:
        return ACTIVATIONS.get(self.options.get("fusedActivationFunction", 0), "?")


@dataclass(frozen=True)
class TFLiteModel:
    """The main subgraph of a `.tflite` file, plus file-level facts."""

    source: str
    data: bytes
    schema_version: int
    subgraph_count: int
    tensors: tuple[Tensor, ...]
    operators: tuple[Operator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    opcodes: tuple[tuple[str, int], ...]
    metadata: dict[str, bytes]
    constant_data: dict[int, np.ndarray] = field(repr=False, default_factory=dict)
    # Names the model's signature gives its inputs/outputs (Keras: "output_0", "dense_1"...).
    signature_names: dict[int, str] = field(default_factory=dict)
    # Opcode-table indices the other subgraphs (a WHILE's cond and body, an IF's branches) use:
    # a runtime needs their kernels too.
    subgraph_opcodes: frozenset[int] = frozenset()

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def min_runtime_version(self) -> str | None:
        raw = self.metadata.get("min_runtime_version")
        return raw.rstrip(b"\0").decode("ascii", "replace") if raw else None

    @property
    def used_opcodes(self) -> tuple[tuple[str, int], ...]:
        """(op, version) pairs that operators use. The converter can leave unused entries in
        the opcode table; a runtime only needs kernels for these."""
        used = {(op.name, op.version) for op in self.operators}
        return tuple(
            code
            for index, code in enumerate(self.opcodes)
            if code in used or index in self.subgraph_opcodes
        )

    def io_name(self, tensor_index: int) -> str:
        """The signature's name for an input/output tensor, else the tensor's own name."""
        return self.signature_names.get(tensor_index) or self.tensors[tensor_index].name

    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.inputs]

    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[i] for i in self.outputs]

    def weights(self, tensor_index: int) -> np.ndarray | None:
        """A constant tensor's values in its stored dtype, or None for activations."""
        return self.constant_data.get(tensor_index)


def short_name(name: str, width: int = 48) -> str:
    """A tensor name short enough for a progress line: the converter's fused names
    ("model/conv2d_3/BiasAdd;model/conv2d_3/Conv2D;...") by their layer.

    >>> short_name("functional/conv2d_3/BiasAdd;functional/conv2d_3/Conv2D;conv2d_3/bias")
    'conv2d_3'
    >>> short_name("input_1")
    'input_1'
    """
    parts = name.split(";")[0].split("/")
    label = parts[-2] if len(parts) >= 3 else "/".join(parts)
    return label if len(label) <= width else label[: width - 1] + "…"


def _np_dtype(dtype: str) -> np.dtype | None:
    numeric = (
        "FLOAT32",
        "FLOAT16",
        "FLOAT64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "BOOL",
    )
    return np.dtype(dtype.lower()) if dtype in numeric else None


def _options(op: Any) -> dict[str, Any]:
    opts = getattr(op, "builtinOptions", None)
    if opts is None:
        return {}
    return {k: v for k, v in vars(opts).items() if isinstance(v, (int, float, bool))}


def read_tflite(data: bytes, source: str = "<bytes>") -> TFLiteModel:
    """Parse and sanity-check a `.tflite` flatbuffer. Corrupt input is one `EdgekitError`."""
    schema = _schema()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise UsageError(f"{source}: not a .tflite model (no TFL3 identifier)")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))
        return _build(model, data, source)
    except EdgekitError:
        raise
    except Exception as exc:  # the flatbuffer reader raises many kinds on bad offsets
        raise UsageError(
            f"{source}: corrupt or truncated .tflite ({type(exc).__name__}: {exc})"
        ) from exc


def _build(model: Any, data: bytes, source: str) -> TFLiteModel:
    op_names = _enum_names("BuiltinOperator")
    type_names = _enum_names("TensorType")
    if not model.subgraphs:
        raise UsageError(f"{source}: corrupt .tflite (no subgraphs)")
    buffers = model.buffers or []
    opcodes = []
    for code in model.operatorCodes or []:
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.customCode or b'').decode('utf-8', 'replace')}"
        opcodes.append((name, int(code.version)))

    graph = model.subgraphs[0]
    tensors: list[Tensor] = []
    constants: dict[int, np.ndarray] = {}
    for i, t in enumerate(graph.tensors or []):
        buf = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else None
        if t.buffer >= len(buffers):
            raise UsageError(f"{source}: corrupt .tflite (tensor {i} names buffer {t.buffer})")
        raw = _buffer_bytes(buf, data, source) if buf is not None else b""
        dtype = type_names.get(t.type, f"TYPE_{t.type}")
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        sig = t.shapeSignature
        quant = _quant(t.quantization, i, shape, source)
        if any(d < -1 for d in shape):
            raise UsageError(f"{source}: corrupt .tflite (tensor {i} has shape {list(shape)})")
        tensor = Tensor(
            index=i,
            name=(t.name or b"").decode("utf-8", "replace"),
            shape=shape,
            dynamic=sig is not None and any(int(d) < 0 for d in sig),
            dtype=dtype,
            is_constant=len(raw) > 0,
            quant=quant,
            is_variable=bool(t.isVariable),
        )
        np_dtype = _np_dtype(dtype)
        if raw and np_dtype is not None and t.sparsity is None:
            if len(raw) != tensor.elements * np_dtype.itemsize:
                raise UsageError(
                    f"{source}: corrupt .tflite (tensor {tensor.name!r} holds {len(raw)} bytes, "
                    f"its shape {list(shape)} needs {tensor.elements * np_dtype.itemsize})"
                )
            constants[i] = np.frombuffer(raw, dtype=np_dtype).reshape(shape)
        tensors.append(tensor)

    operators = []
    for i, op in enumerate(graph.operators or []):
        if not 0 <= op.opcodeIndex < len(opcodes):
            raise UsageError(f"{source}: corrupt .tflite (operator {i} has a bad opcode index)")
        name, version = opcodes[op.opcodeIndex]
        ins = tuple(int(x) for x in (op.inputs if op.inputs is not None else ()))
        outs = tuple(int(x) for x in (op.outputs if op.outputs is not None else ()))
        for idx in ins + outs:
            if idx >= len(tensors) or idx < -1:
                raise UsageError(f"{source}: corrupt .tflite (operator {i} names tensor {idx})")
        if not outs or any(idx < 0 for idx in outs):
            raise UsageError(f"{source}: corrupt .tflite (operator {i} {name} has no output)")
        needed = MIN_INPUTS.get(name, 0)
        present = [idx for idx in ins[:needed] if idx >= 0]
        if len(present) < needed:
            raise UsageError(
                f"{source}: corrupt .tflite (operator {i} {name} has {len(present)} of the "
                f"{needed} inputs it needs)"
            )
        rank = WEIGHT_RANK.get(name)
        weight = tensors[ins[1]] if rank is not None else None
        # Only constant weights have a rank to check (QAT float models compute theirs).
        if weight is not None and weight.is_constant and len(weight.shape) != rank:
            raise UsageError(
                f"{source}: corrupt .tflite (operator {i} {name}: weights of rank "
                f"{len(tensors[ins[1]].shape)}, expected {rank})"
            )
        operators.append(Operator(i, name, version, ins, outs, _options(op)))

    subgraph_opcodes = frozenset(
        int(op.opcodeIndex)
        for other in model.subgraphs[1:]
        for op in (other.operators or [])
        if 0 <= op.opcodeIndex < len(opcodes)
    )
    graph_inputs = tuple(int(x) for x in (graph.inputs if graph.inputs is not None else ()))
    graph_outputs = tuple(int(x) for x in (graph.outputs if graph.outputs is not None else ()))
    for kind, indices in (("input", graph_inputs), ("output", graph_outputs)):
        for idx in indices:
            if not 0 <= idx < len(tensors):
                raise UsageError(
                    f"{source}: corrupt .tflite (subgraph {kind} names tensor {idx}; the graph "
                    f"has {len(tensors)})"
                )
    if not graph_outputs:
        raise UsageError(f"{source}: corrupt .tflite (the graph has no outputs)")
    signature_names: dict[int, str] = {}
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex != 0:
            continue
        for entry in (signature.inputs or []) + (signature.outputs or []):
            if 0 <= entry.tensorIndex < len(tensors):
                signature_names[int(entry.tensorIndex)] = (entry.name or b"").decode(
                    "utf-8", "replace"
                )
    metadata = {}
    for entry in model.metadata or []:
        if 0 <= entry.buffer < len(buffers):
            key = (entry.name or b"").decode("utf-8", "replace")
            metadata[key] = _buffer_bytes(buffers[entry.buffer], data, source)
    return TFLiteModel(
        source=source,
        data=bytes(data),
        schema_version=int(model.version),
        subgraph_count=len(model.subgraphs),
        tensors=tuple(tensors),
        operators=tuple(operators),
        inputs=graph_inputs,
        outputs=graph_outputs,
        opcodes=tuple(opcodes),
        metadata=metadata,
        constant_data=constants,
        signature_names=signature_names,
        subgraph_opcodes=subgraph_opcodes,
    )


def _quant(q: Any, index: int, shape: tuple[int, ...], source: str) -> Quant | None:
    """A tensor's quantization, checked: zero points for the scales, a valid axis."""
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    scales = tuple(float(s) for s in q.scale)
    zeros = tuple(int(z) for z in (q.zeroPoint if q.zeroPoint is not None else ()))
    if len(zeros) not in (1, len(scales)):
        raise UsageError(
            f"{source}: corrupt .tflite (tensor {index} has {len(scales)} scales and "
            f"{len(zeros)} zero points)"
        )
    axis = int(q.quantizedDimension)
    if not 0 <= axis < max(len(shape), 1) and (
        len(scales) == 1 or (len(shape) == 1 and shape[0] == len(scales))
    ):
        # Older converters wrote quantized_dimension 3 on biases: one scale is per-tensor, and
        # a rank-1 tensor has one axis. TFLM runs such files; the axis cannot mean anything else.
        axis = 0
    if len(scales) > 1 and not 0 <= axis < max(len(shape), 1):
        raise UsageError(
            f"{source}: corrupt .tflite (tensor {index}: quantized dimension {axis} of a "
            f"rank-{len(shape)} tensor)"
        )
    if not all(math.isfinite(s) for s in scales):
        raise UsageError(f"{source}: corrupt .tflite (tensor {index} has a non-finite scale)")
    return Quant(scales, zeros, axis)


def _buffer_bytes(buf: Any, data: bytes, source: str) -> bytes:
    if buf.data is not None and len(buf.data):
        return np.asarray(buf.data, dtype=np.uint8).tobytes()
    if buf.offset and buf.offset > 1:  # data stored after the flatbuffer (models > 2 GB)
        end = buf.offset + buf.size
        if end > len(data):
            raise UsageError(f"{source}: truncated .tflite (buffer ends at byte {end})")
        return bytes(data[buf.offset : end])
    return b""


def load_tflite(path: str | Path) -> TFLiteModel:
    """Read a `.tflite` file from disk with a one-line error for missing or corrupt files."""
    path = regular_file(path, "model", MAX_MODEL_BYTES)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror})") from None
    return read_tflite(data, str(path))
