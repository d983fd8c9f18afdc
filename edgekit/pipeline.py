"""The deploy pipeline: profile → model → convert → check → verify → bundle.

`deploy()` is what `edgekit deploy` calls. It returns a :class:`Bundle` whether or not every
check passed (`bundle.ok`); bad input raises :class:`~edgekit.errors.EdgekitError` before any
file is written. The bundle is assembled in a hidden temporary directory beside its final place
and renamed into place only when complete.

>>> import edgekit
>>> bundle = edgekit.deploy("model.keras", "cortex-m4", calibration="calib.npy")  # doctest: +SKIP
>>> bundle.ok, bundle.report.metrics["tensor_arena_bytes"]                       # doctest: +SKIP
(True, 22544)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.checks import Check, check_model
from edgekit.data import MAX_VALIDATION_SAMPLES, Dataset, load_dataset, random_calibration
from edgekit.errors import EdgekitError, ToolError
from edgekit.models import LoadedModel, load_model
from edgekit.report import Artifact, DeployReport, Step, write_report
from edgekit.targets import TargetProfile, load_target
from edgekit.tflite_model import TFLiteModel, read_tflite

StepListener = Callable[[str, str, Step | None], None]  # (event, name, finished step)


@dataclass
class Bundle:
    """A written deploy bundle: where it is and what its report says."""

    path: Path
    report: DeployReport

    @property
    def ok(self) -> bool:
        return self.report.ok


class _Steps:
    """Times each pipeline step into the report and tells a listener (the CLI's progress)."""

    def __init__(self, report: DeployReport, listener: StepListener | None) -> None:
        self.report, self.listener = report, listener

    @contextlib.contextmanager
    def run(self, name: str) -> Iterator[Step]:
        step = Step(name, True, 0.0, "")
        if self.listener:
            self.listener("start", name, None)
        started = time.perf_counter()
        try:
            yield step
        finally:
            step.seconds = round(time.perf_counter() - started, 3)
            self.report.steps.append(step)
            if self.listener:
                self.listener("end", name, step)

    def skip(self, name: str, why: str) -> None:
        step = Step(name, False, 0.0, why)
        self.report.steps.append(step)
        if self.listener:
            self.listener("end", name, step)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "model"


def _prepare_out(out: Path | str | None, name: str, force: bool) -> tuple[Path, Path]:
    """(final bundle path, staging directory). Fails early on an unwritable or taken path."""
    root = Path(out) if out is not None else Path.cwd() / "edgekit-out"
    final = root / name
    if final.exists() and not force:
        raise EdgekitError(f"{final} already exists; pass --force to replace it")
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=root))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes 0700; a bundle is an ordinary directory
    except OSError as exc:
        raise EdgekitError(f"cannot write to --out {root} ({exc.strerror or exc})") from None
    return final, staging


