"""Lottery tickets: iterative magnitude pruning with weight rewinding.

Frankle & Carbin (2019) train a dense network, prune the smallest-magnitude weights, reset the
survivors to their *initial* values and train again; repeated, this finds a sparse sub-network
(a "ticket") that trains to the dense accuracy. Frankle et al. (2020, "Linear mode
connectivity and the lottery ticket hypothesis") rewind to an *early epoch* k instead of
initialisation, which is what makes it work on deeper nets. `find_ticket` does both
(`rewind_epoch=0` is the original):

1. θ₀ = the model's current weights (build it fresh); train `epochs`, keeping θ_k after epoch k.
2. Each round prunes `prune_per_round` of the surviving weights (by |w| across all conv,
   depthwise and dense kernels: `granularity="weight"`), or of the surviving channels (by
   L1 filter norm, with :mod:`edgekit.keras.channels`' groups: `granularity="channel"`),
   rewinds every weight to θ_k under the mask, and trains the rest of the epochs again with a
   fresh optimizer, the mask re-applied after every batch.

A weight ticket keeps every shape (sparse weights: smaller gzipped, not faster); a channel
ticket is rebuilt with real, smaller shapes and so runs faster. Both deploy as they are.

The model trains with its own Keras: a Keras 3 model (`import keras`) with Keras 3's
optimizers and `fit` (the masks and the θ_k snapshot are callbacks of both Kerases), and a
weight ticket is that Keras 3 model; a tf_keras model as before. A channel ticket trains
the model :class:`~edgekit.keras.channel_pruning.ChannelPruner` works on, with that model's
Keras.

>>> ticket, table = find_ticket(model, x, y, rounds=3, epochs=6, rewind_epoch=1,
...                             validation_data=(xv, yv))                # doctest: +SKIP
>>> print(table.markdown())                                             # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit._tf import keras3, tf_keras
from edgekit.errors import UsageError
from edgekit.keras._compat import ensure_tf_keras, is_keras3, tensorflow_backend
from edgekit.keras.callback_base import Callback
from edgekit.keras.channel_pruning import ChannelPruner
from edgekit.keras.channels import keras_macs
from edgekit.keras.finetune import _loss_for
from edgekit.keras.masks import MaskCallback

GRANULARITIES = ("weight", "channel")


@dataclass
class TicketRound:
    round: int  # 0 = the dense network
    remaining: float  # share of prunable weights (or channels) left; 1.0 dense
    macs: int  # of the model with pruned channels removed (weights: the dense MACs)
    params: int  # non-zero parameters
    accuracy: float | None  # on validation_data, when given
    loss: float | None


@dataclass
class TicketTable:
    granularity: str
    rewind_epoch: int
    rounds: list[TicketRound] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [
            f"| round | {self.granularity}s left | MACs | non-zero params | val accuracy "
            "| val loss |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rounds:
            acc = "—" if r.accuracy is None else f"{100 * r.accuracy:.1f} %"
            loss = "—" if r.loss is None else f"{r.loss:.4f}"
            lines.append(
                f"| {r.round} | {100 * r.remaining:.1f} % | {r.macs:,} | "
                f"{r.params:,} | {acc} | {loss} |"
            )
        return "\n".join(lines)


def _kernels(model: Any) -> list[Any]:
    kernels = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "Conv1D", "Dense"):
            kernels.append(layer.kernel)
        elif kind == "DepthwiseConv2D":  # tf_keras names it depthwise_kernel, Keras 3 kernel
            kernels.append(
                layer.depthwise_kernel if hasattr(layer, "depthwise_kernel") else layer.kernel
            )
        elif kind == "SeparableConv2D":
            kernels += [layer.depthwise_kernel, layer.pointwise_kernel]
    return kernels


def _weight_masks(model: Any, masks: list[np.ndarray], rate: float) -> list[np.ndarray]:
    """Prune `rate` of the surviving weights, globally by magnitude."""
    magnitudes = [np.abs(np.asarray(k.numpy())) for k in _kernels(model)]
    alive = np.concatenate([k[m > 0] for k, m in zip(magnitudes, masks, strict=True)])
    if alive.size == 0:
        return masks
    threshold = np.quantile(alive, rate)
    return [(m > 0) & (k > threshold) for k, m in zip(magnitudes, masks, strict=True)]


def _nonzero(model: Any) -> int:
    return int(sum(np.count_nonzero(w) for w in model.get_weights()))


@tensorflow_backend
def find_ticket(
    model: Any,
    x: Any,
    y: Any,
    *,
    rounds: int = 3,
    prune_per_round: float = 0.2,
    epochs: int = 5,
    rewind_epoch: int = 1,
    granularity: str = "weight",
    validation_data: Any = None,
    learning_rate: float = 1e-3,
    batch_size: int = 64,
    loss: Any = None,
    min_channels: int = 4,
    verbose: int = 0,
) -> tuple[Any, TicketTable]:
    """Iterative magnitude pruning with rewinding; returns (ticket, per-round table).

    Args:
      model: the network at initialisation (its current weights are θ₀).
      rounds: pruning rounds after the dense run; prune_per_round: share removed each round.
      epochs: training epochs per run; rewind_epoch: k in θ_k (0 = initialisation).
      granularity: "weight" (unstructured, Frankle & Carbin) or "channel" (structured).
      loss: defaults to sparse categorical cross-entropy (from_logits unless the model ends
        in a softmax).
    """
    if granularity not in GRANULARITIES:
        raise UsageError(f"granularity must be one of {GRANULARITIES}; received {granularity!r}")
    if not 0.0 < prune_per_round < 1.0:
        raise UsageError(f"prune_per_round must be in (0, 1); received {prune_per_round}")
    if rounds < 1 or epochs < 1 or not 0 <= rewind_epoch < epochs:
        raise UsageError(
            "need rounds ≥ 1, epochs ≥ 1 and 0 ≤ rewind_epoch < epochs; received "
            f"rounds={rounds}, epochs={epochs}, rewind_epoch={rewind_epoch}"
        )
    model = model if is_keras3(model) else ensure_tf_keras(model)
    pruner, keep = None, None
    if granularity == "channel":
        pruner = ChannelPruner(model, criterion="l1", scope="global", min_channels=min_channels)
        model = pruner.model  # the model the channel masks act on is the one that trains
    keras = keras3() if is_keras3(model) else tf_keras()  # it trains with its own Keras
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    loss = loss or _loss_for(y, model, None)
    metrics = ["accuracy"] if np.issubdtype(y.dtype, np.integer) else []
    dense_macs = keras_macs(model)
    rewound: list[np.ndarray] = []

    class _Keep(Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if epoch + 1 == rewind_epoch:
                rewound[:] = [w.copy() for w in self.model.get_weights()]

    def train(run_epochs: int, mask: MaskCallback, keep: bool) -> None:
        model.compile(keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
        callbacks = [mask] + ([_Keep()] if keep else [])
        model.fit(
            x,
            y,
            epochs=run_epochs,
            batch_size=batch_size,
            shuffle=True,
            callbacks=callbacks,
            verbose=verbose,
        )

    def evaluate() -> tuple[float | None, float | None]:
        if validation_data is None:
            return None, None
        values = model.evaluate(*validation_data, verbose=0, return_dict=True)
        return values.get("accuracy"), values.get("loss")

    table = TicketTable(granularity, rewind_epoch)
    if rewind_epoch == 0:
        rewound = [w.copy() for w in model.get_weights()]
    mask_callback = MaskCallback()
    train(epochs, mask_callback, keep=rewind_epoch > 0)
    accuracy, value = evaluate()
    table.rounds.append(TicketRound(0, 1.0, dense_macs, _nonzero(model), accuracy, value))

    kernels = _kernels(model)
    weight_masks = [np.ones(k.shape, dtype=bool) for k in kernels]
    for round_number in range(1, rounds + 1):
        remaining = (1.0 - prune_per_round) ** round_number
        if pruner is None:
            weight_masks = _weight_masks(model, weight_masks, prune_per_round)
            pairs = [(k, m.astype(np.float32)) for k, m in zip(kernels, weight_masks, strict=True)]
        else:
            keep = pruner.plan(1.0 - remaining, pruner.scores(keep))
            pairs = pruner.masks(keep)
        model.set_weights(rewound)
        mask_callback.set(pairs)
        train(epochs - rewind_epoch, mask_callback, keep=False)
        accuracy, value = evaluate()
        if pruner is None:
            left = sum(int(m.sum()) for m in weight_masks) / sum(m.size for m in weight_masks)
            macs = dense_macs
        else:
            total = sum(g.size for g in pruner.groups)
            left = sum(len(k) for k in keep.values()) / total
            macs = pruner.macs(keep)
        params = _nonzero(model if pruner is None else pruner.rebuild(keep))
        table.rounds.append(TicketRound(round_number, left, macs, params, accuracy, value))
        if verbose:
            print(
                f"ticket round {round_number}/{rounds}: {100 * left:.1f} % left, "
                f"accuracy {accuracy}"
            )
    ticket = model if pruner is None else pruner.rebuild(keep)
    if pruner is not None:
        ticket.compile(keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    return ticket, table
