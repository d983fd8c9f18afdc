"""On-device benchmarking: harness runners, transports and the results store.

>>> from edgekit.bench import bench                                  # doctest: +SKIP
>>> bench("bundle/", device="ssh://pi@pi4").metrics["latency_ms"]    # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "bench": "edgekit.bench.runner",
    "BenchResult": "edgekit.bench.result",
    "ResultStore": "edgekit.bench.store",
    "parse_device": "edgekit.bench.uri",
    "run_firmware": "edgekit.bench.qemu",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgekit.bench' has no attribute {name!r}")
