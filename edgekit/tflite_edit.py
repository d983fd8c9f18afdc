"""Small, checked rewrites of a `.tflite` flatbuffer (through LiteRT's schema object API).

:func:`single_op_model` cuts one op out of a model with its constants, so a runtime can run
that op alone on given inputs. Verification uses it to tell a kernel that computes differently
(same inputs, different output) from a difference that arrived from upstream.

>>> single_op_model(open("model_int8.tflite", "rb").read(), 3)   # doctest: +SKIP
b'...TFL3...'
"""

from __future__ import annotations

from typing import Any

import flatbuffers
import numpy as np

from edgekit.errors import UsageError

CONTROL_FLOW_OPS = ("IF", "WHILE", "CALL_ONCE", "CALL")


def schema_module() -> Any:
    from ai_edge_litert import schema_py_generated  # heavy: loaded when a model is edited

    return schema_py_generated


def unpack(data: bytes) -> Any:
    schema = schema_module()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))


def pack(model: Any) -> bytes:
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def single_op_model(data: bytes, op_index: int) -> tuple[bytes, list[int]]:
    """(model running only op `op_index` of subgraph 0, its graph inputs as tensor indices).

    The graph inputs are the op's non-constant, non-variable inputs, in the op's order.
    """
    return sub_model(data, [op_index])


def sub_model(
    data: bytes, op_indices: list[int], outputs: list[int] | None = None
) -> tuple[bytes, list[int]]:
    """(model running ops `op_indices` of subgraph 0 in graph order, its graph inputs).

    The graph inputs are the tensors the ops read that none of them writes (not constants or
    variables), in the order they are first read; the outputs are `outputs` (default: the
    last op's outputs).
    """
    model = unpack(data)
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(schema_module().BuiltinOperator).items() if isinstance(v, int)}
    chosen = sorted(set(op_indices))
    for op_index in chosen:
        code = model.operatorCodes[graph.operators[op_index].opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if names.get(builtin) in CONTROL_FLOW_OPS:
            raise UsageError(
                f"op #{op_index} {names[builtin]} calls subgraphs; it cannot run alone"
            )

    def constant(idx: int) -> bool:
        tensor = graph.tensors[idx]
        buffer = model.buffers[tensor.buffer] if 0 <= tensor.buffer < len(model.buffers) else None
        return buffer is not None and buffer.data is not None and len(buffer.data) > 0

    ops = [graph.operators[i] for i in chosen]
    written = {int(i) for op in ops for i in (op.outputs if op.outputs is not None else [])}
    inputs: list[int] = []
    for op in ops:
        for idx in op.inputs if op.inputs is not None else []:
            idx = int(idx)
            if idx < 0 or idx in written or idx in inputs:
                continue
            if not constant(idx) and not graph.tensors[idx].isVariable:
                inputs.append(idx)
    graph.operators = ops
    graph.inputs = inputs
    graph.outputs = [int(i) for i in (outputs if outputs is not None else ops[-1].outputs)]
    model.subgraphs = [graph]
    model.signatureDefs = None
    return pack(model), inputs


def _opcode_index(model: Any, builtin: int) -> int:
    """The index of `builtin` in the model's opcode table, added (version 1) if missing."""
    schema = schema_module()
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def average_pool_to_mean(data: bytes) -> tuple[bytes, list[int]]:
    """Every float AVERAGE_POOL_2D that averages its whole feature map (a global pool) becomes
    MEAN over the spatial axes, keeping dims: the same values in float, but quantized MEAN has
    its own output scale where an int8 average pool must keep its input's (a 6.4 maximum
    then sits in a 27.6 range: two bits lost). Returns the model and the rewritten ops."""
    schema = schema_module()
    model = unpack(data)
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if isinstance(v, int)}
    rewritten = []
    axes_index = None
    for index, op in enumerate(graph.operators):
        code = model.operatorCodes[op.opcodeIndex]
        if names.get(max(code.builtinCode, code.deprecatedBuiltinCode)) != "AVERAGE_POOL_2D":
            continue
        options = op.builtinOptions
        source = graph.tensors[op.inputs[0]]
        shape = list(source.shape) if source.shape is not None else []
        whole_map = options is not None and (options.filterHeight, options.filterWidth) == (
            tuple(shape[1:3]) if len(shape) == 4 else None
        )
        if source.type != schema.TensorType.FLOAT32 or not whole_map:
            continue
        if options.fusedActivationFunction != 0:
            continue
        if axes_index is None:
            buffer = schema.BufferT()
            buffer.data = np.array([1, 2], dtype=np.int32).view(np.uint8)
            model.buffers.append(buffer)
            axes = schema.TensorT()
            axes.shape, axes.type, axes.name = [2], schema.TensorType.INT32, "edgekit/mean_axes"
            axes.buffer = len(model.buffers) - 1
            graph.tensors.append(axes)
            axes_index = len(graph.tensors) - 1
        reducer = schema.ReducerOptionsT()
        reducer.keepDims = True
        op.opcodeIndex = _opcode_index(model, schema.BuiltinOperator.MEAN)
        op.inputs = [op.inputs[0], axes_index]
        op.builtinOptionsType = schema.BuiltinOptions.ReducerOptions
        op.builtinOptions = reducer
        rewritten.append(index)
    return (pack(model) if rewritten else data), rewritten


