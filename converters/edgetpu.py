"""Edge TPU: judge a `.tflite` against the compiler's published rules, and run the compiler.

The rules follow Coral's "TensorFlow models on the Edge TPU" page: 8-bit tensors, static shapes,
at most three innermost dimensions larger than one, a supported op within its limits, and a
single partition: the compiler maps ops in execution order and everything from the first op it
cannot map runs on the CPU.

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

from edgekit.tflite_model import Operator, TFLiteModel

EIGHT_BIT = ("INT8", "UINT8")
PARAMETER_CACHE_BYTES = 8 * 1024 * 1024
SOFTMAX_MAX_ELEMENTS = 16000

# Ops the Edge TPU compiler can map; limits are checked in _op_limit().
SUPPORTED_OPS = frozenset(
    {
        "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
        "EXPAND_DIMS", "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM",
        "UNIDIRECTIONAL_SEQUENCE_LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL",
        "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6",
        "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT",
        "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB",
        "SUM", "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV",
    }
)  # fmt: skip


@dataclass(frozen=True)
class OpPlacement:
    index: int
    op: str
    on_tpu: bool
    reason: str  # why it is not on the TPU; "" when mapped


@dataclass(frozen=True)
class EdgeTPUAnalysis:
    """Where each op would run, by the published rules, without the compiler."""

    placements: tuple[OpPlacement, ...]
    parameter_bytes: int
    cache_bytes: int = PARAMETER_CACHE_BYTES

    @property
    def mapped(self) -> list[OpPlacement]:
        return [p for p in self.placements if p.on_tpu]

    @property
    def on_cpu(self) -> list[OpPlacement]:
        return [p for p in self.placements if not p.on_tpu]

    @property
    def first_cpu_op(self) -> OpPlacement | None:
        """The op where the graph is cut (float IO boundary ops do not cut it)."""
        cpu = [p for p in self.on_cpu if p.reason != BOUNDARY_REASON]
        return cpu[0] if cpu else None

    @property
    def boundary_ops(self) -> list[OpPlacement]:
        return [p for p in self.on_cpu if p.reason == BOUNDARY_REASON]

    @property
    def fits_cache(self) -> bool:
        return self.parameter_bytes <= self.cache_bytes

    def to_dict(self) -> dict:
        return {
            "ops_on_tpu": len(self.mapped),
            "ops_on_cpu": len(self.on_cpu),
            "cpu_ops": [vars(p) for p in self.on_cpu],
            "parameter_bytes": self.parameter_bytes,
            "parameter_cache_bytes": self.cache_bytes,
        }


def _dims_rule(shape: tuple[int, ...]) -> bool:
    """Only the three innermost dimensions may be larger than 1."""
    return all(d == 1 for d in shape[:-3])


def _op_limit(model: TFLiteModel, op: Operator) -> str:
    """The reason an otherwise supported op cannot be mapped, or ""."""
    t = model.tensors
    out = t[op.outputs[0]] if op.outputs else None
    act = op.fused_activation
    if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if op.options.get("dilationHFactor", 1) != op.options.get("dilationWFactor", 1):
            return "x and y dilation differ"
    elif op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION") and act != "NONE":
        return f"fused activation {act} is not supported"
    elif op.name == "FULLY_CONNECTED":
        if op.options.get("weightsFormat", 0) != 0:
            return "only the default weights format is supported"
        if out is not None and sum(d > 1 for d in out.shape) > 1:
            return f"output must be one-dimensional; has shape {list(out.shape)}"
    elif op.name == "SOFTMAX":
        src = t[op.inputs[0]]
        if sum(d > 1 for d in src.shape) > 1:
            return f"input must be one-dimensional; has shape {list(src.shape)}"
        if src.elements > SOFTMAX_MAX_ELEMENTS:
            return f"input has {src.elements} elements (max {SOFTMAX_MAX_ELEMENTS})"
    elif op.name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        axes = model.weights(op.inputs[1]) if len(op.inputs) > 1 else None
        rank = len(t[op.inputs[0]].shape)
        if axes is not None and any(int(a) % max(rank, 1) == 0 for a in axes.ravel()):
            return "reduction over the batch dimension"
    elif op.name == "STRIDED_SLICE":
        strides = model.weights(op.inputs[3]) if len(op.inputs) > 3 else None
        if strides is None or any(int(s) != 1 for s in strides.ravel()):
            return "only strides of 1 are supported"
        if op.options.get("ellipsisMask", 0) or op.options.get("newAxisMask", 0):
            return "ellipsis and new-axis masks are not supported"
    elif op.name in ("PACK", "SPLIT", "PAD") and op.options.get("axis", None) == 0:
        return "operates on the batch dimension"
    return ""


def _op_reason(model: TFLiteModel, op: Operator) -> str:
    if op.name not in SUPPORTED_OPS:
        return "operation is not supported by the Edge TPU"
    for idx in op.inputs + op.outputs:
        if idx < 0:
            continue
        tensor = model.tensors[idx]
        if tensor.dynamic:
            return f"tensor {tensor.name!r} has a dynamic shape"
        if not tensor.is_constant and not _dims_rule(tensor.shape):
            return f"tensor {tensor.name!r} {list(tensor.shape)} has more than 3 dims > 1"
        is_bias = tensor.is_constant and tensor.dtype == "INT32"
        is_index = tensor.is_constant and tensor.dtype in ("INT32", "INT64")
        if tensor.dtype not in EIGHT_BIT and not (is_bias or is_index):
            return f"tensor {tensor.name!r} is {tensor.dtype.lower()}, not 8-bit quantized"
    return _op_limit(model, op)


def _io_boundary(model: TFLiteModel, op: Operator) -> bool:
    """A QUANTIZE of a float model input or a DEQUANTIZE to a float model output: the compiler
    leaves these on the CPU without cutting the graph."""
    if op.name == "QUANTIZE":
        source = model.tensors[op.inputs[0]]
        return op.inputs[0] in model.inputs and source.dtype not in EIGHT_BIT
    if op.name == "DEQUANTIZE":
        return op.outputs[0] in model.outputs
    return False


BOUNDARY_REASON = "float input/output conversion runs on the CPU (the graph is not cut)"


def analyze(model: TFLiteModel, cache_bytes: int | None = None) -> EdgeTPUAnalysis:
    """Place every op on the TPU or CPU by the rules, with one partition."""
    placements = []
    partition_at: Operator | None = None
    for op in model.operators:
        if _io_boundary(model, op):
            placements.append(OpPlacement(op.index, op.name, False, BOUNDARY_REASON))
            continue
        if partition_at is not None:
            reason = f"after the partition at op #{partition_at.index} ({partition_at.name})"
            placements.append(OpPlacement(op.index, op.name, False, reason))
            continue
        reason = _op_reason(model, op)
        if reason:
            partition_at = op
        placements.append(OpPlacement(op.index, op.name, not reason, reason))
    parameter_bytes = sum(t.bytes for t in model.tensors if t.is_constant)
    return EdgeTPUAnalysis(tuple(placements), parameter_bytes, cache_bytes or PARAMETER_CACHE_BYTES)


# --- the real compiler -------------------------------------------------------------------


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
