"""The deploy report: typed records, written as `report.json` and `report.md`, read back by
:meth:`edgekit.bundle.Bundle.load`.

The pipeline assembles a :class:`DeployReport` once, at the end of a deploy, from the stage
results (:mod:`edgekit.assemble`); every field is a typed, frozen record and
:mod:`edgekit.records` turns them to JSON and back.

`report.json` layout, schema 2 (all keys always present; unknown figures are null):

- `schema`: the layout's version, :data:`SCHEMA_VERSION` (absent in schema 1 reports)
- `edgekit_version`, `created` (UTC ISO 8601), `status`: "deployed" or "failed"
- `model`: {name, source, kind, written_by, unsafe_deserialization}
- `target`: the effective profile (after `--delegate`), as `edgekit targets show --json`
- `io`: {inputs, outputs}: each {name, tensor, shape, dtype, scale, zero_point}, what an
  application needs to quantize its inputs and read the outputs
- `ops`: [{index, op, version, macs, placement}]; placement is "tpu"/"cpu" for Edge TPU
  targets (by edgekit's rule analysis or the compiler), "npu"/"cpu" for Ethos-U targets (by
  Vela), else null
- `metrics`: the :class:`Metrics` fields (each defined once, in :mod:`edgekit.metrics`)
- `verification`: per-output comparison, TFLM-vs-reference kernel check, runtime used
- `quantization`: how edgekit's engine made the int8 model (method, bias correction,
  rewrites, ops kept in float, search, mixed-precision cost) and the per-layer `analysis`
  (see :mod:`edgekit.quantization.analysis`), else null
- `checks`: [{name, ok, detail}]
- `steps`: [{name, ran, seconds, detail, status}]; a step that did not run says why
- `artifacts`: [{path, role, bytes, sha256}], paths relative to the bundle (never outside it)
- `data`: {calibration, validation, host_latency}: where the samples came from and how many,
  and how the host latency was measured
- `tflm`: where each arena and firmware figure came from (MCU targets), else null. Schema 1's
  figure keys (`tensor_arena_bytes`, `arena_minimum_bytes`, ...) are still written, from the
  metrics (:data:`TFLM_FIGURES`), and are not read back
- `edgetpu`: rule analysis and compiler run (Edge TPU targets), else null
- `npu`: Vela's compilation for an Ethos-U target (placement per layer, the reason and the
  fix for each op left on the CPU, SRAM and flash against the budgets, Vela's cycle and time
  estimates), else null; see :mod:`edgekit.converters.vela`
- `bench`: the harness shipped in the bundle and the commands that run it
- `notes`: plain sentences worth reading

Schema history: 1 (edgekit before issue 17) had no `schema` key; 2 adds it, always writes
`model.written_by`, `data.validation.labels`, `data.calibration.labels` (null),
`quantization.mixed_precision_cost`/`analysis` (null when not measured) and the `tflm`
firmware keys (null when no firmware ran). Every schema 1 key keeps its name and meaning.

>>> Metrics(model_bytes=1024).to_dict()["model_bytes"]
1024
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgekit import metrics as M
from edgekit.checks import GOAL_CHECK, Check
from edgekit.metrics import format_value
from edgekit.quantization.analysis import Analysis
from edgekit.records import Record, from_json, to_json
from edgekit.targets import TargetProfile
from edgekit.tflite_model import short_name
from edgekit.verify import VerificationResult

SCHEMA_VERSION = 2


class Role(str, enum.Enum):
    """What a file in a bundle is for."""

    DEPLOYED_MODEL = "deployed model"
    FLOAT_REFERENCE = "float32 reference"
    TFLM_SOURCE = "TFLM source"
    EDGETPU_MODEL = "Edge TPU model"
    EDGETPU_LOG = "Edge TPU compiler log"
    NPU_MODEL = "Ethos-U model (Vela)"
    NPU_LOG = "Vela report"
    HARNESS = "benchmark harness"
    CHART = "chart"
    FIRMWARE = "firmware (QEMU)"


def _metric(name: str) -> Any:
    definition = M.DEPLOY[name]
    return field(default=None, metadata={"kind": definition.unit, "meaning": definition.meaning})


@dataclass(frozen=True)
class Metrics:
    """Every figure a deploy reports; names, units and meanings come from
    :data:`edgekit.metrics.DEPLOY`, where each is defined once.

    Accuracy figures refer to the primary output (the first classification output, else the
    first output); `verification.outputs` in the report has every output.
    """

    float_accuracy: float | None = _metric(M.FLOAT_ACCURACY)
    deployed_accuracy: float | None = _metric(M.DEPLOYED_ACCURACY)
    top1_agreement: float | None = _metric(M.TOP1_AGREEMENT)
    qat_agreement: float | None = _metric(M.QAT_AGREEMENT)
    output_sqnr_db: float | None = _metric(M.OUTPUT_SQNR_DB)
    logits_sqnr_db: float | None = _metric(M.LOGITS_SQNR_DB)
    output_max_abs_error: float | None = _metric(M.OUTPUT_MAX_ABS_ERROR)
    output_cosine_similarity: float | None = _metric(M.OUTPUT_COSINE_SIMILARITY)
    verified_samples: int | None = _metric(M.VERIFIED_SAMPLES)
    validation_samples: int | None = _metric(M.VALIDATION_SAMPLES)
    model_bytes: int | None = _metric(M.MODEL_BYTES)
    float_model_bytes: int | None = _metric(M.FLOAT_MODEL_BYTES)
    model_gzip_bytes: int | None = _metric(M.MODEL_GZIP_BYTES)
    model_sparse_bytes: int | None = _metric(M.MODEL_SPARSE_BYTES)
    weight_sparsity: float | None = _metric(M.WEIGHT_SPARSITY)
    parameters: int | None = _metric(M.PARAMETERS)
    macs: int | None = _metric(M.MACS)
    host_latency_ms: float | None = _metric(M.HOST_LATENCY_MS)
    device_latency_ms: float | None = _metric(M.DEVICE_LATENCY_MS)
    activation_lower_bound_bytes: int | None = _metric(M.ACTIVATION_LOWER_BOUND_BYTES)
    tensor_arena_bytes: int | None = _metric(M.TENSOR_ARENA_BYTES)
    tensor_arena_minimum_bytes: int | None = _metric(M.TENSOR_ARENA_MINIMUM_BYTES)
    tensor_arena_32bit_bytes: int | None = _metric(M.TENSOR_ARENA_32BIT_BYTES)
    flash_bytes: int | None = _metric(M.FLASH_BYTES)
    ram_bytes: int | None = _metric(M.RAM_BYTES)
    instructions_per_inference: int | None = _metric(M.INSTRUCTIONS_PER_INFERENCE)
    tflm_max_diff_steps: int | None = _metric(M.TFLM_MAX_DIFF_STEPS)
    optimized_vs_reference_steps: int | None = _metric(M.OPTIMIZED_VS_REFERENCE_STEPS)
    accuracy_meaningful: bool = field(
        default=True,
        metadata={"kind": "", "meaning": M.DEPLOY[M.ACCURACY_MEANINGFUL].meaning},
    )

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

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
            if value is None or f.name == M.ACCURACY_MEANINGFUL:
                continue
            out.append((f.name, format_value(value, f.metadata["kind"]), f.metadata["meaning"]))
        return out


@dataclass
class Step:
    """One timed step of a deploy (filled in while it runs, then kept as it ended)."""

    name: str
    ran: bool
    seconds: float
    detail: str
    status: str = "ok"  # ok | skipped | failed | interrupted | check_failed (ran, did not pass)


@dataclass(frozen=True)
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
        return {
            "path": self.path,
            "role": self.role.value,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artifact:
        return cls(data["path"], Role(data["role"]), int(data["bytes"]), str(data["sha256"]))


@dataclass(frozen=True)
class ModelSection(Record):
    """The model that was deployed: its name, where it came from and what wrote it."""

    name: str
    source: str
    kind: str
    written_by: str | None = None
    unsafe_deserialization: bool = False


@dataclass(frozen=True)
class TensorRow(Record):
    """An input or output: what an application needs to quantize inputs and read outputs."""

    name: str
    tensor: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None


@dataclass(frozen=True)
class IOSection(Record):
    inputs: tuple[TensorRow, ...] = ()
    outputs: tuple[TensorRow, ...] = ()


@dataclass(frozen=True)
class OpRow(Record):
    index: int
    op: str
    version: int
    macs: int
    placement: str | None = None  # "tpu" | "cpu" on Edge TPU targets


@dataclass(frozen=True)
class QuantizationSection(Record):
    """How edgekit's engine made the int8 model."""

    method: str
    calibration_samples: int
    bias_corrected_ops: int = 0
    rounding: dict[str, Any] | None = None  # learned rounding (rounding.LearnedRounding)
    rewrites: tuple[str, ...] = ()
    kept_in_float: tuple[str, ...] = ()
    in_int16: tuple[str, ...] = ()  # activations carried in int16 (mixed precision)
    seconds: dict[str, float] = field(default_factory=dict)
    search: dict[str, Any] | None = None  # --optimize / mixed-precision search (tool output)
    mixed_precision_cost: dict[str, Any] | None = None
    analysis: dict[str, Any] | None = None  # quantization.analysis.Analysis.to_dict()


