"""`deploy()`: profile → model → convert → export → check → verify → bundle.

What `edgekit deploy`, `TargetFitCheck` and `edgekit fit` call. This module only sequences the
stages (:mod:`edgekit.stages`, one module each, each returning a typed frozen result), times
each as a step and reports progress; the report is assembled once, at the end
(:mod:`edgekit.assemble`). Bad input raises :class:`~edgekit.errors.UsageError` before
anything is written (and, where it can be told from the paths alone, before TensorFlow
loads). The bundle is built in a hidden staging directory and swapped into place when complete.

>>> import edgekit
>>> from edgekit.options import DeployOptions
>>> options = DeployOptions(calibration="calib.npy")
>>> done = edgekit.deploy("model.keras", "cortex-m4", options)  # doctest: +SKIP
>>> done.ok, done.report.metrics.tensor_arena_bytes            # doctest: +SKIP
(True, 22544)
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.assemble import StageResults, assemble
from edgekit.bundle import (
    Bundle,
    BundleFiles,
    abandon,
    check_final,
    check_writable,
    missing_dirs,
    prepare,
    publish,
)
from edgekit.errors import UsageError
from edgekit.examples import load_example
from edgekit.options import DeployOptions
from edgekit.progress import StepListener, Steps
from edgekit.report import DeployReport, Role, write_report
from edgekit.stages import analysis, convert, facts, firmware, harness, latency, load
from edgekit.stages.checks import check_stage
from edgekit.stages.edgetpu import EdgeTPUResult, compile_edgetpu
from edgekit.stages.npu import compile_for_npu
from edgekit.stages.tflm import TflmExport, export_tflm
from edgekit.stages.verify import goal_check, verify_deployed
from edgekit.targets import TargetProfile, load_target
from edgekit.tflite_model import TFLiteModel

NO_MODEL = "no model given: pass a model path or --example digits"


@dataclass(frozen=True)
class Deployment:
    """What a deploy returns: the report, the effective profile, the deployed and reference
    models in memory, and the bundle's path (None when `write_bundle=False`)."""

    report: DeployReport
    profile: TargetProfile
    path: Path | None
    deployed: TFLiteModel
    reference: TFLiteModel | None = None

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def bundle(self) -> Bundle:
        if self.path is None:
            raise UsageError("this deploy wrote no bundle (write_bundle=False)")
        return Bundle(self.path, self.report, self.profile)

    def file(self, role: Role) -> Path | None:
        """The path of the first bundle file with `role` (see :meth:`Bundle.file`)."""
        return self.bundle.file(role)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def model_name_from_path(model: Any) -> str | None:
    """The name a model file or SavedModel directory deploys under, without loading it."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        return path.name if path.is_dir() else path.stem
    return None


def deploy(
    model: Any,
    target: str | TargetProfile,
    options: DeployOptions | dict[str, Any] | None = None,
    *,
    on_step: StepListener | None = None,
    **changes: Any,
) -> Deployment:
    """Convert, check and verify `model` for `target`, and write a bundle.

    Args:
      model: a path (.keras, .h5, SavedModel dir, .tflite) or a live Keras model; None with
        `options.example`.
      target: a profile name/alias, a `.toml` path, or a :class:`TargetProfile`.
      options: a :class:`~edgekit.options.DeployOptions` (every setting is documented there);
        keyword arguments change single options (`deploy(m, "coral", calibration=x)`).
      on_step: called with ("start" | "end" | "note", name, finished step) as steps run.

    Returns the :class:`Deployment`; `.ok` is False when a check failed.
    """
    if isinstance(options, dict):  # DeployOptions' fields by name
        options, changes = DeployOptions(), {**options, **changes}
    options = (options or DeployOptions()).with_(**changes)
    if target is None:
        raise UsageError("no target given: pass a profile name (edgekit targets list) or a .toml")
    profile = load_target(target, options.targets_dir)
    if options.delegate:
        profile = profile.with_delegate(options.delegate)
    if options.keep_float:
        convert.mixed_precision_kind(profile, "float")
    if options.min_sqnr is not None or options.max_agreement_drop is not None:
        convert.mixed_precision_kind(profile, options.mixed_with)
    steps = Steps(on_step)
    root = Path(options.out) if options.out is not None else Path.cwd() / "edgekit-out"
    if options.write_bundle:  # a taken or unwritable --out costs no time
        early_name = model_name_from_path(model) if model is not None else options.example
        if early_name is not None:
            check_final(root / slug(f"{early_name}-{profile.name}"), options.force)
        check_writable(root)
    options = load.precheck(model, profile, options)
    example_data = None
    if options.example is not None:
        example = load_example(options.example, progress=steps.note)
        model = model if model is not None else example.model_path
        example_data = (example.calibration, example.validation)
    if model is None:
        raise UsageError(NO_MODEL)
    with steps.run("load model") as step:
        inputs = load.load_inputs(model, profile, options, example_data)
        step.detail = inputs.detail
    if not options.write_bundle:
        with tempfile.TemporaryDirectory(prefix="edgekit-deploy-") as work:
            results = run_stages(inputs, profile, options, Path(work), steps)
        return Deployment(
            assemble(results, steps.steps, bundle=False, found_by=options.found_by),
            profile,
            None,
            results.conversion.deployed,
            results.conversion.reference,
        )
    created = missing_dirs(root)
    staging = None
    try:  # a signal may land while prepare() makes --out: those folders go too
        final, staging = prepare(root, slug(f"{inputs.loaded.name}-{profile.name}"), options.force)
        results = run_stages(inputs, profile, options, staging, steps)
        report = assemble(results, steps.steps, found_by=options.found_by)
        write_report(report, staging)
        publish(staging, final, options.force)
    except BaseException:
        abandon(staging, created)
        raise
    conversion = results.conversion
    return Deployment(report, profile, final, conversion.deployed, conversion.reference)


def run_stages(
    inputs: load.Inputs,
    profile: TargetProfile,
    options: DeployOptions,
    staging: Path,
    steps: Steps,
) -> StageResults:
    """Every stage after loading, in order; files go into `staging`."""
    conversion = _convert(inputs, profile, options, steps)
    deployed, name = conversion.deployed, slug(inputs.loaded.name)
    files = BundleFiles(staging)
    model_file = files.write(
        f"{name}_{conversion.scheme}.tflite", deployed.data, Role.DEPLOYED_MODEL
    )
    if conversion.reference is not None and conversion.scheme != "float32":
        files.write(f"{name}_float32.tflite", conversion.reference.data, Role.FLOAT_REFERENCE)
    r = StageResults(
        profile, inputs, conversion, facts.model_facts(deployed), artifacts=files.artifacts
    )
    if facts.wants_sparse_size(r.facts, conversion):
        if not options.sparse_size:
            r.notes.append(facts.sparse_size_hint(r.facts))
        else:
            with steps.run("convert sparse format") as step:
                r.sparse = facts.sparse_size(inputs.loaded, conversion, inputs.calibration)
                step.detail = r.sparse.detail
    if profile.is_mcu:
        r.tflm = _tflm(deployed, name, files, steps, sources=options.write_bundle)
    if profile.uses_edgetpu:
        with steps.run("edgetpu_compiler") as step:
            work = staging / ".edgetpu"
            work.mkdir()
            r.edgetpu = compile_edgetpu(deployed, model_file, work, profile)
            step.ran, step.detail = r.edgetpu.compiler.ran, r.edgetpu.compiler.detail
            if not r.edgetpu.compiler.ran:  # the full sentence is in the report's Edge TPU part
                step.status, step.detail = "skipped", "not installed: rule-based analysis only"
            _collect_edgetpu(r.edgetpu, work, files)
    if profile.npu is not None:
        with steps.run("vela") as step:
            cpu_arena = r.tflm.arena.tensor_arena_bytes if r.tflm and r.tflm.arena else None
            r.npu = compile_for_npu(model_file, staging / ".vela", profile, True, cpu_arena)
            step.ran, step.detail = r.npu.run.ran, r.npu.run.detail
            for path, name, role in r.npu.bundle_files():
                files.adopt(path, name, role, move=True)
            shutil.rmtree(staging / ".vela", ignore_errors=True)
    with steps.run("check against profile") as step:
        r.checks = check_stage(deployed, profile, r.tflm, r.edgetpu, r.npu)
        failed = ", ".join(c.name for c in r.checks if not c.ok)
        step.detail = f"{len(r.checks)} checks, failed: {failed or 'none'}"
        step.status = "check_failed" if failed else step.status
    with steps.run("verify") as step:
        r.verification = verify_deployed(
            deployed,
            conversion.reference,
            inputs.validation,
            profile,
            r.tflm,
            options.task,
            inputs.loaded.is_qat,
        )
        step.detail = r.verification.detail
        goal = convert.QuantOptions.of(options).goal
        if goal is not None:
            engine = conversion.engine
            search = None if engine is None else (engine.search or {}).get("mixed")
            judged = goal_check(goal, r.verification, search)
            r.verification = replace(r.verification, checks=(*r.verification.checks, judged))
        if r.verification.result is None or not all(c.ok for c in r.verification.checks):
            step.status = "check_failed"
    if profile.is_mcu:
        steps.skip("host latency", latency.MCU_SKIP)
    elif options.host_latency:
        with steps.run("host latency") as step:
            r.latency = latency.host_latency(deployed, profile)
            step.detail = (
                r.latency.error
                or f"p50 {r.latency.p50_ms:.3f} ms on {r.latency.cpu or 'this host'}"
            )
    if conversion.engine is not None:
        r.quantization = analysis.engine_facts(conversion.engine, profile)
        if options.analysis:
            with steps.run("per-layer analysis") as step:
                r.layers = analysis.analyze_layers(
                    conversion.engine,
                    inputs.validation.x,
                    profile,
                    inputs.loaded.worker,
                    staging / "analysis.png",
                    f"{inputs.loaded.name} → {profile.name}",
                )
                step.detail = r.layers.detail
            if r.layers.chart is not None:
                files.add(r.layers.chart, Role.CHART)
    if options.write_bundle:
        r.harness = harness.add_harness(profile, staging, model_file.name, _edgetpu_file(r))
        for path in r.harness.files:
            files.add(path, Role.HARNESS)
    if profile.is_mcu and r.tflm is not None and r.tflm.ok and options.firmware:
        _firmware(r, model_file, files, options, steps)
    return r


def _convert(
    inputs: load.Inputs, profile: TargetProfile, options: DeployOptions, steps: Steps
) -> convert.Conversion:
    loaded = inputs.loaded
    quant = convert.QuantOptions.of(options)
    if convert.quantizes_tflite(loaded, profile):
        with steps.run("quantize float .tflite to int8") as step:
            conversion = convert.quantize_tflite(
                loaded, profile, inputs.calibration, quant, steps.note
            )
            step.detail = conversion.detail
        return conversion
    if loaded.is_tflite:
        steps.skip("convert", "the input is already a .tflite model")
        return convert.Conversion(loaded.tflite, None, "as-given")
    convert.check_qat_target(loaded, profile)
    with steps.run("convert float32 (reference)") as step:
        reference = convert.convert_reference(loaded)
        step.detail = f"{reference.size_bytes:,} bytes"
    scheme = profile.quantization.scheme
    if scheme == "float32":
        return convert.Conversion(reference, reference, scheme)
    with steps.run(f"convert {scheme}") as step:
        calibration = None if inputs.calibration is None else inputs.calibration.x
        deployed, converted = convert.convert_deployed(
            loaded, profile, calibration, quant, reference, steps.note
        )
        step.detail = convert.conversion_detail(converted)
    return convert.Conversion(deployed, reference, scheme, converted)


def _tflm(
    deployed: TFLiteModel, name: str, files: BundleFiles, steps: Steps, sources: bool
) -> TflmExport:
    with steps.run("tflm export (measure arena)") as step:
        tflm = export_tflm(deployed, name, sources=sources)
        step.detail = tflm.detail
        if tflm.missing_ops:  # the runtime_ops check says which; nothing ran
            step.name, step.ran, step.status = "tflm export", False, "skipped"
        for filename, text in tflm.sources.items():
            files.write(f"tflm/{filename}", text, Role.TFLM_SOURCE)
    return tflm


def _collect_edgetpu(result: EdgeTPUResult, work: Path, files: BundleFiles) -> None:
    """The compiler's model and logs move into the bundle; its work folder goes."""
    run = result.compiler
    if run.output_model is not None:
        files.adopt(run.output_model, run.output_model.name, Role.EDGETPU_MODEL, move=True)
    for log in result.logs:
        files.adopt(log, log.name, Role.EDGETPU_LOG, move=True)
    shutil.rmtree(work, ignore_errors=True)


def _edgetpu_file(r: StageResults) -> str | None:
    run = r.edgetpu.compiler if r.edgetpu else None
    return run.output_model.name if run and run.output_model else None


def _firmware(
    r: StageResults, model_file: Path, files: BundleFiles, options: DeployOptions, steps: Steps
) -> None:
    why = firmware.firmware_skip_reason(r.profile, options.tflm_dir)
    if why is not None:
        steps.skip(firmware.STEP, f"{why}: {firmware.ESTIMATE}")
        r.notes.append(f"firmware not built or run under QEMU ({why}): {firmware.ESTIMATE}")
        return
    assert r.tflm is not None and r.tflm.arena is not None
    with steps.run(firmware.STEP) as step:
        r.firmware = firmware.build_and_run(
            r.profile,
            model_file,
            r.tflm.arena.tensor_arena_bytes,
            firmware.tflm_tree(options.tflm_dir),
            steps.note,
        )
        step.detail = r.firmware.detail
        if r.firmware.elf is not None:
            files.adopt(r.firmware.elf, f"firmware/{r.firmware.elf_name}", Role.FIRMWARE)
        note = firmware.keep_arena(r.firmware, r.profile, r.tflm.arena.tensor_arena_bytes, files)
        r.notes += [note] if note else []
