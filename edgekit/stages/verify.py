"""The verify stage: the deployed model on the target's runtime against the float model.

>>> from edgekit.stages.verify import verify_deployed                            # doctest: +SKIP
>>> verify_deployed(deployed, reference, validation, profile).result.runtime     # doctest: +SKIP
'TFLM (reference kernels)'
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgekit import metrics as M
from edgekit.checks import Check
from edgekit.data import Dataset
from edgekit.errors import RuntimeFailure
from edgekit.stages.tflm import TflmExport
from edgekit.targets import TargetProfile
from edgekit.tflite_model import TFLiteModel
from edgekit.verify import (
    ADVICE,
    COLLAPSE_AGREEMENT,
    DeviceRuntime,
    VerificationResult,
    device_runtime,
    verify,
)


@dataclass(frozen=True)
class Verification:
    """The comparison (None when the runtime could not run the model) and its checks."""

    result: VerificationResult | None
    checks: tuple[Check, ...]

    @property
    def detail(self) -> str:
        if self.result is None:
            return self.checks[0].detail
        return f"{self.result.samples} samples on {self.result.runtime}"


def verify_deployed(
    deployed: TFLiteModel,
    reference: TFLiteModel | None,
    data: Dataset,
    profile: TargetProfile,
    tflm: TflmExport | None = None,
    task: str | None = None,
    qat: bool = False,
) -> Verification:
    """The comparison on the target's runtime, and its checks (`qat`: see `verify`).

    A runtime that crashes, hangs or refuses the model is a failed `verification_runs` check;
    an exception from edgekit's own code is a bug and propagates.
    """
    runtime = device_runtime(profile)
    if runtime.name == "tflm" and (tflm is None or not tflm.ok):
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
            qat=qat,
        )
    except RuntimeFailure as exc:
        return Verification(None, (Check("verification_runs", False, str(exc)),))
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
        checks.append(Check(M.TOP1_AGREEMENT, ok, detail))
    if result.kernel_check is not None:
        checks.append(
            Check("tflm_matches_litert", result.kernel_check.ok, result.kernel_check.detail)
        )
    return Verification(result, tuple(checks))
