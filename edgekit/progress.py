"""Progress of a long job: each step timed into a list, and a listener told as they run.

The CLI's progress lines listen; the deploy report keeps the steps.

>>> seen = []
>>> steps = Steps(lambda event, name, step: seen.append((event, name)))
>>> with steps.run("convert") as step:
...     step.detail = "1,024 bytes"
>>> steps.skip("firmware", "no TFLM tree")
>>> seen, [s.status for s in steps.steps]
([('start', 'convert'), ('end', 'convert'), ('end', 'firmware')], ['ok', 'skipped'])
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from edgekit import signals
from edgekit.report import Step

StepListener = Callable[[str, str, Step | None], None]  # (event, name, finished step)


class Steps:
    """Times each step into a list and tells a listener (the CLI's progress).

    A step that raises is recorded as failed, or interrupted on Ctrl-C/SIGTERM, never as done.
    """

    def __init__(self, listener: StepListener | None) -> None:
        self.steps: list[Step] = []
        self.listener = listener

    def note(self, message: str) -> None:
        if self.listener:
            self.listener("note", message, None)

    @contextlib.contextmanager
    def run(self, name: str) -> Iterator[Step]:
        signals.check()  # a Ctrl-C/SIGTERM that a finalizer swallowed stops here
        step = Step(name, True, 0.0, "")
        if self.listener:
            self.listener("start", name, None)
        started = time.perf_counter()
        try:
            yield step
        except (KeyboardInterrupt, SystemExit):
            step.status, step.detail = "interrupted", step.detail or "interrupted"
            raise
        except BaseException as exc:
            step.status, step.detail = "failed", step.detail or str(exc).splitlines()[0][:200]
            raise
        finally:
            step.seconds = round(time.perf_counter() - started, 3)
            self.steps.append(step)
            if self.listener:
                self.listener("end", name, step)

    def skip(self, name: str, why: str) -> None:
        step = Step(name, False, 0.0, why, "skipped")
        self.steps.append(step)
        if self.listener:
            self.listener("end", name, step)
