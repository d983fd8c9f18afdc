"""The convert stage: the float32 reference and the deployed model (int8 by edgekit's engine,
or the TFLite converter's other schemes).

>>> from edgekit.stages.convert import convert_deployed                        # doctest: +SKIP
>>> deployed, converted = convert_deployed(loaded, load_target("cortex-m4"), x)  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgekit.checks import model_precision
from edgekit.converters.tflite import ConvertedModel, convert, convert_for_target
from edgekit.data import Dataset, as_float32, sample_count, take
from edgekit.errors import UsageError
from edgekit.isolation import Worker
from edgekit.models import LoadedModel, conversion_worker
from edgekit.options import DeployOptions
from edgekit.quantization import int16
from edgekit.quantization.engine import (
    DEFAULT_METHOD,
    QuantizationResult,
    correct_biases,
    quantize_in_worker,
    quantize_int8,
    ranges_for,
    with_ranges,
)
from edgekit.quantization.equalize import equalize as equalize_model
from edgekit.quantization.power_of_two import snap_power_of_two
from edgekit.quantization.search import (
    Configuration,
    Goal,
    best_configuration,
    halves,
    mixed_precision,
)
from edgekit.runtimes.edgetpu import SUPPORTED_OPS
from edgekit.runtimes.tflm import resolver_method
from edgekit.targets import Quantization, TargetProfile
from edgekit.tflite_edit import average_pool_to_mean
from edgekit.tflite_model import TFLiteModel, read_tflite
from edgekit.verify import run_model

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Conversion:
    """The deployed model, the float model it is verified against, and how it was made.

    `scheme` names the deployed file (`<model>_<scheme>.tflite`): the profile's scheme, or
    "as-given" for a `.tflite` deployed as it is.
    """

    deployed: TFLiteModel
    reference: TFLiteModel | None
    scheme: str
    converted: ConvertedModel | None = None

    @property
    def engine(self) -> QuantizationResult | None:
        """edgekit's engine result (quantization.engine), when the engine made the model."""
        return None if self.converted is None else self.converted.quantization

    @property
    def power_of_two_ops(self) -> int:
        return 0 if self.converted is None else self.converted.power_of_two_ops

    @property
    def detail(self) -> str:
        if self.converted is None:
            return f"{self.deployed.size_bytes:,} bytes"
        return conversion_detail(self.converted)


def quantizes_tflite(loaded: LoadedModel, profile: TargetProfile) -> bool:
    """A float `.tflite` to an int8 target: edgekit's engine quantizes it (no Keras needed)."""
    return (
        loaded.is_tflite
        and profile.quantization.scheme == "int8"
        and model_precision(loaded.tflite) == "float32"
    )


def convert_reference(loaded: LoadedModel) -> TFLiteModel:
    """The float32 `.tflite` every deployed model is compared with."""
    converted = convert(loaded, "float32")
    return read_tflite(converted.data, f"{loaded.name}_float32.tflite")


@dataclass(frozen=True)
class QuantOptions:
    """How post-training int8 is made (see :mod:`edgekit.quantization.engine`).

    `method` "converter" is the plain TFLite converter; any other is edgekit's engine with
    that calibration method (`edgekit.quantization.calibration.METHODS`).
    """

    method: str = "default"
    bias_correction: bool = True
    rewrite: bool = True  # global AVERAGE_POOL_2D → MEAN (its own output scale)
    denylisted: tuple[str, ...] = ()  # ops kept in float (mixed precision)
    optimize: bool = False  # search every method and bias correction (--optimize accuracy)
    goal: Goal | None = None  # the fewest ops kept in float that reach it
    rounding: str = "nearest"  # "learned": AdaRound on the calibration data
    equalize: bool = False  # cross-layer equalisation of the float model first
    mixed_with: str = "auto"  # what mixed precision keeps: "int16" activations or "float" ops

    @classmethod
    def of(cls, options: DeployOptions) -> QuantOptions:
        """The quantization part of a deploy's options."""
        goal = None
        if options.min_sqnr is not None or options.max_agreement_drop is not None:
            goal = Goal(options.min_sqnr, options.max_agreement_drop)
        return cls(
            options.calibration_method,
            options.bias_correction,
            options.rewrite,
            options.keep_float,
            options.optimize == "accuracy",
            goal,
            options.rounding,
            options.equalize,
            options.mixed_with,
        )

    @property
    def engine(self) -> bool:
        return self.method != "converter"

    def resolved_method(self) -> str:

        return DEFAULT_METHOD if self.method == "default" else self.method


