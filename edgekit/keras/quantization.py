"""Quantization-aware training shaped by the target profile: edgekit's own for Keras 3 models
(edgekit.keras.qat3), tfmot for tf_keras ones.

`quantize_model(model, target="cortex-m4")` reads the target: QAT trains int8, with per-axis
conv weights (tfmot's scheme, every built-in profile) or, for a `per_channel = false` profile,
one scale per kernel after folding BatchNorm (`per_tensor_scheme`, `fold_batchnorm`). A non-int8
profile gets a clear error pointing to post-training quantization. `preserve="sparsity"`
keeps a pruned model's zeros through QAT (tfmot's prune-preserving scheme), `"clusters"` keeps
a clustered model's centroids, `"sparsity_and_clusters"` both (tf_keras models only).

A Keras 3 model gives a Keras 3 QAT model (same target rules, same errors) that saves as
`.keras`; the other names here (`quantize_apply`, `per_tensor_scheme`, ...) are tfmot's.
"""

from __future__ import annotations

import importlib
from typing import Any

from edgekit.errors import UsageError
from edgekit.keras._compat import ensure_tf_keras, is_keras3, tensorflow_backend, tfmot_layer_error
from edgekit.keras._tfmot import tfmot
from edgekit.keras.folding import fold_batchnorm
from edgekit.keras.qat3 import quantize_keras3
from edgekit.models import is_qat_model  # noqa: F401  (re-exported; one definition)
from edgekit.targets import load_target

QAT_ALTERNATIVES = (
    "give it a custom QuantizeConfig with quantize_annotate_layer(layer, config) inside "
    "quantize_scope, or leave it unwrapped by annotating only the supported layers "
    "(quantize_annotate_layer) and calling quantize_apply"
)
PRESERVE = (None, "sparsity", "clusters", "sparsity_and_clusters")


def quantize_annotate_layer(layer: Any, quantize_config: Any = None) -> Any:
    return tfmot().quantization.keras.quantize_annotate_layer(layer, quantize_config)


def quantize_annotate_model(model: Any) -> Any:
    return tfmot().quantization.keras.quantize_annotate_model(ensure_tf_keras(model))


def quantize_apply(model: Any, scheme: Any = None) -> Any:
    qk = tfmot().quantization.keras
    scheme = scheme if scheme is not None else qk.default_8bit.Default8BitQuantizeScheme()
    return qk.quantize_apply(model, scheme)


def quantize_scope(*args: Any) -> Any:
    """tfmot's `quantize_scope`: needed to load a saved QAT model."""
    return tfmot().quantization.keras.quantize_scope(*args)


def scheme_for(target: Any = None, preserve: str | None = None) -> Any:
    """The tfmot quantize scheme for a target profile and what to preserve."""
    if preserve not in PRESERVE:
        raise UsageError(f"preserve must be one of {PRESERVE}; received {preserve!r}")
    qk = tfmot().quantization.keras
    per_channel = int8_per_channel(target)
    if not per_channel:
        if preserve is not None:
            name = getattr(target, "name", target)
            raise UsageError(
                f"target {name} wants per-tensor weights; tfmot's {preserve}-preserving "
                "QAT schemes are per-axis only. Use a per-channel target, or QAT without "
                "preserve= (the zeros/centroids then drift during QAT)"
            )
        return per_tensor_scheme()
    experimental = tfmot().experimental.combine
    if preserve == "sparsity":
        return experimental.Default8BitPrunePreserveQuantizeScheme()
    if preserve == "clusters":
        return experimental.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False)
    if preserve == "sparsity_and_clusters":
        return experimental.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    return qk.default_8bit.Default8BitQuantizeScheme()


def int8_per_channel(target: Any = None) -> bool:
    """Whether a target's int8 weights have one scale per channel (True without a target);
    a target that does not run int8 is refused (QAT trains for int8).

    >>> int8_per_channel("cortex-m4")
    True
    """
    if target is None:
        return True
    profile = load_target(target)
    if profile.quantization.scheme != "int8":
        raise UsageError(
            f"QAT trains for int8; target {profile.name} uses "
            f"{profile.quantization.scheme}. Deploy it with post-training quantization"
        )
    return profile.quantization.per_channel


def per_tensor_scheme() -> Any:
    """tfmot's 8-bit scheme with one scale per weight tensor (for per-tensor targets).

    tfmot's `disable_per_axis=True` covers layers it fake-quantizes through its registry, but
    its Conv/Dense + ReLU transform gives the conv a no-op config, leaving the converter to
    quantize that kernel per channel. Here such kernels get a per-tensor weight quantizer
    instead. Fold BatchNorm first (`fold_batchnorm`); `quantize_model` does.

    >>> scheme = per_tensor_scheme()                                    # doctest: +SKIP
    """
    registry = _qk_module("default_8bit.default_8bit_quantize_registry")

    def per_tensor(class_name: str, attr: str) -> Any:
        return registry.Default8BitQuantizeConfig([attr], [], False)

    custom = {"Default8BitQuantizeConfig": registry.Default8BitQuantizeConfig}
    return weights_scheme(per_tensor, disable_per_axis=True, custom=custom)


KERNELS = {"Conv2D": "kernel", "Dense": "kernel", "DepthwiseConv2D": "depthwise_kernel"}


