"""Model surgery on a tf_keras Sequential/Functional config: edit layers, rebuild, copy weights.

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


def from_config(model: Any, config: dict) -> Any:
    """A new model of `model`'s kind (Sequential or Functional) from `config`.

    The config comes from a model already live in this process, so its Lambda layers' code
    already runs here: rebuilding them is not loading untrusted bytes, and safe mode (which
    guards model *files*) is off for this one call.
    """
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    from edgekit._tf import tf_keras

    keras = tf_keras()
    custom = {type(layer).__name__: type(layer) for layer in model.layers}
    kind = keras.Sequential if is_sequential(model) else keras.Model
    with SafeModeScope(False):
        return kind.from_config(config, custom_objects=custom)


def set_weights(model: Any, weights: dict[str, list]) -> None:
    """Set each named layer's weights; layers not named keep their fresh initial values."""
    for layer in model.layers:
        values = weights.get(layer.name)
        if values:
            layer.set_weights(values)


def weights_by_layer(model: Any) -> dict[str, list]:
    return {layer.name: layer.get_weights() for layer in model.layers}


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
            previous_inbound = [[[entry["name"], 0, 0, {}]]]
        entries.append(entry)
    layers[index : index + 1] = entries
