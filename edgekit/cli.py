"""The `edgekit` command. Each command parses arguments, calls one library function, prints.

Heavy modules (TensorFlow, the runtimes, numpy and what imports it: inspection, the
pipeline, analysis) are imported inside the commands that need them, so `edgekit --help` and
`edgekit targets list` start in a fraction of a second.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from edgekit import __version__, signals
from edgekit.console import console as _console
from edgekit.console import escape, print_json, table
from edgekit.errors import EdgekitError, UsageError
from edgekit.metrics import SUMMARY, format_value
from edgekit.targets import list_targets, load_target

TARGETS_DIR = click.option(
    "--targets-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Extra directory of target profiles (*.toml); also EDGEKIT_TARGETS_PATH.",
)

MIN_CALIBRATION = click.option(
    "--min-calibration-samples",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Accept calibration data with as few as N samples (default: refuse fewer than 10).",
)


def _given(**options: Any) -> dict[str, Any]:
    """The options the user gave; the rest keep the library's defaults."""
    return {name: value for name, value in options.items() if value is not None}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgekit")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (anywhere on the line).")
def cli(debug: bool) -> None:
    """Take a Keras model to an edge device and prove it works there.

    \b
    Quick start:
      edgekit deploy --example digits --target coral
      edgekit targets list
      edgekit inspect MODEL.tflite --target cortex-m4
    """


@cli.group()
def targets() -> None:
    """List and show target profiles."""


@targets.command("list")
@TARGETS_DIR
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def targets_list(targets_dir: str | None, as_json: bool) -> None:
    """Print a table of every target profile."""
    profiles = list_targets(targets_dir)
    if as_json:
        print_json([p.to_dict() for p in profiles])
        return
    rows = []
    for p in profiles:
        mem = p.memory
        rows.append(
            [
                p.name,
                ", ".join(p.aliases),
                p.family,
                p.runtime_text,
                f"{p.quantization.scheme} ({p.quantization.io_dtype} IO)",
                _size(mem.flash_bytes),
                _size(mem.ram_bytes),
                p.harness,
            ]
        )
    columns = ["name", "aliases", "family", "runtime", "quantization", "flash", "RAM", "harness"]
    _console().print(table("edgekit targets", columns, rows))


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1048576:g} MiB" if n >= 1048576 else f"{n / 1024:g} KiB"


@targets.command("show")
@click.argument("name")
@TARGETS_DIR
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def targets_show(name: str, targets_dir: str | None, as_json: bool) -> None:
    """Print one target profile."""
    profile = load_target(name, targets_dir)
    data = profile.to_dict()
    if as_json:
        print_json(data)
        return
    console = _console()
    console.print(f"[bold]{profile.name}[/bold]: {escape(profile.description)}")
    for key, value in _profile_rows(profile):
        console.print(f"  {key:16} {escape(value)}")


def _profile_rows(profile: Any) -> list[tuple[str, str]]:
    """The profile as label/value lines a person reads (JSON is `--json`)."""
    q, m = profile.quantization, profile.memory
    budget = [
        f"{label} {_size(value)}"
        for label, value in (
            ("flash", m.flash_bytes),
            ("RAM", m.ram_bytes),
            ("flash reserve", m.reserve_flash_bytes or None),
            ("RAM reserve", m.reserve_ram_bytes or None),
            ("parameter cache", m.parameter_cache_bytes),
        )
        if value is not None
    ]
    overrides = [
        f"{name}: {', '.join(f'{k} {v}' for k, v in values.items())}"
        for name, values in profile.delegate_overrides.items()
    ]
    return [
        ("aliases", ", ".join(profile.aliases) or "-"),
        ("family", profile.family),
        ("runtime", f"{profile.runtime_text}: {profile.runtime_label}"),
        (
            "quantization",
            f"{q.scheme}, {q.io_dtype} inputs/outputs, "
            f"{'per-channel' if q.per_channel else 'per-tensor'} weights",
        ),
        ("precisions", ", ".join(q.precisions)),
        (
            "ops",
            profile.op_rules
            + (f" (allowed: {', '.join(profile.allowed_ops)})" if profile.allowed_ops else ""),
        ),
        ("memory", ", ".join(budget) or "no budget"),
        ("execution", f"{profile.threads} thread(s), delegate {profile.delegate}"),
        ("delegates", "; ".join(overrides) or "-"),
        *_extra_rows(profile),
        ("harness", f"{profile.harness} over {profile.transport}"),
        ("source", profile.source),
    ]


