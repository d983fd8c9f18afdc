"""edgekit: take a Keras model to an edge device and prove it works there.

The public API mirrors the CLI and imports nothing heavy until it is used:

>>> import edgekit
>>> edgekit.load_target("coral").name
'coral-usb'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "deploy", "fit", "inspect", "list_targets", "load_target"]

if TYPE_CHECKING:  # pragma: no cover
    from edgekit.fitting.api import fit
    from edgekit.inspection import inspect
    from edgekit.pipeline import deploy
    from edgekit.targets import list_targets, load_target

_LAZY = {
    "deploy": "edgekit.pipeline",
    "fit": "edgekit.fitting.api",
    "inspect": "edgekit.inspection",
    "load_target": "edgekit.targets",
    "list_targets": "edgekit.targets",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
