"""Structured compression: channel pruning (graph, criteria, budgets, schedule), sparse
regularisation, low-rank factorisation and lottery tickets, on real trained models where it
matters (the reference ResNet-8 with its residual adds) and on built nets where the answer is
known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import masked_matches_rebuilt, tf_keras

from edgekit import keras as ek
from edgekit.errors import UsageError
from edgekit.keras.channel_pruning import ChannelPruner
from edgekit.keras.channels import ChannelGraph, keras_macs

keras = tf_keras()
layers = keras.layers


def _randomize_bn(model, seed=0):
    """Trained-looking BatchNormalization statistics (fresh ones are the identity)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, n),
                    rng.normal(0, 0.1, n),
                    rng.normal(0, 0.1, n),
                    rng.uniform(0.5, 2.0, n),
                ]
            )
    return model


def branchy_net(seed=0):
    """Conv/BN/ReLU, depthwise, a residual add, a concatenate, flatten → dense, softmax."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12, 12, 3))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(inputs)))
    x = layers.ReLU()(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same")(x)))
    a = layers.BatchNormalization(name="bn_a")(layers.Conv2D(16, 1, name="conv_a")(x))
    b = layers.BatchNormalization(name="bn_b")(
        layers.Conv2D(16, 3, padding="same", name="conv_b")(x)
    )
    x = layers.ReLU()(layers.Add()([a, b]))
    c = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_c")(x)
    x = layers.Concatenate()([x, c])
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="conv_d")(x)
    x = layers.Dense(10, activation="relu", name="hidden")(layers.Flatten()(x))
    outputs = layers.Dense(4, activation="softmax", name="out")(x)
    return _randomize_bn(keras.Model(inputs, outputs, name="branchy"), seed)


def sequential_net(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((10, 10, 2)),
            layers.Conv2D(12, 3, activation="relu"),
            layers.Reshape((64, 12)),
            layers.Dense(6, activation="relu"),
            layers.GlobalAveragePooling1D(),
            layers.Dense(3),
        ],
        name="seq",
    )


# --- the channel graph ------------------------------------------------------------------------


def test_residual_branches_share_one_group_and_lose_the_same_channels(resnet8):
    model = resnet8.model(keras)
    graph = ChannelGraph(model)
    joined = [g for g in graph.prunable() if len(g.producers) > 1]
    assert len(joined) == 3  # one per residual stage
    stem = next(g for g in joined if "stem" in g.producers)
    assert {"stem", "s1_conv2", "s1_add"} <= set(stem.producers + stem.members)
    smaller = ek.prune_channels(model, ratio=0.5, criterion="l1")
    by_name = {layer.name: layer for layer in smaller.layers}
    assert by_name["stem"].filters == by_name["s1_conv2"].filters == 8
    assert by_name["s2_shortcut"].filters == by_name["s2_conv2"].filters == 16
    assert keras_macs(smaller) < 0.3 * keras_macs(model)


@pytest.mark.parametrize("build", [branchy_net, sequential_net], ids=["functional", "sequential"])
def test_the_masked_model_computes_what_the_rebuilt_one_does(build):
    """Zeroing the pruned channels in place and removing them give the same function: every
    slice (residual, concatenate offsets, flatten rows, reshape) lines up."""
    model = build()
    x = np.random.default_rng(1).normal(size=(16, *model.input_shape[1:])).astype(np.float32)
    macs = keras_macs(model)
    smaller = masked_matches_rebuilt(model, x, "l2", 0.5, atol=2e-5, min_channels=2)
    assert keras_macs(smaller) < macs


def test_the_trained_resnet_pruned_in_place_and_rebuilt_agree(resnet8):
    model = resnet8.model(keras)
    masked_matches_rebuilt(model, resnet8.validation.x[:64], "fpgm", 0.4, atol=1e-5)


def test_layers_it_cannot_follow_are_named_and_the_rest_is_still_pruned():
    class Scale(layers.Layer):
        def call(self, x):
            return x * 2.0

    inputs = keras.Input((8, 8, 4))
    x = layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = layers.Lambda(lambda t: t * 0.5, name="halve")(x)
    x = layers.Conv2D(8, 3, padding="same", groups=2, name="grouped")(x)
    x = Scale(name="scale")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="c3")(x)
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    smaller, report = ek.prune_channels(model, ratio=0.5, return_report=True)
    reasons = " | ".join(report.skipped)
    assert "halve (Lambda)" in reasons and "opaque" in reasons
    assert "grouped (Conv2D): a grouped conv (2 groups)" in reasons
    assert "scale (Scale)" in reasons
    by_name = {layer.name: layer for layer in smaller.layers}
    assert by_name["c1"].filters == 8 and by_name["grouped"].filters == 8  # left whole
    assert by_name["c2"].filters == 8 and by_name["c3"].filters == 8  # pruned


def test_nothing_prunable_is_a_clear_error():
    model = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
    with pytest.raises(UsageError, match="no channel group can be pruned"):
        ek.prune_channels(model, ratio=0.5)


# --- criteria: the answer is known by construction ---------------------------------------------


def _zeroed_net():
    """Conv(8) → BN → ReLU → Conv(8) → GAP → Dense, with channels 2 and 5 of the first conv
    zeroed through the BN (filter, bias, γ, β, moving mean all 0): they carry nothing."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", name="first")(inputs)
    x = layers.ReLU()(layers.BatchNormalization(name="bn")(x))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(x)))
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    model = _randomize_bn(keras.Model(inputs, outputs), 3)
    kernel, bias = model.get_layer("first").get_weights()
    kernel[..., [2, 5]] = 0.0
    bias[[2, 5]] = 0.0
    model.get_layer("first").set_weights([kernel, bias])
    gamma, beta, mean, var = model.get_layer("bn").get_weights()
    gamma[[2, 5]] = beta[[2, 5]] = mean[[2, 5]] = 0.0
    model.get_layer("bn").set_weights([gamma, beta, mean, var])
    return model


