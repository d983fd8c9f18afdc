"""Ethos-U targets: the real Vela compiles the int8 model; placement, CPU ops' reasons,
SRAM/flash against the budgets and Vela's (labelled) estimates reach the bundle and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import run_edgekit

import edgekit
from edgekit.converters.vela import run_vela
from edgekit.report import Role
from edgekit.targets import load_target
from edgekit.tflite_model import read_tflite


def _strided_model(path: Path) -> Path:
    """A Keras model with a 5x5 stride-4 SAME conv with a fused ReLU (beyond the NPU's stride
    limit: Vela leaves it on the CPU, and names it "<output>_act") between two ordinary convs."""
    import keras

    inputs = keras.Input((32, 32, 3), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(8, 5, strides=4, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4)(x)
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.fixture(scope="module")
def strided(tmp_path_factory):
    return _strided_model(tmp_path_factory.mktemp("vela") / "strided.keras")


@pytest.fixture(scope="module")
def digits_u55(tmp_path_factory):
    out = tmp_path_factory.mktemp("u55")
    return edgekit.deploy(None, "ethos-u55-128", example="digits", out=out / "b")


def test_deploy_to_ethos_u_puts_vela_s_model_and_reports_in_the_bundle(digits_u55):
    bundle = digits_u55
    assert bundle.ok, [c for c in bundle.report.checks if not c.ok]
    vela_model = bundle.file(Role.NPU_MODEL)
    assert vela_model.name.endswith("_int8_vela.tflite")
    compiled = read_tflite(vela_model.read_bytes())
    assert "CUSTOM:ethos-u" in {name for name, _ in compiled.used_opcodes}
    roles = {a.role for a in bundle.report.artifacts}
    assert {Role.NPU_LOG, Role.CHART} <= roles
    checks = {c.name: c for c in bundle.report.checks}
    assert checks["npu_ops"].ok and "Vela 5." in checks["npu_ops"].detail
    assert checks["npu_sram"].ok and checks["npu_flash"].ok
    npu = json.loads((bundle.path / "report.json").read_text())["npu"]
    assert npu["version"].startswith("5.") and npu["accelerator"] == "ethos-u55-128"
    assert 0 < npu["sram_used_bytes"] <= npu["sram_limit_bytes"] == 2 << 20
    assert npu["estimated_cycles"] == sum(layer["cycles"] for layer in npu["layers"])
    assert npu["estimated_inference_ms"] == pytest.approx(
        1000 * npu["estimated_cycles"] / npu["clock_hz"], rel=0.05
    )
    assert npu["cpu_ops"] == [] and "not a measurement" in npu["estimates"]
    assert {row["target"] for row in npu["ops"]} == {"NPU"}
    assert sum(row["cycles"] for row in npu["ops"]) == npu["estimated_cycles"]
    assert {op.placement for op in bundle.report.ops} == {"npu"}
    text = (bundle.path / "report.md").read_text()
    assert "## Ethos-U (Vela)" in text and "Estimated by Vela, not measured" in text
    assert "NPU execution is not simulated here" in text
    assert "`vela digits_int8.tflite --accelerator-config ethos-u55-128" in text
    # the NPU build's TFLM sources: Vela's model, the ETHOSU op, an arena labelled an estimate
    ops = (bundle.path / "tflm_npu" / "model_ops.h").read_text()
    assert "resolver.AddEthosU()" in ops and ops.count("resolver.Add") == 1
    assert f"#define EDGEKIT_TENSOR_ARENA_SIZE {npu['sram_used_bytes']}" in ops
    assert "an ESTIMATE" in ops and "not simulated" in ops
    from edgekit.converters.tflm import parse_c_array

    array = parse_c_array((bundle.path / "tflm_npu" / "model_data.cc").read_text())
    assert array == vela_model.read_bytes()


def test_an_op_left_on_the_cpu_fails_the_check_with_vela_s_reason_and_the_fix(strided, tmp_path):
    result = run_edgekit(
        "deploy",
        str(strided),
        "-t",
        "ethos-u55-128",
        "--calibration",
        "random",
        "--out",
        str(tmp_path),
        "--no-analysis",
    )
    assert result.returncode == 1, result.stderr[-800:]
    (bundle,) = tmp_path.iterdir()
    report = json.loads((bundle / "report.json").read_text())
    check = next(c for c in report["checks"] if c["name"] == "npu_ops")
    assert not check["ok"] and "1 op(s) stay on the CPU" in check["detail"]
    assert "CONV_2D (Unsupported kernel stride: 4, 4)" in check["detail"]
    (cpu,) = report["npu"]["cpu_ops"]
    assert cpu["advice"].startswith("meet the constraint: Stride>3 is only supported")
    placements = {op["op"]: op["placement"] for op in report["ops"]}
    assert [op["placement"] for op in report["ops"]].count("cpu") == 1
    assert placements["FULLY_CONNECTED"] == "npu"
    assert "| CONV_2D |" in (bundle / "report.md").read_text()
    ops = (bundle / "tflm_npu" / "model_ops.h").read_text()
    assert "resolver.AddEthosU()" in ops and "resolver.AddConv2D()" in ops  # the CPU fallback
    assert "plus the CPU-only arena" in ops


def test_budgets_come_from_the_profile_and_fail_when_exceeded(tmp_path):
    """A board with 4 KiB of SRAM for the NPU: Vela's SRAM figure does not fit."""
    from importlib import resources

    text = resources.files("edgekit.profiles").joinpath("ethos-u55-128.toml").read_text()
    text = text.replace('name = "ethos-u55-128"', 'name = "tiny-u55"')
    text = text.replace('aliases = ["u55-128"]', "aliases = []")
    text = text.replace('config = "Arm/vela.ini"\n', 'config = "Arm/vela.ini"\nsram_bytes = 4096\n')
    profile_file = tmp_path / "tiny-u55.toml"
    profile_file.write_text(text)
    assert load_target(str(profile_file)).npu.sram_bytes == 4096
    bundle = edgekit.deploy(None, str(profile_file), example="digits", out=tmp_path / "b")
    sram = next(c for c in bundle.report.checks if c.name == "npu_sram")
    assert not sram.ok and "does not fit in 4,096 B" in sram.detail
    assert not bundle.ok


