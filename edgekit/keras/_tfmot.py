"""Import tfmot after TensorFlow has been imported with Keras 2 selected."""

from __future__ import annotations

from types import ModuleType


def tfmot() -> ModuleType:
    from edgekit._tf import tensorflow

    tensorflow()
    import tensorflow_model_optimization

    return tensorflow_model_optimization