@pytest.mark.parametrize("criterion", ["l1", "l2", "bn_gamma", "taylor", "fisher"])
def test_zeroed_channels_rank_last(criterion):
    model = _zeroed_net()
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype(np.float32)
    pruner = ChannelPruner(model, criterion=criterion, data=x, min_channels=1)
    group = next(g for g in pruner.groups if g.producers == ["first"])
    scores = pruner.scores()[group.id]
    assert set(np.argsort(scores)[:2]) == {2, 5}
    assert scores[[2, 5]].max() < 1e-6 < np.delete(scores, [2, 5]).min()
    keep = pruner.plan(0.25, pruner.scores())
    assert sorted(keep[group.id]) == [0, 1, 3, 4, 6, 7]


def test_fpgm_ranks_the_filter_at_the_geometric_median_last():
    """Filters c ± p_i around a centre filter c: by symmetry c is the geometric median, the
    most replaceable, and FPGM ranks it last. One p_0 = 0.6·c makes c − p_0 = 0.4·c the
    smallest filter, so L1 ranks a different one last: the test tells the criteria apart."""
    rng = np.random.default_rng(0)
    centre = rng.normal(size=(3, 3, 3))
    offsets = [0.6 * centre, 0.3 * rng.normal(size=(3, 3, 3)), 0.3 * rng.normal(size=(3, 3, 3))]
    filters = [centre + p for p in offsets] + [centre - p for p in offsets] + [centre]
    kernel = np.stack(filters, axis=-1).astype(np.float32)
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(7, 3, padding="same", use_bias=False, name="conv")(inputs)
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(layers.ReLU()(x)))
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").set_weights([kernel])
    from edgekit.keras.importance import weight_scores

    assert np.argmin(weight_scores(model.get_layer("conv"), "fpgm")) == 6
    assert np.argmin(weight_scores(model.get_layer("conv"), "l1")) == 3
    pruner = ChannelPruner(model, criterion="fpgm", min_channels=1)
    keep = pruner.plan(1 / 7, pruner.scores())
    assert 6 not in keep[pruner.groups[0].id] and len(keep[pruner.groups[0].id]) == 6


# --- budgets, tiles and the report --------------------------------------------------------------


