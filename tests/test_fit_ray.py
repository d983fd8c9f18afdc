"""`edgekit fit --ray`: trials on a real Ray cluster on this machine (a head node and a worker
node of one CPU each, started once for the module and stopped at its end), with the same
figures as in this process; a task killed on the cluster is its trial's error; a bad address
is one line in seconds."""

from __future__ import annotations

import _thread
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import assert_same_trials, missing_part

from edgekit.errors import UsageError

NO_RAY = 'ray is not installed (pip install "edgekit[ray]")'


def _need_ray() -> None:
    try:
        import ray  # noqa: F401
    except ImportError:
        missing_part("RAY", NO_RAY)


def free_port() -> int:
    """A free TCP port outside the range Ray gives its workers (10002-19999)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if not 10000 <= port < 20000:
            return port


def _processes(sessions: list[int], tmp: str) -> list[int]:
    """Our cluster's processes: in the sessions `ray start` began (its node daemons and their
    workers), or naming its temp dir (scoped: another Ray here is left alone, unlike `ray
    stop`)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, session, ...
        if fields[0] != "Z" and (int(fields[3]) in sessions or tmp in cmdline):
            found.append(int(entry.name))
    return found


def _stop(sessions: list[int], tmp: str) -> None:
    deadline = time.monotonic() + 30
    while (left := _processes(sessions, tmp)) and time.monotonic() < deadline:
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)  # what `ray stop --force` sends
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    shutil.rmtree(tmp, ignore_errors=True)
    assert not left, f"Ray processes left running: {left}"


