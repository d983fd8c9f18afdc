"""The Edge TPU stage: edgekit's rule analysis, and `edgetpu_compiler` when it is installed.

>>> from edgekit.stages.edgetpu import compile_edgetpu                           # doctest: +SKIP
>>> compile_edgetpu(deployed, model_file, out_dir, profile).analysis.fits_cache  # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.checks import Check
from edgekit.converters.edgetpu import CompilerRun, run_compiler
from edgekit.runtimes.edgetpu import EdgeTPUAnalysis, analyze
from edgekit.targets import TargetProfile
from edgekit.tflite_model import TFLiteModel


@dataclass(frozen=True)
class EdgeTPUResult:
    """The rule analysis, the compiler run, and the compiler's files (model, logs)."""

    analysis: EdgeTPUAnalysis
    compiler: CompilerRun
    logs: tuple[Path, ...] = ()

    def checks(self) -> list[Check]:
        run = self.compiler
        if run.output_model is not None and run.log and run.log.ops_on_cpu:
            detail = f"compiler left {run.log.ops_on_cpu} ops on the CPU"
            return [Check("edgetpu_compiler_ops", False, detail)]
        if run.ran and run.output_model is None:
            return [Check("edgetpu_compiler", False, run.detail)]
        return []

    def placements(self) -> dict[int, str]:
        """Op index → "tpu" or "cpu"."""
        return {p.index: ("tpu" if p.on_tpu else "cpu") for p in self.analysis.placements}


def compile_edgetpu(
    model: TFLiteModel, model_file: Path, out_dir: Path, profile: TargetProfile
) -> EdgeTPUResult:
    """Rule analysis, and the compiler when it is installed, writing into `out_dir`."""
    analysis = analyze(model, profile.memory.parameter_cache_bytes)
    run = run_compiler(model_file, out_dir)
    return EdgeTPUResult(analysis, run, tuple(sorted(out_dir.glob("*.log"))))
