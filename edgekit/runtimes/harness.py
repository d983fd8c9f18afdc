"""Run edgekit's Linux harness (`devices/linux/edgekit_harness.py`) on this host.

The harness loads a `.tflite` in LiteRT, times it and prints one JSON line. Every transport
(this host here; SSH in :mod:`edgekit.bench.linux`) hands it the same argv, built by
:func:`harness_argv`, and reads the line back with :func:`parse_harness_output`. Nothing goes
through a shell: commands are argv lists.

>>> harness_argv(HarnessJob(Path("my model; v2.tflite"), runs=10))[:3]
['my model; v2.tflite', '--runs', '10']
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from edgekit import metrics as M
from edgekit.errors import DeviceFailure


@dataclass
class HarnessJob:
    """One harness run: the model, how many runs, and the delegate and threads."""

    model: Path
    runs: int = 50
    warmup: int = 5
    threads: int | None = None
    delegate: str = "xnnpack"
    input: Path | None = None
    seed: int = 0
    timeout: float = 300.0  # the benchmark step


def harness_path() -> Path:
    """The harness script shipped in the package (`edgekit.devices.linux`)."""
    return Path(str(resources.files("edgekit.devices.linux") / "edgekit_harness.py"))


def harness_argv(job: HarnessJob, model: str | None = None, input_file: str | None = None) -> list:
    """The harness's arguments for `job`; `model` and `input_file` replace the local paths
    (a remote copy's names)."""
    argv = [model or str(job.model), "--runs", str(job.runs), "--warmup", str(job.warmup)]
    argv += ["--delegate", job.delegate, "--seed", str(job.seed)]
    if job.threads:
        argv += ["--threads", str(job.threads)]
    if job.input is not None:
        argv += ["--input", input_file or str(job.input)]
    return argv


def parse_harness_output(stdout: str, stderr: str, code: int, where: str) -> dict[str, Any]:
    """The harness's JSON result, or DeviceFailure with the reason."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    tail = " ".join(stderr.strip().splitlines()[-2:])[:300] or "no output"
    raise DeviceFailure(f"harness on {where} exited with status {code} without a result: {tail}")


def run_argv(
    argv: list[str], timeout: float, step: str, where: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess:
    """Run `argv` (no shell), its output decoded; DeviceFailure if `timeout` passes."""
    try:
        proc = subprocess.run(argv, capture_output=True, input=stdin, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DeviceFailure(f"{step} on {where} timed out after {timeout:.0f} s") from None
    proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


class LocalTransport:
    """This machine: the harness in a subprocess of the current Python."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.where = "local"

    def run(self, job: HarnessJob) -> dict[str, Any]:
        """The harness's JSON result for `job`, with the wall time of the run."""
        argv = [self.python, str(harness_path()), *harness_argv(job)]
        started = time.perf_counter()
        proc = run_argv(argv, job.timeout, "harness run", self.where)
        result = parse_harness_output(proc.stdout, proc.stderr, proc.returncode, self.where)
        result[M.TRANSPORT_MS] = {"run": (time.perf_counter() - started) * 1e3}
        return result
