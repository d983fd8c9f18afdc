"""TensorFlow Lite for Microcontrollers: what it runs, and running it on this host.

- The op table is TFLM's own (`MicroMutableOpResolver`'s `Add*` methods, parsed from its
  header into `edgekit/data/tflm_ops.toml`; see :mod:`edgekit.runtimes.tflm_table`), builtins
  and custom ops (the signal library's `SignalWindow`, `SignalRfft`, ...).
- The `tflite_micro` interpreter only ever runs in a worker process
  (:mod:`edgekit.isolation`): it segfaults on arenas too small for its bookkeeping and can spin
  on corrupt models.
- :func:`measure_arena` bisects the smallest arena with which the interpreter allocates and
  invokes the model. That figure is for the Python wheel's *recording* allocator on a 64-bit
  host; a C++ `MicroInterpreter` needs a few hundred bytes less, and a 32-bit MCU less again
  (its bookkeeping holds 4-byte pointers). `kTensorArenaSize` says so.

>>> resolver_method("DEPTHWISE_CONV_2D"), resolver_method("CUSTOM:SignalWindow")
('AddDepthwiseConv2D', 'AddWindow')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from edgekit._fdcapture import capture_native_output
from edgekit.errors import RuntimeFailure, ToolError
from edgekit.graph import activation_lower_bound, op_macs
from edgekit.isolation import Worker, call
from edgekit.tflite_model import TFLiteModel

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# TFLM aligns the arena start to 16 bytes; an unaligned buffer can lose up to 15 of them.
ARENA_ALIGNMENT_MARGIN = 16
MAX_ARENA = 512 * 1024 * 1024
ALLOCATOR = "tflite_micro Python interpreter (RecordingMicroAllocator), 64-bit host"
# Custom ops that run on a co-processor, not on the CPU's TFLM kernels.
COPROCESSOR_OPS = {"ethos-u": "an Arm Ethos-U NPU (the model was compiled by Vela)"}


@cache
def op_table() -> tuple[dict[str, str], dict[str, str]]:
    """({builtin op: resolver method}, {custom op: resolver method}) from TFLM's header."""
    text = resources.files("edgekit").joinpath("data/tflm_ops.toml").read_text()
    table = tomllib.loads(text)
    return dict(table["builtin"]), dict(table["custom"])


def resolver_method(op: str) -> str | None:
    """The `MicroMutableOpResolver` method that registers `op` ("CONV_2D", "CUSTOM:name"),
    or None if TFLM has no kernel for it."""
    builtin, custom = op_table()
    if op.startswith("CUSTOM:"):
        return custom.get(op[len("CUSTOM:") :])
    return builtin.get(op)


def missing_ops(model: TFLiteModel, coprocessors: tuple[str, ...] = ()) -> list[str]:
    """Ops of the model that TFLM cannot run on this target (no kernel, or a co-processor op
    for hardware the target lacks)."""
    lacking = set()
    for name, _ in model.used_opcodes:
        custom = name[len("CUSTOM:") :] if name.startswith("CUSTOM:") else None
        if resolver_method(name) is None:
            lacking.add(name)
        elif custom in COPROCESSOR_OPS and custom not in coprocessors:
            lacking.add(name)
    return sorted(lacking)


def describe_missing(op: str) -> str:
    custom = op[len("CUSTOM:") :] if op.startswith("CUSTOM:") else None
    if custom in COPROCESSOR_OPS:
        return f"{op} (needs {COPROCESSOR_OPS[custom]})"
    return op


# --- in the worker process ------------------------------------------------------------------


def tflm_runtime() -> Any:
    """The `tflite_micro` runtime module (imported when first needed: it is native code)."""
    from tflite_micro.python.tflite_micro import runtime

    return runtime


