"""Android: TFLite's official `benchmark_model` binary, driven over `adb`.

edgekit pushes the model (and the binary, when `--benchmark-binary PATH` is given) to
`/data/local/tmp/edgekit/`, runs it with flags from the target profile and parses its log into
the common result schema. `adb shell` joins its arguments into one remote shell command, so
each word is `shlex.quote`d. The parser reads the forms benchmark_model documents (times in
microseconds, e-notation allowed):

    count=50 first=1234 curr=1190 min=1100 max=1500 avg=1201.5 std=42
    Inference timings in us: Init: 12345, First inference: 1234, Warmup (avg): 1210, Inference (avg): 1201.5
    Memory footprint delta from the start of the tool (MB): init=3.1 overall=4.5
    Peak memory footprint (MB): init=3.1 overall=4.5            (older releases)
    Replacing 9 out of 10 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 2 partitions

>>> parse_benchmark_output("count=3 first=2e3 curr=900 min=800 max=2000 avg=1.2e3 std=10")[
...     "latency_ms"]["mean"]
1.2
"""  # noqa: E501

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from edgekit import metrics as M
from edgekit.bench.result import BenchResult, DeviceFailure
from edgekit.errors import UsageError

REMOTE_DIR = "/data/local/tmp/edgekit"
DEFAULT_BINARY = "/data/local/tmp/benchmark_model"
NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_COUNT = re.compile(rf"count=(\d+)((?:\s+\w+={NUMBER})+)")
_PAIR = re.compile(rf"(\w+)=({NUMBER})")
_TIMINGS = re.compile(
    rf"Inference timings in us: Init: ({NUMBER}), First inference: ({NUMBER}), "
    rf"Warmup \(avg\): ({NUMBER}), Inference \(avg\): ({NUMBER})"
)
_MEMORY = re.compile(
    rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
    rf"init=({NUMBER}) overall=({NUMBER})"
)
_REPLACING = re.compile(
    r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]*)\) node"
    r"(?:, yielding (\d+) partitions)?"
)
_DELEGATE_NAMES = {"xnnpack": "XNNPack", "gpu": "Gpu", "nnapi": "Nnapi"}


def benchmark_flags(settings: dict[str, Any]) -> list[str]:
    """benchmark_model flags for the run settings (threads, warmup, runs, delegate).

    >>> benchmark_flags({"threads": 4, "warmup": 5, "runs": 50, "delegate": "gpu"})[-3:]
    ['--use_xnnpack=false', '--use_gpu=true', '--use_nnapi=false']
    """
    delegate = settings["delegate"]
    if delegate not in ("xnnpack", "gpu", "nnapi", "none"):
        raise UsageError(
            f"delegate {delegate!r} is not one benchmark_model takes (xnnpack, gpu, nnapi, none)"
        )
    return [
        f"--num_threads={settings['threads']}",
        f"--warmup_runs={settings['warmup']}",
        f"--num_runs={settings['runs']}",
        "--min_secs=0",
        f"--use_xnnpack={str(delegate == 'xnnpack').lower()}",
        f"--use_gpu={str(delegate == 'gpu').lower()}",
        f"--use_nnapi={str(delegate == 'nnapi').lower()}",
    ]


def parse_benchmark_output(text: str, delegate: str | None = None) -> dict[str, Any]:
    """Metrics from benchmark_model's log (see the module docstring for the forms)."""
    metrics: dict[str, Any] = {}
    counts = list(_COUNT.finditer(text))
    if counts:  # the last block is the timed runs (the one before it is the warm-up)
        pairs = {k: float(v) for k, v in _PAIR.findall(counts[-1].group(2))}
        us = 1e-3
        stats = {k: pairs[k] * us for k in ("min", "max", "avg", "std") if k in pairs}
        stats["mean"] = stats.pop("avg", None)
        for key, name in (("p50", "p50"), ("median", "p50"), ("p90", "p90"), ("p99", "p99")):
            if key in pairs:
                stats[name] = pairs[key] * us
        metrics[M.LATENCY_MS] = stats
        metrics[M.RUN_COUNT] = int(counts[-1].group(1))
        if "first" in pairs:
            metrics[M.FIRST_INFERENCE_MS] = pairs["first"] * us
    timings = _TIMINGS.search(text)
    if timings:
        init, first, warmup, avg = (float(g) * 1e-3 for g in timings.groups())
        metrics.update({M.INIT_MS: init, M.FIRST_INFERENCE_MS: first, M.WARMUP_AVG_MS: warmup})
        metrics.setdefault(M.LATENCY_MS, {})["mean"] = avg
    memory = list(_MEMORY.finditer(text))
    if memory:
        metrics[M.INIT_MEMORY_MB] = float(memory[-1].group(1))
        metrics[M.PEAK_RSS_MB] = float(memory[-1].group(2))
    replaced = [m for m in _REPLACING.finditer(text)]
    wanted = _DELEGATE_NAMES.get(delegate or "")
    if wanted:
        replaced = [m for m in replaced if wanted.lower() in m.group(3).lower()] or []
    if replaced:
        nodes, total = int(replaced[-1].group(1)), int(replaced[-1].group(2))
        metrics.update(
            {
                M.DELEGATE_NAME: replaced[-1].group(3),
                M.DELEGATE_NODES: nodes,
                M.TOTAL_NODES: total,
                M.DELEGATE_PARTITIONS: int(replaced[-1].group(4) or 0) or None,
                M.FALLBACK_TO_CPU: nodes < total,
            }
        )
    elif delegate and delegate != "none":
        metrics.update({M.DELEGATE_NODES: 0, M.FALLBACK_TO_CPU: True})
    return metrics