def _extra_rows(profile: Any) -> list[tuple[str, str]]:
    """`[firmware]` and `[npu]`, when the profile has them."""
    rows = []
    fw = profile.firmware
    if fw is not None:
        rows.append(
            ("firmware", f"{fw.cpu} on QEMU {fw.qemu_board or '-'}: {' '.join(fw.cpu_flags)}")
        )
    npu = profile.npu
    if npu is not None:
        sram = f", SRAM budget {_size(npu.sram_bytes)}" if npu.sram_bytes else ""
        rows.append(
            (
                "npu",
                f"{npu.accelerator} (Vela: {npu.system_config}, {npu.memory_mode}, "
                f"{npu.config}{sram})",
            )
        )
    return rows


@cli.command("inspect")
@click.argument("model", type=click.Path())
@click.option(
    "--target",
    "-t",
    default=None,
    help="Also run every check for this target (an Ethos-U target: Vela's placement too).",
)
@TARGETS_DIR
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def inspect_cmd(model: str, target: str | None, targets_dir: str | None, as_json: bool) -> None:
    """Print ops, MACs, tensors and memory of a .tflite model."""
    from edgekit.inspection import COLUMNS, inspect

    profile = load_target(target, targets_dir) if target else None
    info = inspect(model, profile)
    npu = None
    if profile is not None and profile.npu is not None:
        npu = _npu_placement(Path(model), profile)
        info.checks += npu.checks()
    if as_json:
        print_json({**info.to_dict(), "npu": npu.to_dict() if npu else None})
        return 1 if any(not c.ok for c in info.checks) else 0
    from rich.table import Table

    # Every string from the model file is escaped: a tensor named "[/bold]" is data, not markup.
    console = _console()
    console.print(
        f"[bold]{escape(info.source)}[/bold]  {info.model_bytes:,} bytes  "
        f"sha256 {info.sha256[:16]}…"
    )
    for label, rows in (("input", info.inputs), ("output", info.outputs)):
        for row in rows:
            quant = (
                f" scale={row['scale']:.6g} zero_point={row['zero_point']}" if row["scale"] else ""
            )
            console.print(
                f"  {label}: {escape(row['name'], 80)} {row['shape']} {row['dtype']}{quant}"
            )
    ops = Table(title="ops")
    for column in ("op", "count", "MACs"):
        ops.add_column(column, justify="left" if column == "op" else "right")
    for op in info.ops:
        ops.add_row(escape(op.op, 60), str(op.count), f"{op.macs:,}")
    ops.add_row("[bold]total[/bold]", str(sum(o.count for o in info.ops)), f"{info.macs:,}")
    console.print(ops)
    dtypes = Table(title="tensors")
    for column in ("dtype", "tensors", "parameter bytes", "activation bytes"):
        dtypes.add_column(column, justify="left" if column == "dtype" else "right")
    for d in info.dtypes:
        dtypes.add_row(
            escape(d.dtype), str(d.tensors), f"{d.parameter_bytes:,}", f"{d.activation_bytes:,}"
        )
    console.print(dtypes)
    console.print(f"parameters: {info.parameters:,} ({info.parameter_bytes:,} bytes)")
    console.print(
        f"activation lower bound: {info.activation_lower_bound_bytes:,} bytes "
        f"(at op {escape(info.peak_op)})"
    )
    version = escape(info.min_runtime_version or "absent", 40)
    console.print(f"min_runtime_version (metadata): {version}")
    if npu is not None:
        _print_npu(console, npu)
    if info.checks:
        _print_checks(console, info.checks)
    console.print("\n[dim]columns:[/dim]")
    for name, meaning in COLUMNS.items():
        console.print(f"[dim]  {name}: {meaning}[/dim]")
    return 1 if any(not c.ok for c in info.checks) else 0


