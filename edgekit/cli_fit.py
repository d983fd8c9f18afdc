"""`edgekit fit`: a thin layer over :func:`edgekit.fit` (parse, call, print).

Light at import (click and the budgets' parsers only): TensorFlow, Optuna and the search
are imported when the command runs.

>>> budgets = budgets_from_flags({"max_drop": "1", "max_ram": "96K"})
>>> budgets.max_drop, budgets.max_ram_bytes
(0.01, 98304)
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from edgekit.console import console as _console
from edgekit.console import escape, table
from edgekit.errors import UsageError
from edgekit.fitting.budgets import ACCURACY_BUDGETS, Budgets, parse_positive, parse_size

TABLE_ROWS = 12  # the live table shows the newest trials


@click.command("fit")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", "-t", required=True, help="Target profile name (`edgekit targets list`).")
@click.option(
    "--data", required=True, metavar="FILE", help="Training inputs (.npz/.npy; labels optional)."
)
@click.option("--validation", metavar="FILE", help="Held-out data (default: 20 % of --data).")
@click.option(
    "--max-latency-ms", metavar="MS", help="Latency budget (LiteRT here; MCU: estimated)."
)
@click.option(
    "--max-instructions", metavar="N", help="Instructions per inference (MCU firmware, QEMU)."
)
@click.option(
    "--max-ram", metavar="KB", help="RAM budget (256, 256K, 1.5MB); default: the profile's."
)
@click.option(
    "--max-flash", metavar="KB", help="Flash budget for the model; default: the profile's."
)
@click.option(
    "--max-drop", metavar="PTS", help="Accuracy points below the original's (1 = one point)."
)
@click.option("--min-accuracy", metavar="A", help="Accuracy to reach, a fraction (0.9 = 90 %).")
@click.option("--trials", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--epochs-per-trial", type=click.IntRange(0, 1000), default=1, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="Local worker processes (default: one per core, at most 4).",
)
@click.option(
    "--device",
    metavar="URI",
    help="Linux/Android: measure each trial's latency on this device (local, ssh://..., adb://...).",
)
@click.option("--ray", "ray_address", metavar="ADDRESS", help="Run the trials on this Ray cluster.")
@click.option("--resume", is_flag=True, help="Go on with the search stored in the output folder.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="The same seed gives the same trials."
)
@click.option(
    "--tflm-dir",
    type=click.Path(file_okay=False),
    help="TFLM tree: MCU trials measured by their firmware under QEMU (also EDGEKIT_TFLM_DIR).",
)
@click.option(
    "--targets-dir", type=click.Path(file_okay=False), help="Extra directory of target profiles."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder for <model>-<target>-fit/ (default ./edgekit-out).",
)
@click.option("--force", is_flag=True, help="Start the output folder's search afresh.")
@click.option(
    "--no-sensitivity", is_flag=True, help="Search every share of every group (no narrowing pass)."
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False),
    help="Results store for the trials (default: EDGEKIT_DB or the user's).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON (nothing else on stdout)."
)
def fit_cmd(**opts: Any) -> int:
    """Find the most accurate model derived from MODEL that fits TARGET, measured there.

    \b
    Example:
      edgekit fit model.keras --target cortex-m4 --data train.npz --max-drop 1 \\
          --tflm-dir ../tflm --max-instructions 2e6 --trials 20
    """
    budgets = budgets_from_flags(opts)
    if opts["workers"] and opts["ray_address"]:
        raise UsageError("give --workers or --ray, not both")
    from edgekit.bench.store import ResultStore

    store = ResultStore(opts["db"]) if opts["db"] else ResultStore()
    live = None if opts["as_json"] else LiveTable(opts["trials"])
    import edgekit

    try:
        result = edgekit.fit(
            opts["model"],
            opts["target"],
            opts["data"],
            budgets,
            validation=opts["validation"],
            trials=opts["trials"],
            epochs_per_trial=opts["epochs_per_trial"],
            workers=opts["workers"],
            ray=opts["ray_address"],
            seed=opts["seed"],
            out=opts["out"],
            resume=opts["resume"],
            force=opts["force"],
            tflm_dir=opts["tflm_dir"],
            device=opts["device"],
            targets_dir=opts["targets_dir"],
            sensitivity=not opts["no_sensitivity"],
            store=store,
            progress=None if live is None else live.say,
            on_trial=None if live is None else live.update,
        )
    except KeyboardInterrupt:
        if live is not None:
            live.stop()
        click.echo(
            "stopped: the same command with --resume goes on from the stored trials", err=True
        )
        raise
    finally:
        if live is not None:
            live.stop()
    if opts["as_json"]:
        click.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        print_result(result)
    return 0 if result.best is not None else 1


def budgets_from_flags(opts: dict[str, Any]) -> Budgets:
    """The budget flags in their units (KB, points), one line each when wrong."""
    drop = opts.get("max_drop")
    if drop is not None:
        points = parse_positive(drop, "--max-drop", "number of accuracy points", zero=True)
        if points >= 100:
            raise UsageError(
                f"--max-drop: accuracy points below 100 (1 = one point); received {drop}"
            )
        drop = points / 100
    minimum = opts.get("min_accuracy")
    if minimum is not None:
        minimum = parse_positive(minimum, "--min-accuracy", "fraction (0.9 = 90 %)")
    latency = opts.get("max_latency_ms")
    instructions = opts.get("max_instructions")
    ram, flash = opts.get("max_ram"), opts.get("max_flash")
    return Budgets(
        max_latency_ms=None
        if latency is None
        else parse_positive(latency, "--max-latency-ms", "number of milliseconds"),
        max_instructions=None
        if instructions is None
        else int(parse_positive(instructions, "--max-instructions", "instruction count")),
        max_ram_bytes=None if ram is None else parse_size(ram, "--max-ram"),
        max_flash_bytes=None if flash is None else parse_size(flash, "--max-flash"),
        max_drop=drop,
        min_accuracy=minimum,
    )


class LiveTable:
    """The trials as they finish: the best so far, which budgets hold, the time left."""

    def __init__(self, trials: int) -> None:
        from rich.live import Live

        self.trials = trials
        self.started = time.monotonic()
        self.result: Any = None
        self.message = ""
        self.console = _console(stderr=True)
        # started by the first event: an error in the checks before it is the only line
        self.live = Live(console=self.console, refresh_per_second=2, transient=False)

    def say(self, message: str) -> None:
        self.message = message
        if not self.console.is_terminal:  # a log, not a screen: one line per event
            self.console.print(f"edgekit fit: {escape(message)}", soft_wrap=True)
            return
        self._show()

    def update(self, trial: Any, so_far: Any) -> None:
        self.result = so_far
        if not self.console.is_terminal:
            self.console.print(self._line(trial, so_far), soft_wrap=True)
            return
        self._show()

    def _line(self, trial: Any, so_far: Any) -> str:
        done = len(so_far.trials) + len(so_far.failures)
        if not hasattr(trial, "report"):  # a failure
            return f"trial {trial.number + 1} failed: {escape(trial.error, 200)}"
        figure = trial.measured(so_far.cost)
        holds = "every budget holds" if trial.ok else "misses " + ", ".join(trial.failed)
        return (
            f"trial {trial.number + 1} ({done}/{self.trials}): "
            f"{escape(trial.candidate.describe())}: {_pct(trial.accuracy)}, "
            f"{so_far.cost.replace('_', ' ')} {'-' if figure is None else f'{figure:,.4g}'}; "
            f"{holds}"
        )

    def _show(self) -> None:
        if not self.live.is_started:
            self.live.start()
        self.live.update(self._render())

    def stop(self) -> None:
        if self.live.is_started:
            self.live.stop()

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        r = self.result
        if r is None:
            return Text(f"edgekit fit: {self.message}")
        done = len(r.trials) + len(r.failures)
        best = r.best
        spent = time.monotonic() - self.started
        per = spent / max(done, 1)
        left = max(0, self.trials - done) * per
        head = (
            f"{done}/{self.trials} trials on {r.where}; best so far: "
            + (
                f"trial {best.number + 1}, {_pct(best.accuracy)}"
                if best
                else "none within every budget"
            )
            + f"; about {_duration(left)} left"
        )
        rows = [trial_row(t, r.cost) for t in r.trials[-TABLE_ROWS:]]
        columns = trial_columns(r.cost)
        return Group(Text(head), table("trials (newest last)", columns, rows), Text(self.message))


def trial_columns(cost: str) -> list[str]:
    """The headings of :func:`trial_row`'s cells."""
    return ["trial", "candidate", "accuracy", cost.replace("_", " "), "RAM", "flash", "budgets"]


