"""Capture what native code prints to file descriptors 1 and 2.

The TFLite converter and the TFLM interpreter write straight to the C streams; Python's
`sys.stdout` redirection does not see it. We keep that text for error messages instead of
letting it scroll past the user.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


class Captured:
    text: str = ""


@contextlib.contextmanager
def capture_native_output() -> Iterator[Captured]:
    """Redirect fds 1 and 2 into a temporary file for the block; the text lands in `.text`."""
    result = Captured()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield result
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            result.text = sink.read().decode("utf-8", "replace")
