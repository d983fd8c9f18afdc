"""TFLite → TensorFlow Lite for Microcontrollers: C sources, op resolver and a measured arena.

The arena size is measured, not guessed: :func:`measure_arena` binary-searches the smallest
`arena_size` with which the real TFLM interpreter (`tflite_micro`) allocates and invokes the model.

>>> from edgekit.converters.tflm import resolver_method
>>> resolver_method("DEPTHWISE_CONV_2D")
'AddDepthwiseConv2D'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgekit._fdcapture import capture_native_output
from edgekit.errors import ToolError
from edgekit.tflite_model import TFLiteModel

# Builtin op → MicroMutableOpResolver method. An op missing here is one TFLM lacks.
TFLM_RESOLVER_METHODS = {
    "ABS": "AddAbs", "ADD": "AddAdd", "ADD_N": "AddAddN", "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin", "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul", "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs", "BROADCAST_TO": "AddBroadcastTo", "CAST": "AddCast",
    "CEIL": "AddCeil", "CONCATENATION": "AddConcatenation", "CONV_2D": "AddConv2D",
    "COS": "AddCos", "CUMSUM": "AddCumSum", "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "DEQUANTIZE": "AddDequantize", "DIV": "AddDiv",
    "ELU": "AddElu", "EQUAL": "AddEqual", "EXP": "AddExp", "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill", "FLOOR": "AddFloor", "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod", "FULLY_CONNECTED": "AddFullyConnected", "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd", "GREATER": "AddGreater", "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish", "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D", "LEAKY_RELU": "AddLeakyRelu", "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual", "LOG": "AddLog", "LOG_SOFTMAX": "AddLogSoftmax",
    "LOGICAL_AND": "AddLogicalAnd", "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr", "LOGISTIC": "AddLogistic", "MAX_POOL_2D": "AddMaxPool2D",
    "MAXIMUM": "AddMaximum", "MEAN": "AddMean", "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad", "MUL": "AddMul", "NEG": "AddNeg", "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack", "PAD": "AddPad", "PADV2": "AddPadV2", "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize", "REDUCE_MAX": "AddReduceMax", "RELU": "AddRelu",
    "RELU6": "AddRelu6", "RESHAPE": "AddReshape", "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor", "ROUND": "AddRound",
    "RSQRT": "AddRsqrt", "SELECT_V2": "AddSelectV2", "SHAPE": "AddShape", "SIN": "AddSin",
    "SLICE": "AddSlice", "SOFTMAX": "AddSoftmax", "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth", "SPLIT": "AddSplit", "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt", "SQUARE": "AddSquare", "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze", "STRIDED_SLICE": "AddStridedSlice", "SUB": "AddSub",
    "SUM": "AddSum", "SVDF": "AddSvdf", "TANH": "AddTanh", "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv", "UNPACK": "AddUnpack", "ZEROS_LIKE": "AddZerosLike",
}  # fmt: skip

# TFLM aligns the arena start to 16 bytes; an unaligned buffer can lose up to 15 of them.
ARENA_ALIGNMENT_MARGIN = 16
_MAX_ARENA = 512 * 1024 * 1024


def resolver_method(op: str) -> str | None:
    """The `MicroMutableOpResolver` method that registers `op`, or None if TFLM lacks it."""
    return TFLM_RESOLVER_METHODS.get(op)


def missing_ops(model: TFLiteModel) -> list[str]:
    """Ops of the model that TFLM has no kernel for."""
    return sorted({name for name, _ in model.used_opcodes if name not in TFLM_RESOLVER_METHODS})


@dataclass(frozen=True)
class ArenaMeasurement:
    """The tensor arena, measured with the `tflite_micro` interpreter on this host.

    `minimum_bytes` is the smallest arena that allocated and ran one inference; one byte less
    failed. `tensor_arena_bytes` adds the alignment margin. It is measured on a 64-bit host:
    TFLM's per-tensor bookkeeping holds pointers, so a 32-bit MCU needs the same or less.
    """

    minimum_bytes: int
    margin_bytes: int
    activation_lower_bound_bytes: int
    attempts: int

    @property
    def tensor_arena_bytes(self) -> int:
        return self.minimum_bytes + self.margin_bytes


def _tflm_runtime():
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def tflm_interpreter(data: bytes, arena_size: int):
    """A TFLM interpreter for `data`; native error text becomes the exception message.

    Only call this with an arena known to be large enough (see :func:`measure_arena`): the
    `tflite_micro` wrapper crashes the process, rather than raising, when an arena is too small
    for its own bookkeeping.
    """
    runtime = _tflm_runtime()
    model = bytes(data)
    with capture_native_output() as out:
        try:
            interp = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
            interp._edgekit_model = model  # keep the flatbuffer alive as long as the interpreter
            return interp
        except Exception as exc:
            err = exc
    raise RuntimeError(_first_error(out.text) or str(err))


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if re.search(r"Didn't find op|not supported|Failed|failed|error", line, re.I):
            return line.strip()
    return text.strip().splitlines()[0] if text.strip() else ""


# Each probe runs in a worker process: `tflite_micro` segfaults (instead of raising) when an
# arena is too small for its persistent "tail" allocations, and a crash must not take edgekit
# down with it. The worker answers one JSON line per arena size; a dead worker means "fails".
_PROBE_WORKER = r"""
import json, os, sys, tempfile
import numpy as np
proto = os.fdopen(os.dup(1), "w")
log = tempfile.TemporaryFile(mode="w+b")
os.dup2(log.fileno(), 1)
os.dup2(log.fileno(), 2)
from tflite_micro.python.tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
for line in sys.stdin:
    log.seek(0)
    log.truncate()
    try:
        interp = runtime.Interpreter.from_bytes(model, arena_size=int(line))
        details = interp.get_input_details(0)
        interp.set_input(np.zeros(details["shape"], details["dtype"]), 0)
        interp.invoke()
        ok = True
    except Exception:
        ok = False
    sys.stdout.flush()
    log.seek(0)
    text = log.read().decode("utf-8", "replace")
    proto.write(json.dumps({"ok": ok, "text": text[-2000:]}) + "\n")
    proto.flush()
