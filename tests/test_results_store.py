"""The SQLite results store and `edgekit results`: concurrency, compare, export, plot."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import sqlite3
import stat

import pytest
from helpers import run_edgekit

from edgekit.bench.result import BenchResult
from edgekit.bench.store import ResultStore

WRITERS, ROWS = 8, 25


def _write_rows(db: str, writer: int) -> None:
    store = ResultStore(db)
    for i in range(ROWS):
        store.add(
            BenchResult(
                f"w{writer}.tflite",
                f"{writer:064d}",
                "cortex-m4",
                "tflm-host",
                "ok",
                metrics={"i": i},
                latencies_ms=[float(i)],
            )
        )


def test_eight_processes_writing_at_once_lose_no_rows(tmp_path):
    db = str(tmp_path / "results.db")
    ResultStore(db)  # schema first, as the CLI does
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_rows, args=(db, w)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=600)  # 8 interpreters starting at once on a loaded 2-core host
        assert p.exitcode == 0
    store = ResultStore(db)
    runs = store.list()
    assert store.count() == len(runs) == WRITERS * ROWS
    assert len({r.id for r in runs}) == WRITERS * ROWS
    for w in range(WRITERS):
        mine = sorted(r.metrics["i"] for r in runs if r.model_name == f"w{w}.tflite")
        assert mine == list(range(ROWS))
    mode = sqlite3.connect(db).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_store_rejects_a_newer_schema_and_non_databases(tmp_path):
    from edgekit.errors import EdgekitError

    db = tmp_path / "r.db"
    ResultStore(db)
    sqlite3.connect(db).execute("PRAGMA user_version = 99").connection.commit()
    with pytest.raises(EdgekitError, match="has schema 99"):
        ResultStore(db)
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite " * 200)
    with pytest.raises(EdgekitError, match="junk.db"):
        ResultStore(junk)


def test_results_cli_on_real_local_runs(digits_tflite, tmp_path):
    db = tmp_path / "results.db"
    env = {"EDGEKIT_DB": str(db)}
    ids = {}
    for name in ("float32", "int8"):
        proc = run_edgekit(
            "bench",
            str(digits_tflite[name]),
            "--target",
            "rpi4",
            "--runs",
            "30",
            "--threads",
            "1",
            "--json",
            env=env,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        ids[name] = json.loads(proc.stdout)["id"]
    store = ResultStore(db)
    float_p50 = store.get(ids["float32"]).p50_ms
    int8_p50 = store.get(ids["int8"]).p50_ms

    listed = run_edgekit("results", "list", "--json", env=env)
    assert [r["id"] for r in json.loads(listed.stdout)] == [ids["int8"], ids["float32"]]
    shown = json.loads(run_edgekit("results", "show", str(ids["int8"]), "--json", env=env).stdout)
    assert shown["model_name"] == "digits_int8.tflite" and len(shown["latencies_ms"]) == 30
    text = run_edgekit("results", "show", str(ids["int8"]), env=env).stdout
    assert f"run {ids['int8']}" in text and "digits_int8.tflite" in text
    assert f"p50 {int8_p50:.3f}" in text

    compared = run_edgekit("results", "compare", str(ids["float32"]), str(ids["int8"]), env=env)
    assert compared.returncode == 0, compared.stderr
    assert f"{int8_p50 / float_p50:.3f}x" in compared.stdout and "1.000x" in compared.stdout

    # Not cut at 100 columns; same-named models told apart by their sha256.
    listed = run_edgekit("results", "list", env=env)
    for run_id in ids.values():
        sha = ResultStore(db).get(run_id).model_sha256[:12]
        assert sha in listed.stdout
    assert "digits_float32.tflite" in listed.stdout.replace("\n", "")

    exported = run_edgekit("results", "export", "--csv", env=env)
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [int(r["id"]) for r in rows] == [ids["int8"], ids["float32"]]
    assert float(rows[1]["p50_ms"]) == pytest.approx(float_p50)

    csv_file = tmp_path / "runs.csv"
    exported_file = run_edgekit("results", "export", "--csv", "--out", str(csv_file), env=env)
    assert exported_file.returncode == 0
    png = tmp_path / "latency.png"
    plotted = run_edgekit("results", "plot", str(png), env=env)
    assert plotted.returncode == 0, plotted.stderr
    umask = os.umask(0)
    os.umask(umask)
    for written in (csv_file, png):  # ordinary files, not mkstemp's 0600
        assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask, written
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    again = run_edgekit("results", "plot", str(png), env=env)
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    assert run_edgekit("results", "plot", str(png), "--force", env=env).returncode == 0

    typo = tmp_path / "typo.db"
    for args in (["list"], ["show", "1"], ["export", "--csv"]):
        wrong = run_edgekit("results", *args, "--db", str(typo))
        assert wrong.returncode == 2 and "no results database" in wrong.stderr, args
    assert not typo.exists()  # never created by a reader

    missing = run_edgekit("results", "show", "999", env=env)
    assert missing.returncode == 2 and "no run with id 999" in missing.stderr
    one = run_edgekit("results", "compare", str(ids["int8"]), env=env)
    assert one.returncode == 2 and "at least two run ids" in one.stderr


def _qemu_run(instructions: int, flash: int, model: str = "digits_int8.tflite") -> BenchResult:
    """A run shaped as `--device qemu` records it (edgekit.bench.qemu._result): instructions
    and sizes, no milliseconds."""
    elf = {"text": flash - 100, "data": 100, "bss": 9000, "tensor_arena": 8000}
    return BenchResult(
        model,
        "d" * 64,
        "cortex-m4",
        "qemu",
        "ok",
        runtime="tflm (qemu mps2-an386)",
        metrics={
            "instructions": {
                "per_inference": instructions,
                "min": instructions - 40,
                "max": instructions + 40,
                "resolution": 40,
                "source": "QEMU",
            },
            "arena_bytes": 8000,
            "arena_used_bytes": 7800,
            "arena_host_bytes": 9900,
            "arena_source": "smallest arena that runs on the 32-bit CPU under QEMU",
            "elf": elf,
            "flash_bytes": flash,
            "ram_bytes": 9100 + 2048,
            "stack_bytes": 2048,
            "heap_bytes": 0,
        },
    )


def test_qemu_runs_are_listed_compared_exported_and_plotted(tmp_path):
    db = tmp_path / "r.db"
    store = ResultStore(db)
    first, second = store.add(_qemu_run(1_200_000, 120_000)), store.add(_qemu_run(900_000, 90_000))
    env = {"EDGEKIT_DB": str(db)}

    listed = run_edgekit("results", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    for heading in ("instructions", "arena B", "flash B", "RAM B"):
        assert heading in listed.stdout
    for figure in ("1,200,000", "900,000", "8,000", "120,000", "11,148"):
        assert figure in listed.stdout, figure

    compared = run_edgekit("results", "compare", str(first), str(second), env=env)
    assert compared.returncode == 0, compared.stderr  # instructions: no latency to compare
    assert "instructions per inference, relative to run" in compared.stdout
    assert "0.750x" in compared.stdout and "1.33x" in compared.stdout  # ratio and speed-up
    flash = run_edgekit("results", "compare", str(first), str(second), "--metric", "flash", env=env)
    assert flash.returncode == 0 and "90,000" in flash.stdout and "0.750x" in flash.stdout
    assert "speed-up" not in flash.stdout  # a smaller image is not a faster one
    latency = run_edgekit("results", "compare", str(first), str(second), "--metric", "p50", env=env)
    assert latency.returncode == 2 and "Traceback" not in latency.stderr
    assert "no p50 ms; they all have --metric instructions, arena, flash or ram" in latency.stderr

    rows = list(
        csv.DictReader(io.StringIO(run_edgekit("results", "export", "--csv", env=env).stdout))
    )
    newest = rows[0]
    assert int(newest["id"]) == second
    assert newest["instructions_per_inference"] == "900000" and newest["instructions_min"]
    assert (newest["arena_bytes"], newest["flash_bytes"], newest["ram_bytes"]) == (
        "8000",
        "90000",
        "11148",
    )
    assert newest["p50_ms"] == ""

    png = tmp_path / "runs.png"
    plotted = run_edgekit("results", "plot", str(png), env=env)
    assert plotted.returncode == 0, plotted.stderr
    assert "instructions of 2 runs" in plotted.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ram = run_edgekit(
        "results", "plot", str(tmp_path / "ram.svg"), str(first), "--metric", "ram", env=env
    )
    assert ram.returncode == 0 and "ram of 1 runs" in ram.stderr
    refused = run_edgekit(
        "results", "plot", str(tmp_path / "l.png"), "--metric", "latency", str(first), env=env
    )
    assert refused.returncode == 2 and "no per-run latencies to plot" in refused.stderr
    assert not (tmp_path / "l.png").exists()
