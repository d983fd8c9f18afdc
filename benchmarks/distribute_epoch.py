"""Wall time of one training epoch: single device vs MirroredStrategy on 2 logical CPUs.

Runs examples/distributed_training.py for each strategy (sequentially, same machine) and
reports the median epoch time after the first epoch (which includes tracing).

    python benchmarks/distribute_epoch.py --epochs 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "distributed_training.py"


def run(strategy: str, epochs: int) -> dict:
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--technique",
        "all",
        "--strategy",
        strategy,
        "--epochs",
        str(epochs),
        "--out",
        "/dev/null",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    results = {s: run(s, args.epochs) for s in ("none", "mirrored")}
    print(
        "| technique | single device: epoch (s) | MirroredStrategy x2: epoch (s) | ratio | "
        "val acc single | val acc mirrored |"
    )
    print("|---|---|---|---|---|---|")
    for technique in ("prune", "qat", "distill"):
        one = results["none"]["results"][technique]
        two = results["mirrored"]["results"][technique]
        t1 = statistics.median(one["epoch_seconds"][1:])
        t2 = statistics.median(two["epoch_seconds"][1:])
        print(
            f"| {technique} | {t1:.2f} | {t2:.2f} | {t2 / t1:.2f} | "
            f"{100 * one['val_accuracy']:.1f} | {100 * two['val_accuracy']:.1f} |"
        )


if __name__ == "__main__":
    main()
