"""fold_batchnorm: same outputs, BatchNorm gone, the input model untouched."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.keras.folding import fold_batchnorm


def _kinds(model):
    return [type(layer).__name__ for layer in model.layers]


def _randomise_batchnorm(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 2, gamma.shape),
                    rng.normal(0, 1, beta.shape),
                    rng.normal(0, 1, mean.shape),
                    rng.uniform(0.2, 3, var.shape),
                ]
            )


def test_sequential_example_folds_to_the_same_outputs(base_model, digits_data):
    x = digits_data[2].x[:64]
    _randomise_batchnorm(base_model)
    folded = fold_batchnorm(base_model, strict=True)
    assert "BatchNormalization" not in _kinds(folded)
    assert _kinds(base_model).count("BatchNormalization") == 2  # untouched
    assert folded.get_layer(base_model.layers[0].name).use_bias
    np.testing.assert_allclose(
        folded.predict(x, verbose=0), base_model.predict(x, verbose=0), atol=1e-5
    )


def _keras(which):
    if which == "keras3":
        import keras

        return keras
    from edgekit._tf import tf_keras

    return tf_keras()


@pytest.mark.parametrize("which", ["tf_keras", "keras3"])
def test_functional_dense_folds_and_shared_conv_is_left_or_refused(which):
    keras = _keras(which)
    layers = keras.layers
    inp = keras.Input((6, 6, 2))
    conv = layers.Conv2D(4, 3, padding="same", name="shared_conv")(inp)
    bn = layers.BatchNormalization(name="bn_after_shared")(conv)
    merged = layers.Add()([bn, conv])  # conv feeds two layers: folding would change `Add`'s input
    flat = layers.Flatten()(merged)
    dense = layers.Dense(5, name="head")(flat)
    out = layers.BatchNormalization(name="bn_head")(dense)
    model = keras.Model(inp, out)
    _randomise_batchnorm(model, seed=1)
    with pytest.raises(EdgekitError, match=r"\['bn_after_shared'\]"):
        fold_batchnorm(model, strict=True)
    folded = fold_batchnorm(model)
    assert type(folded).__module__.split(".")[0] == type(model).__module__.split(".")[0]
    assert [
        n for n in ("bn_after_shared", "bn_head") if n in {lyr.name for lyr in folded.layers}
    ] == ["bn_after_shared"]
    x = np.random.default_rng(2).normal(size=(8, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_keras3_residual_depthwise_model_folds_as_keras3():
    import keras

    layers = keras.layers
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inp)
    x = layers.ReLU(name="stem_relu")(layers.BatchNormalization(name="stem_bn")(x))
    y = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=1, name="dw")(x)
    y = layers.BatchNormalization(name="dw_bn")(y)
    out = layers.GlobalAveragePooling2D()(layers.Add(name="add")([x, y]))
    model = keras.Model(inp, out)
    _randomise_batchnorm(model, seed=3)
    folded = fold_batchnorm(model, strict=True)
    assert type(folded).__module__.startswith("keras.")
    assert "BatchNormalization" not in _kinds(folded)
    x = np.random.default_rng(4).normal(size=(4, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-5)


def test_surgery_reads_and_renames_links_in_both_config_formats():
    from edgekit.keras import surgery

    for which in ("tf_keras", "keras3"):
        keras = _keras(which)
        inp = keras.Input((4,))
        a = keras.layers.Dense(3, name="a")(inp)
        b = keras.layers.Dense(3, name="b")(inp)
        out = keras.layers.Add(name="add")([a, b])
        entries = surgery.layer_entries(keras.Model(inp, out).get_config())
        assert surgery.inbound_names(entries["add"]) == ["a", "b"], which
        renamed = surgery.rename_references(entries["add"]["inbound_nodes"], {"b": "c"})
        assert surgery.inbound_names({"inbound_nodes": renamed}) == ["a", "c"], which
