"""Edge TPU compilation: run `edgetpu_compiler` when it is installed, and parse its log.

The placement rules edgekit applies without the compiler are in :mod:`edgekit.runtimes.edgetpu`.

>>> from edgekit.converters.edgetpu import parse_compiler_log
>>> log = parse_compiler_log("Number of operations that will run on Edge TPU: 7\\n")
>>> log.ops_on_tpu
7
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CompilerLog:
    """What `edgetpu_compiler` printed, parsed. Absent fields are None."""

    version: str | None = None
    ops_on_tpu: int | None = None
    ops_on_cpu: int | None = None
    total_ops: int | None = None
    subgraphs: int | None = None
    cache_used_bytes: int | None = None
    cache_remaining_bytes: int | None = None
    off_chip_bytes: int | None = None
    operators: tuple[tuple[str, int, str], ...] = ()  # (op, count, status)
    success: bool = False

    def to_dict(self) -> dict:
        data = dict(vars(self))
        data["operators"] = [{"op": o, "count": c, "status": s} for o, c, s in self.operators]
        return data


_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def _bytes(text: str) -> int:
    match = re.fullmatch(r"([\d.]+)\s*(B|KiB|MiB|GiB)", text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return round(float(match.group(1)) * _UNITS[match.group(2)])


def parse_compiler_log(text: str) -> CompilerLog:
    """Parse `edgetpu_compiler` output (stdout or the `.log` it writes)."""
    fields: dict = {}
    patterns = {
        "version": (r"Edge TPU Compiler version ([\w.]+)", str),
        "ops_on_tpu": (r"Number of operations that will run on Edge TPU:\s*(\d+)", int),
        "ops_on_cpu": (r"Number of operations that will run on CPU:\s*(\d+)", int),
        "total_ops": (r"Total number of operations:\s*(\d+)", int),
        "subgraphs": (r"Number of Edge TPU subgraphs:\s*(\d+)", int),
        "cache_used_bytes": (r"On-chip memory used for caching model parameters:\s*(\S+)", _bytes),
        "cache_remaining_bytes": (
            r"On-chip memory remaining for caching model parameters:\s*(\S+)",
            _bytes,
        ),
        "off_chip_bytes": (
            r"Off-chip memory used for streaming uncached model parameters:\s*(\S+)",
            _bytes,
        ),
    }
    for name, (pattern, kind) in patterns.items():
        match = re.search(pattern, text)
        if match:
            fields[name] = kind(match.group(1))
    operators = []
    table = re.search(r"^Operator\s+Count\s+Status\s*$(.*)", text, re.M | re.S)
    if table:
        for line in table.group(1).splitlines():
            row = re.match(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$", line)
            if row:
                operators.append((row.group(1), int(row.group(2)), row.group(3)))
    if "ops_on_tpu" not in fields and operators:
        fields["ops_on_tpu"] = sum(c for _, c, s in operators if s == "Mapped to Edge TPU")
        fields["ops_on_cpu"] = sum(c for _, c, s in operators if s != "Mapped to Edge TPU")
    success = "compiled successfully" in text or "successfully compiled" in text
    return CompilerLog(operators=tuple(operators), success=success, **fields)


@dataclass(frozen=True)
class CompilerRun:
    ran: bool
    command: list[str]
    detail: str
    output_model: Path | None = None
    log: CompilerLog | None = None


def compiler_command(model_name: str, out_dir: str = ".") -> list[str]:
    """The compiler call, relative to the directory holding the model (the bundle)."""
    return ["edgetpu_compiler", "-s", "-o", out_dir, model_name]


def run_compiler(model_path: Path, out_dir: Path, timeout: float = 300) -> CompilerRun:
    """Run `edgetpu_compiler` when it is on PATH; otherwise say so and give the command."""
    exe = shutil.which("edgetpu_compiler")
    if exe is None:
        command = compiler_command(model_path.name)
        return CompilerRun(
            ran=False,
            command=command,
            detail="edgetpu_compiler is not installed here, so the Edge TPU placement is "
            "edgekit's rule-based analysis; to compile, run in the bundle directory: "
            + " ".join(command),
        )
    command = [exe, *compiler_command(model_path.name, str(out_dir.resolve()))[1:]]
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=model_path.parent
        )
    except subprocess.TimeoutExpired:
        return CompilerRun(True, command, f"edgetpu_compiler timed out after {timeout:.0f} s")
    text = proc.stdout + proc.stderr
    log = parse_compiler_log(text)
    produced = out_dir / f"{model_path.stem}_edgetpu.tflite"
    if proc.returncode != 0 or not produced.exists():
        last = text.strip().splitlines()[-1] if text.strip() else f"exit {proc.returncode}"
        return CompilerRun(True, command, f"edgetpu_compiler failed: {last}", None, log)
    return CompilerRun(True, command, "compiled", produced, log)
