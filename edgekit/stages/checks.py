"""The check stage: static shapes, precision, IO types, runtime ops and budgets.

>>> from edgekit.stages.checks import check_stage                                # doctest: +SKIP
>>> [c.name for c in check_stage(deployed, profile, tflm, None) if not c.ok]     # doctest: +SKIP
[]
"""

from __future__ import annotations

from edgekit.checks import Check, check_model
from edgekit.stages.edgetpu import EdgeTPUResult
from edgekit.stages.npu import NpuResult
from edgekit.stages.tflm import TflmExport
from edgekit.targets import TargetProfile
from edgekit.tflite_model import TFLiteModel


def check_stage(
    model: TFLiteModel,
    profile: TargetProfile,
    tflm: TflmExport | None = None,
    edgetpu: EdgeTPUResult | None = None,
    npu: NpuResult | None = None,
) -> tuple[Check, ...]:
    """Every static and budget check; a failed TFLM export is a failed `tflm_runs` check, and
    the Edge TPU compiler's verdict and Vela's (Ethos-U targets) join them."""
    arena = tflm.arena.tensor_arena_bytes if tflm is not None and tflm.arena is not None else None
    checks = check_model(model, profile, arena, measure=False)
    if tflm is not None and tflm.error and not tflm.missing_ops:
        checks.append(Check("tflm_runs", False, tflm.error))
    if edgetpu is not None:
        checks += edgetpu.checks()
    if npu is not None:
        checks += npu.checks()
    return tuple(checks)
