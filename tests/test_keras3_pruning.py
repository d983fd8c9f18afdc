"""Keras 3 magnitude pruning, natively: Keras 3 in, Keras 3 out, zeros into the int8 file."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import compile_keras3, deploy_digits, deploy_saved, subclassed_model

from edgekit import keras as ek
from edgekit.errors import UsageError
from edgekit.graph import weight_tensors
from edgekit.keras.pruning3 import PruneLowMagnitude, magnitude_mask, to_numpy

FINAL = 0.8
EPOCHS = 4  # pruning ends at 80 %: epoch 4 recovers
BATCH = 32


@pytest.fixture(scope="module")
def pruned(keras3_digits_model, digits_data):
    """The float model pruned to 80 % over EPOCHS epochs, with the fit history."""
    train = digits_data[0]
    steps = int(np.ceil(len(train.x) / BATCH))
    before = [w.copy() for w in keras3_digits_model.get_weights()]
    model = compile_keras3(
        ek.prune_low_magnitude(
            keras3_digits_model, ek.pruning_schedule(FINAL, epochs=EPOCHS, steps_per_epoch=steps)
        )
    )
    history = model.fit(
        train.x,
        train.y,
        epochs=EPOCHS,
        batch_size=BATCH,
        verbose=0,
        callbacks=[ek.callbacks.UpdatePruningStep(), ek.callbacks.SparsityLogger()],
    )
    for old, new in zip(before, keras3_digits_model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # the user's model keeps its weights
    return model, history


def _sparsity(array) -> float:
    return float(np.mean(to_numpy(array) == 0))


def test_schedules_match_tfmot():
    from edgekit.keras._tfmot import tfmot

    theirs = tfmot().sparsity.keras
    pairs = [
        (
            ek.PolynomialDecay(0.1, 0.8, 3, 103, frequency=7),
            theirs.PolynomialDecay(0.1, 0.8, 3, 103, frequency=7),
        ),
        (
            ek.PolynomialDecay(0.0, 0.9, 0, 50, power=2, frequency=1),
            theirs.PolynomialDecay(0.0, 0.9, 0, 50, power=2, frequency=1),
        ),
        (
            ek.ConstantSparsity(0.6, 5, end_step=40, frequency=5),
            theirs.ConstantSparsity(0.6, 5, end_step=40, frequency=5),
        ),
    ]
    for mine, tfmot_schedule in pairs:
        for step in (0, 2, 3, 10, 17, 24, 50, 53, 102, 103, 110, 200):
            should, sparsity = tfmot_schedule(step)
            assert mine.should_prune(step) == bool(should), (mine.get_config(), step)
            assert mine.sparsity(step) == float(sparsity), (mine.get_config(), step)
        assert mine.get_config() == tfmot_schedule.get_config()


def test_masks_match_tfmot_rounding():
    """k = max(round(n·(1 − s)), 1), half to even, ties kept: tfmot's own mask op decides."""
    from edgekit._tf import tensorflow
    from edgekit.keras._tfmot import tfmot

    tfmot()
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl

    tf = tensorflow()
    rng = np.random.default_rng(3)
    for size, sparsity in ((10, 0.25), (10, 0.35), (72, 0.8), (7, 0.99), (200, 0.5)):
        weights = rng.standard_normal(size).astype(np.float32)
        weights[: size // 5] = weights[size // 5]  # ties at the threshold
        schedule = ek.ConstantSparsity(sparsity, 0, frequency=1)
        impl = pruning_impl.Pruning(lambda: tf.constant(1, tf.int64), [], schedule, (1, 1), "AVG")
        _, expected = impl._update_mask(tf.constant(weights))
        np.testing.assert_array_equal(magnitude_mask(weights, sparsity), expected.numpy())


def test_pruned_model_is_keras3_and_reaches_the_schedule(pruned, digits_data):
    model, history = pruned
    assert type(model).__module__.startswith("keras")
    wrappers = [layer for layer in model.layers if isinstance(layer, PruneLowMagnitude)]
    assert {w.layer.name for w in wrappers} == {"conv", "depthwise", "hidden", "label"}
    for wrapper in wrappers:
        assert _sparsity(wrapper.layer.kernel) == pytest.approx(FINAL, abs=0.01), wrapper.name
        assert _sparsity(wrapper.masks[0]) == pytest.approx(FINAL, abs=0.01), wrapper.name
    assert ek.total_sparsity(model) == pytest.approx(FINAL, abs=0.01)
    logged = history.history["sparsity/total"]
    assert logged[0] < logged[-1] == pytest.approx(FINAL, abs=0.01)  # the cubic ramp
    assert history.history["sparsity/depthwise"][-1] == pytest.approx(FINAL, abs=0.01)
    val = digits_data[2]
    assert model.evaluate(val.x, val.y, verbose=0)[1] > 0.85


def test_a_layer_inside_a_model_definition_with_a_tfmot_schedule(digits_data):
    from edgekit.keras._tfmot import tfmot

    schedule = tfmot().sparsity.keras.ConstantSparsity(0.5, 0, frequency=1)
    model = compile_keras3(
        keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Flatten(),
                ek.prune_low_magnitude(keras.layers.Dense(10, name="d"), schedule),
            ]
        )
    )
    train = digits_data[0].head(64)
    model.fit(train.x, train.y, verbose=0, callbacks=[ek.callbacks.UpdatePruningStep()])
    assert ek.layer_sparsity(model) == {"d": 0.5}


