"""The deploy report: one schema, written as `report.json` and `report.md`, read back by
:meth:`edgekit.bundle.Bundle.load`.

`report.json` layout (all keys always present; unknown figures are null):

- `edgekit_version`, `created` (UTC ISO 8601), `status`: "deployed" or "failed"
- `model`: {name, source, kind, unsafe_deserialization}
- `target`: the effective profile (after `--delegate`), as `edgekit targets show --json`
- `io`: {inputs, outputs}: each {name, shape, dtype, scale, zero_point}, what an application
  needs to quantize its inputs and read the outputs
- `ops`: [{index, op, version, macs, placement}]; placement is "tpu"/"cpu" for Edge TPU
  targets (by edgekit's rule analysis or the compiler), else null
- `metrics`: the :class:`Metrics` fields (each documented there, once)
- `verification`: per-output comparison, TFLM-vs-reference kernel check, runtime used
- `quantization`: how edgekit's engine made the int8 model (method, bias correction,
  rewrites, ops kept in float) and the per-layer `analysis` (see
  :mod:`edgekit.quantization.analysis`), else null
- `checks`: [{name, ok, detail}]
- `steps`: [{name, ran, seconds, detail}]; a step that did not run says why
- `artifacts`: [{path, role, bytes, sha256}], paths relative to the bundle (never outside it)
- `data`: {calibration, validation}: where the samples came from and how many
- `tflm`: arena figures and where each came from (MCU targets), else null
- `edgetpu`: rule analysis and compiler log (Edge TPU targets), else null
- `bench`: the harness shipped in the bundle and the commands that run it
- `notes`: plain sentences worth reading

>>> Metrics(model_bytes=1024).to_dict()["model_bytes"]
1024
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from edgekit.checks import Check


class Role(str, enum.Enum):
    """What a file in a bundle is for."""

    DEPLOYED_MODEL = "deployed model"
    FLOAT_REFERENCE = "float32 reference"
    TFLM_SOURCE = "TFLM source"
    EDGETPU_MODEL = "Edge TPU model"
    EDGETPU_LOG = "Edge TPU compiler log"
    HARNESS = "benchmark harness"
    CHART = "chart"
    FIRMWARE = "firmware (QEMU)"


def _metric(kind: str, meaning: str) -> Any:
    return field(default=None, metadata={"kind": kind, "meaning": meaning})


@dataclass
class Metrics:
    """Every figure a deploy reports, each defined once: its unit and what it measures.

    Accuracy figures refer to the primary output (the first classification output, else the
    first output); `verification.outputs` in the report has every output.
    """

    float_accuracy: float | None = _metric("pct", "accuracy of the float32 model on the labels")
    deployed_accuracy: float | None = _metric(
        "pct", "accuracy of the deployed model on the target's runtime"
    )
    top1_agreement: float | None = _metric(
        "pct", "samples where float and deployed pick the same class"
    )
    qat_agreement: float | None = _metric(
        "pct", "QAT models: output values within one int8 step of the simulated (fake-quant) model"
    )
    output_sqnr_db: float | None = _metric("db", "signal-to-quantization-noise of the output")
    logits_sqnr_db: float | None = _metric(
        "db", "SQNR of the logits (the input of the final softmax)"
    )
    output_max_abs_error: float | None = _metric("", "largest |float - deployed| output value")
    output_cosine_similarity: float | None = _metric(
        "", "mean cosine between float and deployed outputs per sample"
    )
    verified_samples: int | None = _metric("", "samples compared on the target's runtime")
    validation_samples: int | None = _metric("", "samples in the validation set")
    model_bytes: int | None = _metric("bytes", "size of the deployed .tflite")
    float_model_bytes: int | None = _metric("bytes", "size of the float32 .tflite")
    model_gzip_bytes: int | None = _metric(
        "bytes", "deployed .tflite after gzip -9 (what pruning buys on the wire)"
    )
    model_sparse_bytes: int | None = _metric(
        "bytes", "size in TFLite's sparse format (EXPERIMENTAL_SPARSITY; --sparse-size)"
    )
    weight_sparsity: float | None = _metric(
        "pct", "zeros in conv/depthwise/dense weights of the deployed model"
    )
    parameters: int | None = _metric("", "constant tensor elements (weights, biases)")
    macs: int | None = _metric("", "multiply-accumulates per inference")
    host_latency_ms: float | None = _metric(
        "ms", "p50 on this host: LiteRT, 1 thread, XNNPACK (not the target's own latency)"
    )
    activation_lower_bound_bytes: int | None = _metric(
        "bytes", "most activation bytes alive at one op: no planner can use less"
    )
    tensor_arena_bytes: int | None = _metric(
        "bytes", "kTensorArenaSize written to model_ops.h: measured minimum + alignment margin"
    )
    tensor_arena_minimum_bytes: int | None = _metric(
        "bytes", "smallest arena the TFLM interpreter ran with (see tflm.arena_source)"
    )
    tensor_arena_32bit_bytes: int | None = _metric(
        "bytes", "smallest arena the firmware ran with on the 32-bit CPU under QEMU"
    )
    flash_bytes: int | None = _metric("bytes", "firmware text + data (ELF, built for the target)")
    ram_bytes: int | None = _metric(
        "bytes", "firmware data + bss (incl. the arena) + stack and heap high-water marks"
    )
    instructions_per_inference: int | None = _metric(
        "", "Cortex-M instructions per Invoke() under QEMU (-icount shift=0), not cycles"
    )
    tflm_max_diff_steps: int | None = _metric(
        "", "largest TFLM vs LiteRT reference-kernel output difference, quantization steps"
    )
    optimized_vs_reference_steps: int | None = _metric(
        "", "largest optimised (e.g. XNNPACK) vs reference-kernel difference (information)"
    )
    accuracy_meaningful: bool = field(
        default=True,
        metadata={"kind": "", "meaning": "False when calibration was random"},
    )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __getitem__(self, name: str) -> Any:
        """`metrics["deployed_accuracy"]` reads like report.json; unknown names raise KeyError."""
        if name not in {f.name for f in fields(self)}:
            raise KeyError(name)
        return getattr(self, name)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metrics:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def rows(self) -> list[tuple[str, str, str]]:
        """(name, formatted value, meaning) for every figure that is known."""
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "accuracy_meaningful":
                continue
            out.append((f.name, format_value(value, f.metadata["kind"]), f.metadata["meaning"]))
        return out


@dataclass
class Step:
    name: str
    ran: bool
    seconds: float
    detail: str
    status: str = "ok"  # ok | skipped | failed | interrupted | check_failed (ran, did not pass)


@dataclass
class Artifact:
    path: str
    role: Role
    bytes: int
    sha256: str

    @classmethod
    def of(cls, path: Path, root: Path, role: Role) -> Artifact:
        data = path.read_bytes()
        return cls(
            str(path.relative_to(root)), Role(role), len(data), hashlib.sha256(data).hexdigest()
        )

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "role": self.role.value, "bytes": self.bytes,
                "sha256": self.sha256}  # fmt: skip


@dataclass
class DeployReport:
    edgekit_version: str
    created: str
    model: dict[str, Any]
    target: dict[str, Any]
    status: str = "failed"
    io: dict[str, Any] = field(default_factory=dict)
    ops: list[dict[str, Any]] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    verification: dict[str, Any] | None = None
    quantization: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    tflm: dict[str, Any] | None = None
    edgetpu: dict[str, Any] | None = None
    bench: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def artifact(self, role: Role) -> Artifact | None:
        """The first artifact with `role`, or None."""
        return next((a for a in self.artifacts if a.role == role), None)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["metrics"] = self.metrics.to_dict()
        data["checks"] = [c.to_dict() for c in self.checks]
        data["steps"] = [asdict(s) for s in self.steps]
        data["artifacts"] = [a.to_dict() for a in self.artifacts]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeployReport:
        """Read back a report.json (validated by the caller, :meth:`Bundle.load`)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["metrics"] = Metrics.from_dict(data.get("metrics") or {})
        values["checks"] = [Check(**c) for c in data.get("checks") or []]
        values["steps"] = [Step(**s) for s in data.get("steps") or []]
        values["artifacts"] = [
            Artifact(a["path"], Role(a["role"]), int(a["bytes"]), str(a["sha256"]))
            for a in data.get("artifacts") or []
        ]
        return cls(**values)


