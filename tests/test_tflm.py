"""TFLite → TFLM: byte-identical C array, exact resolver, arena measured with tflite_micro."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from helpers import convert_keras, tf_keras

from edgekit.converters.tflm import (
    ArenaProber,
    measure_arena,
    missing_ops,
    model_data_sources,
    parse_c_array,
    resolver_source,
    write_tflm_sources,
)
from edgekit.errors import ToolError
from edgekit.tflite_model import load_tflite


def test_arena_is_the_exact_minimum(digits_tflite):
    model = load_tflite(digits_tflite["int8"])
    arena = measure_arena(model)
    prober = ArenaProber(model.data)
    try:
        assert prober.runs_with(arena.minimum_bytes)[0]
        assert not prober.runs_with(arena.minimum_bytes - 1)[0]
    finally:
        prober.close()
    assert arena.tensor_arena_bytes == arena.minimum_bytes + 16
    # The arena holds at least every activation alive at the busiest op.
    assert arena.activation_lower_bound_bytes <= arena.minimum_bytes


def test_c_array_is_byte_identical_and_aligned(digits_tflite, tmp_path):
    model = load_tflite(digits_tflite["int8"])
    sources = model_data_sources(model.data, "digits")
    assert "alignas(16) const unsigned char g_digits_model_data[]" in sources["model_data.cc"]
    assert parse_c_array(sources["model_data.cc"]) == model.data
    assert f"g_digits_model_data_len = {len(model.data)};" in sources["model_data.cc"]


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_c_array_compiles_and_dumps_the_same_bytes(digits_tflite, tmp_path):
    model = load_tflite(digits_tflite["int8"])
    for name, text in model_data_sources(model.data, "digits").items():
        (tmp_path / name).write_text(text)
    (tmp_path / "dump.cc").write_text(
        '#include <cstdio>\n#include <cstdint>\n#include "model_data.h"\n'
        "int main() {\n"
        "  if (reinterpret_cast<std::uintptr_t>(g_digits_model_data) % 16) return 3;\n"
        "  fwrite(g_digits_model_data, 1, g_digits_model_data_len, stdout);\n  return 0;\n}\n"
    )
    exe = tmp_path / "dump"
    subprocess.run(
        ["g++", "-std=c++17", "-O0", "-o", str(exe), "dump.cc", "model_data.cc"],
        cwd=tmp_path,
        check=True,
    )
    out = subprocess.run([str(exe)], capture_output=True, check=True).stdout
    assert out == model.data


def test_resolver_registers_exactly_the_models_ops(digits_tflite, tmp_path):
    model = load_tflite(digits_tflite["int8"])
    arena = measure_arena(model)
    paths = write_tflm_sources(model, "digits", tmp_path, arena)
    assert {p.name for p in paths} == {
        "model_data.h",
        "model_data.cc",
        "model_ops.h",
        "edgekit_model.h",
    }
    header = (tmp_path / "model_ops.h").read_text()
    ops = {name for name, _ in model.opcodes}
    registered = re.findall(r"resolver\.(Add\w+)\(\)", header)
    assert len(registered) == len(ops) == len(set(registered))
    assert f"MicroMutableOpResolver<{len(ops)}>" in header
    assert f"kTensorArenaSize = {arena.tensor_arena_bytes};" in header
    assert "AddDepthwiseConv2D" in registered and "AddSoftmax" in registered


def test_op_tflm_lacks_is_named(tmp_path):
    import tensorflow as tf

    keras = tf_keras()
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: tf.tile(x, [1, 2]))(inputs)
    data, model = convert_keras(keras.Model(inputs, outputs), scheme="float32")
    assert "TILE" in missing_ops(model)
    with pytest.raises(ToolError, match="TILE"):
        resolver_source(model, "tiled", None)
    # The real TFLM interpreter agrees: it cannot run the model at any arena size.
    with pytest.raises(ToolError, match="TFLM cannot run"):
        measure_arena(model)


def test_tflm_runs_the_example_like_litert(example, digits_tflite):
    from edgekit.verify import run_litert, run_tflm

    data = digits_tflite["int8"].read_bytes()
    arena = measure_arena(load_tflite(digits_tflite["int8"]))
    x = example.validation.x[:100]
    tflm = run_tflm(data, x, arena.tensor_arena_bytes)
    litert = run_litert(data, x, builtin_kernels=True)
    assert tflm.raw.dtype == np.int8
    assert np.abs(tflm.raw.astype(int) - litert.raw.astype(int)).max() <= 1


def test_arena_search_survives_tflm_crashing_on_tiny_arenas():
    """tflite_micro segfaults when an arena is too small for its own bookkeeping; the probe
    runs in a worker process, so the measurement goes on and edgekit does not crash."""
    keras = tf_keras()
    model = keras.Sequential([keras.Input((1200,)), keras.layers.Dense(1000)])
    _, converted = convert_keras(model)
    prober = ArenaProber(converted.data)
    try:
        assert prober.runs_with(100) == (False, "the TFLM interpreter crashed")
        assert prober.runs_with(1 << 20)[0]  # a fresh worker after the crash
    finally:
        prober.close()
    arena = measure_arena(converted)
    assert arena.activation_lower_bound_bytes == 1200 + 1000
    assert arena.minimum_bytes >= 2200
