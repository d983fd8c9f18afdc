"""The deploy pipeline end to end: bundles, reports, exit codes, the Python API."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_edgekit, tf_keras

import edgekit
from edgekit.errors import EdgekitError
from edgekit.tflite_model import load_tflite

REPORT_KEYS = {"target", "artifacts", "metrics", "checks", "steps", "status", "model", "notes"}
METRIC_KEYS = {
    "float_accuracy",
    "deployed_accuracy",
    "top1_agreement",
    "output_sqnr_db",
    "model_bytes",
    "parameters",
    "macs",
}


def _check_bundle(path):
    report = json.loads((path / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert METRIC_KEYS <= set(report["metrics"])
    for artifact in report["artifacts"]:
        data = (path / artifact["path"]).read_bytes()
        assert len(data) == artifact["bytes"]
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"]
    assert (path / "report.md").read_text().startswith("# ")
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".partial")]
    return report


@pytest.mark.slow
def test_cli_deploy_example_to_coral(tmp_path):
    out = tmp_path / "out"
    result = run_edgekit("deploy", "--example", "digits", "--target", "coral", "--out", str(out))
    assert result.returncode == 0, result.stderr
    bundle = out / "digits-coral-usb"
    report = _check_bundle(bundle)
    assert report["status"] == "deployed" and report["target"]["name"] == "coral-usb"
    m = report["metrics"]
    assert m["top1_agreement"] >= 0.97 and m["output_sqnr_db"] > 20
    assert m["deployed_accuracy"] >= m["float_accuracy"] - 0.02
    assert m["model_bytes"] <= 0.31 * m["float_model_bytes"]
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["edgetpu_compiler"]["ran"] is False
    assert "not installed" in steps["edgetpu_compiler"]["detail"]
    assert report["edgetpu"]["analysis"]["ops_on_cpu"] == 0
    model = load_tflite(bundle / "digits_int8.tflite")
    assert model.input_tensors()[0].dtype == "UINT8"
    assert "deployed:" in result.stdout
    # No compiled model (no edgetpu_compiler here): the bundle's commands bench the CPU, and
    # say so; both run as written, from the bundle directory.
    assert report["bench"]["harness"] == "linux"
    assert report["bench"]["host"] == "edgekit bench . --device local --delegate xnnpack"
    on_device = report["bench"]["on_device"]
    assert on_device.endswith("digits_int8.tflite --threads 1 --delegate xnnpack")
    assert (bundle / "harness" / "edgekit_harness.py").is_file()
    assert any("no Edge TPU-compiled model" in note for note in report["notes"])
    db = tmp_path / "r.db"
    host = run_edgekit(
        *shlex.split(report["bench"]["host"])[1:], "--runs", "3", "--db", str(db), cwd=bundle
    )
    assert host.returncode == 0, host.stderr
    words = shlex.split(report["bench"]["on_device"])
    device = subprocess.run(
        [sys.executable, *words[1:], "--runs", "3"],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert device.returncode == 0 and json.loads(device.stdout)["status"] == "ok", device.stderr
    # The report lists every op and where it runs; the IO a Coral app must quantize.
    assert {op["placement"] for op in report["ops"]} == {"tpu"}
    (inp,) = report["io"]["inputs"]
    assert inp["dtype"] == "uint8" and inp["shape"] == [1, 8, 8, 1] and inp["scale"] > 0
    sentence = "edgetpu_compiler is not installed here"
    assert (bundle / "report.md").read_text().count(sentence) == 1  # said once, not twice
    assert result.stdout.count(sentence) + result.stderr.count(sentence) <= 1

    again = run_edgekit("deploy", "--example", "digits", "--target", "coral", "--out", str(out))
    assert again.returncode == 2 and "--force" in again.stderr
    assert json.loads((bundle / "report.json").read_text())["created"] == report["created"]


@pytest.mark.slow
def test_cli_deploy_example_to_mcu_with_json_and_force(tmp_path):
    out = tmp_path / "out"
    args = ("deploy", "--example", "digits", "--target", "cortex-m4", "--out", str(out), "--json")
    first = run_edgekit(*args)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    bundle = out / "digits-cortex-m4"
    assert _check_bundle(bundle)["metrics"] == report["metrics"]
    m = report["metrics"]
    assert m["tensor_arena_bytes"] == m["tensor_arena_minimum_bytes"] + 16
    assert m["tflm_max_diff_steps"] <= 1 and m["deployed_accuracy"] > 0.9
    assert report["verification"]["runtime"].startswith("TFLM")
    header = (bundle / "tflm" / "model_ops.h").read_text()
    assert f"#define EDGEKIT_TENSOR_ARENA_SIZE {m['tensor_arena_bytes']}\n" in header
    assert "64-bit host" in header and report["tflm"]["arena_source"].endswith("64-bit host")
    assert report["bench"]["host"] == "edgekit bench . --device 'serial:///dev/ttyACM0?baud=115200'"
    assert "kInput0Scale" in (bundle / "tflm" / "model_io.h").read_text()
    glue = (bundle / "tflm" / "edgekit_model.h").read_text()
    assert "#define EDGEKIT_MODEL_DATA g_digits_model_data\n" in glue
    assert "g_digits_model_data[]" in (bundle / "tflm" / "model_data.h").read_text()
    assert {p.name for p in (bundle / "harness").iterdir()} >= {
        "main.cc",
        "edgekit_platform.h",
        "edgekit_protocol.h",
    }
    assert report["bench"]["simulate"].endswith("--device tflm-host")
    forced = run_edgekit(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["created"] >= report["created"]
    assert sorted(p.name for p in out.iterdir()) == ["digits-cortex-m4"]


def test_python_api_with_live_model_and_arrays(example, tmp_path):
    keras = tf_keras()
    model = example.model(keras)
    x, y = example.validation.x[:200], example.validation.y[:200]
    bundle = edgekit.deploy(
        model,
        "raspberry-pi-4",
        calibration=example.calibration.x,
        validation=(x, y),
        out=tmp_path,
    )
    assert bundle.ok and bundle.path == tmp_path / "digits_cnn-raspberry-pi-4"
    report = _check_bundle(bundle.path)
    assert report["metrics"]["validation_samples"] == 200
    assert report["data"]["validation"]["labels"] is True
    assert bundle.report.metrics["deployed_accuracy"] > 0.9
    assert edgekit.load_target("rpi4").name == "raspberry-pi-4"
    assert edgekit.inspect(bundle.path / "digits_cnn_int8.tflite").macs > 0

    # The bundle carries its harness; the one-line on-device command runs as written.
    words = shlex.split(bundle.report.bench["on_device"])
    assert words[:3] == ["python3", "harness/edgekit_harness.py", "digits_cnn_int8.tflite"]
    proc = subprocess.run(
        [sys.executable, *words[1:], "--runs", "5"],
        cwd=bundle.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)["status"] == "ok", proc.stderr
    assert bundle.report.bench["host"] == "edgekit bench . --device ssh://USER@HOST"
    from edgekit.bench import bench

    result = bench(bundle.path, device="local", runs=5, db=tmp_path / "r.db")  # the bundle's target
    assert result.ok and result.target == "raspberry-pi-4"
    assert result.model_name == "digits_cnn_int8.tflite"


def test_random_calibration_marks_accuracy_meaningless(example, tmp_path):
    bundle = edgekit.deploy(example.model_path, "cortex-m7", calibration="random", out=tmp_path)
    assert bundle.report.metrics["accuracy_meaningful"] is False
    assert any("random" in note for note in bundle.report.notes)
    assert "meaningless" in (bundle.path / "report.md").read_text()


def test_collapse_fails_the_deploy_with_exit_1(example, tmp_path):
    calib = tmp_path / "tiny.npy"
    np.save(calib, example.calibration.x / 1000)
    val = tmp_path / "val.npz"
    np.savez(val, x=example.validation.x, y=example.validation.y)
    result = run_edgekit(
        "deploy",
        str(example.model_path),
        "--target",
        "raspberry-pi-5",
        "--calibration",
        str(calib),
        "--validation",
        str(val),
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 1, result.stderr
    report = _check_bundle(tmp_path / "o" / "digits-raspberry-pi-5")
    assert report["status"] == "failed"
    agreement = {c["name"]: c for c in report["checks"]}["top1_agreement"]
    assert not agreement["ok"] and "collapse" in agreement["detail"]
    assert "FAILED" in result.stdout


def test_tflite_input_deploys_without_reconversion(digits_tflite, example, tmp_path):
    bundle = edgekit.deploy(
        digits_tflite["int8"],
        "esp32-s3",
        validation=(example.validation.x, example.validation.y),
        out=tmp_path,
    )
    assert bundle.ok
    assert (bundle.path / "digits_int8_as-given.tflite").read_bytes() == digits_tflite[
        "int8"
    ].read_bytes()
    steps = {s.name: s for s in bundle.report.steps}
    assert steps["convert"].ran is False
    assert bundle.report.metrics.top1_agreement is None
    assert bundle.report.metrics.deployed_accuracy > 0.9


def test_gpu_delegate_deploys_float16(example, tmp_path):
    bundle = edgekit.deploy(
        example.model_path,
        "android-arm64",
        delegate="gpu",
        example=None,
        calibration=example.calibration.x,
        out=tmp_path,
    )
    assert bundle.ok
    model = load_tflite(bundle.path / "digits_float16.tflite")
    assert "FLOAT16" in {t.dtype for t in model.tensors if t.is_constant}
    assert bundle.report.target.quantization.scheme == "float16"
    assert bundle.report.target.delegate == "gpu"


GPU_LOG = """\
INFO: Created TensorFlow Lite delegate for GPU.
INFO: Replacing 10 out of 10 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 partitions.
count=5 first=2500 curr=1800 min=1750 max=2500 avg=1850 std=120
Inference timings in us: Init: 120000, First inference: 2500, Warmup (avg): 2100, Inference (avg): 1850
Memory footprint delta from the start of the tool (MB): init=12.5 overall=40.75
"""


def test_a_gpu_bundle_is_benchmarked_with_the_gpu_delegate(example, tmp_path, monkeypatch):
    """Bench reads the bundle's effective profile (delegate gpu), not the profile's name
    (which says xnnpack). adb is absent here: a stand-in on PATH records each call and prints
    benchmark_model's documented output."""
    bundle = edgekit.deploy(
        example.model_path,
        "android-arm64",
        delegate="gpu",
        calibration="random",
        out=tmp_path / "out",
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "log.txt").write_text(GPU_LOG)
    adb = bin_dir / "adb"
    adb.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{bin_dir}/calls.txt"\n'
        'case "$*" in\n'
        "  *get-state*) echo device ;;\n"
        f'  *benchmark_model*) cat "{bin_dir}/log.txt" ;;\n'
        "esac\n"
    )
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    from edgekit.bench import bench

    result = bench(bundle.path, device="adb://emulator-5554", runs=5, db=tmp_path / "r.db")
    assert result.ok and result.settings["delegate"] == "gpu" and result.delegate == "gpu"
    calls = (bin_dir / "calls.txt").read_text()
    assert "--use_gpu=true" in calls and "--use_xnnpack=false" in calls
    assert "digits_float16.tflite" in calls