def format_value(value: Any, kind: str = "") -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f} %"
    if kind == "db":
        return f"{value:.1f} dB"
    if kind == "bytes":
        return f"{value:,} B ({value / 1024:.1f} KiB)"
    if kind == "ms":
        return f"{value:.3f} ms"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _io_rows(report: DeployReport) -> list[str]:
    lines = ["| | name | shape | dtype | scale | zero point |", "|---|---|---|---|---|---|"]
    for kind in ("inputs", "outputs"):
        for row in report.io.get(kind, []):
            scale = "-" if row["scale"] is None else f"{row['scale']:.9g}"
            zero = "-" if row["zero_point"] is None else str(row["zero_point"])
            lines.append(
                f"| {kind[:-1]} | {row['name']} | {row['shape']} | {row['dtype']} | {scale} | "
                f"{zero} |"
            )
    return lines


def _kernel_gap(analysis: dict[str, Any]) -> str:
    from edgekit.quantization.analysis import Analysis

    return Analysis(analysis["samples"], [], analysis["output_sqnr_db"],
                    simulated_sqnr_db=analysis["simulated_sqnr_db"]).kernel_gap()  # fmt: skip


def _quantization_section(report: DeployReport) -> list[str]:
    q = report.quantization or {}
    lines = ["", "## Quantization", ""]
    facts = [f"calibration method `{q.get('method')}` on {q.get('calibration_samples')} samples"]
    if q.get("bias_corrected_ops"):
        facts.append(f"bias correction in {q['bias_corrected_ops']} ops")
    facts += q.get("rewrites") or []
    if q.get("kept_in_float"):
        facts.append(f"kept in float: {', '.join(q['kept_in_float'])}")
    lines.append("; ".join(facts) + ".")
    search = q.get("search") or {}
    if search.get("candidates"):
        lines += ["", "`--optimize accuracy` tried (scored on the calibration inputs):", "",
                  "| configuration | SQNR | agreement |", "|---|---|---|"]  # fmt: skip
        for c in search["candidates"]:
            lines.append(f"| {c['label']} | {format_value(c['sqnr_db'], 'db')} | "
                         f"{format_value(c['agreement'], 'pct')} |")  # fmt: skip
    mixed = search.get("mixed")
    if mixed:
        verdict = "met" if mixed["met"] else "**not met**"
        lines += ["", f"Mixed precision, goal {mixed['goal']}: {verdict} with "
                  f"{len(mixed['kept_in_float'])} op(s) in float "
                  f"({format_value(mixed['start_sqnr_db'], 'db')} → "
                  f"{format_value(mixed['final_sqnr_db'], 'db')})."]  # fmt: skip
        cost = q.get("mixed_precision_cost")
        if cost:
            lines.append(f"Cost (all int8 → mixed): {cost}.")
    analysis = q.get("analysis")
    if not analysis:
        return lines
    chart = next((a.path for a in report.artifacts if a.role == Role.CHART), None)
    lines += [
        "",
        f"Per-layer analysis on {analysis['samples']} samples, compared at "
        f"`{analysis.get('probe', '')}`: int8 {format_value(analysis['output_sqnr_db'], 'db')}; "
        f"simulated in float {format_value(analysis['simulated_sqnr_db'], 'db')} "
        f"({_kernel_gap(analysis)}); weights exact (every weight its own scale) "
        f"{format_value(analysis['per_element_bound_db'], 'db')}. Worst first; the gain column "
        "is measured for the least accurate layers (`edgekit analyze` measures all), against "
        f"the quantizer alone with no op in float "
        f"({format_value(analysis.get('sensitivity_base_db'), 'db')}, before bias correction):",
        "",
    ]
    from edgekit.quantization.analysis import Analysis, LayerReport

    result = Analysis(**{**analysis, "layers": [LayerReport(**layer) for layer in
                                                analysis["layers"]]})  # fmt: skip
    lines += result.table(limit=12)
    if chart:
        lines += ["", f"![per-layer SQNR and sensitivity]({chart})"]
    return lines


