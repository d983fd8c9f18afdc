"""Masks that keep chosen weights at zero while a model trains (channel pruning in steps,
lottery tickets): multiply in place now, and again after every batch.

>>> import numpy as np
>>> from edgekit.keras import tf_keras
>>> v = tf_keras().backend.variable(np.ones(3, np.float32))
>>> apply_masks([(v, np.array([1.0, 0.0, 1.0], np.float32))]); v.numpy().tolist()
[1.0, 0.0, 1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit._tf import tensorflow
from edgekit.keras.callback_base import Callback

tf = tensorflow()


def as_tensors(pairs: list[tuple[Any, np.ndarray]]) -> list[tuple[Any, Any]]:
    return [(variable, tf.constant(mask, dtype=variable.dtype)) for variable, mask in pairs]


def apply_masks(pairs: list[tuple[Any, Any]]) -> None:
    """variable ← variable · mask, for each (variable, mask) pair."""
    for variable, mask in pairs:
        variable.assign(variable * tf.cast(mask, variable.dtype))


class MaskCallback(Callback):
    """Re-applies `pairs` after every training batch (and once when training begins); a
    callback of both Kerases, for variables of either."""

    def __init__(self, pairs: list[tuple[Any, np.ndarray]] | None = None) -> None:
        super().__init__()
        self.pairs = as_tensors(pairs or [])

    def set(self, pairs: list[tuple[Any, np.ndarray]]) -> None:
        self.pairs = as_tensors(pairs)
        apply_masks(self.pairs)

    def on_train_begin(self, logs: dict | None = None) -> None:
        apply_masks(self.pairs)

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        apply_masks(self.pairs)
