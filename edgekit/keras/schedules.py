"""Pruning schedules: when masks update and to what sparsity, for both Kerases.

One implementation serves tfmot (tf_keras models) and edgekit's own Keras 3 pruning. tfmot
calls a schedule with its step variable inside a graph and never checks the class, so these
need not subclass tfmot's abstract `PruningSchedule` (which would import tfmot, and tf_keras,
for every Keras 3 user). The maths is tfmot's, op for op (float32, the same clipping), so a
model pruned either way gets the same masks at the same steps; `get_config` has tfmot's layout,
so a tf_keras model saved with these schedules reloads under tfmot's `prune_scope`.

>>> schedule = PolynomialDecay(0.0, 0.8, begin_step=0, end_step=100, frequency=10)
>>> [round(schedule.sparsity(step), 4) for step in (0, 50, 100, 200)]
[0.0, 0.7, 0.8, 0.8]
>>> [schedule.should_prune(step) for step in (10, 15, 100, 110)]
[True, False, True, False]
>>> pruning_schedule(0.8, epochs=10, steps_per_epoch=50).end_step  # ends at 80 % of training
400
"""

from __future__ import annotations

import math
from typing import Any

from edgekit._tf import tensorflow
from edgekit.errors import UsageError


def _tf() -> Any:
    return tensorflow()


