"""The scripts in examples/ run as documented."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO


def test_deploy_your_model_example(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "deploy_your_model.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "deployed" in result.stdout
    assert (tmp_path / "my_classifier-cortex-m7" / "tflm" / "model_ops.h").exists()
