"""edgekit.keras: compression you train with, that survives into the deployed model.

Names follow tfmot where tfmot has one (`prune_low_magnitude`, `strip_pruning`,
`quantize_model`, `cluster_weights`, `UpdatePruningStep`), so tfmot users feel at home;
distillation and target-aware callbacks are edgekit's own. Every technique is native on both
Kerases: a Keras 3 model (`import keras`) gives a Keras 3 model that trains with Keras 3's
`fit` and saves as `.keras` (pruning, QAT and power-of-two weights, clustering, distillation,
channel pruning, low-rank, sparse regularisation, lottery tickets, fine-tuning); a tf_keras
model goes to tfmot where tfmot has the technique (pruning, QAT, clustering) and is otherwise
edited and rebuilt in tf_keras.
Every callback in `edgekit.keras.callbacks` is a Callback of both Kerases.

>>> from edgekit import keras as ek                                              # doctest: +SKIP
>>> schedule = ek.pruning_schedule(0.8, epochs=10, steps_per_epoch=41)           # doctest: +SKIP
>>> pruned = ek.prune_low_magnitude(model, schedule)                             # doctest: +SKIP
>>> pruned.fit(x, y, epochs=10, callbacks=[ek.callbacks.UpdatePruningStep()])    # doctest: +SKIP
>>> edgekit.deploy(ek.strip_pruning(pruned), "cortex-m4", calibration=x[:200])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # pruning
    "prune_low_magnitude": "edgekit.keras.pruning",
    "PruneLowMagnitude": "edgekit.keras.pruning3",
    "strip_pruning": "edgekit.keras.pruning",
    "pruning_schedule": "edgekit.keras.schedules",
    "ConstantSparsity": "edgekit.keras.schedules",
    "PolynomialDecay": "edgekit.keras.schedules",
    "layer_sparsity": "edgekit.keras.sparsity_stats",
    "total_sparsity": "edgekit.keras.sparsity_stats",
    # quantization-aware training
    "quantize_model": "edgekit.keras.quantization",
    "quantize_annotate_layer": "edgekit.keras.quantization",
    "quantize_annotate_model": "edgekit.keras.quantization",
    "quantize_apply": "edgekit.keras.quantization",
    "quantize_scope": "edgekit.keras.quantization",
    "per_tensor_scheme": "edgekit.keras.quantization",
    "QuantizeWeights": "edgekit.keras.qat3_layers",
    "QuantizeActivation": "edgekit.keras.qat3_layers",
    "fold_batchnorm": "edgekit.keras.folding",
    "quantize_power_of_two": "edgekit.keras.power_of_two",
    "PowerOfTwoWeightQuantizer": "edgekit.keras.power_of_two",
    "PowerOfTwoConfig": "edgekit.keras.power_of_two",
    # structured compression
    "prune_channels": "edgekit.keras.channel_pruning",
    "PruningReport": "edgekit.keras.channel_pruning",
    "ChannelGraph": "edgekit.keras.channels",
    "keras_macs": "edgekit.keras.channels",
    "factorize": "edgekit.keras.lowrank",
    "fine_tune": "edgekit.keras.finetune",
    "find_ticket": "edgekit.keras.lottery",
    "GroupLasso": "edgekit.keras.sparsity",
    "sparsify": "edgekit.keras.sparsity",
    "gamma_histogram": "edgekit.keras.sparsity",
    "recalibrate_batchnorm": "edgekit.keras.batchnorm",
    # clustering
    "cluster_weights": "edgekit.keras.clustering",
    "strip_clustering": "edgekit.keras.clustering",
    "ClusterWeights": "edgekit.keras.clustering3",
    # distillation
    "Distiller": "edgekit.keras.distillation",
    "SoftTargetLoss": "edgekit.keras.distillation",
    "AttentionTransferLoss": "edgekit.keras.distillation",
    "FeatureMatchingLoss": "edgekit.keras.distillation",
    # Keras 2 helpers
    "ensure_tf_keras": "edgekit.keras._compat",
    "keras3_to_tf_keras": "edgekit.keras._compat",
    "tf_keras": "edgekit._tf",
    "tensorflow": "edgekit._tf",
}
__all__ = sorted(_EXPORTS) + ["callbacks"]


def __getattr__(name: str) -> Any:
    # `tf_keras()` returns the Keras 2 package tfmot works with, and `tensorflow()` TensorFlow,
    # both imported the edgekit way (the user's `tf.keras` is left as TensorFlow made it).
    if name == "callbacks":
        return importlib.import_module("edgekit.keras.callbacks")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'edgekit.keras' has no attribute {name!r}")
