"""The Keras 3 Distiller: a `keras.Model` that trains with Keras 3's `fit`, on any backend.

`edgekit.keras.Distiller` returns a :class:`Keras3Distiller` when the student and the teacher
are Keras 3 models. It overrides only `call` and `compute_loss` (Keras 3's backend-neutral
hooks): `fit`, `evaluate`, metrics and the optimizer are Keras 3's own. The losses are those of
edgekit.keras.distillation, bound to `keras.ops`; alpha and the temperatures are Keras 3
variables of the model, so `DistillationSchedule` changes them between compiled steps.
`distiller.student` is the user's model, trained in place: it holds no edgekit class, saves as
`.keras` and reloads with plain `keras.saving.load_model`.

>>> import keras
>>> from edgekit.keras.distillation import Distiller, SoftTargetLoss
>>> def mlp(width):
...     return keras.Sequential([keras.Input((4,)), keras.layers.Dense(width, activation="relu"),
...                              keras.layers.Dense(3, activation="softmax")])
>>> distiller = Distiller(mlp(4), mlp(16), [SoftTargetLoss(2.0)], alpha=0.5)
>>> isinstance(distiller, keras.Model), type(distiller).__name__
(True, 'Keras3Distiller')
>>> float(distiller.alpha.numpy()), float(distiller.temperatures[0].numpy())
(0.5, 2.0)
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from edgekit._tf import keras3
from edgekit.errors import UsageError
from edgekit.keras.distillation_core import DistillerCore, Features

keras = keras3()
ops = keras.ops

# The names of edgekit.keras.distillation.TF_OPS, in keras.ops. epsilon=1e-6 on the norm is
# TensorFlow's l2_normalize (1e-12 on the squared sum).
KERAS3_OPS = SimpleNamespace(
    softmax=ops.softmax,
    log_softmax=ops.log_softmax,
    sum=ops.sum,
    mean=ops.mean,
    abs=ops.abs,
    power=ops.power,
    square=ops.square,
    log=ops.log,
    clip=ops.clip,
    flatten=lambda x: ops.reshape(x, (ops.shape(x)[0], -1)),
    l2_normalize=lambda x, axis: ops.normalize(x, axis=axis, epsilon=1e-6),
    norm=lambda x, axis: ops.norm(x, axis=axis),
    resize=lambda x, size: ops.image.resize(x, size, interpolation="bilinear"),
)


@dataclass
class _StudentPass:
    """The student's logits and features from the training forward pass (untracked)."""

    outputs: tuple[Any, dict[str, Any]] | None = None


class Keras3Distiller(DistillerCore, keras.Model):
    """Train a Keras 3 `student` against a frozen Keras 3 `teacher` with Keras 3's `fit`.

    Built by `edgekit.keras.Distiller`; see it for the arguments. `compile(optimizer, loss,
    metrics=[...])` takes the hard-label loss; evaluation reports the student alone.
    """

    keras_module = keras
    ops = KERAS3_OPS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._student_pass = _StudentPass()
        # Logged by fit beside `loss`, as the tf_keras Distiller does (Keras 3 tracks metric
        # attributes): the hard-label part and the distillation part, unweighted; validation
        # gets both too (val_distillation_loss: how far the student is from the teacher).
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")

    def convert(self, model: Any) -> Any:
        if not getattr(model, "inputs", None):  # subclassed: no layer outputs to read
            raise UsageError(
                f"model {model.name!r} ({type(model).__name__}) is a subclassed model; the "
                "Distiller reads layer outputs, so define it with keras.Input (Sequential or "
                "Functional)"
            )
        return model

    def make_variable(self, value: float, name: str) -> Any:
        return keras.Variable(float(value), trainable=False, dtype="float32", name=name)

    def call(self, inputs: Any, training: bool = False) -> Any:
        if not training:
            return self.student(inputs, training=False)
        # One student pass gives the predictions (for the hard loss and the metrics) and the
        # features compute_loss needs: a second pass would update BatchNorm twice a step.
        predictions, logits, features = self._student_features(self.ops, inputs, True)
        self._student_pass.outputs = (logits, features)
        return predictions

    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        hard = super().compute_loss(x, y, y_pred, sample_weight, training)
        student = self._student_pass.outputs if training else None
        self._student_pass.outputs = None
        if student is None:  # evaluation, or compute_loss called without a training call
            _, *student = self._student_features(self.ops, x, training)
        s_logits, s_feats = student
        t_logits, t_feats = self.teacher_features(x)
        distill = self.distillation_loss(Features(s_logits, t_logits, s_feats, t_feats))
        self.student_loss_tracker.update_state(hard)
        self.distillation_loss_tracker.update_state(distill)
        # Validation's `loss` is the student's hard-label loss, as tf_keras's Distiller reports.
        return self.combine(hard, distill) if training else hard
