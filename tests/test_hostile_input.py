"""Hostile and corrupt input: no code execution, no native crash, no hang, nothing lost.

Every bad input is one line, exit 2 (or 1 for a tool failing on good input), never exit 3, and
leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import REPO, missing_part, run_edgekit, tf_keras

from edgekit.tflite_edit import pack, unpack

PROGRESS = ("✓", "✗", "–", "…")


def one_line_error(result, code: int = 2, *fragments: str) -> str:
    assert result.returncode == code, (result.returncode, result.stdout[-500:], result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), result.stderr
    assert all(line.startswith(PROGRESS) for line in lines[:-1]), result.stderr
    assert "Traceback" not in result.stderr and len(lines[-1]) < 600, lines[-1][:600]
    for fragment in fragments:
        assert fragment in lines[-1], lines[-1]
    return lines[-1]


def no_partials(directory: Path) -> None:
    if directory.exists():
        assert not [p for p in directory.rglob("*") if ".partial" in p.name or ".old-" in p.name]


# --- code execution ------------------------------------------------------------------------


def _evil_model(marker: Path):
    keras = tf_keras()
    command = f"touch {marker}"
    inputs = keras.Input((4,))
    x = keras.layers.Lambda(lambda t: (__import__("os").system(command), t)[1])(inputs)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_a_lambda_in_a_model_file_never_runs(suffix, tmp_path):
    marker = tmp_path / "PWNED"
    model = _evil_model(marker)  # building it here runs it once, in the test's own hands
    path = tmp_path / f"evil{suffix}"
    model.save(path)
    marker.unlink(missing_ok=True)
    out = tmp_path / "out"
    result = run_edgekit(
        "deploy", str(path), "-t", "cortex-m4", "--calibration", "random", "--out", str(out)
    )
    one_line_error(result, 2, "Lambda", "--unsafe-deserialization")
    assert not marker.exists()
    from edgekit.errors import UsageError
    from edgekit.models import load_model

    for isolate in (False, True):  # Keras's own safe mode holds too, not only edgekit's scan
        with pytest.raises(UsageError, match="Lambda"):
            load_model(path, isolate=isolate)
        assert not marker.exists()
    if suffix == ".h5":
        from edgekit.models import _load_keras_file, hdf5_lambda_layers

        assert hdf5_lambda_layers(path)
        import edgekit.models as models

        original = models.check_keras_file
        try:  # past the scan, tf_keras's safe-mode scope still refuses the bytecode
            models.check_keras_file = lambda p, unsafe=False: False
            with pytest.raises(UsageError, match="Lambda"):
                _load_keras_file(path, None)
        finally:
            models.check_keras_file = original
        assert not marker.exists()
    # The explicit opt-in runs it, and the report says so.
    opted = run_edgekit(
        "deploy",
        str(path),
        "-t",
        "raspberry-pi-4",
        "--calibration",
        "random",
        "--out",
        str(out),
        "--unsafe-deserialization",
        "--json",
    )
    assert opted.returncode in (0, 1), opted.stderr
    assert marker.exists()
    report = json.loads(opted.stdout)
    assert report["model"]["unsafe_deserialization"] is True
    assert any("--unsafe-deserialization" in note for note in report["notes"])


_DEEP = "[" * 100_000 + "]" * 100_000


def _keras_archive(path: Path, metadata: bytes, config: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", metadata)
        archive.writestr("config.json", config)
        archive.writestr("model.weights.h5", b"")
    return path


def _hdf5_with_config(path: Path, config: str) -> Path:
    import h5py

    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = config
    return path


HOSTILE_KERAS_FILES = {
    "deep config": (
        lambda p: _keras_archive(p / "m.keras", b'{"keras_version": "3.1"}', _DEEP.encode()),
        "config.json: JSON nested",
    ),
    "metadata a list": (
        lambda p: _keras_archive(p / "m.keras", b"[1, 2]", b"{}"),
        "metadata.json: expected a JSON object",
    ),
    "metadata not UTF-8": (
        lambda p: _keras_archive(p / "m.keras", b'{"k": "\xff"}', b"{}"),
        "metadata.json: not UTF-8",
    ),
    "deep h5 model_config": (
        lambda p: _hdf5_with_config(p / "m.h5", _DEEP),
        "model_config: JSON nested",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_KERAS_FILES))
def test_hostile_keras_configs_are_one_line(name, example, tmp_path):
    make, fragment = HOSTILE_KERAS_FILES[name]
    path = make(tmp_path)
    calib = tmp_path / "calib.npy"
    np.save(calib, example.calibration.x[:4])
    for command in (["deploy", "--out", str(tmp_path / "o")], ["analyze"]):
        result = run_edgekit(*command, str(path), "-t", "cortex-m4", "--calibration", str(calib))
        one_line_error(result, 2, str(path), fragment)


def _dynamic_input(model):
    graph = model.subgraphs[0]
    graph.tensors[graph.inputs[0]].shape = [1, -1, 8, 1]


def test_a_tflite_input_with_a_negative_dimension_is_one_line(digits_tflite, tmp_path):
    path = _edited(digits_tflite, tmp_path, "dynamic", _dynamic_input)
    result = run_edgekit(
        "deploy",
        str(path),
        "-t",
        "cortex-m4",
        "--calibration",
        "random",
        "--out",
        str(tmp_path / "o"),
    )
    one_line_error(result, 2, "[1, -1, 8, 1]", "static input shape")


# --- native crashes become errors ----------------------------------------------------------


def test_calibration_beyond_float32_is_refused(example, tmp_path):
    calib = tmp_path / "big.npy"
    x = example.calibration.x.astype(np.float64)
    x[0, 0, 0, 0] = 1e300
    np.save(calib, x)
    out = tmp_path / "out"
    result = run_edgekit(
        "deploy",
        str(example.model_path),
        "-t",
        "cortex-m4",
        "--calibration",
        str(calib),
        "--out",
        str(out),
    )
    one_line_error(result, 2, "overflow", "float32")
    no_partials(out)


def _edited(digits_tflite, tmp_path, name, edit) -> Path:
    model = unpack(digits_tflite["int8"].read_bytes())
    edit(model)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(pack(model))
    return path


def _set_output(model, value):
    model.subgraphs[0].outputs = [value]


def _drop_inputs(model):
    graph = model.subgraphs[0]
    conv = next(op for op in graph.operators if len(op.inputs) >= 2)
    conv.inputs = conv.inputs[:1]


def _drop_zero_points(model):
    tensors = model.subgraphs[0].tensors
    tensor = next(
        t
        for t in tensors
        if t.quantization is not None
        and t.quantization.scale is not None
        and len(t.quantization.scale) > 1
    )
    tensor.quantization.zeroPoint = []


def _flatten_weights(model):
    graph = model.subgraphs[0]
    op = graph.operators[0]  # CONV_2D
    graph.tensors[op.inputs[1]].shape = [int(np.prod(graph.tensors[op.inputs[1]].shape))]


CORRUPTIONS = {
    "negative output": (lambda m: _set_output(m, -1), "subgraph output names tensor -1"),
    "output out of range": (lambda m: _set_output(m, 10**6), "subgraph output names tensor"),
    "too few inputs": (_drop_inputs, "of the 2 inputs it needs"),
    "scales without zero points": (_drop_zero_points, "zero points"),
    "conv weights not rank 4": (_flatten_weights, "expected 4"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_structure_is_one_line_from_the_reader(name, digits_tflite, tmp_path):
    edit, fragment = CORRUPTIONS[name]
    path = _edited(digits_tflite, tmp_path, name.replace(" ", "_"), edit)
    one_line_error(run_edgekit("inspect", str(path)), 2, "corrupt", fragment)
    out = tmp_path / "out"
    one_line_error(
        run_edgekit("deploy", str(path), "-t", "cortex-m4", "--out", str(out)), 2, fragment
    )
    no_partials(out)


@pytest.fixture()
def bundle_m4(digits_tflite, tmp_path):
    import edgekit

    return edgekit.deploy(digits_tflite["int8"], "cortex-m4", out=tmp_path / "b")


BAD_ARENAS = [
    (100, "below the model's activation lower bound"),
    (-5, "positive integer"),
    ("abc", "positive integer"),
]


@pytest.mark.parametrize("arena, fragment", BAD_ARENAS)
def test_tflm_host_refuses_a_bad_arena_from_the_report(bundle_m4, tmp_path, arena, fragment):
    report_file = bundle_m4.path / "report.json"
    report = json.loads(report_file.read_text())
    report["metrics"]["tensor_arena_bytes"] = arena
    report_file.write_text(json.dumps(report))
    db = tmp_path / "r.db"
    result = run_edgekit(
        "bench", str(bundle_m4.path), "--device", "tflm-host", "--runs", "3", "--db", str(db)
    )
    one_line_error(result, 2, fragment)
    from edgekit.bench.store import ResultStore

    assert not db.exists() or ResultStore(db).count() == 0  # never recorded as a failed run


def test_worker_dies_with_its_parent(tmp_path):
    """A SIGKILLed edgekit leaves no worker spinning (PR_SET_PDEATHSIG)."""
    script = (
        "import os, sys, threading, time\n"
        "from edgekit.isolation import Worker\n"
        "w = Worker('sleep')\n"
        "threading.Thread(target=lambda: w.call('time:sleep', 120), daemon=True).start()\n"
        "while w.proc is None: time.sleep(0.05)\n"
        "print(w.proc.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    os.kill(worker, 0)  # alive
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 60  # PDEATHSIG acts at once; the margin is for a loaded host
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        pytest.fail("the worker outlived its SIGKILLed parent")


def test_isolation_turns_crashes_and_hangs_into_errors():
    from edgekit.errors import RuntimeFailure
    from edgekit.isolation import call

    with pytest.raises(RuntimeFailure, match="crashed .SIGABRT"):
        call("os:abort", what="abort")
    started = time.monotonic()
    with pytest.raises(RuntimeFailure, match="did not finish within 1 s"):
        call("time:sleep", 600, timeout=1, what="sleep")
    assert time.monotonic() - started < 120  # stopped at the deadline, not after the sleep


# --- no hang on special files ---------------------------------------------------------------


def test_special_files_are_refused_before_reading(tmp_path):
    zero = tmp_path / "zero.tflite"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "pipe.tflite"
    os.mkfifo(fifo)
    for path in (zero, fifo):  # reading either would never end: the timeout is the check
        one_line_error(run_edgekit("inspect", str(path), timeout=300), 2, "not a regular file")
    fifo_npy = tmp_path / "calib.npy"
    os.mkfifo(fifo_npy)
    one_line_error(
        run_edgekit(
            "deploy",
            "--example",
            "digits",
            "-t",
            "cortex-m4",
            "--calibration",
            str(fifo_npy),
            "--out",
            str(tmp_path / "o"),
            timeout=300,
        ),
        2,
        "not a regular file",
    )


# --- silent wrong answers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda x: x.astype(np.complex64), "complex"),
        (lambda x: np.full(x.shape, "a"), "dtype"),
        (lambda x: x.astype(np.int64).astype("m8[s]"), "timedelta64"),
    ],
)
def test_bad_calibration_values(example, tmp_path, make, fragment):
    calib = tmp_path / "c.npy"
    np.save(calib, make(example.calibration.x))
    result = run_edgekit(
        "deploy",
        str(example.model_path),
        "-t",
        "cortex-m4",
        "--calibration",
        str(calib),
        "--out",
        str(tmp_path / "o"),
    )
    one_line_error(result, 2, fragment)


def test_calibration_without_a_batch_axis_or_with_too_few_samples(example, tmp_path):
    """One image saved as `np.save(f, img)` is refused for its rank, not taken as 1 sample;
    a handful of samples is refused unless the user asks for it."""
    x = example.calibration.x
    single, few = tmp_path / "single.npy", tmp_path / "few.npy"
    np.save(single, x[0])
    np.save(few, x[:3])
    args = ("deploy", str(example.model_path), "-t", "cortex-m4", "--no-analysis", "--out")
    out = tmp_path / "o"
    one_line_error(
        run_edgekit(*args, str(out), "--calibration", str(single)),
        2,
        "[8, 8, 1], rank 3",
        "[N, 8, 8, 1], rank 4",
        "x[None]",
    )
    one_line_error(
        run_edgekit(*args, str(out), "--calibration", str(few)),
        2,
        "has 3 samples",
        "at least 10",
        "--min-calibration-samples 3",
    )
    assert not out.exists()
    asked = run_edgekit(
        *args, str(out), "--calibration", str(few), "--min-calibration-samples", "3", "--json"
    )
    assert asked.returncode in (0, 1), asked.stderr
    assert json.loads(asked.stdout)["quantization"]["calibration_samples"] == 3


@pytest.mark.parametrize(
    "labels, fragment",
    [
        (-7, "class indices >= 0"),
        (1e15, "class indices"),
        ("cat", "integer class indices"),
        (np.timedelta64(3, "s"), "timedelta64"),
        (np.full(10, np.nan), "200 NaN"),
    ],
)
def test_bad_labels(example, tmp_path, labels, fragment):
    val = tmp_path / "v.npz"
    x = example.validation.x[:20]
    # an array of labels is a row per input: one-hot, as wide as it is
    np.savez(val, x=x, y=np.full((20, *np.shape(labels)), labels))
    result = run_edgekit(
        "deploy",
        str(example.model_path),
        "-t",
        "cortex-m4",
        "--calibration",
        "random",
        "--validation",
        str(val),
        "--out",
        str(tmp_path / "o"),
    )
    one_line_error(result, 2, fragment)


def test_a_huge_npy_header_is_refused_unread(example, tmp_path):
    path = tmp_path / "huge.npy"
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f4", "fortran_order": False, "shape": (2**28, 8, 8, 1)}
        )
        handle.write(b"\0" * 64)
    result = run_edgekit(
        "deploy",
        str(example.model_path),
        "-t",
        "cortex-m4",
        "--calibration",
        str(path),
        "--out",
        str(tmp_path / "o"),
    )
    one_line_error(result, 2, "header declares")


def _npy_bytes(version: int, header: bytes) -> bytes:
    header += b" " * (63 - (len(header) + 12) % 64) + b"\n"
    return b"\x93NUMPY" + bytes([version, 0]) + len(header).to_bytes(4, "little") + header


def test_a_garbage_npy_header_is_one_line(example, tmp_path):
    path = tmp_path / "garbage.npy"
    # numpy's tokenizer fails on this header (TokenError), not its literal parser.
    path.write_bytes(_npy_bytes(2, b"{'descr': '<f4', 'shape': (4, 8, 8, 1), '''") + b"\0" * 1024)
    result = run_edgekit(
        "deploy",
        str(example.model_path),
        "-t",
        "cortex-m4",
        "--calibration",
        str(path),
        "--out",
        str(tmp_path / "o"),
    )
    one_line_error(result, 2, "garbage.npy", "not a readable NumPy file")


def test_a_format_3_npy_is_read(tmp_path):
    from edgekit.data import read_array_file
    from edgekit.errors import UsageError

    x = np.arange(4 * 8 * 8, dtype=np.float32).reshape(4, 8, 8, 1)
    header = repr({"descr": "<f4", "fortran_order": False, "shape": x.shape}).encode()
    path = tmp_path / "v3.npy"
    path.write_bytes(_npy_bytes(3, header) + x.tobytes())
    read, labels = read_array_file(path, "calibration")
    np.testing.assert_array_equal(read, x)
    assert labels is None
    evil = tmp_path / "evil.npy"
    evil.write_bytes(_npy_bytes(3, header.replace(b"<f4", b"|O")) + x.tobytes())
    with pytest.raises(UsageError, match="pickles are refused"):
        read_array_file(evil, "calibration")


def test_a_compressed_npz_that_inflates_past_the_limit_is_refused(example, tmp_path):
    from edgekit.data import MAX_UNPACKED_BYTES

    path = tmp_path / "bomb.npz"
    rows = MAX_UNPACKED_BYTES // 256 + 1  # 8x8x1 float32 rows: one more than the limit, zeros
    header = repr({"descr": "<f4", "fortran_order": False, "shape": (rows, 8, 8, 1)}).encode()
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("x.npy", "w", force_zip64=True) as member:
            member.write(_npy_bytes(2, header))
            for _ in range(rows * 256 // len(chunk) + 1):
                member.write(chunk)
    assert path.stat().st_size < MAX_UNPACKED_BYTES // 100
    result = run_edgekit(
        "deploy",
        str(example.model_path),
        "-t",
        "cortex-m4",
        "--calibration",
        str(path),
        "--out",
        str(tmp_path / "o"),
    )
    one_line_error(result, 2, "bomb.npz", "x.npy unpacks to", "compressed")


def test_force_replaces_regular_files_only(example, tmp_path):
    from edgekit.bench.result import BenchResult
    from edgekit.bench.store import ResultStore

    db = tmp_path / "r.db"
    ResultStore(db).add(
        BenchResult("m.tflite", "0" * 64, "rpi4", "local", "ok", latencies_ms=[1.0, 2.0])
    )
    calib = tmp_path / "calib.npy"
    np.save(calib, example.calibration.x[:8])
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    device = tmp_path / "null.csv"
    device.symlink_to("/dev/null")  # as root, --out /dev/full --force replaced the device node
    commands = [
        ["results", "export", "--csv", "--out", str(fifo), "--db", str(db)],
        ["results", "export", "--csv", "--out", str(device), "--db", str(db)],
        ["results", "plot", str(fifo), "--db", str(db)],
        [
            "analyze",
            str(example.model_path),
            "-t",
            "cortex-m4",
            "--calibration",
            str(calib),
            "--chart",
            str(fifo),
        ],
    ]
    for command in commands:
        one_line_error(run_edgekit(*command, "--force", timeout=120), 2, "regular files only")
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and device.is_symlink()
    no_partials(tmp_path)


def test_bundle_artifacts_stay_inside_the_bundle(bundle_m4, tmp_path):
    report_file = bundle_m4.path / "report.json"
    report = json.loads(report_file.read_text())
    secret = tmp_path / "secret.tflite"
    shutil.copyfile(bundle_m4.path / "digits_int8_as-given.tflite", secret)
    for bad in ("../secret.tflite", str(secret)):
        report["artifacts"][0]["path"] = bad
        report_file.write_text(json.dumps(report))
        result = run_edgekit(
            "bench",
            str(bundle_m4.path),
            "--device",
            "tflm-host",
            "--runs",
            "2",
            "--db",
            str(tmp_path / "r.db"),
        )
        one_line_error(result, 2, "outside the bundle" if bad.startswith("..") else "not relative")


def test_malformed_report_json_is_one_line(bundle_m4, tmp_path):
    report_file = bundle_m4.path / "report.json"
    good = report_file.read_text()
    for text in (
        "{not json",
        "[1, 2]",
        json.dumps({**json.loads(good), "target": {"x": 1}}),
        json.dumps({**json.loads(good), "artifacts": [{"path": "a"}]}),
    ):
        report_file.write_text(text)
        result = run_edgekit(
            "bench", str(bundle_m4.path), "--device", "tflm-host", "--db", str(tmp_path / "r.db")
        )
        one_line_error(result, 2)


@pytest.mark.parametrize("device", ["tflm-host", "local"])
def test_hostile_report_json_is_one_line(bundle_m4, tmp_path, device):
    report_file = bundle_m4.path / "report.json"
    good = json.loads(report_file.read_text())
    nul = {**good, "artifacts": [{**good["artifacts"][0], "path": "model\0.tflite"}]}
    deep = {**good, "notes": json.loads("[" * 900 + "]" * 900)}
    for text, fragment in (
        (json.dumps(nul), "is not a file name"),
        (json.dumps(deep), "JSON nested"),
        ('{"a": ' * 50_000 + "1" + "}" * 50_000, "JSON nested"),
    ):
        report_file.write_text(text)
        result = run_edgekit(
            "bench", str(bundle_m4.path), "--device", device, "--db", str(tmp_path / "r.db")
        )
        one_line_error(result, 2, str(report_file.parent), fragment)


# --- clean one-line errors for the rest -----------------------------------------------------


@pytest.mark.parametrize(
    "device, fragment",
    [
        ("serial:///dev/ttyS0?baud=99999999999999999999", "baud"),
        ("serial:///dev/ttyS0?line_timeout=abc", "line_timeout"),
        ("ssh://root@[::1;id]", "bad device"),
        ("serial:///dev/ttyS0?evil=1", "unknown parameter"),
        ("ssh://host/home/pi", "takes no '/home/pi' part"),
        ("ssh://host?port=2222", "takes no '?port=2222' part"),
        ("ssh://host:0", "from 1 to 65535"),
        ("adb://SERIAL?transport=usb", "takes no '?transport=usb' part"),
        ("serial:///dev/ttyS0?baud=9600#fast", "takes no '#fast' part"),
    ],
)
def test_bad_device_uris(digits_tflite, tmp_path, device, fragment):
    db = tmp_path / "r.db"
    result = run_edgekit(
        "bench", str(digits_tflite["int8"]), "-t", "cortex-m4", "--device", device, "--db", str(db)
    )
    one_line_error(result, 2, fragment)
    assert not db.exists()  # refused before a run: nothing recorded


@pytest.mark.parametrize("timeout", ["nan", "inf", "0", "-3", "1e308"])
def test_bad_timeouts(digits_tflite, tmp_path, timeout):
    result = run_edgekit(
        "bench",
        str(digits_tflite["int8"]),
        "-t",
        "rpi4",
        "--timeout",
        timeout,
        "--db",
        str(tmp_path / "r.db"),
    )
    one_line_error(result, 2, "--timeout")


BIG = str(10**24)
OUT_OF_RANGE = [
    (["bench", "m.tflite", "-t", "rpi4", "--runs", BIG], "--runs"),
    (["bench", "m.tflite", "-t", "rpi4", "--warmup", BIG], "--warmup"),
    (["bench", "m.tflite", "-t", "rpi4", "--threads", "100000"], "--threads"),
    (["results", "show", BIG], "RUN_ID"),
    (["results", "compare", "1", BIG], "RUN_IDS"),
    (["results", "list", "--limit", "-3"], "--limit"),
    (["deploy", "--example", "digits", "-t", "cortex-m4", "--min-sqnr", "nan"], "--min-sqnr"),
    (
        ["deploy", "--example", "digits", "-t", "cortex-m4", "--max-agreement-drop", "1e308"],
        "--max-agreement-drop",
    ),
]


@pytest.mark.parametrize("args, flag", OUT_OF_RANGE, ids=[flag for _, flag in OUT_OF_RANGE])
def test_numeric_options_are_bounded(tmp_path, args, flag):
    db = tmp_path / "r.db"
    from edgekit.bench.result import BenchResult
    from edgekit.bench.store import ResultStore

    ResultStore(db).add(BenchResult("m.tflite", "0" * 64, "rpi4", "local", "ok"))
    extra = ["--db", str(db)] if args[0] in ("bench", "results") else ["--out", str(tmp_path)]
    result = run_edgekit(*args, *extra, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert flag in lines[-1] and "Traceback" not in result.stderr, result.stderr
    assert not list(tmp_path.glob("digits-*"))


def test_streamed_npz_input(digits_tflite, tmp_path):
    """A zip written to a pipe (sizes after the data) is read, or refused in one line."""
    path = tmp_path / "streamed.npz"
    array = np.zeros((1, 8, 8, 1), np.int8)

    class Unseekable:
        def __init__(self, handle):
            self.handle = handle

        def write(self, data):
            return self.handle.write(data)

        def flush(self):
            self.handle.flush()

    with path.open("wb") as raw, zipfile.ZipFile(Unseekable(raw), "w") as archive:
        with archive.open("x.npy", "w") as member:
            np.lib.format.write_array(member, array)
    result = run_edgekit(
        "bench",
        str(digits_tflite["int8"]),
        "-t",
        "rpi4",
        "--input",
        str(path),
        "--runs",
        "2",
        "--db",
        str(tmp_path / "r.db"),
    )
    assert result.returncode in (0, 2), result.stderr
    if result.returncode == 2:
        one_line_error(result, 2)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(path.read_bytes()[:-30])
    result = run_edgekit(
        "bench",
        str(digits_tflite["int8"]),
        "-t",
        "rpi4",
        "--input",
        str(broken),
        "--db",
        str(tmp_path / "r.db"),
    )
    one_line_error(result, 2)


def test_corrupt_results_databases(tmp_path):
    from edgekit.bench.result import BenchResult
    from edgekit.bench.store import ResultStore

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"SQLite format 3\0" + os.urandom(4000))
    one_line_error(run_edgekit("results", "list", "--db", str(garbage)), 2, "garbage.db")
    db = tmp_path / "r.db"
    run_id = ResultStore(db).add(BenchResult("m.tflite", "0" * 64, "rpi4", "local", "ok"))
    import sqlite3

    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET metrics = '{broken' WHERE id = ?", (run_id,))
    for args in (["list"], ["show", str(run_id)], ["export", "--csv"]):
        one_line_error(run_edgekit("results", *args, "--db", str(db)), 2, f"run {run_id}")


TAMPERED_ROWS = {
    "deep JSON": ("metrics", "[" * 100_000 + "]" * 100_000),
    "a list for an object": ("metrics", "[1, 2]"),
    "a string for an object": ("settings", '"threads"'),
    "NULL JSON": ("device_info", None),
    "NULL text": ("model_name", None),
    "a blob for text": ("device", b"\xff"),
    "text latencies": ("latencies_ms", '["fast", "slow"]'),
    "text p50": ("metrics", '{"latency_ms": {"p50": "fast"}}'),
    "text peak RSS": ("metrics", '{"peak_rss_mb": "big"}'),
}


@pytest.mark.parametrize("name", sorted(TAMPERED_ROWS))
def test_tampered_result_rows_are_one_line(tmp_path, name):
    import sqlite3

    from edgekit.bench.result import BenchResult
    from edgekit.bench.store import SCHEMA, ResultStore

    db = tmp_path / "r.db"
    store = ResultStore(db)
    ids = [
        store.add(
            BenchResult(
                "m.tflite",
                "0" * 64,
                "rpi4",
                "local",
                "ok",
                metrics={"latency_ms": {"p50": 1.0}},
                latencies_ms=[1.0, 2.0],
            )
        )
        for _ in range(2)
    ]
    column, value = TAMPERED_ROWS[name]
    with sqlite3.connect(db) as conn:  # what a hand edit could leave: no NOT NULL either
        conn.execute("ALTER TABLE runs RENAME TO old")
        conn.executescript(SCHEMA.replace("NOT NULL", "").replace("CREATE INDEX", "-- "))
        conn.execute("INSERT INTO runs SELECT * FROM old")
        conn.execute("DROP TABLE old")
        conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, ids[1]))
    out = tmp_path / "plot.png"
    for args in (
        ["list"],
        ["show", str(ids[1])],
        ["compare", *map(str, ids)],
        ["export", "--csv"],
        ["plot", str(out)],
    ):
        one_line_error(run_edgekit("results", *args, "--db", str(db)), 2, f"run {ids[1]}")
    assert not out.exists()


def test_plot_to_an_unknown_format(tmp_path):
    from edgekit.bench.result import BenchResult
    from edgekit.bench.store import ResultStore

    db = tmp_path / "r.db"
    ResultStore(db).add(
        BenchResult("m.tflite", "0" * 64, "rpi4", "local", "ok", latencies_ms=[1.0, 2.0])
    )
    one_line_error(
        run_edgekit("results", "plot", str(tmp_path / "x.xyz"), "--db", str(db)), 2, ".png"
    )
    assert not (tmp_path / "x.xyz").exists()


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda t: t.replace('aliases = ["nrf52840"]', "aliases = [1, 2]"), "aliases"),
        (lambda t: t.replace("threads = 1", "threads = 0"), "execution.threads"),
        (lambda t: t.replace('name = "cortex-m4"', 'name = ""'), "name"),
        (lambda t: t.replace('harness = "mcu"', 'harness = "linux"'), "harness"),
    ],
)
def test_bad_profiles(tmp_path, edit, field):
    text = edit((REPO / "targets" / "cortex-m4.toml").read_text())
    path = tmp_path / "bad.toml"
    path.write_text(text)
    one_line_error(run_edgekit("targets", "show", str(path)), 2, f"'{field}'")


def test_an_unparsable_runtime_version_is_refused(tmp_path):
    text = (REPO / "targets" / "raspberry-pi-4.toml").read_text()
    text = text.replace('runtime_version = "2.14.0"', 'runtime_version = "latest"')
    path = tmp_path / "pi.toml"
    path.write_text(text)
    one_line_error(run_edgekit("targets", "show", str(path)), 2, "'runtime_version'", "2.16.1")


# --- nothing lost, nothing left behind ------------------------------------------------------


def test_a_dangling_symlink_at_the_bundle_path(digits_tflite, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "digits_int8-cortex-m4").symlink_to(tmp_path / "nowhere")
    args = ("deploy", str(digits_tflite["int8"]), "-t", "cortex-m4", "--out", str(out))
    one_line_error(run_edgekit(*args), 2, "already exists", "symlink")
    forced = run_edgekit(*args, "--force")
    assert forced.returncode == 0, forced.stderr
    bundle = out / "digits_int8-cortex-m4"
    assert bundle.is_dir() and not bundle.is_symlink()
    assert sorted(p.name for p in out.iterdir()) == ["digits_int8-cortex-m4"]


def test_a_later_deploy_removes_what_a_killed_one_left(digits_tflite, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = [
        out / f".digits_int8-cortex-m4.{dead}.k3j9.partial",
        out / f".digits_int8-cortex-m4.old-{dead}",
    ]
    live = out / f".digits_int8-cortex-m4.{os.getpid()}.a1b2.partial"  # a concurrent deploy
    other = out / f".other-cortex-m4.{dead}.x.partial"  # another bundle's: not this deploy's
    for path in (*stale, live, other):
        path.mkdir()
        (path / "report.json").write_text("{}")
    result = run_edgekit(
        "deploy", str(digits_tflite["int8"]), "-t", "cortex-m4", "--out", str(out), "--json"
    )
    assert result.returncode in (0, 1), result.stderr
    assert (out / "digits_int8-cortex-m4" / "report.json").is_file()
    assert not any(path.exists() for path in stale)
    assert live.exists() and other.exists()


def test_workers_leave_nothing_in_the_temp_directory(example, tmp_path):
    """TensorFlow writes autograph modules to the temp directory: 3 a deploy, left behind."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    stale = tmp / f"edgekit-worker-{dead}-abc123"  # from a SIGKILLed edgekit
    stale.mkdir()
    (stale / "__autograph_generated_filex.py").write_text("")
    result = run_edgekit(
        "deploy",
        str(example.model_path),
        "-t",
        "cortex-m4",
        "--calibration",
        "random",
        "--no-analysis",
        "--out",
        str(tmp_path / "o"),
        "--json",
        env={"TMPDIR": str(tmp)},
    )
    assert result.returncode in (0, 1), result.stderr
    assert json.loads(result.stdout)["target"]["name"] == "cortex-m4"
    assert sorted(p.name for p in tmp.iterdir()) == []


