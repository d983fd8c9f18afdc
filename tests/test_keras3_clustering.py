"""Keras 3 weight clustering and lottery tickets, natively: Keras 3 in, Keras 3 out, at most N
values per kernel into the int8 file; the maths checked against tfmot's own on tf_keras."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import compile_keras3, deploy_digits, deploy_saved, subclassed_model, tf_keras

from edgekit import keras as ek
from edgekit.errors import UsageError
from edgekit.graph import weight_tensors
from edgekit.keras.centroids import initial_centroids
from edgekit.keras.clustering3 import ClusterWeights
from edgekit.keras.pruning3 import to_numpy
from edgekit.tflite_model import load_tflite

CLUSTERS = 16
BATCH = 32
KERNELS = ("conv", "depthwise", "hidden", "label")


def _distinct(model: keras.Model) -> dict[str, int]:
    """Distinct values in each named kernel of a plain (stripped) model."""
    return {name: len(np.unique(to_numpy(model.get_layer(name).kernel))) for name in KERNELS}


@pytest.fixture(scope="module")
def clustered(keras3_digits_model, digits_data):
    """The float model clustered to 16 and trained 2 epochs with Keras 3's fit."""
    train = digits_data[0]
    before = [w.copy() for w in keras3_digits_model.get_weights()]
    model = compile_keras3(ek.cluster_weights(keras3_digits_model, CLUSTERS), 1e-4)
    model.fit(train.x, train.y, epochs=2, batch_size=BATCH, verbose=0)
    for old, new in zip(before, keras3_digits_model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # the user's model keeps its weights
    return model


def _per_channel_counts(tflite) -> list[int]:
    """Distinct int8 values in each output channel of every conv, depthwise and dense kernel."""
    counts = []
    for op, idx in weight_tensors(tflite):
        w = tflite.weights(idx)
        axis = 3 if op.name == "DEPTHWISE_CONV_2D" else 0  # the output channels
        counts += [len(np.unique(np.take(w, c, axis=axis))) for c in range(w.shape[axis])]
    return counts


# tfmot's initialisers and gradients, on the same weights ----------------------------------


def _tfmot_centroids(weights: np.ndarray, k: int, method: str, preserve: bool) -> np.ndarray:
    from edgekit._tf import tensorflow
    from edgekit.keras._tfmot import tfmot

    tfmot()
    from tensorflow_model_optimization.python.core.clustering.keras import clustering_centroids

    initialiser = clustering_centroids.CentroidsInitializerFactory.get_centroid_initializer(
        f"CentroidInitialization.{method}"
    )
    tensor = tensorflow().constant(weights)
    return initialiser(tensor, k, preserve_sparsity=preserve).get_cluster_centroids().numpy()


def test_centroid_initialisation_matches_tfmot():
    rng = np.random.default_rng(1)
    weights = (rng.standard_normal((3, 3, 8, 16)) * 0.1).astype(np.float32)
    weights[0] = 0.0  # zeros for preserve_sparsity
    for ours, theirs in (("linear", "LINEAR"), ("density_based", "DENSITY_BASED")):
        for preserve in (False, True):
            expected = _tfmot_centroids(weights, CLUSTERS, theirs, preserve)
            got = initial_centroids(weights, CLUSTERS, ours, preserve)
            np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=f"{ours} {preserve}")
    seeded = initial_centroids(weights, CLUSTERS, "kmeans++")
    assert len(np.unique(seeded)) == CLUSTERS and set(seeded) <= set(weights.ravel())
    spread = initial_centroids(weights, CLUSTERS, "kmeans++", preserve_sparsity=True)
    assert np.sum(spread == 0) == 1 and np.sum(spread < 0) >= 6 and np.sum(spread > 0) >= 6


@pytest.mark.parametrize("aggregation", ["sum", "avg"])
def test_forward_and_gradients_match_tfmot(aggregation):
    """One Dense, the same kernel and linear centroids: same output, same gradients for the
    kernel (straight through) and the centroids (summed or averaged per cluster)."""
    from edgekit._tf import tensorflow
    from edgekit.keras._tfmot import tfmot

    tf, k2, clustering = tensorflow(), tf_keras(), tfmot().clustering.keras
    rng = np.random.default_rng(2)
    kernel = rng.standard_normal((6, 5)).astype(np.float32)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    theirs = k2.Sequential([k2.Input((6,)), k2.layers.Dense(5, use_bias=False)])
    theirs.layers[0].set_weights([kernel])
    from tensorflow_model_optimization.python.core.clustering.keras import cluster_config

    theirs = clustering.cluster_weights(
        theirs,
        number_of_clusters=4,
        cluster_centroids_init=clustering.CentroidInitialization.LINEAR,
        cluster_gradient_aggregation=cluster_config.GradientAggregation[aggregation.upper()],
    )
    ours = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, use_bias=False)])
    ours.layers[0].set_weights([kernel])
    ours = ek.cluster_weights(ours, 4, "linear", cluster_gradient_aggregation=aggregation)
    results = []
    pairs = (
        (theirs, theirs.layers[0].original_clusterable_weights["kernel"]),
        (ours, ours.layers[0].layer.kernel),
    )
    for model, kernel_variable in pairs:
        centroids = next(w for w in model.trainable_weights if "centroids" in w.name)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.square(model(x, training=True)))
        grads = tape.gradient(loss, [kernel_variable, centroids])
        results.append([loss.numpy(), *(tf.convert_to_tensor(g).numpy() for g in grads)])
    for theirs_value, ours_value in zip(*results, strict=True):
        np.testing.assert_allclose(ours_value, theirs_value, rtol=1e-5, atol=1e-6)


