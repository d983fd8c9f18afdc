"""`edgekit bench` and `edgekit results`: thin layers over edgekit.bench.

Like the rest of the CLI, nothing heavy is imported at module level: `bench` runs harnesses
in subprocesses or on devices and needs neither TensorFlow nor a runtime in this process
(except `--device tflm-host`, which loads tflite_micro). This module is loaded at CLI
start-up, so the bench runner (numpy), the results store (sqlite3) and rich are imported by
the commands that use them.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from edgekit import metrics as M
from edgekit.bench.compare import (  # light: no runtime, no numpy
    METRICS,
    PLOT_METRICS,
    compare,
    plot_runs,
    plottable,
    write_csv,
)
from edgekit.console import console as _console
from edgekit.console import escape, table
from edgekit.errors import UsageError
from edgekit.files import atomic_write

DB_OPTION = click.option(
    "--db",
    type=click.Path(dir_okay=False),
    default=None,
    help="Results database (default: EDGEKIT_DB, else edgekit.db in the user data directory).",
)


RUN_ID = click.IntRange(1, 2**63 - 1)  # SQLite's INTEGER range: a larger id is an OverflowError


def _ms(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


@click.command("bench")
@click.argument("model", type=click.Path())
@click.option("--target", "-t", default=None, help="Target profile (default: the bundle's).")
@click.option(
    "--device",
    "-d",
    default="local",
    show_default=True,
    help="local | ssh://[user@]host[:port] | adb://SERIAL | "
    "serial:///dev/ttyX?baud=N | tflm-host | qemu[:BOARD]",
)
@click.option("--runs", type=int, default=50, show_default=True, help="Timed runs.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Warm-up runs.")
@click.option("--threads", type=int, default=None, help="Threads (default: the profile's).")
@click.option("--delegate", default=None, help="xnnpack | none | edgetpu | gpu | nnapi | PATH.")
@click.option("--input", "input_path", default=None, help="Input .npy/.npz (default: random).")
@click.option(
    "--timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds for the benchmark step (other remote steps: 60 s each).",
)
@click.option(
    "--remote-python",
    default="python3",
    show_default=True,
    help="Python on an ssh device (e.g. a venv's bin/python).",
)
@click.option(
    "--ssh-config",
    type=click.Path(dir_okay=False),
    default=None,
    help="ssh_config file to use instead of ~/.ssh/config.",
)
@click.option(
    "--benchmark-binary",
    type=click.Path(dir_okay=False),
    default=None,
    help="Android: benchmark_model binary to push (default: on the device).",
)
@click.option(
    "--tflm-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="EDGEKIT_TFLM_DIR",
    help="--device qemu: TFLM tree (create_tflm_tree.py) to build the firmware "
    "with [env: EDGEKIT_TFLM_DIR].",
)
@DB_OPTION
@click.option("--no-record", is_flag=True, help="Do not store the run.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def bench_cmd(
    model: str,
    target: str | None,
    device: str,
    runs: int,
    warmup: int,
    threads: int | None,
    delegate: str | None,
    input_path: str | None,
    timeout: float,
    remote_python: str,
    ssh_config: str | None,
    benchmark_binary: str | None,
    tflm_dir: str | None,
    db: str | None,
    no_record: bool,
    as_json: bool,
) -> int:
    """Benchmark MODEL (.tflite or a deploy bundle) on a device; record the result.

    Exit codes: 0 the run completed; 1 the device or harness failed (the failed run is
    recorded with its reason); 2 bad input.
    """
    from edgekit.bench.runner import bench  # see the module docstring (and _store)

    def progress(message: str) -> None:  # stderr: --json keeps stdout for the result
        click.echo(f"... {message}", err=True)

    result = bench(
        model,
        target,
        device,
        runs=runs,
        warmup=warmup,
        threads=threads,
        delegate=delegate,
        input=input_path,
        timeout=timeout,
        remote_python=remote_python,
        ssh_config=ssh_config,
        benchmark_binary=benchmark_binary,
        tflm_dir=tflm_dir,
        db=db,
        record=not no_record,
        on_progress=progress,
    )
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return 0 if result.ok else 1
    _print_result(result)
    return 0 if result.ok else 1


def _print_result(result: Any) -> None:
    from rich.markup import escape as markup_escape  # rich: not at CLI start-up

    console = _console()
    m = result.metrics
    lat = m.get(M.LATENCY_MS) or {}
    where = f"{result.target} on {result.device}"
    if not result.ok:
        failure = markup_escape(f"{result.model_name} {where}: {result.error}")
        console.print(f"[red]FAILED[/red] {failure}")
        if result.id is not None:
            console.print(f"[dim]recorded as run {result.id}[/dim]")
        return
    runtime = " ".join(filter(None, [result.runtime, result.runtime_version]))
    console.print(markup_escape(f"{result.model_name}  {where}  [{runtime}]"))
    if m.get(M.TOTAL_NODES) is not None or m.get(M.DELEGATE_NODES) is not None:
        taken = f"{m.get(M.DELEGATE_NODES)}/{m.get(M.TOTAL_NODES) or '?'} nodes"
        note = " (rest on CPU)" if m.get(M.FALLBACK_TO_CPU) else ""
        console.print(f"  delegate            {result.delegate or 'none'}: {taken}{note}")
    if M.INSTRUCTIONS in m:
        _print_firmware(console, m)
    if lat:
        label = " (estimate)" if m.get(M.LATENCY_SOURCE, "").startswith("estimate") else ""
        console.print(
            f"  latency ms{label:11} p50 {_ms(lat.get('p50'))}  p90 {_ms(lat.get('p90'))}  "
            f"p99 {_ms(lat.get('p99'))}  mean {_ms(lat.get('mean'))} ± {_ms(lat.get('std'))}  "
            f"min {_ms(lat.get('min'))}"
        )
    if M.INIT_MS in m or M.FIRST_INFERENCE_MS in m:
        console.print(
            f"  init / first ms     {_ms(m.get(M.INIT_MS))} / {_ms(m.get(M.FIRST_INFERENCE_MS))}"
        )
    if m.get(M.PEAK_RSS_MB) is not None:
        console.print(f"  peak RSS            {m[M.PEAK_RSS_MB]:.1f} MB")
    if m.get(M.ARENA_USED_BYTES) is not None and M.INSTRUCTIONS not in m:
        console.print(
            f"  tensor arena        {m[M.ARENA_USED_BYTES]:,} B used of {m.get(M.ARENA_BYTES):,} B"
        )
    if "simulation" in (result.runtime or ""):
        console.print(
            "  [yellow]host simulation: timings are this machine's, not a board's[/yellow]"
        )
    if m.get(M.TRANSPORT_MS):
        parts = ", ".join(f"{k} {v:.0f}" for k, v in m[M.TRANSPORT_MS].items())
        console.print(f"  transport ms        {parts}")
    if result.id is not None:
        console.print(f"[dim]recorded as run {result.id}[/dim]")


def _print_firmware(console: Any, m: dict[str, Any]) -> None:
    """Instructions, arena and ELF figures of a `--device qemu` run."""
    ins, elf = m[M.INSTRUCTIONS], m.get(M.ELF) or {}
    console.print(
        f"  instructions        {ins['per_inference']:,} per inference (min "
        f"{ins['min']:,}, max {ins['max']:,}; {ins['source']})"
    )
    console.print(
        f"  tensor arena        {m[M.ARENA_BYTES]:,} B smallest that runs (32-bit) vs "
        f"{m[M.ARENA_HOST_BYTES]:,} B host figure"
    )

    def budget(value: int, limit: int | None) -> str:
        return f"{value:,} B" + (f" of {limit:,} B ({value / limit:.0%})" if limit else "")

    console.print(
        f"  flash               {budget(m[M.FLASH_BYTES], m.get(M.FLASH_BUDGET_BYTES))}"
        f" (text {elf.get('text', 0):,} + data {elf.get('data', 0):,})"
    )
    console.print(
        f"  RAM                 {budget(m[M.RAM_BYTES], m.get(M.RAM_BUDGET_BYTES))} "
        f"(data + bss {elf.get('bss', 0):,} incl. arena {elf.get('tensor_arena', 0):,}"
        f" + stack {m.get(M.STACK_BYTES) or 0:,} + heap {m.get(M.HEAP_BYTES) or 0:,})"
    )
    build = m.get(M.BUILD_SECONDS) or {}
    library = "cached" if build.get("library_cached") else f"{build.get('tflm_library')} s"
    console.print(
        f"  build               TFLM library {library}, firmware {build.get('application')} s"
    )


@click.group("results")
def results() -> None:
    """List, show, compare, export and plot recorded benchmark runs."""


def _store(db: str | None):
    """The results store for reading: it must exist."""
    from edgekit.bench.store import ResultStore  # sqlite3: not for `edgekit --help`

    return ResultStore(db, create=False)


@results.command("list")
@DB_OPTION
@click.option(
    "--limit",
    type=click.IntRange(1, 1_000_000),
    default=20,
    show_default=True,
    help="Show at most this many runs.",
)
@click.option("--model", default=None, help="Only runs of this model (name or sha256 prefix).")
@click.option("--fit", "fit_id", default=None, help="Only the trials of this `edgekit fit` search.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def results_list(
    db: str | None, limit: int, model: str | None, fit_id: str | None, as_json: bool
) -> None:
    """The newest runs first."""
    runs = _store(db).list(limit=limit, model=model, fit=fit_id)
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in runs], indent=2))
        return
    if fit_id:
        if not runs:
            raise UsageError(
                f"no trials of an `edgekit fit` search {fit_id!r} in {_store(db).path}"
            )
        _print_fit_trials(fit_id, runs)
        return
    figures = [METRICS[name] for name in LIST_METRICS]
    rows = []
    for r in runs:
        status = r.status if r.ok else f"[red]failed[/red]: {escape(r.error or '')}"
        # The sha256 prefix tells same-named models from different bundles apart.
        rows.append(
            [
                str(r.id),
                r.created,
                escape(r.model_name),
                r.model_sha256[:12],
                r.target,
                escape(r.device),
                escape(r.runtime or "-"),
                r.delegate or "-",
                status,
                *(_figure(m.of(r), m.unit) for m in figures),
            ]
        )
    columns = [
        "id",
        "created",
        "model",
        "sha256",
        "target",
        "device",
        "runtime",
        "delegate",
        "status",
        *(LIST_HEADINGS.get(m.name, m.label) for m in figures),
    ]
    _console().print(table(f"edgekit results ({len(runs)} shown)", columns, rows))


def _print_fit_trials(fit_id: str, runs: list[Any]) -> None:
    """`results list --fit ID`: a search's trials, with accuracy and whether they fit."""
    rows = []
    for r in runs:
        m = r.metrics
        accuracy = m.get(M.DEPLOYED_ACCURACY, m.get(M.TOP1_AGREEMENT))
        fits = "yes" if r.settings.get("ok") else ", ".join(r.settings.get("failed_budgets", []))
        rows.append(
            [
                str(r.id),
                str(r.settings.get("trial", "-")),
                escape(str(r.settings.get("candidate", ""))),
                "-" if accuracy is None else f"{100 * accuracy:.1f} %",
                _figure(METRICS[M.INSTRUCTIONS].of(r), METRICS[M.INSTRUCTIONS].unit),
                _figure(METRICS["p50"].of(r), METRICS["p50"].unit),
                _figure(m.get(M.ARENA_BYTES), "bytes"),
                _figure(m.get(M.FLASH_BYTES), "bytes"),
                fits if r.ok else f"[red]failed[/red]: {escape(r.error or '')}",
            ]
        )
    columns = ["id", "trial", "candidate", "accuracy", "instructions", "p50 ms", "arena B"]
    columns += ["flash B", "fits"]
    _console().print(table(f"edgekit fit {fit_id}: {len(runs)} trials", columns, rows))


