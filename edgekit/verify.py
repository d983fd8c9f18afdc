"""Run the float and the deployed model on the same inputs, on the device's runtime, and compare.

Which runtime produces the deployed figures is the target's (:func:`device_runtime`): TFLM for
microcontrollers, LiteRT with XNNPACK for Linux and Android CPUs. Where the device's own
accelerator cannot run here (Edge TPU, GPU, NNAPI), LiteRT's CPU kernels run the same model and
the result says so.

Every output is compared, matched between the float and the deployed model by its signature
name. What is measured depends on the output's task (:func:`detect_task`):

- classification (a softmax/sigmoid at the end, or class labels given): `top1_agreement`, the
  share of samples where both models pick the same class; accuracy with labels; SQNR of the
  output and, when the model ends in softmax, of the logits (softmax compresses the error:
  on a ResNet-8, 21.1 dB logits give 15.9 dB probabilities);
- regression (autoencoders, regressors, anything else): SQNR, max abs error and cosine
  similarity. No top-1 agreement: an autoencoder has no classes to agree on.

For microcontrollers TFLM is also checked against LiteRT's *reference* kernels, which TFLM's
kernels mirror (optimised kernels such as XNNPACK round differently, by CPU: that divergence is
reported, never failed). When outputs differ by more than one quantization step, every op is
re-run alone in LiteRT on TFLM's own inputs to that op (:mod:`edgekit.tflite_edit`), and the
first op that computes differently on identical inputs is named.

>>> round(sqnr_db(np.array([1.0, 2.0]), np.array([1.0, 2.1])), 1)
27.0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgekit.data import Dataset, as_float32, take
from edgekit.errors import EdgekitError, UsageError
from edgekit.graph import op_macs, producers
from edgekit.isolation import call
from edgekit.records import Record
from edgekit.runtimes import litert, tflm
from edgekit.runtimes.litert import dequantize_tensor, input_feeds
from edgekit.tflite_edit import single_op_model
from edgekit.tflite_model import Operator, TFLiteModel, read_tflite

COLLAPSE_AGREEMENT = 0.90
TASKS = ("classification", "regression")
KERNEL_TOLERANCE_STEPS = 1
FLOAT_TOLERANCE = 1e-4  # relative, for float tensors (float IO models)
# TFLM's Python interpreter runs reference kernels at tens of MMAC/s: verification on it is
# bounded by work, not by the validation set's size.
TFLM_MAC_BUDGET = 5e9
TFLM_MIN_SAMPLES, TFLM_MAX_SAMPLES = 20, 500
QUANT_OPS = ("DEQUANTIZE", "QUANTIZE")
ADVICE = (
    "see which layers lose most with `edgekit analyze`; try more representative calibration "
    "data (100-500 real inputs), --optimize accuracy, keeping sensitive ops in float "
    "(--min-sqnr), or quantization-aware training (edgekit.keras.quantize_model)"
)


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float | None:
    """Signal-to-quantization-noise ratio in dB; None when the outputs are identical."""
    reference = np.asarray(reference, dtype=np.float64)
    noise = float(np.sum((reference - np.asarray(test, dtype=np.float64)) ** 2))
    if noise == 0.0:
        return None
    return 10.0 * math.log10(max(float(np.sum(reference**2)), 1e-300) / noise)


def cosine_similarity(reference: np.ndarray, test: np.ndarray) -> float | None:
    """Mean over samples of the cosine between float and deployed outputs (rows)."""
    a = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    b = np.asarray(test, dtype=np.float64).reshape(len(test), -1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    valid = norms > 0
    if not valid.any():
        return None
    return float(np.mean(np.sum(a * b, axis=1)[valid] / norms[valid]))


def quantize(x: np.ndarray, dtype: Any, quant: tuple[float, int]) -> np.ndarray:
    """Float values → an integer dtype with (scale, zero point); float dtypes just cast."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero_point = quant
    info = np.iinfo(dtype)
    if scale == 0:
        return np.clip(np.round(x), info.min, info.max).astype(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, quant: tuple[float, int]) -> np.ndarray:
    scale, zero_point = quant
    if not np.issubdtype(q.dtype, np.integer) or scale == 0:
        return q.astype(np.float32)
    return ((q.astype(np.int64) - zero_point) * scale).astype(np.float32)


