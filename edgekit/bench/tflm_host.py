"""`--device tflm-host`: the TFLM harness loop in the `tflite_micro` interpreter on this host.

Labelled as host simulation everywhere: the timings are this machine's, not a board's. What
carries over to the board is the arena (measured here with the real TFLM allocator, the same
figure `edgekit deploy` writes into `model_ops.h`), the op set and the output digest, which
matches a board running `main.cc` on the same model.
"""

from __future__ import annotations

import platform
from typing import Any

from edgekit.bench.result import BenchResult
from edgekit.bench.serial_link import result_from_messages

HOST_SIMULATION = "tflite_micro (host simulation)"


def run_tflm_host(request: Any) -> BenchResult:
    from edgekit.converters.tflm import measure_arena
    from edgekit.devices.mcu.simulated_board import TflmBoard
    from edgekit.tflite_model import read_tflite

    data = request.model.path.read_bytes()
    request.progress("measuring the TFLM arena")
    measured = measure_arena(read_tflite(data, request.model.name))
    arena = request.model.arena_bytes or measured.tensor_arena_bytes
    board = TflmBoard(data, arena, request.model.path.stem)
    request.progress(f"running {request.settings['runs']} runs in tflite_micro on this host")
    collected: dict[str, Any] = {"hello": board.hello(measured.minimum_bytes), "runs": []}
    for message in board.run(request.settings["warmup"], request.settings["runs"]):
        if message["kind"] == "run":
            collected["runs"].append(message["us"] / 1000)
        else:
            collected["summary"] = message
    result = result_from_messages(collected, request, HOST_SIMULATION)
    from tflite_micro.python.tflite_micro import _version

    result.runtime_version = getattr(_version, "__version__", None) or "?"
    result.device_info = {
        "simulation": True,
        "cpu": platform.processor() or platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
    }
    return result
