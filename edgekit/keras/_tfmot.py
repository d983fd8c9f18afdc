"""Import tfmot the edgekit way: it works on tf_keras models, and the user's Keras stays
whatever it was (see :func:`edgekit._tf.import_tfmot`)."""

from __future__ import annotations

from types import ModuleType

from edgekit._tf import import_tfmot


def tfmot() -> ModuleType:
    return import_tfmot()
