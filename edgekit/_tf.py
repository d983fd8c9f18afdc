"""The one place that imports TensorFlow.

edgekit never chooses the user's Keras: `tf.keras` stays what TensorFlow makes it (Keras 3 in
TF 2.21), and no process-wide `TF_USE_LEGACY_KERAS` is set. tf_keras models and tfmot use the
`tf_keras` package explicitly (:func:`tf_keras`). tfmot sets `TF_USE_LEGACY_KERAS=1` when it is
imported; :func:`import_tfmot` resolves `tf.keras` first and puts the variable back, so tfmot
neither changes what `tf.keras` is nor leaves the switch for the user's later imports.
Every edgekit module that needs TensorFlow calls :func:`tensorflow` instead of importing it,
which also keeps `edgekit --help` free of the 4 s, 600 MB import.
"""

from __future__ import annotations

import os
import sys
from contextlib import AbstractContextManager
from types import ModuleType

from edgekit._fdcapture import capture_native_output
from edgekit.errors import ToolError


def tensorflow() -> ModuleType:
    """Import TensorFlow with its start-up chatter muted; `tf.keras` is left as it is.

    >>> import keras
    >>> tf = tensorflow()
    >>> tf.keras.__name__.startswith("tf_keras") == (keras.__version__ < "3")
    True
    """
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        return tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # TensorFlow's native start-up lines (CUDA probing, absl) are noise for edgekit's users.
    with capture_native_output() as out:
        try:
            import tensorflow as tf

            error = None
        except ImportError as exc:
            error = exc
    if error is not None:
        raise ToolError(f"TensorFlow failed to import ({error}); {out.text.strip()[:200]}")
    tf.get_logger().setLevel("ERROR")
    return tf


def keras3() -> ModuleType:
    """Return Keras 3 (`import keras`), imported after TensorFlow so its start-up is muted."""
    tensorflow()
    import keras

    return keras


def tf_keras() -> ModuleType:
    """Return the Keras 2 package (`tf_keras`) that tfmot works with."""
    tensorflow()
    import tf_keras as keras

    return keras


def import_tfmot() -> ModuleType:
    """Import tfmot without its side effect on the process's Keras choice."""
    tf = tensorflow()
    if "tensorflow_model_optimization" in sys.modules:
        return sys.modules["tensorflow_model_optimization"]
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    getattr(tf.keras, "__name__", None)  # resolve tf.keras (lazy) before tfmot sets the switch
    try:
        import tensorflow_model_optimization
    finally:
        if before is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = before
    return tensorflow_model_optimization


def safe_mode_scope(keras: ModuleType, safe: bool) -> AbstractContextManager:
    """Keras's guard against Python code in model files (safe mode: a Lambda's bytecode is
    refused) set to `safe` for the deserialisation inside; `keras` is the package a model
    belongs to (tf_keras or Keras 3).

    Neither Keras exports this scope. `load_model(..., safe_mode=...)` covers `.keras` archives
    only: tf_keras's legacy `.h5` loader reads the flag from this scope, and loads lambdas when
    it is unset. `from_config` takes no flag, and the public `enable_unsafe_deserialization()`
    turns the guard off for the whole process. So this is edgekit's one import from the
    Kerases' private `src`.

    >>> with safe_mode_scope(tf_keras(), True):                       # doctest: +SKIP
    ...     model = tf_keras().models.load_model("model.h5", compile=False)
    """
    if keras.__name__.startswith("tf_keras"):
        from tf_keras.src.saving.serialization_lib import SafeModeScope
    else:
        from keras.src.saving.serialization_lib import SafeModeScope
    return SafeModeScope(safe)