def _npu_placement(model: Path, profile: Any) -> Any:
    """Vela on `model` for the profile's NPU, in a temporary folder (nothing is kept)."""
    import tempfile

    from edgekit.stages.npu import compile_for_npu

    with tempfile.TemporaryDirectory(prefix="edgekit-vela-") as work:
        return compile_for_npu(model, Path(work), profile, chart=False)


def _print_npu(console, npu) -> None:
    """Vela's placement per op, the CPU ops' reasons and fixes, memory and its estimates."""
    from rich.table import Table

    data = npu.to_dict()
    console.print(f"\n{escape(data['detail'])}")
    if not npu.run.ok:
        return
    table = Table(title=f"placement on the {data['accelerator']} (cycles: Vela's estimate)")
    for column in ("op", "on", "cycles", "MACs", "tensor"):
        table.add_column(column, justify="right" if column in ("cycles", "MACs") else "left")
    for row in data["ops"]:
        parts = f" ({row['parts']} parts)" if row["parts"] > 1 else ""
        table.add_row(
            escape(row["op"] + parts),
            row["target"],
            f"{row['cycles']:,}",
            f"{row['macs']:,}",
            escape(row["name"], 50),
        )
    console.print(table)
    for op in data["cpu_ops"]:
        console.print(
            f"  on the CPU: {escape(op['op'])} {escape(op['tensor'], 50)}: {escape(op['reason'])}"
            f"\n    to move it to the NPU: {escape(op['advice'])}"
        )
    ms = data["estimated_inference_ms"]
    console.print(
        f"SRAM {data['sram_used_bytes']:,} B, flash {data['flash_used_bytes']:,} B; "
        f"Vela's estimate: {data['estimated_cycles']:,} NPU cycles, "
        f"{'-' if ms is None else f'{ms:.3f}'} ms per inference (not a measurement; "
        "NPU execution is not simulated here)"
    )


def _print_checks(console, checks) -> None:
    from rich.table import Table

    table = Table(title="checks")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for c in checks:
        result = "[green]pass[/green]" if c.ok else "[red]FAIL[/red]"
        table.add_row(c.name, result, escape(c.detail))
    console.print(table)


class _Progress:
    """Shows each deploy step on stderr as it runs, with its time when done. `notes_only`
    (--json): only the notes, so a long step (a firmware build) still shows its progress."""

    def __init__(self, notes_only: bool = False) -> None:
        self.console = _console(stderr=True)
        self.status = None
        self.notes_only = notes_only

    def __call__(self, event: str, name: str, step) -> None:
        if event == "note":
            self.console.print(f"[dim]… {escape(name)}[/dim]")
        elif self.notes_only:
            return
        elif event == "start":
            self.status = self.console.status(f"{name} …")
            self.status.start()
        else:
            if self.status is not None:
                self.status.stop()
                self.status = None
            marks = {
                "ok": "[green]✓[/green]",
                "skipped": "[yellow]–[/yellow]",
                "failed": "[red]✗[/red]",
                "check_failed": "[red]✗[/red]",
                "interrupted": "[red]✗ interrupted:[/red]",
            }
            status = step.status if step.ran or step.status != "ok" else "skipped"
            mark = marks.get(status, "?")
            # A failed step's reason is the error line that follows: not said twice.
            detail = "" if status == "failed" else escape(step.detail)
            self.console.print(f"{mark} {escape(name)} [dim]({step.seconds:.1f} s) {detail}[/dim]")

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()