# --- which runtime ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRuntime:
    """The runtime whose figures count as the deployed model's, and how it runs here."""

    name: str  # "tflm" | "litert"
    kernels: str  # litert: "optimized" | "builtin"; tflm: "reference"
    label: str
    note: str = ""


def device_runtime(profile: Any) -> DeviceRuntime:
    """The runtime a target's devices run, as far as this host can run it."""
    if profile.is_mcu:
        return DeviceRuntime("tflm", "reference", "TFLM (tflite_micro reference kernels)")
    delegate = profile.delegate
    if delegate == "xnnpack":
        return DeviceRuntime("litert", "optimized", "LiteRT + XNNPACK")
    if delegate == "none":
        return DeviceRuntime("litert", "builtin", "LiteRT builtin kernels")
    if delegate == "edgetpu":
        why = (
            "the Edge TPU is not on this host: the deployed figures come from LiteRT's CPU "
            "kernels on the same int8 model"
        )
    else:
        why = (
            f"the {delegate} delegate runs only on an Android device: the deployed figures "
            "come from LiteRT's CPU kernels on the same model"
        )
    return DeviceRuntime("litert", "builtin", "LiteRT builtin kernels", why)


# --- the graph's outputs ---------------------------------------------------------------------


def final_op(model: TFLiteModel, tensor: int) -> Operator | None:
    """The op that computes output `tensor`, looking through float IO (DE)QUANTIZE ops."""
    writers = producers(model)
    op = writers.get(tensor)
    seen = 0
    while op is not None and op.name in QUANT_OPS and seen < 4 and op.inputs:
        op = writers.get(op.inputs[0])
        seen += 1
    return op


def logits_tensor(model: TFLiteModel, output: int) -> int | None:
    """The input of the SOFTMAX that ends `output`, if it ends in one."""
    op = final_op(model, output)
    if op is not None and op.name == "SOFTMAX" and op.inputs:
        return op.inputs[0]
    return None


def detect_task(
    model: TFLiteModel, output: int, labels: np.ndarray | None = None
) -> tuple[str, str]:
    """(task, why) for one output, from the graph and the labels."""
    tensor = model.tensors[output]
    classes = tensor.shape[-1] if tensor.shape else 1
    others = [d for d in tensor.shape[:-1] if d > 1]
    op = final_op(model, output)
    ending = op.name if op is not None else ""
    if ending in ("SOFTMAX", "LOG_SOFTMAX") and classes >= 2 and not others:
        return "classification", f"ends in {ending} over {classes} classes"
    if ending == "LOGISTIC" and classes == 1 and not others:
        return "classification", "ends in a single sigmoid (two classes at 0.5)"
    inputs = model.input_tensors()
    if inputs and tensor.elements == inputs[0].elements:
        return "regression", "output has the input's size (reconstruction)"
    if labels is not None and not others and classes >= 2 and labels.max(initial=0) < classes:
        return "classification", f"{classes} logits and integer class labels"
    return "regression", (
        f"output {list(tensor.shape)} ends in {ending or 'no op'}, not softmax/sigmoid, "
        "and no class labels"
    )


@dataclass(frozen=True)
class OutputPair:
    name: str
    float_index: int | None
    deployed_index: int


def match_outputs(deployed: TFLiteModel, reference: TFLiteModel | None) -> list[OutputPair]:
    """Pair every deployed output with the float model's, by signature name (never position,
    which the converter does not keep in Keras's order)."""
    pairs = []
    by_name = {reference.io_name(i): i for i in reference.outputs} if reference else {}
    for idx in deployed.outputs:
        name = deployed.io_name(idx)
        pairs.append(OutputPair(name, by_name.get(name), idx))
    if reference and any(p.float_index is None for p in pairs):
        missing = [p.name for p in pairs if p.float_index is None]
        raise UsageError(
            f"cannot match deployed outputs {missing} to the float model's "
            f"{sorted(by_name)} by name"
        )
    return sorted(pairs, key=lambda p: p.name)


# --- results ---------------------------------------------------------------------------------


