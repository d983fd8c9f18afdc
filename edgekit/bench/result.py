"""What a benchmark run returns: one plain dataclass, whatever the harness or transport.

Every harness (Linux script, Android benchmark_model, TFLM on a board, TFLM on this host)
reports into the same fields, so the results store and `edgekit results compare` treat them
alike. `metrics` holds the figures (all times in milliseconds):

- `init_ms`, `first_inference_ms`: interpreter creation (+ tensor allocation) and the first
  `Invoke()`, which includes one-off work such as delegate preparation.
- `latency_ms`: `min`, `p50`, `p90`, `p99`, `mean`, `std`, `max` over the timed runs.
- `peak_rss_mb` (Linux: the harness process's peak resident set; Android: benchmark_model's
  reported footprint), `arena_used_bytes` (TFLM).
- `output_digest`: first 16 hex digits of the sha256 of the first output after the first run.
- `delegate_nodes`, `total_nodes`, `delegate_partitions`, `fallback_to_cpu`.

>>> r = BenchResult(model_name="m.tflite", model_sha256="ab" * 32, target="raspberry-pi-4",
...                 device="local", status="ok", metrics={"latency_ms": {"p50": 1.5}})
>>> r.p50_ms
1.5
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit import __version__
from edgekit import metrics as M
from edgekit.errors import DeviceFailure

__all__ = ["BenchResult", "DeviceFailure", "latency_stats"]

STATUSES = ("ok", "failed")


@dataclass
class BenchResult:
    model_name: str
    model_sha256: str
    target: str
    device: str  # the device URI, credentials removed
    status: str  # "ok" | "failed"
    error: str | None = None
    transport: str = "local"
    harness: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    delegate: str | None = None  # the delegate really applied (None: plain CPU kernels)
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    device_info: dict[str, Any] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    edgekit_version: str = ""
    created: str = ""
    id: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}; received {self.status!r}")
        if not self.created:
            self.created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if not self.edgekit_version:
            self.edgekit_version = __version__

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def p50_ms(self) -> float | None:
        return (self.metrics.get(M.LATENCY_MS) or {}).get("p50")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def latency_stats(values_ms: list[float]) -> dict[str, float]:
    """min/p50/p90/p99/mean/std/max of per-run latencies: the Linux harness's own function,
    so host-side figures (serial, tflm-host) are computed exactly as on a Linux device.

    >>> latency_stats([1.0, 2.0, 3.0])["p50"]
    2.0
    """
    # Not at the top: this module is loaded at CLI start-up, and the harness script is not light.
    from edgekit.devices.linux.edgekit_harness import latency_stats as harness_stats

    return harness_stats(values_ms)