# `results list`: latency for devices with a clock, instructions and sizes for firmware runs.
LIST_METRICS = ("p50", "mean", M.INSTRUCTIONS, "arena", "flash", "ram")
LIST_HEADINGS = {M.INSTRUCTIONS: "instructions", "arena": "arena B"}


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return _ms(value) if unit == "ms" else f"{value:,.0f}"


@results.command("show")
@click.argument("run_id", type=RUN_ID)
@DB_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print every recorded field as JSON.")
def results_show(run_id: int, db: str | None, as_json: bool) -> None:
    """One run: as `edgekit bench` printed it, or every recorded field with --json."""
    run = _store(db).get(run_id)
    if as_json:
        click.echo(json.dumps(run.to_dict(), indent=2))
        return
    _console().print(
        f"[bold]run {run.id}[/bold]  {escape(run.created)}  edgekit "
        f"{escape(run.edgekit_version)}  sha256 "
        f"{escape(run.model_sha256[:16])}"
    )
    _print_result(run)


@results.command("compare")
@click.argument("run_ids", type=RUN_ID, nargs=-1, required=True)
@DB_OPTION
@click.option(
    "--metric",
    default=None,
    type=click.Choice(list(METRICS)),
    help="What to compare (default: p50 latency, else instructions when a run has "
    "no latency: QEMU runs).",
)
def results_compare(run_ids: tuple[int, ...], db: str | None, metric: str | None) -> None:
    """Ratios between runs (the first is the baseline): int8 vs float, device A vs B."""
    from rich.table import Table

    rows = compare(_store(db), list(run_ids), metric)
    chosen = rows[0].metric
    grid = Table(title=f"{chosen.label}, relative to run {run_ids[0]}")
    columns = ["id", "model", "target", "device", "delegate", chosen.label, "ratio"]
    for column in columns + (["speed-up"] if chosen.timing else []):
        grid.add_column(column)
    for row in rows:
        run = row.run
        cells = [
            str(run.id),
            escape(run.model_name),
            escape(run.target),
            escape(run.device),
            escape(run.delegate or "-"),
            _figure(row.value, chosen.unit),
            f"{row.ratio:.3f}x",
        ]
        grid.add_row(*cells, *([f"{1 / row.ratio:.2f}x"] if chosen.timing else []))
    _console().print(grid)


