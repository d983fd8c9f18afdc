"""Mutation fuzzing of `edgekit inspect` and `edgekit deploy` on corrupt `.tflite` files.

    python tests/fuzz/run.py --seeds SEED_DIR --inspect 10000 --deploy 0 --json fuzz.json
    python tests/fuzz/run.py --make-seeds SEED_DIR        # three seed models (needs TensorFlow)

Mutants (tests/fuzz/mutants.py) run through the real CLI entry point, `edgekit.cli.main`, in a
driver process. Native runtimes run in edgekit's worker processes, so a native crash that
reaches the driver is a bug in edgekit's isolation: the driver dies, this orchestrator records
a native crash and starts a new driver at the next mutant. Counted per mode:

- exit codes (0 ok, 1 a failed check, 2 bad input; 3 is an internal error: a bug);
- native crashes (the driver died), runs over 60 s, and files left behind (`.partial`
  bundles, temporary files in the driver's private TMPDIR).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SLOW_SECONDS = 60.0
DEPLOY_TARGETS = ("cortex-m4", "raspberry-pi-4", "coral")


def _cases(seeds: list[Path], mode: str, count: int, seed: int):
    """(index, seed name, kind, bytes) for `count` mutants spread over the seeds."""
    sys.path.insert(0, str(HERE))
    from mutants import mutants

    per_seed = [count // len(seeds) + (i < count % len(seeds)) for i in range(len(seeds))]
    index = 0
    for n, (path, share) in enumerate(zip(seeds, per_seed, strict=True)):
        offset = 0 if mode == "inspect" else 10**6
        for kind, data in mutants(path.read_bytes(), share, seed + n + offset):
            yield index, path.name, kind, data
            index += 1


def _run_one(mode: str, path: Path, index: int, out: Path) -> int:
    from edgekit.cli import main

    if mode == "inspect":
        args = ["inspect", str(path)]
    else:
        target = DEPLOY_TARGETS[index % len(DEPLOY_TARGETS)]
        args = ["deploy", str(path), "-t", target, "--out", str(out), "--force", "--json"]
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        try:
            return main(args)
        except SystemExit as exc:  # should not happen: main returns codes
            return int(exc.code or 0)


def driver(args: argparse.Namespace) -> int:
    """Run mutants from `--start` on; print one JSON line per mutant as it finishes."""
    seeds = sorted(Path(args.seeds).glob("*.tflite"))
    work = Path(args.work)
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    for index, seed_name, kind, data in _cases(seeds, args.mode, args.count, args.seed):
        if index < args.start:
            continue
        path = work / f"mutant-{index}.tflite"
        path.write_bytes(data)
        started = time.perf_counter()
        print(
            json.dumps({"index": index, "seed": seed_name, "kind": kind, "start": True}), flush=True
        )
        code = _run_one(args.mode, path, index, out)
        seconds = time.perf_counter() - started
        path.unlink()
        print(
            json.dumps(
                {
                    "index": index,
                    "seed": seed_name,
                    "kind": kind,
                    "code": code,
                    "seconds": round(seconds, 3),
                }
            ),
            flush=True,
        )
    return 0


def fuzz(seeds: Path, mode: str, count: int, seed: int = 0) -> dict:
    """Run `count` mutants through `mode`; restart the driver after a crash."""
    summary: dict = {
        "mode": mode,
        "mutants": count,
        "exit_codes": collections.Counter(),
        "native_crashes": [],
        "over_60s": [],
        "internal_errors": [],
        "left_behind": [],
        "max_seconds": 0.0,
        "seconds": 0.0,
    }
    with tempfile.TemporaryDirectory(prefix="edgekit-fuzz-") as tmp:
        work, private_tmp = Path(tmp) / "work", Path(tmp) / "tmp"
        work.mkdir()
        private_tmp.mkdir()
        env = {**os.environ, "TMPDIR": str(private_tmp)}
        start, began = 0, time.perf_counter()
        while start < count:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--driver",
                    "--seeds",
                    str(seeds),
                    "--mode",
                    mode,
                    "--count",
                    str(count),
                    "--seed",
                    str(seed),
                    "--start",
                    str(start),
                    "--work",
                    str(work),
                ],
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            current = None
            for line in proc.stdout:
                record = json.loads(line)
                if record.get("start"):
                    current = record
                    continue
                current = None
                summary["exit_codes"][record["code"]] += 1
                summary["max_seconds"] = max(summary["max_seconds"], record["seconds"])
                if record["code"] == 3:
                    summary["internal_errors"].append(record)
                if record["seconds"] > SLOW_SECONDS:
                    summary["over_60s"].append(record)
                start = record["index"] + 1
            proc.wait()
            if current is not None:  # the driver died inside a mutant: a native crash
                summary["native_crashes"].append({**current, "returncode": proc.returncode})
                start = current["index"] + 1
            elif proc.returncode != 0:
                raise RuntimeError(f"fuzz driver failed with status {proc.returncode}")
            else:
                break
        summary["seconds"] = round(time.perf_counter() - began, 1)
        out = work / "out"
        leftovers = [p.name for p in out.rglob("*") if ".partial" in p.name] if out.exists() else []
        leftovers += [p.name for p in private_tmp.rglob("*")]
        leftovers += [p.name for p in work.glob("mutant-*")]
        summary["left_behind"] = leftovers
    summary["exit_codes"] = dict(sorted(summary["exit_codes"].items()))
    return summary


def make_seeds(directory: Path) -> list[Path]:
    """Three seed models: the digits CNN (int8), a residual depthwise net (int8), and the
    digits CNN in float32. Needs TensorFlow (converted with edgekit's converter)."""
    import numpy as np

    from edgekit.converters.tflite import convert
    from edgekit.examples import load_example
    from edgekit.keras import tf_keras
    from edgekit.models import from_keras, load_model

    directory.mkdir(parents=True, exist_ok=True)
    example = load_example("digits")
    digits = load_model(example.model_path)
    calib = example.calibration.x
    files = {
        "digits_int8.tflite": convert(digits, "int8", io_dtype="int8", calibration=calib),
        "digits_float32.tflite": convert(digits, "float32"),
        "residual_int8.tflite": convert(
            from_keras(residual_net(tf_keras())),
            "int8",
            io_dtype="int8",
            calibration=np.random.default_rng(0).random((32, 16, 16, 3), dtype=np.float32),
        ),
    }
    for name, converted in files.items():
        (directory / name).write_bytes(converted.data)
    return sorted(directory.glob("*.tflite"))


def residual_net(keras):
    """A small net with a residual ADD, a depthwise conv, global pooling and softmax."""
    layers = keras.layers
    inputs = keras.Input((16, 16, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    y = layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    y = layers.Conv2D(8, 1)(y)
    x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Softmax()(layers.Dense(4)(x)), name="residual")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=Path)
    parser.add_argument("--make-seeds", type=Path)
    parser.add_argument("--inspect", type=int, default=500)
    parser.add_argument("--deploy", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    # driver mode (internal)
    parser.add_argument("--driver", action="store_true")
    parser.add_argument("--mode", choices=("inspect", "deploy"))
    parser.add_argument("--count", type=int)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--work")
    args = parser.parse_args(argv)
    if args.driver:
        return driver(args)
    if args.make_seeds:
        for path in make_seeds(args.make_seeds):
            print(path)
        return 0
    results = [fuzz(args.seeds, "inspect", args.inspect, args.seed)] if args.inspect else []
    if args.deploy:
        results.append(fuzz(args.seeds, "deploy", args.deploy, args.seed))
    text = json.dumps(results, indent=2, default=str)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    bad = any(
        r["native_crashes"] or r["internal_errors"] or r["over_60s"] or r["left_behind"]
        for r in results
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