def uses_engine(loaded: LoadedModel, profile: TargetProfile, options: QuantOptions) -> bool:
    """edgekit's engine makes post-training int8; QAT models, other schemes and
    `--calibration-method converter` go through the converter as they are."""
    return (
        options.engine
        and profile.quantization.scheme == "int8"
        and not loaded.is_qat
        and not loaded.is_tflite
    )


def check_qat_target(loaded: LoadedModel, profile: TargetProfile) -> None:
    """A QAT model deploys as int8 only: refuse a target whose scheme is anything else."""
    if loaded.is_qat and profile.quantization.scheme != "int8":
        raise UsageError(
            f"{loaded.source}: a QAT model deploys as int8; target {profile.name} runs "
            f"{profile.quantization.scheme}. Deploy the float model (before quantize_model) "
            "there, or this one to an int8 target"
        )


def convert_deployed(
    loaded: LoadedModel,
    profile: TargetProfile,
    calibration: np.ndarray | None,
    options: QuantOptions | None = None,
    reference: TFLiteModel | None = None,
    progress: Progress | None = None,
) -> tuple[TFLiteModel, ConvertedModel]:
    """(deployed model, ConvertedModel) with the profile's quantization settings.

    Post-training int8 goes through edgekit's engine (`options`); the ConvertedModel then
    carries the engine's result as `.quantization`.
    """
    options = options or QuantOptions()
    check_qat_target(loaded, profile)
    if uses_engine(loaded, profile, options) and calibration is not None:
        if reference is None:
            reference = convert_reference(loaded)
        return quantize_float_model(
            reference,
            profile,
            calibration,
            options,
            loaded.worker,
            f"{loaded.name}_int8.tflite",
            progress,
        )
    converted = convert_for_target(loaded, profile.quantization, calibration)
    if loaded.is_qat and converted.scheme == "int8":
        data, snapped = snap_power_of_two(converted.data)
        if snapped:  # trained as powers of two: written exactly so
            converted = replace(converted, data=data, power_of_two_ops=snapped)
    model = read_tflite(converted.data, f"{loaded.name}_{converted.scheme}.tflite")
    return model, converted


def quantize_tflite(
    loaded: LoadedModel,
    profile: TargetProfile,
    calibration: Dataset | None,
    options: QuantOptions,
    progress: Progress | None = None,
) -> Conversion:
    """A float `.tflite` given as the model, quantized to int8 by edgekit's engine; the given
    model is the reference it is verified against."""
    if calibration is None:
        raise UsageError(f"{loaded.source}: quantizing a float .tflite needs calibration data")
    deployed, converted = quantize_float_model(
        loaded.tflite, profile, calibration.x, options, None, f"{loaded.name}_int8", progress
    )
    return Conversion(deployed, loaded.tflite, "int8", converted)


