"""Errors that reach users as one line.

`EdgekitError` is bad input or usage (exit 2). The CLI prints its message without a traceback.
A deploy whose checks fail is not an error: it returns a bundle whose report says so (exit 1).
"""

from __future__ import annotations


class EdgekitError(Exception):
    """A problem with the user's input: one line that names the file, field or op."""

    exit_code = 2


class ToolError(EdgekitError):
    """An external tool or runtime failed in a way the user can act on."""

    exit_code = 1
