"""The deploy report, assembled once from the stage results.

Stages return typed results and never touch the report; :func:`assemble` is the one place
that turns them into a :class:`~edgekit.report.DeployReport`: which metric comes from which
stage, and the notes worth reading.

>>> from edgekit.assemble import StageResults, assemble                         # doctest: +SKIP
>>> assemble(results, steps).metrics.model_bytes                                 # doctest: +SKIP
23712
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from edgekit import __version__, plotting
from edgekit import metrics as M
from edgekit.checks import Check
from edgekit.records import from_json
from edgekit.report import (
    Artifact,
    CompilerSection,
    DataSection,
    DataSource,
    DeployReport,
    EdgeTPUSection,
    HostLatency,
    Metrics,
    ModelSection,
    NpuSection,
    QuantizationSection,
    Step,
    TflmSection,
)
from edgekit.stages.analysis import LayerAnalysis
from edgekit.stages.convert import Conversion
from edgekit.stages.edgetpu import EdgeTPUResult
from edgekit.stages.facts import ModelFacts, SparseSize
from edgekit.stages.firmware import ARENA_NOTE as FIRMWARE_ARENA_NOTE
from edgekit.stages.firmware import Firmware
from edgekit.stages.harness import Harness
from edgekit.stages.load import Inputs
from edgekit.stages.npu import NpuResult
from edgekit.stages.tflm import ARENA_NOTE, TflmExport
from edgekit.stages.verify import Verification
from edgekit.targets import TargetProfile


@dataclass
class StageResults:
    """What each stage returned, gathered while the pipeline runs (None: did not run)."""

    profile: TargetProfile
    inputs: Inputs
    conversion: Conversion
    facts: ModelFacts
    sparse: SparseSize | None = None
    tflm: TflmExport | None = None
    edgetpu: EdgeTPUResult | None = None
    npu: NpuResult | None = None
    checks: tuple[Check, ...] = ()
    verification: Verification | None = None
    latency: HostLatency | None = None
    quantization: QuantizationSection | None = None
    layers: LayerAnalysis | None = None
    harness: Harness | None = None
    firmware: Firmware | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the pipeline's own (steps not run)


def assemble(
    results: StageResults, steps: list[Step], bundle: bool = True, found_by: Any = None
) -> DeployReport:
    """The report of a deploy, from its stage results and steps; `bundle=False`: the files
    were not kept, so the report lists none. `found_by`: how `edgekit fit` found the model."""
    r = results
    loaded = r.inputs.loaded
    checks = r.checks + (r.verification.checks if r.verification else ())
    checks += r.firmware.checks if r.firmware else ()
    report = DeployReport(
        edgekit_version=__version__,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        model=ModelSection(
            loaded.name, loaded.source, loaded.kind, loaded.writer or None, loaded.unsafe
        ),
        target=r.profile,
        io=r.facts.io,
        ops=_placed_ops(r),
        metrics=_metrics(r),
        verification=r.verification.result if r.verification else None,
        quantization=_quantization(r),
        checks=checks,
        steps=tuple(steps),
        artifacts=tuple(r.artifacts) if bundle else (),
        data=_data(r),
        tflm=_tflm(r),
        edgetpu=_edgetpu(r.edgetpu),
        npu=from_json(NpuSection, r.npu.to_dict()) if r.npu else None,
        bench=r.harness.section if r.harness else None,
        fit=found_by,
        notes=tuple(_notes(r)),
    )
    return replace(report, status="deployed" if report.ok else "failed")


def _metrics(r: StageResults) -> Metrics:
    facts, conversion = r.facts, r.conversion
    figures: dict[str, Any] = {
        M.MODEL_BYTES: facts.model_bytes,
        M.PARAMETERS: facts.parameters,
        M.MACS: facts.macs,
        M.ACTIVATION_LOWER_BOUND_BYTES: facts.activation_lower_bound_bytes,
        M.WEIGHT_SPARSITY: facts.weight_sparsity,
        M.MODEL_GZIP_BYTES: facts.gzip_bytes,
        M.MODEL_SPARSE_BYTES: r.sparse.bytes if r.sparse else None,
        M.FLOAT_MODEL_BYTES: conversion.reference.size_bytes if conversion.reference else None,
        M.HOST_LATENCY_MS: r.latency.p50_ms if r.latency else None,
        M.ACCURACY_MEANINGFUL: not _random_calibration(r),
    }
    arena = r.tflm.arena if r.tflm else None
    if arena is not None:
        figures[M.TENSOR_ARENA_BYTES] = arena.tensor_arena_bytes
        figures[M.TENSOR_ARENA_MINIMUM_BYTES] = arena.minimum_bytes
    result = r.verification.result if r.verification else None
    if result is not None:
        primary = result.primary
        if primary is not None:
            figures.update(
                {
                    M.FLOAT_ACCURACY: primary.float_accuracy,
                    M.DEPLOYED_ACCURACY: primary.deployed_accuracy,
                    M.TOP1_AGREEMENT: primary.top1_agreement,
                    M.OUTPUT_SQNR_DB: primary.sqnr_db,
                    M.LOGITS_SQNR_DB: primary.logits_sqnr_db,
                    M.OUTPUT_MAX_ABS_ERROR: primary.max_abs_error,
                    M.OUTPUT_COSINE_SIMILARITY: primary.cosine_similarity,
                    M.QAT_AGREEMENT: primary.qat_agreement,
                }
            )
        figures[M.VERIFIED_SAMPLES] = result.samples
        figures[M.VALIDATION_SAMPLES] = result.validation_samples
        figures[M.OPTIMIZED_VS_REFERENCE_STEPS] = result.optimized_vs_reference_steps
        if result.kernel_check is not None:
            figures[M.TFLM_MAX_DIFF_STEPS] = result.kernel_check.max_diff_steps
    if r.firmware is not None:
        figures.update(r.firmware.figures)
        needed = r.firmware.figures.get(M.TENSOR_ARENA_32BIT_BYTES)
        if arena is not None and needed and needed > arena.tensor_arena_bytes:
            figures[M.TENSOR_ARENA_BYTES] = needed  # model_ops.h was raised to it
    return Metrics(**figures)


def _random_calibration(r: StageResults) -> bool:
    return r.inputs.calibration is not None and r.inputs.calibration.source == "random"


def _placed_ops(r: StageResults) -> tuple:
    if r.npu is not None and r.npu.run.ok:
        placement = r.npu.placements(r.conversion.deployed)
    elif r.edgetpu is not None:
        placement = r.edgetpu.placements()
    else:
        return r.facts.ops
    return tuple(replace(op, placement=placement.get(op.index)) for op in r.facts.ops)


def _quantization(r: StageResults) -> QuantizationSection | None:
    if r.quantization is None or r.layers is None:
        return r.quantization
    return replace(r.quantization, analysis=r.layers.analysis)


def _data(r: StageResults) -> DataSection:
    calib, val = r.inputs.calibration, r.inputs.validation
    return DataSection(
        calibration=None if calib is None else DataSource(calib.source, calib.n),
        validation=DataSource(val.source, val.n, val.y is not None),
        host_latency=r.latency,
    )


def _tflm(r: StageResults) -> TflmSection | None:
    arena = r.tflm.arena if r.tflm else None
    if arena is None:
        return None
    section = TflmSection(arena_source=arena.allocator, arena_note=ARENA_NOTE)
    f = r.firmware
    if f is None or f.elf is None:
        return section
    return replace(
        section,
        arena_note=FIRMWARE_ARENA_NOTE,
        arena_32bit_source=f.arena_32bit_source,
        elf_text_data_bss_arena=f.elf_text_data_bss_arena,
        stack_high_water_bytes=f.stack_high_water_bytes,
        memory_source=f.memory_source,
        instructions_source=f.instructions_source,
        firmware=f"firmware/{f.elf_name} ({f.built_with})",
    )


def _edgetpu(result: EdgeTPUResult | None) -> EdgeTPUSection | None:
    if result is None:
        return None
    run = result.compiler
    compiler = CompilerSection(
        run.ran, tuple(run.command), run.detail, run.log.to_dict() if run.log else None
    )
    return EdgeTPUSection(result.analysis.to_dict(), compiler)


def _notes(r: StageResults) -> list[str]:
    notes = list(r.inputs.notes)
    if r.conversion.power_of_two_ops:
        notes.append(
            f"{r.conversion.power_of_two_ops} ops have power-of-two weights (int8 0, ±1, ±2, "
            "..., ±64): a shift-only kernel could drop their multiplies; TFLite's kernels "
            "(LiteRT, XNNPACK, TFLM, CMSIS-NN) still multiply, so the gain here is size "
            f"(gzip {r.facts.gzip_bytes:,} B)"
        )
    result = r.verification.result if r.verification else None
    if result is not None:
        primary = result.primary
        if primary is not None and primary.qat_agreement is not None:
            notes.append(
                f"QAT agreement: {100 * primary.qat_agreement:.1f} % of outputs within one "
                "int8 step of the QAT model's simulated output"
            )
        notes += result.notes
    if r.layers is not None and r.layers.note:
        notes.append(r.layers.note)
    if r.harness is not None and r.harness.note:
        notes.append(r.harness.note)
    if r.npu is not None and r.npu.run.ok and r.npu.chart is None:
        notes.append(f"Vela's cycles chart not drawn: {plotting.MISSING}")
    if r.npu is not None and r.firmware is not None and r.firmware.elf is not None:
        notes.append(
            "the firmware figures (instructions, 32-bit arena, flash) are the int8 model on the "
            f"{r.profile.firmware.cpu if r.profile.firmware else 'CPU'} alone, the CPU-only "
            "fallback: the NPU is not simulated here, and Vela's figures are its estimates"
        )
    return notes + r.notes
