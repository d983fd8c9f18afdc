"""The built-in digits example: bundled data only, deterministic training, cached."""

from __future__ import annotations

import numpy as np

from edgekit.examples.digits import digits_splits, train_digits


def test_splits_are_fixed_and_labelled():
    train, calib, val = digits_splits()
    assert val.x.shape == (500, 8, 8, 1) and val.y.shape == (500,)
    assert calib.y is None and len(calib.x) == 200
    assert len(train.x) + len(val.x) == 1797  # scikit-learn's bundled digits, nothing downloaded
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0
    again = digits_splits()[2]
    assert np.array_equal(val.x, again.x) and np.array_equal(val.y, again.y)


def test_training_is_deterministic(tmp_path):
    import keras

    weights = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        path = train_digits(tmp_path / run, epochs=2)
        weights.append(keras.saving.load_model(path).get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))


def test_example_is_cached(example):
    from edgekit.examples import load_example

    before = example.model_path.stat().st_mtime_ns
    again = load_example("digits")
    assert again.model_path == example.model_path
    assert again.model_path.stat().st_mtime_ns == before
