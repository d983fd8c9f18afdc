"""Where `edgekit fit` runs its trials: in this process, in local worker processes, or on a
Ray cluster (:mod:`edgekit.fitting.ray_runner`). Each runner takes a batch of (number,
candidate) jobs and returns their :class:`~edgekit.fitting.jobs.TrialOutcome` in the batch's
order, so a search is the same whichever runs it.

Local workers are edgekit's own worker processes (:mod:`edgekit.isolation`): they die with
edgekit (a SIGKILLed search leaves none behind), ignore the terminal's Ctrl-C (edgekit stops
them), and a crash in one is that trial's error, not the search's end.

>>> default_workers(cpus=2), default_workers(cpus=16)
(2, 4)
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any, Protocol

from edgekit.errors import EdgekitError, UsageError
from edgekit.fitting.jobs import FitContext, TrialOutcome, adopt, forget, run_job
from edgekit.fitting.trial import Candidate
from edgekit.isolation import Worker

TRIAL_TIMEOUT_S = 6 * 3600.0  # one trial (fine-tuning included); a hung runtime ends sooner
MAX_DEFAULT_WORKERS = 4

Job = tuple[int, Candidate]


class Runner(Protocol):
    """Runs trials; `slots` of them at once."""

    slots: int
    where: str

    def run(self, jobs: Sequence[Job]) -> list[TrialOutcome]: ...

    def close(self) -> None: ...


def default_workers(cpus: int | None = None) -> int:
    """Local workers by default: one per core, at most four (each trains with TensorFlow)."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_WORKERS))


class InProcessRunner:
    """Trials one after another in this process, on the live model (no copy): what a model
    with custom objects needs, and what tests use."""

    slots = 1
    where = "this process"

    def __init__(self, context: FitContext, model: Any) -> None:
        self.context = context
        adopt(context, model)

    def run(self, jobs: Sequence[Job]) -> list[TrialOutcome]:
        return [run_job(self.context.key, number, candidate) for number, candidate in jobs]

    def close(self) -> None:
        forget()


class LocalRunner:
    """`workers` worker processes on this machine, a trial each at a time."""

    def __init__(self, context: FitContext, workers: int) -> None:
        if workers < 1:
            raise UsageError(f"--workers: at least 1; received {workers}")
        self.context = context
        self.slots = workers
        self.where = f"{workers} local worker process{'es' if workers > 1 else ''}"
        self.workers = [Worker(f"fit worker {i + 1}") for i in range(workers)]
        self.prepared: set[int] = set()

    def run(self, jobs: Sequence[Job]) -> list[TrialOutcome]:
        """Each job on a free worker; a worker that crashed is restarted for the next one."""
        pending = list(jobs)
        running: dict[int, tuple[Worker, Job, float]] = {}
        done: dict[int, TrialOutcome] = {}
        try:
            while pending or running:
                for worker in self.workers:
                    if not pending:
                        break
                    if any(w is worker for w, _, _ in running.values()):
                        continue
                    job = pending.pop(0)
                    try:
                        self._send(worker, job)
                    except EdgekitError as exc:  # the worker died loading the model
                        self.prepared.discard(id(worker))
                        done[job[0]] = TrialOutcome(job[0], None, 0.0, None, str(exc))
                        continue
                    running[job[0]] = (worker, job, time.perf_counter())
                for number, (worker, job, started) in list(running.items()):
                    if worker.ready():
                        del running[number]
                        done[number] = self._receive(worker, job, started)
                if running:
                    time.sleep(0.05)
        except BaseException:
            for worker, _, _ in running.values():  # Ctrl-C: no trial goes on behind our back
                worker.stop()
                self.prepared.discard(id(worker))
            raise
        return [done[number] for number, _ in jobs]

    def _send(self, worker: Worker, job: Job) -> None:
        if id(worker) not in self.prepared or worker.proc is None:
            worker.call("edgekit.fitting.jobs:prepare", self.context, timeout=TRIAL_TIMEOUT_S)
            self.prepared.add(id(worker))
        worker.send("edgekit.fitting.jobs:run_job", self.context.key, *job)

    def _receive(self, worker: Worker, job: Job, started: float) -> TrialOutcome:
        try:
            return worker.receive(TRIAL_TIMEOUT_S)
        except EdgekitError as exc:  # the worker crashed or hung: this trial's error
            self.prepared.discard(id(worker))
            return TrialOutcome(job[0], None, time.perf_counter() - started, None, str(exc))

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.prepared.clear()