# the Keras 3 path end to end ----------------------------------------------------------------


def test_clustered_model_is_keras3_trains_and_strips(clustered, digits_data):
    wrappers = [layer for layer in clustered.layers if isinstance(layer, ClusterWeights)]
    assert {w.layer.name for w in wrappers} == set(KERNELS)
    val = digits_data[2]
    assert clustered.evaluate(val.x, val.y, verbose=0)[1] > 0.85
    stripped = ek.strip_clustering(clustered)
    assert type(stripped).__module__.startswith("keras")
    assert not any(isinstance(layer, ClusterWeights) for layer in stripped.layers)
    counts = _distinct(stripped)
    assert max(counts.values()) <= CLUSTERS and min(counts.values()) >= CLUSTERS - 2, counts
    np.testing.assert_allclose(to_numpy(stripped(val.x)), to_numpy(clustered(val.x)), atol=1e-6)
    hidden = next(w for w in wrappers if w.layer.name == "hidden")
    assert to_numpy(hidden.indices[0]).max() < CLUSTERS  # assignments held, refreshed by fit


def test_keras_file_round_trips_mid_training_and_stripped(
    keras3_digits_model, digits_data, tmp_path
):
    train = digits_data[0].head(256)
    model = compile_keras3(ek.cluster_weights(keras3_digits_model, 8, "density_based"), 1e-4)
    model.fit(train.x, train.y, epochs=1, batch_size=BATCH, verbose=0)
    model.save(tmp_path / "mid.keras")
    reloaded = keras.saving.load_model(tmp_path / "mid.keras")
    wrapper = reloaded.get_layer("cluster_hidden")
    assert isinstance(wrapper, ClusterWeights) and wrapper.number_of_clusters == 8
    assert wrapper.cluster_centroids_init == "density_based"
    for old, new in zip(model.get_weights(), reloaded.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # centroids and assignments too
    np.testing.assert_allclose(to_numpy(reloaded(train.x)), to_numpy(model(train.x)), atol=1e-6)
    centroids = to_numpy(wrapper.centroids[0]).copy()
    compile_keras3(reloaded, 1e-3).fit(train.x, train.y, epochs=1, batch_size=BATCH, verbose=0)
    assert not np.array_equal(to_numpy(wrapper.centroids[0]), centroids)  # it trains on

    stripped = ek.strip_clustering(reloaded)
    stripped.save(tmp_path / "stripped.keras")
    again = keras.saving.load_model(tmp_path / "stripped.keras")
    assert max(_distinct(again).values()) <= 8
    np.testing.assert_allclose(to_numpy(again(train.x)), to_numpy(reloaded(train.x)), atol=1e-6)


def test_preserve_sparsity_keeps_the_zeros(keras3_digits_model, digits_data):
    train = digits_data[0].head(256)
    schedule = ek.ConstantSparsity(0.5, 0, frequency=1)
    pruned = compile_keras3(ek.prune_low_magnitude(keras3_digits_model, schedule))
    pruned.fit(
        train.x, train.y, batch_size=BATCH, verbose=0, callbacks=[ek.callbacks.UpdatePruningStep()]
    )
    sparse = ek.strip_pruning(pruned)
    model = compile_keras3(ek.cluster_weights(sparse, 8, preserve_sparsity=True), 1e-3)
    model.fit(train.x, train.y, epochs=1, batch_size=BATCH, verbose=0)
    stripped = ek.strip_clustering(model)
    for name in KERNELS:
        before = to_numpy(sparse.get_layer(name).kernel)
        after = to_numpy(stripped.get_layer(name).kernel)
        assert np.all(after[before == 0] == 0), name  # every zero stays zero
        assert np.mean(after == 0) >= 0.5 and len(np.unique(after)) <= 8, name


def test_centroid_init_names_of_edgekit_and_tfmot():
    from edgekit.keras._tfmot import tfmot

    enum = tfmot().clustering.keras.CentroidInitialization
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="d")])
    for given, name in (
        (enum.DENSITY_BASED, "density_based"),
        ("KMeans++", "kmeans++"),
        (None, "kmeans++"),
        ("linear", "linear"),
    ):
        assert ek.cluster_weights(model, 4, given).layers[0].cluster_centroids_init == name
    k2 = tf_keras()
    legacy = k2.Sequential([k2.Input((4,)), k2.layers.Dense(8)])
    wrapped = ek.cluster_weights(legacy, 4, "linear").layers[0]  # the tf_keras path: tfmot's
    assert type(wrapped).__module__.startswith("tensorflow_model_optimization")
    assert wrapped.cluster_centroids_init == enum.LINEAR


