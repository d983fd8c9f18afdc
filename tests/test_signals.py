"""A Ctrl-C or SIGTERM whose exception lands in a finalizer is not lost (edgekit.signals)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SWALLOWED = """
import gc, os, signal, sys
from edgekit import signals

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.{name})
        for _ in range(1000):  # the handler runs here, inside the finalizer
            pass

with signals.installed():
    Finalized()
    gc.collect()
    print("finalizer done", flush=True)  # Python dropped the exception ("Exception ignored")
    try:
        signals.check()
    except signals.Terminated:
        print("raised again: Terminated")
    except KeyboardInterrupt:
        print("raised again: KeyboardInterrupt")
signals.check()  # outside, nothing is pending any more
print("cleared")
"""


@pytest.mark.parametrize(
    "name, raised", [("SIGTERM", "Terminated"), ("SIGINT", "KeyboardInterrupt")]
)
def test_a_signal_swallowed_by_a_finalizer_is_raised_again(name, raised):
    result = subprocess.run(
        [sys.executable, "-c", SWALLOWED.replace("{name}", name)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert result.stdout.splitlines() == ["finalizer done", f"raised again: {raised}", "cleared"]
    assert "Exception ignored" in result.stderr  # the swallow this module exists for
