"""The deploy report: one schema (`DeployReport`), written as `report.json` and `report.md`.

`report.json` layout (all keys always present; unknown figures are null):

- `edgekit_version`, `created` (UTC ISO 8601), `status`: "deployed" or "failed"
- `model`: {name, source, kind}
- `target`: the profile as used (see `edgekit targets show NAME --json`)
- `artifacts`: [{path, role, bytes, sha256}], paths relative to the bundle
- `metrics`: float_accuracy, deployed_accuracy, top1_agreement, output_sqnr_db, model_bytes,
  float_model_bytes, model_gzip_bytes, weight_sparsity, model_sparse_bytes (pruned models),
  parameters, macs, activation_lower_bound_bytes, validation_samples,
  accuracy_meaningful, and for MCU targets tensor_arena_bytes, tensor_arena_minimum_bytes,
  tflm_accuracy, tflm_top1_agreement, tflm_max_diff_steps
- `checks`: [{name, ok, detail}]
- `steps`: [{name, ran, seconds, detail}]; a step that did not run says why
- `data`: {calibration, validation}: where the samples came from and how many
- `edgetpu`: rule analysis and compiler log (coral targets), else null
- `notes`: plain sentences worth reading
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgekit.checks import Check


@dataclass
class Step:
    name: str
    ran: bool
    seconds: float
    detail: str


@dataclass
class Artifact:
    path: str
    role: str
    bytes: int
    sha256: str

    @classmethod
    def of(cls, path: Path, root: Path, role: str) -> Artifact:
        data = path.read_bytes()
        return cls(str(path.relative_to(root)), role, len(data), hashlib.sha256(data).hexdigest())


@dataclass
class DeployReport:
    edgekit_version: str
    created: str
    model: dict[str, Any]
    target: dict[str, Any]
    status: str = "failed"
    artifacts: list[Artifact] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    edgetpu: dict[str, Any] | None = None
    bench: dict[str, Any] | None = None  # harness shipped in the bundle and how to run it
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = [c.to_dict() for c in self.checks]
        return data


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "n/a"
    if kind == "pct":
        return f"{100 * value:.1f} %"
    if kind == "db":
        return f"{value:.1f} dB"
    if kind == "bytes":
        return f"{value:,} B ({value / 1024:.1f} KiB)"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


METRIC_ROWS = (
    ("float_accuracy", "pct", "accuracy of the float32 model on the validation labels"),
    ("deployed_accuracy", "pct", "accuracy of the deployed model in LiteRT"),
    ("top1_agreement", "pct", "samples where float and deployed pick the same class"),
    ("output_sqnr_db", "db", "signal-to-quantization-noise of the output vs float"),
    ("model_bytes", "bytes", "size of the deployed .tflite"),
    ("float_model_bytes", "bytes", "size of the float32 .tflite"),
    ("model_gzip_bytes", "bytes", "deployed .tflite after gzip -9 (what pruning buys on the wire)"),
    ("model_sparse_bytes", "bytes", "size in TFLite's sparse format (EXPERIMENTAL_SPARSITY)"),
    ("weight_sparsity", "pct", "zeros in conv/depthwise/dense weights of the deployed model"),
    ("parameters", "", "constant tensor elements (weights, biases)"),
    ("macs", "", "multiply-accumulates per inference"),
    ("tensor_arena_bytes", "bytes", "TFLM arena to allocate: measured minimum + alignment margin"),
    ("tensor_arena_minimum_bytes", "bytes", "smallest arena with which TFLM ran the model"),
    ("activation_lower_bound_bytes", "bytes", "most activation bytes alive at one op"),
    ("tflm_accuracy", "pct", "accuracy of the deployed model in TFLM"),
    ("tflm_max_diff_steps", "", "largest TFLM vs LiteRT output difference, quantization steps"),
    ("validation_samples", "", "samples compared"),
)


def render_markdown(report: DeployReport) -> str:
    """A human-readable report; every metric row says what it measures."""
    t = report.target
    lines = [
        f"# {report.model['name']} → {t['name']}: {report.status.upper()}",
        "",
        f"{t['description']}. Runtime: {t['runtime_label'] or t['runtime']}; quantization "
        f"{t['quantization']['scheme']} with {t['quantization']['io_dtype']} inputs/outputs.",
        "",
        "## Metrics",
        "",
        "| metric | value | meaning |",
        "|---|---|---|",
    ]
    for key, kind, meaning in METRIC_ROWS:
        if key in report.metrics:
            lines.append(f"| {key} | {_fmt(report.metrics[key], kind)} | {meaning} |")
    if report.metrics.get("accuracy_meaningful") is False:
        lines += ["", "**Calibration was random: the accuracy figures above are meaningless.**"]
    lines += ["", "## Checks", "", "| check | result | detail |", "|---|---|---|"]
    for check in report.checks:
        lines.append(f"| {check.name} | {'pass' if check.ok else '**FAIL**'} | {check.detail} |")
    if report.edgetpu:
        analysis = report.edgetpu.get("analysis", {})
        lines += [
            "",
            "## Edge TPU",
            "",
            f"Rule analysis: {analysis.get('ops_on_tpu')} ops on the Edge TPU, "
            f"{analysis.get('ops_on_cpu')} on the CPU.",
        ]
        for op in analysis.get("cpu_ops", []):
            lines.append(f"- op #{op['index']} {op['op']} on CPU: {op['reason']}")
        compiler = report.edgetpu.get("compiler") or {}
        lines.append("")
        lines.append(f"Compiler: {compiler.get('detail', 'not run')}")
    lines += ["", "## Steps", "", "| step | ran | seconds | detail |", "|---|---|---|---|"]
    for step in report.steps:
        lines.append(
            f"| {step.name} | {'yes' if step.ran else 'no'} | {step.seconds:.2f} | {step.detail} |"
        )
    if report.bench:
        lines += ["", "## Benchmark on the device", ""]
        lines.append(f"Harness: {report.bench['harness']} (files in `harness/`).")
        labels = {
            "host": "From this host",
            "on_device": "On the device, in the bundle directory",
            "simulate": "Host simulation (no board)",
        }
        for key, label in labels.items():
            if report.bench.get(key):
                lines += ["", f"{label}:", "", f"    {report.bench[key]}"]
    lines += ["", "## Files", "", "| path | role | bytes | sha256 |", "|---|---|---|---|"]
    for art in report.artifacts:
        lines.append(f"| {art.path} | {art.role} | {art.bytes:,} | `{art.sha256[:16]}…` |")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def write_report(report: DeployReport, directory: Path) -> None:
    (directory / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    (directory / "report.md").write_text(render_markdown(report))
