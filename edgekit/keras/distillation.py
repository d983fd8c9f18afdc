"""Knowledge distillation: compile and fit a `Distiller` as usual, deploy `.student`.

`Distiller(student, teacher, losses, alpha)` follows the Keras of the models: Keras 3 models
(`import keras`) give a Keras 3 model (edgekit.keras.distillation3) that trains with Keras 3's
`fit`; tf_keras models a tf_keras model (:class:`TFKerasDistiller`). Both Kerases run the same
losses: each loss's maths is written once against an `ops` namespace (`keras.ops` for Keras 3,
TensorFlow for tf_keras), bound when a Distiller builds it.

Losses:

- :class:`SoftTargetLoss` (Hinton et al. 2015): KL(softmax(t/T) ‖ softmax(s/T)) · T²;
- :class:`AttentionTransferLoss` (Zagoruyko & Komodakis 2017): spatial attention maps, the
  channel mean of |A|^p, L2-normalised, compared with the L2 distance;
- :class:`FeatureMatchingLoss` (Romero et al., FitNets): MSE between a student feature map and
  a teacher one, through a learned 1×1 adapter when channel counts differ.

The total is `alpha · hard-label loss + (1 − alpha) · Σ weight_i · loss_i`.

>>> distiller = Distiller(student, teacher, [SoftTargetLoss(4.0)], alpha=0.1)  # doctest: +SKIP
>>> distiller.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])  # doctest: +SKIP
>>> distiller.fit(x, y, epochs=5)                                               # doctest: +SKIP
>>> edgekit.deploy(distiller.student, "cortex-m4", calibration=x[:200])         # doctest: +SKIP
"""

from __future__ import annotations

import abc
from typing import Any

from edgekit._tf import keras3, tensorflow, tf_keras
from edgekit.errors import UsageError
from edgekit.keras._compat import check_backend, ensure_tf_keras
from edgekit.keras.distillation3 import Keras3Distiller
from edgekit.keras.distillation_core import (  # noqa: F401  (the losses are public here)
    TF_OPS,
    AttentionTransferLoss,
    DistillationLoss,
    DistillerCore,
    FeatureMatchingLoss,
    Features,
    SoftTargetLoss,
    find_layer,
)

tf = tensorflow()
keras = tf_keras()


class TFKerasDistiller(DistillerCore, keras.Model):
    """The tf_keras Distiller: a custom `train_step` over `tf.GradientTape`.

    A Keras 3 model given here is rebuilt in tf_keras (`ensure_tf_keras`).
    """

    keras_module = keras
    ops = TF_OPS

    def convert(self, model: Any) -> Any:
        return ensure_tf_keras(model)

    def make_variable(self, value: float, name: str) -> Any:
        return tf.Variable(float(value), trainable=False, name=name)

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.student(inputs, training=training)

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        t_logits, t_feats = self.teacher_features(x)
        variables = self.student.trainable_variables + [
            v for layer in self.adapters for v in layer.trainable_variables
        ]
        with tf.GradientTape() as tape:
            predictions, s_logits, s_feats = self._student_features(self.ops, x, True)
            hard = self.compiled_loss(
                y, predictions, sample_weight, regularization_losses=self.student.losses
            )
            distill = self.distillation_loss(Features(s_logits, t_logits, s_feats, t_feats))
            total = self.combine(hard, distill)
        grads = tape.gradient(total, variables)
        self.optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads, variables, strict=True) if g is not None]
        )
        self.compiled_metrics.update_state(y, predictions, sample_weight)
        results = {m.name: m.result() for m in self.metrics}
        results.update(loss=total, student_loss=hard, distillation_loss=distill)
        return results

    def test_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        predictions = self.student(x, training=False)
        self.compiled_loss(y, predictions, sample_weight, regularization_losses=self.student.losses)
        self.compiled_metrics.update_state(y, predictions, sample_weight)
        return {m.name: m.result() for m in self.metrics}


def _keras_of(model: Any) -> str:
    if isinstance(model, keras3().Model):
        return "Keras 3"
    return "tf_keras" if isinstance(model, keras.Model) else type(model).__name__


class Distiller(abc.ABC):
    """Train `student` against a frozen `teacher`. `distiller.student` is the model to deploy.

    Returns a model of the models' Keras: a Keras 3 `keras.Model` for Keras 3 models
    (edgekit.keras.distillation3.Keras3Distiller), a tf_keras one otherwise
    (:class:`TFKerasDistiller`); both are instances of `Distiller`. `alpha` weights the
    hard-label loss given to `compile(loss=...)`; the distillation losses share `1 - alpha`.
    The student may be pruned or QAT-wrapped; name its layers by their original names.

    Args:
      student: the model to train (trained in place).
      teacher: the frozen model whose outputs and features guide it; the same Keras.
      losses: distillation losses; default `[SoftTargetLoss()]`.
      alpha: the weight of the hard-label loss, within [0, 1].
      **kwargs: passed to the Keras `Model` constructor (e.g. `name`).
    """

    def __new__(cls, student: Any, teacher: Any, *args: Any, **kwargs: Any) -> Any:
        # Arguments: those of DistillerCore.__init__ (losses=None, alpha=0.1, **kwargs).
        check_backend([student, teacher], "edgekit's Distiller")
        kinds = _keras_of(student), _keras_of(teacher)
        if kinds == ("Keras 3", "Keras 3"):
            return Keras3Distiller(student, teacher, *args, **kwargs)
        if "Keras 3" in kinds:
            raise UsageError(
                f"the student is a {kinds[0]} model and the teacher a {kinds[1]} one: both must "
                "be the same Keras (or convert explicitly with edgekit.keras.ensure_tf_keras)"
            )
        return TFKerasDistiller(student, teacher, *args, **kwargs)

    # The interface both Kerases' Distillers share (they are registered, not subclasses).
    @abc.abstractmethod
    def distillation_terms(self, x: Any) -> list[float]:
        """Each distillation loss's value on a batch (see DistillerCore)."""


Distiller.register(TFKerasDistiller)
Distiller.register(Keras3Distiller)
