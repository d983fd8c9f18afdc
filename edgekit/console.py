"""Terminal output shared by the CLI's commands (through rich)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.markup import escape as rich_escape
from rich.table import Table

PIPE_WIDTH = 120  # pipes and CI logs: wider than rich's 80, narrow enough to read


def console(stderr: bool = False) -> Any:
    """A rich Console as wide as `COLUMNS` says, else the terminal, else (a pipe, a CI log)
    :data:`PIPE_WIDTH` columns; table cells wrap to fit."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and 20 <= int(columns) <= 1000:
        width = int(columns)
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def table(title: str, columns: list[str], rows: list[list[str]]) -> Any:
    """A rich Table whose cells wrap instead of being cut off."""
    out = Table(title=title)
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*row)
    return out


def printable(text: str, limit: int = 0) -> str:
    """Text from a file, safe for a terminal: control characters (an escape sequence in a
    tensor name) shown as \\xNN, and cut to `limit` characters when `limit` is set.

    >>> printable("ok\\x1b[31mred", 12)
    'ok\\\\x1b[31mr…'
    """
    out = "".join(
        ch
        if ch.isprintable() or ch == " "
        else f"\\x{ord(ch):02x}"
        if ord(ch) < 256
        else f"\\u{ord(ch):04x}"
        for ch in text
    )
    return out if not limit or len(out) <= limit else out[: limit - 1] + "…"


def escape(text: str, limit: int = 0) -> str:
    """:func:`printable`, with rich's markup escaped (a name "[/bold]" is data)."""
    return rich_escape(printable(text, limit))
