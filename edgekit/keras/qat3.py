"""Quantization-aware training for Keras 3 models, natively (tfmot supports only tf_keras).

`quantize_keras3(model)` returns a new Keras 3 model (the user's is untouched) laid out as
tfmot's default 8-bit scheme lays out a tf_keras one, so the TFLite converter turns it into a
full int8 model with the ranges learned in training, without calibration data:

- BatchNorm is folded into the conv/dense before it first (`fold_batchnorm`): the kernel that
  trains is the kernel that ships;
- Conv2D, DepthwiseConv2D and Dense run with fake-quantized kernels (`QuantizeWeights`:
  symmetric int8 per output channel, or per tensor for a `per_channel = false` target, or
  power-of-two values);
- a `QuantizeActivation` (8-bit, per tensor, moving-average range) sits on the model's inputs
  and after every layer whose output the int8 graph keeps as a tensor of its own: a conv/dense
  (after its fused activation, or after the ReLU/ReLU6 that alone follows it, which the
  converter fuses into the conv), Add, Concatenate, a global average pool, an activation.
  Max/average pooling, Flatten, Reshape, Dropout and padding keep their input's range;
  softmax, sigmoid and tanh get the fixed output range TFLite gives them (the conv/dense
  before them is quantized before its activation, as tfmot does).

Any other layer is refused with its name: convert it to tf_keras (`ensure_tf_keras`) to use
tfmot's wider registry. The model trains with Keras 3's `fit`, saves as `.keras` and reloads
(after `import edgekit.keras.qat3_layers`, which `edgekit deploy` does itself).

>>> import keras
>>> model = keras.Sequential([keras.Input((8, 8, 1)),
...                           keras.layers.Conv2D(4, 3), keras.layers.ReLU(),
...                           keras.layers.Flatten(), keras.layers.Dense(3, activation="softmax")])
>>> for layer in quantize_keras3(model).layers:
...     print(type(layer).__name__, layer.name)
InputLayer ...
QuantizeActivation ..._quant
QuantizeWeights quant_conv2d...
ReLU re_lu...
QuantizeActivation re_lu..._quant
Flatten flatten...
QuantizeWeights quant_dense...
QuantizeActivation dense..._quant
Activation dense..._activation
"""

from __future__ import annotations

from typing import Any

from edgekit._tf import keras3
from edgekit.errors import UsageError
from edgekit.keras._compat import require_built
from edgekit.keras.folding import fold_batchnorm
from edgekit.keras.qat3_layers import KERNEL_LAYERS, QuantizeActivation, QuantizeWeights

keras = keras3()

# Layers whose output keeps its input's scale in TFLite (no quantizer of their own).
KEEP_RANGE = {
    "MaxPooling1D",
    "MaxPooling2D",
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "Flatten",
    "Reshape",
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "GaussianNoise",
    "GaussianDropout",
    "ZeroPadding1D",
    "ZeroPadding2D",
    "Cropping1D",
    "Cropping2D",
    "Permute",
    "UpSampling2D",
    "Identity",
    "ActivityRegularization",
}
# Layers with an output of their own: a quantizer after them.
QUANTIZE_OUTPUT = {
    "ReLU",
    "LeakyReLU",
    "Activation",
    "Add",
    "Subtract",
    "Multiply",
    "Average",
    "Maximum",
    "Minimum",
    "Concatenate",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "BatchNormalization",
    "Rescaling",
}
# Activations TFLite gives a fixed output range (softmax 1/256, ...): quantized before.
FIXED_RANGE = ("softmax", "sigmoid", "tanh")


def _activation(layer: Any) -> str:
    """A layer's activation by name ('' for none)."""
    kind = type(layer).__name__
    if kind == "Softmax":
        return "softmax"
    if kind == "ReLU":
        config = layer.get_config()
        plain = not config.get("negative_slope") and not config.get("threshold")
        return {None: "relu", 6.0: "relu6"}.get(config.get("max_value"), "other") if plain else ""
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", "") if activation is not None else ""


def _fuses_into_producer(layer: Any) -> bool:
    return type(layer).__name__ in ("ReLU", "Activation") and _activation(layer) in (
        "relu",
        "relu6",
    )


def _graph_nodes(model: Any) -> dict[str, list[Any]]:
    """Layer name → its calls in this graph (a layer may also hold calls from other models,
    or from an earlier build of a Sequential model)."""
    known = {id(t) for t in model.inputs}
    nodes: dict[str, list[Any]] = {}
    for op in model.operations:
        for node in op._inbound_nodes:
            if node.input_tensors and all(id(t) in known for t in node.input_tensors):
                nodes.setdefault(op.name, []).append(node)
                known |= {id(t) for t in node.output_tensors}
    return nodes


def _consumers(model: Any, nodes: dict[str, list[Any]]) -> dict[int, list[Any]]:
    """id(output tensor) → the layers that take it."""
    found: dict[int, list[Any]] = {}
    for op in model.operations:
        for node in nodes.get(op.name, []):
            for tensor in node.input_tensors:
                found.setdefault(id(tensor), []).append(op)
    return found


