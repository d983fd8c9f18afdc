"""Weight clustering (weight sharing), backed by tfmot.

After `strip_clustering`, each clustered kernel holds at most `number_of_clusters` distinct
values; the int8 model keeps that (every centroid maps to one int8 value per channel).
"""

from __future__ import annotations

from typing import Any

from edgekit.keras._compat import ensure_tf_keras, tfmot_layer_error
from edgekit.keras._tfmot import tfmot

CLUSTER_ALTERNATIVES = (
    "implement tfmot's ClusterableLayer (get_clusterable_weights) on the layer, or cluster only "
    "the supported layers: cluster_weights(layer, ...) inside the model definition"
)


def cluster_weights(
    model: Any,
    number_of_clusters: int,
    cluster_centroids_init: Any = None,
    preserve_sparsity: bool = False,
    **kwargs: Any,
) -> Any:
    """Wrap a model for clustering; centroids start from k-means++ unless told otherwise."""
    clustering = tfmot().clustering.keras
    model = ensure_tf_keras(model)
    init = cluster_centroids_init or clustering.CentroidInitialization.KMEANS_PLUS_PLUS
    try:
        return clustering.cluster_weights(
            model,
            number_of_clusters=number_of_clusters,
            cluster_centroids_init=init,
            preserve_sparsity=preserve_sparsity,
            **kwargs,
        )
    except (RuntimeError, ValueError) as exc:
        raise tfmot_layer_error(exc, model, "cluster", CLUSTER_ALTERNATIVES) from exc


def strip_clustering(model: Any) -> Any:
    """Remove clustering wrappers. On a cluster-preserving QAT model, write the centroids back
    into the QAT kernels (tfmot's `strip_clustering_cqat`) and keep the QAT wrappers."""
    from edgekit.keras.quantization import is_qat_model

    if is_qat_model(model):
        return tfmot().experimental.combine.strip_clustering_cqat(model)
    return tfmot().clustering.keras.strip_clustering(model)