class ADB:
    """The `adb` binary, for one device (argv lists; only `shell` needs quoting)."""

    def __init__(self, serial: str | None, timeout: float = 60.0) -> None:
        self.binary = shutil.which("adb")
        if self.binary is None:
            raise UsageError("'adb' not found on PATH; install Android platform-tools")
        self.serial = serial
        self.timeout = timeout

    def argv(self, *args: str) -> list[str]:
        target = ["-s", self.serial] if self.serial else []
        return [self.binary or "adb", *target, *args]

    def shell_argv(self, words: list[str]) -> list[str]:
        return self.argv("shell", " ".join(shlex.quote(w) for w in words))

    def run(self, argv: list[str], step: str, timeout: float | None = None) -> str:
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=timeout or self.timeout
            )
        except subprocess.TimeoutExpired:
            limit = timeout or self.timeout
            raise DeviceFailure(f"adb {step} timed out after {limit:.0f} s") from None
        if proc.returncode != 0:
            reason = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["?"]
            raise DeviceFailure(f"adb {step} failed: {reason[0][:200]}")
        return proc.stdout + proc.stderr

    def check_device(self) -> None:
        """A one-line error when the device is absent (before anything is recorded)."""
        try:
            state = self.run(self.argv("get-state"), "get-state", 15).strip()
        except DeviceFailure as exc:
            who = f"device {self.serial}" if self.serial else "an Android device"
            raise UsageError(f"{who} not reachable over adb ({exc})") from None
        if state.splitlines()[-1:] != ["device"]:
            raise UsageError(f"adb device {self.serial or ''} is {state!r}, not ready")


def command_lines(request: Any, adb: ADB) -> list[tuple[str, list[str]]]:
    """The adb steps for a run, as (step name, argv) pairs (also what tests inspect)."""
    binary = DEFAULT_BINARY
    steps = [("mkdir", adb.shell_argv(["mkdir", "-p", REMOTE_DIR]))]
    if request.benchmark_binary is not None:
        binary = f"{REMOTE_DIR}/benchmark_model"
        steps.append(("push binary", adb.argv("push", str(request.benchmark_binary), binary)))
        steps.append(("chmod", adb.shell_argv(["chmod", "755", binary])))
    model = f"{REMOTE_DIR}/model.tflite"
    steps.append(("push model", adb.argv("push", str(request.model.path), model)))
    flags = benchmark_flags(request.settings)
    steps.append(("benchmark_model", adb.shell_argv([binary, f"--graph={model}", *flags])))
    return steps


def run_benchmark_model(request: Any) -> BenchResult:
    if request.benchmark_binary is not None and not Path(request.benchmark_binary).is_file():
        raise UsageError(f"{request.benchmark_binary}: no such benchmark_model binary")
    adb = ADB(request.device.serial)
    adb.check_device()
    output = ""
    for step, argv in command_lines(request, adb):
        request.progress(f"adb: {step}")
        timeout = request.timeout if step == "benchmark_model" else None
        output = adb.run(argv, step, timeout)
    metrics = parse_benchmark_output(output, request.settings["delegate"])
    if M.LATENCY_MS not in metrics:
        raise DeviceFailure("benchmark_model printed no timings: " + output.strip()[-200:])
    delegate = request.settings["delegate"]
    applied = delegate if metrics.get(M.DELEGATE_NODES) else None
    return BenchResult(
        status="ok",
        runtime="benchmark_model",
        delegate=None if delegate == "none" else applied,
        metrics=metrics,
        device_info={"adb_serial": request.device.serial},
        **request.identity(),
    )
