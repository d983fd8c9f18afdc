"""`Callback`: the base of edgekit's callbacks, a callback of both Kerases at once.

A class derived from it goes into Keras 3's `fit` and into tf_keras's alike, so a technique
that needs a callback (pruning steps, channel-pruning schedules, proximal sparsity) writes it
once for both.

>>> import keras
>>> from edgekit._tf import tf_keras
>>> isinstance(Callback(), keras.callbacks.Callback), isinstance(Callback(), tf_keras().callbacks.Callback)
(True, True)
"""  # noqa: E501

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