def weights_scheme(config_for: Any, disable_per_axis: bool = False, custom: Any = None) -> Any:
    """tfmot's 8-bit scheme, except that a conv/dense layer followed by a ReLU keeps a weight
    quantizer of our choosing, `config_for(class_name, kernel_attribute)` (tfmot's own
    Conv/Dense+ReLU transform would give it a no-op config and leave its kernel to the
    converter). The ReLU is quantized by the registry, so nothing splits layer + ReLU."""
    qk = tfmot().quantization.keras
    base = qk.default_8bit.Default8BitQuantizeScheme
    configs = _qk_module("default_8bit.default_8bit_quantize_configs")
    layout = _qk_module("default_8bit.default_8bit_quantize_layout_transform")
    transforms = _qk_module("default_8bit.default_8bit_transforms")
    model_transformer = _qk_module("graph_transformations.model_transformer")

    def weights_only(match_layer: Any) -> Any:
        producer = match_layer.input_layers[0]
        class_name = producer.layer["class_name"]
        attr = KERNELS.get(class_name)
        producer.metadata["quantize_config"] = (
            config_for(class_name, attr) if attr else configs.NoOpQuantizeConfig()
        )
        return match_layer

    class ReLUQuantize(transforms.LayerReLUQuantize):
        replacement = staticmethod(weights_only)

        def custom_objects(self) -> dict:
            return {**super().custom_objects(), **(custom or {})}

    class ReLUActivationQuantize(ReLUQuantize, transforms.LayerReluActivationQuantize):
        pattern = transforms.LayerReluActivationQuantize.pattern

    class Layout(layout.Default8BitQuantizeLayoutTransform):
        def apply(self, model: Any, layer_quantize_map: dict) -> Any:
            swap = {
                transforms.LayerReLUQuantize: ReLUQuantize,
                transforms.LayerReluActivationQuantize: ReLUActivationQuantize,
            }
            steps = [swap.get(type(t), type(t))() for t in _default_transforms(transforms)]
            return model_transformer.ModelTransformer(
                model, steps, set(layer_quantize_map), layer_quantize_map
            ).transform()

    class WeightsScheme(base):
        def __init__(self) -> None:
            super().__init__(disable_per_axis=disable_per_axis)

        def get_layout_transformer(self) -> Any:
            return Layout()

    return WeightsScheme()


def _qk_module(name: str) -> Any:
    """A module of tfmot's internal quantization.keras package (not part of its public API)."""
    tfmot()  # imports TensorFlow the edgekit way first
    return importlib.import_module(
        f"tensorflow_model_optimization.python.core.quantization.keras.{name}"
    )


def _default_transforms(transforms: Any) -> list:
    """tfmot's Default8BitQuantizeLayoutTransform list, in its order."""
    names = (
        "InputLayerQuantize",
        "SeparableConv1DQuantize",
        "SeparableConvQuantize",
        "Conv2DReshapeBatchNormReLUQuantize",
        "Conv2DReshapeBatchNormActivationQuantize",
        "Conv2DBatchNormReLUQuantize",
        "Conv2DBatchNormActivationQuantize",
        "Conv2DReshapeBatchNormQuantize",
        "Conv2DBatchNormQuantize",
        "ConcatTransform6Inputs",
        "ConcatTransform5Inputs",
        "ConcatTransform4Inputs",
        "ConcatTransform3Inputs",
        "ConcatTransform",
        "DenseBatchNormQuantize",
        "DenseBatchNormReLUQuantize",
        "DenseBatchNormActivationQuantize",
        "LayerReLUQuantize",
        "LayerReluActivationQuantize",
    )
    return [getattr(transforms, name)() for name in names]


@tensorflow_backend
def quantize_model(model: Any, target: Any = None, preserve: str | None = None) -> Any:
    """Wrap a model for QAT. Deploy the trained model as is: it converts to full int8 with
    the ranges learned in training (no calibration data needed).

    A Keras 3 model gives a Keras 3 model (edgekit.keras.qat3: BatchNorm folded, per-channel
    or per-tensor int8 kernels as the target says; `preserve="sparsity"` keeps zeros); a
    tf_keras one a tfmot QAT model.

    A per-tensor target (`per_channel = false`) first folds BatchNorm into the conv before it
    (`fold_batchnorm`), so the kernel trained with one scale is the kernel that ships.

    >>> qat = quantize_model(model, target="cortex-m4")            # doctest: +SKIP
    >>> qat.fit(x, y, epochs=2)                                     # doctest: +SKIP
    >>> edgekit.deploy(qat, "cortex-m4", validation=(x, y))         # doctest: +SKIP
    """
    if is_keras3(model):
        if preserve not in (None, "sparsity"):
            raise UsageError(
                f"preserve={preserve!r} uses tfmot's cluster-preserving schemes, for tf_keras "
                "models only (Keras 3 QAT preserves sparsity): quantize ensure_tf_keras(model) "
                "to use it"
            )
        return quantize_keras3(
            model, per_channel=int8_per_channel(target), preserve_sparsity=preserve == "sparsity"
        )
    model = ensure_tf_keras(model)
    scheme = scheme_for(target, preserve)
    if getattr(scheme, "_disable_per_axis", False):
        model = fold_batchnorm(model, strict=True)
    qk = tfmot().quantization.keras
    try:
        return qk.quantize_apply(qk.quantize_annotate_model(model), scheme)
    except (RuntimeError, ValueError) as exc:
        raise tfmot_layer_error(exc, model, "quantize", QAT_ALTERNATIVES) from exc
