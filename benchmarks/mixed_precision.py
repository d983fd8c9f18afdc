"""Mixed precision: the fewest ops kept in float to reach an SQNR goal, and what it costs.

For each reference model and goal, edgekit's search (`edgekit deploy --min-sqnr`) ranks ops by
the gain of keeping each alone in float, adds them until the goal holds at the probe tensor
(the logits for softmax models), then drops any the goal does not need. The cost is measured
on this host: model bytes, and LiteRT latency (p50, 1 thread, builtin kernels, interleaved).
Also the time the default engine takes against the plain converter on 500 calibration samples.

    python benchmarks/mixed_precision.py --goals resnet8=42 mobilenet=35 dscnn=45
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", nargs="+", default=["resnet8=42", "mobilenet=35", "dscnn=45"])
    parser.add_argument("--calibration", type=int, default=100)
    args = parser.parse_args()

    from edgekit.converters.tflite import convert
    from edgekit.examples import load_example
    from edgekit.examples.zoo import splits
    from edgekit.models import load_model
    from edgekit.quantization.search import Goal
    from edgekit.stages import QuantOptions, quantize_float_model
    from edgekit.stages.analysis import mixed_precision_cost
    from edgekit.targets import load_target
    from edgekit.tflite_model import read_tflite

    profile = load_target("raspberry-pi-4")
    print(
        "| model | goal (dB) | all-int8 (dB) | ops in float | reached (dB) | which | bytes "
        "int8 → mixed | LiteRT p50 ms int8 → mixed | search s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    timing = []
    for item in args.goals:
        name, goal = item.split("=")
        example = load_example(name)
        loaded = load_model(example.model_path)
        x = example.calibration.x[: args.calibration]
        float_model = read_tflite(convert(loaded, "float32").data)
        started = time.perf_counter()
        _, converted = quantize_float_model(
            float_model, profile, x, QuantOptions(goal=Goal(float(goal)))
        )
        seconds = time.perf_counter() - started
        mixed = converted.quantization.search["mixed"]
        kept = mixed["kept_in_float"]
        cost = (
            mixed_precision_cost(converted.quantization.all_int8, converted.data, profile)
            if kept
            else None
        )
        which = ", ".join(k.split(";")[0].split("/")[-2] if "/" in k else k for k in kept) or "-"
        size = f"{cost['model_bytes'][0]:,} → {cost['model_bytes'][1]:,}" if cost else "-"
        p50 = f"{cost['litert_p50_ms'][0]:.3f} → {cost['litert_p50_ms'][1]:.3f}" if cost else "-"
        print(
            f"| {name} | {goal} | {mixed['start_sqnr_db']:.2f} | {len(kept)} | "
            f"{mixed['final_sqnr_db']:.2f} | {which} | {size} | {p50} | {seconds:.1f} |",
            flush=True,
        )
        # Calibration time on 500 samples: the converter against the default engine.
        train, calib, _ = splits(name)
        x500 = np.concatenate([calib.x, train.x])[:500]
        started = time.perf_counter()
        convert(loaded, "int8", io_dtype="int8", calibration=x500)
        converter_s = time.perf_counter() - started
        started = time.perf_counter()
        reference = read_tflite(convert(loaded, "float32").data)
        quantize_float_model(reference, profile, x500, QuantOptions())
        engine_s = time.perf_counter() - started
        timing.append((name, converter_s, engine_s))
    print(
        "\n| model | converter int8, 500 samples (s) | edgekit engine incl. float conversion "
        "(s) | ratio |"
    )
    print("|---|---|---|---|")
    for name, a, b in timing:
        print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
