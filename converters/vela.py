"""Arm Ethos-U compilation: run Vela on an int8 `.tflite` and read what it decided.

Vela (PyPI `ethos-u-vela`) rewrites the ops it can place on the NPU into one `ETHOSU` custom
op per NPU subgraph (the `_vela.tflite`) and leaves the others to the CPU. It runs in a child
process with a timeout (model files are untrusted; a crash or hang is an error, not a dead
edgekit). What edgekit reads back:

- per layer (`<name>_per-layer.csv`, `--verbose-performance`): the original op, NPU or CPU,
  Vela's cycle estimate and MACs;
- for each op left on the CPU, Vela's reason (its "Warning (supported operators)" lines)
  and what would move it to the NPU;
- the summary (`<name>_summary_<system>.csv`): SRAM and flash (or DRAM) used, the NPU clock,
  estimated cycles and inference time. Every cycle and time figure is Vela's *estimate* from
  its performance model, not a measurement.

>>> cpu = parse_cpu_reasons('''
... Warning (supported operators) operator: CUMSUM, ofm: 'model/cumsum'
... Reason: Unsupported opType
... ''')
>>> cpu[0].op, cpu[0].tensor, cpu[0].reason
('CUMSUM', 'model/cumsum', 'Unsupported opType')
"""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

VELA_TIMEOUT = 600.0
PACKAGE = "ethos-u-vela"
ESTIMATE = "Vela's estimate (its performance model, not a measurement)"
NO_SIMULATION = (
    "NPU execution is not simulated here (Arm's FVP is not on the package registries): "
    "cycles and times are Vela's estimates"
)


@dataclass(frozen=True)
class VelaLayer:
    """One row of Vela's per-layer table: an op of the original model, or a part of one."""

    op: str  # the original operator, as Vela names it ("Conv2D")
    npu_op: str  # what Vela made of it ("Conv2D", "Relu", "Passthrough" on the CPU)
    target: str  # "NPU" or "CPU"
    cycles: int  # Vela's estimate
    macs: int
    name: str  # the output tensor's name

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class CpuOp:
    """An op Vela leaves on the CPU, why, and what would move it to the NPU."""

    op: str
    tensor: str
    reason: str
    advice: str

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass(frozen=True)
class VelaRun:
    """One Vela compilation: what ran, what it produced, and what it estimated."""

    ran: bool
    command: tuple[str, ...]
    detail: str
    version: str | None = None
    output_model: Path | None = None
    files: tuple[Path, ...] = ()  # its CSV reports
    layers: tuple[VelaLayer, ...] = ()
    cpu_ops: tuple[CpuOp, ...] = ()
    npu_op_count: int | None = None
    cpu_op_count: int | None = None
    sram_used_bytes: int | None = None
    flash_used_bytes: int | None = None  # off-chip flash, or DRAM on Dedicated_Sram systems
    clock_hz: float | None = None
    cycles: int | None = None  # Vela's estimate for one inference
    inference_ms: float | None = None  # Vela's estimate

    @property
    def ok(self) -> bool:
        return self.output_model is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ran": self.ran,
            "command": list(self.command),
            "detail": self.detail,
            "version": self.version,
            "output_model": self.output_model.name if self.output_model else None,
            "npu_op_count": self.npu_op_count,
            "cpu_op_count": self.cpu_op_count,
            "sram_used_bytes": self.sram_used_bytes,
            "flash_used_bytes": self.flash_used_bytes,
            "clock_hz": self.clock_hz,
            "estimated_cycles": self.cycles,
            "estimated_inference_ms": self.inference_ms,
            "estimates": ESTIMATE,
            "layers": [layer.to_dict() for layer in self.layers],
            "cpu_ops": [op.to_dict() for op in self.cpu_ops],
        }


