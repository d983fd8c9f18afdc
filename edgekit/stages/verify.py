"""The verify stage: the deployed model on the target's runtime against the float model.

>>> from edgekit.stages.verify import verify_deployed                            # doctest: +SKIP
>>> verify_deployed(deployed, reference, validation, profile).result.runtime     # doctest: +SKIP
'TFLM (reference kernels)'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from edgekit import metrics as M
from edgekit.checks import GOAL_CHECK, Check
from edgekit.data import Dataset
from edgekit.errors import RuntimeFailure
from edgekit.metrics import format_value
from edgekit.quantization.search import Goal
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

GOAL_ADVICE = (
    "calibration data like what the model will see (and more of it), a lower goal, or "
    "quantization-aware training (edgekit.keras.quantize_model)"
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


def goal_check(goal: Goal, verification: Verification, search: dict[str, Any] | None) -> Check:
    """The mixed-precision goal judged where it can fail: on the validation data, at the tensor
    the search scored (the logits when the model ends in softmax, else the output), and on
    the calibration half the search held out (`search`: the search's `mixed` record). It
    holds only where both hold: the report never says "met" where verification shows
    otherwise.

    >>> from edgekit.quantization.search import Goal                             # doctest: +SKIP
    >>> goal_check(Goal(min_sqnr_db=24), verification, mixed).detail            # doctest: +SKIP
    'goal SQNR ≥ 24 dB: not met by verification on 200 samples: 23.2 dB at logits; ...'
    """
    want = f"goal {goal.describe()}"
    result = verification.result
    out = None if result is None else result.primary
    if out is None:
        return Check(GOAL_CHECK, False, f"{want}: not judged: verification did not run")
    at_logits = out.logits_sqnr_db is not None
    sqnr, where = (out.logits_sqnr_db, "logits") if at_logits else (out.sqnr_db, out.name)
    agreement = out.top1_agreement
    reached = [f"{format_value(sqnr, 'db')} at {where}"]
    if goal.max_agreement_drop is not None:
        reached.append(
            "top-1 agreement not measured (no decisive sample)"
            if agreement is None
            else f"{100 * agreement:.1f} % top-1 agreement"
        )
    ok = goal.met(sqnr, 1.0 if agreement is None else agreement)
    detail = f"{want}: {'met' if ok else 'not met'} by verification on {result.samples} samples: "
    detail += ", ".join(reached)
    if search is not None:
        held = format_value(search.get("held_out_final_sqnr_db"), "db")
        if not search.get("met"):
            ok = False
            detail += f"; not met on the calibration samples the search held out ({held})"
        else:
            detail += f"; met on the calibration samples the search held out ({held})"
    if not ok:
        detail += "; " + GOAL_ADVICE
    return Check(GOAL_CHECK, ok, detail)
