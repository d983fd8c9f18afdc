"""Load a model from any supported source into one :class:`LoadedModel`.

Sources: a live Keras model (Keras 2 `tf_keras` or Keras 3), `.keras`, legacy `.h5` (loaded
with `tf_keras`), a SavedModel directory, and `.tflite` (already converted: it can be inspected,
exported for TFLM and verified, but not re-quantized).

Model files are untrusted. Every Keras format loads in safe mode: a `Lambda` layer holding
Python bytecode (which runs when the model is rebuilt) is refused, in `.keras` by Keras's own
safe mode and in legacy `.h5` by reading the file's config before anything is built (and by
tf_keras's safe-mode scope). `unsafe=True` (`--unsafe-deserialization`) is the explicit,
recorded opt-in. Custom objects are used only when passed explicitly.

Files are loaded and converted in a worker process (:mod:`edgekit.isolation`) that holds
TensorFlow: a crash in TensorFlow or the converter is an error, not edgekit's end, and the
caller's process need not import TensorFlow at all. The worker is shared by a process's
deploys and caches the last models it loaded. Live models stay in the caller's process.

>>> from edgekit.models import load_model
>>> loaded = load_model("model.keras")     # doctest: +SKIP
>>> loaded.input_shape                      # doctest: +SKIP
(1, 8, 8, 1)
"""

from __future__ import annotations

import atexit
import importlib
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit import jsonfile
from edgekit._tf import import_tfmot, safe_mode_scope, tensorflow, tf_keras
from edgekit.data import InputSpec, regular_file
from edgekit.errors import EdgekitError, UsageError
from edgekit.isolation import Worker
from edgekit.tflite_model import MAX_MODEL_BYTES, TFLiteModel, load_tflite

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@dataclass
class LoadedModel:
    """A model ready to convert: static batch-1 input shapes, and how to call it.

    `input_shape`/`input_dtype` describe the first input; `input_specs` every input, in the
    model's order, by the names its data uses (an `.npz` key, a signature name).
    """

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
    worker: Any = None  # the isolation.Worker that holds this file's model, if any
    qat: bool | None = None  # known without the Keras object (a model held by a worker)
    input_specs: tuple[InputSpec, ...] = ()
    writer: str = ""  # which Keras wrote the file ("Keras 3.15.1 (tensorflow backend)")

    def __post_init__(self) -> None:
        if not self.input_specs:
            self.input_specs = (InputSpec("x", tuple(self.input_shape), self.input_dtype),)

    @property
    def inputs(self) -> Any:
        """What :func:`edgekit.data.load_dataset` checks data against: the input's shape, or
        every input's :class:`~edgekit.data.InputSpec` when there are several."""
        return list(self.input_specs) if len(self.input_specs) > 1 else self.input_shape

    def tf_specs(self) -> list[Any]:
        """One `tf.TensorSpec` per input, named as the data names it (the converted model's
        signature then carries those names, and feeds are matched by them)."""
        tf = tensorflow()
        if len(self.input_specs) == 1:
            return [tf.TensorSpec(self.input_shape, tf.as_dtype(self.input_dtype), name="input")]
        return [tf.TensorSpec(s.shape, tf.as_dtype(s.dtype), name=s.name) for s in self.input_specs]

    @property
    def is_tflite(self) -> bool:
        return self.kind == "tflite"

    @property
    def is_qat(self) -> bool:
        """A QAT model: fake-quant wrappers carry ranges learned in training."""
        if self.qat is not None:
            return self.qat
        return is_qat_model(self.keras_model)

    def concrete_function(self) -> Any:
        """A TF concrete function with fixed [1, ...] inputs: no dynamic batch survives."""
        tf = tensorflow()
        specs = self.tf_specs()
        if self.saved_model is not None:
            signature = self.saved_model.signatures["serving_default"]
            args = list(signature.structured_input_signature[1])
            if len(args) == 1:

                def call(*xs):
                    return signature(**{args[0]: xs[0]})
            else:  # the signature's arguments carry the input names (see _keras3_saved_model)
                names = [s.name for s in self.input_specs]

                def call(*xs):
                    return signature(**dict(zip(names, xs, strict=True)))

        else:
            model = self.keras_model
            names = list(getattr(model, "output_names", None) or [])
            outputs = getattr(model, "outputs", None) or []
            several = len(specs) > 1

            def call(*xs):
                result = model(list(xs) if several else xs[0], training=False)
                # Several outputs keep their Keras names in the signature, so verification
                # matches them by name (the converter does not keep Keras's order).
                if len(outputs) > 1 and len(names) == len(outputs):
                    return dict(zip(names, result, strict=True))
                return result

        return tf.function(call).get_concrete_function(*specs)

    @property
    def trackable(self) -> Any:
        return self.saved_model if self.saved_model is not None else self.keras_model


