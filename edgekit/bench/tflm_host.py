"""`--device tflm-host`: the TFLM harness loop in the `tflite_micro` interpreter on this host.

Labelled as host simulation everywhere: the timings are this machine's, not a board's. What
carries over to the board is the op set and the output digest, which matches a board running
`main.cc` on the same model. The arena used is the Python wheel's *recording* allocator's total
on a 64-bit host (`arena_used_source` says so); the C++ harness reports
`MicroInterpreter::arena_used_bytes()`, a few hundred bytes less on the same host and less again
on a 32-bit MCU.

The interpreter runs in a worker process: a bundle's report.json is user input, and an arena
too small for TFLM's bookkeeping crashes `tflite_micro`.
"""

from __future__ import annotations

import platform
from typing import Any

from edgekit import metrics as M
from edgekit.bench.result import BenchResult, DeviceFailure
from edgekit.bench.serial_link import Collector, result_from_messages
from edgekit.devices.mcu.simulated_board import TflmBoard
from edgekit.errors import RuntimeFailure, UsageError
from edgekit.graph import activation_lower_bound
from edgekit.isolation import call
from edgekit.runtimes.tflm import allocated_bytes, measure_arena, probe_timeout
from edgekit.tflite_model import read_tflite

HOST_SIMULATION = "tflite_micro (host simulation)"


def simulate(model: bytes, arena: int, name: str, warmup: int, runs: int) -> dict[str, Any]:
    """Worker-side: the board's hello, run and summary messages, and the allocator's total."""
    from tflite_micro.python.tflite_micro import _version

    board = TflmBoard(model, arena, name)
    collector = Collector(runs)
    collector.feed(board.hello(allocated_bytes(model, arena)))
    for message in board.run(warmup, runs):
        collector.feed(message)
    collected = collector.messages()
    collected["version"] = getattr(_version, "__version__", None) or "?"
    return collected


def run_tflm_host(request: Any) -> BenchResult:
    data = request.model.path.read_bytes()
    model = read_tflite(data, request.model.name)
    arena = request.model.arena_bytes
    if arena is not None:
        needed, _ = activation_lower_bound(model)
        if arena < needed:
            raise UsageError(
                f"the bundle's tensor_arena_bytes ({arena:,}) is below the model's activation "
                f"lower bound ({needed:,} B): report.json was edited or belongs to another model"
            )
    else:
        request.progress("measuring the TFLM arena")
        arena = measure_arena(model).tensor_arena_bytes
    settings = request.settings
    request.progress(f"running {settings['runs']} runs in tflite_micro on this host")
    timeout = probe_timeout(model) * (2 + (settings["runs"] + settings["warmup"]) / 10)
    try:
        collected = call(
            "edgekit.bench.tflm_host:simulate",
            data,
            arena,
            request.model.path.stem,
            settings["warmup"],
            settings["runs"],
            timeout=min(timeout, request.timeout),
            what=f"TFLM on {request.model.name} with a {arena:,}-byte arena",
        )
    except RuntimeFailure as exc:
        raise DeviceFailure(str(exc)) from None
    result = result_from_messages(collected, request, HOST_SIMULATION)
    result.runtime_version = collected["version"]
    result.metrics[M.ARENA_USED_SOURCE] = (
        "tflite_micro Python RecordingMicroAllocator total, 64-bit host"
    )
    result.device_info = {
        "simulation": True,
        "cpu": platform.processor() or platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
    }
    return result
