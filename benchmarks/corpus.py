"""Architectures edgekit has never seen, on one target of every family (issue 15, part A).

Every architecture of tests/architectures.py (keras.applications with weights=None, a GRU/LSTM
audio model, an attention block, a 0..255-pixel CNN, a two-input model), untrained and after a
few steps of training on synthetic data, deployed with the CLI as a user would to cortex-m4,
raspberry-pi-4, coral and android-arm64. Each row: exit code, the failed checks (named op or
budget), top-1 agreement / output SQNR, the TFLM arena, the model's flash bytes, and the deploy's
wall-clock seconds (this machine is shared: seconds are indicative).

Exit 0 or 1 is the goal; 2 is a refusal in one line, 3 or a dead process is a bug and makes
this script exit 1.

    python benchmarks/corpus.py [--arch NAME ...] [--family NAME ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from architectures import ARCHITECTURES, save  # noqa: E402

from edgekit.report import format_value  # noqa: E402

FAMILIES = ("cortex-m4", "raspberry-pi-4", "coral", "android-arm64")


def deploy(model: Path, calib: Path, target: str, out: Path, *extra: str) -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgekit",
            "deploy",
            str(model),
            "-t",
            target,
            "--calibration",
            str(calib),
            "--out",
            str(out),
            "--no-analysis",
            "--force",
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    row = {
        "exit": result.returncode,
        "seconds": seconds,
        "failed": "",
        "agreement": None,
        "sqnr": None,
        "arena": None,
        "flash": None,
        "error": "",
    }
    reports = list(out.glob("*/report.json"))
    row["report"] = json.loads(reports[0].read_text()) if reports else None
    row["bundle"] = reports[0].parent if reports else None
    if reports:
        report = row["report"]
        metrics = report["metrics"]
        row.update(
            agreement=metrics.get("top1_agreement"),
            sqnr=metrics.get("output_sqnr_db"),
            arena=metrics.get("tensor_arena_bytes"),
            flash=metrics.get("model_bytes"),
            failed="; ".join(
                f"{c['name']}: {c['detail'][:90]}" for c in report["checks"] if not c["ok"]
            ),
        )
    else:
        lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
        row["error"] = (lines[-1] if lines else result.stderr.strip()[-200:])[:160]
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES))
    parser.add_argument("--family", nargs="*", default=list(FAMILIES))
    parser.add_argument("--states", nargs="*", default=["untrained", "trained"])
    parser.add_argument("--out", type=Path, default=None, help="keep bundles here")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="edgekit-corpus-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        "| architecture | state | target | exit | failed checks / error | top-1 agr. | SQNR "
        "| arena | flash | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    bugs = 0
    for arch in args.arch:
        for state in args.states:
            model, calib = save(arch, work, trained=state == "trained")
            for family in args.family:
                row = deploy(model, calib, family, work / f"{arch}-{state}-{family}")
                bugs += row["exit"] not in (0, 1, 2)
                why = row["failed"] or row["error"] or "-"
                print(
                    f"| {arch} | {state} | {family} | {row['exit']} | {why.replace('|', '/')} | "
                    f"{format_value(row['agreement'], 'pct')} | "
                    f"{format_value(row['sqnr'], 'db')} | {format_value(row['arena'])} | "
                    f"{format_value(row['flash'])} | "
                    f"{row['seconds']:.0f} |",
                    flush=True,
                )
    return 1 if bugs else 0


if __name__ == "__main__":
    sys.exit(main())