def test_callbacks_belong_to_both_kerases():
    from edgekit._tf import tf_keras

    for callback in (ek.callbacks.UpdatePruningStep(), ek.callbacks.SparsityLogger()):
        assert isinstance(callback, keras.callbacks.Callback)
        assert isinstance(callback, tf_keras().callbacks.Callback)


def test_strip_pruning_gives_plain_keras3_layers(pruned, digits_data):
    model, _ = pruned
    stripped = ek.strip_pruning(model)
    assert type(stripped).__module__.startswith("keras")
    assert all(type(layer).__module__.startswith("keras") for layer in stripped.layers)
    wrapped = model.get_layer("prune_low_magnitude_depthwise").layer
    assert stripped.get_layer("depthwise").kernel is not wrapped.kernel  # its own variables
    assert ek.layer_sparsity(stripped)["depthwise"] == pytest.approx(FINAL, abs=0.01)
    x = digits_data[2].x[:32]
    np.testing.assert_allclose(to_numpy(stripped(x)), to_numpy(model(x)), atol=1e-6)


def test_keras_file_round_trips_mid_training(keras3_digits_model, digits_data, tmp_path):
    train = digits_data[0].head(256)
    model = compile_keras3(
        ek.prune_low_magnitude(
            keras3_digits_model, ek.PolynomialDecay(0.0, 0.7, 0, 16, frequency=2)
        )
    )
    fit = dict(batch_size=BATCH, verbose=0, callbacks=[ek.callbacks.UpdatePruningStep()])
    model.fit(train.x, train.y, epochs=1, **fit)  # 8 steps: half-way
    model.save(tmp_path / "mid.keras")
    reloaded = keras.saving.load_model(tmp_path / "mid.keras")
    wrapper = reloaded.get_layer("prune_low_magnitude_hidden")
    assert isinstance(wrapper, PruneLowMagnitude)
    assert int(to_numpy(wrapper.pruning_step)) == 8
    saved = model.get_layer("prune_low_magnitude_hidden").pruning_schedule
    assert wrapper.pruning_schedule.get_config() == saved.get_config()
    assert 0.3 < _sparsity(wrapper.masks[0]) < 0.7
    for old, new in zip(model.get_weights(), reloaded.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    compile_keras3(reloaded).fit(train.x, train.y, epochs=1, **fit)  # continues from step 8
    assert int(to_numpy(wrapper.pruning_step)) == 16
    assert _sparsity(wrapper.layer.kernel) == pytest.approx(0.7, abs=0.01)

    stripped = ek.strip_pruning(reloaded)
    stripped.save(tmp_path / "stripped.keras")
    again = keras.saving.load_model(tmp_path / "stripped.keras")
    assert not any(isinstance(layer, PruneLowMagnitude) for layer in again.layers)
    np.testing.assert_allclose(to_numpy(again(train.x)), to_numpy(stripped(train.x)), atol=1e-6)


@pytest.mark.slow
def test_deployed_int8_file_keeps_the_zeros(pruned, digits_data, tmp_path):
    model, _ = pruned
    bundle, tflite = deploy_digits(ek.strip_pruning(model), "raspberry-pi-4", digits_data, tmp_path)
    kernels = {op.name: tflite.weights(idx) for op, idx in weight_tensors(tflite)}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= set(kernels)
    for op, idx in weight_tensors(tflite):
        assert np.mean(tflite.weights(idx) == 0) >= FINAL - 0.005, op.name
    assert bundle.report.metrics["deployed_accuracy"] > 0.85


def test_clear_errors():
    net = subclassed_model(keras)
    with pytest.raises(UsageError, match="subclassed Keras 3 model"):
        ek.prune_low_magnitude(net)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(UsageError, match="block_size.*tf_keras models only"):
        ek.prune_low_magnitude(model, block_size=(1, 4))
    pooled = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.MaxPooling2D()])
    with pytest.raises(UsageError, match="no layer edgekit can prune"):
        ek.prune_low_magnitude(pooled)
    with pytest.raises(UsageError, match="'pool' .*get_prunable_weights"):
        ek.prune_low_magnitude(keras.layers.MaxPooling2D(name="pool"))
    with pytest.raises(UsageError, match="final_sparsity must be in"):
        ek.PolynomialDecay(0.0, 1.0, 0, 10)