def _publish(staging: Path, final: Path, force: bool) -> None:
    """Move the finished bundle into place; with force, replace the old one only now."""
    old = None
    if final.exists():
        if not force:
            raise EdgekitError(f"{final} already exists; pass --force to replace it")
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        final.rename(old)
    staging.rename(final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _datasets(
    loaded: LoadedModel,
    profile: TargetProfile,
    calibration: Any,
    validation: Any,
    example_data: tuple[Dataset, Dataset] | None,
) -> tuple[Dataset | None, Dataset, list[str]]:
    notes: list[str] = []
    shape = loaded.input_shape
    calib: Dataset | None = None
    if isinstance(calibration, str) and calibration == "random":
        calib = random_calibration(shape)
        notes.append(
            "calibration was random: quantization ranges are not representative and every "
            "accuracy figure is meaningless"
        )
    elif calibration is not None:
        calib = load_dataset(calibration, shape, "calibration")
    elif example_data is not None:
        calib = example_data[0]
    needs = profile.quantization.needs_calibration and not loaded.is_tflite and not loaded.is_qat
    if needs and calib is None:
        raise EdgekitError(
            f"target {profile.name} quantizes to {profile.quantization.scheme} and needs "
            "calibration data: pass --calibration FILE.npy (or .npz with 'x'), 100-500 "
            "representative inputs, or --calibration random for a smoke test"
        )
    if validation is not None:
        val = load_dataset(validation, shape, "validation", MAX_VALIDATION_SAMPLES)
    elif example_data is not None:
        val = example_data[1].head(MAX_VALIDATION_SAMPLES)
    elif calib is not None:
        val = calib.head(MAX_VALIDATION_SAMPLES)
        notes.append("no --validation given: verified on the calibration inputs, without labels")
    else:
        val = random_calibration(shape, n=100, seed=1)
        notes.append("no validation data: verified on random inputs, without labels")
    if loaded.is_tflite and calibration is not None:
        notes.append("calibration data ignored: a .tflite model is already converted")
    if loaded.is_qat:
        notes.append("QAT model: int8 ranges come from training, not from calibration data")
    return (None if loaded.is_tflite else calib), val, notes


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
    custom_objects: dict | None = None,
    targets_dir: str | Path | None = None,
    on_step: StepListener | None = None,
) -> Bundle:
    """Convert, check and verify `model` for `target`, and write a bundle.

    Args:
      model: a path (.keras, .h5, SavedModel dir, .tflite) or a live Keras model; None with
        `example`.
      target: a profile name/alias, a `.toml` path, or a :class:`TargetProfile`.
      calibration: inputs for full-integer quantization: array, `.npy`/`.npz` path, or
        "random" (accuracy figures then mean nothing).
      validation: `(x, y)`, an array or a path; up to 500 samples are compared.
      out: directory that receives `<model>-<target>/` (default `./edgekit-out`).
      force: replace an existing bundle.
      example: "digits" to deploy the built-in example with its own data.

    Returns the :class:`Bundle`; `bundle.ok` is False when a check failed.
    """
    profile = load_target(target, targets_dir)
    if delegate:
        profile = profile.with_delegate(delegate)
    example_data = None
    if example is not None:
        from edgekit.examples import load_example

        ex = load_example(
            example, progress=(lambda m: on_step("note", m, None)) if on_step else None
        )
        model = model if model is not None else ex.model_path
        example_data = (ex.calibration, ex.validation)
    if model is None:
        raise EdgekitError("no model given: pass a model path or --example digits")

    # Input problems surface before anything is written.
    loaded = load_model(model, custom_objects)
    calib, val, notes = _datasets(loaded, profile, calibration, validation, example_data)
    name = _slug(f"{loaded.name}-{profile.name}")
    final, staging = _prepare_out(out, name, force)
    try:
        report = _run(loaded, profile, calib, val, staging, on_step)
        report.notes = notes + report.notes
        report.data["calibration"] = (
            {"source": calib.source, "samples": len(calib.x)} if calib is not None else None
        )
        report.data["validation"] = {
            "source": val.source,
            "samples": len(val.x),
            "labels": val.y is not None,
        }
        if calib is not None and calib.source == "random":
            report.metrics["accuracy_meaningful"] = False
        _harness_step(profile, staging, final, report)
        report.status = "deployed" if report.ok else "failed"
        write_report(report, staging)
        _publish(staging, final, force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Bundle(final, report)


def _run(
    loaded: LoadedModel,
    profile: TargetProfile,
    calib: Dataset | None,
    val: Dataset,
    staging: Path,
    on_step: StepListener | None,
) -> DeployReport:
    report = DeployReport(
        edgekit_version=__version__,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        model={"name": loaded.name, "source": loaded.source, "kind": loaded.kind},
        target=profile.to_dict(),
    )
    steps = _Steps(report, on_step)
    quant = profile.quantization
    reference: bytes | None = None

    if loaded.is_tflite:
        deployed = loaded.tflite
        steps.skip("convert", "the input is already a .tflite model")
        scheme = "as-given"
    else:
        from edgekit.converters.tflite import convert, convert_for_target

        with steps.run("convert float32 (reference)") as step:
            float_model = convert(loaded, "float32")
            reference = float_model.data
            step.detail = f"{float_model.model_bytes:,} bytes"
        scheme = quant.scheme
        if scheme == "float32":
            converted = float_model
        else:
            with steps.run(f"convert {scheme}") as step:
                converted = convert_for_target(
                    loaded, quant, calibration=None if calib is None else calib.x
                )
                step.detail = (
                    f"{converted.model_bytes:,} bytes, {converted.calibration_samples} "
                    f"calibration samples, {'per-channel' if quant.per_channel else 'per-tensor'}"
                )
        deployed = read_tflite(converted.data, f"{loaded.name}_{scheme}.tflite")
        report.metrics["float_model_bytes"] = len(reference)
        _sparse_size(loaded, converted, deployed, calib, report, steps)

    model_file = staging / f"{_slug(loaded.name)}_{scheme}.tflite"
    model_file.write_bytes(deployed.data)
    report.artifacts.append(Artifact.of(model_file, staging, "deployed model"))
    if reference is not None:
        ref_file = staging / f"{_slug(loaded.name)}_float32.tflite"
        if scheme != "float32":
            ref_file.write_bytes(reference)
            report.artifacts.append(Artifact.of(ref_file, staging, "float32 reference"))

    from edgekit.inspection import summarize

    info = summarize(deployed)
    report.metrics.update(
        model_bytes=info.model_bytes,
        parameters=info.parameters,
        macs=info.macs,
        activation_lower_bound_bytes=info.activation_lower_bound_bytes,
    )

    arena = None
    if profile.is_mcu:
        arena = _tflm_step(deployed, loaded.name, profile, staging, report, steps)

    with steps.run("check against profile") as step:
        report.checks += check_model(
            deployed, profile, arena.tensor_arena_bytes if arena else None, measure=False
        )
        failed = [c.name for c in report.checks if not c.ok]
        step.detail = f"{len(report.checks)} checks, failed: {', '.join(failed) or 'none'}"

    if profile.op_rules == "edgetpu":
        _edgetpu_step(deployed, model_file, staging, report, steps)

    with steps.run("verify") as step:
        try:
            from edgekit.verify import verify

            result = verify(
                deployed.data,
                val,
                reference=reference,
                tflm_arena_bytes=arena.tensor_arena_bytes if arena else None,
                threads=min(profile.threads, os.cpu_count() or 1),
            )
        except Exception as exc:  # a runtime refusing the model is a failed check
            report.checks.append(Check("verification_runs", False, f"{type(exc).__name__}: {exc}"))
            step.detail = "a runtime failed to run the model"
        else:
            step.detail = f"{result.samples} samples on {', '.join(result.runtimes)}"
            _record_verification(result, report)
    return report


SPARSE_FORMAT_THRESHOLD = 0.3


def _sparse_size(loaded, converted, deployed, calib, report: DeployReport, steps: _Steps) -> None:
    """gzip size always; for pruned models also the size in TFLite's sparse format."""
    import gzip

    from edgekit.inspection import weight_sparsity

    sparsity = weight_sparsity(deployed)
    report.metrics["weight_sparsity"] = round(sparsity, 4)
    report.metrics["model_gzip_bytes"] = len(gzip.compress(deployed.data, compresslevel=9))
    if sparsity < SPARSE_FORMAT_THRESHOLD:
        steps.skip(
            "convert sparse format",
            f"weights are {100 * sparsity:.0f} % zeros (< {100 * SPARSE_FORMAT_THRESHOLD:.0f} %)",
        )
        return
    from edgekit.converters.tflite import convert

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
        report.metrics["model_sparse_bytes"] = sparse.model_bytes
        step.detail = (
            f"{sparse.model_bytes:,} bytes with EXPERIMENTAL_SPARSITY (size only; the bundle "
            "keeps the dense model, which every runtime runs)"
        )


def _tflm_step(
    deployed: TFLiteModel,
    name: str,
    profile: TargetProfile,
    staging: Path,
    report: DeployReport,
    steps: _Steps,
):
    from edgekit.converters.tflm import measure_arena, missing_ops, write_tflm_sources

    lacking = missing_ops(deployed)
    if lacking:
        steps.skip("tflm export", f"TFLM has no kernel for {', '.join(lacking)}")
        return None
    with steps.run("tflm export (measure arena)") as step:
        try:
            arena = measure_arena(deployed)
        except ToolError as exc:
            report.checks.append(Check("tflm_runs", False, str(exc)))
            step.detail = str(exc)
            return None
        paths = write_tflm_sources(deployed, _slug(name), staging / "tflm", arena)
        for path in paths:
            report.artifacts.append(Artifact.of(path, staging, "TFLM source"))
        report.metrics.update(
            tensor_arena_bytes=arena.tensor_arena_bytes,
            tensor_arena_minimum_bytes=arena.minimum_bytes,
        )
        step.detail = (
            f"arena {arena.minimum_bytes:,} B measured minimum + {arena.margin_bytes} B margin "
            f"({arena.attempts} interpreter runs); activation lower bound "
            f"{arena.activation_lower_bound_bytes:,} B"
        )
    return arena


def _edgetpu_step(
    deployed: TFLiteModel, model_file: Path, staging: Path, report: DeployReport, steps: _Steps
) -> None:
    from edgekit.converters.edgetpu import analyze, run_compiler

    analysis = analyze(deployed, report.target["memory"]["parameter_cache_bytes"])
    report.edgetpu = {"analysis": analysis.to_dict(), "compiler": None}
    compile_dir = staging / ".edgetpu"
    compile_dir.mkdir()
    run = None
    with steps.run("edgetpu_compiler") as step:
        run = run_compiler(model_file, compile_dir)
        step.ran = run.ran
        step.detail = run.detail
    report.edgetpu["compiler"] = {
        "ran": run.ran,
        "command": run.command,
        "detail": run.detail,
        "log": run.log.to_dict() if run.log else None,
    }
    if not run.ran:
        report.notes.append(run.detail)
    if run.output_model is not None:
        target = staging / run.output_model.name
        run.output_model.rename(target)
        report.artifacts.append(Artifact.of(target, staging, "Edge TPU model"))
        if run.log and run.log.ops_on_cpu:
            report.checks.append(
                Check(
                    "edgetpu_compiler_ops",
                    False,
                    f"compiler left {run.log.ops_on_cpu} ops on the CPU",
                )
            )
    elif run.ran:
        report.checks.append(Check("edgetpu_compiler", False, run.detail))
    for log in compile_dir.glob("*.log"):
        log.rename(staging / log.name)
        report.artifacts.append(Artifact.of(staging / log.name, staging, "Edge TPU compiler log"))
    shutil.rmtree(compile_dir, ignore_errors=True)


def _harness_step(profile: TargetProfile, staging: Path, final: Path, report: DeployReport) -> None:
    """The target's benchmark harness and the one-line command that runs it."""
    from edgekit.bench.bundle import bench_commands, copy_harness

    for path in copy_harness(profile.harness, staging):
        report.artifacts.append(Artifact.of(path, staging, "benchmark harness"))
    roles = {a.role: a.path for a in report.artifacts}
    model = roles.get("Edge TPU model") if profile.delegate == "edgetpu" else None
    if profile.delegate == "edgetpu" and model is None:
        report.notes.append(
            "the on-device benchmark needs the Edge TPU-compiled model: run edgetpu_compiler "
            "(command above) and pass its output to the harness"
        )
    commands = bench_commands(
        profile.harness,
        profile.transport,
        str(final.resolve()),
        model or roles["deployed model"],
        profile.threads,
        profile.delegate,
    )
    report.bench = {"harness": profile.harness, "transport": profile.transport, **commands}


def _record_verification(result, report: DeployReport) -> None:
    from edgekit.verify import COLLAPSE_AGREEMENT

    m = report.metrics
    m.update(
        float_accuracy=result.float_accuracy,
        deployed_accuracy=result.deployed_accuracy,
        top1_agreement=result.top1_agreement,
        output_sqnr_db=result.output_sqnr_db,
        validation_samples=result.samples,
    )
    report.notes += result.notes
    if result.top1_agreement is not None:
        report.checks.append(
            Check(
                "top1_agreement",
                not result.collapsed,
                f"{100 * result.top1_agreement:.1f} % of {result.samples} samples agree with "
                f"the float model (collapse below {100 * COLLAPSE_AGREEMENT:.0f} %)",
            )
        )
    if "tflm" in result.runtimes:
        m.update(
            tflm_accuracy=result.tflm_accuracy,
            tflm_top1_agreement=result.tflm_top1_agreement,
            tflm_max_diff_steps=result.tflm_max_diff_steps,
        )
        steps_ok = result.tflm_max_diff_steps is None or result.tflm_max_diff_steps <= 1
        report.checks.append(
            Check(
                "tflm_matches_litert",
                steps_ok,
                f"largest TFLM vs LiteRT (builtin kernels) output difference: "
                f"{result.tflm_max_diff_steps} quantization step(s) (allowed: 1)",
            )
        )
