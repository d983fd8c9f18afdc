"""`edgekit fit`'s local runner: trials in edgekit's own worker processes, several at once,
with the same figures as in this process; a worker killed mid-trial is that trial's error."""

from __future__ import annotations

import os
import signal
import threading
import time

from helpers import assert_same_trials

from edgekit.fitting.runners import LocalRunner


def test_two_workers_run_two_trials_at_once_in_job_order(fit_jobs):
    runner = LocalRunner(fit_jobs.context, workers=2)
    try:
        assert runner.slots == 2 and runner.where == "2 local worker processes"
        outcomes = runner.run(fit_jobs.jobs)
        # each worker was prepared once and ran one of the two trials
        assert [w.calls for w in runner.workers] == [2, 2]
        assert len({w.proc.pid for w in runner.workers}) == 2
    finally:
        runner.close()
    assert_same_trials(outcomes, fit_jobs.reference)


def test_a_worker_killed_mid_trial_is_that_trials_error(fit_jobs):
    runner = LocalRunner(fit_jobs.context, workers=2)
    first = runner.workers[0]
    killed = []

    def kill_first_worker_mid_trial():
        deadline = time.monotonic() + 120
        while first.calls < 2 and time.monotonic() < deadline:  # prepared; its trial sent
            time.sleep(0.05)
        time.sleep(0.5)
        killed.append(first.proc.pid)
        os.kill(first.proc.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_first_worker_mid_trial, daemon=True)
    try:
        killer.start()
        outcomes = runner.run(fit_jobs.jobs)
        killer.join()
        assert killed
        crashed, other = outcomes
        assert crashed.number == 1 and not crashed.ok and crashed.report is None
        assert "SIGKILL" in crashed.error or "signal 9" in crashed.error, crashed.error
        assert "\n" not in crashed.error
        assert other.ok and other.number == 2
        # the next batch runs: the killed worker is started and prepared again
        (again,) = runner.run(fit_jobs.jobs[:1])
        assert first.proc.pid != killed[0]
    finally:
        runner.close()
    assert_same_trials([again], fit_jobs.reference[:1])
