"""`edgekit fit --ray ADDRESS`: trials as tasks on a Ray cluster, one CPU each.

The runner connects to a running cluster (it never starts or stops one), puts the
:class:`~edgekit.fitting.jobs.FitContext` in the cluster's object store once, and runs each job
as a task that calls :func:`edgekit.fitting.jobs.run_job` in a Ray worker process, which keeps the
loaded model between the trials it runs. Every node of the cluster needs edgekit installed
(the same version, with TensorFlow) in the Python that runs its Ray: a task imports
``edgekit.fitting.jobs`` there. A task that dies (its worker crashed, its node was lost) is that
trial's error; Ctrl-C cancels the running tasks.

The address is the head node's GCS address as ``ray start --head`` prints it (``HOST:PORT``),
a Ray Client address (``ray://HOST:PORT``) or ``auto`` (a cluster started on this machine):

>>> gcs_endpoint("10.0.0.5:6379"), gcs_endpoint("ray://head.local:10001")
(('10.0.0.5', 6379), ('head.local', 10001))
>>> gcs_endpoint("auto") is None
True
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from edgekit.errors import UsageError
from edgekit.fitting.jobs import FitContext, TrialOutcome, run_job
from edgekit.fitting.runners import TRIAL_TIMEOUT_S, Job

CONNECT_TIMEOUT_S = 5.0  # the pre-check of the address; Ray's own connect retries for minutes
# Ray's connect loop makes ~20 attempts of ~40 s each to an endpoint that accepts TCP but never
# answers as a Ray GCS; two attempts are enough for a running cluster.
_RAY_CONNECT_ATTEMPTS = ("RAY_gcs_server_port_wait_time_s", "2")


def gcs_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) that `address` names, None for ``auto``; a UsageError when it names none."""
    text = address.strip()
    if text == "auto":
        return None
    host, sep, port = text.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # [::1]:6379
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(
            f"--ray: expected the head node's HOST:PORT (e.g. 10.0.0.5:6379, as `ray start "
            f"--head` prints it), ray://HOST:PORT or auto; received {address!r}"
        )
    return host, int(port)


class RayRunner:
    """Trials as Ray tasks on the cluster at `address`; `slots` is the cluster's CPU count."""

    def __init__(self, context: FitContext, address: str) -> None:
        try:
            import ray
        except ImportError:
            raise UsageError(
                '--ray: Ray is not installed here; pip install "edgekit[ray]"'
            ) from None
        self.ray = ray
        self.address = address
        endpoint = gcs_endpoint(address)
        if endpoint is not None:
            _check_reachable(address, endpoint)
        self.owns_connection = not ray.is_initialized()  # a caller's connection stays theirs
        _connect(ray, address)
        self.context = context
        self.context_ref = ray.put(context)
        self.task = ray.remote(num_cpus=1, max_retries=0)(run_job)
        cpus = int(ray.cluster_resources().get("CPU", 0))
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        self.slots = max(1, cpus)
        self.where = (
            f"Ray cluster at {address}: {nodes} node{'s' if nodes != 1 else ''}, "
            f"{cpus} CPU{'s' if cpus != 1 else ''}"
        )

    def run(self, jobs: Sequence[Job]) -> list[TrialOutcome]:
        """Each job as a task; the outcomes in the jobs' order, a dead task as its error."""
        started = time.perf_counter()
        refs = [self.task.remote(self.context_ref, number, candidate) for number, candidate in jobs]
        outcomes: list[TrialOutcome] = []
        try:
            for ref, (number, _) in zip(refs, jobs, strict=True):
                outcomes.append(self._collect(ref, number, started))
        except BaseException:  # Ctrl-C: no trial goes on behind our back
            for ref in refs[len(outcomes) :]:
                self._cancel(ref)
            raise
        return outcomes

    def _collect(self, ref: Any, number: int, started: float) -> TrialOutcome:
        ray = self.ray
        left = max(0.0, started + TRIAL_TIMEOUT_S - time.perf_counter())
        try:
            return ray.get(ref, timeout=left)
        except ray.exceptions.GetTimeoutError:
            self._cancel(ref)
            error = f"Ray: the trial took more than {TRIAL_TIMEOUT_S / 3600:g} h; cancelled"
        except ray.exceptions.RayError as exc:  # the worker crashed, the node was lost, ...
            error = f"Ray: {_one_line(exc)}"
        return TrialOutcome(number, None, time.perf_counter() - started, None, error)

    def _cancel(self, ref: Any) -> None:
        try:
            self.ray.cancel(ref, force=True)
        except Exception:  # already finished, or the cluster is gone
            pass

    def close(self) -> None:
        """Disconnect from the cluster (which goes on running)."""
        if self.owns_connection and self.ray.is_initialized():
            self.ray.shutdown()


def _check_reachable(address: str, endpoint: tuple[str, int]) -> None:
    """Fail in seconds on an address nothing listens at (ray.init would retry for minutes)."""
    try:
        socket.create_connection(endpoint, timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"--ray: cannot reach a Ray cluster at {address} ({reason}); start one with "
            f"`ray start --head` or check the head node's address"
        ) from None


def _connect(ray: Any, address: str) -> None:
    name, attempts = _RAY_CONNECT_ATTEMPTS
    previous = os.environ.get(name)
    os.environ.setdefault(name, attempts)
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            ignore_reinit_error=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UsageError(
            f"--ray: cannot connect to a Ray cluster at {address}: {_one_line(exc)}"
        ) from None
    finally:
        if previous is None:
            os.environ.pop(name, None)


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # a RayTaskError carries the task's own exception
    if isinstance(cause, BaseException):
        exc = cause
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
