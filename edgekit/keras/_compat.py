"""Models in, tf_keras models out: tfmot wraps only Keras 2 Sequential/Functional models.

A Keras 3 Sequential or Functional model is rebuilt layer by layer in `tf_keras` from its
config and weights. Anything else (subclassed models, layers tfmot cannot wrap) gets an error
that names the layer and what to do, never a raw tfmot traceback.
"""

from __future__ import annotations

import functools
import inspect as pyinspect
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from edgekit._tf import tf_keras
from edgekit.errors import UsageError

# Keras 3 layer config keys that tf_keras layers do not take (weights are copied afterwards).
_DROP_KEYS = {
    "dtype",
    "build_config",
    "compile_config",
    "module",
    "registered_name",
    "quantization_config",
}


def is_tf_keras(obj: Any) -> bool:
    return type(obj).__module__.startswith("tf_keras")


def is_keras3(obj: Any) -> bool:
    """A Keras 3 object: one of Keras 3's classes, or a user's subclass of a Keras 3 layer or
    model (defined in their own module)."""
    if type(obj).__module__.startswith("keras"):
        return True
    keras = sys.modules.get("keras")
    layer = getattr(getattr(keras, "layers", None), "Layer", None)
    return layer is not None and isinstance(obj, layer)


def keras_of(model: Any) -> Any:
    """The Keras module a model belongs to: `keras` (Keras 3) or tf_keras."""
    if is_tf_keras(model):
        return _keras2()
    import keras  # the user's Keras 3 on its backend (keras3() would load TensorFlow)

    return keras


def require_built(model: Any) -> Any:
    """`model` if it knows its inputs (built); else a one-line error saying how to build it.

    >>> require_built(None)
    Traceback (most recent call last):
    edgekit.errors.UsageError: model None is not built; define it with keras.Input first
    """
    try:
        built = bool(model.inputs)
    except (AttributeError, ValueError):  # an unbuilt Sequential raises
        built = False
    if not built:
        raise UsageError(
            f"model {getattr(model, 'name', None)!r} is not built; define it with keras.Input first"
        )
    return model


F = TypeVar("F", bound=Callable[..., Any])


def check_backend(obj: Any, what: str = "edgekit's Keras wrappers") -> None:
    """Refuse a Keras 3 model (or layers) when Keras 3 runs on another backend than TensorFlow.

    The wrappers train with TensorFlow ops (fake quantization, masks, gradients); a model saved
    as `.keras` under any backend deploys as it is (the conversion runs on TensorFlow).

    >>> check_backend(None)  # not a Keras 3 object: nothing to check
    """
    if "keras" not in sys.modules or is_tf_keras(obj):
        return
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    if not any(is_keras3(item) for item in items):
        return
    backend = sys.modules["keras"].backend.backend()
    if backend != "tensorflow":
        raise UsageError(
            f"{what} need Keras 3 on the TensorFlow backend; this process runs Keras 3 on "
            f"{backend!r}. Start Python with KERAS_BACKEND=tensorflow to train with them (a "
            ".keras file is the same for every backend), or deploy the model as it is: "
            "`edgekit deploy model.keras` and edgekit.deploy(model) work from any backend"
        )


def tensorflow_backend(wrapper: F) -> F:
    """Decorator for wrappers whose first argument is a model or layers: `check_backend`."""

    @functools.wraps(wrapper)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if args:
            check_backend(args[0])
        return wrapper(*args, **kwargs)

    return checked  # type: ignore[return-value]


def _keras2():
    return tf_keras()


def _layer_config(layer: Any, keras2: Any) -> tuple[type, dict]:
    name = type(layer).__name__
    cls = getattr(keras2.layers, name, None)
    if cls is None:
        raise UsageError(
            f"layer {layer.name!r} ({name}) has no tf_keras equivalent; rebuild the model with "
            "tf_keras (import it with edgekit._tf.tf_keras()) to use tfmot-backed wrappers"
        )
    config = {k: v for k, v in layer.get_config().items() if k not in _DROP_KEYS}
    accepted = set(pyinspect.signature(cls.__init__).parameters)
    base = {"name", "trainable"}
    config = {k: v for k, v in config.items() if k in accepted or k in base}
    for key, value in list(config.items()):
        if isinstance(value, dict) and "class_name" in value and "module" in value:
            # Keras 3 object configs (initializers, regularizers): weights are copied anyway.
            if key.endswith(("initializer", "regularizer", "constraint")):
                config.pop(key)
    return cls, config