def test_mac_budget_tile_and_floor(resnet8):
    model = resnet8.model(keras)
    before = keras_macs(model)
    smaller, report = ek.prune_channels(
        model, target_macs=before // 2, criterion="l2", round_to=8, return_report=True
    )
    assert keras_macs(smaller) <= before // 2 and report.macs_after == keras_macs(smaller)
    assert report.mac_ratio > 0.25  # the least pruning that fits, not the most
    assert report.tile == 8 and all(g["after"] % 8 == 0 for g in report.groups)
    floored = ek.prune_channels(model, ratio=0.9, min_channels=6, criterion="l1")
    assert min(la.filters for la in floored.layers if isinstance(la, layers.Conv2D)) >= 6
    tiled = ek.prune_channels(model, ratio=0.3, target="cortex-m4", return_report=True)[1]
    assert tiled.tile == 4 and all(g["after"] % 4 == 0 for g in tiled.groups)
    # an Ethos-U NPU's granularity: Vela's 8-channel OFM micro-block, from the profile
    npu = ek.prune_channels(model, ratio=0.3, target="ethos-u55-128", return_report=True)[1]
    assert npu.tile == 8 and all(g["after"] % 8 == 0 for g in npu.groups)
    with pytest.raises(UsageError, match="exactly one of"):
        ek.prune_channels(model, ratio=0.5, target_macs=100)
    with pytest.raises(UsageError, match="unknown criterion 'magic'"):
        ek.prune_channels(model, ratio=0.5, criterion="magic")
    with pytest.raises(UsageError, match="needs data"):
        ek.prune_channels(model, ratio=0.5, criterion="taylor")


def test_global_scope_prunes_layers_unevenly(resnet8):
    model = resnet8.model(keras)
    report = ek.prune_channels(
        model, ratio=0.4, scope="global", criterion="l2", min_channels=1, return_report=True
    )[1]
    shares = {g["producers"][0]: g["after"] / g["before"] for g in report.groups}
    assert max(shares.values()) - min(shares.values()) > 0.1


def test_latency_budget_is_measured_with_the_harness(resnet8):
    """On LiteRT's builtin int8 kernels (this host's XNNPACK uses AMX, whose 64-channel tile
    holds every ResNet-8 layer whole: pruning buys nothing there; docs/benchmarks.md)."""
    from edgekit.errors import UsageError
    from edgekit.keras.channel_pruning import _latency_ms

    model = resnet8.model(keras)
    x = resnet8.calibration.x[:32]
    for attempt in range(3):  # a baseline timed in a quiet moment of a shared host can be
        baseline = _latency_ms(model, x, "none")  # out of reach of every candidate timed later
        try:
            smaller, report = ek.prune_channels(
                model, target_latency_ms=0.7 * baseline, data=x, delegate="none", return_report=True
            )
            break
        except UsageError as error:
            assert "measures" in str(error) and "ms" in str(error)
            if attempt == 2:
                raise
    assert report.latency_ms is not None and report.latency_ms <= 0.7 * baseline
    assert report.macs_after < report.macs_before


# --- the schedule callback ---------------------------------------------------------------------


def test_schedule_prunes_in_steps_during_fit_and_rebuilds_after(resnet8):
    from edgekit.examples.zoo import splits

    train = splits("resnet8")[0]
    model = resnet8.model(keras)
    before = keras_macs(model)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", ["accuracy"])
    schedule = ek.callbacks.ChannelPruningSchedule(
        target_macs=0.5, epochs=[0, 1], criterion="l1", verbose=0
    )
    history = model.fit(
        train.x[:512],
        train.y[:512],
        epochs=3,
        batch_size=64,
        verbose=0,
        validation_data=(resnet8.validation.x, resnet8.validation.y),
        callbacks=[schedule],
    )
    macs = history.history["pruning/macs"]
    assert before > macs[0] > macs[1] == macs[2] and macs[1] <= before / 2
    assert len(schedule.history) == 3 and "val_accuracy" in schedule.history[-1]
    assert "| epoch | macs |" in schedule.table()
    for variable, mask in schedule._masks:  # still zero after the last batch
        assert not np.any(variable.numpy()[mask.numpy() == 0])
    smaller = schedule.pruned_model()
    assert keras_macs(smaller) == macs[-1]
    x = resnet8.validation.x[:64]
    np.testing.assert_allclose(
        smaller.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5
    )
    assert history.history["val_accuracy"][-1] > 0.5  # trained on, not broken