@cli.command()
@click.argument("model", required=False, type=click.Path())
@click.option("--target", "-t", required=True, help="Target profile name, alias or .toml path.")
@click.option(
    "--example",
    type=click.Choice(["digits", "resnet8", "mobilenet", "dscnn", "autoencoder"]),
    default=None,
    help="Deploy a built-in example (digits is the quick start).",
)
@click.option("--calibration", default=None, help="Calibration inputs: .npy/.npz, or 'random'.")
@click.option("--validation", default=None, help="Validation inputs: .npy or .npz with x (and y).")
@click.option(
    "--out",
    "-o",
    default="edgekit-out",
    show_default=True,
    type=click.Path(),
    help="Output directory.",
)
@click.option("--delegate", default=None, help="Override the profile's delegate (e.g. gpu).")
@click.option(
    "--task",
    type=click.Choice(["classification", "regression"]),
    default=None,
    help="What the outputs are (default: detected from the model and labels).",
)
@click.option(
    "--calibration-method",
    default="default",
    help="int8 ranges: minmax | percentile[:P] | mse | kl | block (by the error at the logits) "
    "| converter (the plain TFLite converter) | default (edgekit's measured best; the default).",
)
@click.option("--no-bias-correction", is_flag=True, help="Skip int8 bias correction.")
@click.option(
    "--rounding",
    type=click.Choice(["nearest", "learned"]),
    default="nearest",
    show_default=True,
    help="int8 weight rounding: learned = AdaRound on the calibration data (slower).",
)
@click.option(
    "--equalize",
    is_flag=True,
    help="Cross-layer equalisation of conv/depthwise pairs before int8 (per-tensor weights).",
)
@click.option("--no-rewrite", is_flag=True, help="Keep global average pools (no MEAN).")
@click.option("--no-analysis", is_flag=True, help="Skip the per-layer quantization analysis.")
@click.option(
    "--keep-float",
    multiple=True,
    metavar="TENSOR",
    help="Keep the op writing TENSOR in float (repeatable; mixed precision).",
)
@click.option(
    "--optimize",
    type=click.Choice(["accuracy"]),
    default=None,
    help="Search every calibration method and bias correction, then learned rounding (slower).",
)
@click.option(
    "--min-sqnr",
    type=float,
    default=None,
    metavar="DB",
    help="Mixed precision: the fewest tensors in int16 (or ops in float) to reach this SQNR.",
)
@click.option(
    "--max-agreement-drop",
    type=float,
    default=None,
    metavar="PTS",
    help="Mixed precision: the fewest tensors in int16 (or ops in float) to lose at most "
    "PTS points of top-1 agreement.",
)
@click.option(
    "--mixed-with",
    type=click.Choice(["auto", "int16", "float"]),
    default="auto",
    show_default=True,
    help="What mixed precision keeps at higher precision: int16 activations (no float ops; "
    "auto on microcontrollers) or float ops (auto on LiteRT targets).",
)
@click.option("--sparse-size", is_flag=True, help="Also report TFLite's sparse-format size.")
@click.option(
    "--unsafe-deserialization",
    is_flag=True,
    help="Let a Keras file's Lambda layers run their Python code while loading (trusted files "
    "only; recorded in the report).",
)
@click.option(
    "--tflm-dir",
    type=click.Path(file_okay=False),
    default=None,
    envvar="EDGEKIT_TFLM_DIR",
    help="MCU targets: a TFLM tree (create_tflm_tree.py) to build the firmware with and run it "
    "under QEMU for 32-bit arena, flash, RAM and instruction figures [env: EDGEKIT_TFLM_DIR].",
)
@click.option("--force", is_flag=True, help="Replace an existing bundle.")
@MIN_CALIBRATION
@TARGETS_DIR
@click.option("--json", "as_json", is_flag=True, help="Print report.json to stdout.")
def deploy(
    model: str | None,
    target: str,
    example: str | None,
    calibration: str | None,
    validation: str | None,
    out: str,
    delegate: str | None,
    task: str | None,
    calibration_method: str,
    no_bias_correction: bool,
    rounding: str,
    equalize: bool,
    no_rewrite: bool,
    no_analysis: bool,
    keep_float: tuple[str, ...],
    optimize: str | None,
    min_sqnr: float | None,
    max_agreement_drop: float | None,
    mixed_with: str,
    sparse_size: bool,
    unsafe_deserialization: bool,
    tflm_dir: str | None,
    force: bool,
    min_calibration_samples: int | None,
    targets_dir: str | None,
    as_json: bool,
) -> int:
    """Convert, check and verify MODEL for a target, and write a bundle.

    Exit codes: 0 deployed and every check passed; 1 a check failed; 2 bad input.
    """
    from edgekit.options import DeployOptions
    from edgekit.pipeline import NO_MODEL
    from edgekit.pipeline import deploy as run_deploy

    if model is None and example is None:
        raise UsageError(NO_MODEL)
    options = DeployOptions(
        calibration=calibration,
        validation=validation,
        out=out,
        force=force,
        example=example,
        delegate=delegate,
        task=task,
        sparse_size=sparse_size,
        calibration_method=calibration_method,
        bias_correction=not no_bias_correction,
        rounding=rounding,
        equalize=equalize,
        rewrite=not no_rewrite,
        analysis=not no_analysis,
        keep_float=keep_float,
        optimize=optimize,
        min_sqnr=min_sqnr,
        max_agreement_drop=max_agreement_drop,
        mixed_with=mixed_with,
        unsafe_deserialization=unsafe_deserialization,
        targets_dir=targets_dir,
        tflm_dir=tflm_dir,
        **_given(min_calibration_samples=min_calibration_samples),
    )
    progress = _Progress(notes_only=as_json)
    try:
        bundle = run_deploy(model, target, options, on_step=progress)
    finally:
        progress.close()
    report = bundle.report
    if as_json:
        print_json(report.to_dict())
        return 0 if bundle.ok else 1
    _print_deploy_summary(bundle)
    return 0 if bundle.ok else 1


