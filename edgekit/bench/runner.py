"""`bench()`: ship a model to a device, run its target's harness, record the result.

The target profile picks the harness (`linux`, `android`, `mcu`); the device URI picks the
transport. A device that fails mid-run gives a *recorded* run with status `failed` and the
reason; bad input (no such model, no `ssh`/`adb`, no serial port) is an `EdgekitError`.

>>> r = bench("model.tflite", "raspberry-pi-4", "ssh://pi@pi4", runs=100)  # doctest: +SKIP
>>> r.status, r.metrics["latency_ms"]["p50"]                               # doctest: +SKIP
('ok', 3.21)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit import metrics as M
from edgekit.bench.android import run_benchmark_model
from edgekit.bench.linux import SSHTransport
from edgekit.bench.qemu import run_qemu
from edgekit.bench.request import BenchModel, BenchRequest, model_file
from edgekit.bench.result import BenchResult, DeviceFailure
from edgekit.bench.serial_link import run_serial
from edgekit.bench.store import ResultStore
from edgekit.bench.tflm_host import run_tflm_host
from edgekit.bench.uri import parse_device, positive_seconds
from edgekit.bundle import Bundle
from edgekit.data import regular_file
from edgekit.devices.linux.edgekit_harness import HarnessError, load_inputs
from edgekit.errors import UsageError
from edgekit.report import Role
from edgekit.runtimes.harness import HarnessJob, LocalTransport
from edgekit.targets import DELEGATES, TargetProfile, load_target
from edgekit.tflite_model import load_tflite

# BenchModel, BenchRequest and model_file (edgekit.bench.request) are importable from here too.
__all__ = ["BenchModel", "BenchRequest", "bench", "from_harness", "model_file", "resolve_model"]

MAX_ARENA_BYTES = 512 * 1024 * 1024
MAX_RUNS = 100_000_000  # timed or warm-up runs (a soak test may want millions)
MAX_THREADS = 1024
DEVICES_FOR_HARNESS = {
    "linux": ("local", "ssh"),
    "android": ("adb",),
    "mcu": ("serial", "tflm-host", "qemu"),
}


def resolve_model(model: str | Path, delegate: str | None = None, bundle: Any = None) -> BenchModel:
    """A `.tflite` file, or a deploy bundle (its deployed model, or its Edge TPU-compiled
    model when the delegate is `edgetpu`). `bundle` is the loaded Bundle, if any."""
    path = Path(model)
    if bundle is not None:
        role = Role.EDGETPU_MODEL if delegate == "edgetpu" else Role.DEPLOYED_MODEL
        file = bundle.file(role)
        if file is None:
            if role == Role.EDGETPU_MODEL:
                raise UsageError(
                    f"{path}: no Edge TPU-compiled model in the bundle (edgetpu_compiler was "
                    "absent at deploy); compile it with the command in report.md, or bench "
                    "on the CPU with --delegate xnnpack"
                )
            raise UsageError(f"{path}: the bundle's report lists no deployed model")
        found = model_file(file)
        arena = bundle.report.metrics.tensor_arena_bytes
        if arena is not None and (
            not isinstance(arena, int)
            or isinstance(arena, bool)
            or not 0 < arena <= MAX_ARENA_BYTES
        ):
            raise UsageError(
                f"{path}: report.json gives tensor_arena_bytes {arena!r}; expected a positive "
                f"integer up to {MAX_ARENA_BYTES:,}"
            )
        found.arena_bytes = arena
        return found
    if not path.exists():
        raise UsageError(f"{path}: no such model or bundle")
    if path.suffix != ".tflite":
        raise UsageError(f"{path}: expected a .tflite model or a deploy bundle directory")
    return model_file(path)


def check_input_file(path: Path, model: Path) -> None:
    """A bad `--input` is bad input (exit 2), caught here, not a failed run on the device.

    The check is the harness's own (`load_inputs`), against the model's input tensors.
    """
    regular_file(path, "input")
    inputs = [
        {"shape": t.shape, "dtype": np.dtype(t.dtype.lower()), "name": t.name}
        for t in load_tflite(model).input_tensors()
    ]
    try:
        load_inputs(str(path), inputs)
    except HarnessError as exc:
        raise UsageError(str(exc)) from None
    except Exception as exc:  # zipfile/zlib/numpy errors on a damaged archive
        detail = " ".join(str(exc).split())[:200]
        raise UsageError(
            f"{path}: not a readable input file ({type(exc).__name__}: {detail})"
        ) from None


def bench(
    model: str | Path,
    target: str | TargetProfile | None = None,
    device: str = "local",
    *,
    runs: int = 50,
    warmup: int = 5,
    threads: int | None = None,
    delegate: str | None = None,
    input: str | Path | None = None,
    timeout: float = 300.0,
    remote_python: str = "python3",
    ssh_config: str | Path | None = None,
    benchmark_binary: str | Path | None = None,
    tflm_dir: str | Path | None = None,
    db: str | Path | None = None,
    record: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Benchmark `model` on `device` with `target`'s harness; record it in the results store.

    Returns the :class:`BenchResult` (status `failed` with the reason when the device failed).
    """
    for flag, value, low, high in (
        ("--runs", runs, 1, MAX_RUNS),
        ("--warmup", warmup, 0, MAX_RUNS),
        ("--threads", threads, 1, MAX_THREADS),
    ):
        if value is not None and not low <= value <= high:
            raise UsageError(f"{flag} must be between {low} and {high:,}; received {value}")
    timeout = positive_seconds(timeout, "--timeout")
    uri = parse_device(device)
    bundle = None
    if not os.path.lexists(model):
        raise UsageError(f"{model}: no such model or bundle")
    if Path(model).is_dir():
        bundle = Bundle.load(model)  # read once: the effective profile and the files
    if target is not None:
        profile = load_target(target)
    elif bundle is not None:
        profile = bundle.profile  # as deployed: delegate, scheme, budgets
    else:
        raise UsageError("no target: pass --target (a bare .tflite does not name one)")
    if delegate is not None and delegate in DELEGATES:
        profile = profile.with_delegate(delegate)
    found = resolve_model(model, delegate or profile.delegate, bundle)
    allowed = DEVICES_FOR_HARNESS[profile.harness]
    if uri.scheme not in allowed:
        raise UsageError(
            f"target {profile.name} is benchmarked by the {profile.harness} harness; "
            f"--device must be {' or '.join(allowed)} (received {uri.redacted})"
        )
    input_path = Path(input) if input is not None else None
    if input_path is not None:
        check_input_file(input_path, found.path)
    settings: dict[str, Any] = {
        "runs": runs,
        "warmup": warmup,
        "threads": threads or profile.threads,
        "delegate": delegate or profile.delegate,
        "input": str(input_path) if input_path else "random",
    }
    request = BenchRequest(
        model=found,
        device=uri,
        profile=profile,
        settings=settings,
        input=input_path,
        timeout=timeout,
        remote_python=remote_python,
        ssh_config=ssh_config,
        benchmark_binary=benchmark_binary,
        tflm_dir=tflm_dir,
        progress=on_progress or (lambda message: None),
    )
    store = None
    if record:  # opened (and checked writable) before the run: no result is lost after it
        store = ResultStore(db)
    try:
        result = _RUNNERS[profile.harness](request)
    except DeviceFailure as exc:
        result = BenchResult(status="failed", error=str(exc), **request.identity())
    if store is not None:
        store.add(result)
    return result


