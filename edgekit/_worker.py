"""The worker process behind :mod:`edgekit.isolation` (`python -m edgekit._worker`).

It reads requests (`module:function`, args) from stdin one after another and answers each on
the original stdout, with file descriptors 1 and 2 redirected to a temporary file (native
runtimes print there). It asks the kernel to kill it when its parent dies.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import signal
import sys
import tempfile
import traceback

from edgekit.isolation import read_message, write_message

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """SIGKILL this process when the parent exits (Linux); elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    parent = os.environ.get("EDGEKIT_WORKER_PARENT")
    if parent and os.getppid() != int(parent):  # the parent died before prctl took effect
        os._exit(1)


def main() -> int:
    # Ctrl-C goes to the whole process group: the parent is interrupted and stops this worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    reply_stream = os.fdopen(os.dup(1), "wb")
    request_stream = os.fdopen(os.dup(0), "rb")
    native = tempfile.TemporaryFile(mode="w+b")
    os.dup2(native.fileno(), 1)
    os.dup2(native.fileno(), 2)
    while True:
        try:
            target, args = read_message(request_stream)
        except EOFError:
            return 0
        native.seek(0)
        native.truncate()
        module_name, function_name = target.split(":")
        try:
            function = getattr(importlib.import_module(module_name), function_name)
            reply = ("ok", function(*args))
        except Exception as exc:  # reported to the parent, which decides what it means
            sys.stdout.flush()
            native.seek(0)
            text = native.read().decode("utf-8", "replace")[-4000:]
            reply = ("error", type(exc).__name__, str(exc), text, traceback.format_exc())
        write_message(reply_stream, reply)


if __name__ == "__main__":
    sys.exit(main())