def _print_deploy_summary(bundle: Any) -> None:
    report = bundle.report
    console = _console()
    rows = dict((name, value) for name, value, _ in report.metrics.rows())
    console.print()
    if report.verification:
        console.print(f"  {'verified on':28} {escape(report.verification.runtime)}")
    for key in SUMMARY:
        if key in rows:
            console.print(f"  {key:28} {rows[key]}")
    _print_outputs(console, report.verification.outputs if report.verification else [])
    m = report.metrics
    if m.float_model_bytes and m.model_bytes:
        console.print(f"  {'size vs float32':28} {m.model_bytes / m.float_model_bytes:.2f}x")
    if not m.accuracy_meaningful:
        console.print("  [yellow]calibration was random: accuracy figures are meaningless[/yellow]")
    _print_checks(console, report.checks)
    for note in report.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")
    verdict = "[green]deployed[/green]" if bundle.ok else "[red]FAILED[/red]"
    failed = ", ".join(c.name for c in report.failed_checks())
    console.print(
        f"{verdict}: {escape(str(bundle.path))}{'  (failed: ' + failed + ')' if failed else ''}"
    )


def _print_outputs(console: Any, outputs: list[Any]) -> None:
    """With several outputs the figures above are the primary one's (the first classification
    output): each output gets its own line, so a weak one is not hidden."""
    if len(outputs) < 2:
        return
    primary = next((o for o in outputs if o.task == "classification"), outputs[0])
    console.print(f"  {'outputs':28} (the figures above are {escape(primary.name)}'s)")
    for out in outputs:
        agreement = ""
        if out.top1_agreement is not None:
            agreement = f", top-1 agreement {format_value(out.top1_agreement, 'pct')}"
        sqnr = format_value(out.sqnr_db, "db")
        console.print(
            f"    {escape(out.name):26} {out.task}: SQNR {sqnr}, "
            f"max abs error {format_value(out.max_abs_error)}{agreement}"
        )


