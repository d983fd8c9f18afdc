"""What a new user hit (issue 8, part B), each pinned by a test."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
from helpers import REPO, run_edgekit


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    start = text.index("## Quick start")
    blocks = re.findall(r"```bash\n(.*?)\n```", text[start : text.index("\n## ", start + 5)], re.S)
    return [b.strip() for b in blocks]


def test_ci_runs_the_readme_commands_in_a_fresh_venv():
    deploy, tests = _readme_commands()
    assert "edgekit deploy --example digits --target coral" in deploy
    assert "pytest" in tests
    ci = (REPO / ".ci" / "run").read_text()
    assert "-m venv" in ci and "--system-site-packages" not in ci
    # The README's test command, word for word, runs inside that venv.
    assert tests in ci


def test_in_ci_a_missing_part_fails_instead_of_skipping(tmp_path):
    ci = (REPO / ".ci" / "run").read_text()
    assert "export EDGEKIT_REQUIRE_ALL=1" in ci and "python -m pytest -q -rfEs" in ci
    (tmp_path / "test_part.py").write_text(
        "from helpers import missing_part\n"
        "def test_needs_a_compiler():\n    missing_part('GXX', 'g++ not installed')\n"
    )
    outcomes = {}
    for name, extra in (
        ("here", {}),
        ("ci", {"EDGEKIT_REQUIRE_ALL": "1"}),
        ("ci service", {"CI": "true"}),
        ("one part", {"EDGEKIT_REQUIRE_GXX": "1"}),
    ):
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKIT_REQUIRE")}
        env.pop("CI", None)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-rfs",
                "-p",
                "no:cacheprovider",
                str(tmp_path / "test_part.py"),
            ],
            capture_output=True,
            text=True,
            env={**env, **extra, "PYTHONPATH": str(REPO / "tests")},
            cwd=tmp_path,
            timeout=300,
        )
        outcomes[name] = (done.returncode, "1 skipped" in done.stdout, "1 failed" in done.stdout)
    assert outcomes["here"] == (0, True, False)
    assert outcomes["ci"] == outcomes["ci service"] == outcomes["one part"] == (1, False, True)


def test_debug_works_anywhere_on_the_line(tmp_path):
    missing = str(tmp_path / "nope.tflite")
    for args in (["inspect", missing, "--debug"], ["--debug", "inspect", missing]):
        result = run_edgekit(*args)
        assert result.returncode == 2 and "Traceback" in result.stderr, args
    quiet = run_edgekit("inspect", missing)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert "No such option" not in run_edgekit("deploy", missing, "-t", "coral", "--debug").stderr


def test_an_interrupted_step_is_not_a_green_tick(capsys):
    from edgekit.cli import _Progress
    from edgekit.progress import Steps

    progress = _Progress()
    steps = Steps(progress)
    with steps.run("load model"):
        pass
    with pytest.raises(KeyboardInterrupt), steps.run("convert int8"):
        raise KeyboardInterrupt
    with pytest.raises(ValueError), steps.run("verify"):
        raise ValueError("boom")
    progress.close()
    assert [s.status for s in steps.steps] == ["ok", "interrupted", "failed"]
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("✓ load model")
    assert err[1].startswith("✗ interrupted: convert int8")
    assert err[2].startswith("✗ verify") and "boom" not in err[2]  # the error line says it


def test_an_mcu_target_refuses_a_delegate(tmp_path):
    result = run_edgekit(
        "deploy",
        "--example",
        "digits",
        "-t",
        "cortex-m4",
        "--delegate",
        "gpu",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 2
    assert "runs TFLM, which has no delegates" in result.stderr
    assert not any(tmp_path.iterdir())


def test_a_pytest_run_leaves_no_cache_directory(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    env.pop("EDGEKIT_CACHE_DIR", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(REPO / "tests" / "test_lint.py"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-1000:]
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith("edgekit-test-cache")]


def test_a_taken_bundle_path_is_refused_before_tensorflow_loads(example, tmp_path):
    (tmp_path / "digits-cortex-m4").mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "edgekit",
            "deploy",
            str(example.model_path),
            "-t",
            "cortex-m4",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "already exists" in result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "tf_keras")}


def test_the_first_progress_line_comes_before_tensorflow(example, tmp_path):
    """The first step ("load model") starts before TensorFlow is imported: a user sees it
    at once, not after ~3 s of silence."""
    script = (
        "import sys, edgekit\n"
        "seen = []\n"
        "def on_step(event, name, step):\n"
        "    seen.append((event, name, 'tensorflow' in sys.modules))\n"
        f"edgekit.deploy({str(example.model_path)!r}, 'raspberry-pi-4', out={str(tmp_path)!r},\n"
        "               calibration='random', on_step=on_step)\n"
        "print(seen[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "('start', 'load model', False)"


def test_examples_and_guides_use_only_public_imports():
    private = re.compile(r"from edgekit\._|import edgekit\._")
    for path in [
        *(REPO / "examples").glob("*.py"),
        *(REPO / "docs").rglob("*.md"),
        REPO / "README.md",
    ]:
        assert not private.search(path.read_text()), path


def test_harness_readme_in_a_bundle_points_only_inside_the_bundle():
    text = (REPO / "devices" / "mcu" / "README.md").read_text()
    assert "docs/" not in text


def test_a_validation_file_without_labels_is_noted(example, tmp_path):
    import numpy as np

    import edgekit

    val = tmp_path / "val.npz"
    np.savez(val, x=example.validation.x[:40])
    bundle = edgekit.deploy(
        example.model_path,
        "raspberry-pi-4",
        calibration="random",
        validation=str(val),
        out=tmp_path,
    )
    assert any("has no labels" in note and "'y'" in note for note in bundle.report.notes)
    assert bundle.report.metrics.deployed_accuracy is None


def test_float16_step_says_what_float16_is(example, tmp_path):
    import edgekit

    bundle = edgekit.deploy(
        example.model_path,
        "android-arm64",
        delegate="gpu",
        calibration=example.calibration.x,
        out=tmp_path,
    )
    step = next(s for s in bundle.report.steps if s.name == "convert float16")
    assert "float16 weights" in step.detail
    assert "calibration" not in step.detail and "per-channel" not in step.detail
    checks = {c.name: c for c in bundle.report.checks}
    assert "float16" in checks["precision"].detail


def test_a_uint8_io_model_is_described_as_such(digits_tflite):
    from edgekit.checks import check_model
    from edgekit.targets import load_target
    from edgekit.tflite_model import load_tflite

    checks = {
        c.name: c for c in check_model(load_tflite(digits_tflite["uint8"]), load_target("coral"))
    }
    assert checks["fully_quantized"].ok
    assert "uint8 at the inputs/outputs" in checks["fully_quantized"].detail


def test_bundle_commands_quote_uris():
    from edgekit.bench.bundle import bench_commands

    host = bench_commands("mcu", "serial", "m.tflite", 1, "none")["host"]
    assert shlex.split(host) == [
        "edgekit",
        "bench",
        ".",
        "--device",
        "serial:///dev/ttyACM0?baud=115200",
    ]
    assert "'serial:///dev/ttyACM0?baud=115200'" in host


def test_help_texts_say_what_they_mean(tmp_path):
    def help_of(*command: str) -> str:
        result = run_edgekit(*command, "--help")
        assert result.returncode == 0, result.stderr
        return " ".join(result.stdout.split())  # click wraps at 80 columns

    for command in ("deploy", "analyze"):
        assert "[default: default]" not in help_of(command)
        assert "default (edgekit's measured best; the default)" in help_of(command)
    assert "-t, --target" in help_of("inspect")
    listing = help_of("results", "list")
    assert "Show at most this many runs" in listing and "Print the runs as JSON" in listing
    assert "--json" in help_of("results", "show")
    typo = run_edgekit(
        "deploy",
        "--example",
        "digits",
        "-t",
        "cortex-m4",
        "--calibration-method",
        "minmx",
        "--out",
        str(tmp_path),
    )
    assert typo.returncode == 2 and "converter" in typo.stderr.splitlines()[-1], typo.stderr


def test_piped_tables_fit_columns(tmp_path):
    default = run_edgekit("targets", "list", env={"COLUMNS": ""})
    narrow = run_edgekit("targets", "list", env={"COLUMNS": "90"})
    assert default.returncode == narrow.returncode == 0
    assert max(map(len, default.stdout.splitlines())) <= 120
    assert max(map(len, narrow.stdout.splitlines())) == 90
    assert "cortex-m4" in narrow.stdout  # cells wrap, names are not cut to "cortex-…"


def test_bench_on_a_missing_path_says_so(tmp_path):
    result = run_edgekit("bench", str(tmp_path / "nope-dir"), "--db", str(tmp_path / "r.db"))
    assert result.returncode == 2
    assert "nope-dir: no such model or bundle" in result.stderr.splitlines()[-1]
