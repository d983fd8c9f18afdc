"""What both Kerases' Distillers share: the losses (their maths written once against an `ops`
namespace: `keras.ops` for Keras 3, TensorFlow for tf_keras), the features they read, and
:class:`DistillerCore` (the models, the losses, how they combine). The Distillers themselves
are in :mod:`edgekit.keras.distillation` (tf_keras, and the dispatcher) and
:mod:`edgekit.keras.distillation3` (Keras 3).

>>> SoftTargetLoss(4.0).initial_temperature
4.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from edgekit._tf import tensorflow, tf_keras
from edgekit.errors import UsageError

tf = tensorflow()
keras = tf_keras()

# The operations the losses use, by Keras: keras.ops names, TensorFlow for tf_keras.
TF_OPS = SimpleNamespace(
    softmax=tf.nn.softmax,
    log_softmax=tf.nn.log_softmax,
    sum=tf.reduce_sum,
    mean=tf.reduce_mean,
    abs=tf.abs,
    power=tf.pow,
    square=tf.square,
    log=tf.math.log,
    clip=tf.clip_by_value,
    flatten=lambda x: tf.reshape(x, [tf.shape(x)[0], -1]),
    l2_normalize=lambda x, axis: tf.math.l2_normalize(x, axis=axis),
    norm=lambda x, axis: tf.norm(x, axis=axis),
    resize=lambda x, size: tf.image.resize(x, size, method="bilinear"),
)


def find_layer(model: Any, name: str, role: str) -> Any:
    """A layer by name; wrapped layers (pruning, QAT, clustering) answer to their inner name."""
    for layer in model.layers:
        if layer.name == name or getattr(getattr(layer, "layer", None), "name", None) == name:
            return layer
    valid = [getattr(getattr(la, "layer", None), "name", la.name) for la in model.layers]
    raise UsageError(
        f"{role} model {model.name!r} has no layer {name!r}; valid layer names: {', '.join(valid)}"
    )


def _single(tensors: list[Any]) -> Any:
    # A one-input model takes a tensor, not a list (Keras 3 warns about the structure).
    return tensors[0] if len(tensors) == 1 else tensors


def _output(model: Any) -> Any:
    return _single(list(model.outputs))  # a Keras 3 Sequential has `outputs`, not `output`


def _logits_tensor(model: Any, keras: Any) -> tuple[Any, bool]:
    """(tensor, is_probability): the pre-softmax output when the model ends in a softmax."""
    last = model.layers[-1]
    inner = getattr(last, "layer", last)
    if isinstance(inner, keras.layers.Softmax):
        return last.input, False
    activation = getattr(inner, "activation", None)
    if activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax":
        return _output(model), True  # softmax folded into the layer: log(p) is a valid logit
    return _output(model), False


@dataclass
class Features:
    """What the losses see for one batch: logits and named intermediate feature maps."""

    student_logits: Any
    teacher_logits: Any
    student: dict[str, Any] = field(default_factory=dict)
    teacher: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeatureExtractor:
    """A model's outputs, logits and named feature maps, from one forward pass."""

    model: Any
    names: list[str]
    is_probability: bool

    @classmethod
    def of(cls, model: Any, names: list[str], role: str, keras: Any) -> FeatureExtractor:
        logits, is_prob = _logits_tensor(model, keras)
        outputs = [_output(model), logits] + [find_layer(model, n, role).output for n in names]
        extractor = keras.Model(_single(list(model.inputs)), outputs, name=f"{role}_features")
        return cls(extractor, names, is_prob)

    def __call__(self, ops: Any, x: Any, training: bool) -> tuple[Any, Any, dict[str, Any]]:
        """(predictions, logits, {layer name: feature map}) for a batch."""
        predictions, logits, *rest = self.model(x, training=training)
        if self.is_probability:
            logits = ops.log(ops.clip(logits, 1e-7, 1.0))
        return predictions, logits, dict(zip(self.names, rest, strict=True))


