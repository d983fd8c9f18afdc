"""`ChannelPruningSchedule`: channel pruning in steps during `model.fit`, then real shapes.

At each pruning epoch the callback scores the channels on the weights as trained so far,
picks the next, smaller set (channels removed earlier stay removed) and *masks* the rest:
their filters, biases and the BatchNormalization γ/β and depthwise weights they pass through
are zeroed, so the model computes exactly what the rebuilt, smaller model would. Shapes stay
put during `fit` because Keras cannot swap a model's variables mid-fit and keep its optimizer:
Adam's moments are per-variable slots. The optimizer stays sane instead by zeroing the slots
of the removed entries at each step, and the masks are re-applied after every batch.
`pruned_model()` then rebuilds the model with real, smaller shapes (see `prune_channels`).

The callback is one of both Kerases (edgekit.keras.callback_base): it goes into Keras 3's
`fit` for a Keras 3 model, whose `pruned_model()` is then a Keras 3 model, and into tf_keras's
for a tf_keras one.

Each epoch logs `pruning/macs`, `pruning/params` and `pruning/channels` beside the loss and
accuracy; `history` has one row per epoch and `table()` renders it.

>>> schedule = ChannelPruningSchedule(target_macs=0.5, epochs=[1, 2, 3], data=x[:256])  # doctest: +SKIP
>>> model.fit(x, y, epochs=6, validation_data=(xv, yv), callbacks=[schedule])         # doctest: +SKIP
>>> smaller = schedule.pruned_model()                                                 # doctest: +SKIP
"""  # noqa: E501

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.errors import UsageError
from edgekit.keras.callback_base import Callback
from edgekit.keras.channel_pruning import ChannelPruner
from edgekit.keras.channels import keras_macs
from edgekit.keras.masks import apply_masks, as_tensors


def optimizer_slots(optimizer: Any, variable: Any) -> list[Any]:
    """The optimizer's per-variable state for `variable` (Adam's m and v, SGD's momentum), in
    tf_keras's legacy and new optimizers and in Keras 3's."""
    if optimizer is None:
        return []
    if hasattr(optimizer, "get_slot_names"):  # legacy optimizers
        slots = [optimizer.get_slot(variable, n) for n in optimizer.get_slot_names()]
        return [s for s in slots if s is not None]
    # {variable key: index} in tf_keras's new optimizers and in Keras 3's
    index_dict = getattr(optimizer, "_index_dict", None) or getattr(
        optimizer, "_trainable_variables_indices", None
    )
    if not index_dict or not hasattr(optimizer, "_var_key"):
        return []
    index = index_dict.get(optimizer._var_key(variable))
    if index is None:
        return []
    slots = []
    for name, value in vars(optimizer).items():
        if name in ("_variables",) or not isinstance(value, list) or len(value) != len(index_dict):
            continue
        if not all(hasattr(v, "assign") for v in value) or value[index] is variable:
            continue  # not per-variable state, or the variables themselves
        if tuple(value[index].shape) == tuple(variable.shape):
            slots.append(value[index])
    return slots


