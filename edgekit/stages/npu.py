"""The Ethos-U stage: Vela compiles the int8 model for the profile's NPU; its placement,
memory and cycle estimates are held to the profile's budgets.

Checks: `npu_ops` (every op on the NPU; otherwise which stay on the CPU, Vela's reason, and
what would move them), `npu_sram` and `npu_flash` (Vela's figures against the profile's
`[memory]`). NPU execution is not simulated here; every cycle and time figure is Vela's
estimate and is labelled so.

>>> from edgekit.stages.npu import compile_for_npu                          # doctest: +SKIP
>>> compile_for_npu(model_file, out_dir, load_target("ethos-u55-128")).run.npu_op_count
... # doctest: +SKIP
57
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edgekit.checks import Check
from edgekit.converters.tflm import tflm_sources
from edgekit.converters.vela import NO_SIMULATION, VelaRun, grouped, run_vela
from edgekit.plotting import available, pyplot
from edgekit.report import Role
from edgekit.targets import TargetProfile
from edgekit.tflite_model import TFLiteModel, read_tflite, short_name

CHART = "vela_cycles.png"
SOURCES = "tflm_npu"  # the bundle folder with the NPU build's TFLM sources


@dataclass(frozen=True)
class NpuResult:
    """Vela's run for the profile's NPU, the budgets it is held to, and its chart."""

    run: VelaRun
    accelerator: str
    sram_limit_bytes: int | None
    flash_limit_bytes: int | None
    chart: Path | None = None

    def checks(self) -> list[Check]:
        """npu_ops, npu_sram and npu_flash; one failed `vela` check when Vela did not run.

        >>> run = VelaRun(True, ("vela",), "Vela 5.2.0 failed: bad model")
        >>> [(c.name, c.ok) for c in NpuResult(run, "ethos-u55-128", None, None).checks()]
        [('vela', False)]
        """
        run = self.run
        if not run.ok:
            return [Check("vela", False, run.detail)]
        on_cpu = run.cpu_ops
        if on_cpu:
            named = "; ".join(f"{op.op} ({op.reason})" for op in on_cpu[:4])
            more = f" and {len(on_cpu) - 4} more" if len(on_cpu) > 4 else ""
            ops = Check(
                "npu_ops",
                False,
                f"{len(on_cpu)} op(s) stay on the CPU of the {self.accelerator} system: "
                f"{named}{more} (what would move each: listed with the placement)",
            )
        else:
            count = run.npu_op_count if run.npu_op_count is not None else len(run.layers)
            ops = Check(
                "npu_ops",
                True,
                f"every op on the {self.accelerator} (Vela {run.version}: {count} NPU "
                "operations after its lowering)",
            )
        return [
            ops,
            _budget("npu_sram", "SRAM", run.sram_used_bytes, self.sram_limit_bytes),
            _budget("npu_flash", "flash", run.flash_used_bytes, self.flash_limit_bytes),
        ]

    def bundle_files(self) -> list[tuple[Path, str, Role]]:
        """(file, its name in the bundle, role): Vela's model, its CSV reports, the chart."""
        run = self.run
        found = [(run.output_model, run.output_model.name, Role.NPU_MODEL)] if run.ok else []
        found += [(report, f"vela/{report.name}", Role.NPU_LOG) for report in run.files]
        if self.chart is not None:
            found.append((self.chart, self.chart.name, Role.CHART))
        folder = run.output_model.parent / SOURCES if run.output_model else None
        if folder is not None and folder.is_dir():
            for source in sorted(folder.iterdir()):
                found.append((source, f"{SOURCES}/{source.name}", Role.TFLM_SOURCE))
        return found

    def placements(self, model: TFLiteModel) -> dict[int, str]:
        """Op index → "npu" or "cpu": an op whose output Vela lists on the CPU ran there;
        the others are in an ETHOSU op (or folded away by Vela)."""
        on_cpu = {op.tensor.removesuffix("_act") for op in self.run.cpu_ops}
        placed = {}
        for op in model.operators:
            name = model.tensors[op.outputs[0]].name if op.outputs else ""
            placed[op.index] = "cpu" if name.removesuffix("_act") in on_cpu else "npu"
        return placed

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.run.to_dict(),
            "ops": grouped(self.run.layers),
            "accelerator": self.accelerator,
            "sram_limit_bytes": self.sram_limit_bytes,
            "flash_limit_bytes": self.flash_limit_bytes,
            "simulation": NO_SIMULATION,
        }