def quantize_float_model(
    float_model: TFLiteModel,
    profile: TargetProfile,
    calibration: np.ndarray,
    options: QuantOptions,
    worker: Worker | None = None,
    name: str = "model_int8.tflite",
    progress: Progress | None = None,
) -> tuple[TFLiteModel, ConvertedModel]:
    """A float `.tflite` → int8 with edgekit's engine (also for float `.tflite` input).

    TensorFlow's quantizer runs in `worker` (the model's conversion worker), or the shared
    conversion worker when the caller's process has no TensorFlow model of its own.
    """
    started = time.perf_counter()
    data = float_model.data
    rewritten: list[int] = []
    notes: list[str] = []
    if options.rewrite and runs_mean(profile):
        candidate, ops = average_pool_to_mean(data)
        if ops:
            error = float_difference(
                float_model, read_tflite(candidate), as_float32(take(calibration, slice(0, 8)))
            )
            if error <= REWRITE_TOLERANCE:
                data, rewritten = candidate, ops
            else:
                notes.append(
                    f"AVERAGE_POOL_2D → MEAN rewrite dropped: outputs moved by "
                    f"{error:.2e} (relative), over {REWRITE_TOLERANCE:g}"
                )
    worker = worker_for(worker)
    quant = profile.quantization
    x = as_float32(take(calibration, slice(0, MAX_CALIBRATION)))
    if options.goal is not None:
        mixed_precision_kind(profile, options.mixed_with)
    sources = FloatSources(float_model, data, x)
    result = quantize_int8(
        sources.data(options.equalize),
        x,
        method=options.resolved_method(),
        io_dtype=quant.io_dtype,
        per_channel=quant.per_channel,
        bias_correction=options.bias_correction,
        denylisted=options.denylisted,
        worker=worker,
        rounding=options.rounding,
        progress=progress,
    )
    sources.statistics[options.equalize] = result.statistics
    equalized = options.equalize
    if options.optimize or options.goal is not None:
        result, equalized = _search(result, sources, options, profile, worker, progress)
    result.rewrites = [f"op #{i} AVERAGE_POOL_2D → MEAN" for i in rewritten] + notes
    if equalized and sources.note:
        result.rewrites.append(sources.note)
    converted = ConvertedModel(
        data=result.data,
        scheme="int8",
        io_dtype=quant.io_dtype,
        per_channel=quant.per_channel,
        calibration_samples=result.calibration_samples,
        seconds=time.perf_counter() - started,
        quantization=result,
    )
    return read_tflite(result.data, name), converted


MAX_CALIBRATION = 500
REWRITE_TOLERANCE = 1e-5


def runs_mean(profile: TargetProfile) -> bool:
    """Does the target's runtime have MEAN (the rewrite's op)? LiteRT does; TFLM and the Edge
    TPU compiler are asked by their own tables."""
    if profile.is_mcu:
        return resolver_method("MEAN") is not None
    if profile.uses_edgetpu:
        return "MEAN" in SUPPORTED_OPS
    return True


def float_difference(a: TFLiteModel, b: TFLiteModel, x: np.ndarray) -> float:
    """Largest output difference between two float models, relative to the output's size."""
    ra, rb = run_model(a, x, "builtin"), run_model(b, x, "builtin")
    worst = 0.0
    for name, values in ra.items():
        scale = max(float(np.max(np.abs(values))), 1e-12)
        worst = max(worst, float(np.max(np.abs(values - rb[name]))) / scale)
    return worst


def mixed_precision_kind(profile: TargetProfile, asked: str = "auto") -> str:
    """What mixed precision keeps at higher precision on `profile`: "int16" (16x8 ops: TFLM
    targets with int16x8 kernels, by default) or "float" (ops kept in float: LiteRT targets,
    by default). Refused where the target has neither kernel (the Edge TPU: 8-bit only, no
    int16 path).

    >>> from edgekit.targets import load_target
    >>> mixed_precision_kind(load_target("cortex-m4")), mixed_precision_kind(load_target("rpi4"))
    ('int16', 'float')
    """
    precisions = profile.quantization.precisions
    has = {"int16": "int16x8" in precisions, "float": "float32" in precisions}
    runtime = "the Edge TPU" if profile.uses_edgetpu else profile.runtime_text
    if asked == "auto":
        order = ("int16", "float") if profile.is_mcu else ("float", "int16")
        asked = next((kind for kind in order if has[kind]), "")
        if not asked:
            raise UsageError(
                f"mixed precision keeps ops at higher precision, and {profile.name} ({runtime}) "
                f"runs only {', '.join(precisions)} (no int16 path, no float ops): use QAT or "
                "another calibration method instead"
            )
        return asked
    if asked not in has:
        raise UsageError(f"--mixed-with takes auto, int16 or float; received {asked!r}")
    if not has[asked]:
        kernels = "int16x8" if asked == "int16" else "float32"
        what = "keeps ops in float" if asked == "float" else "carries tensors in int16"
        raise UsageError(
            f"mixed precision {what}, and {profile.name} ({runtime}) runs only "
            f"{', '.join(precisions)} (no {kernels} kernels): use QAT or another calibration "
            "method instead"
        )
    return asked


