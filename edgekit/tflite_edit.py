"""Small, checked rewrites of a `.tflite` flatbuffer (through LiteRT's schema object API).

:func:`single_op_model` cuts one op out of a model with its constants, so a runtime can run
that op alone on given inputs. Verification uses it to tell a kernel that computes differently
(same inputs, different output) from a difference that arrived from upstream.

>>> single_op_model(open("model_int8.tflite", "rb").read(), 3)   # doctest: +SKIP
b'...TFL3...'
"""

from __future__ import annotations

from typing import Any

from edgekit.errors import UsageError

CONTROL_FLOW_OPS = ("IF", "WHILE", "CALL_ONCE", "CALL")


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def unpack(data: bytes) -> Any:
    schema = _schema()
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))


def pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def single_op_model(data: bytes, op_index: int) -> tuple[bytes, list[int]]:
    """(model running only op `op_index` of subgraph 0, its graph inputs as tensor indices).

    The graph inputs are the op's non-constant, non-variable inputs, in the op's order.
    """
    model = unpack(data)
    graph = model.subgraphs[0]
    op = graph.operators[op_index]
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    names = {v: k for k, v in vars(_schema().BuiltinOperator).items() if isinstance(v, int)}
    if names.get(builtin) in CONTROL_FLOW_OPS:
        raise UsageError(f"op #{op_index} {names[builtin]} calls subgraphs; it cannot run alone")

    def constant(idx: int) -> bool:
        tensor = graph.tensors[idx]
        buffer = model.buffers[tensor.buffer] if 0 <= tensor.buffer < len(model.buffers) else None
        return buffer is not None and buffer.data is not None and len(buffer.data) > 0

    inputs = []
    for idx in op.inputs if op.inputs is not None else []:
        idx = int(idx)
        if idx >= 0 and not constant(idx) and not graph.tensors[idx].isVariable:
            if idx not in inputs:
                inputs.append(idx)
    graph.operators = [op]
    graph.inputs = inputs
    graph.outputs = [int(i) for i in op.outputs]
    model.subgraphs = [graph]
    model.signatureDefs = None
    return pack(model), inputs
