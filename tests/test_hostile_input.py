"""Hostile and corrupt input: no code execution, no native crash, no hang, nothing lost.

Every bad input is one line, exit 2 (or 1 for a tool failing on good input), never exit 3, and
leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
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
    result = run_edgekit("deploy", str(path), "-t", "cortex-m4", "--calibration", "random",
                         "--out", str(out))  # fmt: skip
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
    opted = run_edgekit("deploy", str(path), "-t", "raspberry-pi-4", "--calibration", "random",
                        "--out", str(out), "--unsafe-deserialization", "--json")  # fmt: skip
    assert opted.returncode in (0, 1), opted.stderr
    assert marker.exists()
    report = json.loads(opted.stdout)
    assert report["model"]["unsafe_deserialization"] is True
    assert any("--unsafe-deserialization" in note for note in report["notes"])


# --- native crashes become errors ----------------------------------------------------------


def test_calibration_beyond_float32_is_refused(example, tmp_path):
    calib = tmp_path / "big.npy"
    x = example.calibration.x.astype(np.float64)
    x[0, 0, 0, 0] = 1e300
    np.save(calib, x)
    out = tmp_path / "out"
    result = run_edgekit("deploy", str(example.model_path), "-t", "cortex-m4", "--calibration",
                         str(calib), "--out", str(out))  # fmt: skip
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
    tensor = next(t for t in tensors if t.quantization is not None
                  and t.quantization.scale is not None and len(t.quantization.scale) > 1)
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
    one_line_error(run_edgekit("deploy", str(path), "-t", "cortex-m4", "--out", str(out)), 2,
                   fragment)  # fmt: skip
    no_partials(out)


@pytest.fixture()
def bundle_m4(digits_tflite, tmp_path):
    import edgekit

    return edgekit.deploy(digits_tflite["int8"], "cortex-m4", out=tmp_path / "b")


BAD_ARENAS = [(100, "below the model's activation lower bound"), (-5, "positive integer"),
              ("abc", "positive integer")]  # fmt: skip


@pytest.mark.parametrize("arena, fragment", BAD_ARENAS)
def test_tflm_host_refuses_a_bad_arena_from_the_report(bundle_m4, tmp_path, arena, fragment):
    report_file = bundle_m4.path / "report.json"
    report = json.loads(report_file.read_text())
    report["metrics"]["tensor_arena_bytes"] = arena
    report_file.write_text(json.dumps(report))
    db = tmp_path / "r.db"
    result = run_edgekit("bench", str(bundle_m4.path), "--device", "tflm-host", "--runs", "3",
                         "--db", str(db))  # fmt: skip
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
    one_line_error(run_edgekit("deploy", "--example", "digits", "-t", "cortex-m4", "--calibration",
                               str(fifo_npy), "--out", str(tmp_path / "o"), timeout=300), 2,
                   "not a regular file")  # fmt: skip


# --- silent wrong answers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda x: x.astype(np.complex64), "complex"),
        (lambda x: np.full(x.shape, "a"), "dtype"),
    ],
)
def test_bad_calibration_values(example, tmp_path, make, fragment):
    calib = tmp_path / "c.npy"
    np.save(calib, make(example.calibration.x))
    result = run_edgekit("deploy", str(example.model_path), "-t", "cortex-m4", "--calibration",
                         str(calib), "--out", str(tmp_path / "o"))  # fmt: skip
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
    one_line_error(run_edgekit(*args, str(out), "--calibration", str(single)), 2,
                   "[8, 8, 1], rank 3", "[N, 8, 8, 1], rank 4", "x[None]")  # fmt: skip
    one_line_error(run_edgekit(*args, str(out), "--calibration", str(few)), 2,
                   "has 3 samples", "at least 10", "--min-calibration-samples 3")  # fmt: skip
    assert not out.exists()
    asked = run_edgekit(*args, str(out), "--calibration", str(few), "--min-calibration-samples",
                        "3", "--json")  # fmt: skip
    assert asked.returncode in (0, 1), asked.stderr
    assert json.loads(asked.stdout)["quantization"]["calibration_samples"] == 3


@pytest.mark.parametrize("labels, fragment", [(-7, "class indices >= 0"), (1e15, "class indices"),
                                              ("cat", "integer class indices")])  # fmt: skip
def test_bad_labels(example, tmp_path, labels, fragment):
    val = tmp_path / "v.npz"
    x = example.validation.x[:20]
    np.savez(val, x=x, y=np.full(20, labels))
    result = run_edgekit("deploy", str(example.model_path), "-t", "cortex-m4", "--calibration",
                         "random", "--validation", str(val), "--out",
                         str(tmp_path / "o"))  # fmt: skip
    one_line_error(result, 2, fragment)


def test_a_huge_npy_header_is_refused_unread(example, tmp_path):
    path = tmp_path / "huge.npy"
    with path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "<f4", "fortran_order": False, "shape": (2**28, 8, 8, 1)}
        )
        handle.write(b"\0" * 64)
    result = run_edgekit("deploy", str(example.model_path), "-t", "cortex-m4", "--calibration",
                         str(path), "--out", str(tmp_path / "o"))  # fmt: skip
    one_line_error(result, 2, "header declares")


def test_bundle_artifacts_stay_inside_the_bundle(bundle_m4, tmp_path):
    report_file = bundle_m4.path / "report.json"
    report = json.loads(report_file.read_text())
    secret = tmp_path / "secret.tflite"
    shutil.copyfile(bundle_m4.path / "digits_int8_as-given.tflite", secret)
    for bad in ("../secret.tflite", str(secret)):
        report["artifacts"][0]["path"] = bad
        report_file.write_text(json.dumps(report))
        result = run_edgekit("bench", str(bundle_m4.path), "--device", "tflm-host", "--runs", "2",
                             "--db", str(tmp_path / "r.db"))  # fmt: skip
        one_line_error(result, 2, "outside the bundle" if bad.startswith("..") else "not relative")


def test_malformed_report_json_is_one_line(bundle_m4, tmp_path):
    report_file = bundle_m4.path / "report.json"
    good = report_file.read_text()
    for text in ("{not json", "[1, 2]", json.dumps({**json.loads(good), "target": {"x": 1}}),
                 json.dumps({**json.loads(good), "artifacts": [{"path": "a"}]})):  # fmt: skip
        report_file.write_text(text)
        result = run_edgekit("bench", str(bundle_m4.path), "--device", "tflm-host",
                             "--db", str(tmp_path / "r.db"))  # fmt: skip
        one_line_error(result, 2)


# --- clean one-line errors for the rest -----------------------------------------------------


@pytest.mark.parametrize(
    "device, fragment",
    [
        ("serial:///dev/ttyS0?baud=99999999999999999999", "baud"),
        ("serial:///dev/ttyS0?line_timeout=abc", "line_timeout"),
        ("ssh://root@[::1;id]", "bad device"),
        ("serial:///dev/ttyS0?evil=1", "unknown parameter"),
    ],
)
def test_bad_device_uris(digits_tflite, tmp_path, device, fragment):
    db = tmp_path / "r.db"
    result = run_edgekit("bench", str(digits_tflite["int8"]), "-t", "cortex-m4", "--device",
                         device, "--db", str(db))  # fmt: skip
    one_line_error(result, 2, fragment)
    assert not db.exists()  # refused before a run: nothing recorded


@pytest.mark.parametrize("timeout", ["nan", "inf", "0", "-3"])
def test_bad_timeouts(digits_tflite, tmp_path, timeout):
    result = run_edgekit("bench", str(digits_tflite["int8"]), "-t", "rpi4", "--timeout", timeout,
                         "--db", str(tmp_path / "r.db"))  # fmt: skip
    one_line_error(result, 2, "--timeout")


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
    result = run_edgekit("bench", str(digits_tflite["int8"]), "-t", "rpi4", "--input", str(path),
                         "--runs", "2", "--db", str(tmp_path / "r.db"))  # fmt: skip
    assert result.returncode in (0, 2), result.stderr
    if result.returncode == 2:
        one_line_error(result, 2)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(path.read_bytes()[:-30])
    result = run_edgekit("bench", str(digits_tflite["int8"]), "-t", "rpi4", "--input",
                         str(broken), "--db", str(tmp_path / "r.db"))  # fmt: skip
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


def test_plot_to_an_unknown_format(tmp_path):
    from edgekit.bench.result import BenchResult
    from edgekit.bench.store import ResultStore

    db = tmp_path / "r.db"
    ResultStore(db).add(BenchResult("m.tflite", "0" * 64, "rpi4", "local", "ok",
                                    latencies_ms=[1.0, 2.0]))  # fmt: skip
    one_line_error(run_edgekit("results", "plot", str(tmp_path / "x.xyz"), "--db", str(db)), 2,
                   ".png")  # fmt: skip
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
        made = tmp_path / after.replace(" ", "-")  # --out is made/out: two folders to create
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgekit", "deploy", str(example.model_path), "-t",
             "cortex-m4", "--calibration", "random", "--out", str(made / "out")],
            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
            start_new_session=True, preexec_fn=_default_sigint,
        )  # fmt: skip
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
        assert proc.returncode == code, (after, err)
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert err.strip().splitlines()[-1] in ("terminated", "interrupted"), err
        assert not made.exists(), sorted(str(p) for p in made.rglob("*"))


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
            missing_part("MOUNT", "root without unshare(1) (util-linux): no way to make a file "
                         "read-only for root")  # fmt: skip
        env = {**os.environ, "RO": str(ro), "SRC": str(src), "PY": sys.executable}
        done = subprocess.run(["unshare", "-m", "sh", "-c", READ_ONLY_SCRIPT], env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        if done.returncode != 0:
            missing_part("MOUNT", "cannot mount a read-only tmpfs here (a container without "
                         f"CAP_SYS_ADMIN?): {done.stderr.strip()[:200]}")  # fmt: skip
        listed = ((src / "list.rc").read_text().strip(), (src / "list.out").read_text())
        benched = ((src / "bench.rc").read_text().strip(), (src / "bench.out").read_text())
    else:
        (src / "ro.db").chmod(0o444)
        src.chmod(0o555)
        try:
            listed_proc = run_edgekit("results", "list", "--db", str(src / "ro.db"))
            bench_proc = run_edgekit("bench", str(src / "m.tflite"), "-t", "rpi4", "--runs", "2",
                                     "--db", str(src / "ro.db"))  # fmt: skip
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
        [sys.executable, "-X", "importtime", "-m", "edgekit", "deploy", str(example.model_path),
         "-t", "cortex-m4", "--calibration", str(bad), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
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