"""


class ArenaProber:
    """Asks a worker process whether the model allocates and runs with a given arena.

    >>> prober = ArenaProber(open("model.tflite", "rb").read())   # doctest: +SKIP
    >>> prober.runs_with(16384)                                     # doctest: +SKIP
    (True, '')
    >>> prober.close()                                              # doctest: +SKIP
    """

    def __init__(self, data: bytes, timeout: float = 120.0) -> None:
        import tempfile

        self._file = tempfile.NamedTemporaryFile(suffix=".tflite", delete=False)
        self._file.write(data)
        self._file.close()
        self.timeout = timeout
        self.proc = None
        self.runs = 0

    def _start(self):
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PROBE_WORKER, self._file.name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def runs_with(self, arena_size: int) -> tuple[bool, str]:
        import json
        import select

        if self.proc is None or self.proc.poll() is not None:
            self._start()
        self.runs += 1
        self.proc.stdin.write(f"{arena_size}\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:  # crashed (too small for TFLM's own bookkeeping) or hung
            self.close_worker()
            return False, "the TFLM interpreter crashed"
        reply = json.loads(line)
        return reply["ok"], reply["text"]

    def close_worker(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        import os

        self.close_worker()
        os.unlink(self._file.name)


def measure_arena(model: TFLiteModel) -> ArenaMeasurement:
    """Find the exact minimum arena by bisection with the real TFLM interpreter."""
    from edgekit.inspection import activation_lower_bound

    lower_bound, _ = activation_lower_bound(model)
    prober = ArenaProber(model.data)
    try:
        lo, hi = 0, max(4096, 2 * lower_bound)
        while True:
            ok, text = prober.runs_with(hi)
            if ok:
                break
            if hi >= _MAX_ARENA or re.search(r"Didn't find op|not supported", text):
                raise ToolError(
                    f"TFLM cannot run {model.source}: {_first_error(text) or 'interpreter failed'}"
                )
            lo, hi = hi, hi * 2
        # Invariant: lo fails (or is 0), hi runs.
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if prober.runs_with(mid)[0]:
                hi = mid
            else:
                lo = mid
        return ArenaMeasurement(hi, ARENA_ALIGNMENT_MARGIN, lower_bound, prober.runs)
    finally:
        prober.close()


# --- C sources -----------------------------------------------------------------------------


def c_identifier(name: str) -> str:
    ident = re.sub(r"\W", "_", name)
    return ident if ident and not ident[0].isdigit() else f"m_{ident}"


def model_data_sources(data: bytes, name: str) -> dict[str, str]:
    """`model_data.h` / `model_data.cc`: the model as an `alignas(16)` byte array."""
    var = f"g_{c_identifier(name)}_model_data"
    guard = f"EDGEKIT_{c_identifier(name).upper()}_MODEL_DATA_H_"
    header = (
        f"// Generated by edgekit. The model {name}.tflite as a C array.\n"
        f"#ifndef {guard}\n#define {guard}\n\n"
        f"extern const unsigned char {var}[];\n"
        f"extern const unsigned int {var}_len;\n\n"
        f"#endif  // {guard}\n"
    )
    rows = []
    for start in range(0, len(data), 12):
        rows.append("  " + ", ".join(f"0x{b:02x}" for b in data[start : start + 12]) + ",")
    source = (
        f"// Generated by edgekit from {name}.tflite ({len(data)} bytes). Do not edit.\n"
        '#include "model_data.h"\n\n'
        "// TFLM reads the flatbuffer in place: keep it 16-byte aligned.\n"
        f"alignas(16) const unsigned char {var}[] = {{\n" + "\n".join(rows) + "\n};\n"
        f"const unsigned int {var}_len = {len(data)};\n"
    )
    return {"model_data.h": header, "model_data.cc": source}


def harness_glue_source(name: str) -> str:
    """The header `devices/mcu/main.cc` includes: fixed names for this bundle's model."""
    ident = c_identifier(name)
    return (
        f"// Generated by edgekit: the names devices/mcu/main.cc uses for {name}.\n"
        "#ifndef EDGEKIT_MODEL_H_\n#define EDGEKIT_MODEL_H_\n\n"
        '#include "model_data.h"\n#include "model_ops.h"\n\n'
        f'#define EDGEKIT_MODEL_NAME "{name}"\n'
        f"#define EDGEKIT_MODEL_DATA g_{ident}_model_data\n"
        f"#define EDGEKIT_MODEL_DATA_LEN g_{ident}_model_data_len\n\n"
        "#endif  // EDGEKIT_MODEL_H_\n"
    )


