"""int16 activations where int8 runs out: 16x8 ops spliced into the int8 model, run by TFLM
as by LiteRT, chosen by the mixed-precision search on microcontrollers (no float ops)."""

from __future__ import annotations

import numpy as np
import pytest

import edgekit
from edgekit.quantization import int16
from edgekit.quantization.analysis import _outputs, probe_tensor
from edgekit.quantization.engine import quantize_int8
from edgekit.runtimes import litert, tflm
from edgekit.tflite_model import read_tflite
from edgekit.verify import sqnr_db


@pytest.fixture(scope="module")
def spliced(resnet8, resnet8_float):
    """(float model, int8 bytes, 16x8 bytes, every candidate tensor carried in int16)."""
    from edgekit.models import conversion_worker
    from edgekit.stages.convert import int16_model
    from edgekit.targets import load_target

    _, float_model = resnet8_float
    x = resnet8.calibration.x[:64]
    result = quantize_int8(float_model.data, x)
    quant = load_target("cortex-m4").quantization
    wide = int16_model(
        result.calibrated, result.statistics, "minmax", quant, conversion_worker(), x
    )
    names = int16.candidates(read_tflite(result.data), read_tflite(wide))
    return float_model, result.data, wide, names


def test_the_16x8_model_is_what_16x8_kernels_take(spliced):
    """Zero points 0 and 64-bit biases: LiteRT's 16x8 kernels read the quantizer's int32
    biases as int64 (−10.9 dB at ResNet-8's logits before this)."""
    _, _, wide, _ = spliced
    model = read_tflite(wide)
    int16_tensors = [t for t in model.tensors if t.dtype == "INT16"]
    assert int16_tensors and all(t.quant.zero_points == (0,) for t in int16_tensors)
    convs = [op for op in model.operators if op.name == "CONV_2D"]
    assert {model.tensors[op.inputs[2]].dtype for op in convs} == {"INT64"}
    # CMSIS-NN's s16 fully-connected kernel takes per-tensor weights only
    dense = [op for op in model.operators if op.name == "FULLY_CONNECTED"]
    assert dense and all(len(model.tensors[op.inputs[1]].quant.scales) == 1 for op in dense)


def test_tflm_runs_the_mixed_model_as_litert_does(resnet8, spliced):
    """Every candidate in int16: QUANTIZE ops between int8 and int16 run in both runtimes,
    bit for bit alike, and the logits move closer to the float model's."""
    float_model, int8_data, wide, names = spliced
    assert len(names) >= 8
    mixed = read_tflite(int16.splice(int8_data, wide, tuple(names)))
    kinds = {t.dtype for t in mixed.tensors if not t.is_constant}
    assert {"INT8", "INT16"} <= kinds and "FLOAT32" not in kinds
    assert 0.3 < int16.int16_share(mixed) < 1.0
    # the replaced ops' int8 weights are not carried beside their 16x8 copies
    assert len(mixed.data) < 1.1 * len(int8_data)
    feeds = litert.input_feeds(mixed, resnet8.validation.x[:6])
    micro, _ = tflm.run_isolated(mixed, feeds, tflm.measure_arena(mixed).tensor_arena_bytes)
    reference, _ = litert.run_isolated(mixed, feeds, "reference")
    for got, index in zip(micro, mixed.outputs, strict=True):
        assert np.array_equal(got.reshape(reference[index].shape), reference[index])
    v = resnet8.validation.x[:100]
    probe = float_model.tensors[probe_tensor(float_model)].name
    expected = _outputs(float_model, v, "reference", probe)
    before = sqnr_db(expected, _outputs(read_tflite(int8_data), v, "reference", probe))
    after = sqnr_db(expected, _outputs(mixed, v, "reference", probe))
    assert after > before + 1.0