def test_a_model_vela_cannot_read_is_a_one_line_failure(tmp_path):
    """TFLM's own LSTM example: Vela 5.2 refuses its UNIDIRECTIONAL_SEQUENCE_LSTM."""
    from helpers import shared_dir

    model = (
        shared_dir("tflm-models") / "tensorflow_lite_micro_examples_mnist_lstm_trained_lstm.tflite"
    )
    run = run_vela(model, tmp_path / "out", load_target("ethos-u55-128").npu)
    assert run.ran and not run.ok and run.output_model is None
    assert run.detail.startswith("Vela 5.") and "failed: " in run.detail
    assert "\n" not in run.detail and "Traceback" not in run.detail


@pytest.fixture(scope="module")
def strided_int8(strided):
    """The strided model as a plain converter int8 .tflite (what a user brings to inspect)."""
    from edgekit.converters.tflite import convert
    from edgekit.models import load_model

    x = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
    data = convert(load_model(strided), "int8", io_dtype="int8", calibration=x).data
    path = strided.with_name("strided_int8.tflite")
    path.write_bytes(data)
    return path


def test_inspect_explains_placement_without_deploying(strided_int8, tmp_path):
    result = run_edgekit("inspect", str(strided_int8), "-t", "ethos-u55-128")
    assert result.returncode == 1, result.stderr[-500:]
    out = " ".join(result.stdout.split())
    assert "placement on the ethos-u55-128 (cycles: Vela's estimate)" in out
    assert "on the CPU: CONV_2D" in out and "Unsupported kernel stride: 4, 4" in out
    assert "to move it to the NPU: meet the constraint: Stride>3" in out
    assert "not a measurement" in out
    as_json = run_edgekit("inspect", str(strided_int8), "-t", "ethos-u55-128", "--json")
    npu = json.loads(as_json.stdout)["npu"]
    assert [op["op"] for op in npu["cpu_ops"]] == ["CONV_2D"]
    assert {c["name"] for c in json.loads(as_json.stdout)["checks"]} >= {"npu_ops", "npu_sram"}
    plain = json.loads(
        run_edgekit("inspect", str(strided_int8), "-t", "cortex-m4", "--json").stdout
    )
    assert plain["npu"] is None and "npu_ops" not in {c["name"] for c in plain["checks"]}
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_hung_vela_is_a_timeout_not_a_hang(strided_int8, tmp_path):
    model = strided_int8
    run = run_vela(model, tmp_path / "out", load_target("ethos-u55-128").npu, timeout=0.05)
    assert not run.ok and "did not finish within 0 s" in run.detail


def test_the_compiled_model_runs_the_ethos_u_op_only_where_the_profile_has_the_npu(digits_u55):
    """The _vela.tflite needs the ETHOSU op: TFLM on a plain Cortex-M cannot run it."""
    from edgekit.runtimes.tflm import missing_ops

    compiled = read_tflite(digits_u55.file(Role.NPU_MODEL).read_bytes())
    assert missing_ops(compiled, ("ethos-u",)) == []
    assert missing_ops(compiled, ()) == ["CUSTOM:ethos-u"]
