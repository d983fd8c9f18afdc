"""Callbacks for `model.fit`: each has one job and overrides only the hooks it needs.

Each is a `keras.callbacks.Callback` of both Kerases (Keras 3 and tf_keras), so the same
class goes into either Keras's `fit` (they derive from edgekit.keras.callback_base.Callback).

- `UpdatePruningStep`: required when training a pruned model: advances the step and the
  masks (edgekit's for Keras 3 models, tfmot's for tf_keras ones).
- `SparsityLogger`: per-layer and total sparsity into `logs` (History and TensorBoard see it;
  put it before TensorBoard in the callback list).
- `DistillationSchedule`: anneals a `Distiller`'s temperature and/or alpha over epochs (the
  Distiller's own variables, of either Keras).
- `TargetFitCheck`: does the model still fit the target? Deploys a copy at epoch end.
- `ChannelPruningSchedule`: removes channels in steps during fit (edgekit.keras.channel_schedule).
- `ProximalSparsity`: group-lasso / BN-γ proximal steps, exact zeros (edgekit.keras.sparsity).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgekit import metrics as M
from edgekit._tf import keras3
from edgekit.checks import fits_budget
from edgekit.errors import UsageError
from edgekit.keras._compat import copy_model
from edgekit.keras._tfmot import tfmot
from edgekit.keras.callback_base import Callback
from edgekit.keras.channel_schedule import ChannelPruningSchedule  # noqa: F401  (public here)
from edgekit.keras.distillation import SoftTargetLoss
from edgekit.keras.pruning3 import pruning_wrappers, strip_keras3, to_numpy
from edgekit.keras.quantization import is_qat_model
from edgekit.keras.sparsity import ProximalSparsity  # noqa: F401  (public here)
from edgekit.keras.sparsity_stats import layer_sparsity, total_sparsity
from edgekit.options import DeployOptions
from edgekit.pipeline import deploy
from edgekit.targets import load_target

keras = keras3()


class UpdatePruningStep(Callback):
    """Advances pruning during `fit`: the step and the masks before each batch.

    Keras 3 models (edgekit's `PruneLowMagnitude`): the step goes from -1 to 0 when training
    first begins (a reloaded model continues from its saved step), then each batch advances it
    and masks the kernels; every epoch ends with the kernels masked, so a model saved then has
    its zeros. tf_keras models: tfmot's `UpdatePruningStep` does the same, inside.
    """

    def __init__(self) -> None:
        super().__init__()
        self.wrappers: list[Any] = []
        self.tfmot_callback: Any = None

    def set_model(self, model: Any) -> None:
        super().set_model(model)
        if isinstance(model, keras.Model):
            self.tfmot_callback = None
            return
        self.tfmot_callback = tfmot().sparsity.keras.UpdatePruningStep()
        self.tfmot_callback.set_model(model)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.tfmot_callback is not None:
            self.tfmot_callback.on_train_begin(logs)
            return
        self.wrappers = pruning_wrappers(_trained_model(self.model))
        for wrapper in self.wrappers:
            if int(to_numpy(wrapper.pruning_step)) < 0:
                wrapper.pruning_step.assign(0)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        for wrapper in self.wrappers:
            wrapper.advance()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.tfmot_callback is not None:
            self.tfmot_callback.on_epoch_end(epoch, logs)
        for wrapper in self.wrappers:
            wrapper.apply_masks()


def _trained_model(model: Any) -> Any:
    """The model a callback should look at: a Distiller's student, else the model."""
    return getattr(model, "student", model)


class SparsityLogger(Callback):
    """Adds `sparsity/total` and `sparsity/<layer>` (zero fraction of pruned weights) to logs."""

    def __init__(self, per_layer: bool = True) -> None:
        super().__init__()
        self.per_layer = per_layer

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        model = _trained_model(self.model)
        logs["sparsity/total"] = total_sparsity(model)
        if self.per_layer:
            for name, value in layer_sparsity(model).items():
                logs[f"sparsity/{name}"] = value


class DistillationSchedule(Callback):
    """Linear annealing of a `Distiller`'s temperature and/or alpha from start to end.

    `DistillationSchedule(temperature=(8.0, 2.0), alpha=(0.0, 0.5), epochs=10)` reaches the end
    values at the last epoch. The values in use are logged as `distill/temperature` and
    `distill/alpha`.
    """

    def __init__(
        self,
        temperature: tuple[float, float] | None = None,
        alpha: tuple[float, float] | None = None,
        epochs: int | None = None,
    ) -> None:
        super().__init__()
        if temperature is None and alpha is None:
            raise UsageError("DistillationSchedule needs temperature=(start, end) and/or alpha")
        self.temperature, self.alpha, self.epochs = temperature, alpha, epochs

    def _soft_losses(self) -> list[Any]:
        losses = getattr(self.model, "distillation_losses", None)
        if losses is None:
            raise UsageError("DistillationSchedule works on an edgekit.keras.Distiller")
        return [loss for loss in losses if isinstance(loss, SoftTargetLoss)]

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        epochs = self.epochs or self.params.get("epochs") or 1
        frac = min(1.0, epoch / max(1, epochs - 1))
        if self.temperature is not None:
            start, end = self.temperature
            for loss in self._soft_losses():
                loss.temperature.assign(start + (end - start) * frac)
        if self.alpha is not None:
            start, end = self.alpha
            self.model.alpha.assign(start + (end - start) * frac)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None:
            return
        losses = self._soft_losses()
        if losses:
            logs["distill/temperature"] = float(losses[0].temperature.numpy())
        logs["distill/alpha"] = float(self.model.alpha.numpy())


def deployable_copy(model: Any) -> Any:
    """Strip pruning/clustering wrappers into a new model with copied weights.

    QAT models keep their fake-quant wrappers (they carry the learned ranges) and are only read.
    """
    model = _trained_model(model)
    if isinstance(model, keras.Model):
        return strip_keras3(model)  # a new model: the stripped copy or a plain copy
    if is_qat_model(model):
        return model
    names = {type(layer).__name__ for layer in model.layers}
    stripped = model
    if "PruneLowMagnitude" in names:
        stripped = tfmot().sparsity.keras.strip_pruning(stripped)
    if "ClusterWeights" in names or "ClusterWeightsMHA" in names:
        stripped = tfmot().clustering.keras.strip_clustering(stripped)
    return copy_model(stripped)


class TargetFitCheck(Callback):
    """Every `every_n_epochs`, deploy a copy for `target` (in memory) and log whether it fits.

    It runs `edgekit.deploy` itself (no bundle written, no per-layer analysis), so "does it
    fit" during training means what it means at deploy. Logged, prefixed with the target name
    (e.g. `cortex-m4/tensor_arena_bytes`), under the report's metric names
    (:data:`edgekit.metrics.FIT_CHECK`): `model_bytes`, `macs`, `host_latency_ms` (p50 on this
    host, as in a deploy; not for MCU targets, and `latency=False` turns it off),
    `tensor_arena_bytes` (MCU targets), `top1_agreement` of the deployed model with the float
    model on `samples` calibration inputs, and `fits_budget` (1.0 or 0.0: every budget check
    passed), and `seconds` (how long the check took). A model with one output of several
    units is compared as a classifier (logits or probabilities alike; `task=` overrides). The
    model being trained is never modified: pruning/clustering wrappers are stripped from a
    copy. With `stop_when_fits=True`, training stops at the first epoch that fits.
    :attr:`last` holds the last :class:`~edgekit.pipeline.Deployment`.

    >>> check = TargetFitCheck("cortex-m4", x_calibration)        # doctest: +SKIP
    >>> model.fit(x, y, epochs=5, callbacks=[check])              # doctest: +SKIP
    """

    def __init__(
        self,
        target: Any,
        calibration: Any,
        every_n_epochs: int = 1,
        stop_when_fits: bool = False,
        samples: int = 32,
        latency: bool = True,
        task: str | None = None,
    ) -> None:
        super().__init__()
        self.profile = load_target(target)
        self.task = task
        self.calibration = np.asarray(calibration, dtype=np.float32)
        if self.calibration.ndim < 2 or len(self.calibration) == 0:
            raise UsageError(
                f"TargetFitCheck needs a batch of calibration inputs; received shape "
                f"{list(self.calibration.shape)}"
            )
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.stop_when_fits = stop_when_fits
        self.options = DeployOptions(
            calibration=self.calibration,
            validation=self.calibration[:samples],
            min_calibration_samples=1,
            analysis=False,
            host_latency=latency,
            firmware=False,
            write_bundle=False,
        )
        self.history: list[dict[str, float]] = []
        self.last: Any = None

    def measure(self, model: Any) -> dict[str, float]:
        """Deploy a deployable copy of `model` and return the figures (unprefixed)."""
        started = time.perf_counter()
        snapshot = deployable_copy(model)
        task = self.task or _classifier_task(snapshot)
        self.last = deploy(snapshot, self.profile, self.options, task=task)
        report = self.last.report
        figures = {
            name: float(report.metrics[name])
            for name in M.FIT_CHECK
            if report.metrics[name] is not None
        }
        figures[M.FITS_BUDGET] = float(fits_budget(report.checks))
        figures["seconds"] = time.perf_counter() - started
        return figures

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if (epoch + 1) % self.every_n_epochs:
            return
        figures = self.measure(self.model)
        self.history.append({"epoch": float(epoch), **figures})
        if logs is not None:
            for key, value in figures.items():
                logs[f"{self.profile.name}/{key}"] = value
        if self.stop_when_fits and figures[M.FITS_BUDGET] == 1.0:
            self.model.stop_training = True


def _classifier_task(model: Any) -> str | None:
    """ "classification" for one output of several units (the callback's inputs carry no
    labels, so logits would otherwise read as a regression); else detected at deploy."""
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) == 1 and (outputs[0].shape[-1] or 0) > 1:
        return "classification"
    return None
