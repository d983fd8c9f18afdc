"""Quantization-aware training, backed by tfmot, shaped by the target profile.

`quantize_model(model, target="cortex-m4")` checks the target: QAT trains int8 with per-axis
conv weights (tfmot's scheme), which every built-in profile uses; a per-tensor or non-int8
profile gets a clear error pointing to post-training quantization. `preserve="sparsity"`
keeps a pruned model's zeros through QAT (tfmot's prune-preserving scheme), `"clusters"` keeps
a clustered model's centroids, `"sparsity_and_clusters"` both.
"""

from __future__ import annotations

from typing import Any

from edgekit.errors import EdgekitError
from edgekit.keras._compat import ensure_tf_keras, tfmot_layer_error
from edgekit.keras._tfmot import tfmot
from edgekit.models import is_qat_model  # noqa: F401  (re-exported; one definition)

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
        raise EdgekitError(f"preserve must be one of {PRESERVE}; received {preserve!r}")
    qk = tfmot().quantization.keras
    per_channel = True
    if target is not None:
        from edgekit.targets import load_target

        profile = load_target(target)
        if profile.quantization.scheme != "int8":
            raise EdgekitError(
                f"QAT trains for int8; target {profile.name} uses "
                f"{profile.quantization.scheme}. Deploy it with post-training quantization"
            )
        per_channel = profile.quantization.per_channel
    if not per_channel:
        # Swapping tfmot's weight quantizers for per-tensor ones breaks its Conv+BatchNorm
        # folding (measured: the converter then leaves those convs in float). Refuse instead.
        raise EdgekitError(
            f"target {profile.name} wants per-tensor weights, but tfmot's QAT schemes quantize "
            "conv weights per axis; deploy with post-training quantization (edgekit.deploy "
            "with calibration data) or use a per-channel target"
        )
    experimental = tfmot().experimental.combine
    if preserve == "sparsity":
        return experimental.Default8BitPrunePreserveQuantizeScheme()
    if preserve == "clusters":
        return experimental.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=False)
    if preserve == "sparsity_and_clusters":
        return experimental.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=True)
    return qk.default_8bit.Default8BitQuantizeScheme()


def quantize_model(model: Any, target: Any = None, preserve: str | None = None) -> Any:
    """Wrap a model for QAT. Deploy the trained model as is: it converts to full int8 with
    the ranges learned in training (no calibration data needed).

    >>> qat = quantize_model(model, target="cortex-m4")            # doctest: +SKIP
    >>> qat.fit(x, y, epochs=2)                                     # doctest: +SKIP
    >>> edgekit.deploy(qat, "cortex-m4", validation=(x, y))         # doctest: +SKIP
    """
    model = ensure_tf_keras(model)
    scheme = scheme_for(target, preserve)
    qk = tfmot().quantization.keras
    try:
        return qk.quantize_apply(qk.quantize_annotate_model(model), scheme)
    except (RuntimeError, ValueError) as exc:
        raise tfmot_layer_error(exc, model, "quantize", QAT_ALTERNATIVES) from exc