@dataclass(frozen=True)
class DataSource(Record):
    source: str
    samples: int
    labels: bool | None = None


@dataclass(frozen=True)
class HostLatency(Record):
    """How `host_latency_ms` was measured (or why not: `error`)."""

    p50_ms: float | None = None
    runs: int | None = None
    threads: int | None = None
    delegate: str | None = None
    cpu: str | None = None
    harness: str | None = None
    what: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class DataSection(Record):
    calibration: DataSource | None = None
    validation: DataSource | None = None
    host_latency: HostLatency | None = None


# Schema 1's figure keys in `tflm`, written from the metrics they duplicate (not read back).
TFLM_FIGURES = {
    **{
        name: name
        for name in (
            M.TENSOR_ARENA_BYTES,
            M.ACTIVATION_LOWER_BOUND_BYTES,
            M.FLASH_BYTES,
            M.RAM_BYTES,
            M.INSTRUCTIONS_PER_INFERENCE,
        )
    },
    "arena_minimum_bytes": M.TENSOR_ARENA_MINIMUM_BYTES,
    "arena_32bit_bytes": M.TENSOR_ARENA_32BIT_BYTES,
}


@dataclass(frozen=True)
class TflmSection(Record):
    """Where each TFLM figure (in `metrics`) came from."""

    arena_source: str
    arena_note: str
    arena_32bit_source: str | None = None
    elf_text_data_bss_arena: str | None = None
    stack_high_water_bytes: int | None = None
    memory_source: str | None = None
    instructions_source: str | None = None
    firmware: str | None = None


