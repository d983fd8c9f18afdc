"""Run native code on untrusted bytes in a worker process with a deadline.

LiteRT, TFLM and the TFLite converter are C++. A corrupt model or extreme data can make them
segfault, abort ("double free") or spin forever, and in-process that kills edgekit with exit
134/139 or hangs it. :func:`call` runs one function in a fresh Python process instead:

- a crash (signal) or a deadline becomes :class:`~edgekit.errors.RuntimeFailure` naming
  what was running and the last line the native code printed;
- the worker dies with its parent (Linux `PR_SET_PDEATHSIG`), so a SIGKILLed edgekit leaves
  no orphan spinning at 100 % CPU; it ignores Ctrl-C, which the terminal sends to both: the
  parent alone is interrupted, and stops it (else the worker's death raced the parent's
  KeyboardInterrupt, and a Ctrl-C came out as "TensorFlow crashed", exit 1);
- data goes over pipes, never through temporary files, and each worker gets a private
  temporary directory (TMPDIR) removed when it stops, so what TensorFlow writes there
  (autograph's generated modules) is not left behind; those of killed parents are removed by
  the next worker's start;
- an `EdgekitError` raised in the worker is re-raised here as the same class; any other
  exception is a bug in edgekit and comes back as :class:`WorkerBug` with the traceback.

>>> call("math:sqrt", 16.0, timeout=30, what="sqrt")
4.0
"""

from __future__ import annotations

import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import edgekit
from edgekit import errors, signals
from edgekit.errors import RuntimeCrash, RuntimeFailure, RuntimeTimeout

DEFAULT_TIMEOUT = 600.0
SIGNAL_CHECK_S = 0.25  # how soon a Ctrl-C is noticed while a worker computes


class WorkerBug(Exception):
    """A Python exception in the worker that is not an EdgekitError: a bug in edgekit."""


# `python -m` would put the working directory first on the worker's sys.path: run from a
# checkout of edgekit's source with edgekit installed (the README's `pip install .` then
# `edgekit deploy`), the worker imported the checkout's edgekit/, which has no converters.
# The worker puts the directory of the parent's own edgekit first instead (the working
# directory stays on the path, after it, for users' modules).
_BOOT = (
    "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "runpy.run_module('edgekit._worker', run_name='__main__', alter_sys=True)"
)


def worker_argv() -> list[str]:
    """The command that starts a worker: `edgekit._worker` run as `__main__`, importing the
    same edgekit as this process."""
    return [sys.executable, "-c", _BOOT, str(Path(edgekit.__file__).resolve().parent.parent)]


TEMP_PREFIX = "edgekit-worker-"


def worker_env(tmpdir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["EDGEKIT_WORKER_PARENT"] = str(os.getpid())
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The converter needs TensorFlow graphs: a .keras file is backend-independent, so one saved
    # under JAX or PyTorch loads here with Keras 3's TensorFlow backend, whatever the user's is.
    env["KERAS_BACKEND"] = "tensorflow"
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return env


def process_alive(pid: int) -> bool:
    """Is there a process with this id (ours or another user's)?"""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # gone, or a number no process can have
        return False
    except PermissionError:  # another user's process
        return True
    return True


def private_tempdir() -> Path:
    """A fresh temporary directory for one worker, named for this process
    (`edgekit-worker-PID-XXXX`); first removes those whose process is gone (SIGKILL skips
    every cleanup)."""
    base = Path(tempfile.gettempdir())
    for path in base.glob(f"{TEMP_PREFIX}*-*"):
        pid = path.name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)) and _mine(path):
            shutil.rmtree(path, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=base))


def _mine(path: Path) -> bool:
    try:
        return path.lstat().st_uid == os.getuid()
    except OSError:
        return False


def write_message(stream: Any, message: Any) -> None:
    """One length-prefixed pickle on a binary stream."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def read_message(stream: Any) -> Any:
    """The next length-prefixed pickle, or EOFError when the other side is gone."""
    header = stream.read(8)
    if len(header) < 8:
        raise EOFError
    (size,) = struct.unpack("<Q", header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def exit_error(what: str, code: int | None) -> RuntimeFailure:
    """The error for a worker that ended without answering: a RuntimeCrash for a signal."""
    cls = RuntimeCrash if code is not None and code < 0 else RuntimeFailure
    return cls(f"{what} {describe_exit(code)}")


def describe_exit(code: int | None) -> str:
    """'crashed (SIGSEGV)' / 'exited with status 3' for a worker's return code."""
    if code is None:
        return "was killed"
    if code < 0:
        try:
            return f"crashed ({signal.Signals(-code).name})"
        except ValueError:
            return f"crashed (signal {-code})"
    return f"exited with status {code}"


