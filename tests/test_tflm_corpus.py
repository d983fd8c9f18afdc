"""TFLM's own models are judged runnable on TFLM, by TFLM's own op table.

`../shared/tflm-models/` holds 72 `.tflite` files from TFLM's repository (examples and
integration tests, most int16x8); `../shared/tflm/` holds TFLM source trees whose
`micro_mutable_op_resolver.h` the op table is parsed from.
"""

from __future__ import annotations

import json

import pytest
from helpers import REPO, convert_keras, run_edgekit, shared_dir, tf_keras

from edgekit.checks import model_precision
from edgekit.errors import ToolError
from edgekit.inspection import inspect
from edgekit.runtimes.tflm import measure_arena, missing_ops, op_table, resolver_method
from edgekit.runtimes.tflm_table import table_from_tree
from edgekit.tflite_model import load_tflite

# The one model no Cortex-M4 runs: Vela compiled it for an Arm Ethos-U NPU.
NEEDS_NPU = "tensorflow_lite_micro_models_person_detect_vela.tflite"


def test_op_table_is_tflms_own_resolver():
    """The shipped table equals the resolver header of both TFLM trees, and holds what the
    issue found missing from the old hand list."""
    for tree in ("host", "cortex-m"):
        assert table_from_tree(shared_dir("tflm") / tree) == op_table(), tree
    builtin, custom = op_table()
    for op in (
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "REDUCE_MIN",
        "REVERSE_V2",
        "EMBEDDING_LOOKUP",
        "DYNAMIC_UPDATE_SLICE",
        "IF",
        "WHILE",
        "CALL_ONCE",
        "VAR_HANDLE",
        "READ_VARIABLE",
        "ASSIGN_VARIABLE",
    ):
        assert op in builtin, op
    for op in ("SignalWindow", "SignalRfft", "SignalFilterBank", "SignalEnergy", "SignalPCAN"):
        assert op in custom, op
    assert resolver_method("CUSTOM:SignalWindow") == "AddWindow"
    assert resolver_method("TILE") is None  # not in TFLM


def _corpus():
    return sorted(shared_dir("tflm-models").glob("*.tflite"))


def test_every_corpus_model_is_judged_by_tflms_rules():
    models = _corpus()
    assert len(models) >= 70
    precisions = {}
    for path in models:
        info = inspect(path, "cortex-m4")
        checks = {c.name: c for c in info.checks}
        failed = {name for name, c in checks.items() if not c.ok}
        precisions[path.name] = model_precision(load_tflite(path))
        if path.name == NEEDS_NPU:
            assert failed == {"runtime_ops"}, checks
            assert "Ethos-U" in checks["runtime_ops"].detail
            continue
        assert not failed, (path.name, [checks[n] for n in failed])
        # The arena was measured: the real TFLM interpreter allocated and ran the model.
        assert "ram_budget" in checks, path.name
    # int16x8 models are TFLM's own: a note with its cost, not a failure.
    assert sum(p == "int16x8" for p in precisions.values()) >= 60
    shown = next(n for n, p in precisions.items() if p == "int16x8")
    note = {c.name: c for c in inspect(shared_dir("tflm-models") / shown, "cortex-m4").checks}
    assert "int16x8 kernels" in note["precision"].detail and "arena" in note["precision"].detail


def test_the_table_agrees_with_the_tflm_interpreter():
    """Where the table says TFLM has every op, the tflite_micro interpreter runs the model;
    for an op missing from the table, it fails with "Didn't find op"."""
    ran, refused = 0, []
    for path in _corpus():
        model = load_tflite(path)
        if missing_ops(model):
            with pytest.raises(ToolError, match="Failed to get registration|Didn't find op"):
                measure_arena(model)
            refused.append(path.name)
            continue
        measure_arena(model)  # raises if the interpreter cannot run it
        ran += 1
    assert ran >= 70
    assert refused == [NEEDS_NPU]  # its ethos-u custom op is in no TFLM build
    # A builtin op the table lacks (TILE) fails in the interpreter by name too.
    import tensorflow as tf

    keras = tf_keras()
    inputs = keras.Input((4,))
    tiled = keras.layers.Lambda(lambda x: tf.tile(x, [1, 2]))(inputs)
    _, model = convert_keras(keras.Model(inputs, tiled), scheme="float32", io_dtype="float32")
    assert missing_ops(model) == ["TILE"]
    with pytest.raises(ToolError, match="Didn't find op for builtin opcode 'TILE'"):
        measure_arena(model)


