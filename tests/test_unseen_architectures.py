"""Architectures nobody here wrote (tests/architectures.py: keras.applications with
weights=None, a GRU/LSTM audio model, an attention block, a 0..255-pixel CNN), untrained and
briefly trained, deployed as a new user would: `edgekit deploy` in a subprocess.

Every deploy ends 0, or 1 with a failed check that names the op or budget and the reason;
never 3, never a dead process. This suite deploys one model per target family; the whole
matrix (every architecture x family, untrained and trained) is benchmarks/corpus.py's, with its
table in docs/benchmarks.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from architectures import save
from helpers import compile_tflm_sources, need_gxx, run_edgekit, shared_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("unseen")


def _deploy(model_dir: Path, arch: str, target: str, trained: bool, out: Path, *extra: str):
    model, calib = save(arch, model_dir, trained=trained)
    result = run_edgekit(
        "deploy",
        str(model),
        "-t",
        target,
        "--calibration",
        str(calib),
        "--out",
        str(out),
        "--no-analysis",
        *extra,
        timeout=1800,
    )
    return result


def _assert_outcome(result, out: Path) -> dict:
    """Exit 0, or 1 with failed checks that say why; the report is there either way."""
    tail = (result.stdout + result.stderr)[-1500:]
    assert result.returncode in (0, 1), tail
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr, tail
    reports = list(out.glob("*/report.json"))
    assert len(reports) == 1, tail
    report = json.loads(reports[0].read_text())
    failed = [c for c in report["checks"] if not c["ok"]]
    assert (result.returncode == 0) == (not failed), tail
    assert all(len(c["detail"]) > 20 for c in failed), failed
    return report


def _check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def test_untrained_mobilenetv2_deploys_to_raspberry_pi(model_dir, tmp_path):
    """It stopped with `LiteRT reference kernels on <bytes> crashed (SIGABRT)`: a dead ReLU6
    gave the softmax's input a 7.8e-9 scale. Now it deploys, and verification says why top-1
    agreement is not the measure for an untrained net."""
    result = _deploy(model_dir, "mobilenetv2", "raspberry-pi-4", False, tmp_path)
    report = _assert_outcome(result, tmp_path)
    assert result.returncode == 0, result.stdout[-1500:]
    assert report["metrics"]["output_sqnr_db"] > 20
    assert any("leads by less than one output step" in n for n in report["notes"])


def test_mobilenetv3_on_coral_names_hard_swish(model_dir, tmp_path):
    result = _deploy(model_dir, "mobilenetv3small", "coral", False, tmp_path)
    report = _assert_outcome(result, tmp_path)
    assert result.returncode == 1
    assert "HARD_SWISH" in _check(report, "edgetpu_ops")["detail"]


def test_gru_lstm_audio_model_deploys_to_android(model_dir, tmp_path):
    """Keras 3 traced it with a free batch and the converter refused the loop's TensorList;
    calibration then read tensors LiteRT leaves empty inside the loop."""
    result = _deploy(model_dir, "audio_rnn", "android-arm64", True, tmp_path)
    report = _assert_outcome(result, tmp_path)
    assert result.returncode == 0, result.stdout[-1500:]
    assert {"WHILE"} <= {op["op"] for op in report["ops"]}


def test_pixel_input_model_builds_for_a_microcontroller(model_dir, tflm_tree, tmp_path):
    """0..255 inputs quantize with a scale of exactly 1.0: `1f` in model_io.h broke the C++
    build. The sources compile against TFLM's host tree; with the Arm toolchain and QEMU, the
    firmware runs on a Cortex-M4 and matches host TFLM to the bit."""
    result = _deploy(model_dir, "pixels_cnn", "cortex-m4", True, tmp_path / "out")
    report = _assert_outcome(result, tmp_path / "out")
    assert result.returncode == 0, result.stdout[-1500:]
    assert report["io"]["inputs"][0]["scale"] == 1.0
    bundle = next((tmp_path / "out").iterdir())
    assert "kInput0Scale EDGEKIT_IO_UNUSED = 1.0f;" in (bundle / "tflm" / "model_io.h").read_text()
    need_gxx()
    compile_tflm_sources(bundle, shared_dir("tflm") / "host", tmp_path)
    bench = run_edgekit(
        "bench",
        str(bundle),
        "--device",
        "qemu",
        "--tflm-dir",
        str(tflm_tree),
        "--runs",
        "2",
        "--warmup",
        "0",
        "--db",
        str(tmp_path / "r.db"),
        "--json",
        timeout=3600,
    )
    assert bench.returncode == 0, bench.stderr[-1500:]
    figures = json.loads(bench.stdout)
    assert figures["status"] == "ok" and figures["runtime"] == "tflm (qemu mps2-an386)"
    assert figures["metrics"]["instructions"]["per_inference"] > 0


def test_two_input_two_output_model_deploys_to_a_microcontroller(model_dir, tflm_tree, tmp_path):
    """Two inputs (an image and a feature vector) and two outputs (a class and a value): it
    was refused ("2 inputs are not supported yet"). Calibration and validation come as an
    .npz named by input, labels for the class; TFLM verifies on host; the firmware fills both
    inputs, runs on QEMU and matches host TFLM's CRC over both outputs; its sources compile
    against TFLM's host tree."""
    import keras
    import numpy as np
    from architectures import ARCHITECTURES, inputs_for

    model_path, calib = save("two_in_two_out", model_dir, trained=True)
    model = keras.saving.load_model(model_path)
    x = inputs_for(model, ARCHITECTURES["two_in_two_out"], 40, seed=5)
    labels = model.predict(x, verbose=0)[0].argmax(1)  # labels the float model gets right
    validation = tmp_path / "validation.npz"
    np.savez(validation, x0=x[0], x1=x[1], y=labels)  # by position: x0, x1 in model order
    out = tmp_path / "out"
    result = run_edgekit(
        "deploy",
        str(model_path),
        "-t",
        "cortex-m4",
        "--calibration",
        str(calib),
        "--validation",
        str(validation),
        "--out",
        str(out),
        "--no-analysis",
        "--tflm-dir",
        str(tflm_tree),
        timeout=3600,
    )
    report = _assert_outcome(result, out)
    assert result.returncode == 0, (result.stdout + result.stderr)[-1500:]
    assert "input image [1, 32, 32, 3] float32, input meta [1, 8] float32" in result.stderr
    assert [i["shape"] for i in sorted(report["io"]["inputs"], key=lambda i: len(i["shape"]))] == [
        [1, 8],
        [1, 32, 32, 3],
    ]
    outputs = report["verification"]["outputs"]
    assert len(outputs) == 2 and report["verification"]["runtime"].startswith("TFLM")
    assert {o["name"] for o in outputs} == {"label", "value"}  # Keras's names, not output_0
    assert {o["task"] for o in outputs} == {"classification", "regression"}
    classes = next(o for o in outputs if o["task"] == "classification")
    assert classes["float_accuracy"] == 1.0 and classes["deployed_accuracy"] > 0.8
    assert all(o["sqnr_db"] > 12 for o in outputs), outputs  # the plain converter's: 30, 16 dB
    assert _check(report, "firmware_matches_host_tflm")["ok"]
    bundle = next(out.iterdir())
    assert "kInputCount EDGEKIT_IO_UNUSED = 2;" in (bundle / "tflm" / "model_io.h").read_text()
    need_gxx()
    compile_tflm_sources(bundle, shared_dir("tflm") / "host", tmp_path)