# Fake-quant layers: tfmot's (tf_keras) and edgekit's (Keras 3, edgekit.keras.qat3_layers).
QAT_CLASSES = (
    "QuantizeWrapper",
    "QuantizeWrapperV2",
    "QuantizeLayer",
    "QuantizeWeights",
    "QuantizeActivation",
)


def is_qat_model(model: Any) -> bool:
    """True when the model carries fake-quant layers (its ranges came from training).

    Checked by class name, so no tfmot import is needed.
    """
    return any(type(layer).__name__ in QAT_CLASSES for layer in getattr(model, "layers", []))


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


def input_name(name: Any, position: int, taken: set[str]) -> str:
    """A model input's name as data and signatures use it: letters, digits, `_`, `-` and `.`
    (what TensorFlow accepts in a TensorSpec name), unique, else `x<position>`.

    >>> input_name("image", 0, set()), input_name("my input:0", 1, set()), input_name("", 2, set())
    ('image', 'my_input_0', 'x2')
    """
    text = re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name or "")).strip("_.-")
    if not text or not text[0].isalpha() or text in taken:
        text = f"x{position}"
    taken.add(text)
    return text


def _keras_specs(inputs: list[Any], source: str) -> tuple[InputSpec, ...]:
    taken: set[str] = set()
    specs = []
    for i, tensor in enumerate(inputs):
        dtype = getattr(tensor, "dtype", "float32")
        dtype = str(getattr(dtype, "name", dtype))
        name = getattr(tensor, "name", "") if len(inputs) > 1 else "x"
        specs.append(
            InputSpec(input_name(name, i, taken), _static_input(tensor.shape, source), dtype)
        )
    return tuple(specs)


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
    specs = _keras_specs(list(inputs), source)
    loaded = LoadedModel(
        name=name or getattr(model, "name", "model") or "model",
        source=source,
        kind=kind,
        input_shape=specs[0].shape,
        input_dtype=specs[0].dtype,
        keras_model=model,
        input_specs=specs,
    )
    if kind == "keras3":
        loaded.saved_model = _keras3_saved_model(model, loaded.tf_specs())
    return loaded


def _keras3_saved_model(model: Any, specs: list[Any]) -> Any:
    """Keras 3 variables are not frozen when traced directly (the converter leaves
    VAR_HANDLE/READ_VARIABLE ops); its own SavedModel export converts cleanly. The export
    is traced at the deployed shape (batch 1): traced with a free batch, a GRU or LSTM's loop
    keeps a TensorList of unknown shape, which the converter refuses. The signature names
    every input by its spec and, with several outputs, every output by its Keras name (a
    plain `model.export` calls them output_0, output_1)."""
    import keras

    tf = tensorflow()
    names = list(getattr(model, "output_names", None) or [])
    named = len(getattr(model, "outputs", None) or []) > 1 and len(set(names)) == len(names)

    def serve(*xs: Any) -> Any:
        result = model(list(xs) if len(xs) > 1 else xs[0], training=False)
        return dict(zip(names, result, strict=True)) if named else result

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serve", fn=serve, input_signature=specs)
    with tempfile.TemporaryDirectory(prefix="edgekit-keras3-") as tmp:
        archive.write_out(tmp, verbose=False)
        return tf.saved_model.load(tmp)