@results.command("export")
@DB_OPTION
@click.option("--csv", "as_csv", is_flag=True, required=True, help="CSV (the one format so far).")
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="File (default: stdout)."
)
@click.option("--force", is_flag=True, help="Replace an existing --out file.")
def results_export(db: str | None, as_csv: bool, out: str | None, force: bool) -> None:
    """Every run as CSV: one row per run, latency figures in columns."""
    runs = _store(db).list()
    if out is None:
        write_csv(runs, sys.stdout)
        return
    with atomic_write(out, force=force) as handle:
        write_csv(runs, handle)
    click.echo(f"wrote {len(runs)} runs to {out}", err=True)


@results.command("plot")
@click.argument("out", type=click.Path(dir_okay=False))
@click.argument("run_ids", type=RUN_ID, nargs=-1)
@DB_OPTION
@click.option(
    "--metric",
    default=None,
    type=click.Choice(PLOT_METRICS),
    help="What to plot (default: latency distributions, else instructions when a "
    "run has no per-run latencies: QEMU runs).",
)
@click.option("--force", is_flag=True, help="Replace an existing OUT file.")
def results_plot(
    out: str, run_ids: tuple[int, ...], db: str | None, metric: str | None, force: bool
) -> None:
    """Latency distributions, or instructions, arena, flash or RAM, per run into OUT.png
    (default: the last 8 completed runs that have it)."""
    store = _store(db)
    runs = [store.get(i) for i in run_ids] if run_ids else plottable(store.list(limit=50), metric)
    if not runs:
        raise UsageError(f"no completed runs with {metric or 'latencies or instructions'} to plot")
    drawn = plot_runs(runs, out, metric, force=force)
    click.echo(f"wrote {out} ({drawn} of {len(runs)} runs)", err=True)
