"""The deploy stages: profile → model → convert → export → check → verify.

Each stage is a function that returns a typed result; nothing here writes a bundle. The deploy
pipeline (:mod:`edgekit.pipeline`) calls them in order and assembles the report at the end;
`edgekit.keras.callbacks.TargetFitCheck` calls the same functions on a copy of a model in
training, so "does it fit" during training means what it means at deploy.

>>> from edgekit.stages import convert_deployed                                 # doctest: +SKIP
>>> deployed, converted = convert_deployed(loaded, load_target("cortex-m4"), x)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.checks import Check, check_model
from edgekit.errors import RuntimeFailure, ToolError
from edgekit.models import LoadedModel
from edgekit.targets import TargetProfile
from edgekit.tflite_model import TFLiteModel, read_tflite

# --- convert ---------------------------------------------------------------------------------


def convert_reference(loaded: LoadedModel) -> TFLiteModel:
    """The float32 `.tflite` every deployed model is compared with."""
    from edgekit.converters.tflite import convert

    converted = convert(loaded, "float32")
    return read_tflite(converted.data, f"{loaded.name}_float32.tflite")


def convert_deployed(
    loaded: LoadedModel, profile: TargetProfile, calibration: np.ndarray | None
) -> tuple[TFLiteModel, Any]:
    """(deployed model, ConvertedModel) with the profile's quantization settings."""
    from edgekit.converters.tflite import convert_for_target

    converted = convert_for_target(loaded, profile.quantization, calibration)
    model = read_tflite(converted.data, f"{loaded.name}_{converted.scheme}.tflite")
    return model, converted


def conversion_detail(converted: Any) -> str:
    """One line on how a model was converted, in the scheme's own terms."""
    size = f"{converted.model_bytes:,} bytes"
    if converted.scheme in ("int8", "int16x8"):
        source = (
            "ranges from quantization-aware training"
            if converted.calibration_samples == 0
            else f"{converted.calibration_samples} calibration samples"
        )
        per = "per-channel" if converted.per_channel else "per-tensor"
        return f"{size}, {source}, {per} weights, {converted.io_dtype} inputs/outputs"
    if converted.scheme == "float16":
        return f"{size}, float16 weights, float32 activations"
    if converted.scheme == "dynamic":
        return f"{size}, int8 weights, float32 activations (dynamic range)"
    return size


# --- TFLM ------------------------------------------------------------------------------------


@dataclass
class TflmExport:
    """A measured arena and the generated sources, or why there are none."""

    arena: Any = None  # runtimes.tflm.ArenaMeasurement
    sources: dict[str, str] = field(default_factory=dict)
    missing_ops: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.arena is not None and self.error is None


def export_tflm(model: TFLiteModel, name: str, sources: bool = True) -> TflmExport:
    """Measure the arena with TFLM and generate the C sources (`sources=False`: arena only)."""
    from edgekit.converters.tflm import tflm_sources
    from edgekit.runtimes.tflm import measure_arena, missing_ops

    lacking = missing_ops(model)
    if lacking:
        return TflmExport(missing_ops=lacking, error=f"TFLM has no kernel for {', '.join(lacking)}")
    try:
        arena = measure_arena(model)
    except ToolError as exc:
        return TflmExport(error=str(exc))
    files = tflm_sources(model, name, arena) if sources else {}
    return TflmExport(arena=arena, sources=files)


# --- check -----------------------------------------------------------------------------------


def check_stage(model: TFLiteModel, profile: TargetProfile, tflm: TflmExport | None) -> list[Check]:
    """Every static and budget check; a failed TFLM export is a failed `tflm_runs` check."""
    arena = tflm.arena.tensor_arena_bytes if tflm is not None and tflm.ok else None
    checks = check_model(model, profile, arena, measure=False)
    if tflm is not None and tflm.error and not tflm.missing_ops:
        checks.append(Check("tflm_runs", False, tflm.error))
    return checks


# --- Edge TPU --------------------------------------------------------------------------------


@dataclass
class EdgeTPUResult:
    analysis: Any  # runtimes.edgetpu.EdgeTPUAnalysis
    compiler: Any  # converters.edgetpu.CompilerRun

    def checks(self) -> list[Check]:
        run = self.compiler
        if run.output_model is not None and run.log and run.log.ops_on_cpu:
            return [
                Check("edgetpu_compiler_ops", False, f"compiler left {run.log.ops_on_cpu} ops on "
                      "the CPU")  # fmt: skip
            ]
        if run.ran and run.output_model is None:
            return [Check("edgetpu_compiler", False, run.detail)]
        return []

    def to_dict(self) -> dict[str, Any]:
        run = self.compiler
        return {
            "analysis": self.analysis.to_dict(),
            "compiler": {
                "ran": run.ran,
                "command": run.command,
                "detail": run.detail,
                "log": run.log.to_dict() if run.log else None,
            },
        }


def compile_edgetpu(model: TFLiteModel, model_file: Any, out_dir: Any, profile: TargetProfile):
    """Rule analysis, and the compiler when it is installed."""
    from edgekit.converters.edgetpu import run_compiler
    from edgekit.runtimes.edgetpu import analyze

    analysis = analyze(model, profile.memory.parameter_cache_bytes)
    return EdgeTPUResult(analysis, run_compiler(model_file, out_dir))


# --- verify ----------------------------------------------------------------------------------


def verify_deployed(
    deployed: TFLiteModel,
    reference: TFLiteModel | None,
    data: Any,
    profile: TargetProfile,
    tflm: TflmExport | None = None,
    task: str | None = None,
) -> tuple[Any, list[Check]]:
    """(VerificationResult or None, checks) on the target's runtime.

    A runtime that crashes, hangs or refuses the model is a failed `verification_runs` check;
    an exception from edgekit's own code is a bug and propagates.
    """
    import os

    from edgekit.verify import ADVICE, COLLAPSE_AGREEMENT, device_runtime, verify

    runtime = device_runtime(profile)
    if runtime.name == "tflm" and (tflm is None or not tflm.ok):
        from edgekit.verify import DeviceRuntime

        runtime = DeviceRuntime(
            "litert",
            "reference",
            "LiteRT reference kernels",
            "TFLM could not run the model, so LiteRT's reference kernels (which TFLM's mirror) "
            "stand in for it",
        )
    try:
        result = verify(
            deployed,
            data,
            reference=reference,
            runtime=runtime,
            task=task,
            tflm_arena_bytes=tflm.arena.tensor_arena_bytes if tflm and tflm.ok else None,
            threads=min(profile.threads, os.cpu_count() or 1),
        )
    except RuntimeFailure as exc:
        return None, [Check("verification_runs", False, str(exc))]
    checks = []
    for out in result.outputs:
        if out.top1_agreement is None:
            continue
        ok = out.top1_agreement >= COLLAPSE_AGREEMENT
        detail = (
            f"{out.name}: {100 * out.top1_agreement:.1f} % of {result.samples} samples agree with "
            f"the float model (collapse below {100 * COLLAPSE_AGREEMENT:.0f} %)"
        )
        if not ok:
            detail += f"; {ADVICE}"
        checks.append(Check("top1_agreement", ok, detail))
    if result.kernel_check is not None:
        checks.append(Check("tflm_matches_litert", result.kernel_check.ok,
                            result.kernel_check.detail))  # fmt: skip
    return result, checks