MAX_CONFIG_BYTES = 64 * 1024 * 1024


def _keras_file_version(path: Path) -> str:
    """The Keras version in a `.keras` archive's metadata, after checking that its metadata
    and config are JSON objects that recursive loaders can walk."""
    try:
        with zipfile.ZipFile(path) as archive:
            texts = {}
            for name in ("metadata.json", "config.json"):
                if archive.getinfo(name).file_size > MAX_CONFIG_BYTES:
                    raise UsageError(f"{path}: {name} is over {MAX_CONFIG_BYTES >> 20} MiB")
                texts[name] = archive.read(name)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
        raise UsageError(f"{path}: not a valid .keras archive ({exc})") from None
    meta = jsonfile.loads(texts["metadata.json"], f"{path}: metadata.json", expect=dict)
    jsonfile.loads(texts["config.json"], f"{path}: config.json", expect=dict)
    return str(meta.get("keras_version", ""))


UNSAFE_HINT = (
    "loading it would run that code. If you trust the file, pass --unsafe-deserialization "
    "(Python: unsafe=True); the report records it"
)


def check_keras_file(path: Path, unsafe: bool = False) -> bool:
    """Cheap checks before TensorFlow loads: the format, and for HDF5 the config. Returns
    whether Keras 3 wrote the file (`.keras` or `.h5`): it then loads with Keras 3."""
    regular_file(path, "model", MAX_MODEL_BYTES)
    if path.suffix == ".keras":
        return _keras_file_version(path).startswith("3")
    _check_hdf5(path)
    if not unsafe:
        lambdas = hdf5_lambda_layers(path)
        if lambdas:
            raise UsageError(
                f"{path}: Lambda layer(s) {', '.join(lambdas[:3])} hold Python bytecode; "
                + UNSAFE_HINT
            )
    return keras_file_writer(path)[0].startswith("3")


def keras_file_writer(path: Path) -> tuple[str, str]:
    """(Keras version, backend) that wrote a `.keras` or `.h5` file, read without loading it
    ("" where the file does not say). tf_keras writes 2.x versions; Keras 3 writes 3.x.

    >>> keras_file_writer(Path("missing.h5"))
    ('', '')
    """
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                info = archive.getinfo("metadata.json")
                if info.file_size > MAX_CONFIG_BYTES:
                    return "", ""
                meta = jsonfile.loads(archive.read(info), f"{path}: metadata.json", expect=dict)
            return str(meta.get("keras_version", "")), ""
        import h5py  # ~50 ms: only when an .h5 file is read

        with h5py.File(path, "r") as handle:
            attrs = {k: handle.attrs.get(k) for k in ("keras_version", "backend")}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EdgekitError):
        return "", ""
    return tuple(  # type: ignore[return-value]
        (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v or ""))[:40]
        for v in attrs.values()
    )


def writer_text(path: Path) -> str:
    """ "Keras 3.15.1 (tensorflow backend)" / "tf_keras 2.21.0", or "" if the file is silent."""
    version, backend = keras_file_writer(path)
    if not version:
        return ""
    name = "Keras" if version.startswith("3") else "tf_keras"
    return f"{name} {version}" + (f" ({backend} backend)" if backend else "")


def custom_class_names(path: Path) -> list[str]:
    """Registered names of the user's own classes (`package>Class`) in a model file's config,
    read without building anything; [] when the config cannot be read."""
    try:
        if path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                config = jsonfile.loads(archive.read("config.json"), f"{path}: config.json")
        else:
            import h5py  # ~50 ms: only when an .h5 file is read

            with h5py.File(path, "r") as handle:
                raw = handle.attrs.get("model_config")
            config = jsonfile.loads(
                raw if isinstance(raw, bytes) else str(raw), f"{path}: model_config"
            )
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EdgekitError):
        return []
    found: list[str] = []

    for node in config_nodes(config):
        for key in ("registered_name", "class_name"):
            name = node.get(key)
            if isinstance(name, str) and ">" in name and name not in found:
                found.append(name)
    return found


