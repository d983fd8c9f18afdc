"""Distillation losses against their formulas, and a Distiller that trains and deploys."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tf_keras

import edgekit
from edgekit import keras as ek
from edgekit.errors import EdgekitError


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _student(keras, name="student"):
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", name="s_conv"),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
            keras.layers.Softmax(),
        ],
        name=name,
    )


def test_soft_target_loss_is_kl_times_t_squared():
    from edgekit.keras.distillation import Features

    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(4, 10)), rng.normal(size=(4, 10))
    temperature = 3.0
    p_t, p_s = _softmax(t / temperature), _softmax(s / temperature)
    expected = np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=-1)) * temperature**2
    loss = ek.SoftTargetLoss(temperature)(Features(s.astype("float32"), t.astype("float32")))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    same = ek.SoftTargetLoss(temperature)(Features(t.astype("float32"), t.astype("float32")))
    assert float(same) == pytest.approx(0.0, abs=1e-6)


def test_attention_transfer_matches_the_paper():
    from edgekit.keras.distillation import Features

    rng = np.random.default_rng(1)
    fs, ft = rng.normal(size=(2, 4, 4, 3)), rng.normal(size=(2, 4, 4, 5))
    loss = ek.AttentionTransferLoss([("s", "t")], p=2)

    def q(f):
        a = np.mean(np.abs(f) ** 2, axis=-1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=1, keepdims=True)

    expected = np.mean(np.linalg.norm(q(fs) - q(ft), axis=1))
    got = loss(Features(None, None, {"s": fs.astype("float32")}, {"t": ft.astype("float32")}))
    assert float(got) == pytest.approx(expected, rel=1e-5)


def test_bad_layer_names_list_the_valid_ones(base_model):
    keras = tf_keras()
    with pytest.raises(EdgekitError, match=r"no layer 'nope'; valid layer names: s_conv"):
        ek.Distiller(_student(keras), base_model, [ek.AttentionTransferLoss([("nope", "conv2d")])])
    with pytest.raises(EdgekitError, match="teacher model .* no layer 'missing'"):
        ek.Distiller(_student(keras), base_model, [ek.FeatureMatchingLoss([("s_conv", "missing")])])
    with pytest.raises(EdgekitError, match="adapter=True"):
        ek.Distiller(
            _student(keras),
            base_model,
            [ek.FeatureMatchingLoss([("s_conv", "conv2d_1")], adapter=False)],
        )


@pytest.mark.slow
def test_distiller_trains_anneals_and_the_student_deploys(base_model, digits_data, tmp_path):
    keras = tf_keras()
    keras.utils.set_random_seed(0)
    train, calib, val = digits_data
    teacher_conv = next(la.name for la in base_model.layers if type(la).__name__ == "Conv2D")
    distiller = ek.Distiller(
        _student(keras),
        base_model,
        [
            ek.SoftTargetLoss(4.0),
            ek.AttentionTransferLoss([("s_conv", teacher_conv)]),
            ek.FeatureMatchingLoss([("s_conv", teacher_conv)]),  # 8 → 32 channels via adapter
        ],
        alpha=0.3,
    )
    teacher_before = [w.copy() for w in base_model.get_weights()]
    distiller.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", ["accuracy"])
    history = distiller.fit(
        train.x,
        train.y,
        epochs=3,
        batch_size=32,
        verbose=0,
        validation_data=(val.x, val.y),
        callbacks=[ek.callbacks.DistillationSchedule(temperature=(6.0, 2.0), alpha=(0.1, 0.5))],
    ).history
    assert history["distill/temperature"] == pytest.approx([6.0, 4.0, 2.0])
    assert history["distill/alpha"] == pytest.approx([0.1, 0.3, 0.5])
    assert history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] > 0.8
    assert all(
        np.array_equal(a, b) for a, b in zip(teacher_before, base_model.get_weights(), strict=True)
    )
    assert distiller.student.count_params() < base_model.count_params() / 4
    for target in ("cortex-m4", "coral"):
        bundle = edgekit.deploy(
            distiller.student, target, calibration=calib.x, validation=(val.x, val.y), out=tmp_path
        )
        assert bundle.ok, bundle.report.failed_checks()
        assert bundle.report.metrics["deployed_accuracy"] > 0.8
    assert bundle.report.metrics["top1_agreement"] > 0.95
    m4 = edgekit.deploy(
        distiller.student,
        "cortex-m4",
        calibration=calib.x,
        validation=(val.x, val.y),
        out=tmp_path / "again",
    )
    # On an MCU target the deployed figures are TFLM's (the runtime the board runs).
    assert m4.report.verification["runtime"].startswith("TFLM")
    assert m4.report.metrics.deployed_accuracy > 0.8


@pytest.mark.slow
def test_pruned_student_distills_and_keeps_sparsity(base_model, digits_data):
    keras = tf_keras()
    train = digits_data[0]
    student = ek.prune_low_magnitude(_student(keras), ek.ConstantSparsity(0.5, 0, frequency=1))
    distiller = ek.Distiller(
        student, base_model, [ek.AttentionTransferLoss([("s_conv", "conv2d")])]
    )
    distiller.compile("adam", "sparse_categorical_crossentropy")
    distiller.fit(
        train.x[:256],
        train.y[:256],
        epochs=1,
        verbose=0,
        callbacks=[ek.callbacks.UpdatePruningStep()],
    )
    assert ek.total_sparsity(distiller.student) == pytest.approx(0.5, abs=0.01)


def test_qat_wrapped_student_distills_by_original_layer_names(base_model, digits_data):
    keras = tf_keras()
    train = digits_data[0]
    student = ek.quantize_model(_student(keras), target="cortex-m4")
    distiller = ek.Distiller(
        student,
        base_model,
        [ek.SoftTargetLoss(2.0), ek.AttentionTransferLoss([("s_conv", "conv2d")])],
    )
    distiller.compile("adam", "sparse_categorical_crossentropy")
    history = distiller.fit(train.x[:256], train.y[:256], epochs=2, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert any(type(la).__name__ == "QuantizeWrapperV2" for la in distiller.student.layers)