def test_target_fit_check_strips_a_copy(pruned, digits_data):
    model, _ = pruned
    before = [w.copy() for w in model.get_weights()]
    figures = ek.callbacks.TargetFitCheck("raspberry-pi-4", digits_data[1].x[:32]).measure(model)
    assert figures["fits_budget"] == 1.0 and figures["top1_agreement"] > 0.9
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert any(isinstance(layer, PruneLowMagnitude) for layer in model.layers)  # still wrapped


def test_training_without_the_callback_says_what_is_missing(keras3_digits_model, digits_data):
    """tfmot stops a pruned model trained without UpdatePruningStep; so does edgekit's Keras 3
    path (the masks would never apply: the model would train unpruned, silently)."""
    train = digits_data[0]
    model = compile_keras3(
        ek.prune_low_magnitude(
            keras3_digits_model, ek.pruning_schedule(FINAL, epochs=1, steps_per_epoch=4)
        )
    )
    with pytest.raises(Exception, match="UpdatePruningStep"):
        model.fit(train.x[:64], train.y[:64], epochs=1, batch_size=BATCH, verbose=0)
    assert model.predict(train.x[:4], verbose=0).shape == (4, 10)  # inference needs no callback


def test_an_unstripped_pruned_file_deploys_and_reloads_in_a_new_process(
    pruned, digits_data, tmp_path
):
    """Saved before strip_pruning, the file holds edgekit's registered layer: `edgekit deploy`
    loaded it in a fresh worker as "custom class unknown"; a new process reloads it after
    `from edgekit.keras import PruneLowMagnitude`."""
    import subprocess
    import sys

    model, _ = pruned
    path = deploy_saved(model, digits_data[0].x[:32], tmp_path)
    reload = (
        "import keras, sys; from edgekit.keras import PruneLowMagnitude; "
        "m = keras.saving.load_model(sys.argv[1]); "
        "print(sum(isinstance(la, PruneLowMagnitude) for la in m.layers))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", reload, str(path)], capture_output=True, text=True, timeout=300
    )
    assert loaded.returncode == 0, loaded.stderr[-1500:]
    assert int(loaded.stdout.split()[-1]) == 4  # conv, depthwise, hidden, label


def test_target_fit_check_is_a_keras3_callback_in_fit(keras3_digits_model, digits_data):
    """Inside Keras 3's own fit, beside UpdatePruningStep: the figures land in the History."""
    train, calib = digits_data[0], digits_data[1]
    steps = int(np.ceil(256 / BATCH))
    model = compile_keras3(
        ek.prune_low_magnitude(
            keras3_digits_model, ek.pruning_schedule(0.5, epochs=2, steps_per_epoch=steps)
        )
    )
    check = ek.callbacks.TargetFitCheck("cortex-m4", calib.x[:32], every_n_epochs=1)
    assert isinstance(check, keras.callbacks.Callback)
    history = model.fit(
        train.x[:256],
        train.y[:256],
        epochs=2,
        batch_size=BATCH,
        verbose=0,
        callbacks=[ek.callbacks.UpdatePruningStep(), check],
    ).history
    assert history["cortex-m4/fits_budget"] == [1.0, 1.0]
    assert all(1_000 < size < 200_000 for size in history["cortex-m4/model_bytes"])