def _rebuild_layer(layer: Any, keras2: Any) -> Any:
    cls, config = _layer_config(layer, keras2)
    try:
        return cls.from_config(config)
    except Exception as exc:
        raise UsageError(
            f"layer {layer.name!r} ({type(layer).__name__}) could not be rebuilt in tf_keras "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def keras3_to_tf_keras(model: Any) -> Any:
    """Rebuild a Keras 3 Sequential/Functional model in tf_keras with the same weights."""
    import keras as keras3

    keras2 = _keras2()
    if not isinstance(model, keras3.Model) or not hasattr(model, "inputs") or not model.inputs:
        raise UsageError(
            f"Keras 3 model {getattr(model, 'name', model)!r} is not built; call it on data or "
            "define it with keras.Input first"
        )
    if isinstance(model, keras3.Sequential):
        shape = tuple(model.inputs[0].shape[1:])
        rebuilt = keras2.Sequential(
            [keras2.Input(shape, name=model.inputs[0].name.split(":")[0])]
            + [_rebuild_layer(layer, keras2) for layer in model.layers],
            name=model.name,
        )
    elif type(model).__name__ == "Functional":
        rebuilt = _rebuild_functional(model, keras2)
    else:
        raise subclassed_error(model)
    for old in model.layers:
        if old.get_weights():
            rebuilt.get_layer(old.name).set_weights([np.asarray(w) for w in old.get_weights()])
    return rebuilt


def _rebuild_functional(model: Any, keras2: Any) -> Any:
    tensors: dict[int, Any] = {}
    inputs = []
    for tensor in model.inputs:
        new = keras2.Input(tuple(tensor.shape[1:]), name=tensor.name.split(":")[0])
        tensors[id(tensor)] = new
        inputs.append(new)
    for op in model.operations:
        if type(op).__name__ == "InputLayer":
            continue
        layer = _rebuild_layer(op, keras2)
        for node in op._inbound_nodes:
            args = [tensors.get(id(t)) for t in node.input_tensors]
            if any(a is None for a in args):
                continue  # a node from another model using this layer
            out = layer(args if len(args) > 1 else args[0])
            outs = out if isinstance(out, (list, tuple)) else [out]
            for old, new in zip(node.output_tensors, outs, strict=True):
                tensors[id(old)] = new
    missing = [t for t in model.outputs if id(t) not in tensors]
    if missing:
        raise UsageError(f"could not rebuild the graph of {model.name!r} in tf_keras")
    outputs = [tensors[id(t)] for t in model.outputs]
    return keras2.Model(inputs, outputs if len(outputs) > 1 else outputs[0], name=model.name)


def subclassed_error(model: Any) -> UsageError:
    return UsageError(
        f"model {getattr(model, 'name', '?')!r} ({type(model).__name__}) is a subclassed model; "
        "tfmot wraps only Sequential and Functional models. Rebuild it functionally "
        "(keras.Input → layers → keras.Model), or wrap individual layers with "
        "prune_low_magnitude / quantize_annotate_layer inside your subclass"
    )


def ensure_tf_keras(model: Any) -> Any:
    """Return a tf_keras Sequential/Functional model; rebuild Keras 3 ones; refuse the rest."""
    if is_keras3(model) and not is_tf_keras(model):
        return keras3_to_tf_keras(model)
    keras2 = _keras2()
    if not isinstance(model, keras2.Model):
        raise UsageError(
            f"expected a Keras model; received {type(model).__module__}.{type(model).__name__}"
        )
    if not (isinstance(model, keras2.Sequential) or getattr(model, "_is_graph_network", False)):
        raise subclassed_error(model)
    return model


def copy_model(model: Any) -> Any:
    """A model of the same Keras, architecture and weights, with its own variables."""
    copy = keras_of(model).models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def tfmot_layer_error(exc: Exception, model: Any, what: str, alternatives: str) -> UsageError:
    """Turn tfmot's "Layer x ... is not supported" into one line naming the layer.

    tfmot names the layer by its name in some messages and by its class in others.
    """
    text = str(exc)
    layers = [
        layer
        for layer in getattr(model, "layers", [])
        if re.search(rf"[Ll]ayer:? '?{re.escape(layer.name)}\b", text)
        or re.search(rf"[Ll]ayer:? {re.escape(type(layer).__name__)}\b", text)
    ]
    if layers:
        return unsupported_layers_error(what, layers, alternatives)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return UsageError(f"cannot {what} model {getattr(model, 'name', '?')!r}: {first}")


def unsupported_layers_error(what: str, layers: list[Any], alternatives: str) -> UsageError:
    names = ", ".join(f"{layer.name!r} ({type(layer).__name__})" for layer in layers)
    return UsageError(f"cannot {what} layer(s) {names}: {alternatives}")
