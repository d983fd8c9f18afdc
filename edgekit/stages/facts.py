"""The model-facts stage: inputs/outputs, ops, sizes and sparsity of the deployed model.

>>> from edgekit.stages.facts import model_facts                                 # doctest: +SKIP
>>> model_facts(deployed).macs                                                   # doctest: +SKIP
120832
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

from edgekit.converters.tflite import convert
from edgekit.data import Dataset
from edgekit.errors import ToolError
from edgekit.graph import op_macs, weight_sparsity
from edgekit.inspection import io_rows, summarize
from edgekit.models import LoadedModel
from edgekit.records import from_json
from edgekit.report import IOSection, OpRow
from edgekit.stages.convert import Conversion
from edgekit.tflite_model import TFLiteModel

SPARSE_FORMAT_THRESHOLD = 0.3  # weight sparsity from which the sparse format is worth a look


@dataclass(frozen=True)
class ModelFacts:
    """What an application needs (inputs and outputs), the ops, and the size figures."""

    io: IOSection
    ops: tuple[OpRow, ...]
    model_bytes: int
    parameters: int
    macs: int
    activation_lower_bound_bytes: int
    weight_sparsity: float
    gzip_bytes: int


def model_facts(model: TFLiteModel) -> ModelFacts:
    """Inputs/outputs, ops (with MACs), size, gzip size and weight sparsity of `model`."""
    info = summarize(model)
    io = {"inputs": io_rows(model, model.inputs), "outputs": io_rows(model, model.outputs)}
    ops = tuple(OpRow(op.index, op.name, op.version, op_macs(model, op)) for op in model.operators)
    return ModelFacts(
        io=from_json(IOSection, io),
        ops=ops,
        model_bytes=info.model_bytes,
        parameters=info.parameters,
        macs=info.macs,
        activation_lower_bound_bytes=info.activation_lower_bound_bytes,
        weight_sparsity=round(weight_sparsity(model), 4),
        gzip_bytes=len(gzip.compress(model.data, compresslevel=9)),
    )


@dataclass(frozen=True)
class SparseSize:
    """The size in TFLite's sparse format, or why it is not known."""

    bytes: int | None
    detail: str


def wants_sparse_size(facts: ModelFacts, conversion: Conversion) -> bool:
    """Sparse enough for the sparse format to matter, and converted here (so it can be again)."""
    return conversion.converted is not None and facts.weight_sparsity >= SPARSE_FORMAT_THRESHOLD


def sparse_size_hint(facts: ModelFacts) -> str:
    return (
        f"weights are {100 * facts.weight_sparsity:.0f} % zeros: --sparse-size also reports the "
        "size in TFLite's sparse format (one more conversion)"
    )


def sparse_size(
    loaded: LoadedModel, conversion: Conversion, calibration: Dataset | None
) -> SparseSize:
    """Convert once more with EXPERIMENTAL_SPARSITY, for the size only (~9 s on a
    220k-parameter MobileNet); the bundle keeps the dense model, which every runtime runs."""
    converted = conversion.converted
    assert converted is not None  # wants_sparse_size said so
    try:
        sparse = convert(
            loaded,
            converted.scheme,
            io_dtype=converted.io_dtype,
            per_channel=converted.per_channel,
            calibration=None if calibration is None else calibration.x,
            sparse=True,
        )
    except ToolError as exc:
        return SparseSize(None, f"not available: {exc}")
    return SparseSize(
        sparse.model_bytes,
        f"{sparse.model_bytes:,} bytes with EXPERIMENTAL_SPARSITY (size only; the bundle keeps "
        "the dense model, which every runtime runs)",
    )