@dataclass(frozen=True)
class CompilerSection(Record):
    ran: bool
    command: tuple[str, ...]
    detail: str
    log: dict[str, Any] | None = None  # converters.edgetpu.CompilerLog.to_dict()


@dataclass(frozen=True)
class EdgeTPUSection(Record):
    analysis: dict[str, Any]  # runtimes.edgetpu.EdgeTPUAnalysis.to_dict()
    compiler: CompilerSection


@dataclass(frozen=True)
class NpuLayerRow(Record):
    """A row of Vela's per-layer table (`layers`), or an op with its lowering folded (`ops`,
    where `parts` counts the NPU operations it became)."""

    op: str
    npu_op: str
    target: str  # "NPU" or "CPU"
    cycles: int  # Vela's estimate
    macs: int
    name: str
    parts: int = 1


@dataclass(frozen=True)
class NpuCpuOp(Record):
    """An op Vela leaves on the CPU, its reason, and what would move it to the NPU."""

    op: str
    tensor: str
    reason: str
    advice: str


@dataclass(frozen=True)
class NpuSection(Record):
    """Vela's compilation for an Ethos-U target (:mod:`edgekit.converters.vela`): every
    cycle and time figure is Vela's estimate, never a measurement."""

    ran: bool
    command: tuple[str, ...]
    detail: str
    version: str | None = None
    output_model: str | None = None
    accelerator: str = ""
    npu_op_count: int | None = None
    cpu_op_count: int | None = None
    sram_used_bytes: int | None = None
    flash_used_bytes: int | None = None
    sram_limit_bytes: int | None = None
    flash_limit_bytes: int | None = None
    clock_hz: float | None = None
    estimated_cycles: int | None = None
    estimated_inference_ms: float | None = None
    estimates: str = ""
    simulation: str = ""
    layers: tuple[NpuLayerRow, ...] = ()
    ops: tuple[NpuLayerRow, ...] = ()
    cpu_ops: tuple[NpuCpuOp, ...] = ()


