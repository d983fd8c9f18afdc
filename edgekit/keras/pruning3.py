"""Magnitude pruning for Keras 3 models, natively (tfmot supports only tf_keras).

`prune_keras3(model, schedule)` returns a Keras 3 copy of the model whose prunable layers are
wrapped in `PruneLowMagnitude`, a registered Keras 3 layer holding one mask per pruned kernel
and the pruning step as non-trainable variables: the model trains with Keras 3's `fit`, saves
as `.keras` mid-training and reloads (after `from edgekit.keras import PruneLowMagnitude`,
which registers the layer; `edgekit deploy` does it itself) to continue. The masks follow
tfmot's rules exactly: at the steps the schedule names, keep the k = max(round(n·(1 −
sparsity)), 1) largest magnitudes; before every batch, kernel ← kernel · mask. The step and
the masks advance in `edgekit.keras.callbacks.UpdatePruningStep`, eagerly, so any backend
trains the same. `strip_keras3` gives back plain Keras layers with the zeros in the kernels.

>>> import keras, numpy as np
>>> from edgekit.keras.schedules import ConstantSparsity
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dense(2)])
>>> pruned = prune_keras3(model, ConstantSparsity(0.5, 0, frequency=1))
>>> [type(layer).__name__ for layer in pruned.layers]
['PruneLowMagnitude', 'PruneLowMagnitude']
>>> wrapper = pruned.layers[0]
>>> wrapper.advance(); float(np.mean(to_numpy(wrapper.layer.kernel) == 0))
0.5
>>> [type(layer).__name__ for layer in strip_keras3(pruned).layers]
['Dense', 'Dense']
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from edgekit._tf import keras3
from edgekit.errors import UsageError
from edgekit.keras.clone3 import unwrap_layers, wrap_layers
from edgekit.keras.schedules import PruningSchedule, schedule_from_config

keras = keras3()

# Layer class → the attributes holding the weights pruning zeroes (tfmot's registry, with
# depthwise kernels too). A custom layer joins by defining `get_prunable_weights()`.
PRUNABLE_WEIGHTS: dict[type, tuple[str, ...]] = {
    keras.layers.Dense: ("kernel",),
    keras.layers.Conv1D: ("kernel",),
    keras.layers.Conv2D: ("kernel",),
    keras.layers.Conv3D: ("kernel",),
    keras.layers.Conv1DTranspose: ("kernel",),
    keras.layers.Conv2DTranspose: ("kernel",),
    keras.layers.Conv3DTranspose: ("kernel",),
    keras.layers.DepthwiseConv1D: ("kernel",),
    keras.layers.DepthwiseConv2D: ("kernel",),
    keras.layers.SeparableConv1D: ("depthwise_kernel", "pointwise_kernel"),
    keras.layers.SeparableConv2D: ("depthwise_kernel", "pointwise_kernel"),
    keras.layers.Embedding: ("embeddings",),
}


def to_numpy(value: Any) -> np.ndarray:
    """A Keras 3 variable or tensor as a NumPy array (any backend)."""
    return np.asarray(keras.ops.convert_to_numpy(value))


def is_prunable(layer: Any) -> bool:
    """Whether edgekit's Keras 3 pruning can wrap `layer`."""
    return type(layer) in PRUNABLE_WEIGHTS or hasattr(layer, "get_prunable_weights")


def prunable_weights(layer: Any) -> list[Any]:
    """The variables pruning zeroes in a (plain, built) Keras 3 layer; [] if none."""
    if hasattr(layer, "get_prunable_weights"):
        return list(layer.get_prunable_weights())
    return named_variables(layer, PRUNABLE_WEIGHTS, "prune")


def named_variables(layer: Any, table: dict[type, tuple[str, ...]], what: str) -> list[Any]:
    """The variables `table` names for the layer's class; a LoRA or quantized layer, whose
    kernel is computed, cannot be pruned or clustered (`what`)."""
    weights = [getattr(layer, name, None) for name in table.get(type(layer), ())]
    if any(w is not None and not isinstance(w, keras.Variable) for w in weights):
        raise UsageError(
            f"layer {layer.name!r} ({type(layer).__name__}) has a computed kernel (LoRA or "
            f"quantized); {what} it before enabling LoRA or quantizing"
        )
    return [w for w in weights if w is not None]


