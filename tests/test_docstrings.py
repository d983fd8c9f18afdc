"""The runnable examples in public docstrings run (examples that need files are skipped).

Every module runs at least one example, except those listed in NO_RUNNABLE_EXAMPLE, whose
examples all need files, a device or training (`+SKIP`) or which have none; the list is kept
exact, so a module that gains an example leaves it and a new module without one fails."""

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
    assert {
        "edgekit.verify",
        "edgekit.runtimes.tflm",
        "edgekit.converters.tflm",
        "edgekit.bench.runner",
        "edgekit.isolation",
    } <= set(MODULES)


NO_RUNNABLE_EXAMPLE = {
    # no example at all: private helpers, entry points, the on-device harness, namespaces
    "edgekit._fdcapture",
    "edgekit.cli",
    "edgekit.cli_bench",
    "edgekit.converters",
    "edgekit.devices",
    "edgekit.devices.linux",
    "edgekit.devices.linux.edgekit_harness",
    "edgekit.devices.mcu",
    "edgekit.devices.mcu.simulated_board",
    "edgekit.bench.tflm_host",
    "edgekit.keras._tfmot",
    "edgekit.keras.callbacks",
    "edgekit.keras.clustering",
    "edgekit.runtimes",
    # only `+SKIP` examples: they need a model file, a trained model or a device
    "edgekit.bench",
    "edgekit.bench.runner",
    "edgekit.converters.tflite",
    "edgekit.graph",
    "edgekit.keras",
    "edgekit.keras.batchnorm",
    "edgekit.keras.channel_schedule",
    "edgekit.keras.channels",
    "edgekit.keras.distillation",
    "edgekit.keras.finetune",
    "edgekit.keras.folding",
    "edgekit.keras.lottery",
    "edgekit.keras.lowrank",
    "edgekit.keras.surgery",
    "edgekit.runtimes.timing",
    "edgekit.stages",
    "edgekit.tflite_edit",
    "edgekit.analyze",
    "edgekit.assemble",
    # the deploy stages: each example needs a loaded model or a converted one
    "edgekit.stages.analysis",
    "edgekit.stages.checks",
    "edgekit.stages.edgetpu",
    "edgekit.stages.facts",
    "edgekit.stages.harness",
    "edgekit.stages.latency",
    "edgekit.stages.load",
    "edgekit.stages.tflm",
    "edgekit.stages.verify",
}


def test_the_list_without_examples_names_real_modules():
    assert NO_RUNNABLE_EXAMPLE <= set(MODULES)
    assert len(NO_RUNNABLE_EXAMPLE) < len(MODULES) / 2  # most modules show how they are used


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    if name in NO_RUNNABLE_EXAMPLE:
        assert result.attempted == 0, f"{name} runs examples now: take it off the list"
    else:
        assert result.attempted > 0, f"{name}: no docstring example ran"