@dataclass
class FloatSources:
    """The float model the engine quantizes: as given (after the MEAN rewrite), and
    cross-layer equalised (made when first asked for, dropped if it moves the outputs), with
    each one's calibration statistics once known."""

    reference: TFLiteModel
    plain: bytes
    x: np.ndarray
    statistics: dict[bool, Any] = field(default_factory=dict)
    note: str = ""
    _equalized: bytes | None = None

    def data(self, equalize: bool) -> bytes:
        if not equalize:
            return self.plain
        if self._equalized is None:
            made = equalize_model(self.plain, self.x)
            error = float_difference(
                self.reference, read_tflite(made.data), take(self.x, slice(0, 8))
            )
            self._equalized = self.plain
            if not made.pairs:
                self.note = "cross-layer equalisation: no op pairs to equalise"
            elif error > EQUALIZE_TOLERANCE:
                self.note = (
                    f"cross-layer equalisation dropped: outputs moved by {error:.2e} "
                    f"(relative), over {EQUALIZE_TOLERANCE:g}"
                )
            else:
                self._equalized = made.data
                self.note = (
                    f"cross-layer equalisation of {len(made.pairs)} op pairs (channel range "
                    f"ratio {made.range_ratio_before:.1f} → {made.range_ratio_after:.1f})"
                )
        return self._equalized


EQUALIZE_TOLERANCE = 1e-4


def _search(
    result: QuantizationResult,
    sources: FloatSources,
    options: QuantOptions,
    profile: TargetProfile,
    worker: Worker | None,
    progress: Progress | None,
) -> tuple[QuantizationResult, bool]:
    """--optimize accuracy (the best method, bias correction, rounding and equalisation),
    then the mixed-precision goal (tensors carried in int16, or ops kept in float: see
    :func:`mixed_precision_kind`), each scored on the calibration inputs. Returns the result
    and whether its float model was equalised."""
    quant = profile.quantization
    x = sources.x
    chosen = Configuration(
        result.method,
        result.bias_corrected_ops > 0 or options.bias_correction,
        options.rounding,
        options.equalize,
    )
    # Learned rounding is fitted to data: on the half the search chooses on, so the held-out
    # half judges it on samples it never saw.
    choose = as_float32(take(x, halves(sample_count(x))[0]))

    def build(configuration: Configuration, denylisted: tuple[str, ...] = ()) -> QuantizationResult:
        built = quantize_int8(
            sources.data(configuration.equalize),
            x,
            method=configuration.method,
            io_dtype=quant.io_dtype,
            per_channel=quant.per_channel,
            bias_correction=configuration.bias_correction,
            denylisted=tuple(options.denylisted) + denylisted,
            worker=worker,
            statistics=sources.statistics.get(configuration.equalize),
            rounding=configuration.rounding,
            rounding_x=choose,
            progress=progress,
        )
        sources.statistics[configuration.equalize] = built.statistics
        return built

    candidates = []
    if options.optimize:
        (winner, _), scored = best_configuration(
            sources.plain, x, lambda c: build(c).data, progress, start=chosen
        )
        candidates = [
            {**c.to_dict(), "start": c.label == chosen.label, "chosen": c.label == winner.label}
            for c in scored
        ]
        chosen = winner
        result = build(chosen)
    mixed, kind = None, None
    if options.goal is not None:
        kind = mixed_precision_kind(profile, options.mixed_with)
        data = sources.data(chosen.equalize)
        if kind == "int16":
            if progress:
                progress("making the 16x8 model (int16 activations)")
            wide = int16_model(data, result.statistics, chosen.method, quant, worker, x)
            names = int16.candidates(read_tflite(result.data), read_tflite(wide))
            base = result.data

            def requantize(extra: tuple[str, ...]) -> bytes:
                return int16.splice(base, wide, extra)

            mixed = mixed_precision(
                sources.plain, base, x, options.goal, requantize, progress, candidates=names
            )
            if mixed.kept_in_float:
                result.data = requantize(tuple(mixed.kept_in_float))
                result.all_int8 = base
                result.int16_tensors = tuple(mixed.kept_in_float)
        else:
            plain = requantizer(
                data, result.statistics, chosen.method, quant, options.denylisted, worker
            )
            calibrated = read_tflite(result.calibrated)

            def requantize(extra: tuple[str, ...]) -> bytes:
                # scored like the model it becomes: with bias correction when that is chosen
                # (without it, a candidate looked better than the deployed model would be)
                made = plain(extra)
                if chosen.bias_correction:
                    made, _ = correct_biases(made, calibrated, x)
                return made

            mixed = mixed_precision(
                sources.plain, result.data, x, options.goal, requantize, progress
            )
            if mixed.kept_in_float:
                all_int8 = result.data
                result = build(chosen, tuple(mixed.kept_in_float))
                result.all_int8 = all_int8
    result.search = {
        "candidates": candidates,
        "mixed": None
        if mixed is None
        else {
            "goal": mixed.goal.describe(),
            "met": mixed.met,
            "search_met": mixed.search_met,
            "aimed_sqnr_db": mixed.aimed_sqnr_db,
            "kept_in_float": mixed.kept_in_float if kind == "float" else [],
            "in_int16": mixed.kept_in_float if kind == "int16" else [],
            "precision": kind,
            "start_sqnr_db": mixed.start.sqnr_db,
            "final_sqnr_db": mixed.final.sqnr_db,
            "held_out_start_sqnr_db": mixed.start.held_sqnr_db,
            "held_out_final_sqnr_db": mixed.final.held_sqnr_db,
            "final_agreement": mixed.final.agreement,
            "held_out_final_agreement": mixed.final.held_agreement,
            "steps": mixed.steps,
        },
        "samples": [len(part) for part in halves(len(x))],  # chosen on, held out
    }
    return result, chosen.equalize