def last_native_line(text: str) -> str:
    """The most telling line native code printed: an error line if any, else the last one."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        low = line.lower()
        if any(word in low for word in ("error", "failed", "abort", "didn't find", "invalid")):
            return line[:300]
    return lines[-1][:300] if lines else ""


def await_own_interrupt(limit: float = 2.0) -> None:
    """A Ctrl-C that killed a worker went to this process too (one process group). Give it
    `limit` seconds to arrive as itself: raised by hand as well, two KeyboardInterrupts would
    unwind, the second one late (after the command's own handler had run).

    >>> await_own_interrupt(0.05)  # no Ctrl-C came: returns after 50 ms
    """
    end = time.monotonic() + limit
    while time.monotonic() < end:
        time.sleep(0.02)  # short: a signal handled by another thread surfaces at the wake-up


class Worker:
    """A worker process that answers calls one after another until closed.

    One worker serves many small calls (an arena bisection probes ~20 sizes) without paying
    Python's start-up each time. A crash or a deadline stops it; the next call starts a new one.

    >>> with Worker("sqrt") as worker:
    ...     worker.call("math:sqrt", 9.0), worker.call("math:sqrt", 4.0)
    (3.0, 2.0)
    """

    def __init__(self, what: str = "") -> None:
        self.what = what
        self.proc: subprocess.Popen | None = None
        self.tmpdir: Path | None = None
        self.calls = 0
        self.current = what  # what the last call runs, for its errors

    def _start(self) -> subprocess.Popen:
        self.stop()  # a dead worker's directory goes before a new one is made
        self.tmpdir = private_tempdir()
        self.proc = subprocess.Popen(
            worker_argv(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=worker_env(self.tmpdir),
        )
        return self.proc

    def call(self, target: str, *args: Any, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """Run `module:function(*args)` in the worker; see :func:`call`."""
        self.send(target, *args)
        return self.receive(timeout)

    def send(self, target: str, *args: Any) -> None:
        """Start `module:function(*args)` in the worker (starting it if needed); collect the
        answer with :meth:`receive`. Several workers can compute at once this way."""
        self.current = self.what or target
        proc = self.proc if self.proc is not None and self.proc.poll() is None else self._start()
        self.calls += 1
        assert proc.stdin is not None
        try:
            write_message(proc.stdin, (target, args))
        except BrokenPipeError:
            self.stop()
            raise exit_error(self.current, proc.returncode) from None

    def ready(self) -> bool:
        """Has the worker answered (or died)? :meth:`receive` then does not wait."""
        proc = self.proc
        if proc is None or proc.stdout is None:
            return True
        return bool(select.select([proc.stdout], [], [], 0)[0])

    def receive(self, timeout: float = DEFAULT_TIMEOUT) -> Any:
        """The answer to the last :meth:`send`: its value, or the exception it raised."""
        what, proc = self.current, self.proc
        if proc is None or proc.stdout is None:
            raise exit_error(what, None)
        # Short waits: a Ctrl-C that the kernel hands to another thread of this process does
        # not interrupt select(); Python raises KeyboardInterrupt at the next wake-up.
        deadline = time.monotonic() + timeout
        while not select.select([proc.stdout], [], [], min(SIGNAL_CHECK_S, timeout))[0]:
            signals.check()  # a Ctrl-C/SIGTERM that a finalizer swallowed stops here
            if time.monotonic() >= deadline:
                self.stop()
                raise RuntimeTimeout(f"{what} did not finish within {timeout:g} s and was stopped")
        try:
            reply = read_message(proc.stdout)
        except (EOFError, pickle.UnpicklingError):
            try:  # a worker that closed its pipe is exiting: its own status, not our SIGKILL
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.stop()
            if proc.returncode == -signal.SIGINT:  # Ctrl-C reached it before its start-up ended
                await_own_interrupt()
                raise KeyboardInterrupt from None
            raise exit_error(what, proc.returncode) from None
        return unpack_reply(reply, what)

    def stop(self) -> None:
        """Kill the worker (a later call starts a new one)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
            self.proc = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    close = stop

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def call(target: str, *args: Any, timeout: float = DEFAULT_TIMEOUT, what: str = "") -> Any:
    """Run `module:function(*args)` in a fresh worker process and return its result.

    `what` names the work in error messages ("LiteRT on model_int8.tflite"). A crash or the
    deadline raises RuntimeFailure; the worker never outlives this call.
    """
    with Worker(what) as worker:
        return worker.call(target, *args, timeout=timeout)


def unpack_reply(reply: tuple, what: str) -> Any:
    """The worker's ("ok", value, native) or ("error", ...) reply → value or exception."""
    kind = reply[0]
    if kind == "ok":
        return reply[1]
    _, error_class, message, native, trace = reply
    cls = getattr(errors, error_class, None)
    if isinstance(cls, type) and issubclass(cls, errors.EdgekitError):
        raise cls(message)
    # Only edgekit's own errors are expected here: runtime wrappers turn what LiteRT, TFLM
    # or the converter raise into RuntimeFailure themselves.
    raise WorkerBug(f"{error_class}: {message} (in a worker running {what})\n{trace}")
