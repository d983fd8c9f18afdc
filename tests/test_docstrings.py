"""The runnable examples in public docstrings run (examples that need files are skipped)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

# Every module of the package: a new module cannot slip out of this test.
SKIP = {"edgekit.__main__", "edgekit._worker"}
# Mapped folders (converters/, devices/, targets/) are walked from their own paths: an
# editable install does not list them under edgekit.__path__.
ROOTS = ["edgekit", "edgekit.converters", "edgekit.devices"]
MODULES = sorted(
    {
        info.name
        for root in ROOTS
        for info in pkgutil.walk_packages(importlib.import_module(root).__path__, f"{root}.")
        if info.name not in SKIP
    }
    | set(ROOTS)
)


def test_the_walk_finds_the_package():
    assert {"edgekit.verify", "edgekit.runtimes.tflm", "edgekit.converters.tflm",
            "edgekit.bench.runner", "edgekit.isolation"} <= set(MODULES)  # fmt: skip


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