def config_nodes(config: Any) -> Iterator[dict]:
    """Every object (dict) in a Keras JSON config, outermost first, without recursion."""
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def hdf5_lambda_layers(path: Path) -> list[str]:
    """Names of Lambda layers whose function is serialized bytecode, read from a legacy
    `.h5` file's `model_config` without building anything."""
    import h5py  # ~50 ms: only when an .h5 file is read

    try:
        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable HDF5 file ({exc})") from None
    if raw is None:
        raise UsageError(f"{path}: HDF5 file holds no Keras model (no model_config)")
    config = jsonfile.loads(raw if isinstance(raw, bytes) else str(raw), f"{path}: model_config")
    found: list[str] = []

    for node in config_nodes(config):
        cfg = node.get("config")
        if node.get("class_name") == "Lambda" and isinstance(cfg, dict):
            if cfg.get("function_type") != "function":
                found.append(str(cfg.get("name", "?")))
    return found


def _load_keras_file(path: Path, custom_objects: dict | None, unsafe: bool = False) -> LoadedModel:
    # Cheap format checks first: a corrupt or unsafe file is reported before TensorFlow loads.
    is_keras3 = check_keras_file(path, unsafe)
    keras2 = tf_keras()
    try:
        if is_keras3:
            import keras  # Keras 3 file: load with Keras 3

            _register_edgekit_classes(path)

            model = keras.saving.load_model(
                path, custom_objects=custom_objects, compile=False, safe_mode=not unsafe
            )
        elif path.suffix == ".keras":  # a .keras archive written by tf_keras
            model = keras2.models.load_model(
                path, custom_objects=custom_objects, compile=False, safe_mode=not unsafe
            )
        else:
            with safe_mode_scope(keras2, not unsafe):  # legacy .h5: tf_keras's lambda guard
                model = keras2.models.load_model(path, custom_objects=custom_objects, compile=False)
    except EdgekitError:
        raise
    except Exception as exc:
        # tfmot wrappers are unknown classes outside its scopes: Keras reports them as a
        # ValueError (unknown layer) or, inside Sequential, a TypeError naming the class.
        if "lambda" in str(exc).lower() and "safe_mode" in str(exc):
            raise UsageError(f"{path}: a Lambda layer holds Python code; {UNSAFE_HINT}") from None
        if not any(name in str(exc) for name in ("Quantize", "Prune", "Cluster")):
            unknown = [
                n
                for n in custom_class_names(path)
                if n not in (custom_objects or {}) and n not in EDGEKIT_KERAS3_CLASSES
            ]
            if unknown:
                raise UsageError(
                    f"{path}: custom class(es) {', '.join(unknown[:3])} unknown here: load it "
                    "from Python with custom_objects={name: class} (edgekit.deploy(..., "
                    "custom_objects=...)) or with the class registered "
                    "(keras.saving.register_keras_serializable)"
                ) from None
            raise UsageError(f"{path}: cannot load Keras model ({_one_line(exc)})") from exc
        model = _load_with_tfmot_scope(path, custom_objects, keras2, unsafe)
    loaded = from_keras(model, str(path), name=path.stem)
    loaded.unsafe = unsafe
    loaded.writer = writer_text(path)
    return loaded


# edgekit's own Keras 3 layers that a saved model may hold (library code, registered on import).
EDGEKIT_KERAS3_CLASSES = {
    "edgekit>PruneLowMagnitude": "edgekit.keras.pruning3",
    "edgekit>ClusterWeights": "edgekit.keras.clustering3",
    "edgekit>QuantizeWeights": "edgekit.keras.qat3_layers",
    "edgekit>QuantizeActivation": "edgekit.keras.qat3_layers",
    "edgekit>GroupLasso": "edgekit.keras.sparsity",  # sparsify's regulariser
}


