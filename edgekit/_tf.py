"""The one place that imports TensorFlow.

tfmot wraps Keras 2 (`tf_keras`), so `TF_USE_LEGACY_KERAS=1` must be set before TensorFlow is
first imported. Every edgekit module that needs TensorFlow calls :func:`tensorflow` instead of
importing it, which also keeps `edgekit --help` free of the 4 s, 600 MB import.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType


def tensorflow() -> ModuleType:
    """Import TensorFlow with Keras 2 selected and its start-up chatter muted.

    >>> tf = tensorflow()
    >>> tf.keras.__name__.startswith("tf_keras")
    True
    """
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        # Imported elsewhere before us: tf.keras is whatever that import chose.
        import tensorflow as tf

        return tf
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from edgekit._fdcapture import capture_native_output
    from edgekit.errors import ToolError

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


def tf_keras() -> ModuleType:
    """Return the Keras 2 package (`tf_keras`) that tfmot works with."""
    tensorflow()
    import tf_keras as keras

    return keras
