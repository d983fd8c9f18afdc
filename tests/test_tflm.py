"""TFLite → TFLM: byte-identical C array, exact resolver, arena measured with tflite_micro."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from helpers import convert_keras, need_gxx, tf_keras

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
    with ArenaProber(model.data) as prober:
        assert prober.runs_with(arena.minimum_bytes)[0]
        assert not prober.runs_with(arena.minimum_bytes - 1)[0]
    assert arena.tensor_arena_bytes == arena.minimum_bytes + 16
    # The arena holds at least every activation alive at the busiest op.
    assert arena.activation_lower_bound_bytes <= arena.minimum_bytes


def test_c_array_is_byte_identical_and_aligned(digits_tflite, tmp_path):
    model = load_tflite(digits_tflite["int8"])
    sources = model_data_sources(model.data, "digits")
    assert "alignas(16) const unsigned char g_digits_model_data[]" in sources["model_data.cc"]
    assert parse_c_array(sources["model_data.cc"]) == model.data
    assert f"g_digits_model_data_len = {len(model.data)};" in sources["model_data.cc"]


def test_c_array_compiles_and_dumps_the_same_bytes(digits_tflite, tmp_path):
    need_gxx()
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
        "model_io.h",
        "model_ops.h",
        "edgekit_model.h",
    }
    header = (tmp_path / "model_ops.h").read_text()
    ops = {name for name, _ in model.opcodes}
    registered = re.findall(r"resolver\.(Add\w+)\(\)", header)
    assert len(registered) == len(ops) == len(set(registered))
    assert f"MicroMutableOpResolver<{len(ops)}>" in header
    assert f"#define EDGEKIT_TENSOR_ARENA_SIZE {arena.tensor_arena_bytes}\n" in header
    assert "kTensorArenaSize = EDGEKIT_TENSOR_ARENA_SIZE;" in header
    # Says where the figure comes from: the Python wheel's allocator on a 64-bit host.
    assert "RecordingMicroAllocator" in header and "64-bit host" in header
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


def test_tflm_runs_the_example_like_litert_reference_kernels(example, digits_tflite):
    from edgekit.runtimes import litert, tflm

    model = load_tflite(digits_tflite["int8"])
    arena = measure_arena(model)
    feeds = [litert.quantize_input(example.validation.x[:100], model.input_tensors()[0])]
    (tflm_out,), _ = tflm.run_isolated(model, feeds, arena.tensor_arena_bytes)
    ref, _ = litert.run_isolated(model, feeds, "reference")
    assert tflm_out.dtype == np.int8 and tflm_out.shape == (100, 1, 10)
    assert np.abs(tflm_out.astype(int) - ref[model.outputs[0]].astype(int)).max() <= 1


def test_arena_search_survives_tflm_crashing_on_tiny_arenas():
    """tflite_micro segfaults when an arena is too small for its own bookkeeping; the probe
    runs in a worker process, so the measurement goes on and edgekit does not crash."""
    keras = tf_keras()
    model = keras.Sequential([keras.Input((1200,)), keras.layers.Dense(1000)])
    _, converted = convert_keras(model)
    with ArenaProber(converted.data) as prober:
        assert prober.runs_with(100) == (False, "the TFLM interpreter crashed")
        assert prober.runs_with(1 << 20)[0]  # a fresh worker after the crash
    arena = measure_arena(converted)
    assert arena.activation_lower_bound_bytes == 1200 + 1000
    assert arena.minimum_bytes >= 2200


def test_io_header_gives_an_application_what_it_needs(digits_tflite, tmp_path):
    need_gxx()
    """model_io.h compiles as C++ and holds each input/output's shape, type, scale, zero point."""
    model = load_tflite(digits_tflite["int8"])
    write_tflm_sources(model, "digits", tmp_path, None)
    (tmp_path / "probe.cc").write_text(
        '#include <cstdio>\n#include "model_io.h"\n'
        "int main() {\n"
        '  printf("%d %d %.9g %d %d %d\\n", kInputCount, kOutputCount, kInput0Scale,\n'
        "         kInput0ZeroPoint, kInput0Rank, kInput0Dims[1]);\n"
        '  printf("%.9g %d %d %d\\n", kOutput0Scale, kOutput0ZeroPoint, kOutput0Dims[1],\n'
        "         (int)sizeof(Input0Type));\n  return 0;\n}\n"
    )
    exe = tmp_path / "probe"
    subprocess.run(
        ["g++", "-std=c++17", "-Wall", "-Werror", "-o", str(exe), "probe.cc"],
        cwd=tmp_path,
        check=True,
    )
    first, second = subprocess.run(
        [str(exe)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    inp, out = model.input_tensors()[0], model.output_tensors()[0]
    counts, scale, zero, rank, dim = first.split()[:2], *first.split()[2:]
    assert counts == ["1", "1"] and int(rank) == 4 and int(dim) == 8
    assert float(scale) == pytest.approx(inp.quant.scales[0], rel=1e-6)
    assert int(zero) == inp.quant.zero_points[0]
    o_scale, o_zero, o_dim, size = second.split()
    assert float(o_scale) == pytest.approx(out.quant.scales[0], rel=1e-6)
    assert (int(o_zero), int(o_dim), int(size)) == (out.quant.zero_points[0], 10, 1)


@pytest.mark.parametrize("compiler", ["gcc", "g++"])
def test_every_scale_is_a_literal_c_and_cpp_read_back(compiler, tmp_path):
    """A model taking 0..255 pixels has an input scale of exactly 1.0: `1f` is no C++ literal
    (the build failed with "unable to find numeric literal operator"). Every float written is
    read back exactly by C and by C++."""
    from edgekit.converters.tflm import IO_UNUSED_MACRO, c_float, io_header_lines

    need_gxx()  # gcc comes with g++
    values = [1.0, 2.0, 0.0039, 1e-05, 3.0517578125e-05, 255.0, 1e30, 7.8456619e-09, 0.0]
    lines = ["#include <stdio.h>", "#include <stdint.h>", IO_UNUSED_MACRO]
    for i, value in enumerate(values):
        lines += io_header_lines("input", i, "INT8", [1, 4], value, 0)
    body = "".join(f'  printf("%.9g\\n", (double)kInput{i}Scale);\n' for i in range(len(values)))
    suffix = ".c" if compiler == "gcc" else ".cc"
    source = "\n".join(lines) + f"\nint main(void) {{\n{body}  return 0;\n}}\n"
    (tmp_path / f"probe{suffix}").write_text(source)
    exe = tmp_path / "probe"
    subprocess.run(
        [compiler, "-Wall", "-Werror", "-o", str(exe), f"probe{suffix}"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    printed = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert [np.float32(p) for p in printed] == [np.float32(v) for v in values]
    assert c_float(1.0) == "1.0f" and c_float(1e-05) == "1e-05f"
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ToolError, match="non-finite"):
            c_float(bad)
