"""int8 quality: edgekit's engine by calibration method, against the plain converter and peers.

On edgekit's reference models (trained offline: ResNet-8 and MobileNet on photo patches, DS-CNN
on synthetic keywords), every int8 model is a real `.tflite` scored in LiteRT's reference
kernels (what TFLM computes) against the float model on the 500 validation samples: top-1
agreement, output SQNR, logits SQNR (the softmax's input), accuracy, and the wall time of
making it from the same calibration samples. Peers: the TFLite converter (MinMax), and
ai-edge-quantizer when it is installed (`pip install ai-edge-quantizer`; a comparator only).

    python benchmarks/quantization.py --models resnet8 mobilenet dscnn --calibration 100
"""

from __future__ import annotations

import argparse
import time

import numpy as np

METHODS = ["minmax", "percentile:99.99", "percentile:99.999", "mse", "kl"]


def score(float_model, int8_data, x, y):
    from edgekit.quantization.analysis import _outputs, probe_tensor
    from edgekit.tflite_model import read_tflite
    from edgekit.verify import run_model, sqnr_db

    q = read_tflite(int8_data)
    f = np.concatenate(list(run_model(float_model, x, "reference").values()), axis=-1)
    o = np.concatenate(list(run_model(q, x, "reference").values()), axis=-1)
    f, o = f.reshape(len(x), -1), o.reshape(len(x), -1)
    logit_name = float_model.tensors[probe_tensor(float_model)].name
    fl = _outputs(float_model, x, "reference", logit_name)
    ql = _outputs(q, x, "reference", logit_name)
    return {
        "agreement": float(np.mean(f.argmax(1) == o.argmax(1))),
        "output_sqnr": sqnr_db(f, o),
        "logits_sqnr": sqnr_db(fl, ql),
        "accuracy": float(np.mean(o.argmax(1) == y)),
        "float_accuracy": float(np.mean(f.argmax(1) == y)),
    }


def aeq(float_data: bytes, x: np.ndarray, global_min_max: bool) -> bytes | None:
    """ai-edge-quantizer's static int8 recipe; its calibration keeps a moving average of the
    ranges unless `global_min_max` swaps in its own min/max update."""
    try:
        from ai_edge_quantizer import quantizer, recipe
        from ai_edge_quantizer.utils import qsv_utils
    except ImportError:
        return None
    from edgekit.tflite_model import read_tflite

    qt = quantizer.Quantizer(float_data)
    qt.load_quantization_recipe(recipe.static_wi8_ai8())
    name = read_tflite(float_data).io_name(read_tflite(float_data).inputs[0])
    from ai_edge_quantizer import algorithm_manager

    registry = algorithm_manager._alg_manager_instance._algorithm_registry
    swapped = []
    if global_min_max:  # its registered ops keep a moving average; swap in min/max
        for info in registry.values():
            for op in info.quantized_ops.values():
                if op.update_qsv_func is qsv_utils.moving_average_update:
                    op.update_qsv_func = qsv_utils.min_max_update
                    swapped.append(op)
    try:
        calibration = qt.calibrate({"serving_default": [{name: s[None]} for s in x]})
    finally:
        for op in swapped:
            op.update_qsv_func = qsv_utils.moving_average_update
    return bytes(qt.quantize(calibration).quantized_model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet8", "mobilenet", "dscnn"])
    parser.add_argument("--calibration", type=int, default=100)
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument(
        "--mct-dir",
        default=None,
        help="score DIR/<model>_mct_int8.tflite (made by benchmarks/mct_peer.py)",
    )
    args = parser.parse_args()

    from edgekit.converters.tflite import convert
    from edgekit.examples import load_example
    from edgekit.models import conversion_worker, load_model
    from edgekit.quantization.engine import collect_statistics, quantize_int8
    from edgekit.tflite_edit import average_pool_to_mean
    from edgekit.tflite_model import read_tflite

    print(
        "| model | quantizer | top-1 agreement | output SQNR | logits SQNR | accuracy | seconds |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        example = load_example(name)
        loaded = load_model(example.model_path)
        x = example.calibration.x[: args.calibration]
        vx, vy = example.validation.x, example.validation.y
        started = time.perf_counter()
        float_data = convert(loaded, "float32").data
        float_seconds = time.perf_counter() - started
        float_model = read_tflite(float_data)
        rows = []
        started = time.perf_counter()
        plain = convert(loaded, "int8", io_dtype="int8", calibration=x).data
        rows.append(("TFLite converter (MinMax)", plain, time.perf_counter() - started))
        rewritten, _ = average_pool_to_mean(float_data)
        worker = conversion_worker()
        for method in args.methods:
            started = time.perf_counter()
            stats = collect_statistics(read_tflite(rewritten), x)
            result = quantize_int8(rewritten, x, method=method, worker=worker, statistics=stats)
            seconds = time.perf_counter() - started + float_seconds
            rows.append((f"edgekit {method}", result.data, seconds))
            if method == "minmax":
                for label, data, bc in (
                    ("no rewrite, no bias correction", float_data, False),
                    ("rewrite only", rewritten, False),
                    ("bias correction only", float_data, True),
                ):
                    started = time.perf_counter()
                    ablation = quantize_int8(
                        data, x, method="minmax", worker=worker, bias_correction=bc
                    )
                    rows.append(
                        (
                            f"edgekit minmax, {label}",
                            ablation.data,
                            time.perf_counter() - started + float_seconds,
                        )
                    )
        for global_min_max, label in ((False, "default: moving average"), (True, "global min/max")):
            started = time.perf_counter()
            try:
                data = aeq(float_data, x, global_min_max)
            except Exception as exc:  # a peer's failure is a finding, not a crash here
                print(
                    f"| {name} | ai-edge-quantizer {label} | failed: {type(exc).__name__}: "
                    f"{str(exc)[:80]} | | | | |"
                )
                continue
            if data is not None:
                rows.append(
                    (
                        f"ai-edge-quantizer ({label})",
                        data,
                        time.perf_counter() - started + float_seconds,
                    )
                )
        if args.mct_dir:
            from pathlib import Path

            mct = Path(args.mct_dir) / f"{name}_mct_int8.tflite"
            if mct.exists():
                label = "Sony MCT 2.6.1 PTQ (own venv, TF 2.15)"
                rows.append((label, mct.read_bytes(), float("nan")))
        for label, data, seconds in rows:
            s = score(float_model, data, vx, vy)
            out = "identical" if s["output_sqnr"] is None else f"{s['output_sqnr']:.2f}"
            logits = "identical" if s["logits_sqnr"] is None else f"{s['logits_sqnr']:.2f}"
            print(
                f"| {name} | {label} | {100 * s['agreement']:.1f} % | {out} dB | {logits} dB | "
                f"{100 * s['accuracy']:.1f} % (float {100 * s['float_accuracy']:.1f} %) | "
                f"{seconds:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
