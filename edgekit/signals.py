"""Ctrl-C and SIGTERM that are never lost.

Python runs a signal handler between two bytecodes of whatever the main thread executes, and
that can be a finalizer (a garbage-collected subprocess or temporary directory): the
KeyboardInterrupt raised there is printed as "Exception ignored" and dropped, and a deploy
that should have stopped ran to its end. While :func:`installed` is active, the handlers also
record the signal; the pipeline's step boundaries and the worker's wait loop call
:func:`check`, which raises it again.

>>> with installed():
...     check()        # nothing pending: returns
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwinds exactly like Ctrl-C (staging removed, workers stopped)."""


_pending: type[KeyboardInterrupt] | None = None


def _handler(signum: int, frame: Any) -> None:
    global _pending
    _pending = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    raise _pending


def check() -> None:
    """Raise a signal that arrived but whose exception was swallowed on the way."""
    if _pending is not None:
        raise _pending


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """SIGTERM (and Ctrl-C, unless the process ignores it) raise, and are remembered, inside."""
    global _pending
    _pending = None
    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, _handler)}
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, _handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _pending = None