@pytest.fixture(scope="module")
def ray_cluster():
    """A head and a worker node on 127.0.0.1, one CPU each, from this Python (so the nodes
    import this edgekit); stopped, every process of it, when the module ends."""
    _need_ray()
    tmp = tempfile.mkdtemp(prefix="ekray-", dir="/tmp")  # Unix socket paths: 107 chars at most
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    sessions: list[int] = []

    def ray_start(*args: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ray.scripts.scripts", "start", *args]
            + ["--num-cpus", "1", "--object-store-memory", str(200 * 2**20), "--temp-dir", tmp]
            + ["--dashboard-agent-listen-port", str(free_port()), "--disable-usage-stats"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,  # its daemons and their workers in a session of their own
        )
        sessions.append(proc.pid)
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out[-3000:]

    port = free_port()
    started = time.perf_counter()
    try:
        ray_start(
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
            f"--ray-client-server-port={free_port()}",
        )
        ray_start(f"--address=127.0.0.1:{port}")
        seconds = time.perf_counter() - started
        print(f"\nRay cluster (head + worker node) started in {seconds:.1f} s")
        yield SimpleNamespace(address=f"127.0.0.1:{port}", sessions=sessions, tmp=tmp)
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        _stop(sessions, tmp)


@pytest.fixture()
def ray_runner(ray_cluster, fit_jobs):
    from edgekit.fitting.ray_runner import RayRunner

    runner = RayRunner(fit_jobs.context, ray_cluster.address)
    try:
        yield runner
    finally:
        runner.close()


def _running_trials(ray_cluster) -> list[int]:
    """Ray worker processes of our cluster running a trial now (Ray titles them by task)."""
    found = []
    for pid in _processes(ray_cluster.sessions, ray_cluster.tmp):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::run_job"):
                found.append(pid)
        except OSError:
            pass
    return found


def test_trials_run_on_the_cluster_in_job_order_with_the_same_figures(
    ray_runner, ray_cluster, fit_jobs
):
    import ray

    assert ray.cluster_resources()["CPU"] == 2
    assert sum(node["Alive"] for node in ray.nodes()) == 2
    assert ray_runner.slots == 2
    assert ray_runner.where == f"Ray cluster at {ray_cluster.address}: 2 nodes, 2 CPUs"
    outcomes = ray_runner.run(fit_jobs.jobs)
    assert_same_trials(outcomes, fit_jobs.reference)


def test_a_task_killed_on_the_cluster_is_its_trials_error(ray_runner, ray_cluster, fit_jobs):
    killed: list[int] = []

    def kill_one_running_trial():
        deadline = time.monotonic() + 180
        while not killed and time.monotonic() < deadline:
            running = _running_trials(ray_cluster)
            if running:
                time.sleep(0.5)  # mid-trial
                os.kill(running[0], signal.SIGKILL)
                killed.append(running[0])
            time.sleep(0.1)

    killer = threading.Thread(target=kill_one_running_trial, daemon=True)
    killer.start()
    outcomes = ray_runner.run(fit_jobs.jobs)
    killer.join()
    assert killed
    assert [o.number for o in outcomes] == [1, 2]
    errors = [o for o in outcomes if not o.ok]
    assert len(errors) == 1, outcomes
    assert errors[0].error.startswith("Ray: WorkerCrashedError: "), errors[0].error
    assert "\n" not in errors[0].error and errors[0].report is None
    # the search goes on: the next batch runs on the cluster
    assert_same_trials(ray_runner.run(fit_jobs.jobs[:1]), fit_jobs.reference[:1])


def test_ctrl_c_cancels_the_running_tasks(ray_runner, ray_cluster, fit_jobs):
    def interrupt_once_trials_run():
        deadline = time.monotonic() + 180
        while not _running_trials(ray_cluster) and time.monotonic() < deadline:
            time.sleep(0.1)
        _thread.interrupt_main()

    threading.Thread(target=interrupt_once_trials_run, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        ray_runner.run(fit_jobs.jobs)
    deadline = time.monotonic() + 30
    while _running_trials(ray_cluster) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running_trials(ray_cluster) == []  # cancelled, not left computing


def test_an_address_without_a_cluster_is_one_line_in_seconds(fit_jobs):
    _need_ray()
    from edgekit.fitting.ray_runner import RayRunner

    address = f"127.0.0.1:{free_port()}"
    started = time.perf_counter()
    with pytest.raises(UsageError, match=f"cannot reach a Ray cluster at {address}") as error:
        RayRunner(fit_jobs.context, address)
    assert time.perf_counter() - started < 30
    assert "\n" not in str(error.value)
    with pytest.raises(UsageError, match="expected the head node's HOST:PORT"):
        RayRunner(fit_jobs.context, "head-node")


def test_without_ray_installed_the_error_says_what_to_install(fit_jobs, monkeypatch):
    from edgekit.fitting.ray_runner import RayRunner

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    with pytest.raises(UsageError, match=r'pip install "edgekit\[ray\]"'):
        RayRunner(fit_jobs.context, "127.0.0.1:6379")


def test_edgekit_fit_with_ray_is_the_same_search_and_store(
    ray_cluster, keras3_digits_model, digits_data, tmp_path
):
    """`edgekit.fit(..., ray=ADDRESS)` end to end on the cluster: the trials run there, the
    result names the cluster, every trial is in the results store, and the seed's candidates
    are those a local search proposes."""
    import edgekit
    from edgekit.bench.store import ResultStore

    train, _, val = digits_data
    common = dict(
        validation=(val.x[:64], val.y[:64]),
        trials=2,
        seed=5,
        sensitivity=False,
    )
    data = (train.x[:128], None)
    store = ResultStore(tmp_path / "results.db")
    on_ray = edgekit.fit(
        keras3_digits_model,
        "cortex-m4",
        data,
        {"max_drop": 0.5},
        ray=ray_cluster.address,
        out=tmp_path / "ray",
        store=store,
        **common,
    )
    assert "Ray cluster at" in on_ray.where and "2 nodes" in on_ray.where
    assert len(on_ray.trials) == 2 and not on_ray.failures
    rows = store.list(fit=on_ray.fit_id)
    assert sorted(r.settings["trial"] for r in rows) == [1, 2]
    local = edgekit.fit(
        keras3_digits_model,
        "cortex-m4",
        data,
        {"max_drop": 0.5},
        workers=1,
        out=tmp_path / "local",
        store=store,
        **common,
    )
    assert [t.candidate for t in local.trials] == [t.candidate for t in on_ray.trials]
    assert [t.report.metrics.macs for t in local.trials] == [
        t.report.metrics.macs for t in on_ray.trials
    ]
