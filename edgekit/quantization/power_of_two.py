"""Power-of-two int8 weights in a `.tflite`: find them and write them exactly.

`edgekit.keras.quantize_power_of_two` trains weights as 0 or ±2^k·s per channel; the converter
then quantizes with its own scale (max/127), which turns 2^k·64 into 2^k·127/64 and rounds. This
module snaps such weights back to exact 0, ±1, ±2, ..., ±64 with scale max/64 (biases rescaled):
what a shift-only kernel needs. No TensorFlow here: deploy runs it on converted bytes.

>>> levels()
[0, 1, 2, 4, 8, 16, 32, 64]
"""

from __future__ import annotations

import numpy as np

from edgekit.quantization.engine import dequantized_weights
from edgekit.tflite_edit import pack, unpack
from edgekit.tflite_model import read_tflite

EXPONENTS = 7  # 2^0 .. 2^6: int8 magnitudes 1 .. 64


def levels() -> list[int]:
    """The int8 magnitudes a power-of-two weight may take."""
    return [0] + [2**k for k in range(EXPONENTS)]


def snap_power_of_two(data: bytes, tolerance: float = 0.02) -> tuple[bytes, int]:
    """Rewrite conv/dense int8 weights that are powers of two up to the converter's rounding
    as exact 0/±2^k with scale max/64 per channel (biases rescaled to match). Returns the
    model and how many ops were snapped; other weights are left alone."""
    model = read_tflite(data)
    edited = unpack(data)
    tensors, buffers = edited.subgraphs[0].tensors, edited.buffers
    snapped = 0
    for op in model.operators:
        if op.name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        w_index = op.inputs[1]
        weight = model.tensors[w_index]
        if weight.dtype != "INT8" or weight.quant is None or model.weights(w_index) is None:
            continue
        values = dequantized_weights(model, w_index)
        axis = weight.quant.axis if len(weight.quant.scales) > 1 else 0
        moved = np.moveaxis(values, axis, 0).reshape(values.shape[axis], -1)
        peak = np.abs(moved).max(axis=1, keepdims=True)
        scale = np.where(peak > 0, peak / 2 ** (EXPONENTS - 1), 1.0)
        ints = np.round(moved / scale)
        target = np.array(levels(), dtype=np.float64)
        nearest = target[np.abs(np.abs(ints)[..., None] - target).argmin(-1)] * np.sign(ints)
        if np.max(np.abs(moved - nearest * scale) / np.maximum(peak, 1e-12)) > tolerance:
            continue  # not a power-of-two layer
        new_ints = np.moveaxis(nearest.reshape(np.moveaxis(values, axis, 0).shape), 0, axis)
        buffers[tensors[w_index].buffer].data = new_ints.astype(np.int8).view(np.uint8).ravel()
        old_scales = np.asarray(weight.quant.scales, dtype=np.float64)
        new_scales = scale.ravel() if len(old_scales) > 1 else scale.ravel()[:1]
        tensors[w_index].quantization.scale = [float(s) for s in new_scales]
        b_index = op.inputs[2] if len(op.inputs) > 2 else -1
        if b_index >= 0 and model.tensors[b_index].dtype == "INT32":
            bias = model.weights(b_index).astype(np.float64) * old_scales / new_scales
            buffers[tensors[b_index].buffer].data = np.round(bias).astype(np.int32).view(np.uint8)
            in_scale = model.tensors[op.inputs[0]].quant.scales[0]
            tensors[b_index].quantization.scale = [float(in_scale * s) for s in new_scales]
        snapped += 1
    return (pack(edited) if snapped else data), snapped