def test_schedule_zeroes_the_optimizer_state_of_removed_channels():
    from edgekit.keras.channel_schedule import optimizer_slots

    model = branchy_net()
    x = np.random.default_rng(0).normal(size=(64, 12, 12, 3)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 4, 64)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)  # the slots hold momentum now
    schedule = ek.callbacks.ChannelPruningSchedule(ratio=0.5, epochs=[0], min_channels=2, verbose=0)
    schedule.set_model(model)
    schedule.on_train_begin()
    schedule.on_epoch_begin(0)
    checked = 0
    for variable, mask in schedule._masks:
        for slot in optimizer_slots(model.optimizer, variable):
            assert not np.any(slot.numpy()[mask.numpy() == 0])
            checked += 1
    assert checked >= 2 * len(schedule._masks) - 2  # Adam: m and v for (almost) every one


# --- sparse regularisation ------------------------------------------------------------------


def test_group_lasso_value_and_sparsify_attaches_the_penalties(resnet8):
    value = float(ek.GroupLasso(0.5)(np.ones((3, 3, 2, 4), np.float32)))
    assert value == pytest.approx(0.5 * 4 * np.sqrt(18), rel=1e-5)
    model = resnet8.model(keras)
    sparse = ek.sparsify(model, filters=1e-3, gamma=1e-3)
    x = resnet8.validation.x[:8]
    np.testing.assert_allclose(sparse.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    producers = sum(len(g.producers) for g in ChannelGraph(model).prunable())
    assert len(sparse.losses) == 2 * producers  # a kernel and a γ term per prunable producer


def test_proximal_sparsity_zeroes_channels_that_then_rank_last(digits_data, tmp_path):
    train, _, val = digits_data
    keras.utils.set_random_seed(0)
    inputs = keras.Input(train.x.shape[1:])
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(24, 3, padding="same")(inputs)))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(24, 3, padding="same")(x)))
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(x))
    model = keras.Model(inputs, outputs)
    before = keras.models.clone_model(model)
    before.set_weights(model.get_weights())
    model.compile(
        keras.optimizers.SGD(0.05, momentum=0.9), "sparse_categorical_crossentropy", ["accuracy"]
    )
    prox = ek.callbacks.ProximalSparsity(filters=0.0, gamma=0.3, recalibrate=train.x[:512])
    history = model.fit(
        train.x,
        train.y,
        epochs=4,
        batch_size=64,
        verbose=0,
        callbacks=[prox],
        validation_data=(val.x, val.y),
    )
    zero = history.history["sparsity/zero_gammas"][-1]
    assert zero >= 3  # exact zeros, not small values
    assert model.evaluate(val.x, val.y, verbose=0)[1] > 0.85  # statistics re-estimated
    pruner = ChannelPruner(model, criterion="bn_gamma", min_channels=1)
    scores = np.concatenate(list(pruner.scores().values()))
    assert np.sum(scores == 0) == zero
    png = ek.gamma_histogram({"before": before, "after": model}, tmp_path / "gamma.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_recalibrating_batchnorm_repairs_stale_statistics(resnet8):
    model = resnet8.model(keras)
    smaller = ek.prune_channels(model, ratio=0.5, criterion="l1")
    smaller.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    val = (resnet8.validation.x, resnet8.validation.y)
    stale = smaller.evaluate(*val, verbose=0)[1]
    assert ek.recalibrate_batchnorm(smaller, resnet8.calibration.x) == 9
    assert smaller.evaluate(*val, verbose=0)[1] > stale + 0.05
    norm = smaller.get_layer("stem_bn")
    probe = keras.Model(smaller.inputs, norm.input)
    values = probe(resnet8.calibration.x).numpy().reshape(-1, norm.moving_mean.shape[0])
    np.testing.assert_allclose(norm.moving_mean.numpy(), values.mean(0), rtol=1e-3, atol=1e-4)


# --- low-rank ------------------------------------------------------------------------------


def _low_rank_conv(method: str):
    """A 3×3 conv, stride 2, "same", whose kernel is exactly low rank for `method`."""
    rng = np.random.default_rng(0)
    cin, cout = 16, 24
    if method == "separable":  # rank 3 in the [(kh, cin), (kw, cout)] unfolding
        v, h = rng.normal(size=(3, cin, 3)), rng.normal(size=(3, 3, cout))
        kernel = np.einsum("icr,jro->ijco", v, h)
    else:  # Tucker-2 ranks (4, 5) along the channel modes
        core = rng.normal(size=(3, 3, 4, 5))
        kernel = np.einsum(
            "ijab,ca,ob->ijco", core, rng.normal(size=(cin, 4)), rng.normal(size=(cout, 5))
        )
    inputs = keras.Input((16, 16, cin))
    x = layers.Conv2D(cout, 3, strides=2, padding="same", activation="relu", name="big")(inputs)
    outputs = layers.Dense(3)(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    model.get_layer("big").set_weights(
        [kernel.astype(np.float32), rng.normal(size=cout).astype(np.float32)]
    )
    return model


@pytest.mark.parametrize("method,ranks", [("separable", (3,)), ("tucker2", (4, 5))])
def test_exactly_low_rank_convs_factorise_exactly(method, ranks):
    model = _low_rank_conv(method)
    smaller, report = ek.factorize(
        model, energy=0.9999, layers=["big"], method=method, return_report=True
    )
    (layer,) = report.layers
    assert layer.method == method and layer.ranks == ranks and layer.energy > 0.9999
    assert layer.macs_after < layer.macs_before and report.macs_after < report.macs_before
    x = np.random.default_rng(1).normal(size=(8, 16, 16, 16)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(
        smaller.predict(x, verbose=0), expected, atol=1e-3 * np.abs(expected).max()
    )


def test_dense_svd_budget_and_refusals():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            layers.Dense(128, activation="relu", name="wide"),
            layers.Dense(10, name="head"),
        ]
    )
    smaller, report = ek.factorize(model, budget=0.5, return_report=True)
    wide = next(f for f in report.layers if f.name == "wide")
    assert wide.method == "svd" and wide.macs_after <= 0.5 * wide.macs_before
    assert isinstance(smaller.get_layer("wide_lr"), layers.Dense)
    assert smaller.get_layer("wide").activation.__name__ == "relu"
    assert "| wide | svd |" in report.table()
    with pytest.raises(UsageError, match="layer head: refused, the factorised layer would cost"):
        ek.factorize(model, energy=0.999, layers=["head"])
    with pytest.raises(UsageError, match="no layer can be factorised with fewer MACs"):
        ek.factorize(model, energy=0.999)  # random weights are full rank
    with pytest.raises(UsageError, match="exactly one of energy= or budget="):
        ek.factorize(model)
    with pytest.raises(UsageError, match="svd is for Dense"):
        ek.factorize(_low_rank_conv("separable"), budget=0.5, layers=["big"], method="svd")


def test_factorised_resnet_recovers_with_fine_tuning(resnet8):
    from edgekit.examples.zoo import splits

    train = splits("resnet8")[0]
    model = resnet8.model(keras)
    smaller = ek.factorize(model, budget=0.6, layers=["s2_conv2", "s3_conv2", "logits"])
    smaller.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    val = (resnet8.validation.x, resnet8.validation.y)
    before = smaller.evaluate(*val, verbose=0)[1]
    ek.fine_tune(smaller, train.x[:1500], train.y[:1500], epochs=2, teacher=model)
    after = smaller.evaluate(*val, verbose=0)[1]
    assert after > before + 0.02 and model.trainable  # the teacher is left as it was


# --- lottery tickets ---------------------------------------------------------------------------


def _tiny_cnn():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )


