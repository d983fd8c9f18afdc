"""On-device benchmarking, measured on this machine (goals from issue 4, not timed tests).

1. Harness overhead: the Linux harness's p50 (a subprocess, as `edgekit bench --device local`
   runs it) vs a tight LiteRT loop in this process on the same model, same threads, same
   XNNPACK delegate, same seeded input. Goal: within 10 %.
2. ssh on loopback vs local: the same harness over a real OpenSSH server on 127.0.0.1.
   Goal: p50 within 10 %. Transfer overhead (mktemp + scp, and cleanup) reported separately.
3. int8 vs float32 latency of the built-in example, measured by the harness.

Everything is interleaved round by round (this machine is shared and noisy) and each figure is
the median over rounds.

    python benchmarks/bench_harness.py [--rounds 7] [--runs 300]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def in_process_p50(model: Path, runs: int, warmup: int, threads: int) -> float:
    from ai_edge_litert.interpreter import Interpreter

    from edgekit._fdcapture import capture_native_output
    from edgekit.devices.linux.edgekit_harness import random_input

    with capture_native_output():
        interp = Interpreter(model_path=str(model), num_threads=threads)
        interp.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interp.get_input_details():
        interp.set_tensor(detail["index"], random_input(detail, rng))
    interp.invoke()
    for _ in range(warmup):
        interp.invoke()
    clock, times = time.perf_counter, []
    for _ in range(runs):
        started = clock()
        interp.invoke()
        times.append((clock() - started) * 1e3)
    return float(np.percentile(times, 50))


def conv_net():
    """A MobileNet-style block stack at 96x96x3 (weights random: latency does not care)."""
    from edgekit.keras import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    layers = keras.layers
    x = inp = keras.Input((96, 96, 3))
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(x)
    for filters, stride in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1)):
        x = layers.DepthwiseConv2D(3, strides=stride, padding="same", activation="relu6")(x)
        x = layers.Conv2D(filters, 1, activation="relu6")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, layers.Dense(10, activation="softmax")(x), name="convnet96")


def models(out: Path) -> dict[str, Path]:
    """The digits example and a larger conv net, each as int8 and float32."""
    import edgekit

    digits = edgekit.deploy(None, "raspberry-pi-4", example="digits", out=out, force=True)
    rng = np.random.default_rng(0)
    calib = rng.uniform(0, 1, (64, 96, 96, 3)).astype("float32")
    big = edgekit.deploy(
        conv_net(), "raspberry-pi-4", calibration=calib, validation=calib, out=out, force=True
    )
    return {
        "digits int8": digits.path / "digits_int8.tflite",
        "digits float32": digits.path / "digits_float32.tflite",
        "convnet96 int8": big.path / "convnet96_int8.tflite",
        "convnet96 float32": big.path / "convnet96_float32.tflite",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "tests"))
    from sshd import start_sshd

    from edgekit.bench.runner import bench

    work = Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
    paths = models(work)
    server = start_sshd(work / "sshd")
    common = dict(runs=args.runs, warmup=args.warmup, threads=args.threads, record=False)
    rows: dict[str, list[float]] = {}
    transfer: list[float] = []
    cleanup: list[float] = []
    try:
        for r in range(args.rounds):
            for name, model in paths.items():
                local = bench(model, "raspberry-pi-4", "local", **common)
                remote = bench(
                    model,
                    "raspberry-pi-4",
                    server.alias_uri,
                    remote_python=sys.executable,
                    ssh_config=server.config,
                    **common,
                )
                assert local.ok and remote.ok, (local.error, remote.error)
                loop = in_process_p50(model, args.runs, args.warmup, args.threads)
                rows.setdefault(f"{name} harness local", []).append(local.p50_ms)
                rows.setdefault(f"{name} harness ssh", []).append(remote.p50_ms)
                rows.setdefault(f"{name} in-process loop", []).append(loop)
                transfer.append(remote.metrics["transport_ms"]["setup"])
                cleanup.append(remote.metrics["transport_ms"]["cleanup"])
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    finally:
        server.stop()

    med = {k: statistics.median(v) for k, v in rows.items()}
    print(
        f"\n{args.rounds} rounds x {args.runs} runs, {args.threads} thread(s), XNNPACK; "
        "median over rounds of each run's p50\n"
    )
    print(
        "| model | in-process loop p50 | harness local p50 | overhead | harness ssh p50 | "
        "ssh vs local |"
    )
    print("|---|---|---|---|---|---|")
    for name in paths:
        loop, local, ssh = (
            med[f"{name} {k}"] for k in ("in-process loop", "harness local", "harness ssh")
        )
        print(
            f"| {name} | {loop * 1e3:.1f} µs | {local * 1e3:.1f} µs | "
            f"{100 * (local / loop - 1):+.1f} % | {ssh * 1e3:.1f} µs | "
            f"{100 * (ssh / local - 1):+.1f} % |"
        )
    for model in ("digits", "convnet96"):
        ratio = med[f"{model} int8 harness local"] / med[f"{model} float32 harness local"]
        print(f"\n{model}: int8 / float32 p50 (harness, local) = {ratio:.3f}")
    print("\nspread of each run's p50 over rounds (min-max):")
    for key, values in rows.items():
        print(f"  {key}: {min(values) * 1e3:.1f}-{max(values) * 1e3:.1f} µs")
    setup, clean = statistics.median(transfer), statistics.median(cleanup)
    print(
        f"ssh transfer (mktemp + scp of harness + model): median {setup:.0f} ms; "
        f"cleanup {clean:.0f} ms"
    )


if __name__ == "__main__":
    main()
