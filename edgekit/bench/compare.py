"""Reading results back: the figures a run has, ratios between runs, CSV export and plots.

Latency is one figure among several: a `--device qemu` run counts instructions (no
milliseconds) and measures the 32-bit arena, flash and RAM, and those are compared, exported
and plotted like latency (:data:`METRICS`).

>>> from edgekit.bench.result import BenchResult
>>> a = BenchResult("f.tflite", "a" * 64, "t", "local", "ok", metrics={"latency_ms": {"p50": 2.0}})
>>> b = BenchResult("q.tflite", "b" * 64, "t", "local", "ok", metrics={"latency_ms": {"p50": 0.5}})
>>> [row.ratio for row in ratios([a, b], "p50")]
[1.0, 0.25]
>>> METRICS["instructions"].of(BenchResult("m", "c" * 64, "t", "qemu", "ok",
...                            metrics={"instructions": {"per_inference": 1200}}))
1200
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edgekit import metrics as M
from edgekit.bench.result import BenchResult
from edgekit.bench.store import COLUMNS
from edgekit.errors import UsageError
from edgekit.files import atomic_write, check_replaceable
from edgekit.plotting import pyplot


def _at(*keys: str) -> Callable[[dict[str, Any]], Any]:
    def get(metrics: dict[str, Any]) -> Any:
        value: Any = metrics
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    return get


def _arena(metrics: dict[str, Any]) -> Any:
    # QEMU bisects the smallest arena that runs (arena_bytes, with its arena_source); a board
    # or tflm-host run reports what its interpreter used of the arena it was given.
    if M.ARENA_SOURCE in metrics:
        return metrics.get(M.ARENA_BYTES)
    return metrics.get(M.ARENA_USED_BYTES)


@dataclass(frozen=True)
class Metric:
    """One figure of a run, as `results list`, `compare`, `plot` and `export` show it."""

    name: str  # --metric NAME
    label: str  # column heading and plot axis
    get: Callable[[dict[str, Any]], Any]  # from BenchResult.metrics
    unit: str  # "ms" | "instructions" | "B"

    @property
    def timing(self) -> bool:
        """Lower is faster: compare shows a speed-up."""
        return self.unit != "B"

    def of(self, run: BenchResult) -> float | None:
        value = self.get(run.metrics)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return value


METRICS = {
    m.name: m
    for m in (
        *(
            Metric(k, f"{k} ms", _at(M.LATENCY_MS, k), "ms")
            for k in ("p50", "p90", "p99", "mean", "min")
        ),
        Metric(
            M.INSTRUCTIONS,
            "instructions per inference",
            _at(M.INSTRUCTIONS, "per_inference"),
            "instructions",
        ),
        Metric("arena", "tensor arena B", _arena, "B"),
        Metric("flash", "flash B", _at(M.FLASH_BYTES), "B"),
        Metric("ram", "RAM B", _at(M.RAM_BYTES), "B"),
    )
}
# When no --metric is given: latency if every run has it, else instructions (QEMU runs).
DEFAULT_METRICS = ("p50", M.INSTRUCTIONS)

# The CSV export: the run's fields, its settings, then its figures (metrics keys, with the
# latency statistics and instruction counts flattened to `p50_ms`, `instructions_min`, ...).
_CSV_LATENCY = ("p50", "p90", "p99", "mean", "std", "min")
_CSV_INSTRUCTIONS = ("per_inference", "min", "max")
_CSV_FIGURES = (
    M.INIT_MS,
    M.FIRST_INFERENCE_MS,
    M.PEAK_RSS_MB,
    M.ARENA_USED_BYTES,
    M.DELEGATE_NODES,
    M.TOTAL_NODES,
    M.OUTPUT_DIGEST,
)
_CSV_MEMORY = (M.ARENA_BYTES, M.FLASH_BYTES, M.RAM_BYTES, M.STACK_BYTES, M.HEAP_BYTES)
CSV_COLUMNS = (
    "id",
    *COLUMNS,
    "threads",
    "warmup",
    "runs",
    *(f"{k}_ms" for k in _CSV_LATENCY),
    *_CSV_FIGURES,
    *(f"{M.INSTRUCTIONS}_{k}" for k in _CSV_INSTRUCTIONS),
    *_CSV_MEMORY,
)


PLOT_FORMATS = ("png", "svg", "pdf")


@dataclass
class Ratio:
    run: BenchResult
    value: float
    ratio: float  # value / baseline value (< 1: faster or smaller than the baseline)
    metric: Metric


def pick_metric(runs: list[BenchResult], metric: str | None, what: str) -> Metric:
    """`metric` checked against what every run has; None: the first of DEFAULT_METRICS every
    run has (latency, else instructions)."""
    for run in runs:
        if not run.ok:
            raise UsageError(f"run {run.id} failed ({run.error}); {what} completed runs only")
    if metric is not None:
        chosen = METRICS[metric]
        lacking = [run.id for run in runs if chosen.of(run) is None]
        if lacking:
            raise UsageError(f"run(s) {lacking} have no {chosen.label}; {_available(runs)}")
        return chosen
    for name in DEFAULT_METRICS:
        if all(METRICS[name].of(run) is not None for run in runs):
            return METRICS[name]
    raise UsageError(
        f"runs {[r.id for r in runs]} have neither latency nor instructions in "
        f"common; {_available(runs)}"
    )


def _available(runs: list[BenchResult]) -> str:
    shared = [name for name, m in METRICS.items() if all(m.of(run) is not None for run in runs)]
    if not shared:
        return "they have no figure in common"
    names = " or ".join(filter(None, [", ".join(shared[:-1]), shared[-1]]))
    return f"they all have --metric {names}"


def ratios(runs: list[BenchResult], metric: str | None = None) -> list[Ratio]:
    """Each run's `metric` (default: see :func:`pick_metric`) relative to the first run's."""
    chosen = pick_metric(runs, metric, "compare")
    values = [float(chosen.of(run) or 0) for run in runs]
    if values[0] <= 0:
        raise UsageError(f"run {runs[0].id} has a zero {chosen.label}; pick another baseline")
    return [Ratio(run, v, v / values[0], chosen) for run, v in zip(runs, values, strict=True)]


def compare(store: Any, run_ids: list[int], metric: str | None = None) -> list[Ratio]:
    if len(run_ids) < 2:
        raise UsageError("compare needs at least two run ids")
    return ratios([store.get(i) for i in run_ids], metric)


def csv_row(run: BenchResult) -> dict[str, Any]:
    lat = run.metrics.get(M.LATENCY_MS) or {}
    row = {c: getattr(run, c, None) for c in CSV_COLUMNS if hasattr(run, c)}
    row.update({k: run.settings.get(k) for k in ("threads", "warmup", "runs")})
    row.update({f"{k}_ms": lat.get(k) for k in _CSV_LATENCY})
    for key in (*_CSV_FIGURES, *_CSV_MEMORY):
        row[key] = run.metrics.get(key)
    instructions = run.metrics.get(M.INSTRUCTIONS) or {}
    for key in _CSV_INSTRUCTIONS:
        row[f"{M.INSTRUCTIONS}_{key}"] = instructions.get(key)
    return row


def write_csv(runs: list[BenchResult], handle: IO[str]) -> None:
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for run in runs:
        writer.writerow(csv_row(run))


PLOT_METRICS = ("latency", M.INSTRUCTIONS, "arena", "flash", "ram")


def plot_metric(runs: list[BenchResult], metric: str | None) -> str:
    """What `results plot` draws: `metric`, else latency when every run has per-run latencies,
    else instructions (QEMU runs)."""
    if metric is None:
        metric = "latency" if all(r.latencies_ms for r in runs) else M.INSTRUCTIONS
    if metric == "latency":
        missing = [r.id for r in runs if not r.latencies_ms]
        if missing:
            raise UsageError(
                f"run(s) {missing} have no per-run latencies to plot; {_available(runs)}"
            )
    else:
        pick_metric(runs, metric, "plot")
    return metric


def plottable(runs: list[BenchResult], metric: str | None, limit: int = 8) -> list[BenchResult]:
    """The newest `limit` completed runs with `metric` (default: latency if any run has it,
    else instructions), oldest first; `runs` is newest first, as the store lists them."""
    done = [r for r in runs if r.ok]
    if metric is None:
        metric = "latency" if any(r.latencies_ms for r in done) else M.INSTRUCTIONS
    if metric == "latency":
        chosen = [r for r in done if r.latencies_ms]
    else:
        chosen = [r for r in done if METRICS[metric].of(r) is not None]
    return chosen[:limit][::-1]


def plot_runs(
    runs: list[BenchResult], out: str | Path, metric: str | None = None, force: bool = False
) -> str:
    """Per-run latency distributions (box + points), or one bar per run of `metric`
    (:func:`plot_metric`), into an image; matplotlib, no display. Returns what was drawn."""
    check_replaceable(out, force)  # before the plotting
    metric = plot_metric(runs, metric)
    suffix = Path(out).suffix.lower().lstrip(".")
    if suffix not in PLOT_FORMATS:
        raise UsageError(
            f"{out}: cannot plot to .{suffix or '(none)'}; use one of "
            + ", ".join(f".{f}" for f in PLOT_FORMATS)
        )
    plt = pyplot()
    import numpy as np  # not at the top: this module is loaded at CLI start-up

    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(runs)), 4.5))
    positions = range(1, len(runs) + 1)
    if metric == "latency":
        data = [r.latencies_ms for r in runs]
        ax.boxplot(data, showfliers=False)
        rng = np.random.default_rng(0)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=6, alpha=0.4)
        ax.set_ylabel("latency per inference (ms)")
    else:
        values = [METRICS[metric].of(r) or 0 for r in runs]
        bars = ax.bar(list(positions), values, width=0.6)
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], fontsize=7)
        ax.set_ylabel(METRICS[metric].label)
    labels = [f"#{r.id}\n{r.model_name[:18]}\n{r.device[:18]}\n{r.delegate or 'cpu'}" for r in runs]
    ax.set_xticks(list(positions), labels, fontsize=7)
    ax.set_title("edgekit benchmark runs")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_write(out, force=force, binary=True) as handle:
        fig.savefig(handle, format=suffix, dpi=120)
    plt.close(fig)
    return metric