def _register_edgekit_classes(path: Path) -> None:
    """Import the modules that register edgekit's Keras 3 classes a file uses (a pruned or
    clustered model saved before stripping): Keras resolves them by registered name."""
    for name in custom_class_names(path):
        if name in EDGEKIT_KERAS3_CLASSES:
            importlib.import_module(EDGEKIT_KERAS3_CLASSES[name])


def _load_with_tfmot_scope(
    path: Path, custom_objects: dict | None, keras2: Any, unsafe: bool = False
) -> Any:
    """Models saved mid-compression hold tfmot's wrapper classes (library code, not user
    code); load them inside tfmot's scopes."""
    mot = import_tfmot()
    options = {"custom_objects": custom_objects, "compile": False}
    if path.suffix == ".keras":
        options["safe_mode"] = not unsafe
    try:
        with (
            safe_mode_scope(keras2, not unsafe),
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
    regular_file(path / "saved_model.pb", "SavedModel graph", MAX_MODEL_BYTES)
    tf = tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:
        raise UsageError(f"{path}: cannot load SavedModel ({_one_line(exc)})") from exc
    signature = getattr(loaded, "signatures", {}).get("serving_default")
    if signature is None:
        raise UsageError(f"{path}: SavedModel has no 'serving_default' signature")
    specs = signature.structured_input_signature[1]
    if not specs:
        raise UsageError(f"{path}: the SavedModel's signature takes no inputs")
    inputs = tuple(
        InputSpec(
            name if len(specs) > 1 else "x", _static_input(spec.shape, str(path)), spec.dtype.name
        )
        for name, spec in specs.items()
    )
    return LoadedModel(
        name=path.name,
        source=str(path),
        kind="savedmodel",
        input_shape=inputs[0].shape,
        input_dtype=inputs[0].dtype,
        saved_model=loaded,
        input_specs=inputs,
    )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}".strip()


def load_model(
    model: Any,
    custom_objects: dict | None = None,
    *,
    unsafe: bool = False,
    isolate: bool | None = None,
) -> LoadedModel:
    """Load a path (str/Path) or wrap a live Keras model.

    `unsafe=True` allows Lambda bytecode in Keras files (it runs while loading). `isolate`
    (default: for Keras files and SavedModels loaded without `custom_objects`) loads and later
    converts the model in the shared conversion worker process.
    """
    if isinstance(model, LoadedModel):
        return model
    if not isinstance(model, (str, Path)):
        return from_keras(model)
    path = Path(model)
    if not path.exists():
        raise UsageError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise UsageError(f"{path}: directory is not a SavedModel (no saved_model.pb)")
    elif suffix == ".tflite":
        return _load_tflite_file(path)
    elif suffix not in KERAS_SUFFIXES:
        raise UsageError(
            f"{path}: unsupported model file; expected .keras, .h5, .tflite or a SavedModel "
            "directory"
        )
    else:
        check_keras_file(path, unsafe)  # format and safety, before any process loads TF
    if isolate is None:
        isolate = custom_objects is None and not _registered_custom_objects()
    if isolate:
        return _load_in_worker(path, unsafe)
    return _load_in_process(path, custom_objects, unsafe)


def _registered_custom_objects() -> bool:
    """Has this process registered Keras classes (`register_keras_serializable`)? A worker
    process would not know them, so such files load here."""
    for name in ("tf_keras", "keras"):
        module = sys.modules.get(name)
        saving = getattr(module, "saving", None) if module is not None else None
        try:
            registered = saving.get_custom_objects().values() if saving is not None else ()
        except Exception:  # an old Keras without the helper
            continue
        library = ("tf_keras.", "keras.", "tensorflow", "edgekit.")
        if any(not getattr(obj, "__module__", "").startswith(library) for obj in registered):
            return True
    return False


