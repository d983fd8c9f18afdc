"""`edgekit deploy --example digits` on every built-in target, as a user runs it.

For each target: CLI wall time (warm example cache, includes the TensorFlow import), float vs
deployed bytes, float vs deployed accuracy, and for MCU targets the reported arena against the
exact minimum, re-checked here with the tflite_micro interpreter (minimum runs, minimum-1 fails).

    python benchmarks/deploy_example.py [--targets coral-usb cortex-m4 ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALL = [
    "android-arm64",
    "raspberry-pi-4",
    "raspberry-pi-5",
    "coral-usb",
    "coral-devboard",
    "cortex-m4",
    "cortex-m7",
    "esp32-s3",
]


def exact_minimum(model_path: Path) -> int:
    from edgekit.converters.tflm import ArenaProber

    prober = ArenaProber(model_path.read_bytes())
    lo, hi = 0, 1 << 22  # independent bisection from a wider start: hi runs, lo does not
    try:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if prober.runs_with(mid)[0] else (mid, hi)
    finally:
        prober.close()
    return hi


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="*", default=ALL)
    args = parser.parse_args()
    # Warm the example cache first so no row pays for training.
    from edgekit.examples import load_example

    load_example("digits")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets:
            cmd = [
                sys.executable,
                "-m",
                "edgekit",
                "deploy",
                "--example",
                "digits",
                "--target",
                target,
                "--out",
                tmp,
                "--json",
                "--force",
            ]
            started = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - started
            if proc.returncode not in (0, 1):
                raise SystemExit(f"{target}: {proc.stderr.strip()}")
            report = json.loads(proc.stdout)
            m = report["metrics"]
            arena = minimum = None
            if "tensor_arena_bytes" in m:
                deployed = next(a for a in report["artifacts"] if a["role"] == "deployed model")
                bundle = Path(tmp) / f"digits-{report['target']['name']}"
                arena, minimum = m["tensor_arena_bytes"], exact_minimum(bundle / deployed["path"])
            rows.append((target, report["status"], wall, m, arena, minimum))
    print(
        "| target | status | wall (s) | float32 B | deployed B | ratio | float acc | "
        "deployed acc | drop (pts) | arena B | exact min B | arena − min |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for target, status, wall, m, arena, minimum in rows:
        drop = 100 * (m["float_accuracy"] - m["deployed_accuracy"])
        ratio = m["model_bytes"] / m["float_model_bytes"]
        print(
            f"| {target} | {status} | {wall:.1f} | {m['float_model_bytes']:,} | "
            f"{m['model_bytes']:,} | {ratio:.3f} | {100 * m['float_accuracy']:.1f} | "
            f"{100 * m['deployed_accuracy']:.1f} | {drop:+.1f} | "
            f"{'-' if arena is None else f'{arena:,}'} | "
            f"{'-' if minimum is None else f'{minimum:,}'} | "
            f"{'-' if arena is None else arena - minimum} |"
        )


if __name__ == "__main__":
    main()
