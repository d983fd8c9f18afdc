"""Weight clustering for Keras 3 models, natively (tfmot supports only tf_keras).

`cluster_keras3(model, number_of_clusters)` returns a Keras 3 copy of the model whose
clusterable layers are wrapped in `ClusterWeights`, a registered Keras 3 layer holding, per
clustered kernel, the trainable centroids and the index of each weight's centroid. It follows
tfmot's `ClusterWeights`:

- centroids start from the kernel (:mod:`edgekit.keras.centroids`: k-means++, linear,
  density-based or random);
- every training step re-assigns each weight to its nearest centroid and runs the layer with
  the gathered kernel, so the layer sees at most `number_of_clusters` values (tfmot
  re-assigns at inference too; here inference and `strip_keras3` use the assignments of the
  last training step, which the TFLite converter folds into a constant kernel);
- gradients: each centroid gets the sum of its weights' gradients (the gather's own rule;
  ``cluster_gradient_aggregation="avg"`` divides it by the cluster's size), and the original
  weights get the kernel's gradient unchanged (straight-through), so weights can move
  between clusters;
- `preserve_sparsity`: one centroid is 0 and stays 0, and the weights first assigned to it
  stay 0 (a mask).

The model trains with Keras 3's `fit` (no callback needed), saves as `.keras` and reloads
(after `from edgekit.keras import ClusterWeights`, which registers the layer; `edgekit deploy`
does it itself). `strip_keras3` gives back plain layers whose kernels hold the centroids.
Besides tfmot's layers, depthwise kernels are clustered too (tfmot leaves them); recurrent and
attention layers are not supported here (tfmot clusters them on tf_keras models).

>>> import keras, numpy as np
>>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(32), keras.layers.Dense(2)])
>>> clustered = cluster_keras3(model, 4, "linear")
>>> [type(layer).__name__ for layer in clustered.layers]
['ClusterWeights', 'ClusterWeights']
>>> stripped = strip_keras3(clustered)
>>> [len(np.unique(to_numpy(layer.kernel))) <= 4 for layer in stripped.layers]
[True, True]
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from edgekit._tf import keras3
from edgekit.errors import UsageError
from edgekit.keras._compat import unsupported_layers_error
from edgekit.keras.centroids import init_method, initial_centroids
from edgekit.keras.clone3 import unwrap_layers, wrap_layers
from edgekit.keras.pruning3 import PRUNABLE_WEIGHTS, named_variables, to_numpy

keras = keras3()
ops = keras.ops

# Layer class → the attributes holding the weights clustering shares: pruning's table, with
# only the pointwise kernel of separable convolutions (tfmot's registry, with depthwise kernels
# too). A custom layer joins by defining `get_clusterable_weights()`, which returns (name,
# variable) pairs as tfmot's ClusterableLayer does.
CLUSTERABLE_WEIGHTS: dict[type, tuple[str, ...]] = {
    **PRUNABLE_WEIGHTS,
    keras.layers.SeparableConv1D: ("pointwise_kernel",),
    keras.layers.SeparableConv2D: ("pointwise_kernel",),
}
# Layers with weights that clustering leaves as they are (tfmot wraps them and clusters nothing).
UNCLUSTERED = (keras.layers.BatchNormalization, keras.layers.LayerNormalization)
AGGREGATIONS = ("sum", "avg")
CLUSTER_LAYERS = (
    "cluster its layers with edgekit.keras.clustering3.ClusterWeights(layer, number_of_clusters)"
)


def is_clusterable(layer: Any) -> bool:
    """Whether edgekit's Keras 3 clustering can wrap `layer`."""
    return type(layer) in CLUSTERABLE_WEIGHTS or hasattr(layer, "get_clusterable_weights")


def clusterable_weights(layer: Any) -> list[Any]:
    """The variables clustering shares in a (plain, built) Keras 3 layer; [] if none."""
    if hasattr(layer, "get_clusterable_weights"):
        return [weight for _, weight in layer.get_clusterable_weights()]
    return named_variables(layer, CLUSTERABLE_WEIGHTS, "cluster")


def _aggregation(value: Any) -> str:
    text = str(getattr(value, "value", value)).rsplit(".", 1)[-1].lower()
    if text not in AGGREGATIONS:
        raise UsageError(
            f"cluster_gradient_aggregation must be one of {AGGREGATIONS}; received {value!r}"
        )
    return text