def test_the_cmsis_nn_firmware_runs_the_mixed_model(spliced, tflm_tree, tmp_path):
    """Every candidate in int16 (the FULLY_CONNECTED too) on cortex-m4's CMSIS-NN kernels
    under QEMU: it runs and its output CRC is host TFLM's (per-channel 16x8 dense weights
    failed CMSIS-NN's Prepare before)."""
    from edgekit.bench.qemu import run_firmware
    from edgekit.targets import load_target

    _, int8_data, wide, names = spliced
    path = tmp_path / "resnet8_mixed.tflite"
    path.write_bytes(int16.splice(int8_data, wide, tuple(names)))
    mixed = read_tflite(path.read_bytes())
    wide_ops = {op.name for op in mixed.operators if mixed.tensors[op.inputs[0]].dtype == "INT16"}
    assert "FULLY_CONNECTED" in wide_ops
    result = run_firmware(
        path, load_target("cortex-m4"), arena_bytes=None, tflm_dir=tflm_tree, runs=1
    )
    assert result.status == "ok", result.error
    assert result.metrics["output_digest"] == result.metrics["host_output_digest"]
    assert result.metrics["instructions"]["per_inference"] > 1_000_000


def test_one_tensor_makes_its_writer_and_readers_16x8(spliced):
    _, int8_data, wide, names = spliced
    int8 = read_tflite(int8_data)
    name = names[1]
    mixed = read_tflite(int16.splice(int8_data, wide, (name,)))
    wide_tensors = [t for t in mixed.tensors if t.dtype == "INT16"]
    writer = next(op for op in int8.operators if int8.tensors[op.outputs[0]].name == name)
    readers = [op for op in int8.operators if writer.outputs[0] in op.inputs]
    # the carried tensor, plus an int16 copy of each input of the 16x8 ops
    assert any(t.name == f"{name}/int16" for t in wide_tensors)
    quantize = [op for op in mixed.operators if op.name == "QUANTIZE"]
    assert len(mixed.operators) == len(int8.operators) + len(quantize) - sum(
        op.name == "QUANTIZE" for op in int8.operators
    )
    assert len(quantize) - sum(op.name == "QUANTIZE" for op in int8.operators) >= len(readers)
    assert int16.splice(int8_data, wide, ("no such tensor",)) == int8_data


def test_a_goal_on_a_microcontroller_is_met_with_int16_not_float(resnet8, tmp_path):
    """cortex-m4 (TFLM): the mixed-precision search carries tensors in int16; the deployed
    model has no float op, TFLM verifies it, and the report says what is in int16."""

    def deploy(out: str, **options):
        return edgekit.deploy(
            resnet8.model_path,
            "cortex-m4",
            calibration=resnet8.calibration.x[:64],
            validation=resnet8.validation.x[:64],
            analysis=False,
            out=tmp_path / out,
            **options,
        )

    goal = round(deploy("a").report.metrics.logits_sqnr_db + 1.5, 1)
    bundle = deploy("b", min_sqnr=goal)
    q = bundle.report.quantization
    mixed = q["search"]["mixed"]
    assert mixed["precision"] == "int16" and mixed["kept_in_float"] == []
    assert mixed["search_met"] and mixed["in_int16"] and list(q["in_int16"]) == mixed["in_int16"]
    deployed = read_tflite(bundle.file(edgekit.report.Role.DEPLOYED_MODEL).read_bytes())
    assert "DEQUANTIZE" not in {op.name for op in deployed.operators}
    assert "INT16" in {t.dtype for t in deployed.tensors}
    assert bundle.report.verification["runtime"].startswith("TFLM")
    precision = next(c for c in bundle.report.checks if c.name == "precision")
    assert precision.ok and precision.detail.startswith("int8 with ")
    judged = next(c for c in bundle.report.checks if c.name == "quantization_goal")
    assert judged.ok == (mixed["met"] and bundle.report.metrics.logits_sqnr_db >= goal)
    cost = q["mixed_precision_cost"]
    assert cost["tensor_arena_bytes"][1] > cost["tensor_arena_bytes"][0]
    text = (bundle.path / "report.md").read_text()
    assert "tensor(s) in int16" in text and "carried in int16 (16x8 ops)" in text
    assert "Cost (all int8 → mixed): model bytes " in text and "{'" not in text
