"""`deploy()`: profile → model → convert → export → check → verify → bundle.

What `edgekit deploy` calls. The stages are :mod:`edgekit.stages` functions with typed results;
this module runs them in order, times each as a step, writes the files, and assembles the report
from the stage results at the end. Bad input raises :class:`~edgekit.errors.UsageError` before
anything is written (and, where it can be told from the paths alone, before TensorFlow loads).
The bundle is built in a hidden staging directory and swapped into place when complete.

>>> import edgekit
>>> bundle = edgekit.deploy("model.keras", "cortex-m4", calibration="calib.npy")  # doctest: +SKIP
>>> bundle.ok, bundle.report.metrics.tensor_arena_bytes                          # doctest: +SKIP
(True, 22544)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit import __version__, signals
from edgekit.bundle import (
    Bundle,
    abandon,
    check_final,
    check_writable,
    missing_dirs,
    prepare,
    publish,
)
from edgekit.data import (
    MAX_VALIDATION_SAMPLES,
    MIN_CALIBRATION_SAMPLES,
    Dataset,
    load_dataset,
    random_calibration,
)
from edgekit.errors import UsageError
from edgekit.models import LoadedModel, load_model
from edgekit.report import Artifact, DeployReport, Role, Step, write_report
from edgekit.targets import TargetProfile, load_target
from edgekit.tflite_model import TFLiteModel

StepListener = Callable[[str, str, Step | None], None]  # (event, name, finished step)
SPARSE_FORMAT_THRESHOLD = 0.3


class _Steps:
    """Times each step into a list and tells a listener (the CLI's progress).

    A step that raises is recorded as failed, or interrupted on Ctrl-C/SIGTERM, never as done.
    """

    def __init__(self, listener: StepListener | None) -> None:
        self.steps: list[Step] = []
        self.listener = listener

    def note(self, message: str) -> None:
        if self.listener:
            self.listener("note", message, None)

    @contextlib.contextmanager
    def run(self, name: str) -> Iterator[Step]:
        signals.check()  # a Ctrl-C/SIGTERM that a finalizer swallowed stops here
        step = Step(name, True, 0.0, "")
        if self.listener:
            self.listener("start", name, None)
        started = time.perf_counter()
        try:
            yield step
        except (KeyboardInterrupt, SystemExit):
            step.status, step.detail = "interrupted", step.detail or "interrupted"
            raise
        except BaseException as exc:
            step.status, step.detail = "failed", step.detail or str(exc).splitlines()[0][:200]
            raise
        finally:
            step.seconds = round(time.perf_counter() - started, 3)
            self.steps.append(step)
            if self.listener:
                self.listener("end", name, step)

    def skip(self, name: str, why: str) -> None:
        step = Step(name, False, 0.0, why, "skipped")
        self.steps.append(step)
        if self.listener:
            self.listener("end", name, step)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def model_name_from_path(model: Any) -> str | None:
    """The name a model file or SavedModel directory deploys under, without loading it."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        return path.name if path.is_dir() else path.stem
    return None


@dataclass
class DeployInputs:
    loaded: LoadedModel
    profile: TargetProfile
    calibration: Dataset | None
    validation: Dataset
    notes: list[str]


def _datasets(
    loaded: LoadedModel,
    profile: TargetProfile,
    calibration: Any,
    validation: Any,
    example_data: tuple[Dataset, Dataset] | None,
    min_calibration_samples: int = MIN_CALIBRATION_SAMPLES,
) -> tuple[Dataset | None, Dataset, list[str]]:
    notes: list[str] = []
    shape = loaded.inputs  # one shape, or every input's InputSpec
    calib: Dataset | None = None
    if isinstance(calibration, str) and calibration == "random":
        calib = random_calibration(shape)
        notes.append(
            "calibration was random: quantization ranges are not representative and every "
            "accuracy figure is meaningless"
        )
    elif calibration is not None:
        calib = load_dataset(calibration, shape, "calibration", dtype=loaded.input_dtype,
                             min_samples=min_calibration_samples)  # fmt: skip
    elif example_data is not None:
        calib = example_data[0]
    float_tflite = loaded.is_tflite and _is_float(loaded)
    quantizes_tflite = float_tflite and profile.quantization.scheme == "int8"
    needs = profile.quantization.needs_calibration and not loaded.is_qat and (
        not loaded.is_tflite or quantizes_tflite
    )
    if needs and calib is None:
        raise _no_calibration(profile, [s.name for s in loaded.input_specs])
    if validation is not None:
        val = load_dataset(
            validation, shape, "validation", MAX_VALIDATION_SAMPLES, dtype=loaded.input_dtype
        )
        if val.y is None:
            notes.append(
                f"validation data {val.source} has no labels (an .npz needs 'y' for accuracy): "
                "only agreement with the float model is measured"
            )
    elif example_data is not None:
        val = example_data[1].head(MAX_VALIDATION_SAMPLES)
    elif calib is not None:
        val = calib.head(MAX_VALIDATION_SAMPLES)
        notes.append("no --validation given: verified on the calibration inputs, without labels")
    else:
        val = random_calibration(shape, n=100, seed=1)
        notes.append("no validation data: verified on random inputs, without labels")
    if loaded.is_tflite and calibration is not None and not quantizes_tflite:
        notes.append("calibration data ignored: a .tflite model is already converted")
    if loaded.is_qat:
        notes.append("QAT model: int8 ranges come from training, not from calibration data")
    return (None if loaded.is_tflite and not quantizes_tflite else calib), val, notes


def _is_float(loaded: LoadedModel) -> bool:
    from edgekit.checks import model_precision

    return model_precision(loaded.tflite) == "float32"


def deploy(
    model: Any,
    target: str | TargetProfile,
    *,
    calibration: Any = None,
    validation: Any = None,
    out: str | Path | None = None,
    force: bool = False,
    example: str | None = None,
    delegate: str | None = None,
    task: str | None = None,
    sparse_size: bool = False,
    calibration_method: str = "default",
    bias_correction: bool = True,
    rewrite: bool = True,
    analysis: bool = True,
    keep_float: tuple[str, ...] = (),
    optimize: str | None = None,
    min_sqnr: float | None = None,
    max_agreement_drop: float | None = None,
    unsafe_deserialization: bool = False,
    custom_objects: dict | None = None,
    targets_dir: str | Path | None = None,
    tflm_dir: str | Path | None = None,
    min_calibration_samples: int = MIN_CALIBRATION_SAMPLES,
    on_step: StepListener | None = None,
) -> Bundle:
    """Convert, check and verify `model` for `target`, and write a bundle.

    Args:
      model: a path (.keras, .h5, SavedModel dir, .tflite) or a live Keras model; None with
        `example`.
      target: a profile name/alias, a `.toml` path, or a :class:`TargetProfile`.
      calibration: inputs for full-integer quantization: array, `.npy`/`.npz` path, or
        "random" (accuracy figures then mean nothing).
      validation: `(x, y)`, an array or a path; up to 500 samples are compared. For a
        model with several inputs, `x` is a list (the model's order) or a dict by input
        name, and a file is an `.npz` with one array per input (see :mod:`edgekit.data`).
      out: directory that receives `<model>-<target>/` (default `./edgekit-out`).
      force: replace an existing bundle.
      example: "digits" to deploy the built-in example with its own data.
      delegate: override the profile's delegate ("gpu" on Android: float16).
      task: "classification" or "regression"; detected from the outputs when None.
      sparse_size: also report the size in TFLite's sparse format (one more conversion).
      calibration_method: "minmax", "percentile[:P]", "mse", "kl", or "converter" (the plain
        TFLite converter); "default" is edgekit's measured best (see docs/benchmarks.md).
      bias_correction: fold the mean shift weight rounding causes into int32 biases.
      rewrite: turn global average pools into MEAN (its own output scale) before quantizing.
      analysis: add the per-layer quantization analysis (and its chart) to the bundle.
      keep_float: output tensor names of ops to keep in float (mixed precision).
      optimize: "accuracy" searches every calibration method and bias correction.
      min_sqnr, max_agreement_drop: a mixed-precision goal: the fewest ops kept in float
        (on targets with float kernels) that reach it.
      unsafe_deserialization: let a Keras file's Lambda layers run their Python bytecode while
        loading (only for files you trust; the report records it).
      tflm_dir: MCU targets with a `[firmware]` profile section: a TFLM tree (else
        EDGEKIT_TFLM_DIR) to build the firmware with and run it under QEMU, for the 32-bit
        arena, flash, RAM and instruction figures and a bit-exactness check.
      min_calibration_samples: refuse calibration data with fewer inputs (default 10; a
        lone image saved without its batch axis is refused for its rank).

    Returns the :class:`~edgekit.bundle.Bundle`; `bundle.ok` is False when a check failed.
    """
    from edgekit.quantization.calibration import parse_method
    from edgekit.stages import QuantOptions
    from edgekit.verify import TASKS

    if task is not None and task not in TASKS:
        raise UsageError(f"unknown task {task!r}; expected one of: {', '.join(TASKS)}")
    if calibration_method not in ("default", "converter"):
        # a typo is a usage error before anything loads
        parse_method(calibration_method, others=("converter", "default"))
    if optimize not in (None, "accuracy"):
        raise UsageError(f"--optimize takes 'accuracy'; received {optimize!r}")
    goal = None
    if min_sqnr is not None or max_agreement_drop is not None:
        from edgekit.quantization.search import Goal

        goal = Goal(min_sqnr, max_agreement_drop)
    quant_options = QuantOptions(calibration_method, bias_correction, rewrite, tuple(keep_float),
                                 optimize == "accuracy", goal)  # fmt: skip
    profile = load_target(target, targets_dir)
    if delegate:
        profile = profile.with_delegate(delegate)
    if goal is not None or keep_float:
        from edgekit.stages import check_mixed_precision_allowed

        check_mixed_precision_allowed(profile)
    steps = _Steps(on_step)
    root = Path(out) if out is not None else Path.cwd() / "edgekit-out"
    # Everything that can be checked before TensorFlow loads is (a bad file costs no time):
    # a taken or unwritable --out, data files' headers, and, where the model file says its
    # input shape, the data's shapes and values.
    early_name = model_name_from_path(model) if model is not None else example
    if early_name is not None:
        check_final(root / slug(f"{early_name}-{profile.name}"), force)
    check_writable(root)
    _precheck_data(calibration, "calibration")
    _precheck_data(validation, "validation")
    if isinstance(model, (str, Path)):
        if calibration is None and example is None:
            _early_calibration_check(model, profile)
        calibration, validation = _early_datasets(model, calibration, validation,
                                                  min_calibration_samples)  # fmt: skip

    example_data = None
    if example is not None:
        from edgekit.examples import load_example

        ex = load_example(example, progress=steps.note)
        model = model if model is not None else ex.model_path
        example_data = (ex.calibration, ex.validation)
    if model is None:
        raise UsageError("no model given: pass a model path or --example digits")

    with steps.run("load model") as step:
        loaded = load_model(model, custom_objects, unsafe=unsafe_deserialization)
        written = f" written by {loaded.writer}" if loaded.writer else ""
        step.detail = f"{loaded.kind}{written}, " + ", ".join(
            f"input {'' if len(loaded.input_specs) == 1 else s.name + ' '}{list(s.shape)} "
            f"{s.dtype}" for s in loaded.input_specs
        )
    calib, val, notes = _datasets(
        loaded, profile, calibration, validation, example_data, min_calibration_samples
    )
    if loaded.unsafe:
        notes.insert(0, "loaded with --unsafe-deserialization: the model file's Python code ran")
    created = missing_dirs(root)
    staging = None
    try:  # a signal may land while prepare() makes --out: those folders go too
        final, staging = prepare(root, slug(f"{loaded.name}-{profile.name}"), force)
        inputs = DeployInputs(loaded, profile, calib, val, notes)
        report = _run(inputs, staging, steps, task, sparse_size, quant_options, analysis)
        _harness_step(profile, staging, report)
        _firmware_step(profile, staging, report, steps, tflm_dir)
        report.steps = steps.steps
        report.status = "deployed" if report.ok else "failed"
        write_report(report, staging)
        publish(staging, final, force)
    except BaseException:
        abandon(staging, created)
        raise
    return Bundle(final, report, profile)


def _no_calibration(profile: TargetProfile, names: list[str]) -> UsageError:
    files = ("FILE.npy (or .npz with 'x')" if len(names) == 1 else
             f"FILE.npz with one array per input ({', '.join(names)}; or x0, x1...)")
    return UsageError(
        f"target {profile.name} quantizes to {profile.quantization.scheme} and needs "
        f"calibration data: pass --calibration {files}, 100-500 representative inputs, "
        "or --calibration random for a smoke test"
    )


def _early_calibration_check(model: str | Path, profile: TargetProfile) -> None:
    """No calibration for an int8 target: said before the model loads when the file is a
    Keras file whose config holds no QAT layers (QAT models bring their own ranges)."""
    from edgekit.models import KERAS_SUFFIXES, config_nodes
    from edgekit.signature import input_specs, keras_config

    if not profile.quantization.needs_calibration:
        return
    if Path(model).suffix.lower() not in KERAS_SUFFIXES:
        return
    config = keras_config(model)
    if config is None or any("Quantize" in str(node.get("class_name", ""))
                             for node in config_nodes(config)):  # fmt: skip
        return
    specs = input_specs(model)
    raise _no_calibration(profile, [s.name for s in specs] if specs else ["x"])


def _early_datasets(
    model: str | Path, calibration: Any, validation: Any, min_calibration_samples: int
) -> tuple[Any, Any]:
    """Data files read and checked against the input the model file declares, before the
    model loads; each becomes a Dataset (checked again, cheaply, once the model is loaded)."""
    from edgekit.signature import input_specs

    specs = input_specs(model)
    if specs is None:
        return calibration, validation

    def early(source: Any, what: str, **limits: Any) -> Any:
        if isinstance(source, (str, Path)) and str(source) != "random":
            data = load_dataset(source, specs, what, **limits)
            # Several inputs are matched by name again once the model has loaded: the file
            # is read again then (names from a config could differ from the live model's).
            return data if len(specs) == 1 else source
        return source

    return (early(calibration, "calibration", min_samples=min_calibration_samples),
            early(validation, "validation", limit=MAX_VALIDATION_SAMPLES))  # fmt: skip


def _precheck_data(source: Any, what: str) -> None:
    """Read a data file's header before TensorFlow loads: a bad file costs no time."""
    if isinstance(source, (str, Path)) and str(source) != "random":
        from edgekit.data import check_array_file

        check_array_file(source, what)


def _run(
    inputs: DeployInputs,
    staging: Path,
    steps: _Steps,
    task: str | None,
    sparse_size: bool,
    quant_options: Any = None,
    analysis: bool = True,
) -> DeployReport:
    from edgekit import stages

    loaded, profile = inputs.loaded, inputs.profile
    report = DeployReport(
        edgekit_version=__version__,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        model={"name": loaded.name, "source": loaded.source, "kind": loaded.kind,
               "written_by": loaded.writer or None,
               "unsafe_deserialization": loaded.unsafe},  # fmt: skip
        target=profile.to_dict(),
        notes=list(inputs.notes),
    )
    metrics = report.metrics
    reference: TFLiteModel | None = None
    converted = None
    options = quant_options or stages.QuantOptions()
    if loaded.is_tflite and _quantizes_float_tflite(loaded, profile, inputs.calibration):
        # A float .tflite to an int8 target: edgekit's engine quantizes it (no Keras needed).
        reference = loaded.tflite
        scheme = "int8"
        with steps.run("quantize float .tflite to int8") as step:
            deployed, converted = stages.quantize_float_model(
                reference, profile, inputs.calibration.x, options, None, f"{loaded.name}_int8",
                steps.note,
            )
            step.detail = stages.conversion_detail(converted)
        metrics.float_model_bytes = reference.size_bytes
    elif loaded.is_tflite:
        deployed = loaded.tflite
        scheme = "as-given"
        steps.skip("convert", "the input is already a .tflite model")
    else:
        stages.check_qat_target(loaded, profile)
        with steps.run("convert float32 (reference)") as step:
            reference = stages.convert_reference(loaded)
            step.detail = f"{reference.size_bytes:,} bytes"
        scheme = profile.quantization.scheme
        if scheme == "float32":
            deployed = reference
        else:
            with steps.run(f"convert {scheme}") as step:
                calib = None if inputs.calibration is None else inputs.calibration.x
                deployed, converted = stages.convert_deployed(
                    loaded, profile, calib, options, reference, steps.note
                )
                step.detail = stages.conversion_detail(converted)
        metrics.float_model_bytes = reference.size_bytes

    name = slug(loaded.name)
    model_file = staging / f"{name}_{scheme}.tflite"
    model_file.write_bytes(deployed.data)
    report.artifacts.append(Artifact.of(model_file, staging, Role.DEPLOYED_MODEL))
    if reference is not None and scheme != "float32":
        ref_file = staging / f"{name}_float32.tflite"
        ref_file.write_bytes(reference.data)
        report.artifacts.append(Artifact.of(ref_file, staging, Role.FLOAT_REFERENCE))
    _model_facts(deployed, report)
    _sizes(loaded, deployed, converted, inputs.calibration, report, steps, sparse_size)

    tflm = None
    if profile.is_mcu:
        tflm = _tflm_step(deployed, name, staging, report, steps)

    edgetpu = None
    if profile.uses_edgetpu:
        with steps.run("edgetpu_compiler") as step:
            compile_dir = staging / ".edgetpu"
            compile_dir.mkdir()
            edgetpu = stages.compile_edgetpu(deployed, model_file, compile_dir, profile)
            step.ran, step.detail = edgetpu.compiler.ran, edgetpu.compiler.detail
            if not edgetpu.compiler.ran:  # the full sentence is in the report's Edge TPU part
                step.status, step.detail = "skipped", "not installed: rule-based analysis only"
            _collect_edgetpu(edgetpu, compile_dir, staging, report)
        report.edgetpu = edgetpu.to_dict()
        placement = {p.index: ("tpu" if p.on_tpu else "cpu") for p in edgetpu.analysis.placements}
        for op in report.ops:
            op["placement"] = placement.get(op["index"])

    with steps.run("check against profile") as step:
        report.checks += stages.check_stage(deployed, profile, tflm)
        if edgetpu is not None:
            report.checks += edgetpu.checks()
        failed = [c.name for c in report.checks if not c.ok]
        step.detail = f"{len(report.checks)} checks, failed: {', '.join(failed) or 'none'}"

    with steps.run("verify") as step:
        result, checks = stages.verify_deployed(
            deployed, reference, inputs.validation, profile, tflm, task, loaded.is_qat
        )
        report.checks += checks
        if result is None:
            step.status, step.detail = "check_failed", checks[0].detail
        else:
            step.detail = f"{result.samples} samples on {result.runtime}"
            _record_verification(result, report)
    _host_latency_step(deployed, profile, report, steps)
    if getattr(converted, "power_of_two_ops", 0):
        report.notes.append(
            f"{converted.power_of_two_ops} ops have power-of-two weights (int8 0, ±1, ±2, ..., "
            "±64): a shift-only kernel could drop their multiplies; TFLite's kernels (LiteRT, "
            "XNNPACK, TFLM, CMSIS-NN) still multiply, so the gain here is size "
            f"(gzip {report.metrics.model_gzip_bytes:,} B)"
        )
    engine = getattr(converted, "quantization", None)
    if engine is not None and analysis:
        _analysis_step(engine, inputs, profile, staging, report, steps, loaded.worker)
    elif engine is not None:
        report.quantization = _engine_facts(engine, profile)
    if inputs.calibration is not None and inputs.calibration.source == "random":
        metrics.accuracy_meaningful = False
    report.data["calibration"] = (
        {"source": inputs.calibration.source, "samples": inputs.calibration.n}
        if inputs.calibration is not None
        else None
    )
    report.data["validation"] = {
        "source": inputs.validation.source,
        "samples": inputs.validation.n,
        "labels": inputs.validation.y is not None,
    }
    return report


def _host_latency_step(model: TFLiteModel, profile: TargetProfile, report: DeployReport,
                       steps: _Steps) -> None:  # fmt: skip
    """The deployed model's latency on this host (LiteRT, 1 thread, XNNPACK, the harness).

    A figure to compare variants of one model (pruned, factorised) by, measured the same way
    every time; the target's own latency is `edgekit bench`'s. MCU models run on the board (or
    QEMU), so this host's CPU says nothing about them and they are not timed here."""
    from edgekit.bench.linux import host_latencies
    from edgekit.errors import EdgekitError

    if profile.is_mcu:
        steps.skip("host latency", "an MCU's latency is measured on the board (edgekit bench)")
        return
    with steps.run("host latency") as step:
        details: list[dict] = []
        try:
            p50 = host_latencies([model.data], rounds=1, runs=50, details=details)[0]
        except (EdgekitError, KeyError, TypeError) as exc:
            step.detail = f"not measured: {str(exc).splitlines()[0][:160]}"
            report.data["host_latency"] = {"error": step.detail}
            return
        device = details[0].get("device", {}) if details else {}
        report.metrics.host_latency_ms = round(p50, 4)
        report.data["host_latency"] = {
            "p50_ms": round(p50, 4), "runs": 50, "threads": 1, "delegate": "xnnpack",
            "cpu": device.get("cpu"), "harness": "devices/linux/edgekit_harness.py",
            "what": "int8 model on this host's CPU" + (
                " (the Edge TPU-compiled model needs the device)" if profile.uses_edgetpu else ""),
        }  # fmt: skip
        step.detail = f"p50 {p50:.3f} ms on {device.get('cpu', 'this host')}"


def _quantizes_float_tflite(loaded: LoadedModel, profile: TargetProfile, calib: Any) -> bool:
    from edgekit.checks import model_precision

    return (
        profile.quantization.scheme == "int8"
        and calib is not None
        and model_precision(loaded.tflite) == "float32"
    )


def _engine_facts(engine: Any, profile: TargetProfile | None = None) -> dict[str, Any]:
    facts = {
        "method": engine.method,
        "calibration_samples": engine.calibration_samples,
        "bias_corrected_ops": engine.bias_corrected_ops,
        "rewrites": engine.rewrites,
        "kept_in_float": list(engine.denylisted),
        "seconds": {k: round(v, 3) for k, v in engine.seconds.items()},
        "search": engine.search,
    }
    if engine.all_int8 and profile is not None:
        facts["mixed_precision_cost"] = mixed_precision_cost(engine.all_int8, engine.data, profile)
    return facts


def mixed_precision_cost(all_int8: bytes, mixed: bytes, profile: TargetProfile) -> dict:
    """What keeping ops in float costs: bytes, the TFLM arena, LiteRT latency (this host)."""
    from edgekit.bench.linux import host_latencies
    from edgekit.errors import EdgekitError
    from edgekit.runtimes.tflm import measure_arena
    from edgekit.tflite_model import read_tflite

    cost: dict[str, Any] = {"model_bytes": [len(all_int8), len(mixed)]}
    if profile.is_mcu:
        try:
            cost["tensor_arena_bytes"] = [measure_arena(read_tflite(d)).tensor_arena_bytes
                                          for d in (all_int8, mixed)]  # fmt: skip
        except EdgekitError as exc:
            cost["tensor_arena_bytes"] = f"not measured: {exc}"
    try:
        latencies = host_latencies([all_int8, mixed], delegate="none")
        cost["litert_p50_ms"] = [round(value, 4) for value in latencies]
    except (EdgekitError, KeyError, TypeError) as exc:
        cost["litert_p50_ms"] = f"not measured: {exc}"
    cost["order"] = ["all int8", "mixed"]
    return cost


ANALYSIS_SENSITIVITY_LAYERS = 3  # in a deploy; `edgekit analyze` measures every layer


def _analysis_step(
    engine: Any,
    inputs: DeployInputs,
    profile: TargetProfile,
    staging: Path,
    report: DeployReport,
    steps: _Steps,
    worker: Any,
) -> None:
    """Per-layer analysis into the report, and its chart into the bundle."""
    from edgekit.errors import RuntimeFailure
    from edgekit.quantization.analysis import analyze_models

    report.quantization = _engine_facts(engine, profile)
    with steps.run("per-layer analysis") as step:
        requantize = requantizer(engine, profile, worker)
        try:
            result = analyze_models(
                engine.calibrated,
                engine.data,
                inputs.validation.x,
                sensitivity=ANALYSIS_SENSITIVITY_LAYERS,
                requantize=requantize,
            )
        except RuntimeFailure as exc:
            step.detail = f"not run: {exc}"
            return
        from edgekit import plotting

        if plotting.available():
            title = f"{report.model['name']} → {profile.name}"
            chart = result.chart(staging / "analysis.png", title)
            report.artifacts.append(Artifact.of(chart, staging, Role.CHART))
        else:  # `pip install .` has no matplotlib: the table in report.md still has it all
            report.notes.append(f"per-layer analysis chart not drawn: {plotting.MISSING}")
        report.quantization["analysis"] = result.to_dict()
        worst = result.ranked()[0] if result.layers else None
        step.detail = (
            f"{len(result.layers)} ops on {result.samples} samples; logits/output "
            f"{_db(result.output_sqnr_db)}, per-element weights bound "
            f"{_db(result.per_element_bound_db)}"
            + (f"; most sensitive: op #{worst.index} {worst.op}" if worst else "")
        )


def _db(value: float | None) -> str:
    return "exact" if value is None else f"{value:.1f} dB"


def requantizer(engine: Any, profile: TargetProfile, worker: Any) -> Any:
    """`denylisted names → int8 bytes` with the engine's ranges: the sensitivity probe."""
    import sys

    from edgekit.models import conversion_worker
    from edgekit.quantization.engine import quantize_in_worker, ranges_for, with_ranges
    from edgekit.tflite_model import read_tflite

    calibrated = read_tflite(engine.calibrated)
    ranged = with_ranges(engine.calibrated, ranges_for(calibrated, engine.statistics,
                                                       engine.method))  # fmt: skip
    if worker is None and "tensorflow" not in sys.modules:
        worker = conversion_worker()
    quant = profile.quantization

    def requantize(denylisted: tuple[str, ...]) -> bytes:
        return quantize_in_worker(worker, ranged, quant.io_dtype, quant.per_channel,
                                  tuple(engine.denylisted) + tuple(denylisted))  # fmt: skip

    return requantize


def _model_facts(model: TFLiteModel, report: DeployReport) -> None:
    """Inputs/outputs (what an application needs), ops and the size figures."""
    from edgekit.graph import op_macs
    from edgekit.inspection import io_rows, summarize

    info = summarize(model)
    report.io = {"inputs": io_rows(model, model.inputs), "outputs": io_rows(model, model.outputs)}
    report.ops = [
        {"index": op.index, "op": op.name, "version": op.version, "macs": op_macs(model, op),
         "placement": None}  # fmt: skip
        for op in model.operators
    ]
    m = report.metrics
    m.model_bytes = info.model_bytes
    m.parameters = info.parameters
    m.macs = info.macs
    m.activation_lower_bound_bytes = info.activation_lower_bound_bytes


def _sizes(
    loaded: LoadedModel,
    deployed: TFLiteModel,
    converted: Any,
    calib: Dataset | None,
    report: DeployReport,
    steps: _Steps,
    sparse_size: bool,
) -> None:
    """gzip size and sparsity always; the sparse-format size only when asked (it converts the
    model once more: ~9 s on a 220k-parameter MobileNet)."""
    from edgekit.graph import weight_sparsity

    sparsity = weight_sparsity(deployed)
    report.metrics.weight_sparsity = round(sparsity, 4)
    report.metrics.model_gzip_bytes = len(gzip.compress(deployed.data, compresslevel=9))
    if converted is None or sparsity < SPARSE_FORMAT_THRESHOLD:
        return
    if not sparse_size:
        report.notes.append(
            f"weights are {100 * sparsity:.0f} % zeros: --sparse-size also reports the size in "
            "TFLite's sparse format (one more conversion)"
        )
        return
    from edgekit.converters.tflite import convert
    from edgekit.errors import ToolError

    with steps.run("convert sparse format") as step:
        try:
            sparse = convert(
                loaded,
                converted.scheme,
                io_dtype=converted.io_dtype,
                per_channel=converted.per_channel,
                calibration=None if calib is None else calib.x,
                sparse=True,
            )
        except ToolError as exc:
            step.detail = f"not available: {exc}"
            return
        report.metrics.model_sparse_bytes = sparse.model_bytes
        step.detail = (
            f"{sparse.model_bytes:,} bytes with EXPERIMENTAL_SPARSITY (size only; the bundle "
            "keeps the dense model, which every runtime runs)"
        )


def _tflm_step(
    deployed: TFLiteModel, name: str, staging: Path, report: DeployReport, steps: _Steps
) -> Any:
    from edgekit import stages
    from edgekit.runtimes.tflm import missing_ops

    lacking = missing_ops(deployed)
    if lacking:
        steps.skip("tflm export", f"TFLM has no kernel for {', '.join(lacking)}")
        return stages.TflmExport(missing_ops=lacking, error="missing ops")
    with steps.run("tflm export (measure arena)") as step:
        tflm = stages.export_tflm(deployed, name)
        if not tflm.ok:
            step.detail = tflm.error or ""
            return tflm
        arena = tflm.arena
        out = staging / "tflm"
        out.mkdir()
        for filename, text in tflm.sources.items():
            (out / filename).write_text(text, encoding="utf-8")
            report.artifacts.append(Artifact.of(out / filename, staging, Role.TFLM_SOURCE))
        report.metrics.tensor_arena_bytes = arena.tensor_arena_bytes
        report.metrics.tensor_arena_minimum_bytes = arena.minimum_bytes
        report.tflm = {
            "tensor_arena_bytes": arena.tensor_arena_bytes,
            "arena_minimum_bytes": arena.minimum_bytes,
            "arena_source": arena.allocator,
            "arena_note": "a C++ MicroInterpreter needs a few hundred bytes less; a 32-bit MCU "
            "less again (4-byte pointers): on the device kTensorArenaSize is an upper bound",
            "activation_lower_bound_bytes": arena.activation_lower_bound_bytes,
        }
        step.detail = (
            f"arena {arena.minimum_bytes:,} B measured minimum + {arena.margin_bytes} B margin "
            f"({arena.attempts} interpreter runs, 64-bit host); activation lower bound "
            f"{arena.activation_lower_bound_bytes:,} B"
        )
    return tflm


def _collect_edgetpu(edgetpu: Any, compile_dir: Path, staging: Path, report: DeployReport) -> None:
    run = edgetpu.compiler
    if run.output_model is not None:
        target = staging / run.output_model.name
        run.output_model.rename(target)
        report.artifacts.append(Artifact.of(target, staging, Role.EDGETPU_MODEL))
    for log in compile_dir.glob("*.log"):
        log.rename(staging / log.name)
        report.artifacts.append(Artifact.of(staging / log.name, staging, Role.EDGETPU_LOG))
    shutil.rmtree(compile_dir, ignore_errors=True)


def _harness_step(profile: TargetProfile, staging: Path, report: DeployReport) -> None:
    """The target's benchmark harness and the commands that run it, relative to the bundle."""
    from edgekit.bench.bundle import bench_commands, copy_harness

    for path in copy_harness(profile.harness, staging):
        report.artifacts.append(Artifact.of(path, staging, Role.HARNESS))
    model = report.artifact(Role.DEPLOYED_MODEL).path
    delegate, host_delegate = profile.delegate, None
    if profile.uses_edgetpu:
        compiled = report.artifact(Role.EDGETPU_MODEL)
        if compiled is not None:
            model = compiled.path
        else:
            delegate = host_delegate = "xnnpack"
            report.notes.append(
                "no Edge TPU-compiled model in the bundle: the benchmark commands run the int8 "
                "model on the CPU; after compiling "
                "(command in the Edge TPU section), `edgekit bench . --device local` uses the "
                "Edge TPU"
            )
    commands = bench_commands(
        profile.harness, profile.transport, model, profile.threads, delegate, host_delegate,
        cpu=profile.firmware.cpu if profile.firmware else None,
    )
    report.bench = {"harness": profile.harness, "transport": profile.transport, **commands}


FIRMWARE_STEP = "firmware (qemu)"


def _firmware_step(profile: TargetProfile, staging: Path, report: DeployReport, steps: _Steps,
                   tflm_dir: str | Path | None) -> None:  # fmt: skip
    """MCU targets: build the bundle's firmware and run it under QEMU; its 32-bit arena,
    flash, RAM and instruction figures join the report beside the 64-bit host estimates."""
    if not profile.is_mcu or report.metrics.tensor_arena_bytes is None:
        return
    from edgekit.bench.firmware import ENV_TFLM_DIR, missing_packages

    estimate = "the arena is the 64-bit host figure and flash/RAM are not measured"
    tree = tflm_dir or os.environ.get(ENV_TFLM_DIR)
    why = None
    if profile.firmware is None:
        why = f"target {profile.name} has no [firmware] section (CPU flags, QEMU board)"
    elif not tree:
        why = f"no TFLM tree (--tflm-dir or {ENV_TFLM_DIR})"
    elif missing := missing_packages():
        why = f"not installed: {', '.join(missing)} (Debian packages)"
    if why is not None:
        steps.skip(FIRMWARE_STEP, f"{why}: {estimate}")
        report.notes.append(f"firmware not built or run under QEMU ({why}): {estimate}")
        return
    with steps.run(FIRMWARE_STEP) as step:
        result = _run_firmware(profile, staging, report, tree, steps.note)
        step.detail = _record_firmware(result, profile, staging, report)


def _run_firmware(profile: TargetProfile, staging: Path, report: DeployReport,
                  tree: str | Path, note: Callable[[str], None]) -> Any:  # fmt: skip
    from edgekit.bench.qemu import run_qemu
    from edgekit.bench.result import BenchResult, DeviceFailure
    from edgekit.bench.runner import BenchRequest, _model_file
    from edgekit.bench.uri import parse_device

    model = _model_file(staging / report.artifact(Role.DEPLOYED_MODEL).path)
    model.arena_bytes = report.metrics.tensor_arena_bytes
    request = BenchRequest(
        model=model, device=parse_device("qemu"), profile=profile,
        settings={"runs": 3, "warmup": 1, "threads": 1, "delegate": "none", "input": "random"},
        timeout=600.0, tflm_dir=tree, progress=note,
    )  # fmt: skip
    try:
        return run_qemu(request)
    except DeviceFailure as exc:
        return BenchResult(status="failed", error=str(exc), **request.identity())


def _record_firmware(result: Any, profile: TargetProfile, staging: Path,
                     report: DeployReport) -> str:  # fmt: skip
    from edgekit.checks import Check, kib

    m = result.metrics
    if "instructions" not in m:  # it did not get as far as a run
        report.checks.append(Check("firmware_runs_on_qemu", False, result.error or "failed"))
        return result.error or "failed"
    info = result.device_info
    elf = Path(info["elf"])
    out = staging / "firmware"
    out.mkdir(exist_ok=True)
    target = out / f"edgekit_harness-{info['cpu']}-{info['kernels']}.elf"
    shutil.copyfile(elf, target)
    report.artifacts.append(Artifact.of(target, staging, Role.FIRMWARE))
    metrics = report.metrics
    metrics.tensor_arena_32bit_bytes = m["arena_bytes"]
    metrics.flash_bytes, metrics.ram_bytes = m["flash_bytes"], m["ram_bytes"]
    metrics.instructions_per_inference = m["instructions"]["per_inference"]
    where = f"QEMU {info['board']}, {info['kernels']} kernels, {' '.join(info['cpu_flags'])}"
    assert report.tflm is not None
    report.tflm.update({
        "arena_32bit_bytes": m["arena_bytes"],
        "arena_32bit_source": f"{m['arena_source']}; {where}",
        "arena_note": "kTensorArenaSize in model_ops.h is the 64-bit host figure, an upper "
                      "bound; the 32-bit firmware ran with arena_32bit_bytes",
        "flash_bytes": m["flash_bytes"],
        "ram_bytes": m["ram_bytes"],
        "elf_text_data_bss_arena": " / ".join(f"{m['elf'][k]:,}" for k in
                                              ("text", "data", "bss", "tensor_arena")),
        "stack_high_water_bytes": m["stack_bytes"],
        "memory_source": m["memory_source"],
        "instructions_per_inference": m["instructions"]["per_inference"],
        "instructions_source": m["instructions"]["source"] + " (instructions, not cycles)",
        "firmware": f"{target.relative_to(staging)} ({info['compiler']}; QEMU {info['qemu']})",
    })  # fmt: skip
    report.checks.append(Check(
        "firmware_matches_host_tflm", result.ok,
        result.error or f"output CRC {m['output_digest']} under {where} equals host TFLM's",
    ))  # fmt: skip
    budget = profile.memory
    fits = [(name, used, limit) for name, used, limit in
            (("flash", m["flash_bytes"], budget.flash_bytes), ("RAM", m["ram_bytes"],
             budget.ram_bytes)) if limit is not None]  # fmt: skip
    if fits:
        report.checks.append(Check(
            "firmware_fits_memory", all(used <= limit for _, used, limit in fits),
            "; ".join(f"{name} {kib(used)} of {kib(limit)} (ELF, 32-bit)"
                      for name, used, limit in fits),
        ))  # fmt: skip
    return (f"{m['instructions']['per_inference']:,} instructions/inference, arena "
            f"{m['arena_bytes']:,} B (32-bit) vs {m['arena_host_bytes']:,} B (host), flash "
            f"{m['flash_bytes']:,} B, RAM {m['ram_bytes']:,} B")  # fmt: skip


def _record_verification(result: Any, report: DeployReport) -> None:
    m = report.metrics
    primary = result.primary
    if primary is not None:
        m.float_accuracy = primary.float_accuracy
        m.deployed_accuracy = primary.deployed_accuracy
        m.top1_agreement = primary.top1_agreement
        m.output_sqnr_db = primary.sqnr_db
        m.logits_sqnr_db = primary.logits_sqnr_db
        m.output_max_abs_error = primary.max_abs_error
        m.output_cosine_similarity = primary.cosine_similarity
        m.qat_agreement = primary.qat_agreement
        if primary.qat_agreement is not None:
            report.notes.append(
                f"QAT agreement: {100 * primary.qat_agreement:.1f} % of outputs within one int8 "
                "step of the QAT model's simulated output"
            )
    m.verified_samples = result.samples
    m.validation_samples = result.validation_samples
    m.optimized_vs_reference_steps = result.optimized_vs_reference_steps
    if result.kernel_check is not None:
        m.tflm_max_diff_steps = result.kernel_check.max_diff_steps
    data = result.to_dict()
    report.verification = data
    report.notes += result.notes
