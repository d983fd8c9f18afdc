"""The errors that reach users as one line, and the exit code each one means.

    EdgekitError                 base: the CLI prints the message, no traceback
    ├── UsageError               bad input or usage: a file, a field, a flag (exit 2)
    └── ToolError                a tool, runtime or device failed on good input (exit 1)
        ├── RuntimeFailure       LiteRT, TFLM or the converter crashed, hung or refused
        │   ├── RuntimeCrash     ... and it was a crash (a signal), not a refusal or a deadline
        │   └── RuntimeTimeout   ... and it was the deadline: it was still running, and stopped
        └── DeviceFailure        the device or its harness failed mid-run (bench records it)

Anything else that escapes is a bug in edgekit: the CLI says "internal error" (exit 3) and
`--debug` shows the traceback. A deploy whose checks fail is not an error: it returns a bundle
whose report says so (exit 1).

>>> UsageError("x.npy: no such file").exit_code, RuntimeFailure("TFLM crashed").exit_code
(2, 1)
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Base of every error edgekit reports as one line."""

    exit_code = 1


class UsageError(EdgekitError):
    """A problem with the user's input: one line that names the file, field or op."""

    exit_code = 2


class ToolError(EdgekitError):
    """An external tool or runtime failed in a way the user can act on."""

    exit_code = 1


class RuntimeFailure(ToolError):
    """A native runtime (LiteRT, TFLM, the TFLite converter) crashed, hung or refused the
    model. It ran in a worker process, so edgekit itself is still standing."""


class RuntimeCrash(RuntimeFailure):
    """The worker running a native runtime died of a signal (SIGSEGV, SIGABRT): the caller
    may look for the op that did it (:func:`edgekit.runtimes.litert.locate_crash`)."""


class RuntimeTimeout(RuntimeFailure):
    """The worker running a native runtime did not answer within its deadline (a hang, or a
    loop that does not end) and was stopped."""


class DeviceFailure(ToolError):
    """The device or the harness failed mid-run: recorded as a failed run, with the reason."""
