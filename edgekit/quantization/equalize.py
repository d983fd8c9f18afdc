"""Cross-layer equalisation (Nagel et al., "Data-Free Quantization", ICCV 2019).

In a depthwise-separable net one channel of a depthwise kernel can span a hundred times the
range of another, and a per-tensor int8 grid then rounds the small ones to nothing. For two
ops in a row, A (conv or depthwise) then B (conv, depthwise or dense), with a ReLU or nothing
between them, scaling A's output channel i by 1/sᵢ and B's input channel i by sᵢ computes the
same function (ReLU(x/s) = ReLU(x)/s for s > 0). With sᵢ = √(r¹ᵢ / r²ᵢ), r the channel's
weight range in A and in B, both end with the same range √(r¹ᵢ r²ᵢ). Chains (dw → pw → dw …)
are equalised pair by pair, a few rounds.

ReLU6 is not scale-free: ReLU6(x/s) ≠ ReLU6(x)/s where x reaches 6. A channel of A behind a
ReLU6 is scaled only as far as its largest value on the calibration data stays below the clip
(a channel that reaches 6 is left alone). The edited float model is checked against the given
one on the calibration inputs; the engine quantizes it, and verification compares the int8
model with the user's float model, never with the edited one.

>>> equalization_scales(np.array([4.0, 1.0, 0.0]), np.array([1.0, 4.0, 2.0])).tolist()
[2.0, 0.5, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.data import as_float32
from edgekit.quantization.activations import kept_activations
from edgekit.tflite_edit import pack, unpack
from edgekit.tflite_model import Operator, TFLiteModel, read_tflite

FIRST = ("CONV_2D", "DEPTHWISE_CONV_2D")
SECOND = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
ROUNDS = 4
RELU6_MARGIN = 1.25  # a ReLU6 channel's observed maximum times this stays below 6
SCALE_LIMITS = (1e-3, 1e3)


@dataclass(frozen=True)
class Pair:
    """Two ops equalised together: `first`'s output channels feed `second`'s input channels."""

    first: Operator
    second: Operator
    name: str  # the tensor between them

    def to_dict(self) -> dict[str, Any]:
        return {"first": self.first.index, "second": self.second.index, "tensor": self.name}


@dataclass
class Equalized:
    """The equalised float model and what changed."""

    data: bytes
    pairs: list[Pair]
    range_ratio_before: float  # mean over pairs of max/min channel range in the first op
    range_ratio_after: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "pairs": len(self.pairs),
            "range_ratio_before": self.range_ratio_before,
            "range_ratio_after": self.range_ratio_after,
        }


def equalization_scales(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """sᵢ = √(r¹ᵢ / r²ᵢ) for channel ranges r¹ (first op's outputs) and r² (second op's
    inputs); 1 where either is zero, and within SCALE_LIMITS."""
    scales = np.ones_like(first, dtype=np.float64)
    live = (first > 0) & (second > 0)
    scales[live] = np.sqrt(first[live] / second[live])
    return np.clip(scales, *SCALE_LIMITS)


def find_pairs(model: TFLiteModel) -> list[Pair]:
    """Ops A → B where A's output feeds only B's data input, with a scale-free (or ReLU6)
    activation between, and float weights each op alone uses."""
    consumers: dict[int, list[Operator]] = {}
    for op in model.operators:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    uses: dict[int, int] = {}
    for op in model.operators:
        for i in op.inputs:
            if i >= 0 and model.tensors[i].is_constant:
                uses[i] = uses.get(i, 0) + 1
    pairs = []
    for a in model.operators:
        if a.name not in FIRST or a.fused_activation not in ("NONE", "RELU", "RELU6"):
            continue
        out = a.outputs[0]
        after = consumers.get(out, [])
        if out in model.outputs or len(after) != 1:
            continue
        b = after[0]
        if b.name not in SECOND or b.inputs[0] != out or out in b.inputs[1:]:
            continue
        if not (
            _own_float_weights(model, a, uses, True) and _own_float_weights(model, b, uses, False)
        ):
            continue
        channels = model.tensors[out].shape[-1]
        if _input_channels(model, b) != channels:
            continue  # a dense layer on a flattened map, a grouped conv
        pairs.append(Pair(a, b, model.tensors[out].name))
    return pairs


def _own_float_weights(model: TFLiteModel, op: Operator, uses: dict[int, int], bias: bool) -> bool:
    """The op's float weights (and with `bias`, its bias) are constants only it changes; a
    shared all-zero bias (the converter shares identical constants) stays as it is."""
    for position, i in enumerate(op.inputs[1:3], start=1):
        if i < 0 or (position == 2 and not bias):
            continue
        values = model.weights(i)
        if model.tensors[i].dtype != "FLOAT32" or values is None:
            return False
        if uses[i] > 1 and not (position == 2 and not np.any(values)):
            return False
    return True


def _input_channels(model: TFLiteModel, op: Operator) -> int:
    shape = model.tensors[op.inputs[1]].shape
    if op.name == "CONV_2D":
        return int(shape[3])
    if op.name == "FULLY_CONNECTED":
        return int(shape[1])
    multiplier = int(shape[3]) // max(int(model.tensors[op.inputs[0]].shape[-1]), 1)
    return int(shape[3]) // max(multiplier, 1)


def _output_axis(op: Operator) -> int:
    return 3 if op.name == "DEPTHWISE_CONV_2D" else 0


def _input_ranges(op: Operator, weights: np.ndarray, channels: int) -> np.ndarray:
    """Range (max |w|) of the second op's weights per input channel."""
    if op.name == "CONV_2D":
        return np.abs(weights).max(axis=(0, 1, 2))
    if op.name == "FULLY_CONNECTED":
        return np.abs(weights).max(axis=0)
    per_output = np.abs(weights).max(axis=(0, 1, 2))  # depthwise: output o reads o // m
    return per_output.reshape(channels, -1).max(axis=1)


