"""The analysis stage: how edgekit's engine made the int8 model, what keeping ops in float
costs, and the per-layer analysis (SQNR and sensitivity of each op) with its chart.

>>> from edgekit.stages.analysis import engine_facts                             # doctest: +SKIP
>>> engine_facts(conversion.engine, profile).method                              # doctest: +SKIP
'percentile:99.99'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import metrics as M
from edgekit import plotting
from edgekit.errors import EdgekitError, RuntimeFailure
from edgekit.isolation import Worker
from edgekit.quantization.analysis import analyze_models
from edgekit.quantization.engine import QuantizationResult
from edgekit.report import QuantizationSection
from edgekit.runtimes.tflm import measure_arena
from edgekit.runtimes.timing import host_latencies
from edgekit.stages import convert
from edgekit.targets import TargetProfile
from edgekit.tflite_model import read_tflite

ANALYSIS_SENSITIVITY_LAYERS = 3  # in a deploy; `edgekit analyze` measures every layer


def engine_facts(
    engine: QuantizationResult, profile: TargetProfile | None = None
) -> QuantizationSection:
    """The engine's settings and timings; with `profile`, what ops kept in float cost."""
    cost = None
    if engine.all_int8 and profile is not None:
        cost = mixed_precision_cost(engine.all_int8, engine.data, profile)
    return QuantizationSection(
        method=engine.method,
        calibration_samples=engine.calibration_samples,
        bias_corrected_ops=engine.bias_corrected_ops,
        rounding=None if engine.rounding is None else engine.rounding.to_dict(),
        rewrites=tuple(engine.rewrites),
        kept_in_float=tuple(engine.denylisted),
        in_int16=tuple(engine.int16_tensors),
        seconds={k: round(v, 3) for k, v in engine.seconds.items()},
        search=engine.search,
        mixed_precision_cost=cost,
    )


def requantizer(
    engine: QuantizationResult, profile: TargetProfile, worker: Worker | None
) -> Callable[[tuple[str, ...]], bytes]:
    """`denylisted names → int8 bytes` with the engine's ranges: the sensitivity probe."""
    return convert.requantizer(
        engine.calibrated,
        engine.statistics,
        engine.method,
        profile.quantization,
        tuple(engine.denylisted),
        convert.worker_for(worker),
    )


def mixed_precision_cost(all_int8: bytes, mixed: bytes, profile: TargetProfile) -> dict:
    """What keeping ops in float costs: bytes, the TFLM arena, LiteRT latency (this host)."""
    cost: dict[str, Any] = {M.MODEL_BYTES: [len(all_int8), len(mixed)]}
    if profile.is_mcu:
        try:
            cost[M.TENSOR_ARENA_BYTES] = [
                measure_arena(read_tflite(d)).tensor_arena_bytes for d in (all_int8, mixed)
            ]
        except EdgekitError as exc:
            cost[M.TENSOR_ARENA_BYTES] = f"not measured: {exc}"
    try:
        latencies = host_latencies([all_int8, mixed], delegate="none")
        cost["litert_p50_ms"] = [round(value, 4) for value in latencies]
    except (EdgekitError, KeyError, TypeError) as exc:
        cost["litert_p50_ms"] = f"not measured: {exc}"
    cost["order"] = ["all int8", "mixed"]
    return cost


@dataclass(frozen=True)
class LayerAnalysis:
    """The per-layer analysis (`Analysis.to_dict()`), its chart, or why there is none."""

    analysis: dict[str, Any] | None
    chart: Path | None
    detail: str
    note: str | None = None


def analyze_layers(
    engine: QuantizationResult,
    validation: np.ndarray | dict[str, np.ndarray],
    profile: TargetProfile,
    worker: Worker | None,
    chart: Path,
    title: str,
) -> LayerAnalysis:
    """Every op's SQNR, the sensitivity of the least accurate few, and the chart at `chart`
    (skipped with a note when matplotlib is missing: `pip install .` has no `[plot]`)."""
    try:
        result = analyze_models(
            engine.calibrated,
            engine.data,
            validation,
            sensitivity=ANALYSIS_SENSITIVITY_LAYERS,
            requantize=requantizer(engine, profile, worker),
        )
    except RuntimeFailure as exc:
        return LayerAnalysis(None, None, f"not run: {exc}")
    written, note = None, None
    if plotting.available():
        written = result.chart(chart, title)
    else:  # the table in report.md still has it all
        note = f"per-layer analysis chart not drawn: {plotting.MISSING}"
    worst = result.ranked()[0] if result.layers else None
    detail = (
        f"{len(result.layers)} ops on {result.samples} samples; logits/output "
        f"{_db(result.output_sqnr_db)}, per-element weights bound "
        f"{_db(result.per_element_bound_db)}"
        + (f"; most sensitive: op #{worst.index} {worst.op}" if worst else "")
    )
    return LayerAnalysis(result.to_dict(), written, detail, note)


def with_analysis(section: QuantizationSection, layers: LayerAnalysis) -> QuantizationSection:
    return replace(section, analysis=layers.analysis)


def _db(value: float | None) -> str:
    return "exact" if value is None else f"{value:.1f} dB"