@dataclass(frozen=True)
class BenchSection(Record):
    """The harness in the bundle and the commands that run it, from the bundle directory."""

    harness: str
    transport: str
    host: str | None = None
    on_device: str | None = None
    simulate: str | None = None
    emulate: str | None = None
    build: str | None = None


@dataclass(frozen=True)
class FitBudget(Record):
    """One budget of `edgekit fit`, the figure the chosen model measured, and where."""

    budget: str
    limit: float
    measured: float | None
    source: str
    ok: bool


@dataclass(frozen=True)
class FitSection(Record):
    """How `edgekit fit` found this model: the search, the budgets and what was cut."""

    fit_id: str
    original: str  # the model the search started from
    search: str  # the method, trials, seed and where they ran
    trial: int  # the chosen trial's number
    trials: int
    seed: int
    candidate: str  # what the chosen trial changed
    cost_metric: str
    original_cost: float | None
    cost: float | None
    budgets: tuple[FitBudget, ...] = ()


@dataclass(frozen=True)
class DeployReport(Record):
    edgekit_version: str
    created: str
    model: ModelSection
    target: TargetProfile
    status: str = "failed"
    io: IOSection = field(default_factory=IOSection)
    ops: tuple[OpRow, ...] = ()
    metrics: Metrics = field(default_factory=Metrics)
    verification: VerificationResult | None = None
    quantization: QuantizationSection | None = None
    checks: tuple[Check, ...] = ()
    steps: tuple[Step, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    data: DataSection = field(default_factory=DataSection)
    tflm: TflmSection | None = None
    edgetpu: EdgeTPUSection | None = None
    npu: NpuSection | None = None  # Ethos-U targets: Vela's compilation
    bench: BenchSection | None = None
    fit: FitSection | None = None  # set when `edgekit fit` found the model
    notes: tuple[str, ...] = ()
    schema: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def artifact(self, role: Role) -> Artifact | None:
        """The first artifact with `role`, or None."""
        return next((a for a in self.artifacts if a.role == role), None)

    def to_dict(self) -> dict[str, Any]:
        data = {"schema": self.schema}
        data.update({f.name: to_json(getattr(self, f.name)) for f in fields(self)})
        if data["tflm"] is not None:
            data["tflm"] = {
                **{key: getattr(self.metrics, name) for key, name in TFLM_FIGURES.items()},
                **data["tflm"],
            }
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "report.json") -> DeployReport:
        """Read back a report.json (validated by the caller, :meth:`Bundle.load`); `source`
        names it in errors."""
        record = {
            name: from_json(kind, data[name])
            for name, kind in _REPORT_TYPES.items()
            if data.get(name) is not None
        }
        target = TargetProfile.from_dict(data.get("target"), f"{source}: target")
        record["target"] = replace(target, source=str(data["target"].get("source", "")))
        record["schema"] = data.get("schema", 1)
        return cls(**record)


