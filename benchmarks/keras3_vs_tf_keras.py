"""Keras 3 path against the tf_keras path (issue 16, point 7), on the same data and epochs.

Both paths start from the same trained float weights: the built-in zoo's model, built by each
Keras with its cached weights (`load_example(name).model(keras)`). Then, for each Keras:

- **prune**: magnitude pruning to 80 % (polynomial decay), fine-tuned, stripped, deployed to
  raspberry-pi-4: zeros kept in the int8 file, gzip size, int8 accuracy;
- **qat**: QAT for cortex-m4, deployed without calibration: float (simulated) and int8
  accuracy, and the share of outputs within one int8 step of the QAT model's simulated output;
- **distill**: a half-width student trained from scratch and distilled from the reference (soft
  targets, T = 4), same epochs: the gain in float accuracy;
- **channels**: channel pruning (L1) to 50 % of the MACs, fine-tuned, deployed: int8 accuracy;
- seconds per epoch of each fit (wall time; both paths run in this one process, interleaved).

    python benchmarks/keras3_vs_tf_keras.py --models resnet8 mobilenet --epochs 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any

import numpy as np

PATHS = ("keras3", "tf_keras")
TECHNIQUES = ("prune", "qat", "distill", "channels")


def keras_module(path: str) -> Any:
    if path == "keras3":
        import keras

        return keras
    from edgekit._tf import tf_keras

    return tf_keras()


def twin(name: str, path: str) -> Any:
    """The trained zoo model `name` as a fresh model of Keras `path`."""
    from edgekit.examples import load_example

    return load_example(name).model(keras_module(path))


class Run:
    """One model's data, fits (timed) and deploys."""

    def __init__(self, name: str, epochs: int, out: str) -> None:
        from edgekit.examples.zoo import splits

        self.name, self.epochs, self.out = name, epochs, out
        self.train, self.calib, self.val = splits(name)
        self.seconds: dict[str, list[float]] = {path: [] for path in PATHS}

    def fit(self, model: Any, path: str, lr: float = 1e-3, callbacks: tuple = ()) -> Any:
        keras = keras_module(path)
        keras.utils.set_random_seed(0)
        model.compile(
            optimizer=keras.optimizers.Adam(lr),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        start = time.perf_counter()
        model.fit(
            self.train.x,
            self.train.y,
            epochs=self.epochs,
            batch_size=64,
            verbose=0,
            callbacks=list(callbacks),
        )
        self.seconds[path].append((time.perf_counter() - start) / self.epochs)
        return model

    def accuracy(self, model: Any) -> float:
        return float(np.mean(model.predict(self.val.x, verbose=0).argmax(-1) == self.val.y))

    def deploy(self, model: Any, target: str, calibrate: bool = True) -> dict:
        import edgekit

        bundle = edgekit.deploy(
            model,
            target,
            out=self.out,
            force=True,
            analysis=False,
            calibration=self.calib.x if calibrate else None,
            validation=(self.val.x, self.val.y),
        )
        metrics = dict(bundle.report.metrics.__dict__)
        metrics["verification"] = bundle.report.verification
        return metrics


def prune(run: Run, path: str) -> dict:
    from edgekit import keras as ek

    steps = int(np.ceil(len(run.train.x) / 64))
    schedule = ek.pruning_schedule(0.8, epochs=run.epochs, steps_per_epoch=steps)
    pruned = ek.prune_low_magnitude(twin(run.name, path), schedule)
    run.fit(pruned, path, callbacks=(ek.callbacks.UpdatePruningStep(),))
    metrics = run.deploy(ek.strip_pruning(pruned), "raspberry-pi-4")
    return {
        "zeros": metrics["weight_sparsity"],
        "gzip_bytes": metrics["model_gzip_bytes"],
        "int8_accuracy": metrics["deployed_accuracy"],
    }


def qat(run: Run, path: str) -> dict:
    from edgekit import keras as ek

    model = ek.quantize_model(twin(run.name, path), target="cortex-m4")
    run.fit(model, path, lr=1e-4)
    metrics = run.deploy(model, "cortex-m4", calibrate=False)
    found = metrics["qat_agreement"]
    return {
        "simulated_accuracy": run.accuracy(model),
        "within_one_step": found,
        "int8_accuracy": metrics["deployed_accuracy"],
        "int8_samples": metrics["verified_samples"],
    }


def distill(run: Run, path: str) -> dict:
    from edgekit import keras as ek
    from edgekit.examples import zoo

    keras = keras_module(path)

    def student() -> Any:
        keras.utils.set_random_seed(1)
        if run.name == "resnet8":
            return zoo.resnet8(keras, widths=(8, 16, 32))
        return zoo.mobilenet(keras, alpha=0.125)

    scratch = run.accuracy(run.fit(student(), path, lr=3e-3))
    teacher = twin(run.name, path)
    taught = student()
    distiller = ek.Distiller(
        taught, teacher, losses=[ek.SoftTargetLoss(temperature=4.0)], alpha=0.1
    )
    run.fit(distiller, path, lr=3e-3)
    distilled = run.accuracy(taught)
    return {"scratch": scratch, "distilled": distilled, "gain": distilled - scratch}


def channels(run: Run, path: str) -> dict:
    from edgekit import keras as ek

    model = twin(run.name, path)
    smaller = ek.prune_channels(model, target_macs=ek.keras_macs(model) // 2, criterion="l1")
    kind = type(smaller).__module__.split(".")[0]
    run.fit(smaller, path)
    metrics = run.deploy(smaller, "raspberry-pi-4")
    return {
        "macs": ek.keras_macs(smaller) / ek.keras_macs(model),
        "returned": kind,
        "int8_accuracy": metrics["deployed_accuracy"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet8", "mobilenet"])
    parser.add_argument("--techniques", nargs="+", default=list(TECHNIQUES), choices=TECHNIQUES)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json", default=None, help="also write raw results here")
    args = parser.parse_args()

    out = tempfile.mkdtemp()
    results: dict = {}
    for name in args.models:
        run = Run(name, args.epochs, out)
        base = run.accuracy(twin(name, "keras3"))
        results[name] = {"float_accuracy": base}
        for technique in args.techniques:
            for path in PATHS:  # interleaved: both Kerases see the same machine load
                row = globals()[technique](run, path)
                results[name][f"{technique}/{path}"] = row
                print(name, technique, path, json.dumps(row), flush=True)
        results[name]["seconds_per_epoch"] = {
            p: float(np.median(s)) for p, s in run.seconds.items()
        }
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
