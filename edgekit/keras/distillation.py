"""Knowledge distillation as a tf_keras Model: compile and fit as usual, deploy `.student`.

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

from dataclasses import dataclass, field
from typing import Any

from edgekit._tf import tensorflow, tf_keras
from edgekit.errors import UsageError
from edgekit.keras._compat import ensure_tf_keras

tf = tensorflow()
keras = tf_keras()


def find_layer(model: Any, name: str, role: str) -> Any:
    """A layer by name; wrapped layers (pruning, QAT, clustering) answer to their inner name."""
    for layer in model.layers:
        if layer.name == name or getattr(getattr(layer, "layer", None), "name", None) == name:
            return layer
    valid = [getattr(getattr(la, "layer", None), "name", la.name) for la in model.layers]
    raise UsageError(
        f"{role} model {model.name!r} has no layer {name!r}; valid layer names: {', '.join(valid)}"
    )


def _logits_tensor(model: Any) -> tuple[Any, bool]:
    """(tensor, is_probability): the pre-softmax output when the model ends in a softmax."""
    last = model.layers[-1]
    inner = getattr(last, "layer", last)
    if isinstance(inner, keras.layers.Softmax):
        return last.input, False
    activation = getattr(inner, "activation", None)
    if activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax":
        return model.output, True  # softmax folded into the layer: log(p) is a valid logit
    return model.output, False


@dataclass
class Features:
    """What the losses see for one batch: logits and named intermediate feature maps."""

    student_logits: Any
    teacher_logits: Any
    student: dict[str, Any] = field(default_factory=dict)
    teacher: dict[str, Any] = field(default_factory=dict)


class DistillationLoss:
    """Base class: a weighted loss over :class:`Features`, naming the layers it needs."""

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def student_layers(self) -> list[str]:
        return []

    def teacher_layers(self) -> list[str]:
        return []

    def build(self, distiller: Distiller) -> None:
        """Create any trainable state (adapters) once the models are known."""

    def trainable_variables(self) -> list[Any]:
        return []

    def __call__(self, features: Features) -> Any:
        raise NotImplementedError


class SoftTargetLoss(DistillationLoss):
    """Hinton's soft targets: KL(softmax(t/T) ‖ softmax(s/T)) · T², batch mean.

    The temperature is a variable, so `DistillationSchedule` can anneal it during `fit`.
    """

    def __init__(self, temperature: float = 4.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        if temperature <= 0:
            raise UsageError(f"temperature must be > 0; received {temperature}")
        self.temperature = tf.Variable(float(temperature), trainable=False, name="temperature")

    def __call__(self, features: Features) -> Any:
        t = self.temperature
        teacher = tf.nn.softmax(features.teacher_logits / t, axis=-1)
        log_teacher = tf.nn.log_softmax(features.teacher_logits / t, axis=-1)
        log_student = tf.nn.log_softmax(features.student_logits / t, axis=-1)
        kl = tf.reduce_sum(teacher * (log_teacher - log_student), axis=-1)
        return tf.reduce_mean(kl) * t * t


def _resize_like(x: Any, like: Any) -> Any:
    if len(x.shape) == 4 and tuple(x.shape[1:3]) != tuple(like.shape[1:3]):
        return tf.image.resize(x, like.shape[1:3], method="bilinear")
    return x


class _PairedLoss(DistillationLoss):
    def __init__(self, pairs: list[tuple[str, str]], weight: float = 1.0) -> None:
        super().__init__(weight)
        if not pairs or not all(len(p) == 2 for p in pairs):
            raise UsageError(
                "pairs must be a non-empty list of (student_layer, teacher_layer); "
                f"received {pairs!r}"
            )
        self.pairs = [(str(s), str(t)) for s, t in pairs]

    def student_layers(self) -> list[str]:
        return [s for s, _ in self.pairs]

    def teacher_layers(self) -> list[str]:
        return [t for _, t in self.pairs]


class AttentionTransferLoss(_PairedLoss):
    """Zagoruyko & Komodakis: compare normalised spatial attention maps of paired layers."""

    def __init__(self, pairs: list[tuple[str, str]], p: int = 2, weight: float = 1.0) -> None:
        super().__init__(pairs, weight)
        self.p = p

    def attention(self, feature: Any) -> Any:
        if len(feature.shape) != 4:
            raise UsageError(
                f"attention transfer needs 4-D feature maps (N, H, W, C); received {feature.shape}"
            )
        amap = tf.reduce_mean(tf.pow(tf.abs(feature), self.p), axis=-1, keepdims=True)
        return amap

    def __call__(self, features: Features) -> Any:
        total = 0.0
        for s_name, t_name in self.pairs:
            a_t = self.attention(features.teacher[t_name])
            a_s = _resize_like(self.attention(features.student[s_name]), a_t)
            q_s = tf.math.l2_normalize(tf.reshape(a_s, [tf.shape(a_s)[0], -1]), axis=1)
            q_t = tf.math.l2_normalize(tf.reshape(a_t, [tf.shape(a_t)[0], -1]), axis=1)
            total += tf.reduce_mean(tf.norm(q_s - q_t, axis=1))
        return total


class FeatureMatchingLoss(_PairedLoss):
    """FitNets hints: MSE(adapter(student feature), teacher feature) for each pair."""

    def __init__(
        self, pairs: list[tuple[str, str]], adapter: bool = True, weight: float = 1.0
    ) -> None:
        super().__init__(pairs, weight)
        self.use_adapter = adapter
        self.adapters: dict[str, Any] = {}

    def build(self, distiller: Distiller) -> None:
        for s_name, t_name in self.pairs:
            s_shape = distiller.student_feature_shape(s_name)
            t_shape = distiller.teacher_feature_shape(t_name)
            if s_shape[-1] == t_shape[-1] and not self.use_adapter:
                continue
            if s_shape[-1] != t_shape[-1] and not self.use_adapter:
                raise UsageError(
                    f"feature {s_name!r} has {s_shape[-1]} channels and {t_name!r} has "
                    f"{t_shape[-1]}; pass adapter=True to learn a 1x1 projection"
                )
            layer = (
                keras.layers.Conv2D(t_shape[-1], 1, name=f"adapter_{s_name}")
                if len(s_shape) == 4
                else keras.layers.Dense(t_shape[-1], name=f"adapter_{s_name}")
            )
            layer.build(s_shape)
            self.adapters[s_name] = layer

    def trainable_variables(self) -> list[Any]:
        return [v for layer in self.adapters.values() for v in layer.trainable_variables]

    def __call__(self, features: Features) -> Any:
        total = 0.0
        for s_name, t_name in self.pairs:
            student = features.student[s_name]
            if s_name in self.adapters:
                student = self.adapters[s_name](student)
            teacher = features.teacher[t_name]
            student = _resize_like(student, teacher)
            total += tf.reduce_mean(tf.square(student - teacher))
        return total


class Distiller(keras.Model):
    """Train `student` against a frozen `teacher`. `distiller.student` is the model to deploy.

    `alpha` weights the hard-label loss given to `compile(loss=...)`; the distillation losses
    share `1 - alpha`. The student may be pruned or QAT-wrapped; name its layers by their
    original names.
    """

    def __init__(
        self,
        student: Any,
        teacher: Any,
        losses: list[DistillationLoss] | None = None,
        alpha: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise UsageError(f"alpha must be within [0, 1]; received {alpha}")
        self.student = ensure_tf_keras(student)
        self.teacher = ensure_tf_keras(teacher)
        self.teacher.trainable = False
        self.distillation_losses = list(losses) if losses is not None else [SoftTargetLoss()]
        self.alpha = tf.Variable(float(alpha), trainable=False, name="alpha")
        s_names = sorted({n for loss in self.distillation_losses for n in loss.student_layers()})
        t_names = sorted({n for loss in self.distillation_losses for n in loss.teacher_layers()})
        self._student_names, self._teacher_names = s_names, t_names
        self._student_extractor, self._student_is_prob = self._extractor(
            self.student, s_names, "student"
        )
        self._teacher_extractor, self._teacher_is_prob = self._extractor(
            self.teacher, t_names, "teacher"
        )
        for loss in self.distillation_losses:
            loss.build(self)

    @staticmethod
    def _extractor(model: Any, names: list[str], role: str) -> tuple[Any, bool]:
        logits, is_prob = _logits_tensor(model)
        outputs = [model.output, logits] + [find_layer(model, n, role).output for n in names]
        return keras.Model(model.inputs, outputs, name=f"{role}_features"), is_prob

    def student_feature_shape(self, name: str) -> tuple:
        return tuple(find_layer(self.student, name, "student").output.shape)

    def teacher_feature_shape(self, name: str) -> tuple:
        return tuple(find_layer(self.teacher, name, "teacher").output.shape)

    def call(self, inputs: Any, training: bool = False) -> Any:
        return self.student(inputs, training=training)

    def _run(self, extractor: Any, names: list[str], is_prob: bool, x: Any, training: bool):
        outputs = extractor(x, training=training)
        predictions, logits, *rest = outputs
        if is_prob:
            logits = tf.math.log(tf.clip_by_value(logits, 1e-7, 1.0))
        return predictions, logits, dict(zip(names, rest, strict=True))

    def train_step(self, data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        _, t_logits, t_feats = self._run(
            self._teacher_extractor, self._teacher_names, self._teacher_is_prob, x, False
        )
        variables = self.student.trainable_variables + [
            v for loss in self.distillation_losses for v in loss.trainable_variables()
        ]
        with tf.GradientTape() as tape:
            predictions, s_logits, s_feats = self._run(
                self._student_extractor, self._student_names, self._student_is_prob, x, True
            )
            hard = self.compiled_loss(
                y, predictions, sample_weight, regularization_losses=self.student.losses
            )
            features = Features(s_logits, t_logits, s_feats, t_feats)
            distill = (
                tf.add_n([loss.weight * loss(features) for loss in self.distillation_losses])
                if self.distillation_losses
                else 0.0
            )
            total = self.alpha * hard + (1.0 - self.alpha) * distill
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