_REPORT_TYPES: dict[str, Any] = {
    "edgekit_version": str,
    "created": str,
    "model": ModelSection,
    "status": str,
    "io": IOSection,
    "ops": tuple[OpRow, ...],
    "metrics": Metrics,
    "verification": VerificationResult,
    "quantization": QuantizationSection,
    "checks": tuple[Check, ...],
    "steps": tuple[Step, ...],
    "artifacts": tuple[Artifact, ...],
    "data": DataSection,
    "tflm": TflmSection,
    "edgetpu": EdgeTPUSection,
    "npu": NpuSection,
    "bench": BenchSection,
    "notes": tuple[str, ...],
}


def _io_rows(report: dict[str, Any]) -> list[str]:
    lines = ["| | name | shape | dtype | scale | zero point |", "|---|---|---|---|---|---|"]
    for kind in ("inputs", "outputs"):
        for row in report["io"].get(kind, []):
            scale = "-" if row["scale"] is None else f"{row['scale']:.9g}"
            zero = "-" if row["zero_point"] is None else str(row["zero_point"])
            lines.append(
                f"| {kind[:-1]} | {row['name']} | {row['shape']} | {row['dtype']} | {scale} | "
                f"{zero} |"
            )
    return lines


def _quantization_section(report: DeployReport, q: dict[str, Any]) -> list[str]:
    lines = ["", "## Quantization", ""]
    facts = [f"calibration method `{q.get('method')}` on {q.get('calibration_samples')} samples"]
    if q.get("rounding"):
        facts.append(rounding_text(q["rounding"]))
    if q.get("bias_corrected_ops"):
        facts.append(f"bias correction in {q['bias_corrected_ops']} ops")
    facts += q.get("rewrites") or []
    if q.get("kept_in_float"):
        facts.append(f"kept in float: {', '.join(q['kept_in_float'])}")
    if q.get("in_int16"):
        facts.append(f"carried in int16 (16x8 ops): {', '.join(q['in_int16'])}")
    lines.append("; ".join(facts) + ".")
    search = q.get("search") or {}
    chosen_on, held_out = search.get("samples") or ("?", "?")
    if search.get("candidates"):
        lines += [
            "",
            f"`--optimize accuracy` tried (chosen on {chosen_on} calibration samples, judged "
            f"on the other {held_out}: a winner that is worse there than the starting "
            "configuration is not kept):",
            "",
            "| configuration | SQNR (chosen on) | SQNR (held out) | agreement (held out) |",
            "|---|---|---|---|",
        ]
        for c in search["candidates"]:
            marks = [m for m in ("start", "chosen") if c.get(m)]
            label = c["label"] + (f" ({', '.join(marks)})" if marks else "")
            lines.append(
                f"| {label} | {format_value(c['sqnr_db'], 'db')} | "
                f"{format_value(c.get('held_out_sqnr_db'), 'db')} | "
                f"{format_value(c.get('held_out_agreement'), 'pct')} |"
            )
    mixed = search.get("mixed")
    if mixed:
        verdict = "met" if mixed["met"] else "**not met**"
        lines += [
            "",
            f"Mixed precision, goal {mixed['goal']}: {verdict} on the {held_out} calibration "
            f"samples the search held out, with {_kept(mixed)} "
            f"({format_value(mixed.get('held_out_start_sqnr_db'), 'db')} → "
            f"{format_value(mixed.get('held_out_final_sqnr_db'), 'db')}; on the {chosen_on} it "
            f"chose on: {format_value(mixed['start_sqnr_db'], 'db')} → "
            f"{format_value(mixed['final_sqnr_db'], 'db')}"
            + (
                f", searching for {format_value(mixed['aimed_sqnr_db'], 'db')} there to leave "
                "a margin for unseen data"
                if mixed.get("aimed_sqnr_db") is not None
                else ""
            )
            + ").",
        ]
        judged = next((c for c in report.checks if c.name == GOAL_CHECK), None)
        if judged is not None:
            lines.append(
                f"Verification: {judged.detail}" + ("." if judged.ok else " (**failed**).")
            )
        cost = q.get("mixed_precision_cost")
        if cost:
            lines.append(f"Cost (all int8 → mixed): {cost_text(cost)}.")
    if not q.get("analysis"):
        return lines
    analysis = from_json(Analysis, q["analysis"])
    chart = next((a.path for a in report.artifacts if a.role == Role.CHART), None)
    lines += [
        "",
        f"Per-layer analysis on {analysis.samples} samples, compared at "
        f"`{analysis.probe}`: int8 {format_value(analysis.output_sqnr_db, 'db')}; "
        f"simulated in float {format_value(analysis.simulated_sqnr_db, 'db')} "
        f"({analysis.kernel_gap()}); weights exact (every weight its own scale) "
        f"{format_value(analysis.per_element_bound_db, 'db')}. Worst first; the gain column "
        "is measured for the least accurate layers (`edgekit analyze` measures all), against "
        f"the quantizer alone with no op in float "
        f"({format_value(analysis.sensitivity_base_db, 'db')}, before bias correction):",
        "",
    ]
    lines += analysis.table(limit=12)
    if chart:
        lines += ["", f"![per-layer SQNR and sensitivity]({chart})"]
    return lines