def nearest(distances: Any) -> Any:
    """The index of the smallest distance along the last axis.

    On TensorFlow, tf.argmin itself: Keras's adds a bitwise fix for -0.0 that TFLite cannot
    convert, and distances (absolute values) are never -0.0.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf  # the tensorflow backend: TensorFlow is loaded already

        return tf.argmin(distances, axis=-1, output_type=tf.int32)
    return ops.argmin(distances, axis=-1)


@keras.saving.register_keras_serializable(package="edgekit")
class ClusterWeights(keras.layers.Wrapper):
    """A Keras 3 layer whose kernels share `number_of_clusters` trainable centroids.

    Per clustered kernel: `centroids` (trainable), `indices` (each weight's nearest centroid,
    refreshed by every training step) and, with `preserve_sparsity`, `masks`.
    """

    def __init__(
        self,
        layer: Any,
        number_of_clusters: int,
        cluster_centroids_init: Any = "kmeans++",
        preserve_sparsity: bool = False,
        cluster_gradient_aggregation: Any = "sum",
        **kwargs: Any,
    ) -> None:
        smallest = 3 if preserve_sparsity else 2
        if not isinstance(number_of_clusters, int) or number_of_clusters < smallest:
            raise UsageError(
                f"number_of_clusters must be an integer ≥ {smallest}"
                f"{' with preserve_sparsity' if preserve_sparsity else ''}; received "
                f"{number_of_clusters!r}"
            )
        kwargs.setdefault("name", f"cluster_{layer.name}")
        super().__init__(layer, **kwargs)
        self.number_of_clusters = number_of_clusters
        self.cluster_centroids_init = init_method(cluster_centroids_init)
        self.preserve_sparsity = bool(preserve_sparsity)
        self.cluster_gradient_aggregation = _aggregation(cluster_gradient_aggregation)
        self.centroids: list[Any] = []
        self.indices: list[Any] = []
        self.masks: list[Any] = []

    def build(self, input_shape: Any = None) -> None:
        super().build(input_shape)
        for weight in clusterable_weights(self.layer):
            stem = weight.name.split("/")[-1]
            self.centroids.append(
                self.add_weight(
                    name=f"cluster_centroids_{stem}",
                    shape=(self.number_of_clusters,),
                    initializer="zeros",
                    dtype=weight.dtype,
                    trainable=True,
                )
            )
            self.indices.append(
                self.add_weight(
                    name=f"pulling_indices_{stem}",
                    shape=weight.shape,
                    initializer="zeros",
                    dtype="int32",
                    trainable=False,
                )
            )
            if self.preserve_sparsity:
                self.masks.append(
                    self.add_weight(
                        name=f"sparsity_mask_{stem}",
                        shape=weight.shape,
                        initializer="ones",
                        dtype=weight.dtype,
                        trainable=False,
                    )
                )
        self.initialize_clusters()
        self.built = True

    def initialize_clusters(self) -> None:
        """Centroids, assignments (and sparsity masks) from the layer's current weights."""
        for i, weight in enumerate(clusterable_weights(self.layer)):
            values = to_numpy(weight)
            self.centroids[i].assign(
                initial_centroids(
                    values,
                    self.number_of_clusters,
                    self.cluster_centroids_init,
                    self.preserve_sparsity,
                )
            )
            if self.preserve_sparsity:  # weights first assigned to the zero centroid stay 0
                self.masks[i].assign(np.ones_like(values))
                self.indices[i].assign(to_numpy(self._assignment(i, self._centroids(i))))
                self.masks[i].assign((to_numpy(self.clustered_kernel(i)) != 0).astype(values.dtype))
            self.indices[i].assign(to_numpy(self._assignment(i, self._centroids(i))))

    def _centroids(self, i: int) -> Any:
        """Centroids of kernel i; with `preserve_sparsity` the one nearest 0 is exactly 0 and
        gets no gradient."""
        centroids = ops.convert_to_tensor(self.centroids[i])
        if not self.preserve_sparsity:
            return centroids
        zero = nearest(ops.abs(centroids))
        keep = ops.not_equal(ops.arange(self.number_of_clusters, dtype="int32"), zero)
        return centroids * ops.cast(keep, centroids.dtype)

    def _weight(self, i: int) -> Any:
        weight = clusterable_weights(self.layer)[i]
        return weight * self.masks[i] if self.preserve_sparsity else weight

    def _assignment(self, i: int, centroids: Any) -> Any:
        """Each weight of kernel i's nearest centroid."""
        return nearest(ops.abs(ops.expand_dims(self._weight(i), -1) - centroids))

    def clustered_kernel(self, i: int) -> Any:
        """Clustered kernel i from the held assignments (inference, `strip_clustering`)."""
        return ops.take(self._centroids(i), self.indices[i])

    def _trained_kernel(self, i: int) -> Any:
        """Clustered kernel i, freshly assigned, with tfmot's gradients; refreshes `indices`."""
        centroids = self._centroids(i)
        index = self._assignment(i, centroids)
        self.indices[i].assign(index)
        if self.cluster_gradient_aggregation == "avg":  # forward: the centroids; gradient / size
            size = ops.bincount(ops.reshape(index, (-1,)), minlength=self.number_of_clusters)
            size = ops.cast(size, centroids.dtype)
            scaled = centroids * ops.where(size > 0, 1.0 / ops.maximum(size, 1.0), 0.0)
            centroids = ops.stop_gradient(centroids) + (scaled - ops.stop_gradient(scaled))
        # Forward: the gathered centroids, exactly; backward: also straight to the weights.
        weight = self._weight(i)
        return ops.take(centroids, index) + (weight - ops.stop_gradient(weight))

    def call(self, inputs: Any, training: Any = None, **kwargs: Any) -> Any:
        """Training re-assigns every weight to its nearest centroid first (as tfmot does at
        every call); inference uses the assignments held, so the converter folds the kernel
        into a constant."""
        kernels = [
            self._trained_kernel(i) if training else self.clustered_kernel(i)
            for i in range(len(self.centroids))
        ]
        mapping = list(zip(clusterable_weights(self.layer), kernels, strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            return self.layer(inputs, **kwargs)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return self.layer.compute_output_shape(input_shape)

    def clustered_weights(self) -> list[np.ndarray]:
        """The wrapped layer's weights with each clustered kernel replaced by its centroids."""
        kernels = {
            id(w): to_numpy(self.clustered_kernel(i))
            for i, w in enumerate(clusterable_weights(self.layer))
        }
        return [kernels[id(w)] if id(w) in kernels else to_numpy(w) for w in self.layer.weights]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "number_of_clusters": self.number_of_clusters,
            "cluster_centroids_init": self.cluster_centroids_init,
            "preserve_sparsity": self.preserve_sparsity,
            "cluster_gradient_aggregation": self.cluster_gradient_aggregation,
        }


def clustering_wrappers(model: Any) -> list[ClusterWeights]:
    """Every `ClusterWeights` in a Keras 3 model, nested models included."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, ClusterWeights)]


def cluster_keras3(
    model: Any,
    number_of_clusters: int,
    cluster_centroids_init: Any = "kmeans++",
    preserve_sparsity: bool = False,
    cluster_gradient_aggregation: Any = "sum",
) -> Any:
    """A copy of a Keras 3 Sequential/Functional model with its clusterable layers wrapped.

    Layers without weights, BatchNormalization and LayerNormalization are copied as they are;
    other layers with weights (recurrent, attention, custom ones without
    `get_clusterable_weights`) raise a UsageError naming them. The user's model keeps its
    weights. A single layer is wrapped as it is (for use inside a model definition).
    """
    options = dict(
        number_of_clusters=number_of_clusters,
        cluster_centroids_init=cluster_centroids_init,
        preserve_sparsity=preserve_sparsity,
        cluster_gradient_aggregation=cluster_gradient_aggregation,
    )
    if not isinstance(model, keras.Model):
        if not is_clusterable(model):
            raise UsageError(
                f"layer {model.name!r} ({type(model).__name__}) has no weights edgekit "
                "clusters; define get_clusterable_weights() on it to choose them"
            )
        return ClusterWeights(model, **options)
    bad = [
        layer
        for layer in model.layers
        if layer.weights
        and not is_clusterable(layer)
        and not isinstance(layer, (ClusterWeights, *UNCLUSTERED))
    ]
    if bad:
        raise unsupported_layers_error(
            "cluster",
            bad,
            (
                "define get_clusterable_weights() on the layer (returning (name, variable) pairs), "
                "or cluster a tf_keras model with tfmot (edgekit.keras.ensure_tf_keras(model))"
            ),
        )

    wrap = partial(ClusterWeights, **options)
    clustered = wrap_layers(model, ClusterWeights, is_clusterable, wrap, "cluster", CLUSTER_LAYERS)
    for wrapper in clustering_wrappers(clustered):  # built before the weights were copied in
        wrapper.initialize_clusters()
    return clustered


def strip_keras3(model: Any) -> Any:
    """A copy with each `ClusterWeights` replaced by its layer, the kernels holding centroids."""
    return unwrap_layers(model, ClusterWeights, ClusterWeights.clustered_weights, CLUSTER_LAYERS)