def tflm_interpreter(model: bytes, arena_size: int, preserve_all: bool = False) -> Any:
    """A `tflite_micro` interpreter for `model` with an arena of `arena_size` bytes
    (`preserve_all`: every intermediate tensor stays readable, for the kernel check)."""
    runtime = tflm_runtime()
    config = (
        runtime.InterpreterConfig.kPreserveAllTensors
        if preserve_all
        else runtime.InterpreterConfig.kAllocationRecording
    )
    try:
        interp = runtime.Interpreter.from_bytes(
            model, arena_size=arena_size, intrepreter_config=config
        )
    except Exception as exc:
        raise RuntimeFailure(f"TFLM refused the model: {_one_line(exc)}") from None
    interp._edgekit_model = model  # the interpreter reads the flatbuffer in place
    return interp


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


def probe_arena(model: bytes, arena_size: int) -> tuple[bool, str]:
    """(runs, why not): allocate and invoke once with zeros. Worker-side."""
    with capture_native_output() as out:
        try:
            interp = tflm_interpreter(model, arena_size)
            _zero_inputs(interp)
            interp.invoke()
            ok = True
        except Exception:
            ok = False
    return ok, _first_error(out.text)


def _zero_inputs(interp: Any) -> None:
    for i in interp_positions(interp):
        details = interp.get_input_details(i)
        interp.set_input(np.zeros(details["shape"], details["dtype"]), i)


def interp_positions(interp: Any, kind: str = "input") -> list[int]:
    """Input (or, with kind "output", output) positions of a TFLM interpreter: the wrapper
    has no count, so probe until it fails."""
    details = interp.get_input_details if kind == "input" else interp.get_output_details
    positions = []
    for i in range(1024):
        try:
            details(i)
        except Exception:
            break
        positions.append(i)
    return positions


def allocated_bytes(model: bytes, arena_size: int) -> int | None:
    """What the recording allocator reports as the arena total after one invoke. Worker-side."""
    interp = tflm_interpreter(model, arena_size)
    _zero_inputs(interp)
    interp.invoke()
    with capture_native_output() as out:
        interp.print_allocations()
    found = re.search(r"Arena allocation total (\d+) bytes", out.text)
    return int(found.group(1)) if found else None


def run(
    model: bytes, feeds: list[np.ndarray], arena_size: int, keep: tuple[int, ...] = ()
) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """Invoke sample by sample on raw (already quantized) inputs, one array per model input
    in its input order (:func:`edgekit.runtimes.litert.input_feeds`). Worker-side.

    Returns (outputs per graph output position, stacked over samples; {tensor: stacked
    values} for the `keep` tensors, which needs a preserve-all-tensors arena).
    """
    with capture_native_output() as out:
        interp = tflm_interpreter(model, arena_size, preserve_all=bool(keep))
    shapes = [interp.get_input_details(i)["shape"] for i in range(len(feeds))]
    output_positions = interp_positions(interp, "output")
    outputs: list[list[np.ndarray]] = []
    kept: dict[int, list[np.ndarray]] = {idx: [] for idx in keep}
    for sample in range(len(feeds[0])):
        with capture_native_output() as out:
            try:
                for i, (feed, shape) in enumerate(zip(feeds, shapes, strict=True)):
                    interp.set_input(np.reshape(feed[sample], shape), i)
                interp.invoke()
            except Exception as exc:
                detail = _first_error(out.text) or _one_line(exc)
                raise RuntimeFailure(f"TFLM failed to invoke the model: {detail}") from None
        outputs.append([np.array(interp.get_output(i)).copy() for i in output_positions])
        for idx in keep:
            kept[idx].append(np.asarray(interp.GetTensor(idx, 0)["tensor_data"]).copy())
    stacked = [np.stack([sample[i] for sample in outputs]) for i in range(len(outputs[0]))]
    return stacked, {idx: np.stack(values) for idx, values in kept.items()}


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if re.search(r"Didn't find op|not supported|Failed|failed|error", line, re.I):
            return line.strip()[:300]
    return text.strip().splitlines()[0][:300] if text.strip() else ""


# --- in edgekit's process -------------------------------------------------------------------


