"""`analyze()`: quantize a model for a target with edgekit's engine and analyse every layer
(what `edgekit analyze` runs). It uses the deploy's load and convert stages.

>>> from edgekit.analyze import analyze                                         # doctest: +SKIP
>>> report = analyze("model.keras", "cortex-m4", calibration="calib.npy")      # doctest: +SKIP
>>> report.analysis.ranked()[0].op                                             # doctest: +SKIP
'CONV_2D'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.data import MAX_VALIDATION_SAMPLES, MIN_CALIBRATION_SAMPLES, load_dataset
from edgekit.errors import UsageError
from edgekit.files import check_replaceable
from edgekit.models import load_model
from edgekit.quantization.analysis import Analysis, analyze_models
from edgekit.records import to_json
from edgekit.report import QuantizationSection
from edgekit.stages.analysis import engine_facts, requantizer
from edgekit.stages.convert import (
    QuantOptions,
    convert_deployed,
    convert_reference,
    quantize_float_model,
    quantizes_tflite,
)
from edgekit.targets import load_target


@dataclass
class AnalysisReport:
    """What `edgekit analyze` found for one model on one target."""

    model: str
    target: str
    engine: QuantizationSection
    analysis: Analysis
    chart: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "target": self.target,
            "engine": to_json(self.engine),
            "analysis": self.analysis.to_dict(),
            "chart": str(self.chart) if self.chart else None,
        }


def analyze(
    model: Any,
    target: Any,
    *,
    calibration: Any,
    validation: Any = None,
    calibration_method: str = "default",
    bias_correction: bool = True,
    rewrite: bool = True,
    chart: str | Path | None = None,
    force: bool = False,
    samples: int = 64,
    on_progress: Callable[[str], None] | None = None,
    min_calibration_samples: int = MIN_CALIBRATION_SAMPLES,
) -> AnalysisReport:
    """Quantize `model` for `target` with edgekit's engine and analyse every layer.

    Sensitivity (the output SQNR gained if only that op stayed in float) is measured for every
    op. `chart` writes the PNG there (`force` replaces an existing file there). Calibration
    data with fewer than `min_calibration_samples` inputs is refused.
    """
    if chart is not None:
        if Path(chart).suffix.lower() != ".png":
            raise UsageError(f"chart {chart}: the chart is a PNG; name it *.png")
        check_replaceable(chart, force)  # before the slow part
    profile = load_target(target)
    if profile.quantization.scheme != "int8":
        raise UsageError(
            f"target {profile.name} quantizes to {profile.quantization.scheme}; the analysis is "
            "for int8 targets"
        )
    progress = on_progress or (lambda message: None)
    progress("loading the model")
    loaded = load_model(model)
    if loaded.is_qat:
        raise UsageError(f"{loaded.source}: a QAT model brings its own ranges; nothing to analyse")
    calib = load_dataset(
        calibration,
        loaded.inputs,
        "calibration",
        dtype=loaded.input_dtype,
        min_samples=min_calibration_samples,
    )
    data = calib
    if validation is not None:
        data = load_dataset(
            validation,
            loaded.inputs,
            "validation",
            MAX_VALIDATION_SAMPLES,
            dtype=loaded.input_dtype,
        )
    options = QuantOptions(calibration_method, bias_correction, rewrite)
    progress("quantizing with edgekit's engine")
    if loaded.is_tflite:
        if not quantizes_tflite(loaded, profile):
            raise UsageError(f"{loaded.source}: already quantized; analyse its float model")
        _, converted = quantize_float_model(loaded.tflite, profile, calib.x, options)
    else:
        reference = convert_reference(loaded)
        _, converted = convert_deployed(loaded, profile, calib.x, options, reference)
    engine = converted.quantization
    progress(f"analysing every layer on {min(samples, data.n)} samples")
    result = analyze_models(
        engine.calibrated,
        engine.data,
        data.x,
        sensitivity=True,
        requantize=requantizer(engine, profile, loaded.worker),
        samples=samples,
    )
    written = None
    if chart is not None:
        written = result.chart(chart, f"{loaded.name} → {profile.name}", force=force)
    return AnalysisReport(loaded.name, profile.name, engine_facts(engine), result, written)
