"""`fine_tune`: recover the accuracy a structural change cost, in one call.

After `prune_channels`, `factorize` or a lottery-ticket round the model has new layers and no
optimizer. `fine_tune` compiles it (Adam, the loss the original was compiled with, else one
inferred from the labels) and fits it; with `teacher=` (usually the model before the change)
it distils from it (soft targets, T = 4), which recovers more than labels alone when the data
is small. The model is trained in place; the History is returned. Either Keras: a Keras 3
model trains with Keras 3's `fit` (and a Keras 3 teacher), a tf_keras one with tf_keras's.

>>> history = fine_tune(smaller, x, y, epochs=3, teacher=model)   # doctest: +SKIP
>>> history.history["accuracy"][-1]                               # doctest: +SKIP
0.87
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import UsageError
from edgekit.keras._compat import copy_model, tensorflow_backend
from edgekit.keras.surgery import graph_model, keras_of


def _loss_for(y: np.ndarray, model: Any, teacher: Any) -> Any:
    for source in (model, teacher):
        loss = getattr(source, "loss", None) if source is not None else None
        if loss:
            return loss
    if np.issubdtype(y.dtype, np.integer) and y.ndim == 1:
        last = model.layers[-1]
        probabilities = getattr(getattr(last, "activation", None), "__name__", "") == "softmax" or (
            type(last).__name__ == "Softmax"
        )
        return keras_of(model).losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
    return "mse"


def _unshared(teacher: Any, student: Any) -> Any:
    """The teacher, or a frozen copy of it when it shares variables with the student.

    tfmot's `prune_low_magnitude(base)` wraps base's own layers: the pruned student and `base`
    then share every kernel, so distilling from `base` would distil from the student itself
    (a zero distillation loss) and freezing the teacher would freeze the student.
    """
    mine = {id(v) for v in student.weights}
    if not any(id(v) in mine for v in teacher.weights):
        return teacher
    return copy_model(teacher)


@tensorflow_backend
def fine_tune(
    model: Any,
    x: Any,
    y: Any,
    *,
    epochs: int = 3,
    learning_rate: float = 1e-3,
    batch_size: int = 64,
    teacher: Any = None,
    temperature: float = 4.0,
    alpha: float = 0.5,
    validation_data: Any = None,
    callbacks: list[Any] | None = None,
    verbose: int = 0,
) -> Any:
    """Compile and fit `model` (in place); distil from `teacher` when given. Returns History.

    Args:
      x, y: training inputs and labels (class indices or regression targets).
      teacher: a model whose soft outputs guide the student (`Distiller`, SoftTargetLoss).
      alpha: with a teacher, the weight of the label loss (the rest is distillation).
    """
    if epochs < 1:
        raise UsageError(f"epochs must be ≥ 1; received {epochs}")
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if len(x) != len(y):
        raise UsageError(f"x has {len(x)} samples and y {len(y)}")
    model = graph_model(model)
    keras = keras_of(model)
    loss = _loss_for(y, model, teacher)
    classification = np.issubdtype(y.dtype, np.integer)
    metrics = ["accuracy"] if classification else []
    optimizer = keras.optimizers.Adam(learning_rate)
    trained = model
    teacher_trainable = getattr(teacher, "trainable", None)
    if teacher is not None:
        from edgekit.keras.distillation import Distiller, SoftTargetLoss  # loads tf_keras

        teacher = _unshared(teacher, model)
        teacher_trainable = teacher.trainable
        trained = Distiller(model, teacher, [SoftTargetLoss(temperature)], alpha=alpha)
    trained.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    history = trained.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        validation_data=validation_data,
        callbacks=callbacks or [],
        verbose=verbose,
    )
    if teacher is not None:  # leave the student compiled for evaluate(), the teacher as it was
        teacher.trainable = teacher_trainable
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    return history
