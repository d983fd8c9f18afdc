"""A model file's input shape and dtype, read without TensorFlow.

Loading a Keras model takes TensorFlow (4 s to import, 10-40 s to load and trace); a wrong
calibration shape or a NaN in the data should not cost that. `.tflite` files say their input
in the flatbuffer; `.keras` and `.h5` files in their JSON config (an `InputLayer`'s
`batch_shape`, or tf_keras's `batch_input_shape`). Only what can be read for certain is
returned: a subclassed model or a config this module does not understand gives None, and the
loader decides later, as before. Several inputs come in the model's order (`input_layers`),
named as the loader names them.

>>> input_signature("model.keras")            # doctest: +SKIP
((1, 96, 96, 3), 'float32')
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from edgekit import jsonfile
from edgekit.data import InputSpec
from edgekit.errors import EdgekitError
from edgekit.models import input_name, load_model

MAX_CONFIG_BYTES = 64 * 1024**2


def input_signature(path: str | Path) -> tuple[tuple[int, ...], str] | None:
    """(input shape with batch 1, dtype) of a single-input model file, or None if unknown."""
    specs = input_specs(path)
    if specs is None or len(specs) != 1:
        return None
    return specs[0].shape, specs[0].dtype


def input_specs(path: str | Path) -> list[InputSpec] | None:
    """Every input of a model file (name, shape with batch 1, dtype), in the model's order and
    named as the loader names them, or None if unknown.

    >>> input_specs("two_inputs.keras")          # doctest: +SKIP
    [InputSpec(name='image', shape=(1, 32, 32, 3), ...), InputSpec(name='meta', ...)]
    """
    path = Path(path)
    try:
        if not path.is_file():
            return None
        suffix = path.suffix.lower()
        if suffix == ".tflite":
            return _tflite_specs(path)
        if suffix == ".keras":
            return _config_specs(_keras_zip_config(path))
        if suffix in (".h5", ".hdf5"):
            return _config_specs(_h5_config(path))
    except Exception:  # advisory only: the loader reports what is wrong with the file
        return None
    return None


def keras_config(path: str | Path) -> Any:
    """A `.keras` or `.h5` file's model config (a JSON object), or None if unreadable."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".keras":
            return _keras_zip_config(path)
        return _h5_config(path)
    except Exception:  # advisory only: the loader reports what is wrong with the file
        return None


def _tflite_specs(path: Path) -> list[InputSpec] | None:
    try:
        return list(load_model(path).input_specs)  # a .tflite loads without TensorFlow
    except EdgekitError:
        return None


def _keras_zip_config(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("config.json")
        if info.file_size > MAX_CONFIG_BYTES:
            return None
        return jsonfile.loads(archive.read(info), f"{path}: config.json", expect=dict)


def _h5_config(path: Path) -> Any:
    import h5py  # ~50 ms: only when an .h5 file is read

    with h5py.File(path, "r") as handle:
        raw = handle.attrs.get("model_config")
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if not isinstance(raw, str) or len(raw) > MAX_CONFIG_BYTES:
        return None
    return jsonfile.loads(raw, f"{path}: model_config", expect=dict)


def _config_specs(config: Any) -> list[InputSpec] | None:
    """The InputLayers of a Functional or Sequential config (Keras 3 or tf_keras), in the
    order of the model's `input_layers`.

    >>> layer = {"class_name": "InputLayer", "config": {"batch_shape": [None, 96, 96, 3]}}
    >>> _config_specs({"class_name": "Functional", "config": {"layers": [layer]}})
    [InputSpec(name='x', shape=(1, 96, 96, 3), dtype='float32')]
    """
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        return None
    body = config["config"]
    layers = body.get("layers")
    if not isinstance(layers, list):
        return None
    inputs = {
        str(layer.get("name") or (layer.get("config") or {}).get("name")): layer.get("config")
        for layer in layers
        if isinstance(layer, dict) and layer.get("class_name") == "InputLayer"
    }
    if config.get("class_name") == "Sequential" and not inputs:
        shape = body.get("build_input_shape")
        found = _shape(shape, "float32") if shape is not None else None
        return [InputSpec("x", *found)] if found else None
    if len(inputs) == 1:
        order = list(inputs)
    else:  # [["image", 0, 0], ["meta", 0, 0]]: the model's input order
        listed = body.get("input_layers")
        if not isinstance(listed, list) or not all(isinstance(e, list) and e for e in listed):
            return None
        order = [str(entry[0]) for entry in listed]
        if sorted(order) != sorted(inputs):
            return None
    specs, taken = [], set()
    for position, name in enumerate(order):
        layer = inputs[name]
        if not isinstance(layer, dict):
            return None
        shape = layer.get("batch_shape", layer.get("batch_input_shape"))
        dtype = layer.get("dtype", "float32")
        if isinstance(dtype, dict):  # Keras 3 DTypePolicy objects
            dtype = (dtype.get("config") or {}).get("name", "float32")
        found = _shape(shape, dtype if isinstance(dtype, str) else "float32")
        if found is None:
            return None
        label = input_name(name, position, taken) if len(order) > 1 else "x"
        specs.append(InputSpec(label, *found))
    return specs


def _shape(shape: Any, dtype: str) -> tuple[tuple[int, ...], str] | None:
    if not isinstance(shape, list) or len(shape) < 2:
        return None
    rest = shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in rest):
        return None  # unknown dimensions: the loader explains
    return (1, *rest), dtype