@pytest.mark.parametrize("granularity", ["weight", "channel"])
def test_lottery_ticket_rounds(granularity, digits_data):
    train, _, val = digits_data
    ticket, table = ek.find_ticket(
        _tiny_cnn(),
        train.x,
        train.y,
        rounds=2,
        epochs=3,
        rewind_epoch=1,
        granularity=granularity,
        prune_per_round=0.3,
        learning_rate=3e-3,
        validation_data=(val.x, val.y),
    )
    assert [r.round for r in table.rounds] == [0, 1, 2]
    # The dense net reaches 94 % on the digits and every ticket stays near it (94-95 %
    # by weight, 93-94 % by channel, deterministic); 0.9 catches a broken round.
    assert min(r.accuracy for r in table.rounds) > 0.9
    assert f"| round | {granularity}s left |" in table.markdown()
    if granularity == "weight":
        assert table.rounds[2].remaining == pytest.approx(0.49, abs=0.02)
        kernels = [la.kernel.numpy() for la in ticket.layers if hasattr(la, "kernel")]
        zeros = sum(int(np.sum(k == 0)) for k in kernels) / sum(k.size for k in kernels)
        assert zeros == pytest.approx(0.51, abs=0.02)
        assert table.rounds[2].params < table.rounds[0].params
    else:
        assert table.rounds[2].macs < table.rounds[1].macs < table.rounds[0].macs
        assert keras_macs(ticket) == table.rounds[2].macs
    final = ticket.evaluate(val.x, val.y, verbose=0)[1]
    assert final == pytest.approx(table.rounds[2].accuracy, abs=1e-6)  # the table's last row


