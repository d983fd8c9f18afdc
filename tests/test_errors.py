"""Bad input: one line on stderr, exit 2, no traceback and nothing half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import run_edgekit

PROGRESS = ("✓", "✗", "–", "…")


def _assert_clean_error(result, out: Path | None, *fragments: str) -> None:
    """Exit 2 and one error line, last on stderr; before it only progress lines."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    err = lines[-1]
    assert err.startswith("error: "), result.stderr
    assert all(line.startswith(PROGRESS) for line in lines[:-1]), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in err, err
    if out is not None and out.exists():
        assert list(out.iterdir()) == [], "a bundle or partial directory was left behind"


@pytest.fixture()
def out(tmp_path):
    return tmp_path / "out"


def test_missing_model_file(tmp_path, out):
    result = run_edgekit(
        "deploy", str(tmp_path / "nope.keras"), "--target", "coral", "--out", str(out)
    )
    _assert_clean_error(result, out, "nope.keras", "no such file")
    result = run_edgekit("inspect", str(tmp_path / "nope.tflite"))
    _assert_clean_error(result, None, "no such file")


@pytest.mark.parametrize(
    "suffix, fragment",
    [
        (".tflite", "not a .tflite model"),
        (".h5", "not an HDF5 file"),
        (".keras", "not a valid .keras archive"),
    ],
)
def test_random_bytes_as_model(tmp_path, out, suffix, fragment):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(np.random.default_rng(1).bytes(2048))
    result = run_edgekit("deploy", str(path), "--target", "cortex-m4", "--out", str(out))
    _assert_clean_error(result, out, fragment)


def test_truncated_tflite(digits_tflite, tmp_path, out):
    path = tmp_path / "cut.tflite"
    path.write_bytes(digits_tflite["int8"].read_bytes()[:5000])
    _assert_clean_error(run_edgekit("inspect", str(path)), None, "truncated")
    result = run_edgekit("deploy", str(path), "--target", "cortex-m4", "--out", str(out))
    _assert_clean_error(result, out, "cut.tflite", "truncated")


def test_unknown_target(digits_tflite, out):
    result = run_edgekit(
        "deploy", str(digits_tflite["int8"]), "--target", "coral-xl", "--out", str(out)
    )
    _assert_clean_error(result, out, "unknown target 'coral-xl'", "coral")


def test_unwritable_out(digits_tflite, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for place in (blocker, blocker / "sub", Path("/proc/edgekit-test-out")):
        result = run_edgekit(
            "deploy", str(digits_tflite["int8"]), "--target", "cortex-m4", "--out", str(place)
        )
        _assert_clean_error(result, None, "--out")
        assert str(place.parent if place.name == "sub" else place) in result.stderr
    assert blocker.read_text() == "not a directory"


def test_calibration_problems(example, tmp_path, out):
    model = str(example.model_path)
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((10, 8, 8, 3), np.float32))
    result = run_edgekit(
        "deploy", model, "--target", "cortex-m4", "--calibration", str(wrong), "--out", str(out)
    )
    _assert_clean_error(result, out, "shape [10, 8, 8, 3]", "expected [N, 8, 8, 1]")

    nan = tmp_path / "nan.npz"
    x = np.random.default_rng(0).random((10, 8, 8, 1)).astype(np.float32)
    x[3, 2, 2, 0] = np.nan
    np.savez(nan, x=x)
    result = run_edgekit(
        "deploy", model, "--target", "cortex-m4", "--calibration", str(nan), "--out", str(out)
    )
    _assert_clean_error(result, out, "1 NaN or infinite")

    result = run_edgekit("deploy", model, "--target", "cortex-m4", "--out", str(out))
    _assert_clean_error(result, out, "needs calibration data", "--calibration")


def test_debug_shows_the_traceback(tmp_path):
    result = run_edgekit("--debug", "inspect", str(tmp_path / "nope.tflite"))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_usage_errors_exit_2():
    result = run_edgekit("deploy", "--example", "digits")
    assert result.returncode == 2 and "--target" in result.stderr
    assert run_edgekit("deploy", "--target", "coral").returncode == 2


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("deploy", "m.keras", "-t", "coral", "--rounding", "foo"), ("'--rounding'", "learned")),
        (("deploy", "m.keras"), ("Missing option '--target'", "(edgekit deploy --help)")),
        (("deploy", "m.keras", "--bogus"), ("No such option '--bogus'",)),
        (("nosuch",), ("No such command 'nosuch'", "(edgekit --help)")),
        (("bench", "m.tflite", "--runs", "many"), ("'--runs'", "many")),
    ],
)
def test_click_usage_errors_are_one_line_too(args, fragments):
    """click prints usage, a hint and the error on four lines; edgekit says it in one."""
    result = run_edgekit(*args)
    _assert_clean_error(result, None, *fragments)
    assert len(result.stderr.strip().splitlines()) == 1