def test_unsupported_op_fails_mcu_deploy_with_reason(tmp_path):
    import tensorflow as tf

    keras = tf_keras()
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: tf.tile(x, [1, 2]))(inputs)
    model = keras.Model(inputs, outputs, name="tiler")
    bundle = edgekit.deploy(model, "cortex-m4", calibration="random", out=tmp_path)
    assert not bundle.ok
    checks = {c.name: c for c in bundle.report.checks}
    assert not checks["runtime_ops"].ok and "TILE" in checks["runtime_ops"].detail
    steps = {s.name: s for s in bundle.report.steps}
    assert steps["tflm export"].ran is False and "TILE" in steps["tflm export"].detail


def test_existing_bundle_is_kept_without_force(example, tmp_path):
    (tmp_path / "digits-cortex-m7").mkdir()
    (tmp_path / "digits-cortex-m7" / "keep.txt").write_text("mine")
    # The Python caller is told the Python spelling too: force=True, not only --force.
    with pytest.raises(EdgekitError, match=r"already exists; .*\(Python: force=True\)"):
        edgekit.deploy(example.model_path, "cortex-m7", calibration="random", out=tmp_path)
    assert (tmp_path / "digits-cortex-m7" / "keep.txt").read_text() == "mine"


def test_over_ram_budget_fails_with_needed_vs_available(tmp_path):
    keras = tf_keras()
    model = keras.Sequential(
        [keras.Input((112, 112, 8)), keras.layers.Conv2D(16, 3, padding="same")], name="wide"
    )
    bundle = edgekit.deploy(model, "cortex-m4", calibration="random", out=tmp_path)
    assert not bundle.ok
    ram = {c.name: c for c in bundle.report.checks}["ram_budget"]
    arena = bundle.report.metrics["tensor_arena_bytes"]
    assert not ram.ok and f"{arena / 1024:.1f} KiB" in ram.detail and "224.0 KiB" in ram.detail


def test_the_readme_deploy_without_matplotlib_skips_the_chart_with_a_note(example, tmp_path):
    # `pip install .` brings no matplotlib (it is the [plot] extra): the default deploy must
    # still work, without the chart, and say so.
    out = tmp_path / "out"
    code = (
        "import runpy, sys; sys.modules['matplotlib'] = None; "
        f"sys.argv = ['edgekit', 'deploy', '--example', 'digits', '--target', 'coral', "
        f"'--out', {str(out)!r}]; runpy.run_module('edgekit', run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    bundle = next(out.iterdir())
    report = json.loads((bundle / "report.json").read_text())
    assert not (bundle / "analysis.png").exists() and report["quantization"]["analysis"]["layers"]
    assert any(
        "chart not drawn: charts need matplotlib (pip install 'edgekit[plot]')" in note
        for note in report["notes"]
    )
    assert "analysis.png" not in (bundle / "report.md").read_text()
