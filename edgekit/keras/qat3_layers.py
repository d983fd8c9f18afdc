"""Keras 3 fake-quantization layers for edgekit's native QAT (tensorflow backend).

- `QuantizeActivation`: an 8-bit asymmetric per-tensor fake quantizer whose (min, max) follow
  the training batches: a moving average from (-6, 6) (tfmot's MovingAverageQuantizer) or, for
  the model input (`all_values=True`), the range of every value seen (tfmot's
  AllValuesQuantizer). In inference it applies the learned range; the TFLite converter
  takes that range as the int8 tensor's scale and zero point.
- `QuantizeWeights`: wraps a Conv2D, DepthwiseConv2D or Dense and runs it with its kernel
  fake-quantized (int8 per output channel or per tensor, or power-of-two), gradients straight
  through to the float kernel. The converter stores that kernel as int8.

Both are registered (`edgekit>QuantizeActivation`, `edgekit>QuantizeWeights`), so a QAT model
saved as `.keras` loads back once this module is imported (`edgekit deploy` does it itself).

>>> import keras, numpy as np
>>> quantizer = QuantizeActivation(all_values=True)
>>> x = np.array([[-1.0, 0.0, 0.5, 3.0]], np.float32)
>>> _ = quantizer(x, training=True)          # every value seen so far, 0 included
>>> [float(v) for v in quantizer.learned_range()]
[-1.0, 3.0]
>>> step = 4.0 / 255
>>> bool(np.allclose(quantizer(x), np.round(x / step) * step, atol=1e-6))
True
"""

from __future__ import annotations

from typing import Any

from edgekit._tf import keras3, tensorflow
from edgekit.errors import UsageError
from edgekit.keras.fake_quant import (
    all_values_range,
    moving_range,
    power_of_two_straight_through,
    quantize_kernel,
)

keras = keras3()
tf = tensorflow()

WEIGHT_MODES = ("int8", "power_of_two")
KERNEL_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")


@keras.saving.register_keras_serializable(package="edgekit")
class QuantizeActivation(keras.layers.Layer):
    """8-bit per-tensor fake quantization of a tensor, with a range learned in training."""

    def __init__(self, ema_decay: float = 0.999, all_values: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ema_decay = float(ema_decay)
        self.all_values = bool(all_values)

    def build(self, input_shape: Any = None) -> None:
        def scalar(name: str, value: float) -> Any:
            return self.add_weight(
                name=name, shape=(), trainable=False, initializer=keras.initializers.Constant(value)
            )

        start = 0.0 if self.all_values else 6.0  # tfmot's initial ranges
        self.range_min = scalar("range_min", -start)
        self.range_max = scalar("range_max", start)
        self.built = True

    def call(self, inputs: Any, training: Any = None) -> Any:
        if training:
            if self.all_values:
                low, high = all_values_range(inputs, self.range_min, self.range_max)
            else:
                low, high = moving_range(inputs, self.range_min, self.range_max, self.ema_decay)
            self.range_min.assign(low)
            self.range_max.assign(high)
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, self.range_min, self.range_max, num_bits=8, narrow_range=False
        )

    def learned_range(self) -> tuple[float, float]:
        """(min, max) the int8 tensor will cover."""
        return float(self.range_min.numpy()), float(self.range_max.numpy())

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "ema_decay": self.ema_decay, "all_values": self.all_values}


@keras.saving.register_keras_serializable(package="edgekit")
class QuantizeWeights(keras.layers.Wrapper):
    """A Conv2D, DepthwiseConv2D or Dense that computes with its kernel fake-quantized.

    `weights="int8"`: symmetric int8, one scale per output channel (`per_channel=False`: one
    per kernel); `weights="power_of_two"`: 0 or ±2^k·s per output channel.
    `preserve_sparsity`: weights that are zero get no gradient, so a pruned kernel's zeros stay
    zero through QAT (optimizers that move a weight only by its gradient: SGD, Adam).
    """

    def __init__(
        self,
        layer: Any,
        per_channel: bool = True,
        weights: str = "int8",
        preserve_sparsity: bool = False,
        **kwargs: Any,
    ) -> None:
        kind = type(layer).__name__
        if kind not in KERNEL_LAYERS:
            raise UsageError(
                f"QuantizeWeights wraps {', '.join(KERNEL_LAYERS)}; {layer.name!r} is a {kind}"
            )
        if weights not in WEIGHT_MODES:
            raise UsageError(f"weights must be one of {WEIGHT_MODES}; received {weights!r}")
        config = layer.get_config()
        if (
            config.get("data_format", "channels_last") != "channels_last"
            or config.get("groups", 1) != 1
        ):
            raise UsageError(
                f"cannot quantize layer {layer.name!r} ({kind}): edgekit's Keras 3 "
                "QAT takes channels_last convolutions without groups"
            )
        kwargs.setdefault("name", f"quant_{layer.name}")
        super().__init__(layer, **kwargs)
        self.per_channel = bool(per_channel)
        self.weights_mode = weights
        self.preserve_sparsity = bool(preserve_sparsity)

    def quantized_kernel(self) -> Any:
        """The kernel as the forward pass (and the int8 model) sees it."""
        kind = type(self.layer).__name__
        depthwise = kind == "DepthwiseConv2D"
        kernel = self.layer.kernel
        if self.preserve_sparsity:  # a masked weight gets no gradient: it stays exactly zero
            kernel = kernel * self.sparsity_mask
        if self.weights_mode == "power_of_two":
            return power_of_two_straight_through(kernel, depthwise)
        return quantize_kernel(kernel, self.per_channel, depthwise, kind == "Dense")

    def build(self, input_shape: Any = None) -> None:
        super().build(input_shape)
        if not self.layer.built:
            self.layer.build(input_shape)
        if self.preserve_sparsity:  # ones until `keep_zeros` reads the kernel's zeros
            self.sparsity_mask = self.add_weight(
                name="sparsity_mask",
                shape=self.layer.kernel.shape,
                trainable=False,
                initializer="ones",
            )

    def keep_zeros(self) -> None:
        """With `preserve_sparsity`, fix the mask to the kernel's current nonzero weights."""
        if self.preserve_sparsity:
            self.sparsity_mask.assign(tf.cast(tf.not_equal(self.layer.kernel, 0), "float32"))

    def call(self, inputs: Any) -> Any:
        layer, kernel = self.layer, self.quantized_kernel()
        kind = type(layer).__name__
        if kind == "Dense":
            outputs = keras.ops.matmul(inputs, kernel)
        else:
            conv = keras.ops.depthwise_conv if kind == "DepthwiseConv2D" else keras.ops.conv
            outputs = conv(
                inputs,
                kernel,
                strides=layer.strides,
                padding=layer.padding,
                data_format="channels_last",
                dilation_rate=layer.dilation_rate,
            )
        if layer.use_bias:
            outputs = outputs + layer.bias
        return layer.activation(outputs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "per_channel": self.per_channel,
            "weights": self.weights_mode,
            "preserve_sparsity": self.preserve_sparsity,
        }