@dataclass
class OutputMetrics(Record):
    """How one output of the deployed model compares with the float model's."""

    name: str
    shape: list[int]
    dtype: str
    task: str
    task_reason: str
    sqnr_db: float | None = None
    max_abs_error: float | None = None
    cosine_similarity: float | None = None
    top1_agreement: float | None = None
    top1_samples: int | None = None  # samples the float model decides by more than one step
    logits_sqnr_db: float | None = None
    float_accuracy: float | None = None
    deployed_accuracy: float | None = None
    qat_agreement: float | None = None  # QAT models: share within one step (within_one_step)


@dataclass
class KernelCheck(Record):
    """TFLM against LiteRT's reference kernels on the same inputs."""

    samples: int
    max_diff_steps: int | None
    ok: bool
    detail: str
    first_divergent_op: dict[str, Any] | None = None
    ops: list[dict[str, Any]] = field(default_factory=list)  # per-op local differences


@dataclass
class VerificationResult(Record):
    """Float vs deployed on the validation inputs, on the device's runtime."""

    samples: int
    runtime: str  # label of the runtime that produced the deployed figures
    outputs: list[OutputMetrics]
    validation_samples: int = 0
    kernel_check: KernelCheck | None = None
    optimized_vs_reference_steps: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def primary(self) -> OutputMetrics | None:
        """The output accuracy and agreement are reported for: the first classification
        output, else the first output."""
        for out in self.outputs:
            if out.task == "classification":
                return out
        return self.outputs[0] if self.outputs else None

    @property
    def top1_agreement(self) -> float | None:
        return self.primary.top1_agreement if self.primary else None

    @property
    def collapsed(self) -> bool:
        agreements = [o.top1_agreement for o in self.outputs if o.top1_agreement is not None]
        return any(a < COLLAPSE_AGREEMENT for a in agreements)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the comparison --------------------------------------------------------------------------


def _classes(values: np.ndarray) -> np.ndarray:
    flat = values.reshape(len(values), -1)
    if flat.shape[1] == 1:
        return (flat[:, 0] > 0.5).astype(np.int64)
    return flat.argmax(axis=1)


def output_step(model: TFLiteModel, index: int) -> float:
    """The quantization step of an output: its own scale, or for a float output behind a
    DEQUANTIZE the scale of the int8 tensor it came from; 0 for a float model."""
    quant = model.tensors[index].quant
    if quant is None:
        op = final_op(model, index)
        if op is not None and op.name == "DEQUANTIZE":
            quant = model.tensors[op.inputs[0]].quant
    return float(quant.scales[0]) if quant is not None else 0.0


def within_one_step(simulated: np.ndarray, deployed: np.ndarray, step: float) -> float:
    """Share of output values where the int8 model lands within one output quantization step
    of the QAT model's simulated (fake-quant) output: how exactly the converter kept what
    training saw.

    >>> within_one_step(np.array([0.0, 0.5, 1.0, 1.0]), np.array([0.0, 0.52, 1.0, 0.9]), 0.04)
    0.75
    """
    difference = np.abs(np.asarray(simulated, np.float64) - np.asarray(deployed, np.float64))
    return float(np.mean(difference <= step * (1 + 1e-6)))


def decisive_samples(ref: np.ndarray, step: float) -> np.ndarray:
    """Which samples the float model classifies by a margin larger than one output step.

    Where the float top-1 leads the runner-up by less than the int8 output's step, rounding
    alone can swap them: an untrained net's near-uniform softmax (every margin below 1/256)
    says nothing about the conversion. Top-1 agreement is counted on the other samples.

    >>> decisive_samples(np.array([[0.5, 0.3, 0.2], [0.335, 0.333, 0.332]]), 1 / 256).tolist()
    [True, False]
    """
    flat = ref.reshape(len(ref), -1).astype(np.float64)
    if flat.shape[1] == 1:
        margin = np.abs(flat[:, 0] - 0.5)
    else:
        top = np.partition(flat, -2, axis=1)[:, -2:]
        margin = top[:, 1] - top[:, 0]
    return margin > step


