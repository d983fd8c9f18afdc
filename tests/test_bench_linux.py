"""The Linux harness, here (`local`) and over a real OpenSSH server on 127.0.0.1."""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import run_edgekit
from sshd import start_sshd

from edgekit.bench.runner import bench
from edgekit.bench.store import ResultStore
from edgekit.errors import EdgekitError, ToolError
from edgekit.runtimes.harness import harness_path

AWKWARD = "my model; rm -rf x $(id).tflite"  # spaces, ';' and shell syntax in the file name


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture()
def awkward_model(digits_tflite, tmp_path):
    path = tmp_path / "dir with space" / AWKWARD
    path.parent.mkdir()
    shutil.copyfile(digits_tflite["int8"], path)
    return path


def _check_latencies(result, runs):
    lat = result.metrics["latency_ms"]
    assert len(result.latencies_ms) == runs
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] == pytest.approx(float(np.percentile(result.latencies_ms, 50)), rel=1e-3)


def test_local_and_ssh_run_the_same_model_and_agree(awkward_model, sshd, tmp_path):
    db = tmp_path / "results.db"
    local = bench(awkward_model, "raspberry-pi-4", "local", runs=20, threads=1, db=db)
    assert local.ok, local.error
    _check_latencies(local, 20)
    assert local.runtime == "ai_edge_litert" and local.delegate == "xnnpack"
    assert 0 < local.metrics["delegate_nodes"] <= local.metrics["total_nodes"]
    assert local.metrics["peak_rss_mb"] > 10 and local.device_info["cores"] >= 1
    assert local.model_name == AWKWARD and not (tmp_path / "x").exists()

    before = set(glob.glob("/tmp/edgekit.*"))
    remote = bench(
        awkward_model,
        "raspberry-pi-4",
        sshd.alias_uri,
        runs=20,
        threads=1,
        db=db,
        remote_python=sys.executable,
        ssh_config=sshd.config,
    )
    assert remote.ok, remote.error
    _check_latencies(remote, 20)
    assert remote.device == "ssh://edgekit-test" and remote.transport == "ssh"
    # Same model, same seeded input, same runtime: the same output, bit for bit.
    assert remote.metrics["output_digest"] == local.metrics["output_digest"]
    assert set(remote.metrics["transport_ms"]) == {"setup", "run", "cleanup"}
    assert set(glob.glob("/tmp/edgekit.*")) == before  # the remote directory was removed

    stored = ResultStore(db).list()
    assert [r.id for r in stored] == [remote.id, local.id]
    assert stored[0].metrics["output_digest"] == remote.metrics["output_digest"]
    assert stored[0].model_sha256 == local.model_sha256


def _harness_on(port: int) -> list[int]:
    """Pids of harness processes started over ssh to this test's sshd (its SSH_CONNECTION
    names the port): other test runs on the machine may run harnesses of their own."""
    found = subprocess.run(
        ["pgrep", "-f", "edgekit_harness.py model.tflite"], capture_output=True, text=True
    ).stdout.split()
    mine = []
    for pid in map(int, found):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[1:2] != [b"edgekit_harness.py"]:  # the Python, not the shell or ssh around it
            continue
        if any(v.startswith(b"SSH_CONNECTION=") and v.endswith(b" %d" % port) for v in environ):
            mine.append(pid)
    return mine


def test_ssh_failures_are_recorded_runs(digits_tflite, sshd, tmp_path):
    db = tmp_path / "results.db"
    common = dict(
        runs=10_000_000,
        warmup=0,
        threads=1,
        db=db,
        remote_python=sys.executable,
        ssh_config=sshd.config,
    )
    outcome = {}
    worker = threading.Thread(
        target=lambda: outcome.update(
            result=bench(digits_tflite["int8"], "raspberry-pi-4", sshd.uri, **common)
        )
    )
    worker.start()
    deadline = time.monotonic() + 300  # a loaded host starts ssh and Python slowly
    while time.monotonic() < deadline:  # wait until the harness runs "on the device"
        if _harness_on(sshd.port):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the harness never started on the device")
    time.sleep(1.0)
    # The device loses it: only this test's harness, as other runs on the machine have theirs.
    for pid in _harness_on(sshd.port):
        os.kill(pid, signal.SIGKILL)
    worker.join(timeout=300)
    assert not worker.is_alive()
    killed = outcome["result"]
    assert killed.status == "failed"
    assert "without a result" in killed.error and "status" in killed.error

    assert [r.status for r in ResultStore(db).list()] == ["failed"]


def test_a_connection_that_never_happened_is_an_error_not_a_run(digits_tflite, sshd, tmp_path):
    db = tmp_path / "results.db"
    # A device that is not there at all: connection refused, an error, no hang, no run.
    with pytest.raises(ToolError, match="cannot connect to ssh://root@127.0.0.1:1: .*refused"):
        bench(
            digits_tflite["int8"],
            "raspberry-pi-4",
            "ssh://root@127.0.0.1:1",
            runs=5,
            db=db,
            ssh_config=sshd.config,
        )
    # A mistyped host is bad input: exit 2, one line, nothing recorded.
    typo = run_edgekit(
        "bench",
        str(digits_tflite["int8"]),
        "-t",
        "rpi4",
        "--device",
        "ssh://no-such-host.invalid",
        "--db",
        str(db),
    )
    assert typo.returncode == 2, typo.stderr
    assert "cannot connect to ssh://no-such-host.invalid" in typo.stderr.splitlines()[-1]
    assert ResultStore(db).list() == []


