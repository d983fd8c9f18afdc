"""Does cutting channels make an int8 net faster under LiteRT on this host?

The trained reference ResNet-8 (`edgekit.examples`) with 25/50/75 % of every prunable group's
channels cut (`prune_channels(ratio=...)`, L1), and `keras.applications.MobileNetV2` α 1.0 at
96×96 (untrained: latency depends on shapes) with 25/50 % cut; each converted to int8 by
edgekit's converter and timed through edgekit's harness (LiteRT, 1 thread) with XNNPACK and
with the builtin kernels, every model in every round, median p50: ratios from one run.
docs/benchmarks.md quotes it beside the raspberry-pi-4 `edgekit fit` figure.

    python benchmarks/xnnpack_channels.py [--rounds 3] [--runs 200]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    import keras

    from edgekit.converters.tflite import convert
    from edgekit.examples import load_example
    from edgekit.examples.zoo import splits
    from edgekit.keras.channel_pruning import prune_channels
    from edgekit.models import from_keras
    from edgekit.runtimes.timing import host_latencies

    resnet8 = load_example("resnet8").model(keras)
    mobilenet = keras.applications.MobileNetV2(
        input_shape=(96, 96, 3), alpha=1.0, weights=None, classes=10
    )
    nets = (
        ("ResNet-8 (trained)", resnet8, splits("resnet8")[0].x[:100], (0.25, 0.5, 0.75)),
        (
            "MobileNetV2 α 1.0 96×96",
            mobilenet,
            np.random.default_rng(0).random((32, 96, 96, 3), np.float32),
            (0.25, 0.5),
        ),
    )
    print(f"{args.rounds} rounds of {args.runs} runs, median p50 (ms)\n")
    print("| net | channels cut | XNNPACK p50 ms | builtin p50 ms |")
    print("|---|---|---|---|")
    for name, model, x, ratios in nets:
        models = [model] + [prune_channels(model, ratio=r, criterion="l1") for r in ratios]
        data = [convert(from_keras(m), "int8", io_dtype="int8", calibration=x).data for m in models]
        timed = {
            d: host_latencies(data, rounds=args.rounds, runs=args.runs, delegate=d)
            for d in ("xnnpack", "none")
        }
        for i, cut in enumerate((0.0, *ratios)):
            cells = [
                f"{timed[d][i]:.4f} ({timed[d][i] / timed[d][0]:.2f}×)" for d in ("xnnpack", "none")
            ]
            print(f"| {name} | {cut:.0%} | {' | '.join(cells)} |", flush=True)


if __name__ == "__main__":
    main()
