"""Google's ai-edge-quantizer as a peer: static int8, 16x8, or int8 with chosen ops in 16x8.

It pins its own LiteRT, so it runs in its own venv (a comparator only; edgekit does not
import it):

    python3 -m venv /tmp/aeqenv && /tmp/aeqenv/bin/pip install ai-edge-quantizer
    /tmp/aeqenv/bin/python benchmarks/aeq_peer.py float.tflite calib.npy out.tflite \\
        --recipe int8|a16w8|mixed [--a16-regex REGEX] [--global-min-max]

`mixed` is its per-op recipe: int8 everywhere, and 16-bit activations (int8 weights) for the
ops whose output tensor name matches REGEX. Its calibration keeps a moving average of each
range unless --global-min-max swaps in its min/max update. Prints the seconds it took.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("float_model")
    parser.add_argument("calibration")
    parser.add_argument("out")
    parser.add_argument("--recipe", choices=["int8", "a16w8", "mixed"], default="int8")
    parser.add_argument("--a16-regex", default=None)
    parser.add_argument("--global-min-max", action="store_true")
    args = parser.parse_args()

    from ai_edge_quantizer import algorithm_manager, quantizer, recipe
    from ai_edge_quantizer.utils import qsv_utils

    started = time.perf_counter()
    data = open(args.float_model, "rb").read()
    if args.recipe == "int8":
        chosen = recipe.static_wi8_ai8()
    elif args.recipe == "a16w8":
        chosen = recipe.static_wi8_ai16()
    else:
        wide = copy.deepcopy(recipe.static_wi8_ai16()[0])
        wide["regex"] = args.a16_regex
        chosen = recipe.static_wi8_ai8() + [wide]
    qt = quantizer.Quantizer(data)
    qt.load_quantization_recipe(chosen)
    registry = algorithm_manager._alg_manager_instance._algorithm_registry
    if args.global_min_max:
        for info in registry.values():
            for op in info.quantized_ops.values():
                if op.update_qsv_func is qsv_utils.moving_average_update:
                    op.update_qsv_func = qsv_utils.min_max_update
    x = np.load(args.calibration).astype(np.float32)
    name = _input_name(data)
    calibration = qt.calibrate({"serving_default": [{name: s[None]} for s in x]})
    result = qt.quantize(calibration)
    open(args.out, "wb").write(bytes(result.quantized_model))
    print(f"{time.perf_counter() - started:.2f}")


def _input_name(data: bytes) -> str:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=data).get_signature_runner("serving_default")
    return next(iter(runner.get_input_details()))


if __name__ == "__main__":
    main()
