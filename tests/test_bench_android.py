"""Android: the adb command lines and the benchmark_model parser on its documented output."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from edgekit.bench.android import ADB, benchmark_flags, command_lines, parse_benchmark_output
from edgekit.bench.runner import BenchModel, BenchRequest
from edgekit.bench.uri import parse_device
from edgekit.errors import EdgekitError
from edgekit.targets import load_target

# Output in the forms benchmark_model prints (TF 2.16 style), CPU with XNNPACK.
XNNPACK_LOG = """\
INFO: STARTING!
INFO: Num runs: [50]
INFO: Graph: [/data/local/tmp/edgekit/model.tflite]
INFO: #threads used for CPU inference: [4]
INFO: Use xnnpack: [1]
INFO: Loaded model /data/local/tmp/edgekit/model.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: Replacing 9 out of 10 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 2 partitions for the whole graph.
INFO: The input model file size (MB): 0.078176
INFO: Initialized session in 3.512ms.
INFO: Running benchmark for at least 5 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=5 first=412 curr=96 min=95 max=412 avg=158.6 std=126

INFO: Running benchmark for at least 50 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=97 curr=94 min=91 max=1.2e+02 avg=96.38 std=4.5

INFO: Inference timings in us: Init: 3512, First inference: 412, Warmup (avg): 158.6, Inference (avg): 96.38
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=3.625 overall=5.25
"""

# An older release with the GPU delegate refusing part of the graph.
GPU_OLD_LOG = """\
INFO: Created TensorFlow Lite delegate for GPU.
INFO: Replacing 7 out of 10 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 2 partitions.
count=20 first=2.5e3 curr=1800 min=1750 max=2500 avg=1.85e3 std=120
Inference timings in us: Init: 1.2e5, First inference: 2500, Warmup (avg): 2.1e3, Inference (avg): 1850
Peak memory footprint (MB): init=12.5 overall=40.75
"""


def test_parser_reads_the_documented_forms():
    m = parse_benchmark_output(XNNPACK_LOG, "xnnpack")
    assert m["count"] == 50
    assert m["latency_ms"]["min"] == pytest.approx(0.091)
    assert m["latency_ms"]["max"] == pytest.approx(0.120)  # 1.2e+02 us
    assert m["latency_ms"]["mean"] == pytest.approx(0.09638)
    assert m["latency_ms"]["std"] == pytest.approx(0.0045)
    assert m["init_ms"] == pytest.approx(3.512) and m["first_inference_ms"] == pytest.approx(0.412)
    assert m["warmup_avg_ms"] == pytest.approx(0.1586)
    assert (m["init_memory_mb"], m["peak_rss_mb"]) == (3.625, 5.25)
    assert (m["delegate_nodes"], m["total_nodes"], m["delegate_partitions"]) == (9, 10, 2)
    assert m["fallback_to_cpu"] is True  # one node stayed on the CPU

    old = parse_benchmark_output(GPU_OLD_LOG, "gpu")
    assert old["latency_ms"]["mean"] == pytest.approx(1.85)
    assert old["init_ms"] == pytest.approx(120.0)
    assert (old["init_memory_mb"], old["peak_rss_mb"]) == (12.5, 40.75)
    assert old["delegate_name"] == "TfLiteGpuDelegateV2" and old["fallback_to_cpu"] is True


def test_a_delegate_that_took_nothing_is_a_cpu_fallback():
    log = XNNPACK_LOG.replace("XNNPACK delegate for CPU", "GPU delegate failed").replace(
        "Replacing 9 out of 10 node(s) with delegate (TfLiteXNNPackDelegate)", "Ignored"
    )
    m = parse_benchmark_output(log, "gpu")
    assert m["delegate_nodes"] == 0 and m["fallback_to_cpu"] is True
    assert parse_benchmark_output(XNNPACK_LOG, "nnapi")["fallback_to_cpu"] is True


def test_adb_command_lines_keep_paths_whole(tmp_path, monkeypatch):
    fake_adb = tmp_path / "bin" / "adb"  # only located on PATH, never run here
    fake_adb.parent.mkdir()
    fake_adb.write_text("#!/bin/sh\nexit 1\n")
    fake_adb.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake_adb.parent))
    model = tmp_path / "my model; reboot.tflite"
    binary = tmp_path / "bench mark"
    profile = load_target("android-arm64").with_delegate("gpu")
    request = BenchRequest(
        model=BenchModel(model, model.name, "0" * 64),
        device=parse_device("adb://emulator-5554"),
        profile=profile,
        settings={"threads": 4, "warmup": 3, "runs": 40, "delegate": profile.delegate},
        benchmark_binary=binary,
    )
    steps = dict(command_lines(request, ADB("emulator-5554")))
    assert steps["push model"] == [
        str(fake_adb),
        "-s",
        "emulator-5554",
        "push",
        str(model),
        "/data/local/tmp/edgekit/model.tflite",
    ]
    assert steps["push binary"][4] == str(binary)
    run = steps["benchmark_model"]
    assert run[:4] == [str(fake_adb), "-s", "emulator-5554", "shell"] and len(run) == 5
    words = shlex.split(run[4])
    assert words[0] == "/data/local/tmp/edgekit/benchmark_model"
    assert "--graph=/data/local/tmp/edgekit/model.tflite" in words
    assert {
        "--num_threads=4",
        "--warmup_runs=3",
        "--num_runs=40",
        "--use_gpu=true",
        "--use_xnnpack=false",
        "--use_nnapi=false",
    } <= set(words)


def test_flags_refuse_unknown_delegates():
    with pytest.raises(EdgekitError, match="not one benchmark_model takes"):
        benchmark_flags({"threads": 1, "warmup": 1, "runs": 1, "delegate": "edgetpu"})


def test_absent_device_is_a_one_line_error(tmp_path, monkeypatch):
    # adb's documented reply when the serial is unknown.
    fake_adb = tmp_path / "adb"
    fake_adb.write_text("#!/bin/sh\necho \"error: device 'R58M' not found\" >&2\nexit 1\n")
    fake_adb.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EdgekitError, match="device R58M not reachable over adb.*not found"):
        ADB("R58M").check_device()
    assert Path(fake_adb).exists()