def compare_output(
    name: str,
    tensor: Any,
    task: tuple[str, str],
    ref: np.ndarray | None,
    got: np.ndarray,
    labels: np.ndarray | None,
    step: float = 0.0,
) -> OutputMetrics:
    """Metrics of one output; `ref` and `got` are float values, samples first; `step` is the
    deployed output's quantization step (see :func:`decisive_samples`)."""
    metrics = OutputMetrics(name, list(tensor.shape), tensor.dtype.lower(), *task)
    if metrics.task == "classification" and labels is not None:
        metrics.deployed_accuracy = float(np.mean(_classes(got) == labels[: len(got)]))
    if ref is None:
        return metrics
    metrics.sqnr_db = sqnr_db(ref, got)
    metrics.max_abs_error = float(np.max(np.abs(ref.astype(np.float64) - got)))
    metrics.cosine_similarity = cosine_similarity(ref, got)
    if metrics.task == "classification":
        decisive = decisive_samples(ref, step)
        metrics.top1_samples = int(decisive.sum())
        if decisive.any():
            agree = _classes(ref[decisive]) == _classes(got[decisive])
            metrics.top1_agreement = float(np.mean(agree))
        if labels is not None:
            metrics.float_accuracy = float(np.mean(_classes(ref) == labels[: len(ref)]))
    return metrics


def tflm_sample_count(model: TFLiteModel, available: int) -> int:
    macs = max(1, sum(op_macs(model, op) for op in model.operators))
    budget = int(TFLM_MAC_BUDGET / macs)
    return min(available, max(TFLM_MIN_SAMPLES, min(TFLM_MAX_SAMPLES, budget)))


def _steps(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64)), initial=0))


def _raw_diff(a: dict[int, np.ndarray], b: dict[int, np.ndarray]) -> int | None:
    """Largest difference in quantization steps over integer outputs; None if none is."""
    steps = [_steps(a[i], b[i]) for i in a if np.issubdtype(a[i].dtype, np.integer)]
    return max(steps) if steps else None


