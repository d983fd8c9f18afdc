"""Weight clustering (weight sharing): edgekit's own for Keras 3 models, tfmot for tf_keras ones.

`cluster_weights` looks at the model: a Keras 3 model gets a Keras 3 copy with edgekit's
`ClusterWeights` layers (edgekit.keras.clustering3), a tf_keras model tfmot's wrappers.
`strip_clustering` removes either. After it, each clustered kernel holds at most
`number_of_clusters` distinct values; the int8 model keeps that (every centroid maps to one
int8 value per channel). `cluster_centroids_init` takes edgekit's names ("kmeans++", the
default, "linear", "density_based", "random") or tfmot's `CentroidInitialization`, for both.
"""

from __future__ import annotations

from typing import Any

from edgekit.errors import UsageError
from edgekit.keras._compat import (
    ensure_tf_keras,
    is_keras3,
    tensorflow_backend,
    tfmot_layer_error,
)
from edgekit.keras._tfmot import tfmot
from edgekit.keras.centroids import init_method
from edgekit.keras.clustering3 import cluster_keras3, strip_keras3
from edgekit.keras.quantization import is_qat_model

CLUSTER_ALTERNATIVES = (
    "implement tfmot's ClusterableLayer (get_clusterable_weights) on the layer, or cluster only "
    "the supported layers: cluster_weights(layer, ...) inside the model definition"
)
# edgekit's initialisation names → tfmot's CentroidInitialization members.
TFMOT_INIT = {
    "kmeans++": "KMEANS_PLUS_PLUS",
    "linear": "LINEAR",
    "density_based": "DENSITY_BASED",
    "random": "RANDOM",
}


@tensorflow_backend
def cluster_weights(
    model: Any,
    number_of_clusters: int,
    cluster_centroids_init: Any = None,
    preserve_sparsity: bool = False,
    **kwargs: Any,
) -> Any:
    """Wrap a model (or a layer) for clustering; centroids start from k-means++ unless told
    otherwise.

    A Keras 3 model gives a Keras 3 model (edgekit's `ClusterWeights` layers; trains with
    Keras 3's `fit`, saves and reloads as `.keras`); `cluster_gradient_aggregation` ("sum" or
    "avg") is the one other option it takes. A tf_keras model goes to tfmot with all of
    tfmot's options. The Keras 3 model is copied first, so the original keeps its weights.
    """
    method = init_method(cluster_centroids_init)
    if is_keras3(model):
        extra = sorted(set(kwargs) - {"cluster_gradient_aggregation"})
        if extra:
            raise UsageError(
                f"{', '.join(extra)}: tfmot options, for tf_keras models only; cluster "
                "ensure_tf_keras(model) to use them"
            )
        return cluster_keras3(model, number_of_clusters, method, preserve_sparsity, **kwargs)
    clustering = tfmot().clustering.keras
    if hasattr(model, "layers"):
        model = ensure_tf_keras(model)
    try:
        return clustering.cluster_weights(
            model,
            number_of_clusters=number_of_clusters,
            cluster_centroids_init=clustering.CentroidInitialization[TFMOT_INIT[method]],
            preserve_sparsity=preserve_sparsity,
            **kwargs,
        )
    except (RuntimeError, ValueError) as exc:
        raise tfmot_layer_error(exc, model, "cluster", CLUSTER_ALTERNATIVES) from exc


@tensorflow_backend
def strip_clustering(model: Any) -> Any:
    """Remove clustering wrappers (a new model for Keras 3). On a cluster-preserving QAT model,
    write the centroids back into the QAT kernels (tfmot's `strip_clustering_cqat`) and keep
    the QAT wrappers."""
    if is_keras3(model):
        return strip_keras3(model)
    if is_qat_model(model):
        return tfmot().experimental.combine.strip_clustering_cqat(model)
    return tfmot().clustering.keras.strip_clustering(model)