def magnitude_mask(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """1 for the k = max(round(n·(1 − sparsity)), 1) largest |w| (ties kept), else 0.

    tfmot's rule, float32 maths and round-half-to-even included.

    >>> magnitude_mask(np.array([0.1, -3.0, 0.5, 2.0]), 0.5).tolist()
    [0.0, 1.0, 0.0, 1.0]
    """
    magnitude = np.abs(weight).reshape(-1)
    keep = np.float32(magnitude.size) * (np.float32(1) - np.float32(sparsity))
    k = int(max(np.round(keep), 1))
    threshold = np.partition(magnitude, magnitude.size - k)[magnitude.size - k]
    return (np.abs(weight) >= threshold).astype(weight.dtype)


PRUNE_LAYERS = "prune its layers with edgekit.keras.pruning3.PruneLowMagnitude(layer, schedule)"

MISSING_CALLBACK = (
    "a pruned model trains with edgekit.keras.callbacks.UpdatePruningStep() in fit's callbacks "
    "(without it the masks never apply)"
)


@keras.saving.register_keras_serializable(package="edgekit")
class PruneLowMagnitude(keras.layers.Wrapper):
    """A Keras 3 layer pruned by magnitude: the layer, a mask per kernel and the step.

    The step starts at -1 (not trained yet); `UpdatePruningStep` sets it to 0 when training
    begins and calls `advance()` before every batch.
    """

    def __init__(self, layer: Any, pruning_schedule: PruningSchedule, **kwargs: Any) -> None:
        kwargs.setdefault("name", f"prune_low_magnitude_{layer.name}")
        super().__init__(layer, **kwargs)
        self.pruning_schedule = pruning_schedule
        self.masks: list[Any] = []

    def build(self, input_shape: Any = None) -> None:
        super().build(input_shape)
        self.masks = [
            self.add_weight(
                name=f"{weight.name}_mask",
                shape=weight.shape,
                initializer="ones",
                dtype=weight.dtype,
                trainable=False,
            )
            for weight in prunable_weights(self.layer)
        ]
        self.pruning_step = self.add_weight(
            name="pruning_step",
            shape=(),
            initializer=keras.initializers.Constant(-1),
            dtype="int64",
            trainable=False,
        )
        self.built = True

    def call(self, inputs: Any, training: Any = None, **kwargs: Any) -> Any:
        if training and keras.backend.backend() == "tensorflow":
            import tensorflow as tf  # the tensorflow backend: TensorFlow is loaded already

            # Trained without the callback, the masks never apply: say so, as tfmot does.
            tf.debugging.assert_non_negative(self.pruning_step, message=MISSING_CALLBACK)
        return self.layer(inputs, **kwargs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    def pairs(self) -> list[tuple[Any, Any]]:
        """(kernel, mask) variable pairs."""
        return list(zip(prunable_weights(self.layer), self.masks, strict=True))

    def apply_masks(self) -> None:
        """kernel ← kernel · mask."""
        for weight, mask in self.pairs():
            weight.assign(weight * mask)

    def masked_weights(self) -> list[np.ndarray]:
        """The wrapped layer's weights with the masks applied (the variables are not changed)."""
        masks = {id(weight): mask for weight, mask in self.pairs()}
        return [to_numpy(w * masks[id(w)] if id(w) in masks else w) for w in self.layer.weights]

    def advance(self) -> None:
        """One training step: step + 1, new masks if the schedule says so, then mask."""
        step = int(to_numpy(self.pruning_step)) + 1
        self.pruning_step.assign(step)
        if self.pruning_schedule.should_prune(step):
            sparsity = self.pruning_schedule(step)[1].numpy()
            for weight, mask in self.pairs():
                mask.assign(magnitude_mask(to_numpy(weight), sparsity))
        self.apply_masks()

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pruning_schedule": self.pruning_schedule.get_config()}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> PruneLowMagnitude:
        config = dict(config)
        config["pruning_schedule"] = schedule_from_config(config["pruning_schedule"])
        return super().from_config(config, custom_objects=custom_objects)


def pruning_wrappers(model: Any) -> list[PruneLowMagnitude]:
    """Every `PruneLowMagnitude` in a Keras 3 model, nested models included."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, PruneLowMagnitude)]


def prune_keras3(model: Any, schedule: PruningSchedule) -> Any:
    """A copy of a Keras 3 Sequential/Functional model with its prunable layers wrapped.

    Other layers (BatchNormalization, pooling, custom layers without `get_prunable_weights`)
    are copied as they are. The user's model keeps its weights. A single layer is wrapped as
    it is (for use inside a model definition). tfmot's schedules are taken too (same maths).
    """
    if not isinstance(schedule, PruningSchedule):
        schedule = schedule_from_config(schedule.get_config())
    if not isinstance(model, keras.Model):
        if not is_prunable(model):
            raise UsageError(
                f"layer {model.name!r} ({type(model).__name__}) has no weights edgekit prunes; "
                "define get_prunable_weights() on it to choose them"
            )
        return PruneLowMagnitude(model, schedule)

    wrap = partial(PruneLowMagnitude, pruning_schedule=schedule)
    return wrap_layers(model, PruneLowMagnitude, is_prunable, wrap, "prune", PRUNE_LAYERS)


def strip_keras3(model: Any) -> Any:
    """A copy with each `PruneLowMagnitude` replaced by its layer; the kernels keep the zeros."""
    return unwrap_layers(model, PruneLowMagnitude, PruneLowMagnitude.masked_weights, PRUNE_LAYERS)
