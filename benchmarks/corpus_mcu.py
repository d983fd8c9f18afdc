"""The corpus's microcontroller bundles, built (issue 15, part A): every cortex-m4 bundle of
tests/architectures.py, untrained and briefly trained, deployed with a TFLM tree, so deploy
builds the firmware with arm-none-eabi-g++, runs it under QEMU's Cortex-M4 (mps2-an386) and
compares its output CRC with host TFLM's; and the bundle's sources (main.cc, model_data.cc)
compiled with g++ against TFLM's host tree. A model over the profile's flash cannot be linked
for the board; its sources still compile for the host.

    python benchmarks/corpus_mcu.py --tflm-dir ../shared/tflm/cortex-m \\
        --host-tree ../shared/tflm/host [--arch NAME ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from architectures import ARCHITECTURES, save  # noqa: E402
from corpus import deploy  # noqa: E402
from helpers import compile_tflm_sources  # noqa: E402


def _check(report: dict | None, name: str) -> str:
    found = [c for c in (report or {}).get("checks", []) if c["name"] == name]
    if not found:
        return "not run"
    return "pass" if found[0]["ok"] else "FAIL: " + found[0]["detail"][:80]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES))
    parser.add_argument("--states", nargs="*", default=["untrained", "trained"])
    parser.add_argument("--tflm-dir", type=Path, required=True, help="TFLM tree (Cortex-M)")
    parser.add_argument("--host-tree", type=Path, required=True, help="TFLM tree (host)")
    parser.add_argument("--out", type=Path, default=None, help="keep bundles here")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="edgekit-corpus-mcu-"))
    work.mkdir(parents=True, exist_ok=True)
    print(
        "| architecture | state | exit | firmware CRC = host TFLM (QEMU) | instructions "
        "| g++ (host TFLM) | s |"
    )
    print("|---|---|---|---|---|---|---|")
    failures = 0
    for arch in args.arch:
        for state in args.states:
            model, calib = save(arch, work, trained=state == "trained")
            out = work / f"{arch}-{state}-cortex-m4"
            row = deploy(model, calib, "cortex-m4", out, "--tflm-dir", str(args.tflm_dir))
            started = time.perf_counter()
            compiled = "no bundle"
            if row["bundle"] is not None:
                objects = out / "objects"
                objects.mkdir(exist_ok=True)
                try:
                    compile_tflm_sources(row["bundle"], args.host_tree, objects)
                    compiled = f"ok ({time.perf_counter() - started:.0f} s)"
                except subprocess.CalledProcessError as exc:
                    compiled = "FAIL: " + (exc.stderr or "").strip().splitlines()[0][:80]
                    failures += 1
            metrics = (row["report"] or {}).get("metrics", {})
            instructions = metrics.get("instructions_per_inference")
            firmware = _check(row["report"], "firmware_matches_host_tflm")
            failures += firmware.startswith("FAIL") or row["exit"] not in (0, 1)
            print(
                f"| {arch} | {state} | {row['exit']} | {firmware} | "
                f"{f'{instructions:,}' if instructions else '-'} | {compiled} | "
                f"{row['seconds']:.0f} |",
                flush=True,
            )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
