"""`prune_channels`: a smaller Keras model with real shapes, from the old one's weights.

Unstructured pruning zeroes weights and leaves every shape as it was, so the deployed model
runs no faster. This removes whole channels (see :mod:`edgekit.keras.channels` for which go
together, :mod:`edgekit.keras.importance` for how they are ranked):

- `ratio`: the share of each group's channels to remove (`scope="layer"`), or a threshold on
  normalized scores across all groups (`scope="global"`);
- `target_macs`: the ratio (or global threshold) is searched until the model's MACs fit;
- `target_latency_ms`: the same, measured: each candidate is converted to int8 and timed with
  edgekit's Linux harness (LiteRT, 1 thread, XNNPACK) on this host.

Keras 3 in, Keras 3 out (and tf_keras in, tf_keras out): the pruned model is rebuilt with the
model's own Keras, trains with its `fit` and saves as `.keras`; one code path serves both.

Kernels work on channel tiles, so a count between tiles buys almost nothing: `round_to`
(or a `target` whose profile states `channel_tile`) rounds each group's kept count to a
multiple of the tile. `min_channels` is a floor per group.

>>> smaller = prune_channels(model, ratio=0.5, criterion="l1")     # doctest: +SKIP
>>> keras_macs(smaller) < keras_macs(model)                         # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.converters.tflite import convert
from edgekit.errors import UsageError
from edgekit.keras._compat import tensorflow_backend
from edgekit.keras.bisect import bisect
from edgekit.keras.channels import (
    PRODUCERS,
    ChannelGraph,
    depthwise_kernel,
    group_error,
    kept_mask,
    keras_macs,
    rebuild,
)
from edgekit.keras.importance import CRITERIA, DATA_CRITERIA, channel_scores
from edgekit.keras.surgery import graph_model
from edgekit.models import from_keras
from edgekit.runtimes.timing import host_latencies
from edgekit.targets import load_target

SCOPES = ("layer", "global")


@dataclass
class PruningReport:
    """What `prune_channels` did (`return_report=True`)."""

    criterion: str
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    groups: list[dict[str, Any]] = field(default_factory=list)  # {producers, before, after}
    skipped: list[str] = field(default_factory=list)  # one line per layer left whole
    tile: int | None = None
    latency_ms: float | None = None

    @property
    def mac_ratio(self) -> float:
        return self.macs_after / max(self.macs_before, 1)


def kept_channels(size: int, share: float, tile: int | None = None, floor: int = 4) -> int:
    """How many of a group's `size` channels a layer-scope cut of `share` keeps, rounded to
    the channel `tile` as :func:`prune_channels` rounds them.

    >>> kept_channels(16, 0.125, tile=4), kept_channels(16, 0.25, tile=4), kept_channels(64, 0.125)
    (16, 12, 56)
    """
    return _round(int(round(size * (1.0 - share))), size, tile, floor)


def _round(keep: int, size: int, tile: int | None, floor: int) -> int:
    keep = max(min(keep, size), min(floor, size))
    if tile and size >= tile:
        keep = max(tile, int(round(keep / tile)) * tile)
        keep = min(keep, size)
    return keep


def _plan(
    groups: list[Any],
    scores: dict[int, np.ndarray],
    ratio: float,
    scope: str,
    tile: int | None,
    floor: int,
) -> dict[int, np.ndarray]:
    """Kept channel indices per group for a ratio (layer scope) or global threshold.

    Channels scored below zero (already removed by an earlier step) always go first."""

    def normalized(score: np.ndarray) -> np.ndarray:
        live = score[score >= 0]
        mean = float(np.mean(live)) if live.size else 0.0
        return np.where(score >= 0, score / max(mean, 1e-12), -1.0)

    keep: dict[int, np.ndarray] = {}
    if scope == "global":
        pooled = np.concatenate([normalized(scores[g.id]) for g in groups])
        threshold = np.quantile(pooled, ratio) if ratio > 0 else -np.inf
    for group in groups:
        score = scores[group.id]
        live = int(np.sum(score >= 0))
        if scope == "global":
            count = int(np.sum(normalized(score) > threshold))
        else:
            count = int(round(group.size * (1.0 - ratio)))
        count = min(_round(count, group.size, tile, floor), max(live, min(floor, group.size)))
        order = np.argsort(-score, kind="stable")
        keep[group.id] = np.sort(order[:count])
    return keep


class ChannelPruner:
    """The state one pruning run shares: the graph, the groups, and how to plan and apply.

    `prune_channels` and the `ChannelPruningSchedule` callback are both built on it.
    """

    def __init__(
        self,
        model: Any,
        *,
        criterion: str = "l1",
        data: Any = None,
        scope: str = "layer",
        min_channels: int = 4,
        round_to: int | None = None,
        target: Any = None,
    ) -> None:
        if scope not in SCOPES:
            raise UsageError(f"scope must be one of {SCOPES}; received {scope!r}")
        if criterion not in CRITERIA:
            raise UsageError(
                f"unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}"
            )
        if criterion in DATA_CRITERIA and data is None:
            raise UsageError(f"criterion {criterion} needs data=(x, y) or data=x")
        self.model = graph_model(model)
        self.criterion, self.data, self.scope = criterion, data, scope
        self.min_channels = int(min_channels)
        self.tile = round_to
        self.profile = None
        if target is not None:
            self.profile = load_target(target)
            if self.tile is None:
                self.tile = self.profile.channel_tile
        self.graph = ChannelGraph(self.model)
        self.groups = self.graph.prunable()
        if not self.groups:
            raise group_error(self.model)
        self.macs_before = keras_macs(self.model)

    def scores(self, removed: dict[int, np.ndarray] | None = None) -> dict[int, np.ndarray]:
        """Scores on the model's current weights; `removed` channels score -1."""
        scores = channel_scores(self.model, self.graph, self.groups, self.criterion, self.data)
        for gid, keep in (removed or {}).items():
            gone = np.setdiff1d(np.arange(len(scores[gid])), keep)
            scores[gid][gone] = -1.0
        return scores

    def plan(self, ratio: float | dict[str, float], scores: dict[int, np.ndarray]) -> dict:
        if isinstance(ratio, dict):
            keep: dict[int, np.ndarray] = {}
            for group in self.groups:
                share = max((ratio.get(p, 0.0) for p in group.producers), default=0.0)
                keep.update(_plan([group], scores, share, "layer", self.tile, self.min_channels))
            return keep
        return _plan(self.groups, scores, float(ratio), self.scope, self.tile, self.min_channels)

    def rebuild(self, keep: dict[int, np.ndarray]) -> Any:
        return rebuild(self.model, self.graph, keep)

    def macs(self, keep: dict[int, np.ndarray]) -> int:
        return keras_macs(self.rebuild(keep))

    def search(
        self, scores: dict[int, np.ndarray], fits: Any, iterations: int = 8, lowest: float = 0.0
    ) -> tuple[dict, Any]:
        """Bisection on the ratio for the least pruning whose rebuilt model `fits`
        (model → (bool, measurement)). Returns (keep, measurement)."""

        tried: list[tuple[dict, Any]] = []

        def make(ratio: float) -> tuple[dict, Any]:
            keep = self.plan(ratio, scores)
            tried.append((keep, fits(self.rebuild(keep))))
            return tried[-1]

        found = bisect(make, lambda c: c[1][0], lowest, 0.95, iterations)
        if found is None:
            floor = self.macs(self.plan(0.95, scores))
            measured = tried[0][1][1]
            timed = f" and measures {measured:.3f} ms" if isinstance(measured, float) else ""
            raise UsageError(
                f"the budget cannot be met: with 95 % of the channels removed (min_channels="
                f"{self.min_channels}, tile={self.tile}) the model still has {floor:,} MACs"
                f"{timed}"
            )
        keep, (_, measured) = found
        return keep, measured

    def masks(self, keep: dict[int, np.ndarray]) -> list[tuple[Any, np.ndarray]]:
        """(variable, 0/1 array) pairs that zero the pruned channels in place: the producers'
        filters and biases, and the per-channel weights of the layers on the way (BN γ and β,
        depthwise kernels and biases). A masked model computes what the rebuilt one does."""
        graph, find = self.graph, self.graph.find
        pairs: list[tuple[Any, np.ndarray]] = []
        for layer in self.model.layers:
            kind = type(layer).__name__
            name = layer.name
            if kind in PRODUCERS and name in graph.spaces:
                mask = kept_mask(graph.spaces[name], keep, find)
                if mask.all():
                    continue
                kernel = layer.pointwise_kernel if kind == "SeparableConv2D" else layer.kernel
                pairs.append((kernel, np.broadcast_to(mask, kernel.shape).copy()))
                if layer.use_bias:
                    pairs.append((layer.bias, mask))
                continue
            inbound = graph.inputs_of.get(name) or []
            if kind not in ("BatchNormalization", "DepthwiseConv2D") or not inbound:
                continue
            mask = kept_mask(graph.spaces[inbound[0]], keep, find)
            if mask.all():
                continue
            if kind == "BatchNormalization":
                for variable in (layer.gamma, layer.beta):
                    if variable is not None:
                        pairs.append((variable, mask))
            else:
                kernel = depthwise_kernel(layer)
                pairs.append((kernel, np.broadcast_to(mask[:, None], kernel.shape).copy()))
                if layer.use_bias:
                    pairs.append((layer.bias, mask))
        return pairs


