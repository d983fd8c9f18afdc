"""Seeded mutation fuzzing in CI: 500 corrupt models through `inspect`, 50 through `deploy`.

The same driver runs the 10,000-mutant benchmark (docs/benchmarks.md). Zero tolerance: no
internal error (exit 3), no native crash reaching edgekit's own process, no run over 60 s,
nothing left behind.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (tests/fuzz/run.py, the driver)


@pytest.fixture(scope="session")
def seeds(digits_tflite, tmp_path_factory):
    """Three seed models: the digits CNN int8 and float32, and a residual depthwise net."""
    from helpers import convert_keras, tf_keras

    directory = tmp_path_factory.mktemp("fuzz-seeds")
    for name in ("int8", "float32"):
        shutil.copyfile(digits_tflite[name], directory / f"digits_{name}.tflite")
    data, _ = convert_keras(run.residual_net(tf_keras()))
    (directory / "residual_int8.tflite").write_bytes(data)
    return directory


def _assert_clean(summary: dict) -> None:
    assert summary["internal_errors"] == [], summary["internal_errors"][:3]
    assert summary["native_crashes"] == [], summary["native_crashes"][:3]
    assert summary["over_60s"] == []
    assert summary["left_behind"] == []
    assert sum(summary["exit_codes"].values()) == summary["mutants"]


def test_500_mutants_through_inspect(seeds):
    summary = run.fuzz(seeds, "inspect", 500, seed=0)
    _assert_clean(summary)
    codes = summary["exit_codes"]
    # The fuzzer reaches both sides: mutants the reader refuses, and mutants it reads.
    assert codes.get(2, 0) > 20 and codes.get(0, 0) > 20, codes


def test_50_mutants_through_deploy(seeds):
    summary = run.fuzz(seeds, "deploy", 50, seed=0)
    _assert_clean(summary)
    assert set(summary["exit_codes"]) <= {0, 1, 2}


def test_mutations_are_seeded():
    from mutants import mutants

    data = bytes(range(256)) * 4
    assert list(mutants(data, 20, 3)) == list(mutants(data, 20, 3))
    assert list(mutants(data, 20, 3)) != list(mutants(data, 20, 4))
    kinds = {kind for kind, _ in mutants(data, 200, 1)}
    assert kinds == {"bitflip", "overwrite", "truncate", "offset", "vtable", "huge"}
