"""Time `.tflite` models on this host: LiteRT through edgekit's Linux harness.

Deploy's latency checks and the Keras callbacks compare models by their p50 here; `edgekit
bench` (:mod:`edgekit.bench`) is the recorded, device-side measurement.

>>> host_latencies([small_model, wider_model], delegate="none")  # doctest: +SKIP
[0.41, 0.87]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from edgekit import metrics as M
from edgekit.runtimes.harness import HarnessJob, LocalTransport


def host_latencies(
    models: list[bytes],
    *,
    rounds: int = 3,
    runs: int = 30,
    threads: int = 1,
    delegate: str = "xnnpack",
    details: list | None = None,
) -> list[float]:
    """p50 latency (ms) of each .tflite on this host through the harness (LiteRT), as the
    median over `rounds` interleaved rounds: ratios between models come from one run on a
    shared, noisy machine. `details` (a list) receives each model's first harness result.

    >>> host_latencies([open("model.tflite", "rb").read()], runs=50)  # doctest: +SKIP
    [1.23]
    """
    measured: list[list[float]] = [[] for _ in models]
    with tempfile.TemporaryDirectory(prefix="edgekit-latency-") as tmp:
        paths = []
        for i, data in enumerate(models):
            paths.append(Path(tmp) / f"m{i}.tflite")
            paths[-1].write_bytes(data)
        for _ in range(rounds):
            for i, path in enumerate(paths):
                job = HarnessJob(
                    path, runs=runs, warmup=max(3, runs // 10), threads=threads, delegate=delegate
                )
                result = LocalTransport().run(job)
                measured[i].append(result["metrics"][M.LATENCY_MS]["p50"])
                if details is not None and len(details) < len(models):
                    details.append(result)
    return [statistics.median(values) for values in measured]