def int16_model(
    model: bytes,
    statistics: Any,
    method: str,
    quant: Quantization,
    worker: Worker | None,
    x: Any,
) -> bytes:
    """The whole model in 16x8 (int16 activations, int8 weights), from the same calibrated
    float model and the same ranges made symmetric: the ops :func:`int16.splice` takes."""
    ranges = int16.symmetric(ranges_for(read_tflite(model), statistics, method, x))
    data = quantize_in_worker(
        worker, with_ranges(model, ranges), "float32", quant.per_channel, (), "int16"
    )
    return int16.as_16x8_kernels_expect(data)


def requantizer(
    model: bytes,
    statistics: Any,
    method: str,
    quant: Quantization,
    denylisted: tuple[str, ...],
    worker: Worker | None,
) -> Callable[[tuple[str, ...]], bytes]:
    """`more denylisted names → int8 bytes`, with the ranges `method` makes of `statistics`
    fixed: what the mixed-precision search and the sensitivity probe re-quantize with."""
    ranged = with_ranges(model, ranges_for(read_tflite(model), statistics, method))

    def requantize(extra: tuple[str, ...]) -> bytes:
        names = tuple(denylisted) + tuple(extra)
        return quantize_in_worker(worker, ranged, quant.io_dtype, quant.per_channel, names)

    return requantize


def worker_for(worker: Worker | None) -> Worker | None:
    """The worker TensorFlow's quantizer runs in: the model's own, else the shared conversion
    worker when this process has no TensorFlow of its own (None: run it here)."""
    if worker is None and "tensorflow" not in sys.modules:
        return conversion_worker()
    return worker


def conversion_detail(converted: ConvertedModel) -> str:
    """One line on how a model was converted, in the scheme's own terms."""
    size = f"{converted.model_bytes:,} bytes"
    engine = converted.quantization
    if engine is not None:
        extras = [f"{engine.method} ranges from {engine.calibration_samples} samples"]
        if engine.rounding is not None:
            extras.append(f"learned rounding in {len(engine.rounding.ops)} ops")
        if engine.bias_corrected_ops:
            extras.append(f"bias corrected in {engine.bias_corrected_ops} ops")
        extras += engine.rewrites
        if engine.denylisted:
            extras.append(f"{len(engine.denylisted)} op(s) kept in float")
        if engine.int16_tensors:
            extras.append(f"{len(engine.int16_tensors)} tensor(s) carried in int16")
        per = "per-channel" if converted.per_channel else "per-tensor"
        return f"{size}, {', '.join(extras)}, {per} weights, {converted.io_dtype} inputs/outputs"
    if converted.power_of_two_ops:
        return (
            f"{size}, ranges from quantization-aware training, power-of-two weights "
            f"(0, ±2^k) in {converted.power_of_two_ops} ops"
        )
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