def vela_version() -> str | None:
    """The installed Vela's version, or None when it is not installed."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return None


def vela_command(model: Path, out_dir: Path, npu: Any) -> list[str]:
    """Vela's command line for `model` on the profile's `[npu]` (a :class:`Npu`).

    >>> from edgekit.targets import Npu
    >>> npu = Npu("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram")
    >>> vela_command(Path("m.tflite"), Path("out"), npu)[3:7]
    ['m.tflite', '--accelerator-config', 'ethos-u55-128', '--config']
    """
    command = [sys.executable, "-c", _ENTRY, str(model)]
    command += ["--accelerator-config", npu.accelerator, "--config", npu.config]
    command += ["--system-config", npu.system_config, "--memory-mode", npu.memory_mode]
    if npu.arena_cache_bytes is not None:
        command += ["--arena-cache-size", str(npu.arena_cache_bytes)]
    return command + ["--output-dir", str(out_dir), "--verbose-performance"]


def run_vela(model: Path, out_dir: Path, npu: Any, timeout: float = VELA_TIMEOUT) -> VelaRun:
    """Compile `model` with Vela into `out_dir` (see the module docstring). A Vela that is
    not installed, fails, crashes or hangs is a run that says so, not an exception."""
    version = vela_version()
    command = vela_command(model, out_dir, npu)
    shown = ("vela", *vela_command(Path(model.name), Path("vela"), npu)[3:])  # in the bundle
    if version is None:
        return VelaRun(False, shown, f"Vela is not installed (pip install {PACKAGE})")
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return VelaRun(True, shown, f"Vela {version} did not finish within {timeout:.0f} s")
    text = proc.stdout + proc.stderr
    produced = out_dir / f"{model.stem}_vela.tflite"
    if proc.returncode != 0 or not produced.is_file():
        return VelaRun(True, shown, f"Vela {version} failed: {_last_error(text, proc)}", version)
    layers = parse_per_layer(_read(out_dir / f"{model.stem}_per-layer.csv"))
    summary_files = sorted(out_dir.glob(f"{model.stem}_summary_*.csv"))
    summary = parse_summary(_read(summary_files[0])) if summary_files else {}
    npu_ops, cpu_ops = _op_counts(text)
    figures = summary_figures(summary)
    reasons = cpu_ops_of(layers, parse_cpu_reasons(text))
    detail = f"Vela {version}: {len(reasons)} op(s) left on the CPU" + (
        f", {npu_ops} NPU operations" if npu_ops is not None else ""
    )
    return VelaRun(
        ran=True,
        command=shown,
        detail=detail,
        version=version,
        output_model=produced,
        files=tuple(
            p for p in [out_dir / f"{model.stem}_per-layer.csv", *summary_files] if p.is_file()
        ),
        layers=layers,
        cpu_ops=reasons,
        npu_op_count=npu_ops,
        cpu_op_count=cpu_ops,
        **figures,
    )


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.is_file() else ""


def _last_error(text: str, proc: subprocess.CompletedProcess) -> str:
    """The line that says why: Vela's "Error:"/"RuntimeError:" line, else its last line."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line and not line.startswith(("Traceback", "File ")):
            return line[:300]
    return lines[-1][:300] if lines else f"exit status {proc.returncode}"


def _op_counts(text: str) -> tuple[int | None, int | None]:
    """ "NPU operators = 6 (60.0%)" and "CPU operators = 4 (40.0%)" from Vela's summary."""
    counts = []
    for unit in ("NPU", "CPU"):
        match = re.search(rf"^{unit} operators = (\d+)", text, re.M)
        counts.append(int(match.group(1)) if match else None)
    return counts[0], counts[1]


def parse_per_layer(text: str) -> tuple[VelaLayer, ...]:
    """Vela's `<name>_per-layer.csv` (written with `--verbose-performance`).

    >>> rows = parse_per_layer("Original Operator,NNG Operator,Target,Op Cycles,MAC Count,"
    ...                        "Name\\nConv2D,Conv2D,NPU,8010,221184,conv1\\n")
    >>> rows[0].target, rows[0].cycles, rows[0].name
    ('NPU', 8010, 'conv1')
    """
    layers = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            layers.append(
                VelaLayer(
                    op=row["Original Operator"].strip(),
                    npu_op=row["NNG Operator"].strip(),
                    target=row["Target"].strip(),
                    cycles=int(float(row.get("Op Cycles") or 0)),
                    macs=int(float(row.get("MAC Count") or 0)),
                    name=(row.get("Name") or "").strip(),
                )
            )
        except (KeyError, ValueError):
            continue  # a row in another layout: left out, not guessed
    return tuple(layers)


def grouped(layers: tuple[VelaLayer, ...]) -> list[dict[str, Any]]:
    """The per-layer rows with each original op's lowering folded into one row: a Conv2D
    and its fused Relu, or the 27 NPU operations of one Softmax. Rows are merged when they
    follow each other with the same original op and target, and the later one is part of
    a lowering (another NPU op) or names the same tensor.

    >>> rows = grouped([VelaLayer("Conv2D", "Conv2D", "NPU", 10, 5, "c"),
    ...                 VelaLayer("Conv2D", "Relu", "NPU", 0, 0, "c"),
    ...                 VelaLayer("Softmax", "MaxPool", "NPU", 3, 1, "s_0"),
    ...                 VelaLayer("Softmax", "Sub", "NPU", 2, 0, "s_1")])
    >>> [(r["op"], r["parts"], r["cycles"]) for r in rows]
    [('Conv2D', 2, 10), ('Softmax', 2, 5)]
    """
    out: list[dict[str, Any]] = []
    for layer in layers:
        row = layer.to_dict()
        last = out[-1] if out else None
        if (
            last is not None
            and last["op"] == row["op"]
            and last["target"] == row["target"]
            and (row["npu_op"] != row["op"] or row["name"] == last["name"])
        ):
            last["cycles"] += row["cycles"]
            last["macs"] += row["macs"]
            last["parts"] += 1
            continue
        out.append({**row, "parts": 1})
    return out


def parse_summary(text: str) -> dict[str, str]:
    """The one data row of Vela's `<name>_summary_<system>.csv`, by column name."""
    rows = list(csv.DictReader(io.StringIO(text)))
    return {k.strip(): (v or "").strip() for k, v in rows[0].items()} if rows else {}


