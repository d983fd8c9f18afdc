"""Figures computed from a parsed `.tflite` graph: MACs, weights and activation liveness.

Pure functions of a :class:`~edgekit.tflite_model.TFLiteModel`; no runtime is involved. Every
pass is linear in the number of ops and tensors (a 8,000-op model inspects in well under a
second).

>>> from edgekit.graph import op_macs, activation_lower_bound   # doctest: +SKIP
>>> activation_lower_bound(model)                                # doctest: +SKIP
(8192, 3)
"""

from __future__ import annotations

import math

from edgekit.tflite_model import Operator, TFLiteModel

WEIGHT_INPUTS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1}


def op_macs(model: TFLiteModel, op: Operator) -> int:
    """Multiply-accumulates of one op at batch 1 (conv, depthwise, dense, transpose-conv,
    batch-matmul; other ops count 0)."""
    t = model.tensors

    def shape(pos: int, outputs: bool = False) -> tuple[int, ...]:
        indices = op.outputs if outputs else op.inputs
        if pos >= len(indices) or indices[pos] < 0:
            return ()
        return t[indices[pos]].shape

    out = math.prod(shape(0, outputs=True) or (0,))
    weights = shape(1)
    if op.name == "CONV_2D" and len(weights) == 4:
        _, kh, kw, cin = weights
        return out * kh * kw * cin
    if op.name == "DEPTHWISE_CONV_2D" and len(weights) == 4:
        _, kh, kw, _ = weights
        return out * kh * kw
    if op.name == "FULLY_CONNECTED" and weights:
        return out * weights[-1]
    if op.name == "TRANSPOSE_CONV" and len(weights) == 4:
        cout, kh, kw, _ = weights
        return math.prod(shape(2) or (0,)) * kh * kw * cout
    if op.name == "BATCH_MATMUL":
        a = shape(0)
        if len(a) < 2:
            return 0
        return out * (a[-2] if op.options.get("adjX", False) else a[-1])
    return 0


def weight_tensors(model: TFLiteModel) -> list[tuple[Operator, int]]:
    """(op, tensor index) of the constant weights of conv, depthwise, dense and
    transpose-conv ops: the tensors pruning and clustering act on."""
    found = []
    for op in model.operators:
        position = WEIGHT_INPUTS.get(op.name)
        if position is not None and len(op.inputs) > position:
            idx = op.inputs[position]
            if idx >= 0 and model.weights(idx) is not None:
                found.append((op, idx))
    return found


def weight_sparsity(model: TFLiteModel, ops: tuple[str, ...] | None = None) -> float:
    """Zero fraction over the weight tensors of `ops` (default: all of WEIGHT_INPUTS)."""
    zeros = size = 0
    for op, idx in weight_tensors(model):
        if ops is None or op.name in ops:
            values = model.weights(idx)
            zeros += int((values == 0).sum())
            size += values.size
    return zeros / size if size else 0.0


def tensor_lifetimes(model: TFLiteModel) -> dict[int, tuple[int, int]]:
    """{activation tensor: (first op, last op)} in execution order; graph inputs start at -1,
    graph outputs live to the end."""
    n_ops = len(model.operators)
    first: dict[int, int] = {i: -1 for i in model.inputs}
    last: dict[int, int] = {i: n_ops for i in model.outputs}
    for op in model.operators:
        for idx in op.outputs:
            if idx >= 0:
                first.setdefault(idx, op.index)
        for idx in op.inputs:
            if idx >= 0 and not model.tensors[idx].is_constant:
                first.setdefault(idx, op.index)
                last[idx] = max(last.get(idx, op.index), op.index)
    return {
        idx: (start, last.get(idx, start))
        for idx, start in first.items()
        if not model.tensors[idx].is_constant
    }


def activation_lower_bound(model: TFLiteModel) -> tuple[int, int]:
    """(bytes, op index): the largest total of activation tensors alive at one op.

    A sweep over lifetime start/end events: linear in ops + tensors.
    """
    n_ops = len(model.operators)
    if n_ops == 0:
        return 0, 0
    delta = [0] * (n_ops + 2)
    for idx, (start, end) in tensor_lifetimes(model).items():
        size = model.tensors[idx].bytes
        delta[max(start, 0)] += size
        delta[min(end, n_ops - 1) + 1] -= size
    best, best_op, alive = 0, 0, 0
    for i in range(n_ops):
        alive += delta[i]
        if alive > best:
            best, best_op = alive, i
    return best, best_op


def producers(model: TFLiteModel) -> dict[int, Operator]:
    """{tensor index: the op that writes it}."""
    return {idx: op for op in model.operators for idx in op.outputs if idx >= 0}
