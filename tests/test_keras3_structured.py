"""Structured compression natively on Keras 3: channel pruning (one shot and in steps during
Keras 3's `fit`), low-rank factorisation and sparse regularisation take a Keras 3 model and
return a Keras 3 model that trains, saves as `.keras`, reloads and deploys."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import masked_matches_rebuilt

import edgekit
from edgekit import keras as ek
from edgekit.errors import UsageError
from edgekit.keras.channels import ChannelGraph, keras_macs

layers = keras.layers
BATCH = 32


def _cnn() -> keras.Model:
    """Conv/BN/ReLU, a depthwise-separable branch joined by a residual Add, a strided conv,
    global average pooling and two Dense layers."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(16, 3, padding="same", name="conv1")(inputs)
    x = layers.ReLU(name="relu1")(layers.BatchNormalization(momentum=0.9, name="bn1")(x))
    y = layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = layers.ReLU()(layers.BatchNormalization(momentum=0.9, name="bn_dw")(y))
    y = layers.BatchNormalization(momentum=0.9, name="bn_pw")(layers.Conv2D(16, 1, name="pw")(y))
    x = layers.ReLU()(layers.Add(name="add")([x, y]))
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(64, activation="relu", name="hidden")(x)
    outputs = layers.Dense(10, activation="softmax", name="label")(x)
    return keras.Model(inputs, outputs, name="digits3_resnet")


