"""Load a model from any supported source into one :class:`LoadedModel`.

Sources: a live Keras model (Keras 2 `tf_keras` or Keras 3), `.keras`, legacy `.h5` (loaded
with `tf_keras`), a SavedModel directory, and `.tflite` (already converted: it can be inspected,
exported for TFLM and verified, but not re-quantized). Keras files load in safe mode; custom
objects are used only when passed explicitly.

>>> from edgekit.models import load_model
>>> loaded = load_model("model.keras")     # doctest: +SKIP
>>> loaded.input_shape                      # doctest: +SKIP
(1, 8, 8, 1)
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError, UsageError
from edgekit.tflite_model import TFLiteModel, load_tflite

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass
class LoadedModel:
    """A model ready to convert: one input, a static batch-1 shape, and how to call it."""

    name: str
    source: str
    kind: str  # "keras2" | "keras3" | "savedmodel" | "tflite"
    input_shape: tuple[int, ...]
    input_dtype: str
    keras_model: Any = None
    saved_model: Any = None
    tflite: TFLiteModel | None = None
    notes: list[str] = field(default_factory=list)
    unsafe: bool = False  # loaded with unsafe deserialization (user opt-in; recorded)

    @property
    def is_tflite(self) -> bool:
        return self.kind == "tflite"

    @property
    def is_qat(self) -> bool:
        """A QAT model: fake-quant wrappers carry ranges learned in training."""
        return is_qat_model(self.keras_model)

    def concrete_function(self) -> Any:
        """A TF concrete function with a fixed [1, ...] input: no dynamic batch survives."""
        from edgekit._tf import tensorflow

        tf = tensorflow()
        spec = tf.TensorSpec(self.input_shape, tf.as_dtype(self.input_dtype), name="input")
        if self.saved_model is not None:
            signature = self.saved_model.signatures["serving_default"]
            arg = next(iter(signature.structured_input_signature[1]))

            def call(x):
                return signature(**{arg: x})

        else:
            model = self.keras_model
            names = list(getattr(model, "output_names", None) or [])
            outputs = getattr(model, "outputs", None) or []

            def call(x):
                result = model(x, training=False)
                # Several outputs keep their Keras names in the signature, so verification
                # matches them by name (the converter does not keep Keras's order).
                if len(outputs) > 1 and len(names) == len(outputs):
                    return dict(zip(names, result, strict=True))
                return result

        return tf.function(call).get_concrete_function(spec)

    @property
    def trackable(self) -> Any:
        return self.saved_model if self.saved_model is not None else self.keras_model


def is_qat_model(model: Any) -> bool:
    """True when the model carries tfmot fake-quant wrappers (its ranges came from training).

    Checked by class name, so no tfmot import is needed.
    """
    return any(
        type(layer).__name__ in ("QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer")
        for layer in getattr(model, "layers", [])
    )


def _static_input(shape: Any, source: str) -> tuple[int, ...]:
    dims = list(shape)
    if not dims:
        raise UsageError(f"{source}: model input has no shape")
    rest = dims[1:]
    if any(d is None or int(d) < 0 for d in rest):
        raise UsageError(
            f"{source}: input shape {[None if d is None else int(d) for d in dims]} has unknown "
            "dimensions besides the batch; edge runtimes need static shapes. Rebuild the model "
            "with a fixed input size (e.g. keras.Input(shape=(96, 96, 3)))"
        )
    return (1, *(int(d) for d in rest))


def from_keras(model: Any, source: str = "<keras model>", name: str | None = None) -> LoadedModel:
    """Wrap a live Keras 2 (`tf_keras`) or Keras 3 model."""
    module = type(model).__module__
    kind = "keras2" if module.startswith("tf_keras") else "keras3"
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise UsageError(
            f"{source}: the model has no defined inputs; build it (call it once or use "
            "keras.Input) before deploying"
        )
    if len(inputs) != 1:
        raise UsageError(f"{source}: models with {len(inputs)} inputs are not supported yet")
    dtype = getattr(inputs[0], "dtype", "float32")
    dtype = getattr(dtype, "name", dtype)
    return LoadedModel(
        name=name or getattr(model, "name", "model") or "model",
        source=source,
        kind=kind,
        input_shape=_static_input(inputs[0].shape, source),
        input_dtype=str(dtype),
        keras_model=model,
        saved_model=_keras3_saved_model(model) if kind == "keras3" else None,
    )


def _keras3_saved_model(model: Any) -> Any:
    """Keras 3 variables are not frozen when traced directly (the converter leaves
    VAR_HANDLE/READ_VARIABLE ops); its own SavedModel export converts cleanly."""
    import tempfile

    from edgekit._tf import tensorflow

    tf = tensorflow()
    with tempfile.TemporaryDirectory(prefix="edgekit-keras3-") as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        return tf.saved_model.load(tmp)


def _keras_file_version(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("metadata.json"))
        return str(meta.get("keras_version", ""))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError) as exc:
        raise UsageError(f"{path}: not a valid .keras archive ({exc})") from None


def _load_keras_file(path: Path, custom_objects: dict | None) -> LoadedModel:
    from edgekit._tf import tf_keras

    # Cheap format checks first: a corrupt file is reported before TensorFlow loads.
    is_keras3 = path.suffix == ".keras" and _keras_file_version(path).startswith("3")
    if path.suffix != ".keras":
        _check_hdf5(path)
    keras2 = tf_keras()
    try:
        if is_keras3:
            import keras  # Keras 3 file: load with Keras 3

            model = keras.saving.load_model(
                path, custom_objects=custom_objects, compile=False, safe_mode=True
            )
        elif path.suffix == ".keras":
            model = keras2.models.load_model(
                path, custom_objects=custom_objects, compile=False, safe_mode=True
            )
        else:
            model = keras2.models.load_model(path, custom_objects=custom_objects, compile=False)
    except EdgekitError:
        raise
    except Exception as exc:
        # tfmot wrappers are unknown classes outside its scopes: Keras reports them as a
        # ValueError (unknown layer) or, inside Sequential, a TypeError naming the class.
        if not any(name in str(exc) for name in ("Quantize", "Prune", "Cluster")):
            raise UsageError(f"{path}: cannot load Keras model ({_one_line(exc)})") from exc
        model = _load_with_tfmot_scope(path, custom_objects, keras2)
    return from_keras(model, str(path), name=path.stem)


def _load_with_tfmot_scope(path: Path, custom_objects: dict | None, keras2: Any) -> Any:
    """Models saved mid-compression hold tfmot's wrapper classes (library code, not user
    code); load them inside tfmot's scopes."""
    from edgekit.keras._tfmot import tfmot

    mot = tfmot()
    options = {"custom_objects": custom_objects, "compile": False}
    if path.suffix == ".keras":
        options["safe_mode"] = True
    try:
        with (
            mot.quantization.keras.quantize_scope(),
            mot.sparsity.keras.prune_scope(),
            mot.clustering.keras.cluster_scope(),
        ):
            return keras2.models.load_model(path, **options)
    except Exception as exc:
        hint = ""
        if path.suffix == ".keras" and "variables during loading" in str(exc):
            hint = (
                "; tfmot QAT models do not load back from .keras files (tfmot bug, "
                "tensorflow/model-optimization#1123): save them as .h5, or "
                "deploy the live model"
            )
        raise UsageError(f"{path}: cannot load Keras model ({_one_line(exc)}){hint}") from exc


