"""int16 activations where int8 runs out: chosen tensors carried in int16, the rest int8.

TFLite's 16x8 scheme (int16 activations, int8 weights) has kernels in LiteRT and in TFLM for
the ops of :data:`INT16_OPS`. The converter makes a model wholly int8 or wholly 16x8; edgekit
makes both from the same calibrated float model and the same ranges (symmetric for int16, as
16x8 kernels need a zero point of 0) and splices:

- the unit of choice is a *tensor*: carrying it in int16 makes the op that writes it and
  every op that reads it 16x8 ops (their weights and biases taken from the 16x8 model), so
  the values between them keep 16 bits. An op's int16 output that int8 ops also read is
  requantized for them by a QUANTIZE op (int16 → int8); an int8 input of a 16x8 op by a
  QUANTIZE (int8 → int16). QUANTIZE between int8 and int16 runs in both runtimes.
- Every other op, tensor and buffer stays as in the int8 model (with its bias correction,
  learned rounding and ranges).

A microcontroller target then gets mixed precision without float ops; the Edge TPU has no
int16 path. :func:`candidates` lists the tensors that can be carried in int16.

>>> INT16_OPS[:3]
('CONV_2D', 'DEPTHWISE_CONV_2D', 'FULLY_CONNECTED')
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from edgekit.tflite_edit import pack, schema_module, unpack
from edgekit.tflite_model import TFLiteModel, read_tflite

# Ops with 16x8 kernels in LiteRT and in TFLM (tflite-micro's kernels/*.cc accept int16
# inputs for each), that edgekit's splice handles: checked by running TFLM in the tests.
INT16_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "ADD",
    "MEAN",
    "AVERAGE_POOL_2D",
    "MAX_POOL_2D",
    "RESHAPE",
)


def symmetric(ranges: dict[int, tuple[float, float]]) -> dict[int, tuple[float, float]]:
    """Each range widened to ±max|bound| (16x8 kernels take a zero point of 0).

    >>> symmetric({3: (-1.0, 4.0)})
    {3: (-4.0, 4.0)}
    """
    return {i: (-max(abs(lo), abs(hi)), max(abs(lo), abs(hi))) for i, (lo, hi) in ranges.items()}


def as_16x8_kernels_expect(data: bytes) -> bytes:
    """The MLIR quantizer's 16x8 model as the 16x8 kernels take it (what the converter's own
    16x8 path writes):

    - every int16 activation's zero point 0 (the quantizer leaves −1 on some symmetric
      ranges; the kernels refuse anything but 0): a shift of one step in 65,536;
    - 64-bit biases (`quantizedBiasType` INT64): it writes int32 biases that LiteRT's 16x8
      kernels read as int64 (measured: −10.9 dB at ResNet-8's logits, 42.6 dB with int64).
    """
    schema = schema_module()
    model = unpack(data)
    graph = model.subgraphs[0]
    tensors = graph.tensors
    for tensor in tensors:
        q = tensor.quantization
        if tensor.type == schema.TensorType.INT16 and q is not None and q.zeroPoint is not None:
            q.zeroPoint = [0] * len(q.zeroPoint)
    for op in graph.operators:
        inputs = list(op.inputs) if op.inputs is not None else []
        if len(inputs) < 3 or inputs[2] < 0 or tensors[inputs[0]].type != schema.TensorType.INT16:
            continue
        bias = tensors[inputs[2]]
        if bias.type != schema.TensorType.INT32:
            continue
        buffer = model.buffers[bias.buffer]
        values = np.frombuffer(bytes(bytearray(buffer.data)), dtype=np.int32).astype(np.int64)
        buffer.data = values.view(np.uint8)
        bias.type = schema.TensorType.INT64
        if op.builtinOptions is not None and hasattr(op.builtinOptions, "quantizedBiasType"):
            op.builtinOptions.quantizedBiasType = schema.TensorType.INT64
    return pack(model)


def candidates(int8: TFLiteModel, int16: TFLiteModel) -> list[str]:
    """Names of the int8 model's int8 activations that can be carried in int16: written by
    an op of INT16_OPS with a 16x8 twin, and read by at least one such op."""
    twins = _twins(int8, int16)
    readers = _readers(int8)
    names = []
    for op in int8.operators:
        if op.index not in twins:
            continue
        for out in op.outputs:
            tensor = int8.tensors[out]
            if tensor.dtype != "INT8" or out in int8.outputs:
                continue
            if any(r.index in twins for r in readers.get(out, [])):
                names.append(tensor.name)
    return names


def _twins(int8: TFLiteModel, int16: TFLiteModel) -> dict[int, int]:
    """int8 op index → its 16x8 twin's index (same op, same output name, int16 output)."""
    by_output = {int16.tensors[op.outputs[0]].name: op for op in int16.operators if op.outputs}
    twins = {}
    for op in int8.operators:
        if op.name not in INT16_OPS or not op.outputs:
            continue
        twin = by_output.get(int8.tensors[op.outputs[0]].name)
        if twin is None or twin.name != op.name:
            continue
        if int16.tensors[twin.outputs[0]].dtype != "INT16":
            continue
        twins[op.index] = twin.index
    return twins


def _readers(model: TFLiteModel) -> dict[int, list[Any]]:
    readers: dict[int, list[Any]] = {}
    for op in model.operators:
        for i in op.inputs:
            if i >= 0:
                readers.setdefault(i, []).append(op)
    return readers


def splice(int8_data: bytes, int16_data: bytes, tensors: tuple[str, ...]) -> bytes:
    """The int8 model with the activations named `tensors` carried in int16 (see the module
    docstring); names that cannot be are ignored (:func:`candidates` lists those that can)."""
    int8, int16 = read_tflite(int8_data), read_tflite(int16_data)
    twins = _twins(int8, int16)
    readers = _readers(int8)
    chosen = set(tensors) & set(candidates(int8, int16))
    if not chosen:
        return int8_data
    sixteen: set[int] = set()  # int8 op indices that become 16x8 ops
    for op in int8.operators:
        writes = any(int8.tensors[o].name in chosen for o in op.outputs)
        reads = any(int8.tensors[i].name in chosen for i in op.inputs if i >= 0)
        if op.index in twins and (writes or reads):
            sixteen.add(op.index)
    schema = schema_module()
    model, source = unpack(int8_data), unpack(int16_data)
    graph, other = model.subgraphs[0], source.subgraphs[0]
    quantize = _opcode(model, schema.BuiltinOperator.QUANTIZE, _version(source, "QUANTIZE"))
    wide: dict[str, int] = {}  # tensor name → its int16 tensor in the spliced model

    def add_tensor(template: Any, data: Any = None) -> int:
        tensor = copy.deepcopy(template)
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = data
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
        graph.tensors.append(tensor)
        return len(graph.tensors) - 1

    def int16_tensor(name: str, twin_index: int) -> int:
        """The int16 twin of int8 activation `name`, with the 16x8 model's tensor
        `twin_index`'s shape and quantization."""
        if name not in wide:
            template = copy.deepcopy(other.tensors[twin_index])
            template.name = f"{name}/int16".encode()
            wide[name] = add_tensor(template)
        return wide[name]

    def requantize(source_index: int, target_index: int) -> Any:
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = quantize, [source_index], [target_index]
        return op

    operators = []
    for op, info in zip(graph.operators, int8.operators, strict=True):
        if info.index not in sixteen:
            operators.append(op)
            continue
        twin = other.operators[twins[info.index]]
        twin_info = int16.operators[twins[info.index]]
        new = copy.deepcopy(twin)
        new.opcodeIndex = _opcode(
            model, _builtin(source, twin), source.operatorCodes[twin.opcodeIndex].version
        )
        inputs = []
        for position, index in enumerate(twin_info.inputs):
            if index < 0:
                inputs.append(index)
                continue
            tensor16 = int16.tensors[index]
            if tensor16.is_constant:
                data = source.buffers[other.tensors[index].buffer].data
                inputs.append(add_tensor(other.tensors[index], data))
                continue
            name8 = int8.tensors[info.inputs[position]].name
            if name8 not in wide:
                target = int16_tensor(name8, index)
                operators.append(requantize(info.inputs[position], target))
            inputs.append(wide[name8])
        new.inputs = inputs
        new.outputs = [
            int16_tensor(int8.tensors[index].name, twin_index)
            for index, twin_index in zip(info.outputs, twin_info.outputs, strict=True)
        ]
        operators.append(new)
        for index in info.outputs:  # int8 readers and graph outputs get a requantized copy
            users = readers.get(index, [])
            if index in int8.outputs or any(u.index not in sixteen for u in users):
                operators.append(requantize(wide[int8.tensors[index].name], index))
    graph.operators = operators
    _drop_unused_buffers(model)
    return pack(model)


def _drop_unused_buffers(model: Any) -> None:
    """Drop the tensors and empty the buffers only replaced ops used (the int8 weights and
    biases of ops now in 16x8): the file does not carry both copies."""
    graph = model.subgraphs[0]
    ops = graph.operators
    used = {i for op in ops for i in _indices(op.inputs) + _indices(op.outputs)}
    used |= set(_indices(graph.inputs) + _indices(graph.outputs))
    kept = sorted(i for i in used if i >= 0)
    new = {old: position for position, old in enumerate(kept)}
    live = {graph.tensors[i].buffer for i in kept}
    for tensor in graph.tensors:
        if tensor.buffer not in live and tensor.buffer > 0:
            model.buffers[tensor.buffer].data = None
    graph.tensors = [graph.tensors[i] for i in kept]
    for op in ops:
        op.inputs = [new[i] if i >= 0 else -1 for i in _indices(op.inputs)]
        op.outputs = [new[i] for i in _indices(op.outputs)]
    graph.inputs = [new[i] for i in _indices(graph.inputs)]
    graph.outputs = [new[i] for i in _indices(graph.outputs)]
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == 0:
            for entry in list(signature.inputs or []) + list(signature.outputs or []):
                entry.tensorIndex = new[int(entry.tensorIndex)]


def _indices(values: Any) -> list[int]:
    """Tensor indices of the schema object API (None, a list or a numpy array) as ints."""
    return [] if values is None else [int(i) for i in values]


def _builtin(model: Any, op: Any) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _version(model: Any, name: str) -> int:
    builtin = getattr(schema_module().BuiltinOperator, name)
    versions = [
        c.version
        for c in model.operatorCodes
        if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin
    ]
    return max(versions, default=1)


def _opcode(model: Any, builtin: int, version: int) -> int:
    """The opcode-table index of `builtin`, its version raised to `version` if lower (a
    kernel of a higher version runs the lower versions' types too)."""
    schema = schema_module()
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            code.version = max(code.version, version)
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def int16_share(model: TFLiteModel) -> float:
    """Share of the model's activations (by elements) carried in int16."""
    activations = [t for t in model.tensors if not t.is_constant and t.dtype in ("INT8", "INT16")]
    total = sum(t.elements for t in activations)
    wide = sum(t.elements for t in activations if t.dtype == "INT16")
    return float(wide / total) if total else 0.0