def test_a_device_without_an_sftp_server(digits_tflite, tmp_path):
    server = start_sshd(tmp_path / "sshd", sftp=False)
    try:
        result = bench(
            digits_tflite["int8"],
            "raspberry-pi-4",
            server.alias_uri,
            runs=3,
            threads=1,
            db=tmp_path / "r.db",
            remote_python=sys.executable,
            ssh_config=server.config,
        )
    finally:
        server.stop()
    assert result.ok, result.error
    assert len(result.latencies_ms) == 3


def test_harness_reports_a_missing_delegate_instead_of_running_on_cpu(digits_tflite, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(harness_path()),
            str(digits_tflite["uint8"]),
            "--delegate",
            "edgetpu",
            "--runs",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    assert result["status"] == "failed" and "metrics" not in result
    assert "delegate edgetpu failed to load (libedgetpu.so.1)" in result["error"]

    wrong = tmp_path / "x.npy"
    np.save(wrong, np.zeros((1, 8, 8, 3), np.int8))
    proc = subprocess.run(
        [sys.executable, str(harness_path()), str(digits_tflite["int8"]), "--input", str(wrong)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert (
        "expected int8[1, 8, 8, 1], received int8[1, 8, 8, 3]" in json.loads(proc.stdout)["error"]
    )


def test_bench_cli_bad_input_is_one_line(digits_tflite, tmp_path):
    env = {"EDGEKIT_DB": str(tmp_path / "r.db")}
    wrong_shape, not_numpy = tmp_path / "wrong.npy", tmp_path / "text.npy"
    np.save(wrong_shape, np.zeros((1, 8, 8, 3), np.int8))
    not_numpy.write_text("hello")
    cases = [
        (["bench", str(digits_tflite["int8"]), "--target", "cortex-m4"], "--device must be"),
        (["bench", str(digits_tflite["int8"]), "--device", "ssh://"], "needs a host name"),
        (["bench", str(digits_tflite["int8"]), "--device", "ftp://x"], "bad device"),
        (["bench", str(tmp_path / "none.tflite"), "--target", "rpi4"], "no such model"),
        (["bench", str(digits_tflite["int8"])], "no target"),
        (
            ["bench", str(digits_tflite["int8"]), "-t", "rpi4", "--input", str(wrong_shape)],
            "expected int8[1, 8, 8, 1], received int8[1, 8, 8, 3]",
        ),
        (
            ["bench", str(digits_tflite["int8"]), "-t", "rpi4", "--input", str(not_numpy)],
            "text.npy: not a readable NumPy file",
        ),
        (
            ["bench", str(digits_tflite["int8"]), "-t", "rpi4", "--device", "serial:///dev/nope"],
            "--device must be local or ssh",
        ),
        (
            [
                "bench",
                str(digits_tflite["int8"]),
                "-t",
                "cortex-m4",
                "--device",
                "serial:///dev/ttyNOPE0",
            ],
            "serial port /dev/ttyNOPE0 does not exist",
        ),
    ]
    if shutil.which("adb") is None:
        cases.append(
            (
                ["bench", str(digits_tflite["int8"]), "-t", "android-arm64", "--device", "adb://X"],
                "'adb' not found on PATH",
            )
        )
    for args, message in cases:
        proc = run_edgekit(*args, env=env, timeout=120)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "r.db").exists() or not ResultStore(tmp_path / "r.db").list()
    # ssh missing from PATH: a one-line error, not a failed run.
    with pytest.raises(EdgekitError, match="'ssh' not found on PATH"):
        saved = os.environ["PATH"]
        os.environ["PATH"] = str(tmp_path)
        try:
            bench(digits_tflite["int8"], "rpi4", "ssh://pi@host", db=tmp_path / "r.db")
        finally:
            os.environ["PATH"] = saved


def test_harness_falls_back_to_the_next_interpreter_package(digits_tflite):
    """Pi/Coral images carry different runtimes: with ai_edge_litert and tflite_runtime
    unavailable the harness uses tensorflow.lite, and computes the same output."""
    model = str(digits_tflite["int8"])
    direct = subprocess.run(
        [sys.executable, str(harness_path()), model, "--runs", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    blocked = (
        "import runpy, sys; sys.modules['ai_edge_litert'] = None; "
        "sys.modules['tflite_runtime'] = None; "
        f"sys.argv = ['h', {model!r}, '--runs', '3']; "
        f"runpy.run_path({str(harness_path())!r}, run_name='__main__')"
    )
    fallback = subprocess.run(
        [sys.executable, "-c", blocked], capture_output=True, text=True, timeout=300
    )
    first, second = json.loads(direct.stdout), json.loads(fallback.stdout)
    assert first["runtime"]["name"] == "ai_edge_litert"
    assert second["status"] == "ok" and second["runtime"]["name"] == "tensorflow"
    assert second["metrics"]["output_digest"] == first["metrics"]["output_digest"]