class PruningSchedule:
    """Base of edgekit's schedules: `schedule(step)` → (should_prune, sparsity) tensors.

    `step` is a Python int or an integer tensor (tfmot's step variable). `sparsity(step)` and
    `should_prune(step)` give the same as Python values.
    """

    begin_step: int
    end_step: int
    frequency: int
    config_keys: tuple[str, ...] = ()  # the constructor's arguments, in tfmot's order

    def __call__(self, step: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """tfmot's layout: {'class_name': ..., 'config': {argument: value}}."""
        config = {key: getattr(self, key) for key in self.config_keys}
        return {"class_name": type(self).__name__, "config": config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PruningSchedule:
        """Rebuild from `get_config()` (tfmot's nested layout) or from its inner `config`."""
        return cls(**config.get("config", config))

    def sparsity(self, step: int) -> float:
        """The sparsity the schedule asks for at `step`, as a float."""
        return float(self(step)[1])

    def should_prune(self, step: int) -> bool:
        """Whether masks update at `step`."""
        return bool(self(step)[0])

    def _prune_now(self, step: Any) -> Any:
        # tfmot's rule: within [begin_step, end_step] (end_step -1: forever), every
        # `frequency` steps counted from begin_step.
        tf = _tf()
        in_range = tf.math.logical_and(
            tf.math.greater_equal(step, self.begin_step),
            tf.math.logical_or(tf.math.less_equal(step, self.end_step), self.end_step < 0),
        )
        turn = tf.math.equal(tf.math.floormod(step - self.begin_step, self.frequency), 0)
        return tf.math.logical_and(in_range, turn)

    def _validate(self, allow_forever: bool, **sparsities: float) -> None:
        name = type(self).__name__
        for key, value in sparsities.items():
            if not 0.0 <= value < 1.0:
                raise UsageError(f"{name}: {key} must be in [0, 1); received {value}")
        forever = allow_forever and self.end_step == -1
        if self.begin_step < 0 or (not forever and self.end_step < self.begin_step):
            raise UsageError(
                f"{name}: expected 0 <= begin_step <= end_step"
                f"{' (or end_step=-1)' if allow_forever else ''}; received begin_step="
                f"{self.begin_step}, end_step={self.end_step}"
            )
        if self.frequency <= 0:
            raise UsageError(f"{name}: frequency must be > 0; received {self.frequency}")


class ConstantSparsity(PruningSchedule):
    """`target_sparsity` at every `frequency`-th step in [begin_step, end_step] (-1: forever)."""

    config_keys = ("target_sparsity", "begin_step", "end_step", "frequency")

    def __init__(
        self, target_sparsity: float, begin_step: int, end_step: int = -1, frequency: int = 100
    ) -> None:
        self.target_sparsity = target_sparsity
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency
        self._validate(True, target_sparsity=target_sparsity)

    def __call__(self, step: Any) -> tuple[Any, Any]:
        tf = _tf()
        return self._prune_now(step), tf.constant(self.target_sparsity, dtype=tf.float32)


class PolynomialDecay(PruningSchedule):
    """Zhu & Gupta: final + (initial − final)·(1 − p)^power, p = clip((step − begin)/(end − begin)).

    Masks update every `frequency` steps from `begin_step` to `end_step`.
    """

    config_keys = (
        "initial_sparsity",
        "final_sparsity",
        "power",
        "begin_step",
        "end_step",
        "frequency",
    )

    def __init__(
        self,
        initial_sparsity: float,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        power: int = 3,
        frequency: int = 100,
    ) -> None:
        self.initial_sparsity, self.final_sparsity, self.power = (
            initial_sparsity,
            final_sparsity,
            power,
        )
        self.begin_step, self.end_step, self.frequency = begin_step, end_step, frequency
        self._validate(False, initial_sparsity=initial_sparsity, final_sparsity=final_sparsity)

    def __call__(self, step: Any) -> tuple[Any, Any]:
        tf = _tf()
        progress = tf.math.minimum(
            1.0,
            tf.math.maximum(
                0.0,
                tf.math.divide(
                    tf.dtypes.cast(step - self.begin_step, tf.float32),
                    self.end_step - self.begin_step,
                ),
            ),
        )
        sparsity = tf.math.add(
            tf.math.multiply(
                self.initial_sparsity - self.final_sparsity, tf.math.pow(1 - progress, self.power)
            ),
            self.final_sparsity,
        )
        return self._prune_now(step), sparsity


SCHEDULES = {cls.__name__: cls for cls in (ConstantSparsity, PolynomialDecay)}


def schedule_from_config(config: dict[str, Any]) -> PruningSchedule:
    """The schedule a `get_config()` describes (edgekit's or tfmot's, which share a layout)."""
    name = config.get("class_name")
    if name not in SCHEDULES:
        raise UsageError(f"unknown pruning schedule {name!r}; expected one of {sorted(SCHEDULES)}")
    return SCHEDULES[name].from_config(config)


def pruning_schedule(
    final_sparsity: float,
    *,
    epochs: int,
    steps_per_epoch: int,
    initial_sparsity: float = 0.0,
    begin_epoch: int = 0,
    end_epoch: int | None = None,
    frequency: int | None = None,
    constant: bool = False,
    power: int = 3,
) -> PruningSchedule:
    """A schedule from epochs instead of steps, for tf_keras (tfmot) and Keras 3 models.

    By default Zhu & Gupta's cubic `PolynomialDecay` from `initial_sparsity` to
    `final_sparsity` between `begin_epoch` and `end_epoch` (default: the last 20 % of training
    is left for recovery, so pruning ends at 80 % of `epochs`). `constant=True` gives
    `ConstantSparsity` from `begin_epoch`. `frequency` defaults to about 10 updates per epoch.
    """
    if not 0.0 <= initial_sparsity <= final_sparsity < 1.0:
        raise UsageError(
            f"sparsity must satisfy 0 <= initial <= final < 1; received initial="
            f"{initial_sparsity}, final={final_sparsity}"
        )
    if epochs <= 0 or steps_per_epoch <= 0:
        raise UsageError(
            f"epochs and steps_per_epoch must be > 0; received {epochs}, {steps_per_epoch}"
        )
    end_epoch = (
        end_epoch if end_epoch is not None else max(begin_epoch + 1, math.ceil(0.8 * epochs))
    )
    begin_step = begin_epoch * steps_per_epoch
    end_step = end_epoch * steps_per_epoch
    frequency = frequency or max(1, steps_per_epoch // 10)
    if constant:
        return ConstantSparsity(final_sparsity, begin_step, frequency=frequency)
    return PolynomialDecay(
        initial_sparsity, final_sparsity, begin_step, end_step, power=power, frequency=frequency
    )