@cli.command("analyze")
@click.argument("model", type=click.Path())
@click.option("--target", "-t", required=True, help="Target profile name, alias or .toml path.")
@click.option("--calibration", required=True, help="Calibration inputs: .npy/.npz.")
@click.option("--validation", default=None, help="Inputs to analyse on (default: calibration).")
@click.option(
    "--calibration-method",
    default="default",
    help="int8 ranges: minmax | percentile[:P] | mse | kl | block (by the error at the logits) "
    "| default (edgekit's measured best; the default).",
)
@click.option("--no-bias-correction", is_flag=True, help="Skip int8 bias correction.")
@click.option("--no-rewrite", is_flag=True, help="Keep global average pools (no MEAN).")
@click.option(
    "--samples",
    type=click.IntRange(1, 500),
    default=64,
    show_default=True,
    help="Samples the layers are compared on.",
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the per-layer chart (PNG) here.",
)
@click.option("--force", is_flag=True, help="Replace an existing --chart file.")
@MIN_CALIBRATION
@click.option("--json", "as_json", is_flag=True, help="Print the analysis as JSON.")
def analyze_cmd(
    model: str,
    target: str,
    calibration: str,
    validation: str | None,
    calibration_method: str,
    no_bias_correction: bool,
    no_rewrite: bool,
    samples: int,
    chart: str | None,
    force: bool,
    min_calibration_samples: int | None,
    as_json: bool,
) -> int:
    """Where int8 loses accuracy, layer by layer, and what would win it back.

    For every op: SQNR int8 vs float, the float range against the int8 grid (bits used,
    share clipped), and the output SQNR gained if only that op stayed in float; ranked worst
    first. Model-wide: the int8 model, the same grids simulated in float (the gap is what
    integer kernels add) and with exact weights (how far per-channel is from the limit).
    """

    from edgekit.analyze import analyze
    from edgekit.quantization.calibration import parse_method

    if calibration_method != "default":
        parse_method(calibration_method, others=("default",))
    err = _console(stderr=True)

    def progress(message: str) -> None:
        if not as_json:
            err.print(f"[dim]… {escape(message)}[/dim]")

    report = analyze(
        model,
        target,
        calibration=calibration,
        validation=validation,
        calibration_method=calibration_method,
        bias_correction=not no_bias_correction,
        rewrite=not no_rewrite,
        chart=chart,
        force=force,
        samples=samples,
        on_progress=progress,
        **_given(min_calibration_samples=min_calibration_samples),
    )
    if as_json:
        print_json(report.to_dict())
        return 0
    a = report.analysis
    console = _console()
    engine = report.engine
    console.print(
        f"[bold]{escape(report.model)} → {report.target}[/bold]: int8 by edgekit's "
        f"engine ({engine.method} ranges, {engine.calibration_samples} "
        f"calibration samples, bias correction in {engine.bias_corrected_ops} ops"
        + "".join(f"; {r}" for r in engine.rewrites)
        + ")"
    )
    console.print(f"compared at {escape(a.probe)} on {a.samples} samples:")

    def db(value: float | None) -> str:
        return "exact" if value is None else f"{value:.1f} dB"

    console.print(f"  int8 model                         {db(a.output_sqnr_db)}")
    console.print(
        f"  same grids, float arithmetic       {db(a.simulated_sqnr_db)}: {escape(a.kernel_gap())}"
    )
    console.print(f"  exact weights (per-element bound)  {db(a.per_element_bound_db)}")
    if a.sensitivity_base_db is not None:
        console.print(
            f"  gains measured from (quantizer alone, no bias correction) "
            f"{db(a.sensitivity_base_db)}"
        )
    from rich.table import Table

    table = Table(title="layers, worst first")
    for column in (
        "#",
        "op",
        "SQNR dB",
        "float range",
        "int8 grid",
        "bits used",
        "clipped",
        "gain if float dB",
    ):
        table.add_column(
            column, justify="left" if column in ("op", "float range", "int8 grid") else "right"
        )
    for layer in a.ranked():
        table.add_row(
            str(layer.index),
            layer.op,
            "exact" if layer.sqnr_db is None else f"{layer.sqnr_db:.1f}",
            f"[{layer.float_min:.3g}, {layer.float_max:.3g}]",
            f"[{layer.grid_min:.3g}, {layer.grid_max:.3g}]",
            f"{layer.bits_used:.1f}",
            f"{100 * layer.clipped:.2f} %",
            "-" if layer.sensitivity_db is None else f"{layer.sensitivity_db:+.2f}",
        )
    console.print(table)
    if report.chart:
        console.print(f"chart: {escape(str(report.chart))}")
    for note in a.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")
    return 0


