"""Every code block in docs/guide/*.md runs as written."""

from __future__ import annotations

import re

import pytest
from helpers import REPO

GUIDES = sorted((REPO / "docs" / "guide").glob("*.md"))
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.slow
@pytest.mark.parametrize(
    "guide", [g for g in GUIDES if BLOCK.search(g.read_text())], ids=lambda g: g.stem
)
def test_guide_examples_run(guide, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for code in BLOCK.findall(guide.read_text()):
        exec(compile(code, str(guide), "exec"), {"__name__": f"guide_{guide.stem}"})
    printed = capsys.readouterr().out
    assert printed.strip(), "each guide prints what it measured"
    assert (tmp_path / "edgekit-out").is_dir()
