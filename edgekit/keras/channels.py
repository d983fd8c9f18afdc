"""Channel pruning that removes channels: a dependency graph of a Keras model's channels, and
a rebuilt model with fewer filters.

Channels that must go together form a *group*: a conv or dense layer's filters, and everything
that follows them channel by channel (BatchNormalization, activations, pooling, a depthwise
conv) up to the layers that consume them. An `Add` (a residual) joins its inputs' groups: both
branches lose the same channels. A `Concatenate` keeps its inputs' groups apart and maps each
to its offset; `Flatten` and `GlobalAveragePooling2D` feed a `Dense` whose input rows follow
the channel (every position's copy of it); a `Reshape` that keeps the channel axis last, or
only flattens, is followed too.

What it cannot follow safely it leaves whole, with a one-line reason naming the layer:
subclassed layers, `Lambda`, grouped convs, depth multipliers, a layer used twice. The
channels of the model's inputs and outputs are never pruned. Everything else is.

Both Kerases: the graph is read from the model's config (`surgery.inbound_names` reads either
format of links) and `rebuild` returns a model of the model's own Keras: Keras 3 in, Keras 3
out; tf_keras in, tf_keras out.

>>> graph = ChannelGraph(model)                       # doctest: +SKIP
>>> [g.describe() for g in graph.groups]              # doctest: +SKIP
['conv2d: 32 channels (conv2d, batch_normalization, re_lu, depthwise_conv2d, ...)']
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import UsageError
from edgekit.keras import surgery

PASS_THROUGH = {
    "BatchNormalization",
    "ReLU",
    "Activation",
    "LeakyReLU",
    "ELU",
    "Dropout",
    "SpatialDropout2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "MaxPooling1D",
    "AveragePooling1D",
    "ZeroPadding2D",
    "UpSampling2D",
    "Cropping2D",
    "GaussianNoise",
    "ActivityRegularization",
    "Softmax",
    "PReLU",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling2D",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "InputLayer",
}
ELEMENTWISE = {"Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average"}
PRODUCERS = {"Conv2D", "Conv1D", "Dense", "SeparableConv2D"}


@dataclass
class Space:
    """How a tensor's last axis maps onto channel groups: segments of (group, channels),
    each repeated `repeat` times innermost-last (a Flatten of H*W positions repeats it)."""

    segments: list[tuple[int, int]]
    repeat: int = 1

    @property
    def size(self) -> int:
        return sum(n for _, n in self.segments) * self.repeat


@dataclass
class Group:
    """Channels that are pruned together."""

    id: int
    size: int
    producers: list[str] = field(default_factory=list)  # layers whose filters these are
    members: list[str] = field(default_factory=list)  # channel-wise layers on the way
    consumers: list[str] = field(default_factory=list)
    fixed: str = ""  # why it cannot be pruned ("" = prunable)

    def describe(self) -> str:
        head = self.producers[0] if self.producers else "input"
        state = f"fixed: {self.fixed}" if self.fixed else "prunable"
        return f"{head}: {self.size} channels, {state} ({', '.join(self.producers + self.members)})"


class ChannelGraph:
    """The channel groups of a Sequential/Functional model of either Keras (see the module
    doc)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.layers = {layer.name: layer for layer in model.layers}
        self.config = model.get_config()
        self.parent: dict[int, int] = {}
        self.groups_by_id: dict[int, Group] = {}
        self.spaces: dict[str, Space] = {}  # layer name → its output's space
        self.inputs_of: dict[str, list[str]] = {}
        self.reasons: list[str] = []
        self._build()

    # --- union-find over groups ------------------------------------------------------------

    def _new(self, size: int) -> int:
        gid = len(self.parent)
        self.parent[gid] = gid
        self.groups_by_id[gid] = Group(gid, size)
        return gid

    def find(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def _union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        ga, gb = self.groups_by_id[ra], self.groups_by_id[rb]
        if ga.size != gb.size:
            self._fix(ra, f"joins {ga.size} and {gb.size} channels")
            self._fix(rb, f"joins {ga.size} and {gb.size} channels")
        self.parent[rb] = ra
        ga.producers += gb.producers
        ga.members += gb.members
        ga.consumers += gb.consumers
        ga.fixed = ga.fixed or gb.fixed

    def _fix(self, gid: int, why: str) -> None:
        group = self.groups_by_id[self.find(gid)]
        group.fixed = group.fixed or why

    def _fix_space(self, space: Space, why: str) -> None:
        for gid, _ in space.segments:
            self._fix(gid, why)

    # --- the graph ---------------------------------------------------------------------

    def _order(self) -> list[tuple[str, list[str]]]:
        """(layer name, input layer names) in topological order."""
        cfg = self.config
        if not any("inbound_nodes" in layer for layer in cfg.get("layers", [])):  # Sequential
            order, previous = [], "__input__"
            for layer in self.model.layers:
                order.append((layer.name, [previous]))
                previous = layer.name
            return order
        order = []
        for layer in cfg["layers"]:
            nodes = layer.get("inbound_nodes") or []
            name = layer["config"]["name"]
            if len(nodes) > 1:
                self.reasons.append(f"layer {name} is called more than once (shared)")
            order.append((name, surgery.inbound_names({"inbound_nodes": nodes[:1]})))
        return order

    def _build(self) -> None:
        input_shape = self.model.inputs[0].shape
        first = Space([(self._new(int(input_shape[-1])), int(input_shape[-1]))])
        self._fix_space(first, "the model's input")
        self.spaces["__input__"] = first
        shared = {r.split()[1] for r in self.reasons}
        for name, inbound in self._order():
            layer = self.layers.get(name)
            self.inputs_of[name] = inbound
            ins = [self.spaces[i] for i in inbound if i in self.spaces]
            if layer is None or type(layer).__name__ == "InputLayer":
                size = int(self.model.inputs[0].shape[-1])
                space = Space([(self._new(size), size)])
                self._fix_space(space, "the model's input")
                self.spaces[name] = space
                continue
            self.spaces[name] = self._visit(layer, ins, name in shared)
        for output in self.model.outputs:
            producer = output._keras_history[0].name  # (layer, node, tensor) in both Kerases
            if producer in self.spaces:
                self._fix_space(self.spaces[producer], "the model's output")
        if self.model.layers:
            last = self.model.layers[-1].name
            self._fix_space(self.spaces[last], "the model's output")

    def _block(self, layer: Any, ins: list[Space], why: str) -> Space:
        self.reasons.append(
            f"layer {layer.name} ({type(layer).__name__}): {why}; its channels are left whole"
        )
        for space in ins:
            self._fix_space(space, f"feeds {layer.name}")
        size = int(layer.output.shape[-1]) if hasattr(layer, "output") else 0
        out = Space([(self._new(size), size)])
        self._fix_space(out, f"comes from {layer.name}")
        return out

    def _visit(self, layer: Any, ins: list[Space], shared: bool) -> Space:
        kind = type(layer).__name__
        if shared:
            return self._block(layer, ins, "it is used more than once")
        if not ins:
            return self._block(layer, ins, "its inputs are unknown")
        if kind in PRODUCERS:
            if getattr(layer, "groups", 1) != 1:
                return self._block(layer, ins, f"a grouped conv ({layer.groups} groups)")
            if kind == "SeparableConv2D" and layer.depth_multiplier != 1:
                return self._block(layer, ins, "a depth multiplier above 1")
            if kind == "Dense" and len(layer.input.shape) > 2 and ins[0].repeat == 1:
                pass  # dense over the last axis of a higher-rank tensor: last axis only
            self._consume(layer, ins[0])
            size = int(layer.output.shape[-1])
            gid = self._new(size)
            self.groups_by_id[gid].producers.append(layer.name)
            return Space([(gid, size)])
        if kind == "DepthwiseConv2D":
            if layer.depth_multiplier != 1:
                return self._block(layer, ins, "a depth multiplier above 1")
            return self._member(layer, ins[0])
        if kind in PASS_THROUGH:
            if (
                kind == "Activation"
                and getattr(layer, "activation", None) is not None
                and (layer.activation.__name__ == "softmax")
            ):
                self._fix_space(ins[0], f"{layer.name} is a softmax over channels")
            if kind == "Softmax":
                self._fix_space(ins[0], f"{layer.name} is a softmax over channels")
            return self._member(layer, ins[0])
        if kind in ELEMENTWISE:
            base = ins[0]
            if any(len(s.segments) != 1 or s.repeat != 1 for s in ins):
                return self._block(layer, ins, "combines concatenated or flattened inputs")
            for other in ins[1:]:
                self._union(base.segments[0][0], other.segments[0][0])
            return self._member(layer, base)
        if kind == "Concatenate":
            axis = layer.axis
            rank = len(layer.output.shape)
            if axis not in (-1, rank - 1) or any(s.repeat != 1 for s in ins):
                return self._block(layer, ins, f"concatenates on axis {axis}, not channels")
            return Space([seg for s in ins for seg in s.segments])
        if kind == "Flatten":
            shape = layer.input.shape
            positions = math.prod(int(d) for d in shape[1:-1]) if len(shape) > 2 else 1
            return Space(list(ins[0].segments), ins[0].repeat * positions)
        if kind == "Reshape":
            old, new = layer.input.shape, layer.output.shape
            if int(old[-1]) == int(new[-1]):
                return self._member(layer, ins[0])
            if len(new) == 2 and int(new[-1]) == math.prod(int(d) for d in old[1:]):
                positions = math.prod(int(d) for d in old[1:-1])
                return Space(list(ins[0].segments), ins[0].repeat * positions)
            return self._block(layer, ins, "a reshape that moves the channel axis")
        why = (
            "a Lambda (its code is opaque)"
            if kind == "Lambda"
            else ("a layer edgekit cannot see inside (subclassed or unsupported)")
        )
        return self._block(layer, ins, why)

    def _member(self, layer: Any, space: Space) -> Space:
        for gid, _ in space.segments:
            group = self.groups_by_id[self.find(gid)]
            if layer.name not in group.members:
                group.members.append(layer.name)
        return space

    def _consume(self, layer: Any, space: Space) -> None:
        for gid, _ in space.segments:
            self.groups_by_id[self.find(gid)].consumers.append(layer.name)

    @property
    def groups(self) -> list[Group]:
        roots = sorted({self.find(g) for g in self.parent})
        return [self.groups_by_id[r] for r in roots]

    def prunable(self) -> list[Group]:
        return [g for g in self.groups if not g.fixed and g.producers]


# --- weights and rebuilding ---------------------------------------------------------------


def kept_mask(space: Space, keep: dict[int, np.ndarray], find: Any) -> np.ndarray:
    """1.0 where a tensor's last-axis entry is kept, 0.0 where its channel is pruned."""
    mask = np.zeros(space.size, dtype=np.float32)
    mask[_expand(space, keep, find)] = 1.0
    return mask


def _expand(space: Space, keep: dict[int, np.ndarray], find: Any) -> np.ndarray:
    """Indices kept along a tensor's last axis, given each group's kept channels."""
    kept, offset = [], 0
    for gid, size in space.segments:
        chosen = keep.get(find(gid))
        chosen = np.arange(size) if chosen is None else chosen
        kept.append(offset + chosen)
        offset += size
    inner = np.concatenate(kept) if kept else np.arange(0)
    if space.repeat == 1:
        return inner
    width = offset
    return np.concatenate([p * width + inner for p in range(space.repeat)])


def _slice_layer(
    layer: Any, weights: list[np.ndarray], in_keep: np.ndarray | None, out_keep: np.ndarray | None
) -> tuple[dict, list[np.ndarray]]:
    """(config changes, weights) of `layer` keeping `in_keep` input and `out_keep` output
    channels (None: all)."""
    kind = type(layer).__name__
    changes: dict[str, Any] = {}
    new = [w.copy() for w in weights]
    if kind in ("Conv2D", "Conv1D"):
        kernel = new[0]
        if in_keep is not None:
            kernel = np.take(kernel, in_keep, axis=-2)
        if out_keep is not None:
            kernel = np.take(kernel, out_keep, axis=-1)
            changes["filters"] = len(out_keep)
            if len(new) > 1:
                new[1] = new[1][out_keep]
        new[0] = kernel
    elif kind == "Dense":
        kernel = new[0]
        if in_keep is not None:
            kernel = kernel[in_keep]
        if out_keep is not None:
            kernel = kernel[:, out_keep]
            changes["units"] = len(out_keep)
            if len(new) > 1:
                new[1] = new[1][out_keep]
        new[0] = kernel
    elif kind == "SeparableConv2D":
        depthwise, pointwise = new[0], new[1]
        if in_keep is not None:
            depthwise = np.take(depthwise, in_keep, axis=-2)
            pointwise = np.take(pointwise, in_keep, axis=-2)
        if out_keep is not None:
            pointwise = np.take(pointwise, out_keep, axis=-1)
            changes["filters"] = len(out_keep)
            if len(new) > 2:
                new[2] = new[2][out_keep]
        new[0], new[1] = depthwise, pointwise
    elif kind == "DepthwiseConv2D" and in_keep is not None:
        new[0] = np.take(new[0], in_keep, axis=-2)
        if len(new) > 1:
            new[1] = new[1][in_keep]
    elif kind in ("BatchNormalization", "PReLU") and in_keep is not None:
        new = [w[..., in_keep] for w in new]
    return changes, new


def rebuild(model: Any, graph: ChannelGraph, keep: dict[int, np.ndarray]) -> Any:
    """A new model of `model`'s Keras with only the `keep` channels of each group, weights
    copied."""
    config = surgery.model_config(model)
    layer_configs = surgery.layer_entries(config)
    new_weights: dict[str, list[np.ndarray]] = {}
    find = graph.find
    for layer in model.layers:
        name = layer.name
        kind = type(layer).__name__
        inbound = graph.inputs_of.get(name, [])
        in_space = graph.spaces.get(inbound[0]) if inbound else None
        in_keep = _expand(in_space, keep, find) if in_space is not None else None
        if in_keep is not None and in_space is not None and len(in_keep) == in_space.size:
            in_keep = None
        out_keep = None
        if kind in PRODUCERS and name in graph.spaces:
            gid = find(graph.spaces[name].segments[0][0])
            if gid in keep:
                out_keep = keep[gid]
        changes, weights = _slice_layer(layer, layer.get_weights(), in_keep, out_keep)
        if kind == "Reshape" and in_keep is not None:
            target = list(layer.target_shape)
            if len(target) and target[-1] not in (-1, None):
                target[-1] = len(_expand(graph.spaces[name], keep, find))
                changes["target_shape"] = tuple(target)
        if changes:
            layer_configs[name]["config"].update(changes)
        new_weights[name] = weights
    rebuilt = surgery.from_config(model, config)
    surgery.set_weights(rebuilt, new_weights)
    return rebuilt


def depthwise_kernel(layer: Any) -> Any:
    """A DepthwiseConv2D's kernel variable: `depthwise_kernel` in tf_keras, `kernel` in Keras 3."""
    kernel = getattr(layer, "depthwise_kernel", None)
    return layer.kernel if kernel is None else kernel


def keras_macs(model: Any) -> int:
    """Multiply-accumulates of conv, depthwise, separable and dense layers at batch 1."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        out = getattr(layer, "output", None)
        if out is None:
            continue
        shape = [int(d) for d in out.shape[1:]]
        positions = math.prod(shape[:-1]) if len(shape) > 1 else 1
        if kind in ("Conv2D", "Conv1D"):
            kernel = layer.kernel.shape
            total += positions * math.prod(int(d) for d in kernel)
        elif kind == "DepthwiseConv2D":
            kh, kw, channels, multiplier = (int(d) for d in depthwise_kernel(layer).shape)
            total += positions * kh * kw * channels * multiplier
        elif kind == "SeparableConv2D":
            kh, kw, channels, multiplier = (int(d) for d in layer.depthwise_kernel.shape)
            total += positions * (
                kh * kw * channels * multiplier
                + channels * multiplier * int(layer.pointwise_kernel.shape[-1])
            )
        elif kind == "Dense":
            total += positions * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    return total


def group_error(model: Any) -> UsageError:
    return UsageError(
        f"{model.name}: no channel group can be pruned (every group touches an input, output "
        "or a layer edgekit cannot follow)"
    )
