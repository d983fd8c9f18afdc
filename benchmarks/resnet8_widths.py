"""ResNet-8 at three widths, int8 on this host: does a narrower net run faster under LiteRT?

The reference ResNet-8 (`edgekit.examples.zoo.resnet8`) at stage widths 16/32/64, 8/16/32
and 4/8/16, untrained (latency depends on shapes, not weight values), converted to int8 with
random calibration, and timed through edgekit's harness (LiteRT, 1 thread) with XNNPACK and
with the builtin kernels: median p50 over interleaved rounds. docs/benchmarks.md quotes it
next to the channel tiles.

    python benchmarks/resnet8_widths.py [--rounds 3] [--runs 100]
"""

from __future__ import annotations

import argparse

import numpy as np

WIDTHS = ((16, 32, 64), (8, 16, 32), (4, 8, 16))


def host() -> str:
    from edgekit.devices.linux.edgekit_harness import device_info

    info = device_info()
    return f"{info['cpu']}, {info['cores']} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()

    from edgekit._tf import tf_keras
    from edgekit.converters.tflite import convert
    from edgekit.examples.zoo import resnet8
    from edgekit.models import from_keras
    from edgekit.runtimes.timing import host_latencies

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    calibration = np.random.default_rng(0).random((32, 32, 32, 3), dtype=np.float32)
    models = [
        convert(
            from_keras(resnet8(keras, widths=w)), "int8", io_dtype="int8", calibration=calibration
        ).data
        for w in WIDTHS
    ]
    latencies = {
        delegate: host_latencies(models, rounds=args.rounds, runs=args.runs, delegate=delegate)
        for delegate in ("xnnpack", "none")
    }
    print(f"host: {host()}; {args.rounds} rounds of {args.runs} runs, median p50\n")
    print("| widths | XNNPACK p50 ms | builtin p50 ms |")
    print("|---|---|---|")
    for i, widths in enumerate(WIDTHS):
        xnnpack, builtin = latencies["xnnpack"][i], latencies["none"][i]
        print(f"| {'/'.join(map(str, widths))} | {xnnpack:.3f} | {builtin:.3f} |")


if __name__ == "__main__":
    main()
