"""Structured compression, measured: accuracy after the same fine-tuning, int8 latency ratios.

For each net (the reference ResNet-8: 16/32/64 channels, residual adds; a MobileNet-v1
α 0.5 at 64×64: depthwise-separable, 16 to 256 channels), both trained on photo patches of
scikit-learn's sample images:

- every criterion × 30/50/70 % fewer MACs (`prune_channels(target_macs=...)`), then BN
  recalibration and the same fine-tuning (`--epochs` over the 6,000 training images,
  distilled from the unpruned net);
- 50 % with the kept counts rounded to this host's tiles (16: LiteRT builtin; 64: XNNPACK);
- unstructured 80 % (tfmot, polynomial schedule over the same fine-tuning) for contrast;
- low-rank (`factorize(budget=0.5)` on the 3×3/1×1 convs and the dense layer);
- the unpruned net with the same fine-tuning, the reference every drop is measured from.

Every model is converted to int8 (edgekit's converter, 200 calibration images) and timed with
edgekit's harness on this host (LiteRT, 1 thread), XNNPACK and builtin kernels, all models
interleaved in each round (median of rounds): ratios come from one run.

    python benchmarks/structured.py --nets resnet8 mobilenet64 --epochs 3 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def load_net(name: str, cache: Path, keras):
    """(model, train, calib, val) for a benchmark net, training it once into `cache`."""
    from edgekit.examples import load_example
    from edgekit.examples.datasets import photo_patches
    from edgekit.examples.zoo import mobilenet, splits

    if name == "resnet8":
        example = load_example("resnet8")
        train, calib, val = splits("resnet8")
        return example.model(keras), train, calib, val
    if name != "mobilenet64":
        raise SystemExit(f"unknown net {name}")
    x, y = photo_patches(6000, size=64, seed=0)
    cx, _ = photo_patches(200, size=64, seed=2)
    vx, vy = photo_patches(500, size=64, seed=1)
    train, calib, val = (x, y), (cx, None), (vx, vy)
    path = cache / "mobilenet64.keras"
    if not path.exists():
        keras.utils.set_random_seed(0)
        model = mobilenet(keras, alpha=0.5, size=64)
        model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", ["accuracy"])
        model.fit(x, y, epochs=12, batch_size=64, verbose=0)
        model.save(path)
    return keras.models.load_model(path), train, calib, val


def as_xy(data):
    return (data.x, data.y) if hasattr(data, "x") else data


def bench_net(net: str, args, cache: Path) -> list[dict]:
    """Every variant of one net: accuracy, int8 accuracy, MACs, latencies (see module doc)."""
    from edgekit import keras as ek
    from edgekit.converters.tflite import convert
    from edgekit.errors import UsageError
    from edgekit.keras import tf_keras
    from edgekit.models import from_keras
    from edgekit.runtimes.timing import host_latencies
    from edgekit.tflite_model import read_tflite
    from edgekit.verify import run_model

    keras = tf_keras()
    started = time.time()
    base, train, calib, val = load_net(net, cache, keras)
    (tx, ty), (cx, _), (vx, vy) = as_xy(train), as_xy(calib), as_xy(val)
    macs = ek.keras_macs(base)

    def finish(model, label, extra=None, callbacks=None):
        """Recalibrate BN, fine-tune (same budget for all), evaluate float and int8."""
        keras.utils.set_random_seed(1)
        ek.recalibrate_batchnorm(model, tx[:1000])
        ek.fine_tune(model, tx, ty, epochs=args.epochs, teacher=base, callbacks=callbacks)
        return model, label, extra or {}

    variants = []
    fresh = keras.models.clone_model(base)
    fresh.set_weights(base.get_weights())
    variants.append(finish(fresh, "unpruned, same fine-tuning", {"kind": "reference"}))
    for reduction in args.reductions:
        for criterion in args.criteria:
            data = (tx[:512], ty[:512]) if criterion in ("taylor", "fisher") else None
            model, report = ek.prune_channels(
                base,
                target_macs=int(macs * (1 - reduction)),
                criterion=criterion,
                data=data,
                return_report=True,
            )
            variants.append(finish(model, criterion, {"kind": "channels", "reduction": reduction}))
    for tile in (16, 64):
        try:
            model = ek.prune_channels(
                base, target_macs=int(macs * 0.5), criterion="l2", round_to=tile
            )
        except UsageError as exc:  # e.g. the first stage is one tile already
            print(f"{net}: 50 % with channels rounded to {tile}: {exc}")
            continue
        variants.append(finish(model, f"l2, rounded to {tile}", {"kind": "tile", "reduction": 0.5}))
    schedule = ek.pruning_schedule(
        0.8, epochs=args.epochs, steps_per_epoch=int(np.ceil(len(tx) / 64))
    )
    pruned = ek.prune_low_magnitude(base, schedule)
    model, label, extra = finish(
        pruned,
        "unstructured 80 %",
        {"kind": "unstructured"},
        callbacks=[ek.callbacks.UpdatePruningStep()],
    )
    variants.append((ek.strip_pruning(model), label, extra))
    model, lowrank = ek.factorize(base, budget=0.5, return_report=True)
    variants.append(
        finish(model, "low-rank, budget 0.5", {"kind": "lowrank", "layers": len(lowrank.layers)})
    )

    rows, blobs = [], []
    for model, label, extra in variants:
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        accuracy = model.evaluate(vx, vy, verbose=0)[1]
        data = convert(from_keras(model), "int8", io_dtype="int8", calibration=cx).data
        outputs = next(iter(run_model(read_tflite(data), vx).values()))
        int8_accuracy = float(np.mean(outputs.reshape(len(vx), -1).argmax(1) == vy))
        blobs.append(data)
        rows.append(
            {
                "label": label,
                **extra,
                "macs": ek.keras_macs(model),
                "params": model.count_params(),
                "accuracy": accuracy,
                "int8_accuracy": int8_accuracy,
            }
        )
    details: list[dict] = []
    for delegate in ("xnnpack", "none"):
        p50 = host_latencies(
            blobs, rounds=args.rounds, runs=100, delegate=delegate, details=details
        )
        for row, value in zip(rows, p50, strict=True):
            row[f"p50_{delegate}"] = value
    reference = rows[0]
    print(
        f"\n### {net}: {macs:,} MACs, {base.count_params():,} parameters "
        f"({details[0]['device']['cpu']}, {time.time() - started:.0f} s)\n"
    )
    print(
        "| variant | MACs removed | MACs | float acc (Δ pt) | int8 acc | XNNPACK p50 ms "
        "(speed-up) | builtin p50 ms (speed-up) |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        removed = 1 - row["macs"] / macs
        delta = 100 * (row["accuracy"] - reference["accuracy"])
        x = reference["p50_xnnpack"] / row["p50_xnnpack"]
        b = reference["p50_none"] / row["p50_none"]
        print(
            f"| {row['label']} | {100 * removed:.0f} % | {row['macs']:,} | "
            f"{100 * row['accuracy']:.1f} % ({delta:+.1f}) | {100 * row['int8_accuracy']:.1f}"
            f" % | {row['p50_xnnpack']:.4f} ({x:.2f}×) | {row['p50_none']:.4f} ({b:.2f}×) |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["resnet8", "mobilenet64"])
    parser.add_argument(
        "--criteria", nargs="+", default=["l1", "l2", "bn_gamma", "fpgm", "taylor", "fisher"]
    )
    parser.add_argument("--reductions", nargs="+", type=float, default=[0.3, 0.5, 0.7])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "edgekit-bench"))
    parser.add_argument("--json", default=None, help="also write every figure here")
    args = parser.parse_args()

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    everything = {net: bench_net(net, args, cache) for net in args.nets}
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1, default=float))


if __name__ == "__main__":
    main()
