"""ruff is part of the test command, so a lint error fails CI like any other test."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from helpers import REPO


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff comes with the [test] extra")
def test_ruff_clean():
    result = subprocess.run(["ruff", "check", str(REPO)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff comes with the [test] extra")
def test_ruff_format_clean():
    """One formatter, `ruff format` (pyproject's [tool.ruff]): the tree is as it writes it,
    with no markers that keep code out of it."""
    result = subprocess.run(
        ["ruff", "format", "--check", str(REPO)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
    markers = [
        f"{path.relative_to(REPO)}:{number}"
        for path in REPO.rglob("*.py")
        if ".venv" not in path.parts
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if "fmt: " + "skip" in line or "fmt: " + "off" in line
    ]
    assert markers == []
