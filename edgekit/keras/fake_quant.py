"""Fake-quantization maths shared by both Kerases' QAT (TensorFlow ops, no Keras).

- `quantize_kernel`: int8 weights as TFLite stores them: symmetric, narrow range [-127, 127],
  one scale per output channel (or per tensor), from the kernel's current max |w| (tfmot's
  LastValueQuantizer). TensorFlow's fake-quant ops pass gradients straight through.
- `power_of_two` / `power_of_two_straight_through`: weights as 0 or ±2^k·s per channel
  (edgekit.keras.power_of_two's tfmot quantizer and the Keras 3 layers both call these).
- `moving_range` / `all_values_range`: tfmot's MovingAverageQuantizer (activations) and
  AllValuesQuantizer (the model input) updates of a tensor's (min, max).

>>> import numpy as np
>>> w = np.array([[0.5, -2.0], [-1.0, 0.3]], np.float32)  # Dense kernel (in, out)
>>> np.round(quantize_kernel(w, per_channel=True).numpy() * 127 / [1.0, 2.0], 3).tolist()
[[64.0, -127.0], [-127.0, 19.0]]
>>> power_of_two(w, (1,)).numpy().tolist()  # s = max|w| / 64 per output channel
[[0.5, -2.0], [-1.0, 0.25]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit._tf import tensorflow
from edgekit.quantization.power_of_two import EXPONENTS

tf = tensorflow()


def channel_axes(rank: int, depthwise: bool) -> tuple[int, ...]:
    """The axes of a kernel that index its output channels (depthwise: in × multiplier)."""
    return (rank - 2, rank - 1) if depthwise else (rank - 1,)


def quantize_kernel(
    kernel: Any, per_channel: bool = True, depthwise: bool = False, dense: bool = False
) -> Any:
    """The kernel rounded to int8 steps of max|w|/127 (per output channel or per tensor).

    A depthwise kernel (kh, kw, in, multiplier) has in·multiplier output channels, as in
    TFLite: it is quantized flattened to (kh, kw, in·multiplier) and shaped back. A dense
    kernel per channel is rounded by `round_per_channel`: the converter transposes it to
    TFLite's (out, in) and refuses a per-channel FakeQuant across that transpose.
    """
    kernel = tf.convert_to_tensor(kernel)
    if per_channel and dense:
        return round_per_channel(kernel)
    if not per_channel:
        peak = tf.maximum(tf.reduce_max(tf.abs(kernel)), 1e-9)
        return tf.quantization.fake_quant_with_min_max_vars(
            kernel, -peak, peak, num_bits=8, narrow_range=True
        )
    shape = tf.shape(kernel)
    flat = tf.reshape(kernel, tf.concat([shape[:-2], [-1]], 0)) if depthwise else kernel
    peak = tf.maximum(tf.reduce_max(tf.abs(flat), axis=list(range(len(flat.shape) - 1))), 1e-9)
    quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        flat, -peak, peak, num_bits=8, narrow_range=True
    )
    return tf.reshape(quantized, shape) if depthwise else quantized


def round_per_channel(kernel: Any) -> Any:
    """`kernel` on the int8 grid of max|w|/127 per last-axis channel, gradients straight
    through. The converter quantizes such a kernel with that same scale, so every value
    survives exactly (what a per-channel FakeQuant would have told it)."""
    peak = tf.reduce_max(tf.abs(kernel), axis=list(range(len(kernel.shape) - 1)), keepdims=True)
    step = tf.maximum(peak, 1e-9) / 127.0
    return kernel + tf.stop_gradient(tf.round(kernel / step) * step - kernel)


def power_of_two(w: Any, channel_axes: tuple[int, ...]) -> Any:
    """Round a weight tensor to 0 or ±2^k·s per channel (TensorFlow ops)."""
    reduce = [a for a in range(len(w.shape)) if a not in channel_axes]
    scale = tf.reduce_max(tf.abs(w), axis=reduce, keepdims=True) / 2.0 ** (EXPONENTS - 1)
    scale = tf.maximum(scale, 1e-12)
    magnitude = tf.abs(w) / scale
    exponent = tf.clip_by_value(
        tf.round(tf.math.log(tf.maximum(magnitude, 1e-12)) / np.log(2.0)), 0.0, EXPONENTS - 1
    )
    rounded = tf.where(magnitude < 0.5, tf.zeros_like(w), tf.sign(w) * 2.0**exponent * scale)
    return rounded


def power_of_two_straight_through(w: Any, depthwise: bool = False) -> Any:
    """Power-of-two weights forward, the float weights' gradient backward."""
    w = tf.convert_to_tensor(w)
    return w + tf.stop_gradient(power_of_two(w, channel_axes(len(w.shape), depthwise)) - w)


def moving_range(batch: Any, low: Any, high: Any, decay: float) -> tuple[Any, Any]:
    """(min, max) after one training batch: an exponential moving average with `decay` of the
    batch's range (widened to hold 0), from tfmot's initial (-6, 6): tfmot's
    MovingAverageQuantizer. Starting wide matters: the fake-quant gradient is zero outside the
    range, so a range taken from the first batch of an untrained model would stop every
    activation that grows past it from learning."""
    batch_low = tf.minimum(tf.reduce_min(batch), 0.0)
    batch_high = tf.maximum(tf.reduce_max(batch), 0.0)
    return decay * low + (1.0 - decay) * batch_low, decay * high + (1.0 - decay) * batch_high


def all_values_range(batch: Any, low: Any, high: Any) -> tuple[Any, Any]:
    """(min, max) of every value seen so far, 0 included (tfmot's AllValuesQuantizer: the
    model input's range)."""
    return (
        tf.minimum(tf.minimum(low, tf.reduce_min(batch)), 0.0),
        tf.maximum(tf.maximum(high, tf.reduce_max(batch)), 0.0),
    )
