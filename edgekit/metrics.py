"""Every metric name edgekit reports, defined once: its unit and what it measures.

Two families share this registry:

- **Deploy metrics** (:data:`DEPLOY`): one figure each, the fields of
  :class:`edgekit.report.Metrics` (`report.json` → `metrics`). The CLI's deploy summary
  (:data:`SUMMARY`), `report.md`'s metric table, `TargetFitCheck`'s logs
  (:data:`FIT_CHECK`) and `edgekit fit` read names and meanings from here.
- **Bench metrics** (:data:`BENCH`): what a benchmark run records in `BenchResult.metrics`
  (the results store's JSON column); `latency_ms` there is a distribution
  (`min`, `p50`, ... `max`), not one figure.

A name is spelled as a string only here; code elsewhere uses the constants below (a test,
tests/test_architecture.py, holds every module to that).

>>> DEPLOY[HOST_LATENCY_MS].unit
'ms'
>>> format_value(0.9876, "pct")
'98.8 %'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MetricDef:
    """A metric: its name, its unit (`pct`, `db`, `bytes`, `ms`, `mb` or "" for a plain
    number) and one sentence on what it measures."""

    name: str
    unit: str
    meaning: str


def _define(table: dict[str, MetricDef], name: str, unit: str, meaning: str) -> str:
    """Enter a metric in `table` and return its name (the constant code spells it with)."""
    table[name] = MetricDef(name, unit, meaning)
    return name


# --- deploy metrics (report.json → metrics) ----------------------------------------------------


DEPLOY: dict[str, MetricDef] = {}


def _deploy(name: str, unit: str, meaning: str) -> str:
    return _define(DEPLOY, name, unit, meaning)


FLOAT_ACCURACY = _deploy("float_accuracy", "pct", "accuracy of the float32 model on the labels")
DEPLOYED_ACCURACY = _deploy(
    "deployed_accuracy", "pct", "accuracy of the deployed model on the target's runtime"
)
TOP1_AGREEMENT = _deploy(
    "top1_agreement", "pct", "samples where float and deployed pick the same class"
)
QAT_AGREEMENT = _deploy(
    "qat_agreement",
    "pct",
    "QAT models: output values within one int8 step of the simulated (fake-quant) model",
)
OUTPUT_SQNR_DB = _deploy("output_sqnr_db", "db", "signal-to-quantization-noise of the output")
LOGITS_SQNR_DB = _deploy(
    "logits_sqnr_db", "db", "SQNR of the logits (the input of the final softmax)"
)
OUTPUT_MAX_ABS_ERROR = _deploy(
    "output_max_abs_error", "", "largest |float - deployed| output value"
)
OUTPUT_COSINE_SIMILARITY = _deploy(
    "output_cosine_similarity", "", "mean cosine between float and deployed outputs per sample"
)
VERIFIED_SAMPLES = _deploy("verified_samples", "", "samples compared on the target's runtime")
VALIDATION_SAMPLES = _deploy("validation_samples", "", "samples in the validation set")
MODEL_BYTES = _deploy("model_bytes", "bytes", "size of the deployed .tflite")
FLOAT_MODEL_BYTES = _deploy("float_model_bytes", "bytes", "size of the float32 .tflite")
MODEL_GZIP_BYTES = _deploy(
    "model_gzip_bytes", "bytes", "deployed .tflite after gzip -9 (what pruning buys on the wire)"
)
MODEL_SPARSE_BYTES = _deploy(
    "model_sparse_bytes",
    "bytes",
    "size in TFLite's sparse format (EXPERIMENTAL_SPARSITY; --sparse-size)",
)
WEIGHT_SPARSITY = _deploy(
    "weight_sparsity", "pct", "zeros in conv/depthwise/dense weights of the deployed model"
)
PARAMETERS = _deploy("parameters", "", "constant tensor elements (weights, biases)")
MACS = _deploy("macs", "", "multiply-accumulates per inference")
HOST_LATENCY_MS = _deploy(
    "host_latency_ms",
    "ms",
    "p50 on this host: LiteRT, 1 thread, XNNPACK (not the target's own latency)",
)
DEVICE_LATENCY_MS = _deploy(
    "device_latency_ms",
    "ms",
    "p50 on the device itself, by `edgekit bench` (set by `edgekit fit --device`)",
)
ACTIVATION_LOWER_BOUND_BYTES = _deploy(
    "activation_lower_bound_bytes",
    "bytes",
    "most activation bytes alive at one op: no planner can use less",
)
TENSOR_ARENA_BYTES = _deploy(
    "tensor_arena_bytes",
    "bytes",
    "kTensorArenaSize written to model_ops.h: measured minimum + alignment margin",
)
TENSOR_ARENA_MINIMUM_BYTES = _deploy(
    "tensor_arena_minimum_bytes",
    "bytes",
    "smallest arena the TFLM interpreter ran with (see tflm.arena_source)",
)
TENSOR_ARENA_32BIT_BYTES = _deploy(
    "tensor_arena_32bit_bytes",
    "bytes",
    "smallest arena the firmware ran with on the 32-bit CPU under QEMU",
)
FLASH_BYTES = _deploy("flash_bytes", "bytes", "firmware text + data (ELF, built for the target)")
RAM_BYTES = _deploy(
    "ram_bytes", "bytes", "firmware data + bss (incl. the arena) + stack and heap high-water marks"
)
INSTRUCTIONS_PER_INFERENCE = _deploy(
    "instructions_per_inference",
    "",
    "Cortex-M instructions per Invoke() under QEMU (-icount shift=0), not cycles",
)
TFLM_MAX_DIFF_STEPS = _deploy(
    "tflm_max_diff_steps",
    "",
    "largest TFLM vs LiteRT reference-kernel output difference, quantization steps",
)
OPTIMIZED_VS_REFERENCE_STEPS = _deploy(
    "optimized_vs_reference_steps",
    "",
    "largest optimised (e.g. XNNPACK) vs reference-kernel difference (information)",
)
ACCURACY_MEANINGFUL = _deploy("accuracy_meaningful", "", "False when calibration was random")

# Not a report figure: TargetFitCheck's (and edgekit fit's) verdict on the target's budgets.
VERDICTS: dict[str, MetricDef] = {}


def _verdict(name: str, unit: str, meaning: str) -> str:
    return _define(VERDICTS, name, unit, meaning)


FITS_BUDGET = _verdict(
    "fits_budget", "", "1.0 when every budget check of the target passed, else 0.0"
)

# The CLI's deploy summary, in this order.
SUMMARY: tuple[str, ...] = (
    FLOAT_ACCURACY,
    DEPLOYED_ACCURACY,
    TOP1_AGREEMENT,
    QAT_AGREEMENT,
    OUTPUT_SQNR_DB,
    LOGITS_SQNR_DB,
    OUTPUT_MAX_ABS_ERROR,
    OUTPUT_COSINE_SIMILARITY,
    MODEL_BYTES,
    TENSOR_ARENA_BYTES,
    TENSOR_ARENA_32BIT_BYTES,
    FLASH_BYTES,
    RAM_BYTES,
    INSTRUCTIONS_PER_INFERENCE,
    MACS,
    HOST_LATENCY_MS,
)

# What TargetFitCheck logs each time it deploys a copy (with FITS_BUDGET).
FIT_CHECK: tuple[str, ...] = (
    MODEL_BYTES,
    MACS,
    HOST_LATENCY_MS,
    TENSOR_ARENA_BYTES,
    TOP1_AGREEMENT,
)

# --- bench metrics (BenchResult.metrics, the results store) -----------------------------------


BENCH: dict[str, MetricDef] = {FLASH_BYTES: DEPLOY[FLASH_BYTES], RAM_BYTES: DEPLOY[RAM_BYTES]}


def _bench(name: str, unit: str, meaning: str) -> str:
    return _define(BENCH, name, unit, meaning)


LATENCY_MS = _bench("latency_ms", "ms", "min, p50, p90, p99, mean, std, max over the timed runs")
INIT_MS = _bench("init_ms", "ms", "interpreter creation and tensor allocation")
FIRST_INFERENCE_MS = _bench(
    "first_inference_ms", "ms", "the first Invoke(), with one-off delegate preparation"
)
PEAK_RSS_MB = _bench(
    "peak_rss_mb", "mb", "peak resident set of the harness process (Android: its footprint)"
)
INIT_MEMORY_MB = _bench(
    "init_memory_mb", "mb", "memory after interpreter creation (benchmark_model)"
)
ARENA_USED_BYTES = _bench("arena_used_bytes", "bytes", "TFLM arena bytes the interpreter used")
ARENA_BYTES = _bench("arena_bytes", "bytes", "smallest arena the firmware ran with (32-bit, QEMU)")
ARENA_HOST_BYTES = _bench("arena_host_bytes", "bytes", "the bundle's 64-bit host arena figure")
FLASH_BUDGET_BYTES = _bench("flash_budget_bytes", "bytes", "the target's flash budget")
RAM_BUDGET_BYTES = _bench("ram_budget_bytes", "bytes", "the target's RAM budget")
STACK_BYTES = _bench("stack_bytes", "bytes", "stack high-water mark")
HEAP_BYTES = _bench("heap_bytes", "bytes", "heap high-water mark")
INSTRUCTIONS = _bench(
    "instructions", "", "instructions per inference under QEMU: {per_inference, source, ...}"
)
DELEGATE_NODES = _bench("delegate_nodes", "", "graph nodes the delegate took")
TOTAL_NODES = _bench("total_nodes", "", "graph nodes in the model")
OUTPUT_DIGEST = _bench("output_digest", "", "first 16 hex digits of the sha256 of the first output")
TRANSPORT_MS = _bench("transport_ms", "ms", "time spent copying and running over the transport")
DELEGATE_PARTITIONS = _bench("delegate_partitions", "", "subgraphs the delegate took")
DELEGATE_NAME = _bench("delegate_name", "", "the delegate benchmark_model reports applying")
FALLBACK_TO_CPU = _bench(
    "fallback_to_cpu", "", "True when the delegate left graph nodes on the CPU"
)
RUN_COUNT = _bench("count", "", "timed runs benchmark_model reports")
WARMUP_AVG_MS = _bench("warmup_avg_ms", "ms", "mean of benchmark_model's warm-up runs")
HOST_OUTPUT_DIGEST = _bench(
    "host_output_digest", "", "host TFLM's output digest on the same input (QEMU runs)"
)
ELF = _bench("elf", "bytes", "text, data, bss and tensor_arena of the firmware ELF")
BUILD_SECONDS = _bench("build_seconds", "", "seconds building the TFLM library and the firmware")
ARENA_SOURCE = _bench("arena_source", "", "where arena_bytes comes from")
ARENA_USED_SOURCE = _bench("arena_used_source", "", "where arena_used_bytes comes from")
LATENCY_SOURCE = _bench(
    "latency_source", "", "where latency_ms comes from (an estimate, for QEMU runs)"
)
MEMORY_SOURCE = _bench(
    "memory_source", "", "where the flash, RAM, stack and heap figures come from"
)


def format_value(value: Any, unit: str = "") -> str:
    """A figure as people read it: `pct` as a percentage, bytes with KiB, and so on."""
    if value is None:
        return "n/a"
    if unit == "pct":
        return f"{100 * value:.1f} %"
    if unit == "db":
        return f"{value:.1f} dB"
    if unit == "bytes":
        return f"{value:,} B ({value / 1024:.1f} KiB)"
    if unit == "ms":
        return f"{value:.3f} ms"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
