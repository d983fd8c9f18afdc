"""`.tflite` parsing and the inspect figures, checked against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import run_edgekit

from edgekit.errors import EdgekitError
from edgekit.inspection import activation_lower_bound, inspect
from edgekit.tflite_model import load_tflite, read_tflite

# The digits CNN at batch 1 (8x8x1 input):
# conv 3x3 1→32: 8*8*32*9 · depthwise 3x3 on 32: 8*8*32*9 · conv 1x1 32→64: 8*8*64*32
# dense 256→256 · dense 256→10
EXAMPLE_MACS = {
    "CONV_2D": 8 * 8 * 32 * 9 + 8 * 8 * 64 * 32,
    "DEPTHWISE_CONV_2D": 8 * 8 * 32 * 9,
    "FULLY_CONNECTED": 256 * 256 + 256 * 10,
}


def test_ops_and_macs_of_the_example(digits_tflite):
    info = inspect(digits_tflite["int8"])
    by_op = {o.op: o for o in info.ops}
    for op, macs in EXAMPLE_MACS.items():
        assert by_op[op].macs == macs
    assert by_op["CONV_2D"].count == 2 and by_op["FULLY_CONNECTED"].count == 2
    assert info.macs == sum(EXAMPLE_MACS.values())
    assert by_op["SOFTMAX"].macs == 0


def test_parameters_and_bytes_by_dtype(digits_tflite, example_loaded):
    info = inspect(digits_tflite["int8"])
    dtypes = {d.dtype: d for d in info.dtypes}
    # int8 weights: 3*3*32 + 3*3*32 + 32*64 + 256*256 + 256*10 (BN folded into the convs)
    int8_weights = 288 + 288 + 2048 + 65536 + 2560
    assert dtypes["int8"].parameter_bytes == int8_weights
    assert dtypes["int32"].parameter_bytes >= 4 * (32 + 64 + 256 + 10)
    float_info = inspect(digits_tflite["float32"])
    assert float_info.parameter_bytes > 3.5 * info.parameter_bytes
    # Constant elements: every weight and bias, whatever the dtype.
    assert info.parameters == float_info.parameters


def test_activation_lower_bound_by_hand(digits_tflite):
    model = load_tflite(digits_tflite["int8"])
    bound, peak = activation_lower_bound(model)
    # Biggest moment: the 1x1 conv reads 8x8x32 and writes 8x8x64 int8 (2048 + 4096 bytes).
    assert bound == 8 * 8 * 32 + 8 * 8 * 64
    assert model.operators[peak].name == "CONV_2D"


def test_parse_rejects_random_and_truncated_bytes(digits_tflite):
    data = digits_tflite["int8"].read_bytes()
    with pytest.raises(EdgekitError, match="no TFL3 identifier"):
        read_tflite(np.random.default_rng(0).bytes(4096), "random.tflite")
    for cut in (16, 200, len(data) // 2, len(data) - 64, len(data) - 1):
        with pytest.raises(EdgekitError, match="corrupt or truncated|truncated|corrupt"):
            read_tflite(data[:cut], "cut.tflite")


def test_cli_inspect_table_json_and_target_checks(digits_tflite):
    result = run_edgekit("inspect", str(digits_tflite["int8"]))
    assert result.returncode == 0, result.stderr
    assert "DEPTHWISE_CONV_2D" in result.stdout and "activation lower bound" in result.stdout
    assert "MACs:" in result.stdout  # the legend explains every column
    as_json = run_edgekit("inspect", str(digits_tflite["int8"]), "--target", "cortex-m4", "--json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["macs"] == sum(EXAMPLE_MACS.values())
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["ram_budget"]["ok"] and checks["flash_budget"]["ok"]
    # The uint8-IO model is wrong for an int8-IO MCU: inspect says so and exits 1.
    wrong = run_edgekit("inspect", str(digits_tflite["uint8"]), "--target", "cortex-m4", "--json")
    assert wrong.returncode == 1
    assert not {c["name"]: c for c in json.loads(wrong.stdout)["checks"]}["io_dtype"]["ok"]


def _brute_force_bound(model):
    """The old quadratic definition: at each op, sum every activation alive there."""
    from edgekit.graph import tensor_lifetimes

    lives = tensor_lifetimes(model)
    best = 0
    for i in range(len(model.operators)):
        alive = sum(model.tensors[t].bytes for t, (a, b) in lives.items() if a <= i <= b)
        best = max(best, alive)
    return best


def test_linear_activation_bound_equals_the_definition(digits_tflite):
    import sys

    from helpers import REPO

    from edgekit.tflite_model import read_tflite

    sys.path.insert(0, str(REPO / "benchmarks"))
    from inspect_scale import chain_model

    for model in (load_tflite(digits_tflite["int8"]), read_tflite(chain_model(300))):
        assert activation_lower_bound(model)[0] == _brute_force_bound(model)
    # A skip connection keeps a third 64-byte tensor alive beside an op's input and output.
    assert activation_lower_bound(read_tflite(chain_model(300)))[0] == 3 * 64


def test_tflm_verification_is_bounded_by_work(digits_tflite, monkeypatch):
    """TFLM's Python interpreter is slow on big models: the sample count follows the MACs."""
    import edgekit.verify as verify
    from edgekit.graph import op_macs

    model = load_tflite(digits_tflite["int8"])
    macs = sum(op_macs(model, op) for op in model.operators)
    assert verify.tflm_sample_count(model, 500) == 500  # small: every sample
    monkeypatch.setattr(verify, "TFLM_MAC_BUDGET", 100 * macs)
    assert verify.tflm_sample_count(model, 500) == 100
    monkeypatch.setattr(verify, "TFLM_MAC_BUDGET", macs)
    assert verify.tflm_sample_count(model, 500) == verify.TFLM_MIN_SAMPLES
    assert verify.tflm_sample_count(model, 5) == 5
