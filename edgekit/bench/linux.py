"""Run the Linux harness (`devices/linux/edgekit_harness.py`) here or over SSH.

Both transports hand the harness the same argv and read back its one JSON line; the harness
itself and the local run live in :mod:`edgekit.runtimes.harness`. Nothing goes through a
local shell: commands are argv lists. Over SSH one remote shell is unavoidable, so
every word of the remote command is `shlex.quote`d, and the files copied there get fixed names
(`model.tflite`, `input.npy`) in a private `mktemp -d` directory, whatever the local names.

>>> harness_argv(HarnessJob(Path("my model; v2.tflite"), runs=10))[:3]
['my model; v2.tflite', '--runs', '10']
"""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from edgekit import metrics as M
from edgekit.bench.uri import DeviceURI
from edgekit.errors import DeviceFailure, ToolError, UsageError
from edgekit.runtimes.harness import (
    HarnessJob,
    LocalTransport,
    harness_argv,
    harness_path,
    parse_harness_output,
    run_argv,
)

# The harness names moved to edgekit.runtimes.harness are still importable from here.
__all__ = [
    "HarnessJob",
    "LocalTransport",
    "SSHTransport",
    "harness_argv",
    "harness_path",
    "parse_harness_output",
]

STEP_TIMEOUT = 60.0  # seconds for each remote step that is not the benchmark itself
# Run by the device's Python (3.7 on Coral boards): unpack the tar stream on stdin into argv[1].
UNPACK = (
    "import sys, tarfile; archive = tarfile.open(fileobj=sys.stdin.buffer, mode='r|'); "
    "archive.extractall(sys.argv[1], **({'filter': 'data'} if hasattr(tarfile, 'data_filter') "
    "else {}))"
)


def _ssh_reason(proc: subprocess.CompletedProcess) -> str:
    """Why ssh itself failed (exit 255): its last line on stderr."""
    return " ".join(proc.stderr.strip().splitlines()[-1:]) or "connection failed"


class SSHTransport:
    """A Linux device over the system OpenSSH client (BatchMode: keys/agent, no prompts)."""

    def __init__(
        self,
        device: DeviceURI,
        *,
        remote_python: str = "python3",
        ssh_config: str | Path | None = None,
        connect_timeout: int = 10,
    ) -> None:
        if shutil.which("ssh") is None:
            raise UsageError("'ssh' not found on PATH; install the OpenSSH client")
        if ssh_config is not None and not Path(ssh_config).is_file():
            raise UsageError(f"ssh config {ssh_config} does not exist")
        self.device = device
        self.where = device.redacted
        self.remote_python = remote_python
        self.destination = f"{device.user}@{device.host}" if device.user else str(device.host)
        self.options = [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={connect_timeout}",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=2",
        ]
        if ssh_config is not None:
            self.options = ["-F", str(ssh_config), *self.options]

    def ssh_argv(self, remote_command: str) -> list[str]:
        port = ["-p", str(self.device.port)] if self.device.port else []
        return ["ssh", *self.options, *port, "--", self.destination, remote_command]

    def _ssh(
        self, command: str, timeout: float, step: str, stdin: bytes | None = None
    ) -> subprocess.CompletedProcess:
        proc = run_argv(self.ssh_argv(command), timeout, step, self.where, stdin)
        if proc.returncode == 255:  # ssh's own failure: connection refused, lost, auth
            raise DeviceFailure(f"{step}: ssh to {self.where} failed: {_ssh_reason(proc)}")
        return proc

    def _connect(self) -> str:
        """The first step, a private directory on the device. If ssh fails here no connection
        was ever made: that is an error (a mistyped host, a device that is off), not a run."""
        command = 'mktemp -d "${TMPDIR:-/tmp}/edgekit.XXXXXX"'
        proc = run_argv(self.ssh_argv(command), STEP_TIMEOUT, "mktemp", self.where)
        if proc.returncode == 255:
            reason = _ssh_reason(proc)
            error = UsageError if "Could not resolve hostname" in reason else ToolError
            raise error(f"cannot connect to {self.where}: {reason}")
        remote_dir = proc.stdout.strip()
        if proc.returncode != 0 or not remote_dir.startswith("/"):
            raise DeviceFailure(f"mktemp on {self.where} failed: {proc.stderr.strip()[:200]}")
        return remote_dir

    def _copy(self, files: dict[str, Path], remote_dir: str) -> None:
        """Copy over the ssh connection itself, as a tar stream the device's Python unpacks:
        scp needs an sftp server (OpenSSH 9's scp), which many boards lack."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for name, source in files.items():
                archive.add(source, arcname=name)
        command = " ".join(shlex.quote(w) for w in (self.remote_python, "-c", UNPACK, remote_dir))
        copy = self._ssh(command, STEP_TIMEOUT, "copy", buffer.getvalue())
        if copy.returncode == 127:
            raise DeviceFailure(
                f"{self.remote_python!r} not found on {self.where} (use --remote-python)"
            )
        if copy.returncode != 0:
            reason = " ".join(copy.stderr.strip().splitlines()[-1:])[:200]
            raise DeviceFailure(f"copy to {self.where} failed: {reason or copy.returncode}")

    def run(self, job: HarnessJob) -> dict[str, Any]:
        timings: dict[str, float] = {}
        clock = time.perf_counter
        started = clock()
        remote_dir = self._connect()
        try:
            files = {"edgekit_harness.py": harness_path(), "model.tflite": job.model}
            if job.input is not None:
                files["input" + job.input.suffix] = job.input
            self._copy(files, remote_dir)
            timings["setup"] = (clock() - started) * 1e3
            input_name = f"input{job.input.suffix}" if job.input is not None else None
            words = [self.remote_python, "edgekit_harness.py"]
            words += harness_argv(job, "model.tflite", input_name)
            command = " ".join(shlex.quote(w) for w in words)
            # coreutils `timeout` (when the device has it) ends a harness the client gave up on.
            # No `exec`: a harness killed on the device (OOM killer, kill -9) must come back as
            # its exit status (137), not as a session ended by a signal, which ssh reports as
            # its own failure (255, "connection failed").
            remote = (
                f"cd {shlex.quote(remote_dir)} && if command -v timeout >/dev/null 2>&1; "
                f"then timeout {int(job.timeout) + 5} {command}; else {command}; fi"
            )
            started = clock()
            proc = self._ssh(remote, job.timeout + 10, "harness run")
            timings["run"] = (clock() - started) * 1e3
            if proc.returncode == 127:
                raise DeviceFailure(
                    f"{self.remote_python!r} not found on {self.where} (use --remote-python)"
                )
            result = parse_harness_output(proc.stdout, proc.stderr, proc.returncode, self.where)
        finally:
            started = clock()
            try:
                self._ssh(f"rm -rf -- {shlex.quote(remote_dir)}", STEP_TIMEOUT, "cleanup")
            except DeviceFailure:
                pass  # the device is gone; the run's own error says so
            timings["cleanup"] = (clock() - started) * 1e3
        result[M.TRANSPORT_MS] = timings
        return result