@dataclass(frozen=True)
class ArenaMeasurement:
    """The tensor arena, measured with the `tflite_micro` interpreter on this host.

    `minimum_bytes` is the smallest arena that allocated and ran one inference; one byte less
    failed. `tensor_arena_bytes` adds the alignment margin. Both are for the Python wheel's
    recording allocator on a 64-bit host (`allocator`): a C++ harness needs somewhat less.
    """

    minimum_bytes: int
    margin_bytes: int
    activation_lower_bound_bytes: int
    attempts: int
    allocator: str = ALLOCATOR

    @property
    def tensor_arena_bytes(self) -> int:
        return self.minimum_bytes + self.margin_bytes


def probe_timeout(model: TFLiteModel) -> float:
    """Seconds one allocate+invoke may take: generous for the model's MACs, finite for a
    corrupt model that makes TFLM spin."""
    macs = sum(op_macs(model, op) for op in model.operators)
    return 20.0 + macs / 5e6


class ArenaProber:
    """Asks a worker process whether the model allocates and runs with a given arena.

    A worker that crashes (tflite_micro segfaults on arenas too small for its own
    bookkeeping) means "does not run" and is restarted; one that hangs past the deadline
    raises :class:`RuntimeFailure`.

    >>> with ArenaProber(open("model.tflite", "rb").read()) as prober:   # doctest: +SKIP
    ...     prober.runs_with(16384)
    (True, '')
    """

    def __init__(self, data: bytes, timeout: float = 60.0, name: str = "the model") -> None:
        self.data = bytes(data)
        self.timeout = timeout
        self.worker = Worker(f"TFLM on {name}")
        self.runs = 0

    def runs_with(self, arena_size: int) -> tuple[bool, str]:
        self.runs += 1
        try:
            return self.worker.call(
                "edgekit.runtimes.tflm:probe_arena", self.data, arena_size, timeout=self.timeout
            )
        except RuntimeFailure as exc:
            if "did not finish" in str(exc):
                raise
            return False, "the TFLM interpreter crashed"

    def close(self) -> None:
        self.worker.close()

    def __enter__(self) -> ArenaProber:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def measure_arena(model: TFLiteModel) -> ArenaMeasurement:
    """Find the exact minimum arena by bisection with the real TFLM interpreter.

    Raises ToolError when TFLM cannot run the model at any size, RuntimeFailure when it hangs.
    """
    lower_bound, _ = activation_lower_bound(model)
    with ArenaProber(model.data, probe_timeout(model), model.source) as prober:
        lo, hi = 0, max(4096, 2 * lower_bound)
        while True:
            ok, text = prober.runs_with(hi)
            if ok:
                break
            if hi >= MAX_ARENA or re.search(r"Didn't find op|not supported", text):
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


def preserve_all_arena(model: TFLiteModel, arena_bytes: int) -> int:
    """An arena large enough with every tensor kept (no memory reuse)."""
    activations = sum(t.bytes for t in model.tensors if not t.is_constant)
    return 2 * arena_bytes + activations + 64 * 1024


def run_isolated(
    model: TFLiteModel,
    feeds: list[np.ndarray],
    arena_bytes: int,
    keep: tuple[int, ...] = (),
    timeout: float | None = None,
) -> tuple[list[np.ndarray], dict[int, np.ndarray]]:
    """:func:`run` in a worker process: a crash or hang is a RuntimeFailure, not edgekit's end.

    Outputs and `keep` tensors come back shaped (samples, *tensor shape).
    """
    arena = preserve_all_arena(model, arena_bytes) if keep else arena_bytes
    if len(feeds) != len(model.inputs):
        raise ValueError(f"{model.source} has {len(model.inputs)} inputs; {len(feeds)} given")
    samples = len(feeds[0])
    limit = timeout if timeout is not None else probe_timeout(model) * (1 + samples / 10)
    outputs, kept = call(
        "edgekit.runtimes.tflm:run",
        model.data,
        list(feeds),
        arena,
        tuple(keep),
        timeout=limit,
        what=f"TFLM on {model.source}",
    )
    shaped = {
        idx: values.reshape((samples, *model.tensors[idx].shape)) for idx, values in kept.items()
    }
    return outputs, shaped