def summary_figures(summary: dict[str, str]) -> dict[str, Any]:
    """SRAM and flash in bytes (Vela writes KiB), clock, cycles and time from the summary.

    >>> summary_figures({"sram_memory_used": "11.5", "off_chip_flash_memory_used": "3.7",
    ...                  "dram_memory_used": "0.0", "core_clock": "500000000.0",
    ...                  "cycles_total": "12000", "inference_time": "2.4e-05"})["sram_used_bytes"]
    11776
    """

    def number(key: str) -> float | None:
        try:
            return float(summary[key])
        except (KeyError, ValueError):
            return None

    def kib(key: str) -> int | None:
        value = number(key)
        return None if value is None else round(value * 1024)

    flash = [
        kib(k)
        for k in ("off_chip_flash_memory_used", "on_chip_flash_memory_used", "dram_memory_used")
    ]
    cycles = number("cycles_total")
    seconds = number("inference_time")
    return {
        "sram_used_bytes": kib("sram_memory_used"),
        "flash_used_bytes": sum(f for f in flash if f)
        if any(f is not None for f in flash)
        else None,
        "clock_hz": number("core_clock"),
        "cycles": None if cycles is None else int(cycles),
        "inference_ms": None if seconds is None else seconds * 1000,
    }


_ENTRY = "import sys; from ethosu.vela.vela import main; sys.exit(main())"  # the `vela` script
_WARNING = re.compile(r"^Warning \(supported operators\) operator: (\S+), ofm: '(.*)'$")


def parse_cpu_reasons(text: str) -> tuple[CpuOp, ...]:
    """Vela's reason for each op it leaves on the CPU: the `Reason:` line and the constraint
    lines after it, with what would move the op to the NPU (:func:`advice`)."""
    lines = text.splitlines()
    found = []
    for i, line in enumerate(lines):
        match = _WARNING.match(line.strip())
        if not match:
            continue
        details = []
        for follow in lines[i + 1 :]:
            if not follow.strip() or _WARNING.match(follow.strip()):
                break
            details.append(follow.strip())
        reason = details[0].removeprefix("Reason:").strip() if details else ""
        constraint = " ".join(details[1:])
        found.append(
            CpuOp(
                match.group(1), match.group(2), reason, advice(match.group(1), reason, constraint)
            )
        )
    return tuple(found)


def cpu_ops_of(layers: tuple[VelaLayer, ...], reasons: tuple[CpuOp, ...]) -> tuple[CpuOp, ...]:
    """The ops the compiled model runs on the CPU (the per-layer table's CPU rows), each with
    Vela's reason. Vela also warns about ops it then folds away (a Flatten's SHAPE/PACK):
    those are left out.

    >>> layers = (VelaLayer("Cumsum", "Passthrough", "CPU", 0, 0, "cs"),
    ...           VelaLayer("Conv2D", "Passthrough", "CPU", 0, 0, "conv"))
    >>> [op.reason for op in cpu_ops_of(layers, (CpuOp("CUMSUM", "cs", "Unsupported opType",
    ...         ""), CpuOp("SHAPE", "s", "x", ""), CpuOp("CONV_2D", "conv_act", "stride", "")))]
    ['Unsupported opType', 'stride']
    """
    by_tensor = {op.tensor.removesuffix("_act"): op for op in reasons}
    found = []
    for layer in layers:
        if layer.target != "CPU":
            continue
        # an op with a fused activation is named "<output>_act" in Vela's warning
        known = by_tensor.get(layer.name.removesuffix("_act"))
        found.append(
            known
            or CpuOp(layer.op.upper(), layer.name, "placed on the CPU (Vela printed no reason)", "")
        )
    return tuple(found)


def advice(op: str, reason: str, constraint: str = "") -> str:
    """What would move an op to the NPU, from Vela's reason and the constraint it quotes.

    >>> advice("CONV_2D", "Unsupported kernel stride: 4, 4",
    ...        "Stride>3 is only supported IF (dilation = 1 AND padding = VALID)")
    'meet the constraint: Stride>3 is only supported IF (dilation = 1 AND padding = VALID)'
    >>> advice("CUMSUM", "Unsupported opType")
    'CUMSUM has no NPU kernel in Vela: replace it with ops the NPU runs, or accept it on the CPU'
    """
    text = f"{reason} {constraint}".lower()
    if "unsupported optype" in text:
        return (
            f"{op} has no NPU kernel in Vela: replace it with ops the NPU runs, or accept it "
            "on the CPU"
        )
    if "float32" in text or "datatype" in text and "float" in text:
        return "quantize it: the NPU computes int8 and int16 tensors, not float"
    if "int32" in text and "feature-map" in text:
        return "keep its tensors int8/int16: 32-bit feature maps stay on the CPU"
    if "shapeless" in text or "constant shape" in text or "dynamic" in text:
        return "give every tensor a static shape (edgekit's converter fixes the batch to 1)"
    if constraint:
        return f"meet the constraint: {constraint}"
    return f"see Vela's SUPPORTED_OPS.md for {op}'s constraints"