def verify(
    deployed: TFLiteModel,
    data: Dataset,
    *,
    reference: TFLiteModel | None = None,
    runtime: DeviceRuntime | None = None,
    task: str | None = None,
    tflm_arena_bytes: int | None = None,
    threads: int = 1,
    qat: bool = False,
) -> VerificationResult:
    """Compare `deployed` with the float `reference` on `data`, on `runtime`.

    `qat`: the reference is a QAT model's conversion (its fake quantization kept as
    quantize/dequantize pairs: the simulated int8 model); each output then also gets
    `qat_agreement` (:func:`within_one_step`).

    Raises :class:`~edgekit.errors.RuntimeFailure` when a runtime crashes, hangs or refuses
    the model (the caller records a failed check); anything else is a bug.
    """
    if runtime is None:
        runtime = DeviceRuntime("litert", "builtin", "LiteRT builtin kernels")
    if runtime.name == "tflm" and tflm_arena_bytes is None:
        raise ValueError("verification on TFLM needs the measured arena")
    x = as_float32(data.x)
    notes = [runtime.note] if runtime.note else []
    n = data.n
    if runtime.name == "tflm":
        n = tflm_sample_count(deployed, data.n)
        if n < data.n:
            notes.append(
                f"TFLM ran {n} of {data.n} validation samples (its Python interpreter runs "
                "reference kernels slowly); LiteRT figures cover the same samples"
            )
    x = take(x, slice(0, n))
    labels = data.y[:n] if data.y is not None else None
    feeds = input_feeds(deployed, x)

    pairs = match_outputs(deployed, reference)
    tasks = {p.deployed_index: _task(deployed, p.deployed_index, labels, task) for p in pairs}
    logit_pairs = {}
    if reference is not None:
        for p in pairs:
            if tasks[p.deployed_index][0] == "classification":
                dl = logits_tensor(deployed, p.deployed_index)
                fl = logits_tensor(reference, p.float_index)
                if dl is not None and fl is not None:
                    logit_pairs[p.deployed_index] = (fl, dl)

    ref_out: dict[int, np.ndarray] = {}
    ref_kept: dict[int, np.ndarray] = {}
    if reference is not None:
        ref_feeds = input_feeds(reference, x)
        ref_out, ref_kept = litert.run_isolated(
            reference, ref_feeds, "optimized", threads, tuple(f for f, _ in logit_pairs.values())
        )
    keep = tuple(d for _, d in logit_pairs.values())
    if runtime.name == "tflm":
        outputs, kept = tflm.run_isolated(deployed, feeds, tflm_arena_bytes, keep)
        got = dict(zip(deployed.outputs, outputs, strict=True))
    else:
        got, kept = litert.run_isolated(deployed, feeds, runtime.kernels, threads, keep)

    result = VerificationResult(samples=n, runtime=runtime.label, outputs=[], notes=notes)
    result.validation_samples = data.n
    for p in pairs:
        tensor = deployed.tensors[p.deployed_index]
        values = dequantize_tensor(got[p.deployed_index], tensor)
        ref = None
        if reference is not None:
            ref = dequantize_tensor(ref_out[p.float_index], reference.tensors[p.float_index])
        step = output_step(deployed, p.deployed_index)
        metrics = compare_output(p.name, tensor, tasks[p.deployed_index], ref, values, labels, step)
        if qat and ref is not None and step > 0:
            metrics.qat_agreement = within_one_step(ref, values, step)
        if p.deployed_index in logit_pairs:
            fl, dl = logit_pairs[p.deployed_index]
            metrics.logits_sqnr_db = sqnr_db(
                dequantize_tensor(ref_kept[fl], reference.tensors[fl]),
                dequantize_tensor(kept[dl], deployed.tensors[dl]),
            )
        result.outputs.append(metrics)
    for out in result.outputs:
        if out.top1_samples is not None and out.top1_samples < n:
            undecided = n - out.top1_samples
            result.notes.append(
                f"{out.name}: top-1 agreement left out {undecided} of {n} samples where the "
                "float model's top-1 leads by less than one output step (rounding alone can "
                "swap those; an untrained model has nothing else)"
                + ("; judged by SQNR instead" if out.top1_agreement is None else "")
            )
    if reference is None:
        result.notes.append("no float model to compare with (a .tflite was given)")
    elif all(o.sqnr_db is None for o in result.outputs):
        result.notes.append("deployed outputs are identical to the float model's")

    # Kernels: reference vs optimised is information; TFLM vs reference is a check.
    integer_out = any(np.issubdtype(v.dtype, np.integer) for v in got.values())
    if integer_out:
        ref_kernels, _ = litert.run_isolated(deployed, feeds, "reference", 1)
        if runtime.kernels != "reference":
            result.optimized_vs_reference_steps = _raw_diff(ref_kernels, got)
        else:
            optimized, _ = litert.run_isolated(deployed, feeds, "optimized", threads)
            result.optimized_vs_reference_steps = _raw_diff(ref_kernels, optimized)
        if runtime.name == "tflm":
            result.kernel_check = check_tflm_kernels(
                deployed, feeds, got, ref_kernels, tflm_arena_bytes
            )
    elif runtime.name == "tflm":
        result.notes.append("TFLM output is float: TFLM vs LiteRT is not counted in steps")
    return result


def _task(model: TFLiteModel, output: int, labels, forced: str | None) -> tuple[str, str]:
    if forced is not None:
        if forced not in TASKS:
            raise UsageError(f"unknown task {forced!r}; expected one of: {', '.join(TASKS)}")
        return forced, "--task"
    return detect_task(model, output, labels)


