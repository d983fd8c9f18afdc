"""What is in a `.tflite` model: ops, MACs, tensors by dtype and the activation-memory bound.

Every figure is explained in :data:`COLUMNS`, and `edgekit inspect` prints that legend under
its tables, in the spirit of larq's `models.summary`.

>>> from edgekit.inspection import inspect
>>> info = inspect("model.tflite")                                      # doctest: +SKIP
>>> info.macs, info.parameter_bytes, info.activation_lower_bound_bytes  # doctest: +SKIP
(233472, 40960, 8192)
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit import metrics as M
from edgekit.checks import check_model
from edgekit.graph import (  # noqa: F401  (re-exported: part of inspection's API)
    activation_lower_bound,
    op_macs,
    weight_sparsity,
    weight_tensors,
)
from edgekit.targets import load_target
from edgekit.tflite_model import TFLiteModel, load_tflite

COLUMNS = {
    "op": "builtin operator name as stored in the model",
    "count": "how many times the op appears in the main subgraph",
    "MACs": "multiply-accumulates for one inference (batch 1): conv, depthwise, dense, "
    "transpose-conv and batch-matmul; other ops count 0",
    "dtype": "element type of a tensor",
    "tensors": "number of tensors of that dtype",
    "parameter bytes": "bytes of constant tensors (weights, biases, quantization tables)",
    "activation bytes": "bytes of all non-constant tensors if none shared memory",
    "activation lower bound": "the most activation bytes alive at any single op: no memory "
    "planner can use less; the TFLM arena also holds per-tensor bookkeeping on top",
}


@dataclass(frozen=True)
class OpSummary:
    op: str
    count: int
    macs: int


@dataclass(frozen=True)
class DtypeSummary:
    dtype: str
    tensors: int
    parameter_bytes: int
    activation_bytes: int


@dataclass
class ModelInfo:
    """The figures `edgekit inspect` prints. Build it with :func:`inspect`."""

    source: str
    model_bytes: int
    sha256: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    ops: list[OpSummary]
    dtypes: list[DtypeSummary]
    parameters: int
    parameter_bytes: int
    macs: int
    activation_lower_bound_bytes: int
    peak_op: str
    min_runtime_version: str | None
    subgraphs: int
    checks: list[Any] = field(default_factory=list)  # list[checks.Check] when a target is given

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            M.MODEL_BYTES: self.model_bytes,
            "sha256": self.sha256,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "ops": [vars(o) for o in self.ops],
            "dtypes": [vars(d) for d in self.dtypes],
            M.PARAMETERS: self.parameters,
            "parameter_bytes": self.parameter_bytes,
            M.MACS: self.macs,
            M.ACTIVATION_LOWER_BOUND_BYTES: self.activation_lower_bound_bytes,
            "peak_op": self.peak_op,
            "min_runtime_version": self.min_runtime_version,
            "subgraphs": self.subgraphs,
            "checks": [c.to_dict() for c in self.checks],
            "columns": COLUMNS,
        }


def io_rows(model: TFLiteModel, indices: tuple[int, ...]) -> list[dict[str, Any]]:
    """{name, tensor, shape, dtype, scale, zero_point} of inputs or outputs: what an
    application needs to quantize its inputs and read its outputs."""
    rows = []
    for idx in indices:
        tensor = model.tensors[idx]
        rows.append(
            {
                "name": model.io_name(idx),
                "tensor": tensor.name,
                "shape": list(tensor.shape),
                "dtype": tensor.dtype.lower(),
                "scale": tensor.quant.scales[0] if tensor.quant else None,
                "zero_point": tensor.quant.zero_points[0] if tensor.quant else None,
            }
        )
    return rows


def summarize(model: TFLiteModel) -> ModelInfo:
    """Figures for an already-parsed model."""
    counts: Counter[str] = Counter()
    macs: Counter[str] = Counter()
    for op in model.operators:
        counts[op.name] += 1
        macs[op.name] += op_macs(model, op)
    per_dtype: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    parameters = 0
    for tensor in model.tensors:
        row = per_dtype[tensor.dtype]
        row[0] += 1
        if tensor.is_constant:
            row[1] += tensor.bytes
            parameters += tensor.elements
        else:
            row[2] += tensor.bytes
    bound, peak = activation_lower_bound(model)
    ops = [OpSummary(name, counts[name], macs[name]) for name in counts]
    ops.sort(key=lambda o: (-o.macs, o.op))
    return ModelInfo(
        source=model.source,
        model_bytes=model.size_bytes,
        sha256=model.sha256,
        inputs=io_rows(model, model.inputs),
        outputs=io_rows(model, model.outputs),
        ops=ops,
        dtypes=[DtypeSummary(d.lower(), *v) for d, v in sorted(per_dtype.items())],
        parameters=parameters,
        parameter_bytes=sum(v[1] for v in per_dtype.values()),
        macs=sum(macs.values()),
        activation_lower_bound_bytes=bound,
        peak_op=f"#{peak} {model.operators[peak].name}" if model.operators else "-",
        min_runtime_version=model.min_runtime_version,
        subgraphs=model.subgraph_count,
    )


def inspect(path: str | Path, target: Any = None) -> ModelInfo:
    """Inspect a `.tflite` file; with `target`, also run every compatibility and budget check.

    `target` is a profile name or a :class:`~edgekit.targets.TargetProfile`.
    """
    model = load_tflite(path)
    info = summarize(model)
    if target is not None:
        info.checks = check_model(model, load_target(target))
    return info
