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


def _table(*rows: tuple[str, str, str]) -> dict[str, MetricDef]:
    return {name: MetricDef(name, unit, meaning) for name, unit, meaning in rows}


# --- deploy metrics (report.json → metrics) ----------------------------------------------------

FLOAT_ACCURACY = "float_accuracy"
DEPLOYED_ACCURACY = "deployed_accuracy"
TOP1_AGREEMENT = "top1_agreement"
QAT_AGREEMENT = "qat_agreement"
OUTPUT_SQNR_DB = "output_sqnr_db"
LOGITS_SQNR_DB = "logits_sqnr_db"
OUTPUT_MAX_ABS_ERROR = "output_max_abs_error"
OUTPUT_COSINE_SIMILARITY = "output_cosine_similarity"
VERIFIED_SAMPLES = "verified_samples"
VALIDATION_SAMPLES = "validation_samples"
MODEL_BYTES = "model_bytes"
FLOAT_MODEL_BYTES = "float_model_bytes"
MODEL_GZIP_BYTES = "model_gzip_bytes"
MODEL_SPARSE_BYTES = "model_sparse_bytes"
WEIGHT_SPARSITY = "weight_sparsity"
PARAMETERS = "parameters"
MACS = "macs"
HOST_LATENCY_MS = "host_latency_ms"
ACTIVATION_LOWER_BOUND_BYTES = "activation_lower_bound_bytes"
TENSOR_ARENA_BYTES = "tensor_arena_bytes"
TENSOR_ARENA_MINIMUM_BYTES = "tensor_arena_minimum_bytes"
TENSOR_ARENA_32BIT_BYTES = "tensor_arena_32bit_bytes"
FLASH_BYTES = "flash_bytes"
RAM_BYTES = "ram_bytes"
INSTRUCTIONS_PER_INFERENCE = "instructions_per_inference"
TFLM_MAX_DIFF_STEPS = "tflm_max_diff_steps"
OPTIMIZED_VS_REFERENCE_STEPS = "optimized_vs_reference_steps"
ACCURACY_MEANINGFUL = "accuracy_meaningful"
FITS_BUDGET = "fits_budget"

DEPLOY: dict[str, MetricDef] = _table(
    (FLOAT_ACCURACY, "pct", "accuracy of the float32 model on the labels"),
    (DEPLOYED_ACCURACY, "pct", "accuracy of the deployed model on the target's runtime"),
    (TOP1_AGREEMENT, "pct", "samples where float and deployed pick the same class"),
    (QAT_AGREEMENT, "pct",
     "QAT models: output values within one int8 step of the simulated (fake-quant) model"),
    (OUTPUT_SQNR_DB, "db", "signal-to-quantization-noise of the output"),
    (LOGITS_SQNR_DB, "db", "SQNR of the logits (the input of the final softmax)"),
    (OUTPUT_MAX_ABS_ERROR, "", "largest |float - deployed| output value"),
    (OUTPUT_COSINE_SIMILARITY, "", "mean cosine between float and deployed outputs per sample"),
    (VERIFIED_SAMPLES, "", "samples compared on the target's runtime"),
    (VALIDATION_SAMPLES, "", "samples in the validation set"),
    (MODEL_BYTES, "bytes", "size of the deployed .tflite"),
    (FLOAT_MODEL_BYTES, "bytes", "size of the float32 .tflite"),
    (MODEL_GZIP_BYTES, "bytes", "deployed .tflite after gzip -9 (what pruning buys on the wire)"),
    (MODEL_SPARSE_BYTES, "bytes",
     "size in TFLite's sparse format (EXPERIMENTAL_SPARSITY; --sparse-size)"),
    (WEIGHT_SPARSITY, "pct", "zeros in conv/depthwise/dense weights of the deployed model"),
    (PARAMETERS, "", "constant tensor elements (weights, biases)"),
    (MACS, "", "multiply-accumulates per inference"),
    (HOST_LATENCY_MS, "ms",
     "p50 on this host: LiteRT, 1 thread, XNNPACK (not the target's own latency)"),
    (ACTIVATION_LOWER_BOUND_BYTES, "bytes",
     "most activation bytes alive at one op: no planner can use less"),
    (TENSOR_ARENA_BYTES, "bytes",
     "kTensorArenaSize written to model_ops.h: measured minimum + alignment margin"),
    (TENSOR_ARENA_MINIMUM_BYTES, "bytes",
     "smallest arena the TFLM interpreter ran with (see tflm.arena_source)"),
    (TENSOR_ARENA_32BIT_BYTES, "bytes",
     "smallest arena the firmware ran with on the 32-bit CPU under QEMU"),
    (FLASH_BYTES, "bytes", "firmware text + data (ELF, built for the target)"),
    (RAM_BYTES, "bytes",
     "firmware data + bss (incl. the arena) + stack and heap high-water marks"),
    (INSTRUCTIONS_PER_INFERENCE, "",
     "Cortex-M instructions per Invoke() under QEMU (-icount shift=0), not cycles"),
    (TFLM_MAX_DIFF_STEPS, "",
     "largest TFLM vs LiteRT reference-kernel output difference, quantization steps"),
    (OPTIMIZED_VS_REFERENCE_STEPS, "",
     "largest optimised (e.g. XNNPACK) vs reference-kernel difference (information)"),
    (ACCURACY_MEANINGFUL, "", "False when calibration was random"),
)