def _plan(layer: Any, output: Any, consumers: dict[int, list[Any]], model_outputs: set) -> str:
    """What follows a layer's output: 'quantize', 'keep' (its input's range), 'fixed'
    (TFLite's fixed range), 'pre' (quantize, then the fixed-range activation) or 'fused'
    (the ReLU after it quantizes)."""
    kind = type(layer).__name__
    activation = _activation(layer)
    if kind in KERNEL_LAYERS:
        if activation in FIXED_RANGE:
            return "pre"
        taken_by = consumers.get(id(output), [])
        alone = id(output) not in model_outputs and len(taken_by) == 1
        if activation == "linear" and alone and _fuses_into_producer(taken_by[0]):
            return "fused"
        return "quantize"
    if kind == "Softmax" or (kind == "Activation" and activation in FIXED_RANGE):
        return "fixed"
    if kind in KEEP_RANGE:
        return "keep"
    if kind in QUANTIZE_OUTPUT:
        return "quantize"
    return "unsupported"


def quantize_keras3(
    model: Any, per_channel: bool = True, weights: str = "int8", preserve_sparsity: bool = False
) -> Any:
    """A QAT copy of a Keras 3 Sequential/Functional model (see the module docstring).

    `weights`: "int8" (`per_channel`: one scale per output channel, else per kernel) or
    "power_of_two". `preserve_sparsity`: zero weights stay zero (a pruned model's zeros).
    BatchNorm is folded first; for per-tensor weights every BatchNorm must fold (else the
    converter would fold it into a kernel trained with one scale).
    """
    if not isinstance(model, keras.Model) or (
        not isinstance(model, keras.Sequential) and type(model).__name__ != "Functional"
    ):
        raise UsageError(
            f"model {getattr(model, 'name', '?')!r} ({type(model).__name__}) is not a Keras 3 "
            "Sequential or Functional model (a subclassed model?); rebuild it functionally "
            "(keras.Input → layers → keras.Model) to quantize it"
        )
    require_built(model)
    folded = fold_batchnorm(model, strict=not per_channel)
    graph = folded if type(folded).__name__ == "Functional" else _functional(folded)
    nodes = _graph_nodes(graph)
    consumers = _consumers(graph, nodes)
    outputs = {id(t) for t in graph.outputs}
    plans = {
        op.name: _plan(op, nodes[op.name][0].output_tensors[0], consumers, outputs)
        for op in graph.operations
        if op.name in nodes
    }
    refused = [op for op in graph.operations if plans.get(op.name) == "unsupported"]
    if refused:
        names = ", ".join(f"{op.name!r} ({type(op).__name__})" for op in refused)
        raise UsageError(
            f"cannot quantize layer(s) {names}: edgekit's Keras 3 QAT quantizes "
            f"{', '.join(KERNEL_LAYERS)} and the layers between them (activations, Add, "
            "Concatenate, pooling, reshapes); quantize_model(ensure_tf_keras(model)) uses "
            "tfmot's registry"
        )
    quantizer = {
        "per_channel": per_channel,
        "weights": weights,
        "preserve_sparsity": preserve_sparsity,
    }
    return _rebuild(graph, nodes, plans, quantizer, name=model.name)


def _functional(model: Any) -> Any:
    """A Sequential model as the Functional graph of the same layers."""
    if not model.inputs:
        raise UsageError(f"model {model.name!r} is not built; define it with keras.Input first")
    tensor = model.inputs[0]
    inputs = keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name)
    outputs = inputs
    for layer in model.layers:  # a fresh call per layer: a rebuilt Sequential holds several
        outputs = layer(outputs)
    return keras.Model(inputs, outputs, name=model.name)


def _rebuild(
    graph: Any,
    nodes: dict[str, list[Any]],
    plans: dict[str, str],
    quantizer: dict[str, Any],
    name: str,
) -> Any:
    tensors: dict[int, Any] = {}
    inputs = []
    for tensor in graph.inputs:
        new = keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name)
        inputs.append(new)
        tensors[id(tensor)] = QuantizeActivation(all_values=True, name=f"{tensor.name}_quant")(new)
    loads: list[tuple[Any, list]] = []
    wrappers: list[QuantizeWeights] = []
    for op in graph.operations:
        plan = plans.get(op.name)
        if plan is None:
            continue  # an InputLayer
        config = op.get_config()
        layer = type(op).from_config(
            {**config, "activation": "linear"} if plan == "pre" else config
        )
        loads.append((layer, op.get_weights()))
        kernel = type(op).__name__ in KERNEL_LAYERS
        called = QuantizeWeights(layer, **quantizer) if kernel else layer
        if kernel:
            wrappers.append(called)
        after = [QuantizeActivation(name=f"{op.name}_quant")] if plan in ("quantize", "pre") else []
        if plan == "pre":
            after.append(keras.layers.Activation(_activation(op), name=f"{op.name}_activation"))
        for node in nodes[op.name]:
            args, kwargs = node.arguments.fill_in(tensors)
            out = called(*args, **kwargs)
            for step in after:
                out = step(out)
            for old, new in zip(node.output_tensors, keras.tree.flatten(out), strict=True):
                tensors[id(old)] = new
    for layer, values in loads:
        if values:
            layer.set_weights(values)
    for wrapper in wrappers:
        wrapper.keep_zeros()
    outputs = [tensors[id(t)] for t in graph.outputs]
    return keras.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=name)