def _load_in_process(path: Path, custom_objects: dict | None, unsafe: bool) -> LoadedModel:
    if path.is_dir():
        return _load_saved_model(path)
    return _load_keras_file(path, custom_objects, unsafe)


def _load_tflite_file(path: Path) -> LoadedModel:
    tflite = load_tflite(path)
    if not tflite.inputs:
        raise UsageError(f"{path}: the model has no inputs")
    for tensor in tflite.input_tensors():
        if any(d < 1 for d in tensor.shape):
            raise UsageError(
                f"{path}: input shape {list(tensor.shape)} has dimensions below 1; edge "
                "runtimes need a static input shape (convert the model with a fixed input size)"
            )
    taken: set[str] = set()
    several = len(tflite.inputs) > 1
    specs = tuple(
        InputSpec(
            input_name(tflite.io_name(index), i, taken) if several else "x",
            tuple(tflite.tensors[index].shape),
            tflite.tensors[index].dtype.lower(),
        )
        for i, index in enumerate(tflite.inputs)
    )
    return LoadedModel(
        name=path.stem,
        source=str(path),
        kind="tflite",
        input_shape=specs[0].shape,
        input_dtype=specs[0].dtype,
        tflite=tflite,
        input_specs=specs,
    )


# --- the conversion worker -------------------------------------------------------------------

_WORKER: Any = None
_CACHE: dict[tuple, LoadedModel] = {}  # worker-side: the models this worker loaded
_CACHE_SIZE = 2
LOAD_TIMEOUT = 600.0


def conversion_worker() -> Any:
    """The process-wide worker that loads and converts model files (started on first use)."""
    global _WORKER
    if _WORKER is None:
        _WORKER = Worker("TensorFlow")
        atexit.register(stop_conversion_worker)
    return _WORKER


def stop_conversion_worker() -> None:
    """Stop the conversion worker (at exit, or earlier). A Ctrl-C that lands meanwhile is
    absorbed: it arrived as the process ends, and used to print a traceback from atexit."""
    if _WORKER is None:
        return
    try:
        _WORKER.stop()
    except KeyboardInterrupt:
        _WORKER.stop()


def _file_key(path: str, unsafe: bool) -> tuple:
    stat = os.stat(path)
    return (os.path.realpath(path), stat.st_mtime_ns, stat.st_size, unsafe)


def cached_model(path: str, unsafe: bool) -> LoadedModel:
    """Worker-side: the loaded model for `path`, loading it when the file is new or changed."""
    key = _file_key(path, unsafe)
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _load_in_process(Path(path), None, unsafe)
    return _CACHE[key]


def describe(path: str, unsafe: bool) -> dict[str, Any]:
    """Worker-side: what the caller needs to know of a model it does not hold."""
    loaded = cached_model(path, unsafe)
    return {
        "name": loaded.name,
        "kind": loaded.kind,
        "input_shape": loaded.input_shape,
        "input_dtype": loaded.input_dtype,
        "input_specs": [(s.name, s.shape, s.dtype) for s in loaded.input_specs],
        "writer": loaded.writer,
        "qat": loaded.is_qat,
        "notes": list(loaded.notes),
    }


def _load_in_worker(path: Path, unsafe: bool) -> LoadedModel:
    worker = conversion_worker()
    info = worker.call("edgekit.models:describe", str(path), unsafe, timeout=LOAD_TIMEOUT)
    return LoadedModel(
        name=info["name"],
        source=str(path),
        kind=info["kind"],
        input_shape=tuple(info["input_shape"]),
        input_dtype=info["input_dtype"],
        input_specs=tuple(InputSpec(n, tuple(shape), d) for n, shape, d in info["input_specs"]),
        writer=info["writer"],
        notes=info["notes"],
        unsafe=unsafe,
        worker=worker,
        qat=info["qat"],
    )
