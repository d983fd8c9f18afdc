"""Models with several inputs: data by input name (or position), matched to the converted
model's inputs by name, never by position (the converter reorders them)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import run_edgekit

from edgekit.data import InputSpec, load_dataset, random_calibration
from edgekit.errors import UsageError

SPECS = [InputSpec("image", (1, 4, 4, 3)), InputSpec("meta", (1, 8))]


def _arrays(n: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 4, 4, 3), np.float32), rng.random((n, 8), np.float32)


def test_several_inputs_come_as_a_list_a_dict_or_an_npz(tmp_path):
    image, meta = _arrays()
    by_list = load_dataset([image, meta], SPECS, "calibration")
    by_dict = load_dataset({"meta": meta, "image": image}, SPECS, "calibration")
    for data in (by_list, by_dict):
        assert list(data.x) == ["image", "meta"] and data.n == 12
        assert np.array_equal(data.x["meta"], meta)
    named, numbered = tmp_path / "named.npz", tmp_path / "numbered.npz"
    np.savez(named, meta=meta, image=image, y=np.arange(12) % 3)
    np.savez(numbered, x0=image, x1=meta)
    data = load_dataset(str(named), SPECS, "validation", limit=5)
    assert data.n == 5 and list(data.y) == [0, 1, 2, 0, 1]
    assert np.array_equal(data.x["image"], image[:5])
    assert np.array_equal(load_dataset(str(numbered), SPECS, "calibration").x["meta"], meta)
    # Read before the model's inputs were known (deploy checks files before TensorFlow loads):
    early = load_dataset(
        str(numbered), [InputSpec("x0", (1, 4, 4, 3)), InputSpec("x1", (1, 8))], "calibration"
    )
    assert np.array_equal(load_dataset(early, SPECS, "calibration").x["image"], image)


@pytest.mark.parametrize(
    "source, message",
    [
        ("npy", "the model has 2 inputs; pass an .npz with one array per input"),
        ("npz-x", ".npz needs one array per input, named 'image', 'meta' or x0, x1"),
        ("npz-extra", "array(s) 'junk' are not used (the model's inputs are 'image', 'meta'"),
        ({"image": 0}, "missing ['meta']"),
        ("one", "the model has 2 inputs (image, meta); pass one array per input"),
        ("counts", "the inputs hold different sample counts {'image': 12, 'meta': 11}"),
        ("shape", "input 'meta' data has shape [12, 7]; expected [N, 8]"),
    ],
)
def test_wrong_data_for_several_inputs_is_one_clear_error(tmp_path, source, message):
    image, meta = _arrays()
    if source == "npy":
        np.save(tmp_path / "x.npy", image)
        source = str(tmp_path / "x.npy")
    elif source == "npz-x":
        np.savez(tmp_path / "x.npz", x=image)
        source = str(tmp_path / "x.npz")
    elif source == "npz-extra":
        np.savez(tmp_path / "x.npz", image=image, meta=meta, junk=meta)
        source = str(tmp_path / "x.npz")
    elif isinstance(source, dict):
        source = {"image": image}
    elif source == "one":
        source = image
    elif source == "counts":
        source = [image, meta[:11]]
    else:
        source = [image, meta[:, :7]]
    with pytest.raises(UsageError) as error:
        load_dataset(source, SPECS, "calibration")
    assert message in str(error.value)


def test_random_calibration_has_one_array_per_input():
    data = random_calibration(SPECS, n=7)
    assert {k: v.shape for k, v in data.x.items()} == {"image": (7, 4, 4, 3), "meta": (7, 8)}


def _same_shape_model():
    """Two inputs of one shape, used differently: fed to the wrong input, outputs change."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(3)
    left = keras.Input((8,), name="left")
    right = keras.Input((8,), name="right")
    out = layers.Dense(4)(
        layers.Concatenate()(
            [layers.Dense(6, activation="relu")(left), layers.Dense(6)(right) * 3.0]
        )
    )
    return keras.Model([left, right], out, name="left_right")


def test_inputs_of_one_shape_reach_the_right_tensor(tmp_path):
    """The converted model takes its inputs in its own order; data goes by name. On two
    inputs of the same shape a positional mix-up would go unnoticed by every shape check:
    the deployed outputs must match Keras's on the same named inputs."""
    import edgekit
    from edgekit.report import Role
    from edgekit.tflite_model import load_tflite
    from edgekit.verify import run_model

    model = _same_shape_model()
    rng = np.random.default_rng(0)
    left, right = rng.normal(size=(64, 8)).astype("float32"), rng.random((64, 8), np.float32)
    bundle = edgekit.deploy(
        model,
        "raspberry-pi-4",
        calibration={"right": right, "left": left},
        out=tmp_path,
        analysis=False,
    )
    assert bundle.ok, [c.detail for c in bundle.report.failed_checks()]
    deployed = load_tflite(bundle.file(Role.DEPLOYED_MODEL))
    expected = model.predict([left, right], verbose=0)
    (got,) = run_model(deployed, {"left": left, "right": right}, "reference").values()
    got = got.reshape(expected.shape)
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()
    (swapped,) = run_model(deployed, {"left": right, "right": left}, "reference").values()
    assert np.abs(swapped.reshape(expected.shape) - expected).max() > 0.2 * np.abs(expected).max()
    assert bundle.report.metrics.output_sqnr_db > 25


def test_a_two_input_bundle_benches_on_the_linux_harness(tmp_path):
    """The on-device harness feeds every input: random within each input's range, or from an
    .npz keyed by the model's input names, in any order (the converted model takes `meta`
    before `image`; an .npz written image-first used to meet a shape error)."""
    import keras

    import edgekit
    from edgekit.report import Role
    from edgekit.tflite_model import load_tflite

    image, meta = keras.Input((6, 6, 1), name="image"), keras.Input((8,), name="meta")
    joined = keras.layers.Concatenate()([keras.layers.Flatten()(image), meta])
    model = keras.Model([image, meta], keras.layers.Dense(3)(joined))
    bundle = edgekit.deploy(
        model, "raspberry-pi-4", calibration="random", out=tmp_path / "b", analysis=False
    )
    deployed = load_tflite(bundle.file(Role.DEPLOYED_MODEL))
    assert [len(t.shape) for t in deployed.input_tensors()] == [2, 4]  # meta first
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "in.npz",
        image=rng.integers(-128, 127, (1, 6, 6, 1), dtype=np.int8),
        meta=rng.integers(-128, 127, (1, 8), dtype=np.int8),
    )
    for extra in ([], ["--input", str(tmp_path / "in.npz")]):
        result = run_edgekit(
            "bench",
            str(bundle.path),
            "--device",
            "local",
            "--runs",
            "3",
            "--warmup",
            "0",
            "--db",
            str(tmp_path / "r.db"),
            *extra,
        )
        assert result.returncode == 0, result.stderr[-1500:]
        assert "recorded as run" in result.stdout
