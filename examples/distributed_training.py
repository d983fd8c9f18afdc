"""Prune, QAT or distill the digits model under a tf.distribute strategy (Keras 3).

    # one process, two logical CPU devices
    python examples/distributed_training.py --technique prune --strategy mirrored --out r.json
    # one of N workers; TF_CONFIG names the cluster and this worker's index
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                "task": {"type": "worker", "index": 0}}' \\
        python examples/distributed_training.py --technique prune --strategy multiworker \\
        --keras tf_keras

`--keras tf_keras` runs the same with tf_keras models (tfmot's wrappers). Worker 0 (the
chief) writes the result JSON: final sparsity, validation accuracy and the wall
time of each epoch. See docs/guide/distributed.md for running on a real cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

TECHNIQUES = ("prune", "qat", "distill")
STRATEGIES = ("none", "mirrored", "multiworker")


def _strategy(name: str):
    from edgekit.keras import tensorflow

    tf = tensorflow()
    if name == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        config = tf.config.LogicalDeviceConfiguration
        tf.config.set_logical_device_configuration(cpu, [config(), config()])
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _train(technique, strategy, args, keras, ek, data):
    from edgekit.examples import load_example
    from edgekit.examples.digits import build_model

    train, val = data
    batch = 32
    steps = int(np.ceil(len(train.x) / batch))
    keras.utils.set_random_seed(args.seed)
    callbacks = []
    with strategy.scope():
        if technique == "prune":
            schedule = ek.pruning_schedule(args.sparsity, epochs=args.epochs, steps_per_epoch=steps)
            model = ek.prune_low_magnitude(build_model(keras), schedule)
            callbacks.append(ek.callbacks.UpdatePruningStep())
        elif technique == "qat":
            model = ek.quantize_model(build_model(keras), target="cortex-m4")
        else:
            teacher = load_example("digits").model(keras)  # the trained example, this Keras
            student = keras.Sequential(
                [
                    keras.Input((8, 8, 1)),
                    keras.layers.Conv2D(8, 3, padding="same", name="s_conv"),
                    keras.layers.ReLU(),
                    keras.layers.Flatten(),
                    keras.layers.Dense(10),
                    keras.layers.Softmax(),
                ],
                name="student",
            )
            model = ek.Distiller(student, teacher, [ek.SoftTargetLoss(4.0)], alpha=0.5)
        model.compile(
            keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
        )

    epoch_seconds: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            epoch_seconds.append(time.perf_counter() - self.started)

    model.fit(
        train.x,
        train.y,
        epochs=args.epochs,
        batch_size=batch,
        verbose=0,
        callbacks=[*callbacks, Timer()],
    )
    trained = getattr(model, "student", model)
    accuracy = model.evaluate(val.x, val.y, verbose=0, return_dict=True)["accuracy"]
    return {
        "epoch_seconds": epoch_seconds,
        "val_accuracy": float(accuracy),
        "sparsity": ek.total_sparsity(trained) if technique == "prune" else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--technique", choices=(*TECHNIQUES, "all"), default="prune")
    parser.add_argument("--strategy", choices=STRATEGIES, default="none")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sparsity", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--keras",
        choices=("3", "tf_keras"),
        default="3",
        help="Keras 3 (import keras, default) or tf_keras models",
    )
    parser.add_argument("--out", default="distributed-result.json")
    args = parser.parse_args()

    if args.keras == "3" and args.strategy == "multiworker":
        print(
            "error: Keras 3's fit does not run under MultiWorkerMirroredStrategy "
            "(keras-team/keras#20585); train tf_keras models across workers: --keras tf_keras",
            file=sys.stderr,
        )
        sys.exit(2)
    strategy = _strategy(args.strategy)  # before any other TensorFlow work
    from edgekit import keras as ek
    from edgekit.examples.digits import digits_splits

    if args.keras == "3":
        import keras
    else:
        from edgekit.keras import tf_keras

        keras = tf_keras()
    train, _, val = digits_splits()
    techniques = TECHNIQUES if args.technique == "all" else (args.technique,)
    result = {
        "strategy": args.strategy,
        "keras": args.keras,
        "replicas": strategy.num_replicas_in_sync,
        "epochs": args.epochs,
        "results": {
            name: _train(name, strategy, args, keras, ek, (train, val)) for name in techniques
        },
    }
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    if task.get("index", 0) == 0:
        with open(args.out, "w") as handle:
            json.dump(result, handle, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