def check_tflm_kernels(
    model: TFLiteModel,
    feeds: list[np.ndarray],
    tflm_outputs: dict[int, np.ndarray],
    reference_outputs: dict[int, np.ndarray],
    arena_bytes: int,
    tflm_model: TFLiteModel | None = None,
) -> KernelCheck:
    """TFLM vs LiteRT reference kernels, on the outputs and op by op.

    Every op is re-run alone in LiteRT on TFLM's own inputs to it, for the first sample and
    the sample whose outputs differ most: an op that computes differently on identical inputs
    fails the check, even where the final outputs happen to agree. `tflm_model` is what TFLM
    ran, when it is not `model` (tests hand TFLM a broken model).
    """
    worst = _raw_diff(reference_outputs, tflm_outputs) or 0
    samples = len(feeds[0])
    per_sample = np.zeros(samples, dtype=np.int64)
    for idx, ref in reference_outputs.items():
        if np.issubdtype(ref.dtype, np.integer):
            diff = np.abs(ref.astype(np.int64) - tflm_outputs[idx].astype(np.int64))
            per_sample = np.maximum(per_sample, diff.reshape(samples, -1).max(axis=1))
    chosen = sorted({0, int(per_sample.argmax())})
    merged: dict[int, dict[str, Any]] = {}
    for sample in chosen:
        one = [feed[sample : sample + 1] for feed in feeds]
        for row in localize_divergence(model, one, arena_bytes, tflm_model):
            seen = merged.setdefault(row["index"], row)
            if row["local_diff_steps"] > seen["local_diff_steps"] or row["diverges"]:
                merged[row["index"]] = row
    ops = [merged[i] for i in sorted(merged)]
    first = next((op for op in ops if op["diverges"]), None)
    outputs = f"outputs differ by up to {worst} step(s) on {samples} samples"
    if first is not None:
        return KernelCheck(
            samples,
            worst,
            False,
            f"TFLM diverges from LiteRT's reference kernels at op #{first['index']} "
            f"{first['op']}: {first['local_diff_steps']} quantization steps on identical inputs "
            f"({outputs})",
            first,
            ops,
        )
    largest = max(ops, key=lambda op: op["local_diff_steps"], default=None)
    where = (
        f"largest {largest['local_diff_steps']} step(s) at op #{largest['index']} {largest['op']}"
        if largest is not None and largest["local_diff_steps"]
        else "every op identical"
    )
    return KernelCheck(
        samples,
        worst,
        True,
        f"TFLM matches LiteRT's reference kernels op by op within {KERNEL_TOLERANCE_STEPS} step "
        f"on identical inputs ({where}; {len(ops)} ops); {outputs}",
        None,
        ops,
    )


def localize_divergence(
    model: TFLiteModel,
    one_sample: list[np.ndarray],
    arena_bytes: int,
    tflm_model: TFLiteModel | None = None,
) -> list[dict[str, Any]]:
    """For each op: how far TFLM's output is from LiteRT's reference kernel run alone on
    TFLM's own inputs to that op."""
    activations = sorted(
        {i for op in model.operators for i in op.inputs + op.outputs if i >= 0}
        - {t.index for t in model.tensors if t.is_constant}
    )
    _, kept = tflm.run_isolated(tflm_model or model, one_sample, arena_bytes, tuple(activations))
    return call(
        "edgekit.verify:_local_diffs",
        model.data,
        {idx: values for idx, values in kept.items()},
        timeout=120 + 2 * len(model.operators),
        what=f"LiteRT reference kernels, op by op, on {model.source}",
    )


def _local_diffs(data: bytes, kept: dict[int, np.ndarray]) -> list[dict[str, Any]]:
    """Worker-side: every op alone on LiteRT reference kernels, fed TFLM's tensors."""
    model = read_tflite(data)
    rows = []
    for op in model.operators:
        try:
            single, inputs = single_op_model(data, op.index)
            outputs, _ = litert.run(single, [kept[i] for i in inputs], "reference")
        except (EdgekitError, KeyError):
            continue  # control flow, or a tensor TFLM did not keep
        steps, relative = 0, 0.0
        for idx in op.outputs:
            if idx in outputs and idx in kept:
                a, b = outputs[idx], kept[idx].reshape(outputs[idx].shape)
                if np.issubdtype(a.dtype, np.integer):
                    steps = max(steps, _steps(a, b))
                else:
                    scale = max(float(np.max(np.abs(a), initial=0.0)), 1e-12)
                    relative = max(relative, float(np.max(np.abs(a - b), initial=0.0)) / scale)
        rows.append(
            {
                "index": op.index,
                "op": op.name,
                "local_diff_steps": steps,
                "local_relative_diff": relative,
                "diverges": steps > KERNEL_TOLERANCE_STEPS or relative > FLOAT_TOLERANCE,
            }
        )
    return rows


def run_model(
    model: TFLiteModel, x: np.ndarray, kernels: str = "optimized", threads: int = 1
) -> dict[str, np.ndarray]:
    """Float inputs → {output name: float outputs} on LiteRT, in a worker process.

    >>> run_model(read_tflite(data), x)["output_0"].shape   # doctest: +SKIP
    (32, 1, 10)
    """
    feeds = input_feeds(model, x)
    outputs, _ = litert.run_isolated(model, feeds, kernels, threads)
    return {
        model.io_name(idx): dequantize_tensor(values, model.tensors[idx])
        for idx, values in outputs.items()
    }
