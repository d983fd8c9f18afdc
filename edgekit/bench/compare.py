"""Reading results back: ratios between runs, CSV export and latency plots.

>>> from edgekit.bench.result import BenchResult
>>> a = BenchResult("f.tflite", "a" * 64, "t", "local", "ok", metrics={"latency_ms": {"p50": 2.0}})
>>> b = BenchResult("q.tflite", "b" * 64, "t", "local", "ok", metrics={"latency_ms": {"p50": 0.5}})
>>> [row.ratio for row in ratios([a, b], "p50")]
[1.0, 0.25]
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edgekit.bench.result import BenchResult
from edgekit.errors import UsageError
from edgekit.files import atomic_write, check_replaceable

CSV_COLUMNS = (
    "id", "created", "edgekit_version", "model_name", "model_sha256", "target", "device",
    "transport", "harness", "runtime", "runtime_version", "delegate", "status", "error",
    "threads", "warmup", "runs", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms",
    "init_ms", "first_inference_ms", "peak_rss_mb", "arena_used_bytes", "delegate_nodes",
    "total_nodes", "output_digest",
)  # fmt: skip


PLOT_FORMATS = ("png", "svg", "pdf")


@dataclass
class Ratio:
    run: BenchResult
    value: float
    ratio: float  # value / baseline value (< 1: faster than the baseline)


def ratios(runs: list[BenchResult], metric: str = "p50") -> list[Ratio]:
    """Each run's latency `metric` relative to the first run's."""
    values = []
    for run in runs:
        value = (run.metrics.get("latency_ms") or {}).get(metric)
        if not run.ok or value is None:
            why = f"failed ({run.error})" if not run.ok else f"has no {metric} latency"
            raise UsageError(f"run {run.id} {why}; compare completed runs only")
        values.append(float(value))
    if values[0] <= 0:
        raise UsageError(f"run {runs[0].id} has a zero {metric} latency; pick another baseline")
    return [Ratio(run, v, v / values[0]) for run, v in zip(runs, values, strict=True)]


def compare(store: Any, run_ids: list[int], metric: str = "p50") -> list[Ratio]:
    if len(run_ids) < 2:
        raise UsageError("compare needs at least two run ids")
    return ratios([store.get(i) for i in run_ids], metric)


def csv_row(run: BenchResult) -> dict[str, Any]:
    lat = run.metrics.get("latency_ms") or {}
    row = {c: getattr(run, c, None) for c in CSV_COLUMNS if hasattr(run, c)}
    row.update({k: run.settings.get(k) for k in ("threads", "warmup", "runs")})
    row.update({f"{k}_ms": lat.get(k) for k in ("p50", "p90", "p99", "mean", "std", "min")})
    for key in ("init_ms", "first_inference_ms", "peak_rss_mb", "arena_used_bytes",
                "delegate_nodes", "total_nodes", "output_digest"):  # fmt: skip
        row[key] = run.metrics.get(key)
    return row


def write_csv(runs: list[BenchResult], handle: IO[str]) -> None:
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for run in runs:
        writer.writerow(csv_row(run))


def plot_latencies(runs: list[BenchResult], out: str | Path, force: bool = False) -> None:
    """Per-run latency distributions (box + points) into an image; matplotlib, no display."""
    check_replaceable(out, force)  # before the plotting
    missing = [r.id for r in runs if not r.latencies_ms]
    if missing:
        raise UsageError(f"run(s) {missing} have no per-run latencies to plot")
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise UsageError(
            f"{out}: cannot plot to .{suffix or '(none)'}; use one of "
            + ", ".join(f".{f}" for f in PLOT_FORMATS)
        )
    from edgekit.plotting import pyplot

    plt = pyplot()
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(runs)), 4.5))
    data = [r.latencies_ms for r in runs]
    ax.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=6, alpha=0.4)
    labels = [f"#{r.id}\n{r.model_name[:18]}\n{r.device[:18]}\n{r.delegate or 'cpu'}" for r in runs]
    ax.set_xticks(range(1, len(runs) + 1), labels, fontsize=7)
    ax.set_ylabel("latency per inference (ms)")
    ax.set_title("edgekit benchmark runs")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_write(out, force=force, binary=True) as handle:
        fig.savefig(handle, format=suffix, dpi=120)
    plt.close(fig)
