"""TargetFitCheck: does it still fit? Asked at epoch end, without touching the trained model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from edgekit import keras as ek
from edgekit.errors import EdgekitError
from edgekit.targets import MemoryBudget, load_target


def test_target_fit_check_logs_and_leaves_the_model_alone(base_model, digits_data):
    train, calib, _ = digits_data
    pruned = ek.prune_low_magnitude(base_model, ek.ConstantSparsity(0.5, 0, frequency=1))
    pruned.compile("adam", "sparse_categorical_crossentropy")
    pruned.fit(
        train.x[:64],
        train.y[:64],
        epochs=1,
        verbose=0,
        callbacks=[ek.callbacks.UpdatePruningStep()],
    )
    check = ek.callbacks.TargetFitCheck("cortex-m4", calib.x)
    check.set_model(pruned)
    before = [w.copy() for w in pruned.get_weights()]
    logs: dict = {}
    check.on_epoch_end(0, logs)
    assert all(np.array_equal(a, b) for a, b in zip(before, pruned.get_weights(), strict=True))
    assert {"PruneLowMagnitude"} <= {type(la).__name__ for la in pruned.layers}  # still wrapped
    assert logs["cortex-m4/fits_budget"] == 1.0
    assert 10_000 < logs["cortex-m4/model_bytes"] < 200_000
    assert logs["cortex-m4/tensor_arena_bytes"] > logs["cortex-m4/model_bytes"] / 100
    from edgekit.keras.channels import keras_macs

    assert logs["cortex-m4/macs"] == pytest.approx(keras_macs(base_model), rel=0.05)
    assert "cortex-m4/host_latency_ms" not in logs  # an MCU's latency is not this host's
    assert 0.9 <= logs["cortex-m4/top1_agreement"] <= 1.0
    assert not pruned.stop_training


def test_over_budget_and_stop_when_fits(base_model, digits_data):
    train, calib, _ = digits_data
    tiny = replace(
        load_target("cortex-m4"),
        name="tiny-mcu",
        memory=MemoryBudget(flash_bytes=64 * 1024, ram_bytes=64 * 1024),
    )
    tight = ek.callbacks.TargetFitCheck(tiny, calib.x, stop_when_fits=True)
    base_model.compile("adam", "sparse_categorical_crossentropy")
    history = base_model.fit(train.x[:64], train.y[:64], epochs=2, verbose=0, callbacks=[tight])
    assert history.history["tiny-mcu/fits_budget"] == [0.0, 0.0]  # 86 KB of int8 > 64 KB
    fits = ek.callbacks.TargetFitCheck("cortex-m7", calib.x, stop_when_fits=True, every_n_epochs=1)
    history = base_model.fit(train.x[:64], train.y[:64], epochs=3, verbose=0, callbacks=[fits])
    assert len(history.history["loss"]) == 1 and history.history["cortex-m7/fits_budget"] == [1.0]


def test_every_n_epochs_and_bad_calibration(base_model, digits_data):
    train, calib, _ = digits_data
    with pytest.raises(EdgekitError, match="batch of calibration inputs"):
        ek.callbacks.TargetFitCheck("coral", np.float32(1.0))
    check = ek.callbacks.TargetFitCheck("coral", calib.x, every_n_epochs=2)
    base_model.compile("adam", "sparse_categorical_crossentropy")
    base_model.fit(train.x[:32], train.y[:32], epochs=2, verbose=0, callbacks=[check])
    assert [row["epoch"] for row in check.history] == [1.0]
    assert "tensor_arena_bytes" not in check.history[0]  # not an MCU target
    assert check.history[0]["host_latency_ms"] > 0 and check.history[0]["macs"] > 100_000


def test_a_logits_classifier_gets_its_agreement_logged(digits_data):
    """Found by a new user: a Dense(10) logits model verified on unlabelled inputs was taken
    for a regression, so top1_agreement was never logged."""
    import keras

    train, calib, _ = digits_data
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    check = ek.callbacks.TargetFitCheck("raspberry-pi-4", calib.x[:64], latency=False)
    history = model.fit(train.x[:256], train.y[:256], epochs=1, verbose=0, callbacks=[check])
    assert history.history["raspberry-pi-4/top1_agreement"][0] > 0.9
    assert check.last.report.verification.outputs[0].task == "classification"
    assert "raspberry-pi-4/seconds" in history.history