def _check_hdf5(path: Path) -> None:
    with path.open("rb") as handle:
        if handle.read(8) != b"\x89HDF\r\n\x1a\n":
            raise UsageError(f"{path}: not an HDF5 file (legacy .h5 Keras models are HDF5)")


def _load_saved_model(path: Path) -> LoadedModel:
    from edgekit._tf import tensorflow

    tf = tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise UsageError(f"{path}: cannot load SavedModel ({_one_line(exc)})") from exc
    signature = getattr(loaded, "signatures", {}).get("serving_default")
    if signature is None:
        raise UsageError(f"{path}: SavedModel has no 'serving_default' signature")
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        raise UsageError(f"{path}: SavedModels with {len(specs)} inputs are not supported yet")
    spec = next(iter(specs.values()))
    return LoadedModel(
        name=path.name,
        source=str(path),
        kind="savedmodel",
        input_shape=_static_input(spec.shape, str(path)),
        input_dtype=spec.dtype.name,
        saved_model=loaded,
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".strip()


def load_model(model: Any, custom_objects: dict | None = None) -> LoadedModel:
    """Load a path (str/Path) or wrap a live Keras model."""
    if isinstance(model, LoadedModel):
        return model
    if not isinstance(model, (str, Path)):
        return from_keras(model)
    path = Path(model)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            return _load_saved_model(path)
        raise UsageError(f"{path}: directory is not a SavedModel (no saved_model.pb)")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        tflite = load_tflite(path)
        if len(tflite.inputs) != 1:
            raise UsageError(
                f"{path}: models with {len(tflite.inputs)} inputs are not supported yet"
            )
        tensor = tflite.input_tensors()[0]
        return LoadedModel(
            name=path.stem,
            source=str(path),
            kind="tflite",
            input_shape=tensor.shape,
            input_dtype=tensor.dtype.lower(),
            tflite=tflite,
        )
    if suffix in KERAS_SUFFIXES:
        return _load_keras_file(path, custom_objects)
    raise UsageError(
        f"{path}: unsupported model file; expected .keras, .h5, .tflite or a SavedModel directory"
    )