def cost_text(cost: dict[str, Any]) -> str:
    """The mixed-precision cost (`mixed_precision_cost`) in words.

    >>> cost_text({"model_bytes": [100, 120], "litert_p50_ms": "not measured: x",
    ...            "order": ["all int8", "mixed"]})
    'model bytes 100 → 120; litert p50 ms not measured: x'
    """
    parts = []
    for key, value in cost.items():
        if key == "order":
            continue
        label = key.replace("_", " ")
        if isinstance(value, list) and len(value) == 2:
            parts.append(f"{label} {_figure(value[0])} → {_figure(value[1])}")
        else:
            parts.append(f"{label} {value}")
    return "; ".join(parts)


def _kept(mixed: dict[str, Any]) -> str:
    """'2 tensor(s) in int16' or '1 op(s) in float': what a mixed-precision search kept."""
    if mixed.get("precision") == "int16":
        return f"{len(mixed.get('in_int16') or [])} tensor(s) in int16"
    return f"{len(mixed.get('kept_in_float') or [])} op(s) in float"


def rounding_text(rounding: dict[str, Any]) -> str:
    """One phrase on what learned rounding did (from `LearnedRounding.to_dict()`).

    >>> op = {"weights": 100, "flipped": 7, "error_nearest": 2e-4, "error_learned": 1e-4}
    >>> rounding = {"ops": [op], "skipped": {}, "samples": 250, "seconds": 1.5}
    >>> print(rounding_text(rounding))  # doctest: +NORMALIZE_WHITESPACE
    learned rounding in 1 op(s) on 250 samples (7 of 100 weights off nearest;
    output error 50 % of nearest's), 1.5 s
    """
    ops = rounding.get("ops") or []
    weights = sum(op["weights"] for op in ops)
    flipped = sum(op["flipped"] for op in ops)
    nearest = sum(op["error_nearest"] for op in ops)
    learned = sum(op["error_learned"] for op in ops)
    share = f"; output error {100 * learned / nearest:.0f} % of nearest's" if nearest > 0 else ""
    skipped = rounding.get("skipped") or {}
    left = f", {len(skipped)} op(s) left at nearest" if skipped else ""
    return (
        f"learned rounding in {len(ops)} op(s) on {rounding.get('samples')} samples "
        f"({flipped:,} of {weights:,} weights off nearest{share}){left}, "
        f"{rounding.get('seconds', 0.0):.1f} s"
    )


def _figure(value: float | None) -> str:
    return format_value(value) if value is None or abs(value) < 1000 else f"{value:,.0f}"


def _points(value: float | None) -> str:
    """An accuracy shortfall (a fraction) in points; below zero: better than the reference."""
    if value is None:
        return format_value(value)
    return f"{100 * value:+.1f} pt" + (" (better)" if value < 0 else "")


