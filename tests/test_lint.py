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