def _budget(name: str, what: str, used: int | None, budget: int | None) -> Check:
    if used is None:
        return Check(name, False, f"Vela reported no {what} figure")
    if budget is None:
        return Check(name, True, f"{used:,} B of {what} (the profile sets no budget)")
    verdict = "fits" if used <= budget else "does not fit"
    return Check(name, used <= budget, f"{used:,} B of {what} {verdict} in {budget:,} B (Vela)")


def compile_for_npu(
    model_file: Path,
    out_dir: Path,
    profile: TargetProfile,
    chart: bool = True,
    cpu_arena: int | None = None,
) -> NpuResult:
    """Vela on `model_file` for `profile.npu`, into `out_dir`. Budgets: SRAM is `[npu]
    sram_bytes`, else the arena RAM; flash is the model flash. The cycles chart is drawn when
    matplotlib is installed. With `cpu_arena` (the int8 model's TFLM arena), the TFLM sources
    of the NPU build are written too (:func:`npu_sources`)."""
    assert profile.npu is not None
    run = run_vela(model_file, out_dir, profile.npu)
    result = NpuResult(
        run,
        profile.npu.accelerator,
        profile.npu.sram_bytes or profile.memory.arena_ram_bytes,
        profile.memory.model_flash_bytes,
    )
    if chart and run.ok and run.layers and available():
        chart = out_dir / CHART
        draw_cycles(run, chart, f"{model_file.stem} on {profile.npu.accelerator}")
        result = replace(result, chart=chart)
    if cpu_arena is not None and run.ok and run.output_model is not None:
        compiled = read_tflite(run.output_model.read_bytes(), run.output_model.name)
        folder = out_dir / SOURCES
        folder.mkdir(exist_ok=True)
        for filename, text in npu_sources(compiled, model_file.stem, run, cpu_arena).items():
            (folder / filename).write_text(text)
    return result


def npu_sources(compiled: TFLiteModel, name: str, run: VelaRun, cpu_arena: int) -> dict[str, str]:
    """The TFLM sources of the NPU build: Vela's model as a C array and a resolver that
    registers the `ETHOSU` op (TFLM's `AddEthosU`, with the Ethos-U driver) and every op left
    on the CPU. Its arena cannot be measured here (no NPU): it is Vela's SRAM figure, plus the
    int8 model's CPU-only arena when ops stay on the CPU, labelled an estimate."""
    estimate = (run.sram_used_bytes or 0) + (cpu_arena if run.cpu_ops else 0)
    files = tflm_sources(compiled, f"{name}_vela", None)
    header = files["model_ops.h"]
    block = "\n".join(
        [
            f"// Tensor arena: an ESTIMATE, {estimate} bytes: Vela's SRAM figure "
            f"({run.sram_used_bytes} bytes, the NPU's",
            "// tensors and scratch)"
            + (
                f" plus the CPU-only arena ({cpu_arena} bytes) for the ops left on the CPU."
                if run.cpu_ops
                else "."
            ),
            "// The NPU is not simulated here: measure it on the board and override with",
            "// -DEDGEKIT_TENSOR_ARENA_SIZE=N. The ETHOSU kernel needs TFLM's Ethos-U driver.",
            "#ifndef EDGEKIT_TENSOR_ARENA_SIZE",
            f"#define EDGEKIT_TENSOR_ARENA_SIZE {estimate}",
            "#endif",
            "constexpr size_t kTensorArenaSize = EDGEKIT_TENSOR_ARENA_SIZE;",
            "",
            "inline TfLiteStatus EdgekitRegisterOps(",
        ]
    )
    files["model_ops.h"] = header.replace("inline TfLiteStatus EdgekitRegisterOps(", block, 1)
    return files


def draw_cycles(run: VelaRun, path: Path, title: str) -> None:
    """Where Vela's estimated cycles go: one bar per layer with cycles, CPU ops marked."""
    plt = pyplot()
    rows = [row for row in grouped(run.layers) if row["cycles"] > 0 or row["target"] == "CPU"]
    names: Counter[str] = Counter()
    labels = []
    for row in rows:
        label = f"{short_name(row['name'], 28) or row['op']} · {row['op']}"
        names[label] += 1
        labels.append(label if names[label] == 1 else f"{label} ({names[label]})")
    fig, ax = plt.subplots(figsize=(8, max(3.0, 0.22 * len(rows) + 1.2)))
    colours = ["#c0392b" if row["target"] == "CPU" else "#2e86c1" for row in rows]
    ax.barh(range(len(rows)), [row["cycles"] for row in rows], color=colours)
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.tick_params(axis="y", labelsize=7)
    ax.set_xlabel("NPU cycles (Vela's estimate; red: on the CPU, not estimated)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