from edgekit.cli_bench import bench_cmd, results  # noqa: E402  (light: click + stdlib only)
from edgekit.cli_fit import fit_cmd  # noqa: E402  (light: the search is imported when it runs)

cli.add_command(bench_cmd)
cli.add_command(results)
cli.add_command(fit_cmd)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: one-line errors, exit codes 0/1/2, tracebacks only with --debug.

    `--debug` may appear anywhere on the command line (`edgekit deploy m.keras --debug`).
    A Ctrl-C is exit 130 ("interrupted"), SIGTERM exit 143 ("terminated"), said once, however
    late the signal lands: a Ctrl-C the kernel handed to another thread can surface in Python
    after the command has unwound, and once escaped as a bare KeyboardInterrupt (exit -2).
    """
    code: int | None = None
    for _ in range(5):  # each pass absorbs one late Ctrl-C
        try:
            if code is None:
                code = _main(argv)
            if argv is None:  # the process ends now: stop the worker, ignore further Ctrl-C
                _quiet_shutdown()
            break
        except KeyboardInterrupt as exc:
            if code is None:
                code = 143 if isinstance(exc, signals.Terminated) else 130
    code = 130 if code is None else code
    if code in (130, 143):
        click.echo("terminated" if code == 143 else "interrupted", err=True)
    return code


def _quiet_shutdown() -> None:
    """Ignore Ctrl-C and SIGTERM from here on and stop the conversion worker before exit, so
    that no late signal prints a traceback from atexit. `signal.signal` raises a pending
    KeyboardInterrupt before it changes the handler: main() calls this again after one."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    models = sys.modules.get("edgekit.models")
    if models is not None:
        models.stop_conversion_worker()


def _one_line(exc: click.ClickException) -> str:
    """click's error in one line, where click prints usage, a hint and the error on four:
    "Invalid value for '--rounding': 'foo' is not one of ... (edgekit deploy --help)"."""
    message = " ".join(exc.format_message().split())
    context = getattr(exc, "ctx", None)
    if context is not None:
        message += f" ({context.command_path} --help)"
    return message


def _main(argv: list[str] | None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("EDGEKIT_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        with signals.installed():  # SIGTERM unwinds like Ctrl-C: staging is removed
            result = cli.main(args=args, prog_name="edgekit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(exc)}", err=True)
        return 2
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        # click turns KeyboardInterrupt (and so SIGTERM's Terminated) into Abort.
        cause = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__ or exc.__context__
        return 143 if isinstance(cause, signals.Terminated) else 130  # main() says which
    except EdgekitError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:  # a bug: say so in one line unless debugging
        if debug:
            traceback.print_exc()
            return 3
        text = str(exc).strip().splitlines()
        click.echo(
            f"internal error: {type(exc).__name__}: {text[0][:300] if text else ''} "
            "(rerun with --debug for the traceback)",
            err=True,
        )
        return 3
    return result if isinstance(result, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
