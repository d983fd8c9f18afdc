"""Wall time and peak memory of the light CLI commands beside `import tensorflow`.

Runs every command N times, interleaved (the machine is shared and noisy), and reports the
median wall time and the median peak RSS of each child process.

    python benchmarks/cli_startup.py --runs 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "edgekit --help": [sys.executable, "-m", "edgekit", "--help"],
    "edgekit targets list": [sys.executable, "-m", "edgekit", "targets", "list"],
    'python -c "import tensorflow"': [sys.executable, "-c", "import tensorflow"],
}


def run_once(argv: list[str]) -> tuple[float, float, bool]:
    """(seconds, peak RSS MiB, imported tensorflow?) for one child process."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    stderr = proc.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed")
    imported_tf = any(
        line.split("|")[-1].strip().split(".")[0] == "tensorflow"
        for line in stderr.splitlines()
        if "|" in line
    )
    return seconds, usage.ru_maxrss / 1024, imported_tf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float, bool]]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, argv in COMMANDS.items():
            results[name].append(run_once(argv))
    print(
        "| command | median wall (s) | min wall (s) | median peak RSS (MiB) | imports TensorFlow |"
    )
    print("|---|---|---|---|---|")
    for name, rows in results.items():
        walls = [r[0] for r in rows]
        rss = [r[1] for r in rows]
        print(
            f"| `{name}` | {statistics.median(walls):.3f} | {min(walls):.3f} | "
            f"{statistics.median(rss):.0f} | {'yes' if any(r[2] for r in rows) else 'no'} |"
        )
    print(
        f"\n{args.runs} runs each, interleaved; "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    main()