def render_markdown(report: DeployReport) -> str:
    """A human-readable report; every metric row says what it measures."""
    t = report.target
    quant = t["quantization"]
    lines = [
        f"# {report.model['name']} → {t['name']}: {report.status.upper()}",
        "",
        f"{t['description']}. Runtime: {t['runtime_label'] or t['runtime']}; quantization "
        f"{quant['scheme']} with {quant['io_dtype']} inputs/outputs; delegate "
        f"{t['execution']['delegate']}.",
    ]
    if report.verification:
        lines += ["", f"Deployed figures come from: {report.verification['runtime']}."]
    lines += ["", "## Metrics", "", "| metric | value | meaning |", "|---|---|---|"]
    for name, value, meaning in report.metrics.rows():
        lines.append(f"| {name} | {value} | {meaning} |")
    if not report.metrics.accuracy_meaningful:
        lines += ["", "**Calibration was random: the accuracy figures above are meaningless.**"]
    if report.verification and report.verification.get("outputs"):
        lines += ["", "### Outputs", "",
                  "| output | task | SQNR | logits SQNR | max abs error | cosine | agreement |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for out in report.verification["outputs"]:
            lines.append(
                f"| {out['name']} {out['shape']} | {out['task']} ({out['task_reason']}) | "
                f"{format_value(out['sqnr_db'], 'db')} | "
                f"{format_value(out['logits_sqnr_db'], 'db')} | "
                f"{format_value(out['max_abs_error'])} | "
                f"{format_value(out['cosine_similarity'])} | "
                f"{format_value(out['top1_agreement'], 'pct')} |"
            )
    if report.quantization:
        lines += _quantization_section(report)
    lines += ["", "## Inputs and outputs", "", *_io_rows(report)]
    lines += ["", "## Checks", "", "| check | result | detail |", "|---|---|---|"]
    for check in report.checks:
        lines.append(f"| {check.name} | {'pass' if check.ok else '**FAIL**'} | {check.detail} |")
    if report.tflm:
        lines += ["", "## Tensor arena", ""]
        for key, value in report.tflm.items():
            lines.append(f"- {key}: {format_value(value)}")
    if report.edgetpu:
        analysis = report.edgetpu.get("analysis", {})
        compiler = report.edgetpu.get("compiler") or {}
        lines += [
            "",
            "## Edge TPU",
            "",
            f"Rule analysis: {analysis.get('ops_on_tpu')} ops on the Edge TPU, "
            f"{analysis.get('ops_on_cpu')} on the CPU. Compiler: "
            f"{compiler.get('detail', 'not run')}",
        ]
    lines += ["", "## Ops", "", "| # | op | version | MACs | runs on |", "|---|---|---|---|---|"]
    for op in report.ops:
        lines.append(
            f"| {op['index']} | {op['op']} | {op['version']} | {op['macs']:,} | "
            f"{op.get('placement') or '-'} |"
        )
    lines += ["", "## Steps", "", "| step | ran | seconds | detail |", "|---|---|---|---|"]
    for step in report.steps:
        lines.append(
            f"| {step.name} | {'yes' if step.ran else 'no'} | {step.seconds:.2f} | {step.detail} |"
        )
    if report.bench:
        lines += ["", "## Benchmark on the device", ""]
        lines.append(
            f"Harness: {report.bench['harness']} (files in `harness/`). Run these in the "
            "bundle directory:"
        )
        labels = {
            "host": "From this host",
            "on_device": "On the device, in the bundle directory",
            "simulate": "Host simulation (no board)",
            "emulate": "Cortex-M firmware under QEMU (instructions, 32-bit arena, flash/RAM)",
            "build": "Build the firmware yourself (CMake; see harness/README.md)",
        }
        for key, label in labels.items():
            if report.bench.get(key):
                lines += ["", f"{label}:", "", f"    {report.bench[key]}"]
    lines += ["", "## Files", "", "| path | role | bytes | sha256 |", "|---|---|---|---|"]
    for art in report.artifacts:
        lines.append(
            f"| {art.path} | {art.role.value} | {art.bytes:,} | `{art.sha256[:16]}…` |"
        )
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def write_report(report: DeployReport, directory: Path) -> None:
    (directory / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (directory / "report.md").write_text(render_markdown(report))
