"""A model file's input shape and dtype, read without TensorFlow.

Loading a Keras model takes TensorFlow (4 s to import, 10-40 s to load and trace); a wrong
calibration shape or a NaN in the data should not cost that. `.tflite` files say their input
in the flatbuffer; `.keras` and `.h5` files in their JSON config (an `InputLayer`'s
`batch_shape`, or tf_keras's `batch_input_shape`). Only what can be read for certain is
returned: a subclassed model, several inputs or a config this module does not understand give
None, and the loader decides later, as before.

>>> input_signature("model.keras")            # doctest: +SKIP
((1, 96, 96, 3), 'float32')
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from edgekit import jsonfile

MAX_CONFIG_BYTES = 64 * 1024**2


def input_signature(path: str | Path) -> tuple[tuple[int, ...], str] | None:
    """(input shape with batch 1, dtype) of a single-input model file, or None if unknown."""
    path = Path(path)
    try:
        if not path.is_file():
            return None
        suffix = path.suffix.lower()
        if suffix == ".tflite":
            return _tflite_signature(path)
        if suffix == ".keras":
            return _config_signature(_keras_zip_config(path))
        if suffix in (".h5", ".hdf5"):
            return _config_signature(_h5_config(path))
    except Exception:  # advisory only: the loader reports what is wrong with the file
        return None
    return None


def _tflite_signature(path: Path) -> tuple[tuple[int, ...], str] | None:
    from edgekit.errors import EdgekitError
    from edgekit.tflite_model import load_tflite

    try:
        model = load_tflite(path)
    except EdgekitError:
        return None
    if len(model.inputs) != 1:
        return None
    tensor = model.input_tensors()[0]
    return tuple(int(d) for d in tensor.shape), tensor.dtype.lower()


def _keras_zip_config(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("config.json")
        if info.file_size > MAX_CONFIG_BYTES:
            return None
        return jsonfile.loads(archive.read(info), f"{path}: config.json", expect=dict)


def _h5_config(path: Path) -> Any:
    import h5py

    with h5py.File(path, "r") as handle:
        raw = handle.attrs.get("model_config")
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if not isinstance(raw, str) or len(raw) > MAX_CONFIG_BYTES:
        return None
    return jsonfile.loads(raw, f"{path}: model_config", expect=dict)


def _config_signature(config: Any) -> tuple[tuple[int, ...], str] | None:
    """The one InputLayer of a Functional or Sequential config (Keras 3 or tf_keras).

    >>> layer = {"class_name": "InputLayer", "config": {"batch_shape": [None, 96, 96, 3]}}
    >>> _config_signature({"class_name": "Functional", "config": {"layers": [layer]}})
    ((1, 96, 96, 3), 'float32')
    """
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        return None
    body = config["config"]
    layers = body.get("layers")
    if not isinstance(layers, list):
        return None
    inputs = [
        layer.get("config")
        for layer in layers
        if isinstance(layer, dict) and layer.get("class_name") == "InputLayer"
    ]
    if config.get("class_name") == "Sequential" and not inputs:
        shape = body.get("build_input_shape")
        return _shape(shape, "float32") if shape is not None else None
    if len(inputs) != 1 or not isinstance(inputs[0], dict):
        return None
    layer = inputs[0]
    shape = layer.get("batch_shape", layer.get("batch_input_shape"))
    dtype = layer.get("dtype", "float32")
    if isinstance(dtype, dict):  # Keras 3 DTypePolicy objects
        dtype = (dtype.get("config") or {}).get("name", "float32")
    return _shape(shape, dtype if isinstance(dtype, str) else "float32")


def _shape(shape: Any, dtype: str) -> tuple[tuple[int, ...], str] | None:
    if not isinstance(shape, list) or len(shape) < 2:
        return None
    rest = shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in rest):
        return None  # unknown dimensions: the loader explains
    return (1, *rest), dtype
