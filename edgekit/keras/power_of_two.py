"""Power-of-two (logarithmic) weights: QAT that constrains each weight to 0 or ±2^k·s.

Per output channel, `s` is the channel's largest magnitude over 64, and k runs from 0 to 6, so
in int8 every weight is 0, ±1, ±2, ±4, ..., ±64. A multiply by such a weight is a shift: an
accelerator or a hand-written kernel can drop its multipliers. TFLite's kernels (LiteRT,
XNNPACK, TFLM, CMSIS-NN) do not exploit it: they multiply as usual, so the gain there is only
in size (13 distinct values per channel compress well) and the cost is accuracy, which the
deploy report measures against uniform int8.

A Keras 3 model is quantized natively (edgekit.keras.qat3, `QuantizeWeights` in power-of-two
mode) and a tf_keras one through tfmot (`PowerOfTwoConfig`); both round with the one
`edgekit.keras.fake_quant.power_of_two`.

Training uses a straight-through estimator (the forward pass sees the power-of-two weights,
the backward pass the float ones). After conversion, :func:`snap_power_of_two` writes the
int8 weights exactly as powers of two (the converter's own per-channel scale, max/127, would
otherwise round 2^k·127/64 to values that are not).

>>> levels()  # the int8 magnitudes a power-of-two weight may take
[0, 1, 2, 4, 8, 16, 32, 64]
"""

from __future__ import annotations

from typing import Any

from edgekit._tf import tf_keras
from edgekit.keras._compat import ensure_tf_keras, is_keras3, tensorflow_backend
from edgekit.keras._tfmot import tfmot
from edgekit.keras.fake_quant import (  # noqa: F401  (power_of_two re-exported)
    power_of_two,
    power_of_two_straight_through,
)
from edgekit.keras.folding import fold_batchnorm
from edgekit.keras.qat3 import quantize_keras3
from edgekit.keras.quantization import weights_scheme
from edgekit.quantization.power_of_two import (  # noqa: F401  (re-exported)
    EXPONENTS,
    levels,
    snap_power_of_two,
)

keras = tf_keras()
_quantizers = tfmot().quantization.keras.quantizers
_QuantizeConfig = tfmot().quantization.keras.QuantizeConfig

POT_LAYERS = ("Conv2D", "Dense", "DepthwiseConv2D")


@keras.utils.register_keras_serializable(package="edgekit")
class PowerOfTwoWeightQuantizer(_quantizers.Quantizer):
    """tfmot weight quantizer: power-of-two values per output channel, straight-through."""

    def __init__(self, depthwise: bool = False) -> None:
        self.depthwise = depthwise

    def build(self, tensor_shape: Any, name: str, layer: Any) -> dict:
        return {}

    def __call__(self, inputs: Any, training: Any, weights: Any, **kwargs: Any) -> Any:
        return power_of_two_straight_through(inputs, self.depthwise)

    def get_config(self) -> dict:
        return {"depthwise": self.depthwise}

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, PowerOfTwoWeightQuantizer) and other.depthwise == self.depthwise

    def __ne__(self, other: Any) -> bool:
        return not self == other


@keras.utils.register_keras_serializable(package="edgekit")
class PowerOfTwoConfig(_QuantizeConfig):
    """QuantizeConfig: power-of-two kernel, and an 8-bit output unless a ReLU after the layer
    quantizes it (`output=False`)."""

    def __init__(self, output: bool = True) -> None:
        self.output = output

    def _kernel_name(self, layer: Any) -> str:
        return "depthwise_kernel" if hasattr(layer, "depthwise_kernel") else "kernel"

    def get_weights_and_quantizers(self, layer: Any) -> list:
        name = self._kernel_name(layer)
        return [(getattr(layer, name), PowerOfTwoWeightQuantizer(name == "depthwise_kernel"))]

    def get_activations_and_quantizers(self, layer: Any) -> list:
        return []

    def set_quantize_weights(self, layer: Any, quantize_weights: list) -> None:
        setattr(layer, self._kernel_name(layer), quantize_weights[0])

    def set_quantize_activations(self, layer: Any, quantize_activations: list) -> None:
        pass

    def get_output_quantizers(self, layer: Any) -> list:
        if not self.output:
            return []
        return [
            _quantizers.MovingAverageQuantizer(
                num_bits=8, per_axis=False, symmetric=False, narrow_range=False
            )
        ]

    def get_config(self) -> dict:
        return {"output": self.output}


@tensorflow_backend
def quantize_power_of_two(model: Any) -> Any:
    """A QAT model whose conv, depthwise and dense kernels train as powers of two (BatchNorm
    folded into the conv before it first, so the kernel that trains is the one that ships).

    A Keras 3 model gives a Keras 3 model (edgekit.keras.qat3, same maths: `power_of_two`);
    a tf_keras one a tfmot QAT model with `PowerOfTwoConfig`.
    """
    if is_keras3(model):
        return quantize_keras3(model, weights="power_of_two")

    qk = tfmot().quantization.keras
    model = fold_batchnorm(ensure_tf_keras(model))

    def annotate(layer: Any) -> Any:
        if type(layer).__name__ in POT_LAYERS:
            return qk.quantize_annotate_layer(
                layer.__class__.from_config(layer.get_config()), PowerOfTwoConfig()
            )
        return qk.quantize_annotate_layer(layer.__class__.from_config(layer.get_config()))

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    custom = {
        "PowerOfTwoConfig": PowerOfTwoConfig,
        "PowerOfTwoWeightQuantizer": PowerOfTwoWeightQuantizer,
    }
    scheme = weights_scheme(lambda class_name, attr: PowerOfTwoConfig(output=False), custom=custom)
    with qk.quantize_scope(custom):
        return qk.quantize_apply(annotated, scheme)
