"""The deploy stages, one module each, each returning a typed, frozen result.

The data flows one way, and the modules are named after the stages:

- :mod:`~edgekit.stages.load` → :class:`~edgekit.stages.load.Inputs` (model and data)
- :mod:`~edgekit.stages.convert` → :class:`~edgekit.stages.convert.Conversion` (float32
  reference and deployed model; edgekit's int8 engine)
- :mod:`~edgekit.stages.facts` → :class:`~edgekit.stages.facts.ModelFacts` (IO, ops, sizes)
- :mod:`~edgekit.stages.tflm` → :class:`~edgekit.stages.tflm.TflmExport` (arena, C sources)
- :mod:`~edgekit.stages.edgetpu` → :class:`~edgekit.stages.edgetpu.EdgeTPUResult`
- :mod:`~edgekit.stages.checks` → checks against the profile
- :mod:`~edgekit.stages.verify` → :class:`~edgekit.stages.verify.Verification`
- :mod:`~edgekit.stages.latency` → :class:`~edgekit.report.HostLatency`
- :mod:`~edgekit.stages.analysis` → the engine's facts and the per-layer analysis
- :mod:`~edgekit.stages.harness` → :class:`~edgekit.stages.harness.Harness`
- :mod:`~edgekit.stages.firmware` → :class:`~edgekit.stages.firmware.Firmware` (QEMU)

No stage writes into the report: :mod:`edgekit.pipeline` runs them and
:mod:`edgekit.assemble` builds the report from their results, once.

>>> from edgekit.stages import convert_deployed, export_tflm                    # doctest: +SKIP
>>> deployed, converted = convert_deployed(loaded, load_target("cortex-m4"), x)  # doctest: +SKIP
>>> export_tflm(deployed, "model").arena.tensor_arena_bytes                      # doctest: +SKIP
22544
"""

from edgekit.stages.checks import check_stage
from edgekit.stages.convert import (
    Conversion,
    QuantOptions,
    check_qat_target,
    conversion_detail,
    convert_deployed,
    convert_reference,
    mixed_precision_kind,
    quantize_float_model,
)
from edgekit.stages.edgetpu import EdgeTPUResult, compile_edgetpu
from edgekit.stages.tflm import TflmExport, export_tflm
from edgekit.stages.verify import Verification, verify_deployed

__all__ = [
    "Conversion",
    "EdgeTPUResult",
    "QuantOptions",
    "TflmExport",
    "Verification",
    "mixed_precision_kind",
    "check_qat_target",
    "check_stage",
    "compile_edgetpu",
    "conversion_detail",
    "convert_deployed",
    "convert_reference",
    "export_tflm",
    "quantize_float_model",
    "verify_deployed",
]
