"""Per-layer quantization analysis: where int8 loses accuracy, and what would win it back.

For every op of the int8 model whose output has a float twin (matched by tensor name in the
calibrated float model), on the analysis samples:

- `sqnr_db`: int8 output (dequantized) against the float model's, in the real runtimes;
- the float range seen against the int8 grid's range: `bits_used` (log2 of the range the
  values span, in grid steps: 8 means the grid is filled) and `clipped` (share of float
  values outside the grid);
- `sensitivity_db`: the end-to-end output SQNR gained if only this op stayed in float (the
  model re-quantized with the op denylisted in the converter's quantizer), against the same
  quantizer with no op in float (`sensitivity_base_db`: no bias correction in either);

ranked by sensitivity, worst first. Model-wide figures put them in context:

- `output_sqnr_db`: the deployed int8 model, at its logits when it ends in softmax (`probe`);
- `simulated_sqnr_db`: the same 8-bit grids simulated in float arithmetic (fake-quant, with
  the int8 model's weights and bias-corrected biases), so `simulated - output` is what
  integer kernels and requantization add;
- `per_element_bound_db`: activations on their 8-bit grids but weights exact (every weight its
  own scale): how far per-channel weights are from the limit.

>>> from edgekit.quantization.analysis import bits_used
>>> round(bits_used(0.0, 2.0, 1 / 127.5), 2)
8.0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.data import as_float32, sample_count, take
from edgekit.errors import RuntimeFailure
from edgekit.files import atomic_write, check_replaceable
from edgekit.plotting import pyplot
from edgekit.quantization.engine import dequantized_weights
from edgekit.runtimes.litert import dequantize_tensor, input_feeds, run_isolated
from edgekit.tflite_edit import fake_quant_model
from edgekit.tflite_model import TFLiteModel, read_tflite
from edgekit.verify import logits_tensor, sqnr_db

SENSITIVITY_SAMPLES = 64
ANALYSIS_BYTES = 256 * 1024 * 1024  # kept activations across samples, at most


def bits_used(lo: float, hi: float, scale: float) -> float:
    """log2 of how many grid steps the float values span (8.0 = the whole int8 grid)."""
    if scale <= 0 or hi <= lo:
        return 0.0
    return min(8.0, math.log2(max((hi - lo) / scale + 1.0, 1.0)))


@dataclass
class LayerReport:
    index: int
    op: str
    tensor: str
    sqnr_db: float | None
    float_min: float
    float_max: float
    grid_min: float
    grid_max: float
    bits_used: float
    clipped: float
    sensitivity_db: float | None = None


@dataclass
class Analysis:
    """Per-layer figures and the model-wide ones (see the module docstring)."""

    samples: int
    layers: list[LayerReport]
    output_sqnr_db: float | None
    probe: str = ""  # the tensor end-to-end figures compare (the logits for softmax models)
    simulated_sqnr_db: float | None = None
    per_element_bound_db: float | None = None
    sensitivity_base_db: float | None = None  # what each op's "gain if float" is measured from
    notes: list[str] = field(default_factory=list)

    def kernel_gap(self) -> str:
        """One line on `simulated - output`: what integer kernels add, or why it is noise.

        >>> Analysis(32, [], 40.3, simulated_sqnr_db=39.6).kernel_gap()[:40]
        'integer kernels add nothing measurable ('
        """
        if self.simulated_sqnr_db is None or self.output_sqnr_db is None:
            return "integer kernels: not measured"
        gap = self.simulated_sqnr_db - self.output_sqnr_db
        if abs(gap) < 1.0:
            return (
                f"integer kernels add nothing measurable (the simulation is {abs(gap):.1f} dB "
                f"from int8: noise over {self.samples} samples)"
            )
        if gap > 0:
            return f"integer kernels and requantization cost {gap:.1f} dB"
        return (
            f"int8 is {-gap:.1f} dB above the float simulation of its own grids: rounding "
            "errors that cancel in integer arithmetic"
        )

    def ranked(self) -> list[LayerReport]:
        """Worst first: by sensitivity where measured, then by per-layer SQNR."""

        def key(layer: LayerReport) -> tuple:
            sensitivity = layer.sensitivity_db if layer.sensitivity_db is not None else -1e9
            sqnr = layer.sqnr_db if layer.sqnr_db is not None else 1e9
            return (-sensitivity, sqnr)

        return sorted(self.layers, key=key)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["layers"] = [asdict(layer) for layer in self.ranked()]
        return data

    def table(self, limit: int | None = None) -> list[str]:
        """Markdown rows, worst first."""
        rows = [
            "| # | op | SQNR (dB) | float range | int8 grid | bits used | clipped | "
            "gain if float (dB) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for layer in self.ranked()[:limit]:
            sqnr = "exact" if layer.sqnr_db is None else f"{layer.sqnr_db:.1f}"
            gain = "-" if layer.sensitivity_db is None else f"{layer.sensitivity_db:+.2f}"
            rows.append(
                f"| {layer.index} | {layer.op} | {sqnr} | [{layer.float_min:.3g}, "
                f"{layer.float_max:.3g}] | [{layer.grid_min:.3g}, {layer.grid_max:.3g}] | "
                f"{layer.bits_used:.1f} | {100 * layer.clipped:.2f} % | {gain} |"
            )
        return rows

    def chart(self, path: str | Path, title: str = "", force: bool = False) -> Path:
        """A PNG: per-layer SQNR (bars, in graph order) and sensitivity (points); `force`
        replaces an existing file (a regular file only)."""
        path = check_replaceable(path, force)

        plt = pyplot()
        layers = sorted(self.layers, key=lambda layer: layer.index)
        labels = [f"#{layer.index} {layer.op}" for layer in layers]
        sqnr = [layer.sqnr_db if layer.sqnr_db is not None else 60.0 for layer in layers]
        fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(layers) + 2), 4.2))
        ax.bar(range(len(layers)), sqnr, color="#4c78a8", label="layer SQNR int8 vs float (dB)")
        ax.set_ylabel("SQNR (dB)")
        ax.set_xticks(range(len(layers)), labels, rotation=70, ha="right", fontsize=7)
        if self.output_sqnr_db is not None:
            label = f"whole model, at {self.probe[:30]}: {self.output_sqnr_db:.1f} dB"
            ax.axhline(self.output_sqnr_db, color="#e45756", lw=1, ls="--", label=label)
        gains = [
            (i, layer.sensitivity_db)
            for i, layer in enumerate(layers)
            if layer.sensitivity_db is not None
        ]
        handles, names = ax.get_legend_handles_labels()
        if gains:
            twin = ax.twinx()
            twin.scatter(
                [g[0] for g in gains],
                [g[1] for g in gains],
                color="#f58518",
                s=18,
                label="output gain if this op stayed float (dB)",
            )
            twin.set_ylabel("gain if float (dB)")
            more = twin.get_legend_handles_labels()
            handles, names = handles + more[0], names + more[1]
        # One legend above the axes, never over a bar, a point or the model line.
        ax.legend(
            handles,
            names,
            loc="lower left",
            bbox_to_anchor=(0.0, 1.02),
            ncol=2,
            fontsize=7,
            frameon=False,
            borderaxespad=0.0,
        )
        ax.set_title(title or "per-layer quantization error", fontsize=9, pad=34)
        fig.tight_layout()
        with atomic_write(path, force=force, binary=True) as handle:
            fig.savefig(handle, format="png", dpi=110)
        plt.close(fig)
        return path


def _quant_of(tensor: Any) -> tuple[float, int] | None:
    if tensor.quant is None or tensor.dtype not in ("INT8", "UINT8", "INT16"):
        return None
    return tensor.quant.scales[0], tensor.quant.zero_points[0]


def _grid(tensor: Any) -> tuple[float, float]:
    info = np.iinfo(np.dtype(tensor.dtype.lower()))
    scale, zero = tensor.quant.scales[0], tensor.quant.zero_points[0]
    return (info.min - zero) * scale, (info.max - zero) * scale


def _sample_count(model: TFLiteModel, available: int, limit: int) -> int:
    per_sample = sum(t.bytes for t in model.tensors if not t.is_constant) * 4
    return max(1, min(available, limit, ANALYSIS_BYTES // max(per_sample, 1)))


def output_sqnr(reference: np.ndarray, test: np.ndarray) -> float | None:
    return sqnr_db(reference, test)


def probe_tensor(model: TFLiteModel) -> int:
    """What end-to-end figures compare: the logits (the final softmax's input) when the model
    ends in softmax, whose 1/256 output grid caps any SQNR; else the first output."""
    return logits_tensor(model, model.outputs[0]) or model.outputs[0]


def _outputs(
    model: TFLiteModel, x: np.ndarray, kernels: str, name: str | None = None
) -> np.ndarray:
    """The probe tensor (by name, else :func:`probe_tensor`), dequantized, samples first."""
    index = probe_tensor(model)
    if name is not None:
        index = next((t.index for t in model.tensors if t.name == name), index)
    feeds = input_feeds(model, x)
    outputs, kept = run_isolated(model, feeds, kernels, keep=(index,))
    values = kept.get(index, outputs.get(index))
    return dequantize_tensor(values, model.tensors[index]).reshape(sample_count(x), -1)


def analyze_models(
    calibrated: bytes,
    quantized: bytes,
    x: np.ndarray,
    *,
    sensitivity: bool | int = True,
    requantize: Any = None,
    samples: int = SENSITIVITY_SAMPLES,
) -> Analysis:
    """Analyse `quantized` against its float twin `calibrated` on inputs `x`.

    `requantize(denylisted_names) -> bytes` re-quantizes with ops kept in float (the engine's
    quantizer); without it there is no sensitivity. `sensitivity` may be an int: only the
    that-many worst layers (by SQNR) are re-quantized.
    """
    fmodel = read_tflite(calibrated, "float.tflite")
    qmodel = read_tflite(quantized, "int8.tflite")
    n = _sample_count(fmodel, sample_count(x), samples)
    x = as_float32(take(x, slice(0, n)))
    float_index = {t.name: t.index for t in fmodel.tensors}
    pairs = []
    for op in qmodel.operators:
        out = op.outputs[0]
        tensor = qmodel.tensors[out]
        twin = float_index.get(tensor.name)
        if twin is None or _quant_of(tensor) is None or op.name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        pairs.append((op, out, twin))
    _, fkept = run_isolated(
        fmodel, input_feeds(fmodel, x), "builtin", keep=tuple(t for _, _, t in pairs)
    )
    qfeeds = input_feeds(qmodel, x)
    _, qkept = run_isolated(qmodel, qfeeds, "reference", keep=tuple(o for _, o, _ in pairs))
    layers = []
    for op, out, twin in pairs:
        tensor = qmodel.tensors[out]
        reference = fkept[twin].astype(np.float64)
        got = dequantize_tensor(qkept[out], tensor).astype(np.float64)
        lo, hi = _grid(tensor)
        outside = np.mean((reference < lo - 1e-9) | (reference > hi + 1e-9))
        layers.append(
            LayerReport(
                index=op.index,
                op=op.name,
                tensor=tensor.name,
                sqnr_db=sqnr_db(reference, got),
                float_min=float(reference.min()),
                float_max=float(reference.max()),
                grid_min=float(lo),
                grid_max=float(hi),
                bits_used=bits_used(
                    float(reference.min()), float(reference.max()), tensor.quant.scales[0]
                ),
                clipped=float(outside),
            )
        )
    probe = fmodel.tensors[probe_tensor(fmodel)].name
    reference_out = _outputs(fmodel, x, "builtin", probe)
    deployed_out = _outputs(qmodel, x, "reference", probe)
    result = Analysis(
        samples=n, layers=layers, output_sqnr_db=sqnr_db(reference_out, deployed_out), probe=probe
    )
    _simulations(result, fmodel, qmodel, x, reference_out)
    if sensitivity and requantize is not None:
        _sensitivity(result, sensitivity, requantize, x, reference_out)
    return result


def _simulations(
    result: Analysis,
    fmodel: TFLiteModel,
    qmodel: TFLiteModel,
    x: np.ndarray,
    reference_out: np.ndarray,
) -> None:
    """Fake-quant models: int8 grids in float arithmetic, with int8 weights and exact ones."""
    grids = {
        qmodel.tensors[i].name: _quant_of(qmodel.tensors[i])
        for op in qmodel.operators
        for i in op.outputs
        if _quant_of(qmodel.tensors[i]) is not None
    }
    float_weights = {}
    by_name = {t.name: t.index for t in fmodel.tensors}
    for op in qmodel.operators:
        out_name = qmodel.tensors[op.outputs[0]].name
        twin = next(
            (o for o in fmodel.operators if fmodel.tensors[o.outputs[0]].name == out_name), None
        )
        if twin is None:
            continue
        # Weights (input 1) and biases (input 2) as the int8 model holds them: its biases carry
        # the bias correction, and a simulation without it came out below the int8 model.
        for position in (1, 2):
            if len(op.inputs) <= position or len(twin.inputs) <= position:
                continue
            index, float_index = op.inputs[position], twin.inputs[position]
            if index < 0 or float_index < 0 or qmodel.weights(index) is None:
                continue
            if qmodel.tensors[index].quant is None:
                continue
            name = fmodel.tensors[float_index].name
            if name in by_name and fmodel.weights(by_name[name]) is not None:
                float_weights[name] = dequantized_weights(qmodel, index)
    try:
        exact = read_tflite(fake_quant_model(fmodel.data, grids), "fake-quant.tflite")
        probe = f"{result.probe}/dq" if result.probe in grids else result.probe
        result.per_element_bound_db = sqnr_db(reference_out, _outputs(exact, x, "builtin", probe))
        simulated = read_tflite(
            fake_quant_model(fmodel.data, grids, float_weights), "fake-quant-int8-weights.tflite"
        )
        result.simulated_sqnr_db = sqnr_db(reference_out, _outputs(simulated, x, "builtin", probe))
    except RuntimeFailure as exc:
        result.notes.append(f"fake-quant simulation did not run: {exc}")


def _sensitivity(
    result: Analysis, limit: bool | int, requantize: Any, x: np.ndarray, reference_out: np.ndarray
) -> None:
    candidates = sorted(result.layers, key=lambda layer: layer.sqnr_db or 1e9)
    if not isinstance(limit, bool):
        candidates = candidates[:limit]
    # Each variant comes from the quantizer alone (no bias correction): its gain is measured
    # against the same quantizer with no op in float, not against the deployed model (which
    # bias correction may have improved: every gain came out negative).
    baseline = read_tflite(requantize(()), "baseline.tflite")
    baseline_out = _outputs(baseline, x, "reference", result.probe)
    result.sensitivity_base_db = sqnr_db(reference_out, baseline_out)
    base = result.sensitivity_base_db if result.sensitivity_base_db is not None else 99.0
    for layer in candidates:
        variant = read_tflite(requantize((layer.tensor,)), "variant.tflite")
        gain = sqnr_db(reference_out, _outputs(variant, x, "reference", result.probe))
        layer.sensitivity_db = (gain if gain is not None else 99.0) - base