def _latency_ms(model: Any, calibration: np.ndarray, delegate: str = "xnnpack") -> float:
    """int8 p50 on this host: LiteRT, 1 thread, edgekit's Linux harness; `delegate` xnnpack
    or none (LiteRT's builtin kernels)."""
    data = convert(from_keras(model), "int8", io_dtype="int8", calibration=calibration).data
    return host_latencies([data], runs=50, delegate=delegate)[0]


@tensorflow_backend
def prune_channels(
    model: Any,
    *,
    ratio: float | dict[str, float] | None = None,
    target_macs: int | None = None,
    target_latency_ms: float | None = None,
    criterion: str = "l1",
    data: Any = None,
    scope: str = "layer",
    min_channels: int = 4,
    round_to: int | None = None,
    target: Any = None,
    delegate: str | None = None,
    return_report: bool = False,
) -> Any:
    """A new model with fewer filters, of the model's own Keras (see the module docstring).

    Args:
      model: a Sequential or Functional model, Keras 3 or tf_keras (never modified).
      ratio: share of channels to remove, one float or {producer layer name: ratio}.
      target_macs / target_latency_ms: budgets instead of a ratio (exactly one is given).
      criterion: l1 | l2 | bn_gamma | fpgm | taylor | fisher (:mod:`edgekit.keras.importance`).
      data: `(x, y)` or `x`: needed by taylor and fisher, and (x) by a latency budget.
      scope: "layer" (each group loses `ratio`) or "global" (lowest normalized scores).
      min_channels: no group drops below this.
      round_to / target: channel tile to round kept counts to (a target's `channel_tile`).
      delegate: for a latency budget, "xnnpack" (default; or the target's delegate) or "none"
        (LiteRT's builtin kernels).

    Returns the pruned model, or (model, PruningReport) with `return_report`.
    """
    budgets = [b for b in (ratio, target_macs, target_latency_ms) if b is not None]
    if len(budgets) != 1:
        raise UsageError(
            "prune_channels needs exactly one of ratio=, target_macs=, target_latency_ms="
        )
    if target_latency_ms is not None and data is None:
        raise UsageError("a latency budget needs data=x (calibration inputs to convert with)")
    pruner = ChannelPruner(
        model,
        criterion=criterion,
        data=data,
        scope=scope,
        min_channels=min_channels,
        round_to=round_to,
        target=target,
    )
    scores = pruner.scores()
    latency = None
    if ratio is not None:
        if not isinstance(ratio, dict) and not 0.0 <= float(ratio) < 1.0:
            raise UsageError(f"ratio must be in [0, 1); received {ratio}")
        keep = pruner.plan(ratio, scores)
    elif target_macs is not None:
        if not 0 < target_macs < pruner.macs_before:
            raise UsageError(
                f"target_macs must be between 0 and the model's "
                f"{pruner.macs_before:,} MACs; received {target_macs:,}"
            )
        keep, _ = pruner.search(scores, lambda m: (keras_macs(m) <= target_macs, None))
    else:
        x = np.asarray(data[0] if isinstance(data, tuple) else data)[:100]
        if delegate is None:
            chosen = pruner.profile.delegate if pruner.profile is not None else "xnnpack"
            delegate = chosen if chosen in ("xnnpack", "none") else "xnnpack"

        def fits(candidate: Any) -> tuple[bool, float]:
            measured = _latency_ms(candidate, x, delegate)
            return measured <= float(target_latency_ms), measured

        keep, latency = pruner.search(scores, fits, iterations=5)
    pruned = pruner.rebuild(keep)
    report = PruningReport(
        criterion=criterion,
        macs_before=pruner.macs_before,
        macs_after=keras_macs(pruned),
        params_before=pruner.model.count_params(),
        params_after=pruned.count_params(),
        groups=[
            {"producers": g.producers, "before": g.size, "after": len(keep[g.id])}
            for g in pruner.groups
        ],
        skipped=list(pruner.graph.reasons),
        tile=pruner.tile,
        latency_ms=latency,
    )
    return (pruned, report) if return_report else pruned
