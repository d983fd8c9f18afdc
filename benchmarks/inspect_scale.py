"""`edgekit inspect` time against op count: linear, not quadratic.

Builds synthetic `.tflite` models whose graph is a chain of N ops (ADD of a constant, then
RELU, alternating, with a side branch every 10 ops so tensors live past their neighbour) and
times `edgekit.inspection.inspect` on each, in one run, interleaved over rounds.

    python benchmarks/inspect_scale.py --ops 2000 4000 8000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def chain_model(n_ops: int, width: int = 16) -> bytes:
    """A float32 model of `n_ops` ops: x → ADD c → RELU → ADD c → ..., where every 10th ADD
    also adds the tensor from 10 ops before (a skip connection)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT()
    model.version = 3
    model.buffers = [s.BufferT()]  # buffer 0: empty, by convention
    const = s.BufferT()
    const.data = np.ones(width, np.float32).view(np.uint8)
    model.buffers.append(const)
    add, relu = s.OperatorCodeT(), s.OperatorCodeT()
    add.builtinCode = add.deprecatedBuiltinCode = s.BuiltinOperator.ADD
    relu.builtinCode = relu.deprecatedBuiltinCode = s.BuiltinOperator.RELU
    add.version = relu.version = 1
    model.operatorCodes = [add, relu]
    graph = s.SubGraphT()
    graph.tensors, graph.operators = [], []

    def tensor(name: str, buffer: int = 0) -> int:
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, width], s.TensorType.FLOAT32, buffer, name
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    constant = tensor("c", 1)
    current = tensor("x")
    history = [current]
    for i in range(n_ops):
        op = s.OperatorT()
        out = tensor(f"t{i}")
        if i % 2 == 0:
            other = history[-10] if i % 10 == 0 and len(history) > 10 else constant
            op.opcodeIndex, op.inputs = 0, [current, other]
        else:
            op.opcodeIndex, op.inputs = 1, [current]
        op.outputs = [out]
        graph.operators.append(op)
        current = out
        history.append(out)
    graph.inputs, graph.outputs = [history[0]], [current]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, nargs="+", default=[2000, 4000, 8000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from edgekit.inspection import inspect

    times: dict[int, list[float]] = {n: [] for n in args.ops}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for n in args.ops:
            paths[n] = Path(tmp) / f"chain{n}.tflite"
            paths[n].write_bytes(chain_model(n))
        for _ in range(args.rounds):
            for n in args.ops:
                started = time.perf_counter()
                inspect(paths[n])
                times[n].append(time.perf_counter() - started)
    base = args.ops[0]
    print("| ops | inspect median (s) | time / time at", base, "ops | ops ratio |")
    print("|---|---|---|---|")
    for n in args.ops:
        median = statistics.median(times[n])
        ratio = median / statistics.median(times[base])
        print(f"| {n:,} | {median:.3f} | {ratio:.2f} | {n / base:.0f} |")


if __name__ == "__main__":
    main()
