"""Channel tiles: int8 latency against channel count, one layer at a time, on this host.

Kernels process channels in tiles, so latency climbs in steps rather than smoothly; the step
width is the tile a channel pruner should round to (the `channel_tile` in a target profile).
For each channel count c this builds a one-layer int8 model (conv 3×3 and 1×1 with c output
channels from 32 inputs, depthwise 3×3 on c channels, all on a 16×16 map), converts it with
edgekit's converter and times it with edgekit's harness (LiteRT, 1 thread, XNNPACK), every
model once per round, rounds interleaved, median p50 reported.

    python benchmarks/channel_tile.py --channels 4-64 --rounds 3
"""

from __future__ import annotations

import argparse

import numpy as np


def one_layer(kind: str, channels: int, keras) -> object:
    if kind == "depthwise3x3":
        inputs = keras.Input((16, 16, channels))
        outputs = keras.layers.DepthwiseConv2D(3, padding="same")(inputs)
    else:
        inputs = keras.Input((16, 16, 32))
        size = 3 if kind == "conv3x3" else 1
        outputs = keras.layers.Conv2D(channels, size, padding="same")(inputs)
    return keras.Model(inputs, outputs)


def steps(channels: list[int], latencies: list[float]) -> list[int]:
    """Channel counts where latency jumps by more than half the median step-to-step rise."""
    rises = np.diff(latencies)
    typical = float(np.median(np.abs(rises))) + 1e-9
    floor = [max(4 * typical, 0.02 * latency) for latency in latencies[:-1]]
    return [channels[i + 1] for i, r in enumerate(rises) if r > floor[i]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", default="4-160:4", help="low-high[:step]")
    parser.add_argument("--delegates", nargs="+", default=["xnnpack", "none"])
    parser.add_argument("--kinds", nargs="+", default=["conv3x3", "conv1x1", "depthwise3x3"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    span, _, step = args.channels.partition(":")
    low, high = (int(v) for v in span.split("-"))
    channels = list(range(low, high + 1, int(step or 1)))

    from edgekit._tf import tf_keras
    from edgekit.converters.tflite import convert
    from edgekit.models import from_keras
    from edgekit.runtimes.timing import host_latencies

    keras = tf_keras()
    rng = np.random.default_rng(0)
    details: list[dict] = []
    for kind in args.kinds:
        models = []
        for c in channels:
            model = one_layer(kind, c, keras)
            calib = rng.standard_normal((16, *model.input_shape[1:])).astype(np.float32)
            models.append(
                convert(from_keras(model), "int8", io_dtype="int8", calibration=calib).data
            )
        print(f"\n### {kind}: p50 µs by output channels\n")
        print("| channels | " + " | ".join(args.delegates) + " |")
        print("|---|" + "---|" * len(args.delegates))
        table = {}
        for delegate in args.delegates:
            table[delegate] = host_latencies(
                models, rounds=args.rounds, runs=args.runs, delegate=delegate, details=details
            )
        for i, c in enumerate(channels):
            print(
                f"| {c} | " + " | ".join(f"{1000 * table[d][i]:.1f}" for d in args.delegates) + " |"
            )
        for delegate in args.delegates:
            print(f"\n{delegate}: latency jumps at {steps(channels, table[delegate])}")
        print(f"\n({details[0]['device']['cpu']}, {details[0]['runtime']})")
        details.clear()


if __name__ == "__main__":
    main()
