"""What edgekit's int8 engine and per-layer analysis add to a deploy's wall time.

Runs `edgekit deploy` on the built-in examples three ways, interleaved over rounds (the
machine is shared and noisy): the plain converter without analysis (the old default), the
engine without analysis, and today's default (engine + analysis).

    python benchmarks/deploy_overhead.py --examples digits resnet8 --target cortex-m7 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

VARIANTS = {
    "converter, no analysis": ["--calibration-method", "converter", "--no-analysis"],
    "engine, no analysis": ["--no-analysis"],
    "default (engine + analysis)": [],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="+", default=["digits", "resnet8"])
    parser.add_argument("--target", default="cortex-m7")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times = {(e, v): [] for e in args.examples for v in VARIANTS}
    with tempfile.TemporaryDirectory() as out:
        for example in args.examples:  # train once, outside the timing
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "edgekit",
                    "deploy",
                    "--example",
                    example,
                    "-t",
                    args.target,
                    "-o",
                    out,
                    "--force",
                    "--json",
                ],
                capture_output=True,
                check=True,
            )
        for _ in range(args.rounds):
            for example in args.examples:
                for name, flags in VARIANTS.items():
                    started = time.perf_counter()
                    subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "edgekit",
                            "deploy",
                            "--example",
                            example,
                            "-t",
                            args.target,
                            "-o",
                            out,
                            "--force",
                            "--json",
                            *flags,
                        ],
                        capture_output=True,
                        check=True,
                    )
                    times[(example, name)].append(time.perf_counter() - started)
    print("| example | variant | median wall (s) | vs converter |")
    print("|---|---|---|---|")
    for example in args.examples:
        base = statistics.median(times[(example, "converter, no analysis")])
        for name in VARIANTS:
            median = statistics.median(times[(example, name)])
            print(f"| {example} | {name} | {median:.2f} | {median / base:.2f}× |")


if __name__ == "__main__":
    main()
