"""The base class of edgekit's callbacks: a `Callback` of Keras 3 and of tf_keras at once.

>>> import keras
>>> from edgekit._tf import tf_keras
>>> callback = Callback()
>>> isinstance(callback, keras.callbacks.Callback)
True
>>> isinstance(callback, tf_keras().callbacks.Callback)
True
"""

from __future__ import annotations

from edgekit._tf import keras3, tf_keras

keras = keras3()


class Callback(keras.callbacks.Callback, tf_keras().callbacks.Callback):
    """A callback for Keras 3's `fit` and for tf_keras's: the model is `self.model` in both.

    Keras 3's base comes first: it holds the model (`set_model`, the `model` property); the
    attributes tf_keras's callback list reads are set here.
    """

    def __init__(self) -> None:
        keras.callbacks.Callback.__init__(self)
        self.validation_data = None
        self._chief_worker_only = None
        self._supports_tf_logs = False
