"""The Pareto chart of a fit: every trial's accuracy against its measured cost, the trials
within every budget marked, the Pareto front drawn, the original and the chosen model named.

>>> label("instructions_per_inference")
'instructions per inference'
"""

from __future__ import annotations

import math
from pathlib import Path

from edgekit import metrics as M
from edgekit.fitting.search import FitResult, cost_limit
from edgekit.plotting import pyplot


def label(metric: str) -> str:
    """A metric's name as an axis label."""
    unit = M.DEPLOY[metric].unit if metric in M.DEPLOY else ""
    text = metric.replace("_", " ").removesuffix(" ms")
    return f"{text} (ms)" if unit == "ms" else text


def pareto_chart(result: FitResult, path: str | Path) -> Path:
    """Write the chart (PNG) to `path`; returns it. Needs matplotlib (`edgekit[plot]`)."""
    plt = pyplot()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = [(t, t.measured(result.cost), t.accuracy) for t in result.trials]
    points = [(t, c, a) for t, c, a in points if c is not None and a is not None]
    for ok, colour, name in ((False, "#bbbbbb", "misses a budget"), (True, "#1f77b4", "fits")):
        chosen = [(c, 100 * a) for t, c, a in points if t.ok == ok]
        if chosen:
            ax.scatter(*zip(*chosen, strict=True), s=22, color=colour, label=name, zorder=2)
    front = [(t.measured(result.cost), t.accuracy) for t in result.pareto()]
    front = [(c, 100 * a) for c, a in front if c is not None and a is not None]
    if front:
        ax.plot(*zip(*front, strict=True), color="#1f77b4", lw=1, zorder=1, label="Pareto front")
    base_cost, base_accuracy = result.baseline.measured(result.cost), result.baseline.accuracy
    if base_cost is not None and base_accuracy is not None:
        ax.scatter([base_cost], [100 * base_accuracy], marker="s", color="black", label="original")
    best = result.best
    if best is not None and best.measured(result.cost) is not None and best.accuracy is not None:
        ax.scatter(
            [best.measured(result.cost)],
            [100 * best.accuracy],
            marker="*",
            s=160,
            color="#d62728",
            label=f"chosen (trial {best.number + 1})",
            zorder=3,
        )
    limit = cost_limit(result.budgets)
    if limit is not None:
        ax.axvline(limit, color="#d62728", ls="--", lw=1, label="budget")
    ax.set_xlabel(label(result.cost))
    ax.set_ylabel("accuracy (%)" if _labelled(result) else "top-1 agreement (%)")
    ax.set_title(f"edgekit fit {result.fit_id}: {len(result.trials)} trials".strip())
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing measured: no legend (and no warning)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _labelled(result: FitResult) -> bool:
    accuracy = result.baseline.report.metrics.deployed_accuracy
    return accuracy is not None and not math.isnan(accuracy)
