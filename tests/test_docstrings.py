"""The runnable examples in public docstrings run (examples that need files are skipped)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "edgekit",
    "edgekit.targets",
    "edgekit.checks",
    "edgekit.data",
    "edgekit.tflite_model",
    "edgekit.verify",
    "edgekit.inspection",
    "edgekit.pipeline",
    "edgekit.models",
    "edgekit.examples.digits",
    "edgekit.converters.tflm",
    "edgekit.converters.edgetpu",
    "edgekit.converters.tflite",
    "edgekit._tf",
    "edgekit.bench.result",
    "edgekit.bench.store",
    "edgekit.bench.uri",
    "edgekit.bench.linux",
    "edgekit.bench.android",
    "edgekit.bench.serial_link",
    "edgekit.bench.compare",
    "edgekit.bench.bundle",
    "edgekit.bench.runner",
    "edgekit.keras.folding",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