class ChannelPruningSchedule(Callback):
    """Prune channels at the start of each epoch in `epochs`, reaching the budget at the last.

    Args:
      target_macs: final MACs, absolute or as a fraction of the model's (0.5 = half).
      ratio: instead, the final share of channels removed per group.
      epochs: the epochs (0-based) that prune; the budget is reached in equal MAC steps.
      criterion, data, scope, min_channels, round_to, target: as `prune_channels`.
      verbose: print one line per pruning step.
    """

    def __init__(
        self,
        *,
        target_macs: float | None = None,
        ratio: float | None = None,
        epochs: list[int] | tuple[int, ...] = (0,),
        criterion: str = "l1",
        data: Any = None,
        scope: str = "layer",
        min_channels: int = 4,
        round_to: int | None = None,
        target: Any = None,
        verbose: int = 1,
    ) -> None:
        super().__init__()
        if (target_macs is None) == (ratio is None):
            raise UsageError("ChannelPruningSchedule needs exactly one of target_macs= or ratio=")
        if not epochs or any(int(e) < 0 for e in epochs):
            raise UsageError(f"epochs must be a list of epoch numbers ≥ 0; received {epochs!r}")
        if ratio is not None and not 0.0 < ratio < 1.0:
            raise UsageError(f"ratio must be in (0, 1); received {ratio}")
        self.target_macs, self.ratio = target_macs, ratio
        self.epochs = sorted({int(e) for e in epochs})
        self.options = {
            "criterion": criterion,
            "data": data,
            "scope": scope,
            "min_channels": min_channels,
            "round_to": round_to,
            "target": target,
        }
        self.verbose = verbose
        self.pruner: ChannelPruner | None = None
        self.keep: dict[int, np.ndarray] | None = None
        self._masks: list[tuple[Any, Any]] = []
        self._step_ratio = 0.0
        self.history: list[dict[str, float]] = []

    # --- steps -----------------------------------------------------------------------------

    def _goal(self, step: int) -> float:
        """This step's MAC budget (target_macs) or ratio, in equal steps to the final one."""
        fraction = (step + 1) / len(self.epochs)
        if self.ratio is not None:
            return self.ratio * fraction
        before = self.pruner.macs_before
        final = self.target_macs * before if self.target_macs <= 1.0 else self.target_macs
        if not 0 < final < before:
            raise UsageError(f"target_macs must be below the model's {before:,} MACs")
        return before - (before - final) * fraction

    def _prune(self, step: int) -> None:
        pruner = self.pruner
        scores = pruner.scores(self.keep)
        goal = self._goal(step)
        if self.ratio is not None:
            keep = pruner.plan(goal, scores)
        else:
            keep, _ = pruner.search(scores, lambda m: (keras_macs(m) <= goal, None))
        self.keep = keep
        self._masks = as_tensors(pruner.masks(keep))
        apply_masks(self._masks)
        optimizer = getattr(self.model, "optimizer", None)
        apply_masks([(s, m) for v, m in self._masks for s in optimizer_slots(optimizer, v)])
        if self.verbose:
            macs = self._figures()["macs"]
            tile = f", channels rounded to {pruner.tile}" if pruner.tile else ""
            print(
                f"channel pruning step {step + 1}/{len(self.epochs)}: {macs:,.0f} MACs "
                f"({macs / pruner.macs_before:.0%} of {pruner.macs_before:,}{tile})"
            )

    def _figures(self) -> dict[str, float]:
        smaller = self.pruner.rebuild(self.keep) if self.keep is not None else self.pruner.model
        return {
            "macs": float(keras_macs(smaller)),
            "params": float(smaller.count_params()),
            "channels": float(
                sum(len(k) for k in (self.keep or {}).values())
                if self.keep
                else sum(g.size for g in self.pruner.groups)
            ),
        }

    # --- Keras hooks -----------------------------------------------------------------------

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.pruner is None or self.pruner.model is not self.model:
            self.pruner = ChannelPruner(self.model, **self.options)
            self.keep = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch in self.epochs:
            self._prune(self.epochs.index(epoch))

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        apply_masks(self._masks)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        figures = self._figures()
        row = {"epoch": float(epoch), **figures}
        row.update({k: float(v) for k, v in (logs or {}).items() if np.isscalar(v)})
        self.history.append(row)
        if logs is not None:
            for key, value in figures.items():
                logs[f"pruning/{key}"] = value

    # --- after fit -------------------------------------------------------------------------

    def pruned_model(self) -> Any:
        """The trained model rebuilt with only the kept channels: real, smaller shapes."""
        if self.pruner is None or self.keep is None:
            raise UsageError("no pruning step has run yet: fit with this callback first")
        return self.pruner.rebuild(self.keep)

    def table(self) -> str:
        """The per-epoch history as a Markdown table."""
        if not self.history:
            return ""
        keys = list(self.history[0])
        lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for row in self.history:
            cells = [
                f"{row.get(k, float('nan')):,.0f}"
                if k in ("epoch", "macs", "params", "channels")
                else f"{row.get(k, float('nan')):.4f}"
                for k in keys
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)
