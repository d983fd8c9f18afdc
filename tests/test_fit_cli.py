"""`edgekit fit` as a user runs it: one-line errors before any training, a real search end to
end (worker processes, the results store, the bundle that says how it was found, the chart),
and a search stopped by Ctrl-C and by SIGKILL that goes on from its stored trials."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def files(keras3_digits_model, digits_data, tmp_path_factory):
    """The digits model as a `.keras` file, unlabelled training inputs and labelled
    validation data as `.npz` files, as a user has them."""
    folder = tmp_path_factory.mktemp("fit-files")
    train, _, val = digits_data
    keras3_digits_model.save(folder / "digits.keras")
    np.savez(folder / "train.npz", x=train.x[:400])
    np.savez(folder / "val.npz", x=val.x[:120], y=val.y[:120])
    return folder


def _args(files: Path, out: Path, *extra: str) -> list[str]:
    return [
        "fit",
        str(files / "digits.keras"),
        "--target",
        "cortex-m4",
        "--data",
        str(files / "train.npz"),
        "--validation",
        str(files / "val.npz"),
        "--out",
        str(out),
        "--db",
        str(out / "results.db"),
        *extra,
    ]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--max-ram", "12 parsecs"], "--max-ram: expected a positive size such as 256K"),
        (["--max-flash", "-4"], "--max-flash: expected a positive size"),
        (["--max-drop", "150"], "--max-drop: accuracy points below 100"),
        (["--max-drop", "1", "--min-accuracy", "0.9"], "give --max-drop or --min-accuracy"),
        (["--min-accuracy", "90"], "--min-accuracy: a fraction in (0, 1]"),
        (["--max-instructions", "lots"], "--max-instructions: expected a positive"),
        (["--max-instructions", "1e6"], "give --tflm-dir or set EDGEKIT_TFLM_DIR"),
        (["--max-latency-ms", "5"], "cortex-m4 has no clock_hz and cpi"),
        (["--workers", "2", "--ray", "127.0.0.1:1"], "give --workers or --ray, not both"),
        (["--target", "no-such-board"], "no-such-board"),
    ],
)
def test_bad_budgets_and_flags_are_one_line_before_any_training(
    files, tmp_path, capsys, monkeypatch, extra, message
):
    monkeypatch.delenv("EDGEKIT_TFLM_DIR", raising=False)
    code = main(_args(files, tmp_path, *extra))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert not list(tmp_path.glob("*-fit")), "nothing is made before the inputs are checked"


def test_a_target_that_cannot_measure_a_budget_is_refused(files, tmp_path, capsys):
    for target, flag, value, message in (
        ("raspberry-pi-4", "--max-instructions", "1e6", "not a microcontroller"),
        ("coral-usb", "--max-latency-ms", "3", "needs the Edge TPU itself"),
    ):
        args = _args(files, tmp_path, flag, value)
        args[args.index("--target") + 1] = target
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


def test_missing_or_misshapen_data_is_one_line(files, tmp_path, capsys):
    args = _args(files, tmp_path)
    args[args.index("--data") + 1] = str(tmp_path / "missing.npz")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.npz" in err and len(err.splitlines()) == 1, err
    np.savez(tmp_path / "wrong.npz", x=np.zeros((50, 5, 5, 1), np.float32))
    args[args.index("--data") + 1] = str(tmp_path / "wrong.npz")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "--data" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "digits-cortex-m4-fit" / "trials").exists()


def test_a_budget_no_candidate_can_meet_ends_before_the_search(files, tmp_path, capsys):
    """1 KB of RAM: even every group cut most does not fit; said with the smallest figure
    reached, before any trial trains."""
    code = main(_args(files, tmp_path, "--max-ram", "1K", "--no-sensitivity"))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "no candidate can meet the budget: --max-ram 1.0 KB" in err, err
    assert "the smallest candidate measures" in err and "relax the budget" in err
    last = err.splitlines()[-1]  # after the progress of what it measured, one line
    assert last.startswith("error: no candidate can meet") and "Traceback" not in err
    assert not (tmp_path / "digits-cortex-m4-fit").exists(), "nothing left behind"


def test_an_accuracy_budget_the_original_cannot_be_measured_by_is_refused(
    files, digits_data, tmp_path, capsys
):
    """A model whose classes all tie (untrained, last layer zero) on unlabelled inputs: its
    accuracy cannot be measured, so a --max-drop is refused before any trial, and no folder
    is left behind."""
    from helpers import keras3_digits_cnn

    model = keras3_digits_cnn()
    label = model.get_layer("label")
    label.kernel.assign(np.zeros(label.kernel.shape, np.float32))
    model.save(tmp_path / "tied.keras")
    np.savez(tmp_path / "val.npz", x=digits_data[2].x[:60])
    args = _args(files, tmp_path, "--max-drop", "1", "--no-sensitivity", "--trials", "1")
    args[1] = str(tmp_path / "tied.keras")
    args[args.index("--validation") + 1] = str(tmp_path / "val.npz")
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "error: the original model's accuracy cannot be measured" in err.splitlines()[-1]
    assert "labelled validation data" in err and "Traceback" not in err
    assert not list(tmp_path.glob("*-fit")), "nothing left behind"


def test_fit_end_to_end_then_resume(files, tmp_path, capsys):
    """Three trials in two worker processes: the chosen model saved and deployed as a bundle
    whose report says how it was found, every trial in the results store, the chart; then the
    same command again is refused, and `--resume --trials 4` runs one more trial only."""
    out = tmp_path
    code = main(_args(files, out, "--max-drop", "4", "--trials", "3", "--workers", "2", "--json"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert len(result["trials"]) == 3 and result["best"] is not None
    assert "2 local worker processes" in result["where"]
    best = next(t for t in result["trials"] if t["trial"] == result["best"])
    assert best["ok"] and best["accuracy"] >= result["original"]["accuracy"] - 0.04
    bundle = Path(result["bundle"])
    report = json.loads((bundle / "report.json").read_text())
    assert report["status"] == "deployed"
    fit = report["fit"]
    assert fit["fit_id"] == result["fit_id"] and fit["trial"] == result["best"]
    assert fit["seed"] == 0 and fit["candidate"] == best["candidate"]
    assert {b["budget"] for b in fit["budgets"]} == {"max_ram_bytes", "max_flash_bytes", "max_drop"}
    assert all(b["ok"] for b in fit["budgets"])
    assert "## How this model was found" in (bundle / "report.md").read_text()
    assert Path(result["chosen"]).stat().st_size > 0
    assert Path(result["chart"]).read_bytes()[:4] == b"\x89PNG"
    import optuna

    storage = f"sqlite:///{out / 'digits-cortex-m4-fit' / 'fit.db'}"
    study = optuna.load_study(study_name="edgekit-fit", storage=storage)
    # resources are Optuna's constraints; accuracy is an objective, not also a constraint
    assert [set(t.constraints) for t in study.trials] == [{"max_ram_bytes", "max_flash_bytes"}] * 3

    assert (
        main(
            [
                "results",
                "list",
                "--fit",
                result["fit_id"],
                "--db",
                str(out / "results.db"),
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["settings"]["trial"] for r in rows) == [1, 2, 3]
    assert all(r["transport"] == "fit" and r["target"] == "cortex-m4" for r in rows)
    ids = [str(r["id"]) for r in rows]
    db = ["--db", str(out / "results.db")]
    assert main(["results", "compare", *ids, "--metric", "flash", *db]) == 0
    assert "relative to run" in capsys.readouterr().out
    assert main(["results", "list", "--fit", result["fit_id"], *db]) == 0
    assert f"edgekit fit {result['fit_id']}: 3 trials" in capsys.readouterr().out

    assert main(_args(files, out, "--max-drop", "4", "--trials", "3")) == 2
    assert "resume it (--resume) or start afresh (--force)" in capsys.readouterr().err

    code = main(_args(files, out, "--max-drop", "4", "--trials", "4", "--resume", "--json"))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    resumed = json.loads(captured.out)
    assert resumed["fit_id"] == result["fit_id"] and len(resumed["trials"]) == 4
    assert [t["candidate"] for t in resumed["trials"][:3]] == [
        t["candidate"] for t in result["trials"]
    ]
    assert (
        main(
            [
                "results",
                "list",
                "--fit",
                result["fit_id"],
                "--db",
                str(out / "results.db"),
                "--json",
            ]
        )
        == 0
    )
    rows = json.loads(capsys.readouterr().out)
    assert sorted(r["settings"]["trial"] for r in rows) == [1, 2, 3, 4], "only the new trial"
    kept = sorted(p.name for p in (out / "digits-cortex-m4-fit" / "trials").iterdir())
    assert kept == [f"trial-{n:03d}.keras" for n in (1, 2, 3, 4)], "numbered as shown"

    assert main(_args(files, out, "--max-drop", "5", "--trials", "4", "--resume")) == 2
    err = capsys.readouterr().err
    assert "other settings (budgets was" in err and "--force to start afresh" in err
    assert main(["results", "list", "--fit", "nope", *db]) == 2
    assert "no trials of an `edgekit fit` search 'nope'" in capsys.readouterr().err


def _complete_trials(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:  # the study's tables are not made yet
        return 0


def _workers_of(pid: int) -> list[int]:
    """edgekit worker processes started by `pid` (they carry EDGEKIT_WORKER_PARENT)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"EDGEKIT_WORKER_PARENT={pid}".encode() in environ:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_search_stopped_by_ctrl_c_or_sigkill_goes_on_from_its_trials(files, tmp_path):
    """Stopped once by Ctrl-C (exit 130) and once by SIGKILL, each after a trial was stored,
    the same command with --resume ends with every trial, none run twice; a SIGKILL leaves
    no worker process behind."""
    args = _args(files, tmp_path, "--max-drop", "5", "--trials", "4", "--workers", "2", "--json")
    command = [sys.executable, "-m", "edgekit", *args]
    db = tmp_path / "digits-cortex-m4-fit" / "fit.db"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def run_until(stored: int, sig: int) -> subprocess.CompletedProcess:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 600
        while _complete_trials(db) < stored and proc.poll() is None:
            assert time.monotonic() < deadline, "no trial was stored in time"
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        workers = _workers_of(proc.pid)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
        if sig == signal.SIGKILL:
            time.sleep(2)
            assert not [p for p in workers if Path(f"/proc/{p}").exists()], "orphan workers"
        return subprocess.CompletedProcess(command, proc.returncode, out, err)

    stopped = run_until(1, signal.SIGINT)
    assert stopped.returncode == 130, stopped.stderr.decode()[-500:]
    assert b"Traceback" not in stopped.stderr
    first = _complete_trials(db)
    assert first >= 1
    command.append("--resume")
    killed = run_until(first + 1, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    done = subprocess.run(command, env=env, capture_output=True, timeout=900)
    assert done.returncode == 0, done.stderr.decode()[-800:]
    result = json.loads(done.stdout)
    assert len(result["trials"]) == 4 and _complete_trials(db) == 4
    with sqlite3.connect(tmp_path / "results.db") as con:
        trials = [
            json.loads(row[0])["trial"]
            for row in con.execute(
                "SELECT settings FROM runs WHERE device = ?", (f"fit:{result['fit_id']}",)
            )
        ]
    numbers = [t["trial"] for t in result["trials"]]
    assert sorted(trials) == sorted(numbers), "each stored trial recorded once"
    import optuna

    study = optuna.load_study(study_name="edgekit-fit", storage=f"sqlite:///{db}")
    state = optuna.trial.TrialState
    interrupted = [t for t in study.trials if t.state == state.FAIL and "error" not in t.user_attrs]
    assert interrupted, "the stops interrupted trials"
    measured = [t.params for t in study.trials if t.state == state.COMPLETE]
    assert all(t.params in measured for t in interrupted), "an interrupted trial runs again"


@pytest.mark.slow
def test_mcu_trials_are_measured_by_their_firmware_under_qemu(
    keras3_digits_model, digits_data, tflm_tree, tmp_path
):
    """With a TFLM tree, every trial's instructions, 32-bit arena and flash come from its
    firmware under QEMU, and the instruction budget is judged on them."""
    import edgekit
    from edgekit.bench.store import ResultStore

    train, _, val = digits_data
    result = edgekit.fit(
        keras3_digits_model,
        "cortex-m4",
        (train.x[:256], None),
        {"max_instructions": 10**9, "max_drop": 0.5},
        validation=(val.x[:64], val.y[:64]),
        trials=1,
        tflm_dir=tflm_tree,
        sensitivity=False,
        out=tmp_path,
        store=ResultStore(tmp_path / "results.db"),
    )
    assert result.cost == "instructions_per_inference"
    for trial in (result.baseline, *result.trials):
        m = trial.report.metrics
        assert m.instructions_per_inference > 0 and m.tensor_arena_32bit_bytes > 0
        judged = {v.budget: v for v in trial.verdicts}
        assert judged["max_instructions"].source == "firmware under QEMU"
        assert judged["max_instructions"].measured == m.instructions_per_inference
        assert judged["max_ram_bytes"].measured == m.tensor_arena_32bit_bytes
    best = result.best
    assert best is not None and result.bundle is not None
    report = json.loads((result.bundle / "report.json").read_text())
    assert report["metrics"]["instructions_per_inference"] > 0
    fit_budgets = {b["budget"]: b for b in report["fit"]["budgets"]}
    assert fit_budgets["max_instructions"]["source"] == "firmware under QEMU"
    import optuna

    storage = f"sqlite:///{result.directory / 'fit.db'}"
    study = optuna.load_study(study_name="edgekit-fit", storage=storage)
    (stored,) = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    measured = result.trials[0].report.metrics.instructions_per_inference
    assert measured < 10**9 and stored.values[1] == 10**9, "within its budget, a cost is the budget"