# Not a report figure: TargetFitCheck's (and edgekit fit's) verdict on the target's budgets.
VERDICTS: dict[str, MetricDef] = _table(
    (FITS_BUDGET, "", "1.0 when every budget check of the target passed, else 0.0"),
)

# The CLI's deploy summary, in this order.
SUMMARY: tuple[str, ...] = (
    FLOAT_ACCURACY, DEPLOYED_ACCURACY, TOP1_AGREEMENT, QAT_AGREEMENT, OUTPUT_SQNR_DB,
    LOGITS_SQNR_DB, OUTPUT_MAX_ABS_ERROR, OUTPUT_COSINE_SIMILARITY, MODEL_BYTES,
    TENSOR_ARENA_BYTES, TENSOR_ARENA_32BIT_BYTES, FLASH_BYTES, RAM_BYTES,
    INSTRUCTIONS_PER_INFERENCE, MACS, HOST_LATENCY_MS,
)

# What TargetFitCheck logs each time it deploys a copy (with FITS_BUDGET).
FIT_CHECK: tuple[str, ...] = (
    MODEL_BYTES, MACS, HOST_LATENCY_MS, TENSOR_ARENA_BYTES, TOP1_AGREEMENT,
)

# --- bench metrics (BenchResult.metrics, the results store) -----------------------------------

LATENCY_MS = "latency_ms"
INIT_MS = "init_ms"
FIRST_INFERENCE_MS = "first_inference_ms"
PEAK_RSS_MB = "peak_rss_mb"
INIT_MEMORY_MB = "init_memory_mb"
ARENA_USED_BYTES = "arena_used_bytes"
ARENA_BYTES = "arena_bytes"
ARENA_HOST_BYTES = "arena_host_bytes"
FLASH_BUDGET_BYTES = "flash_budget_bytes"
RAM_BUDGET_BYTES = "ram_budget_bytes"
STACK_BYTES = "stack_bytes"
HEAP_BYTES = "heap_bytes"
INSTRUCTIONS = "instructions"
DELEGATE_NODES = "delegate_nodes"
TOTAL_NODES = "total_nodes"
OUTPUT_DIGEST = "output_digest"
TRANSPORT_MS = "transport_ms"
DELEGATE_PARTITIONS = "delegate_partitions"
DELEGATE_NAME = "delegate_name"
FALLBACK_TO_CPU = "fallback_to_cpu"
RUN_COUNT = "count"
WARMUP_AVG_MS = "warmup_avg_ms"
HOST_OUTPUT_DIGEST = "host_output_digest"
ELF = "elf"
BUILD_SECONDS = "build_seconds"
ARENA_SOURCE = "arena_source"
ARENA_USED_SOURCE = "arena_used_source"
LATENCY_SOURCE = "latency_source"
MEMORY_SOURCE = "memory_source"

BENCH: dict[str, MetricDef] = _table(
    (LATENCY_MS, "ms", "min, p50, p90, p99, mean, std, max over the timed runs"),
    (INIT_MS, "ms", "interpreter creation and tensor allocation"),
    (FIRST_INFERENCE_MS, "ms", "the first Invoke(), with one-off delegate preparation"),
    (PEAK_RSS_MB, "mb", "peak resident set of the harness process (Android: its footprint)"),
    (INIT_MEMORY_MB, "mb", "memory after interpreter creation (benchmark_model)"),
    (ARENA_USED_BYTES, "bytes", "TFLM arena bytes the interpreter used"),
    (ARENA_BYTES, "bytes", "smallest arena the firmware ran with (32-bit, QEMU)"),
    (ARENA_HOST_BYTES, "bytes", "the bundle's 64-bit host arena figure"),
    (FLASH_BUDGET_BYTES, "bytes", "the target's flash budget"),
    (RAM_BUDGET_BYTES, "bytes", "the target's RAM budget"),
    (STACK_BYTES, "bytes", "stack high-water mark"),
    (HEAP_BYTES, "bytes", "heap high-water mark"),
    (INSTRUCTIONS, "", "instructions per inference under QEMU: {per_inference, source, ...}"),
    (DELEGATE_NODES, "", "graph nodes the delegate took"),
    (TOTAL_NODES, "", "graph nodes in the model"),
    (OUTPUT_DIGEST, "", "first 16 hex digits of the sha256 of the first output"),
    (TRANSPORT_MS, "ms", "time spent copying and running over the transport"),
    (DELEGATE_PARTITIONS, "", "subgraphs the delegate took"),
    (DELEGATE_NAME, "", "the delegate benchmark_model reports applying"),
    (FALLBACK_TO_CPU, "", "True when the delegate left graph nodes on the CPU"),
    (RUN_COUNT, "", "timed runs benchmark_model reports"),
    (WARMUP_AVG_MS, "ms", "mean of benchmark_model's warm-up runs"),
    (HOST_OUTPUT_DIGEST, "", "host TFLM's output digest on the same input (QEMU runs)"),
    (ELF, "bytes", "text, data, bss and tensor_arena of the firmware ELF"),
    (BUILD_SECONDS, "", "seconds building the TFLM library and the firmware"),
    (ARENA_SOURCE, "", "where arena_bytes comes from"),
    (ARENA_USED_SOURCE, "", "where arena_used_bytes comes from"),
    (LATENCY_SOURCE, "", "where latency_ms comes from (an estimate, for QEMU runs)"),
    (MEMORY_SOURCE, "", "where the flash, RAM, stack and heap figures come from"),
)
BENCH.update({name: DEPLOY[name] for name in (FLASH_BYTES, RAM_BYTES)})  # one meaning each


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