def _compile(model: keras.Model, optimizer: object = "adam") -> keras.Model:
    model.compile(optimizer, "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _copy(model: keras.Model) -> keras.Model:
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _is_keras3(model: object) -> bool:
    return isinstance(model, keras.Model) and type(model).__module__.startswith("keras.")


def _reloads(model: keras.Model, path, x: np.ndarray) -> keras.Model:
    """Save as .keras, reload with Keras 3's own loader, check it computes the same."""
    model.save(path)
    back = keras.saving.load_model(path)
    assert _is_keras3(back)
    np.testing.assert_allclose(back.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    return back


@pytest.fixture(scope="module")
def trained(digits_data):
    train, _, val = digits_data
    model = _compile(_cnn())
    model.fit(train.x, train.y, epochs=8, batch_size=BATCH, verbose=0)
    assert model.evaluate(val.x, val.y, verbose=0)[1] > 0.85
    return model


def test_the_graph_of_a_keras3_model_joins_the_residual(trained):
    graph = ChannelGraph(trained)
    prunable = {tuple(g.producers): g for g in graph.prunable()}
    assert set(prunable) == {("conv1", "pw"), ("conv2",), ("hidden",)}
    residual = prunable[("conv1", "pw")]
    assert {"bn1", "dw", "bn_dw", "bn_pw", "add"} <= set(residual.members)
    assert residual.size == 16


@pytest.mark.parametrize("criterion", ["l1", "taylor"])
def test_prune_channels_keras3_in_keras3_out(trained, digits_data, criterion, tmp_path):
    train, calib, val = digits_data
    before = [w.copy() for w in trained.get_weights()]
    data = (calib.x, None) if criterion == "taylor" else None
    smaller, report = ek.prune_channels(
        trained, ratio=0.5, criterion=criterion, data=data, return_report=True
    )
    assert _is_keras3(smaller)
    for old, new in zip(before, trained.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # the user's model is left as it was
    assert smaller.get_layer("conv1").filters == smaller.get_layer("pw").filters == 8
    assert smaller.get_layer("dw").get_weights()[0].shape == (3, 3, 8, 1)
    assert keras_macs(smaller) < 0.5 * keras_macs(trained) == 0.5 * report.macs_before
    assert smaller.output_shape == trained.output_shape == (None, 10)
    ek.recalibrate_batchnorm(smaller, train.x[:512])
    history = ek.fine_tune(
        smaller, train.x, train.y, epochs=8, learning_rate=3e-3, batch_size=BATCH
    )
    assert len(history.history["accuracy"]) == 8  # Keras 3's fit ran
    assert smaller.evaluate(val.x, val.y, verbose=0)[1] > 0.85  # 0.1 before fine-tuning
    _reloads(smaller, tmp_path / "pruned.keras", val.x[:32])


def test_masked_keras3_model_computes_what_the_rebuilt_one_does(trained, digits_data):
    smaller = masked_matches_rebuilt(
        _copy(trained), digits_data[2].x[:64], "fpgm", 0.4, atol=1e-5, min_channels=2
    )
    assert _is_keras3(smaller) and keras_macs(smaller) < keras_macs(trained)


def test_keras3_sequential_models_are_pruned_and_factorised_too():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((10, 10, 2)),
            layers.Conv2D(12, 3, activation="relu", name="conv"),
            layers.Reshape((64, 12), name="reshape"),
            layers.Dense(32, activation="relu", name="wide"),
            layers.GlobalAveragePooling1D(),
            layers.Dense(3, name="head"),
        ]
    )
    x = np.random.default_rng(1).normal(size=(16, 10, 10, 2)).astype(np.float32)
    smaller = masked_matches_rebuilt(model, x, "l2", 0.5, atol=1e-5, min_channels=2)
    assert isinstance(smaller, keras.Sequential) and smaller.get_layer("conv").filters == 6
    thin = ek.factorize(model, budget=0.5, layers=["wide"])
    assert isinstance(thin, keras.Sequential)
    assert [layer.name for layer in thin.layers][:4] == ["conv", "reshape", "wide_lr", "wide"]


def test_subclassed_keras3_models_are_refused_in_one_line():
    class Subclassed(keras.Model):
        def call(self, x):
            return x

    for compress in (
        lambda m: ek.prune_channels(m, ratio=0.5),
        ek.sparsify,
        lambda m: ek.factorize(m, energy=0.9),
    ):
        with pytest.raises(UsageError, match="subclassed model; structured compression edits"):
            compress(Subclassed())


def test_schedule_prunes_during_keras3_fit_and_deploys(trained, digits_data, tmp_path):
    from edgekit.keras.channel_schedule import optimizer_slots

    train, calib, val = digits_data
    model = _compile(_copy(trained), keras.optimizers.Adam(3e-3))
    before = keras_macs(model)
    schedule = ek.callbacks.ChannelPruningSchedule(
        ratio=0.5, epochs=[0, 1], criterion="l1", verbose=0
    )
    assert isinstance(schedule, keras.callbacks.Callback)
    history = model.fit(
        train.x,
        train.y,
        epochs=4,
        batch_size=BATCH,
        verbose=0,
        validation_data=(val.x, val.y),
        callbacks=[schedule],
    )
    macs = history.history["pruning/macs"]
    assert before > macs[0] > macs[1] == macs[2] == macs[3]
    slots = 0
    for variable, mask in schedule._masks:  # zero after the last batch, with Adam's m and v
        assert not np.any(np.asarray(variable)[mask.numpy() == 0])
        for slot in optimizer_slots(model.optimizer, variable):
            assert not np.any(np.asarray(slot)[mask.numpy() == 0])
            slots += 1
    assert slots == 2 * len(schedule._masks)
    smaller = schedule.pruned_model()
    assert _is_keras3(smaller) and keras_macs(smaller) == macs[-1]
    x = val.x[:64]
    np.testing.assert_allclose(
        smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    assert history.history["val_accuracy"][-1] > 0.8  # trained on, not broken
    reloaded = _reloads(smaller, tmp_path / "scheduled.keras", x)
    bundle = edgekit.deploy(
        reloaded,
        "raspberry-pi-4",
        calibration=calib.x[:64],
        out=tmp_path / "out",
        force=True,
        analysis=False,
    )
    assert bundle.ok, [c.detail for c in bundle.report.failed_checks()]
    assert bundle.report.model["kind"] == "keras3"


def _low_rank(model: keras.Model) -> keras.Model:
    """A copy whose `hidden` kernel has rank 4 and whose `conv2` kernel has rank 3 in the
    [(kh, cin), (kw, cout)] unfolding: what factorize at 99 % energy must find."""
    model = _copy(model)
    kernel, bias = model.get_layer("hidden").get_weights()
    u, s, vt = np.linalg.svd(kernel, full_matrices=False)
    model.get_layer("hidden").set_weights([(u[:, :4] * s[:4]) @ vt[:4], bias])
    kernel, bias = model.get_layer("conv2").get_weights()
    kh, kw, cin, cout = kernel.shape
    u, s, vt = np.linalg.svd(kernel.transpose(0, 2, 1, 3).reshape(kh * cin, kw * cout))
    unfolded = (u[:, :3] * s[:3]) @ vt[:3]
    low = unfolded.reshape(kh, cin, kw, cout).transpose(0, 2, 1, 3)
    model.get_layer("conv2").set_weights([low, bias])
    return model


def test_factorize_keras3_approximates_the_original(trained, digits_data, tmp_path):
    x = digits_data[2].x[:128]
    model = _low_rank(trained)
    thin, report = ek.factorize(model, energy=0.99, return_report=True)
    assert _is_keras3(thin)
    assert {(f.name, f.method, f.ranks) for f in report.layers} == {
        ("conv2", "separable", (3,)),
        ("hidden", "svd", (4,)),
    }
    assert [type(thin.get_layer(n)).__name__ for n in ("conv2_v", "conv2", "hidden_lr")] == [
        "Conv2D",
        "Conv2D",
        "Dense",
    ]
    assert keras_macs(thin) < keras_macs(model)
    expected = model.predict(x, verbose=0)
    error = np.abs(thin.predict(x, verbose=0) - expected).max() / np.abs(expected).max()
    assert error < 1e-3
    _reloads(thin, tmp_path / "thin.keras", x[:32])


def test_sparsify_and_proximal_sparsity_on_keras3(trained, digits_data, tmp_path):
    from edgekit.models import EDGEKIT_KERAS3_CLASSES, custom_class_names

    train, _, val = digits_data
    x = val.x[:32]
    sparse = ek.sparsify(trained, filters=1e-4, gamma=1e-4)
    assert _is_keras3(sparse)
    np.testing.assert_allclose(
        sparse.predict(x, verbose=0), trained.predict(x, verbose=0), atol=1e-6
    )
    producers = sum(len(g.producers) for g in ChannelGraph(trained).prunable())
    assert producers == 4  # conv1, pw, conv2, hidden; BNs follow the first two
    assert len(sparse.losses) == producers + 2  # a kernel term each, a γ term per BN
    assert isinstance(sparse.get_layer("conv1").kernel_regularizer, ek.GroupLasso)
    _compile(sparse, keras.optimizers.SGD(0.05, momentum=0.9))
    prox = ek.callbacks.ProximalSparsity(filters=0.0, gamma=3.0, recalibrate=train.x[:512])
    assert isinstance(prox, keras.callbacks.Callback)
    history = sparse.fit(train.x, train.y, epochs=2, batch_size=64, verbose=0, callbacks=[prox])
    zero = history.history["sparsity/zero_gammas"][-1]
    assert zero >= 3  # exact zeros
    gammas = np.concatenate([np.asarray(sparse.get_layer(n).gamma) for n in ("bn1", "bn_pw")])
    assert np.sum(gammas == 0) == zero
    sparse.save(tmp_path / "sparse.keras")
    names = custom_class_names(tmp_path / "sparse.keras")
    assert names == ["edgekit>GroupLasso"] and names[0] in EDGEKIT_KERAS3_CLASSES
    _reloads(sparse, tmp_path / "sparse.keras", x)