class DistillationLoss:
    """Base class: a weighted loss over :class:`Features`, naming the layers it needs.

    `self.ops` is the namespace the maths uses (TensorFlow until a Distiller binds the loss to
    its Keras in :meth:`build`), so one implementation serves Keras 3 and tf_keras.
    """

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight
        self.ops: Any = TF_OPS

    def student_layers(self) -> list[str]:
        """Names of the student layers whose outputs the loss reads."""
        return []

    def teacher_layers(self) -> list[str]:
        """Names of the teacher layers whose outputs the loss reads."""
        return []

    def build(self, distiller: Any) -> None:
        """Bind to the distiller's Keras; subclasses create their state (adapters) here."""
        self.ops = distiller.ops

    def layers(self) -> list[Any]:
        """Layers trained with the student (adapters); not part of the deployed model."""
        return []

    def __call__(self, features: Features) -> Any:
        raise NotImplementedError


class SoftTargetLoss(DistillationLoss):
    """Hinton's soft targets: KL(softmax(t/T) ‖ softmax(s/T)) · T², batch mean.

    The temperature is a variable of the distiller's Keras, so `DistillationSchedule` can
    anneal it during `fit`.
    """

    def __init__(self, temperature: float = 4.0, weight: float = 1.0) -> None:
        super().__init__(weight)
        if temperature <= 0:
            raise UsageError(f"temperature must be > 0; received {temperature}")
        self.initial_temperature = float(temperature)
        self.temperature: Any = tf.Variable(
            self.initial_temperature, trainable=False, name="temperature"
        )

    def build(self, distiller: Any) -> None:
        super().build(distiller)
        self.temperature = distiller.make_variable(self.initial_temperature, "temperature")

    def __call__(self, features: Features) -> Any:
        ops, t = self.ops, self.temperature
        teacher = ops.softmax(features.teacher_logits / t)
        log_teacher = ops.log_softmax(features.teacher_logits / t)
        log_student = ops.log_softmax(features.student_logits / t)
        kl = ops.sum(teacher * (log_teacher - log_student), -1)
        return ops.mean(kl) * t * t


def _resize_like(ops: Any, x: Any, like: Any) -> Any:
    if len(x.shape) == 4 and tuple(x.shape[1:3]) != tuple(like.shape[1:3]):
        return ops.resize(x, tuple(like.shape[1:3]))
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
        """The channel mean of |feature|^p, shape (N, H, W, 1)."""
        if len(feature.shape) != 4:
            raise UsageError(
                f"attention transfer needs 4-D feature maps (N, H, W, C); received {feature.shape}"
            )
        return self.ops.mean(self.ops.power(self.ops.abs(feature), self.p), -1, keepdims=True)

    def __call__(self, features: Features) -> Any:
        ops = self.ops
        total = 0.0
        for s_name, t_name in self.pairs:
            a_t = self.attention(features.teacher[t_name])
            a_s = _resize_like(ops, self.attention(features.student[s_name]), a_t)
            q_s = ops.l2_normalize(ops.flatten(a_s), 1)
            q_t = ops.l2_normalize(ops.flatten(a_t), 1)
            total += ops.mean(ops.norm(q_s - q_t, 1))
        return total


class FeatureMatchingLoss(_PairedLoss):
    """FitNets hints: MSE(adapter(student feature), teacher feature) for each pair."""

    def __init__(
        self, pairs: list[tuple[str, str]], adapter: bool = True, weight: float = 1.0
    ) -> None:
        super().__init__(pairs, weight)
        self.use_adapter = adapter
        self.adapters: dict[str, Any] = {}

    def build(self, distiller: Any) -> None:
        super().build(distiller)
        layers = distiller.keras_module.layers
        self.adapters = {}
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
                layers.Conv2D(t_shape[-1], 1, name=f"adapter_{s_name}")
                if len(s_shape) == 4
                else layers.Dense(t_shape[-1], name=f"adapter_{s_name}")
            )
            layer.build(s_shape)
            self.adapters[s_name] = layer

    def layers(self) -> list[Any]:
        return list(self.adapters.values())

    def __call__(self, features: Features) -> Any:
        ops = self.ops
        total = 0.0
        for s_name, t_name in self.pairs:
            student = features.student[s_name]
            if s_name in self.adapters:
                student = self.adapters[s_name](student)
            teacher = features.teacher[t_name]
            student = _resize_like(ops, student, teacher)
            total += ops.mean(ops.square(student - teacher))
        return total