def from_harness(raw: dict[str, Any], request: BenchRequest) -> BenchResult:
    """A BenchResult from the JSON the Linux harness (or a board) printed."""
    runtime = raw.get("runtime") or {}
    delegate = raw.get("delegate") or {}
    metrics = dict(raw.get("metrics") or {})
    if delegate:
        metrics.update(
            {
                M.DELEGATE_NODES: delegate.get("nodes"),
                M.DELEGATE_PARTITIONS: delegate.get("partitions"),
                M.TOTAL_NODES: delegate.get(M.TOTAL_NODES),
                M.FALLBACK_TO_CPU: delegate.get(M.FALLBACK_TO_CPU),
            }
        )
    if raw.get(M.TRANSPORT_MS):
        metrics[M.TRANSPORT_MS] = raw[M.TRANSPORT_MS]
    return BenchResult(
        status="ok" if raw.get("status") == "ok" else "failed",
        error=raw.get("error"),
        runtime=runtime.get("name"),
        runtime_version=runtime.get("version"),
        delegate=delegate.get("applied"),
        metrics=metrics,
        device_info=raw.get("device") or {},
        latencies_ms=list(raw.get("latencies_ms") or []),
        **request.identity(),
    )


def _run_linux(request: BenchRequest) -> BenchResult:
    settings = request.settings
    if settings["delegate"] in ("gpu", "nnapi"):
        raise UsageError(
            f"delegate {settings['delegate']} is Android-only; the Linux harness "
            "takes xnnpack, none, edgetpu or a delegate library path"
        )
    job = HarnessJob(
        model=request.model.path,
        runs=settings["runs"],
        warmup=settings["warmup"],
        threads=settings["threads"],
        delegate=settings["delegate"],
        input=request.input,
        timeout=request.timeout,
    )
    if request.device.scheme == "ssh":
        transport = SSHTransport(
            request.device, remote_python=request.remote_python, ssh_config=request.ssh_config
        )
    else:
        transport = LocalTransport()
    request.progress(f"running the Linux harness on {request.device.redacted} ({job.runs} runs)")
    return from_harness(transport.run(job), request)


def _run_mcu(request: BenchRequest) -> BenchResult:
    if request.device.scheme == "tflm-host":
        return run_tflm_host(request)
    if request.device.scheme == "qemu":
        return run_qemu(request)
    return run_serial(request)


_RUNNERS = {"linux": _run_linux, "android": run_benchmark_model, "mcu": _run_mcu}
