"""Pruning, QAT and distillation under tf.distribute: MirroredStrategy on two logical CPUs,
and MultiWorkerMirroredStrategy with two real worker processes talking gRPC on 127.0.0.1, with
Keras 3 models (edgekit's own wrappers); tf_keras models (tfmot's) under MirroredStrategy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from helpers import REPO

SCRIPT = REPO / "examples" / "distributed_training.py"
EPOCHS = "3"
ACCURACY_TOLERANCE = 0.06  # the stated tolerance vs single-device training


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(strategy: str, out, env=None, keras="3"):
    cmd = [sys.executable, str(SCRIPT), "--technique", "all", "--strategy", strategy,
           "--epochs", EPOCHS, "--out", str(out), "--keras", keras]  # fmt: skip
    return subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _finish(proc):
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return _finish(_run("none", tmp_path_factory.mktemp("single") / "r.json"))


def _compare(result, single, replicas):
    assert result["replicas"] == replicas
    for technique in ("prune", "qat", "distill"):
        got, base = result["results"][technique], single["results"][technique]
        assert abs(got["val_accuracy"] - base["val_accuracy"]) <= ACCURACY_TOLERANCE, technique
        assert got["val_accuracy"] > 0.75, technique
    assert result["results"]["prune"]["sparsity"] == pytest.approx(
        single["results"]["prune"]["sparsity"], abs=0.002
    )
    assert result["results"]["prune"]["sparsity"] == pytest.approx(0.8, abs=0.01)


@pytest.mark.slow
def test_mirrored_strategy_on_two_logical_cpus(single, tmp_path):
    _compare(_finish(_run("mirrored", tmp_path / "r.json")), single, replicas=2)


@pytest.mark.slow
def test_multi_worker_mirrored_with_two_processes(single, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    procs = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        procs.append(
            _run("multiworker", tmp_path / f"r{index}.json", {"TF_CONFIG": json.dumps(tf_config)})
        )
    results = [_finish(proc) for proc in procs]
    _compare(results[0], single, replicas=2)
    # Both workers hold the same synchronised model.
    assert (
        results[0]["results"]["prune"]["val_accuracy"]
        == results[1]["results"]["prune"]["val_accuracy"]
    )
    assert (tmp_path / "r0.json").exists() and not (tmp_path / "r1.json").exists()


@pytest.mark.slow
def test_tf_keras_models_under_mirrored_strategy(tmp_path):
    result = _finish(_run("mirrored", tmp_path / "r.json", keras="tf_keras"))
    assert result["keras"] == "tf_keras" and result["replicas"] == 2
    for technique in ("prune", "qat", "distill"):
        assert result["results"][technique]["val_accuracy"] > 0.75, technique
    assert result["results"]["prune"]["sparsity"] == pytest.approx(0.8, abs=0.01)