def test_free_batch_and_signal_ops_models_pass(tmp_path):
    """TFLM's hello_world keeps -1 in shape_signature; the micro_speech preprocessor is all
    signal-library custom ops. Both were refused before."""
    base = shared_dir("tflm-models")
    hello = base / "tensorflow_lite_micro_examples_hello_world_models_hello_world_float.tflite"
    audio = (
        base / "tensorflow_lite_micro_examples_micro_speech_models_audio_preprocessor_int8.tflite"
    )  # noqa: E501
    for path in (hello, audio):
        result = run_edgekit("inspect", str(path), "--target", "cortex-m4", "--json")
        assert result.returncode == 0, result.stdout[-2000:]
        checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
        assert all(c["ok"] for c in checks.values())
    assert any(t.dynamic for t in load_tflite(hello).tensors)
    assert "Signal" in " ".join(op for op, _ in load_tflite(audio).used_opcodes)


def test_npu_model_runs_where_the_profile_has_the_npu(tmp_path):
    from edgekit.checks import check_runtime_ops
    from edgekit.targets import load_target

    model = load_tflite(shared_dir("tflm-models") / NEEDS_NPU)
    assert missing_ops(model) == ["CUSTOM:ethos-u"]
    text = (REPO / "targets" / "cortex-m7.toml").read_text()
    text = text.replace('name = "cortex-m7"', 'name = "corstone-300"').replace(
        'rules = "tflm"', 'rules = "tflm"\ncoprocessors = ["ethos-u"]'
    )
    (tmp_path / "corstone.toml").write_text(text)
    npu = load_target(str(tmp_path / "corstone.toml"))
    assert npu.coprocessors == ("ethos-u",)
    assert check_runtime_ops(model, npu).ok
    assert not check_runtime_ops(model, load_target("cortex-m7")).ok


def _with_quantized_dimension(data: bytes, axis: int, rank: int, multi: bool) -> tuple[bytes, int]:
    """The model with `quantized_dimension = axis` on every quantized rank-`rank` tensor that
    has several scales (`multi`) or one; and how many tensors were changed."""
    from edgekit.tflite_edit import pack, unpack

    model = unpack(data)
    changed = 0
    for tensor in model.subgraphs[0].tensors:
        q = tensor.quantization
        if q is None or q.scale is None or len(tensor.shape) != rank:
            continue
        if (len(q.scale) > 1) == multi:
            q.quantizedDimension = axis
            changed += 1
    return pack(model), changed


def test_the_reader_accepts_what_the_runtimes_run(digits_tflite):
    """Older converters wrote quantized_dimension 3 on rank-1 biases. TFLM runs such files, so
    the reader must read them (one scale is per-tensor; a rank-1 tensor has one axis). A
    per-channel filter whose axis points outside it would make a kernel read out of bounds:
    that one is refused, and LiteRT refuses it too."""
    import dataclasses

    import numpy as np
    import pytest

    from edgekit.errors import RuntimeFailure, UsageError
    from edgekit.runtimes import litert, tflm
    from edgekit.tflite_model import read_tflite

    original = digits_tflite["int8"].read_bytes()
    model = read_tflite(original)
    feed = np.zeros((1, *model.input_tensors()[0].shape[1:]), np.int8)
    arena = measure_arena(model).tensor_arena_bytes
    # Per-channel biases with axis 3; every single-scale activation with axis 7.
    for axis, rank, multi in ((3, 1, True), (7, 4, False)):
        data, changed = _with_quantized_dimension(original, axis, rank, multi)
        assert changed > 0
        mutated = read_tflite(data, "old-converter.tflite")  # must not raise
        assert all(t.quant is None or t.quant.axis < max(len(t.shape), 1) for t in mutated.tensors)
        outputs, _ = tflm.run_isolated(mutated, [feed], arena)  # TFLM runs it ...
        expected, _ = tflm.run_isolated(model, [feed], arena)
        assert np.array_equal(outputs[0], expected[0])  # ... and computes the same
    data, changed = _with_quantized_dimension(original, 7, 4, True)
    assert changed > 0
    with pytest.raises(UsageError, match="quantized dimension 7 of a rank-4 tensor"):
        read_tflite(data, "bad-axis.tflite")
    with pytest.raises(RuntimeFailure, match="quantized_dimension"):
        litert.run_isolated(dataclasses.replace(model, data=data), [feed], "reference")