def _fit_section(fit: FitSection) -> list[str]:
    cost = f"{fit.cost_metric} {_figure(fit.cost)} (the original: {_figure(fit.original_cost)})"
    lines = [
        "",
        "## How this model was found",
        "",
        f"`edgekit fit` (search {fit.fit_id}) from {fit.original}: {fit.search}. Chosen: trial "
        f"{fit.trial} of {fit.trials}, seed {fit.seed}: {fit.candidate}; {cost}.",
        "",
        "| budget | limit | measured | holds | measured by |",
        "|---|---|---|---|---|",
    ]
    for b in fit.budgets:
        show = _points if b.budget in ("max_drop", "min_accuracy") else _figure
        lines.append(
            f"| {b.budget} | {show(b.limit)} | {show(b.measured)} | "
            f"{'yes' if b.ok else '**no**'} | {b.source} |"
        )
    return lines


def render_markdown(report: DeployReport, data: dict[str, Any] | None = None) -> str:
    """A human-readable report; every metric row says what it measures. `data` is
    `report.to_dict()` when the caller already has it."""
    d = data if data is not None else report.to_dict()
    t = d["target"]
    quant = t["quantization"]
    lines = [
        f"# {report.model.name} → {t['name']}: {report.status.upper()}",
        "",
        f"{t['description']}. Runtime: {t['runtime_label'] or t['runtime']}; quantization "
        f"{quant['scheme']} with {quant['io_dtype']} inputs/outputs; delegate "
        f"{t['execution']['delegate']}.",
    ]
    if report.verification:
        lines += ["", f"Deployed figures come from: {report.verification.runtime}."]
    lines += ["", "## Metrics", "", "| metric | value | meaning |", "|---|---|---|"]
    for name, value, meaning in report.metrics.rows():
        lines.append(f"| {name} | {value} | {meaning} |")
    if not report.metrics.accuracy_meaningful:
        lines += ["", "**Calibration was random: the accuracy figures above are meaningless.**"]
    if report.verification and report.verification.outputs:
        lines += [
            "",
            "### Outputs",
            "",
            "| output | task | SQNR | logits SQNR | max abs error | cosine | agreement |",
            "|---|---|---|---|---|---|---|",
        ]
        for out in report.verification.outputs:
            lines.append(
                f"| {out.name} {list(out.shape)} | {out.task} ({out.task_reason}) | "
                f"{format_value(out.sqnr_db, 'db')} | "
                f"{format_value(out.logits_sqnr_db, 'db')} | "
                f"{format_value(out.max_abs_error)} | "
                f"{format_value(out.cosine_similarity)} | "
                f"{format_value(out.top1_agreement, 'pct')} |"
            )
    if report.fit:
        lines += _fit_section(report.fit)
    if d["quantization"]:
        lines += _quantization_section(report, d["quantization"])
    lines += ["", "## Inputs and outputs", "", *_io_rows(d)]
    lines += ["", "## Checks", "", "| check | result | detail |", "|---|---|---|"]
    for check in report.checks:
        lines.append(f"| {check.name} | {'pass' if check.ok else '**FAIL**'} | {check.detail} |")
    if d["tflm"]:
        lines += ["", "## Tensor arena", ""]
        for key, value in d["tflm"].items():
            if value is None:
                continue
            lines.append(f"- {key}: {format_value(value)}")
    if d["edgetpu"]:
        analysis = d["edgetpu"].get("analysis", {})
        compiler = d["edgetpu"].get("compiler") or {}
        lines += [
            "",
            "## Edge TPU",
            "",
            f"Rule analysis: {analysis.get('ops_on_tpu')} ops on the Edge TPU, "
            f"{analysis.get('ops_on_cpu')} on the CPU. Compiler: "
            f"{compiler.get('detail', 'not run')}",
        ]
    if d["npu"]:
        lines += _npu_section(d["npu"])
    lines += ["", "## Ops", "", "| # | op | version | MACs | runs on |", "|---|---|---|---|---|"]
    for op in report.ops:
        lines.append(
            f"| {op.index} | {op.op} | {op.version} | {op.macs:,} | {op.placement or '-'} |"
        )
    lines += ["", "## Steps", "", "| step | ran | seconds | detail |", "|---|---|---|---|"]
    for step in report.steps:
        lines.append(
            f"| {step.name} | {'yes' if step.ran else 'no'} | {step.seconds:.2f} | {step.detail} |"
        )
    if report.bench:
        lines += ["", "## Benchmark on the device", ""]
        lines.append(
            f"Harness: {report.bench.harness} (files in `harness/`). Run these in the "
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
            if getattr(report.bench, key):
                lines += ["", f"{label}:", "", f"    {getattr(report.bench, key)}"]
    lines += ["", "## Files", "", "| path | role | bytes | sha256 |", "|---|---|---|---|"]
    for art in report.artifacts:
        lines.append(f"| {art.path} | {art.role.value} | {art.bytes:,} | `{art.sha256[:16]}…` |")
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def _npu_section(npu: dict[str, Any]) -> list[str]:
    """The Ethos-U part: Vela's placement, memory and estimates (labelled), CPU ops' fixes.

    >>> _npu_section({"detail": "Vela failed: x", "ran": True, "output_model": None})[1]
    '## Ethos-U (Vela)'
    """
    lines = ["", "## Ethos-U (Vela)", "", f"{npu['detail']}."]
    if not npu.get("output_model"):
        return lines
    clock = npu.get("clock_hz")
    lines += [
        "",
        f"- Accelerator: {npu.get('accelerator')}, Vela {npu.get('version')} "
        f"(`{' '.join(npu.get('command', []))}`); compiled model: `{npu['output_model']}`",
        f"- SRAM used: {format_value(npu.get('sram_used_bytes'))} B of "
        f"{format_value(npu.get('sram_limit_bytes'))} B; flash (or DRAM) used: "
        f"{format_value(npu.get('flash_used_bytes'))} B of "
        f"{format_value(npu.get('flash_limit_bytes'))} B",
        f"- Estimated by Vela, not measured: {format_value(npu.get('estimated_cycles'))} NPU "
        f"cycles per inference, {format_value(npu.get('estimated_inference_ms'))} ms at "
        f"{'-' if clock is None else f'{clock / 1e6:g} MHz'} (CPU ops not included)",
        f"- {npu.get('simulation')}",
    ]
    cpu = npu.get("cpu_ops") or []
    if cpu:
        lines += ["", "Ops on the CPU, why, and what would move them to the NPU:", ""]
        lines += ["| op | tensor | Vela's reason | to move it to the NPU |", "|---|---|---|---|"]
        for op in cpu:
            lines.append(f"| {op['op']} | {op['tensor']} | {op['reason']} | {op['advice']} |")
    layers = npu.get("ops") or []  # the per-layer rows, each op's lowering folded
    total = sum(layer["cycles"] for layer in layers) or 1
    lines += [
        "",
        "Per op (an op Vela lowers into several rows of its per-layer table, e.g. a conv and",
        "its fused ReLU, is one row here; parts: how many):",
        "",
        "| # | op | on | cycles (Vela's estimate) | share | MACs | tensor |",
    ]
    lines.append("|---|---|---|---|---|---|---|")
    for i, layer in enumerate(layers):
        parts = f" ({layer['parts']} parts)" if layer["parts"] > 1 else ""
        lines.append(
            f"| {i} | {layer['op']}{parts} | {layer['target']} | {layer['cycles']:,} | "
            f"{100 * layer['cycles'] / total:.1f} % | {layer['macs']:,} | "
            f"{short_name(layer['name'])} |"
        )
    return lines


def write_report(report: DeployReport, directory: Path) -> None:
    data = report.to_dict()
    (directory / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    (directory / "report.md").write_text(render_markdown(report, data))