def test_clear_errors():
    with pytest.raises(UsageError, match="subclassed Keras 3 model"):
        ek.cluster_weights(subclassed_model(keras), 4)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(UsageError, match="cluster_per_channel: tfmot options"):
        ek.cluster_weights(model, 4, cluster_per_channel=True)
    with pytest.raises(UsageError, match="cluster_centroids_init must be one of"):
        ek.cluster_weights(model, 4, "kmedoids")
    with pytest.raises(UsageError, match="number_of_clusters must be an integer ≥ 3"):
        ek.cluster_weights(model, 2, preserve_sparsity=True)
    recurrent = keras.Sequential([keras.Input((3, 4)), keras.layers.LSTM(2, name="lstm")])
    with pytest.raises(UsageError, match="cannot cluster layer.*'lstm' \\(LSTM\\)"):
        ek.cluster_weights(recurrent, 4)
    pooled = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.MaxPooling2D()])
    with pytest.raises(UsageError, match="no layer edgekit can cluster"):
        ek.cluster_weights(pooled, 4)


def test_a_layer_inside_a_model_definition(digits_data):
    keras.utils.set_random_seed(1)
    model = compile_keras3(
        keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Flatten(),
                ek.cluster_weights(keras.layers.Dense(10, name="d"), 4, "linear"),
            ]
        )
    )
    train = digits_data[0].head(128)
    model.fit(train.x, train.y, batch_size=BATCH, verbose=0)
    assert len(np.unique(to_numpy(ek.strip_clustering(model).get_layer("d").kernel))) <= 4


@pytest.mark.slow
def test_deployed_int8_kernels_keep_at_most_16_values_per_channel(clustered, digits_data, tmp_path):
    stripped = ek.strip_clustering(clustered)
    bundle, tflite = deploy_digits(stripped, "raspberry-pi-4", digits_data, tmp_path)
    kernels = {op.name: tflite.weights(idx) for op, idx in weight_tensors(tflite)}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(kernels)
    assert max(_per_channel_counts(tflite)) <= CLUSTERS
    assert bundle.report.metrics["deployed_accuracy"] > 0.85


def test_an_unstripped_clustered_file_deploys(clustered, digits_data, tmp_path):
    """Saved before strip_clustering, the file holds edgekit's registered layer: `edgekit
    deploy` loads it in a fresh worker (the registry imports edgekit.keras.clustering3)."""
    path = deploy_saved(clustered, digits_data[0].x[:32], tmp_path)
    int8 = load_tflite(next((tmp_path / "out").glob("**/*_int8.tflite")))
    assert max(_per_channel_counts(int8)) <= CLUSTERS  # the converter folded the kernels
    reloaded = keras.saving.load_model(path)
    assert sum(isinstance(layer, ClusterWeights) for layer in reloaded.layers) == len(KERNELS)


# lottery tickets --------------------------------------------------------------------------


def test_a_weight_ticket_of_a_keras3_model_is_keras3_sparse_and_trains(digits_data):
    keras.utils.set_random_seed(0)
    train, _, val = digits_data
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="label")(x))
    ticket, table = ek.find_ticket(
        model, train.x, train.y, rounds=2, epochs=3, rewind_epoch=1, validation_data=(val.x, val.y)
    )
    assert isinstance(ticket, keras.Model) and isinstance(ticket.optimizer, keras.Optimizer)
    kernels = [to_numpy(ticket.get_layer(name).kernel) for name in ("conv", "hidden", "label")]
    zeros = sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)
    assert zeros == pytest.approx(1 - 0.8**2, abs=0.01)  # 20 % of the survivors, twice
    assert [r.remaining for r in table.rounds] == pytest.approx([1.0, 0.8, 0.64], abs=0.01)
    assert table.rounds[-1].accuracy > 0.7
    history = ticket.fit(train.x, train.y, epochs=1, batch_size=BATCH, verbose=0)
    assert history.history["accuracy"][-1] > 0.7


def test_a_keras3_channel_ticket_is_a_smaller_keras3_model(digits_data):
    """granularity="channel": the channel graph and the rebuild are Keras 3's own too."""
    from edgekit.keras.channels import keras_macs

    keras.utils.set_random_seed(0)
    train, _, val = digits_data
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.Flatten()(keras.layers.MaxPooling2D()(x))
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="label")(x))
    before = keras_macs(model)
    ticket, table = ek.find_ticket(
        model,
        train.x,
        train.y,
        rounds=1,
        epochs=3,
        rewind_epoch=1,
        granularity="channel",
        validation_data=(val.x, val.y),
    )
    assert type(ticket).__module__.startswith("keras.")
    assert keras_macs(ticket) < before
    assert table.rounds[-1].accuracy > 0.5  # 3 epochs from the rewind point