def test_publish_swaps_atomically_over_anything(tmp_path):
    from edgekit.bundle import _exchange, publish

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("a")
    b.write_text("b")
    assert _exchange(a, b), "renameat2(RENAME_EXCHANGE) is available on this kernel"
    assert (a.read_text(), b.read_text()) == ("b", "a")
    for old in ("dir", "file", "symlink"):
        root = tmp_path / old
        root.mkdir()
        final = root / "bundle"
        if old == "dir":
            final.mkdir()
            (final / "old.txt").write_text("old")
        elif old == "file":
            final.write_text("old")
        else:
            final.symlink_to(tmp_path / "elsewhere")
        staging = root / ".bundle.x.partial"
        staging.mkdir()
        (staging / "new.txt").write_text("new")
        publish(staging, final, force=True)
        assert (final / "new.txt").read_text() == "new" and not final.is_symlink()
        assert [p.name for p in root.iterdir()] == ["bundle"], old


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a backgrounded pytest (CI) ignores SIGINT


@pytest.mark.parametrize(
    "sig, code, group",
    [(signal.SIGTERM, 143, False), (signal.SIGINT, 130, True)],
    ids=["sigterm", "ctrl-c"],
)
def test_a_signal_mid_deploy_leaves_nothing_behind(example, tmp_path, sig, code, group):
    """SIGTERM (timeout, CI cancel) or Ctrl-C (SIGINT to the whole process group, the worker
    too) mid-deploy: exit 143/130, no traceback, no .partial, no bundle, and no --out folder
    made by this deploy. The signal is sent when a step has finished, so every run is cut."""
    for after in ("load model", "convert int8"):
        for attempt in range(3):
            made = tmp_path / f"{after.replace(' ', '-')}-{attempt}"  # --out is made/out
            proc, err = _signal_after(example, made, after, sig, group)
            if proc.returncode == 0 and list(made.glob("out/*/report.json")):
                # Under heavy load a SIGTERM was once handled only after the deploy had
                # finished (not reproduced in 24 tries on a quiet machine): the bundle is
                # complete and exit 0 is right for it. Try again; a signal that never cuts
                # a deploy still fails below.
                continue
            break
        # Ctrl-C: exit 130, or death by SIGINT after the clean-up and "interrupted" (seen once
        # in CI under load, not reproduced in 12 loaded tries here); a shell shows 130 for both.
        assert proc.returncode in ((code, -sig) if group else (code,)), (after, err)
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert err.strip().splitlines()[-1] in ("terminated", "interrupted"), err
        assert not made.exists(), sorted(str(p) for p in made.rglob("*"))


