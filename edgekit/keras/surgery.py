"""Model surgery on a Sequential/Functional config: edit layers, rebuild, copy weights.

Works on both Kerases: a Keras 3 model is rebuilt with Keras 3, a tf_keras model with tf_keras
(`keras_of`); the two write a functional config's links differently (`inbound_names`,
`rename_references` read and edit both, `link` writes either). `graph_model` admits the
models surgery can edit: Sequential and Functional ones of either Keras.

Channel pruning, low-rank factorisation and sparse regularisation all make "the same model,
some layers changed": they edit the config (`layer_entries`, `replace_layer`), rebuild it
(`from_config`) and copy every untouched layer's weights (`set_weights`).

>>> config = model.get_config()                                   # doctest: +SKIP
>>> layer_entries(config)["dense"]["config"]["units"] = 32        # doctest: +SKIP
>>> smaller = from_config(model, config)                          # doctest: +SKIP
"""

from __future__ import annotations

import copy
from typing import Any

from edgekit._tf import safe_mode_scope
from edgekit.errors import UsageError
from edgekit.keras._compat import keras_of, require_built  # noqa: F401  (keras_of: public here too)


def is_sequential(model: Any) -> bool:
    return type(model).__name__ == "Sequential"


def model_config(model: Any) -> dict:
    """A deep copy of the model's config without recorded build shapes (layers rebuild from
    their new inputs)."""
    config = copy.deepcopy(model.get_config())
    for entry in config["layers"]:
        entry.pop("build_config", None)
    return config


def layer_entries(config: dict) -> dict[str, dict]:
    """{layer name: its entry in config["layers"]} (the entry's "config" holds its arguments)."""
    return {entry["config"]["name"]: entry for entry in config["layers"]}


def graph_model(model: Any) -> Any:
    """`model` itself if it is a built Sequential or Functional model of either Keras (what
    surgery can edit); a one-line error otherwise."""
    keras = keras_of(model)
    if not isinstance(model, keras.Model):
        raise UsageError(
            f"expected a Keras model; received {type(model).__module__}.{type(model).__name__}"
        )
    graph = isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)
    if not graph and not any(c.__name__ == "Functional" for c in type(model).__mro__):
        raise UsageError(
            f"model {model.name!r} ({type(model).__name__}) is a subclassed model; structured "
            "compression edits Sequential and Functional models (keras.Input → layers → "
            "keras.Model)"
        )
    return require_built(model)


def from_config(model: Any, config: dict) -> Any:
    """A new model of `model`'s kind (Sequential or Functional) and Keras from `config`.

    The config comes from a model already live in this process, so its Lambda layers' code
    already runs here: rebuilding them is not loading untrusted bytes, and safe mode (which
    guards model *files*) is off for this one call.
    """
    keras = keras_of(model)
    custom = {type(layer).__name__: type(layer) for layer in model.layers}
    kind = keras.Sequential if is_sequential(model) else keras.Model
    with safe_mode_scope(keras, False):
        return kind.from_config(config, custom_objects=custom)


def inbound_names(entry: dict) -> list[str]:
    """Names of the layers feeding a functional config entry, in order (both Kerases: tf_keras
    writes `[[name, node, tensor, kwargs], ...]`, Keras 3 `{"args": [keras tensors...]}`)."""
    names: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            history = item.get("config", {}).get("keras_history") if "config" in item else None
            if item.get("class_name") == "__keras_tensor__" and history:
                names.append(history[0])
                return
            for value in item.values():
                walk(value)
        elif isinstance(item, (list, tuple)):
            if len(item) >= 3 and isinstance(item[0], str) and isinstance(item[1], int):
                names.append(item[0])  # tf_keras: [name, node_index, tensor_index, kwargs]
                return
            for value in item:
                walk(value)

    walk(entry.get("inbound_nodes") or [])
    return names


def rename_references(node_data: Any, renames: dict[str, str]) -> Any:
    """`node_data` (inbound nodes or output/input layer lists, either Keras) with references
    to layers in `renames` pointed at their new names."""
    if isinstance(node_data, dict):
        return {key: rename_references(value, renames) for key, value in node_data.items()}
    if isinstance(node_data, (list, tuple)):
        if node_data and isinstance(node_data[0], str) and node_data[0] in renames:
            return type(node_data)([renames[node_data[0]], *node_data[1:]])
        return type(node_data)(rename_references(item, renames) for item in node_data)
    return node_data


def producers(layer: Any) -> list[Any]:
    """The layers whose outputs a layer's first call took (both Kerases)."""
    node = layer._inbound_nodes[0]
    if not type(node).__module__.startswith("tf_keras"):  # Keras 3
        return [parent.operation for parent in node.parent_nodes]
    inbound = node.inbound_layers
    return list(inbound) if isinstance(inbound, (list, tuple)) else [inbound]


def set_weights(model: Any, weights: dict[str, list]) -> None:
    """Set each named layer's weights; layers not named keep their fresh initial values."""
    for layer in model.layers:
        values = weights.get(layer.name)
        if values:
            layer.set_weights(values)


def weights_by_layer(model: Any) -> dict[str, list]:
    return {layer.name: layer.get_weights() for layer in model.layers}


def link(name: str, like: dict) -> list:
    """Inbound nodes for one call on layer `name`'s output, in the format of the functional
    config entry `like` (tf_keras `[[name, 0, 0, {}]]`, or Keras 3's keras-tensor `args`).

    A Keras 3 keras tensor records a shape; it is a placeholder that the rebuild replaces by
    `name`'s real output, so `like`'s first input tensor lends its own.
    """
    nodes = like.get("inbound_nodes") or []
    if not nodes or not isinstance(nodes[0], dict):  # tf_keras (or Keras 3's legacy lists)
        return [[[name, 0, 0, {}]]]
    tensor = copy.deepcopy(_first_keras_tensor(nodes[0]))
    tensor["config"]["keras_history"] = [name, 0, 0]
    return [{"args": [tensor], "kwargs": {}}]


def _first_keras_tensor(item: Any) -> dict:
    if isinstance(item, dict):
        if item.get("class_name") == "__keras_tensor__":
            return item
        items = list(item.values())
    else:
        items = list(item) if isinstance(item, (list, tuple)) else []
    for value in items:
        found = _first_keras_tensor(value)
        if found:
            return found
    return {}


def replace_layer(config: dict, name: str, chain: list[dict], sequential: bool) -> None:
    """Replace layer `name` by a chain of new layer entries (`{"class_name", "config"}`), in
    place. The chain's last layer takes over the name, so whatever consumed `name` still does.
    """
    layers = config["layers"]
    index = next(i for i, e in enumerate(layers) if e["config"]["name"] == name)
    old = layers[index]
    entries = []
    previous_inbound = old.get("inbound_nodes")
    for position, layer in enumerate(chain):
        entry = {"class_name": layer["class_name"], "config": dict(layer["config"])}
        for key in ("module", "registered_name"):
            if key in old and position == len(chain) - 1:
                entry[key] = old[key]
            elif key in old:
                entry[key] = "keras.layers" if key == "module" else None
        last = position == len(chain) - 1
        entry["config"]["name"] = name if last else layer["config"]["name"]
        if not sequential:
            entry["name"] = entry["config"]["name"]
            entry["inbound_nodes"] = previous_inbound
            previous_inbound = link(entry["name"], old)
        entries.append(entry)
    layers[index : index + 1] = entries