class DistillerCore:
    """What both Kerases' Distillers share: the models, the losses and how they combine.

    A Distiller class puts this before its Keras's `Model` and sets `keras_module` (its
    Keras), `ops` (the losses' namespace), `convert` and `make_variable`.
    """

    keras_module: Any
    ops: Any

    def __init__(
        self,
        student: Any,
        teacher: Any,
        losses: list[DistillationLoss] | None = None,
        alpha: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # the Keras Model
        self.setup(self.convert(student), self.convert(teacher), losses, alpha)

    def convert(self, model: Any) -> Any:
        """The model as this Keras's model (the Keras 3 Distiller takes it as it is)."""
        return model

    def make_variable(self, value: float, name: str) -> Any:
        raise NotImplementedError

    def setup(
        self, student: Any, teacher: Any, losses: list[DistillationLoss] | None, alpha: float
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise UsageError(f"alpha must be within [0, 1]; received {alpha}")
        self.student = student
        self.teacher = teacher
        self.teacher.trainable = False
        self.distillation_losses = list(losses) if losses is not None else [SoftTargetLoss()]
        self.alpha = self.make_variable(alpha, "alpha")
        s_names = sorted({n for loss in self.distillation_losses for n in loss.student_layers()})
        t_names = sorted({n for loss in self.distillation_losses for n in loss.teacher_layers()})
        # Plain objects, not tracked: the extractors share the student's and teacher's layers.
        self._student_features = FeatureExtractor.of(student, s_names, "student", self.keras_module)
        self._teacher_features = FeatureExtractor.of(teacher, t_names, "teacher", self.keras_module)
        for loss in self.distillation_losses:
            loss.build(self)
        # Tracked by the model: the adapters train with the student, the temperatures are state.
        self.adapters = [layer for loss in self.distillation_losses for layer in loss.layers()]
        self.temperatures = [
            loss.temperature
            for loss in self.distillation_losses
            if isinstance(loss, SoftTargetLoss)
        ]

    def student_feature_shape(self, name: str) -> tuple:
        """The output shape of the student layer `name` (batch dimension first)."""
        return tuple(find_layer(self.student, name, "student").output.shape)

    def teacher_feature_shape(self, name: str) -> tuple:
        """The output shape of the teacher layer `name` (batch dimension first)."""
        return tuple(find_layer(self.teacher, name, "teacher").output.shape)

    def teacher_features(self, x: Any) -> tuple[Any, dict[str, Any]]:
        """(logits, {layer: feature map}) of the frozen teacher for a batch."""
        _, logits, features = self._teacher_features(self.ops, x, False)
        return logits, features

    def distillation_terms(self, x: Any) -> list[float]:
        """Each distillation loss's value (unweighted) on a batch, the student in inference mode.

        For watching a loss term fall during training; the order is that of the losses.
        """
        _, s_logits, s_feats = self._student_features(self.ops, x, False)
        t_logits, t_feats = self.teacher_features(x)
        features = Features(s_logits, t_logits, s_feats, t_feats)
        return [float(np.asarray(loss(features))) for loss in self.distillation_losses]

    def distillation_loss(self, features: Features) -> Any:
        """Σ weight_i · loss_i over the distillation losses (0 without any)."""
        total = 0.0
        for loss in self.distillation_losses:
            total += loss.weight * loss(features)
        return total

    def combine(self, hard: Any, distill: Any) -> Any:
        """alpha · hard-label loss + (1 − alpha) · distillation loss."""
        return self.alpha * hard + (1.0 - self.alpha) * distill