def resolver_source(model: TFLiteModel, name: str, arena: ArenaMeasurement | None) -> str:
    """`model_ops.h`: a `MicroMutableOpResolver<N>` registering exactly the model's ops."""
    ops = sorted({op for op, _ in model.used_opcodes})
    lacking = [op for op in ops if op not in TFLM_RESOLVER_METHODS]
    if lacking:
        raise ToolError(f"TFLM has no kernel for: {', '.join(lacking)}")
    ident = c_identifier(name)
    lines = [
        f"// Generated by edgekit for {name}.tflite. Registers exactly the model's ops.",
        f"#ifndef EDGEKIT_{ident.upper()}_MODEL_OPS_H_",
        f"#define EDGEKIT_{ident.upper()}_MODEL_OPS_H_",
        "",
        "#include <cstddef>",
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"',
        "",
        f"using EdgekitOpResolver = tflite::MicroMutableOpResolver<{len(ops)}>;",
        "",
    ]
    if arena is not None:
        lines += [
            f"// Measured with the TFLM interpreter: {arena.minimum_bytes} bytes is the minimum",
            f"// that runs, plus {arena.margin_bytes} bytes of alignment margin.",
            f"constexpr size_t kTensorArenaSize = {arena.tensor_arena_bytes};",
            "",
        ]
    lines += ["inline TfLiteStatus EdgekitRegisterOps(EdgekitOpResolver& resolver) {"]
    for op in ops:
        lines.append(
            f"  if (resolver.{TFLM_RESOLVER_METHODS[op]}() != kTfLiteOk) return kTfLiteError;"
        )
    lines += ["  return kTfLiteOk;", "}", "", f"#endif  // EDGEKIT_{ident.upper()}_MODEL_OPS_H_"]
    return "\n".join(lines) + "\n"


def parse_c_array(source: str) -> bytes:
    """Read the bytes back out of a generated `model_data.cc` (used to prove byte-identity)."""
    body = source[source.index("{") + 1 : source.index("};")]
    return bytes(int(tok, 16) for tok in re.findall(r"0x[0-9a-fA-F]{2}", body))


def write_tflm_sources(
    model: TFLiteModel, name: str, out_dir: Path, arena: ArenaMeasurement | None
) -> list[Path]:
    """Write model_data.h/.cc, model_ops.h and edgekit_model.h into `out_dir`; return the paths.

    `edgekit_model.h` gives the model-specific names fixed ones, so the harness `main.cc`
    (devices/mcu) compiles against any bundle unchanged.
    """
    files = model_data_sources(model.data, name)
    files["model_ops.h"] = resolver_source(model, name, arena)
    files["edgekit_model.h"] = harness_glue_source(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for filename, text in files.items():
        path = out_dir / filename
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