def _scale_inputs(op: Operator, weights: np.ndarray, s: np.ndarray) -> np.ndarray:
    if op.name == "CONV_2D":
        return weights * s[None, None, None, :]
    if op.name == "FULLY_CONNECTED":
        return weights * s[None, :]
    return weights * np.repeat(s, weights.shape[3] // len(s))[None, None, None, :]


def equalize(data: bytes, x: Any, rounds: int = ROUNDS) -> Equalized:
    """`data` (a float `.tflite`) with every equalisable pair equalised; `x` (calibration
    inputs) bounds the ReLU6 channels."""
    model = read_tflite(data, "float.tflite")
    pairs = find_pairs(model)
    if not pairs:
        return Equalized(data, [], 1.0, 1.0)
    edited = unpack(data)
    tensors, buffers = edited.subgraphs[0].tensors, edited.buffers
    values = {
        i: model.weights(i).astype(np.float64)
        for pair in pairs
        for i in (pair.first.inputs[1:3] + pair.second.inputs[1:2])
        if i >= 0
    }
    clipped = [p.first.outputs[0] for p in pairs if p.first.fused_activation == "RELU6"]
    peaks = {
        i: v.reshape(-1, v.shape[-1]).max(axis=0).astype(np.float64)
        for i, v in kept_activations(model, as_float32(x), clipped).items()
    }

    def ratio() -> float:
        spans = []
        for pair in pairs:
            r = np.abs(values[pair.first.inputs[1]])
            r = r.max(axis=tuple(a for a in range(r.ndim) if a != _output_axis(pair.first)))
            live = r[r > 0]
            spans.append(live.max() / live.min() if len(live) else 1.0)
        return float(np.mean(spans))

    before = ratio()
    for _ in range(rounds):
        for pair in pairs:
            a, b = pair.first, pair.second
            wa, wb = values[a.inputs[1]], values[b.inputs[1]]
            axis = _output_axis(a)
            r1 = np.abs(wa).max(axis=tuple(i for i in range(wa.ndim) if i != axis))
            s = equalization_scales(r1, _input_ranges(b, wb, len(r1)))
            peak = peaks.get(a.outputs[0])
            if peak is not None:  # ReLU6: x/s must stay below the clip
                s = np.where(
                    peak >= 6.0 / RELU6_MARGIN, 1.0, np.maximum(s, peak * RELU6_MARGIN / 6)
                )
                peaks[a.outputs[0]] = peak / s
            shape = [1] * wa.ndim
            shape[axis] = len(s)
            values[a.inputs[1]] = wa / s.reshape(shape)
            if len(a.inputs) > 2 and a.inputs[2] >= 0 and np.any(values[a.inputs[2]]):
                values[a.inputs[2]] = values[a.inputs[2]] / s
            values[b.inputs[1]] = _scale_inputs(b, wb, s)
    after = ratio()
    for index, array in values.items():
        buffers[tensors[index].buffer].data = array.astype(np.float32).reshape(-1).view(np.uint8)
    return Equalized(pack(edited), pairs, before, after)