def _signal_after(example, made, after: str, sig, group: bool):
    """Start a deploy, send `sig` when the step `after` has finished; (process, its stderr)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgekit",
            "deploy",
            str(example.model_path),
            "-t",
            "cortex-m4",
            "--calibration",
            "random",
            "--out",
            str(made / "out"),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith(f"✓ {after}"):
            break
    else:
        pytest.fail(f"no '✓ {after}' line: {''.join(seen)[-2000:]}")
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    return proc, err


READ_ONLY_SCRIPT = """
set -e
mount -t tmpfs -o size=16m tmpfs "$RO"
cp "$SRC/ro.db" "$SRC/m.tflite" "$RO/"
mount -o remount,ro "$RO"
set +e
"$PY" -m edgekit results list --db "$RO/ro.db" > "$SRC/list.out" 2>&1; echo $? > "$SRC/list.rc"
"$PY" -m edgekit bench "$RO/m.tflite" -t rpi4 --runs 2 --db "$RO/ro.db" > "$SRC/bench.out" \\
  2>&1; echo $? > "$SRC/bench.rc"
"""


def test_bench_checks_the_results_store_before_running(digits_tflite, tmp_path):
    """A read-only store: bench refuses before it runs; results list reads it. As root (who
    writes any file) the store sits on a read-only tmpfs in a private mount namespace."""
    from edgekit.bench.result import BenchResult
    from edgekit.bench.store import ResultStore

    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    ResultStore(src / "ro.db").add(BenchResult("seen.tflite", "0" * 64, "rpi4", "local", "ok"))
    shutil.copyfile(digits_tflite["int8"], src / "m.tflite")
    if os.geteuid() == 0:
        if shutil.which("unshare") is None:
            missing_part(
                "MOUNT",
                "root without unshare(1) (util-linux): no way to make a file read-only for root",
            )
        env = {**os.environ, "RO": str(ro), "SRC": str(src), "PY": sys.executable}
        done = subprocess.run(
            ["unshare", "-m", "sh", "-c", READ_ONLY_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode != 0:
            missing_part(
                "MOUNT",
                "cannot mount a read-only tmpfs here (a container without "
                f"CAP_SYS_ADMIN?): {done.stderr.strip()[:200]}",
            )
        listed = ((src / "list.rc").read_text().strip(), (src / "list.out").read_text())
        benched = ((src / "bench.rc").read_text().strip(), (src / "bench.out").read_text())
    else:
        (src / "ro.db").chmod(0o444)
        src.chmod(0o555)
        try:
            listed_proc = run_edgekit("results", "list", "--db", str(src / "ro.db"))
            bench_proc = run_edgekit(
                "bench",
                str(src / "m.tflite"),
                "-t",
                "rpi4",
                "--runs",
                "2",
                "--db",
                str(src / "ro.db"),
            )
        finally:
            src.chmod(0o755)
        listed = (str(listed_proc.returncode), listed_proc.stdout + listed_proc.stderr)
        benched = (str(bench_proc.returncode), bench_proc.stderr)
    assert listed[0] == "0" and "seen.tflite" in listed[1], listed
    assert benched[0] == "2", benched
    assert "read-only" in benched[1] or "not writable" in benched[1], benched
    assert "running the Linux harness" not in benched[1]  # refused before the run


def test_bad_data_is_refused_before_tensorflow_loads(example, tmp_path):
    bad = tmp_path / "bad.npy"
    bad.write_bytes(b"not numpy at all")
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
            "--calibration",
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "not a readable NumPy file" in result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not {m for m in imported if m.split(".")[0] in ("tensorflow", "tf_keras")}


def test_the_worker_imports_this_processs_edgekit_not_one_in_the_working_directory(
    tmp_path, monkeypatch
):
    # A checkout of edgekit's source is a directory with an `edgekit/` folder: a user who
    # runs `pip install .` and then `edgekit deploy` in it must get workers running the
    # installed edgekit (that folder has no converters/), and their own modules in the
    # working directory must stay importable.
    from edgekit.isolation import call

    (tmp_path / "edgekit").mkdir()
    (tmp_path / "edgekit" / "__init__.py").write_text("raise ImportError('the decoy edgekit')\n")
    (tmp_path / "users_layers.py").write_text("def value():\n    return 42\n")
    monkeypatch.chdir(tmp_path)
    assert call("os:getcwd") == str(tmp_path)
    assert call("edgekit.converters.tflm:c_identifier", "a-b") == "a_b"
    assert call("users_layers:value") == 42


def test_results_compare_prints_markup_in_names_as_data(tmp_path):
    from edgekit.bench.result import BenchResult
    from edgekit.bench.store import ResultStore

    db = tmp_path / "r.db"
    store = ResultStore(db)
    for name in ("[/bold]", "plain"):
        store.add(
            BenchResult(name, "0" * 64, "rpi4", "[/x]", "ok", metrics={"latency_ms": {"p50": 1.0}})
        )
    result = run_edgekit("results", "compare", "1", "2", "--db", str(db))
    assert result.returncode == 0, result.stderr
    assert "[/bold]" in result.stdout and "[/x]" in result.stdout