def test_ticket_rewinding_to_initialisation_restarts_from_theta_zero(digits_data, monkeypatch):
    """rewind_epoch=0 with one epoch per run: every round restarts from θ₀ under the mask,
    so the surviving first-layer weights after round 1 equal θ₀ trained one epoch, not the
    dense run's weights trained further."""
    train, _, _ = digits_data
    model = _tiny_cnn()
    theta0 = [w.copy() for w in model.get_weights()]
    with pytest.raises(UsageError, match="rewind_epoch < epochs"):
        ek.find_ticket(model, train.x, train.y, epochs=2, rewind_epoch=2)
    starts = []  # the weights each training run begins from (recorded, nothing replaced)
    import edgekit.keras.masks as masks

    original = masks.MaskCallback.on_train_begin

    def recording(self, logs=None):
        original(self, logs)
        starts.append([w.copy() for w in self.model.get_weights()])

    monkeypatch.setattr(masks.MaskCallback, "on_train_begin", recording)
    ek.find_ticket(model, train.x[:256], train.y[:256], rounds=1, epochs=1, rewind_epoch=0)
    dense_start, round_start = starts
    assert all(np.array_equal(a, b) for a, b in zip(dense_start, theta0, strict=True))
    kernel0 = theta0[0]
    survived = round_start[0] != 0
    np.testing.assert_array_equal(round_start[0][survived], kernel0[survived])


# --- everything deploys ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pruned_resnet8(resnet8):
    model = resnet8.model(keras)
    smaller = ek.prune_channels(model, target_macs=keras_macs(model) // 2, criterion="l2")
    ek.recalibrate_batchnorm(smaller, resnet8.calibration.x)
    return smaller


@pytest.mark.slow
@pytest.mark.parametrize("target", ["raspberry-pi-4", "android-arm64", "coral-usb", "cortex-m4"])
def test_a_channel_pruned_resnet_deploys_to_every_family(pruned_resnet8, resnet8, target, tmp_path):
    import edgekit

    bundle = edgekit.deploy(
        pruned_resnet8,
        target,
        calibration=resnet8.calibration.x,
        validation=(resnet8.validation.x, resnet8.validation.y),
        out=tmp_path / "b",
    )
    report = bundle.report
    assert bundle.ok, [c.detail for c in report.checks if not c.ok]
    assert report.metrics.macs == pytest.approx(keras_macs(pruned_resnet8), rel=0.02)
    m = report.metrics  # pruned without fine-tuning: what matters is that int8 keeps it
    assert m.top1_agreement > 0.9 and abs(m.deployed_accuracy - m.float_accuracy) < 0.03
    if target == "cortex-m4":
        assert report.metrics.host_latency_ms is None and report.metrics.tensor_arena_bytes
    else:
        assert report.metrics.host_latency_ms > 0
        assert report.data["host_latency"]["delegate"] == "xnnpack"
    assert ("host_latency_ms" in (bundle.path / "report.md").read_text()) != (target == "cortex-m4")


@pytest.mark.slow
def test_factorised_and_ticket_models_deploy(resnet8, digits_data, tmp_path):
    import edgekit

    model = resnet8.model(keras)
    thin = ek.factorize(model, budget=0.6, layers=["s2_conv2", "s3_conv2", "logits"])
    bundle = edgekit.deploy(
        thin,
        "cortex-m7",
        calibration=resnet8.calibration.x,
        validation=(resnet8.validation.x, resnet8.validation.y),
        out=tmp_path / "thin",
    )
    assert bundle.ok and bundle.report.metrics.macs < keras_macs(model)
    train, calib, val = digits_data
    ticket, _ = ek.find_ticket(
        _tiny_cnn(), train.x, train.y, rounds=1, epochs=2, rewind_epoch=1, granularity="channel"
    )
    bundle = edgekit.deploy(
        ticket, "coral-usb", calibration=calib.x, validation=(val.x, val.y), out=tmp_path / "ticket"
    )
    assert bundle.ok and bundle.report.metrics.macs == pytest.approx(keras_macs(ticket), rel=0.02)