def fake_quant_model(
    float_data: bytes,
    quant: dict[str, tuple[float, int]],
    weights: dict[str, Any] | None = None,
) -> bytes:
    """The float model with every activation named in `quant` rounded as int8 would round it:
    a QUANTIZE (to int8 with that scale and zero point) and a DEQUANTIZE after the op that
    writes it. `weights` replaces constant tensors by name (e.g. with dequantized int8
    weights). The ops still compute in float: comparing this model with the real int8 one
    separates what the 8-bit grid costs from what integer kernels add.
    """
    schema = schema_module()
    model = unpack(float_data)
    graph = model.subgraphs[0]
    quantize_op = _opcode_index(model, schema.BuiltinOperator.QUANTIZE)
    dequantize_op = _opcode_index(model, schema.BuiltinOperator.DEQUANTIZE)
    for tensor in graph.tensors:
        name = (tensor.name or b"").decode("utf-8", "replace")
        if weights and name in weights:
            model.buffers[tensor.buffer].data = (
                np.asarray(weights[name], dtype=np.float32).ravel().view(np.uint8)
            )
    operators = []
    renamed: dict[int, int] = {}
    for op in graph.operators:
        op.inputs = [renamed.get(int(i), int(i)) for i in op.inputs]
        operators.append(op)
        for out in list(op.outputs):
            tensor = graph.tensors[out]
            name = (tensor.name or b"").decode("utf-8", "replace")
            if name not in quant or tensor.type != schema.TensorType.FLOAT32:
                continue
            scale, zero = quant[name]
            q = schema.TensorT()
            q.shape, q.type, q.name = list(tensor.shape), schema.TensorType.INT8, f"{name}/fq"
            q.buffer = 0
            q.quantization = schema.QuantizationParametersT()
            q.quantization.scale, q.quantization.zeroPoint = [float(scale)], [int(zero)]
            graph.tensors.append(q)
            dq = schema.TensorT()
            dq.shape, dq.type, dq.name = list(tensor.shape), schema.TensorType.FLOAT32, f"{name}/dq"
            dq.buffer = 0
            graph.tensors.append(dq)
            q_index, dq_index = len(graph.tensors) - 2, len(graph.tensors) - 1
            for opcode, inputs, outputs in (
                (quantize_op, [out], [q_index]),
                (dequantize_op, [q_index], [dq_index]),
            ):
                new = schema.OperatorT()
                new.opcodeIndex, new.inputs, new.outputs = opcode, inputs, outputs
                operators.append(new)
            renamed[out] = dq_index
    graph.operators = operators
    graph.outputs = [renamed.get(int(i), int(i)) for i in graph.outputs]
    model.signatureDefs = None
    return pack(model)