def trial_row(trial: Any, cost: str) -> list[str]:
    from edgekit.fitting.search import ram_bytes

    figure = trial.measured(cost)
    return [
        str(trial.number + 1) if trial.number >= 0 else "original",
        escape(trial.candidate.describe(), 70),
        _pct(trial.accuracy),
        "-" if figure is None else f"{figure:,.4g}" if figure < 1000 else f"{figure:,.0f}",
        _kb(ram_bytes(trial)),
        _kb(trial.report.metrics.model_bytes),
        "[green]hold[/green]" if trial.ok else "[red]" + ", ".join(trial.failed) + "[/red]",
    ]


def print_result(result: Any) -> None:
    """The Pareto table, the chosen model, where everything is."""
    console = _console()
    columns = trial_columns(result.cost)
    rows = [trial_row(result.baseline, result.cost)]
    rows += [trial_row(t, result.cost) for t in result.pareto()]
    console.print(
        table(f"Pareto front of {len(result.trials)} trials (and the original)", columns, rows)
    )
    for failure in result.failures:
        console.print(f"trial {failure.number + 1} failed: {escape(failure.error, 200)}")
    best = result.best
    if best is None:
        closest = result.closest()
        hint = ""
        if closest is not None:
            only_accuracy = set(closest.failed) <= set(ACCURACY_BUDGETS)
            what = (
                f"the most accurate within the other budgets ({_pct(closest.accuracy)})"
                if only_accuracy
                else f"the smallest {result.cost.replace('_', ' ')} reached"
            )
            hint = (
                f"; {what}: trial {closest.number + 1} "
                f"({escape(closest.candidate.describe())}), which misses "
                + ", ".join(closest.failed)
            )
        if result.baseline.ok:
            console.print(
                "the original model itself meets every budget: no cut kept enough accuracy; "
                "deploy the original as it is (edgekit deploy), or allow a larger drop"
            )
        console.print(
            f"[red]no candidate met every budget[/red]{hint}; relax "
            f"{'it' if closest is not None and len(closest.failed) == 1 else 'them'}, train "
            "longer (--epochs-per-trial) or run more trials (--resume --trials N)"
        )
    else:
        console.print(
            f"chosen: trial {best.number + 1}: {escape(best.candidate.describe())}, "
            f"{_pct(best.accuracy)} (the original: {_pct(result.baseline.accuracy)})"
        )
        console.print(f"  model:  {result.chosen}")
        console.print(f"  bundle: {result.bundle}")
    if result.chart is not None:
        console.print(f"  chart:  {result.chart}")
    elif result.trials:
        console.print(
            "  chart:  not drawn: matplotlib is not installed (pip install 'edgekit\\[plot]')"
        )
    console.print(
        f"search {result.fit_id} in {result.directory} ({_duration(result.seconds)}); its trials: "
        f"edgekit results list --fit {result.fit_id}"
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _kb(value: float | None) -> str:
    return "-" if value is None else f"{value / 1024:,.1f} KB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
