"""Compression on the built-in digits example, 3 seeds: pruning, QAT and distillation.

Every accuracy is measured on the 500 validation digits with the deployed int8 model in LiteRT
(edgekit.deploy to cortex-m4), except the float baselines.

    python benchmarks/compression.py --seeds 0 1 2

Goals (issue 3): pruning to 80 % within 1.5 points of float with gzipped int8 <= 0.45x the
dense int8; QAT int8 >= PTQ int8 and within 0.5 points of float; a student with <= 1/4 of the
teacher's parameters where distillation beats training from scratch on the mean.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np

EPOCHS_BASE = 20
EPOCHS_PRUNE = 10
EPOCHS_QAT = 3
EPOCHS_STUDENT = 15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", default=None, help="also write raw results here")
    args = parser.parse_args()

    import edgekit
    from edgekit import keras as ek
    from edgekit._tf import tf_keras
    from edgekit.examples.digits import build_model, digits_splits

    keras = tf_keras()
    train, calib, val = digits_splits()
    out = tempfile.mkdtemp()
    steps = int(np.ceil(len(train.x) / 32))

    def deploy(model, **kw):
        return edgekit.deploy(
            model, "cortex-m4", validation=(val.x, val.y), out=out, force=True, **kw
        ).report.metrics

    def fit(model, epochs, lr=3e-3, callbacks=()):
        model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy", ["accuracy"])
        model.fit(
            train.x, train.y, epochs=epochs, batch_size=32, verbose=0, callbacks=list(callbacks)
        )
        return model

    def float_accuracy(model):
        return float(np.mean(model.predict(val.x, verbose=0).argmax(1) == val.y))

    def student_model():
        return keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Conv2D(16, 3, padding="same", name="s_conv1"),
                keras.layers.ReLU(),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(16, 3, padding="same", name="s_conv2"),
                keras.layers.ReLU(),
                keras.layers.Flatten(),
                keras.layers.Dense(32, activation="relu"),
                keras.layers.Dense(10),
                keras.layers.Softmax(),
            ],
            name="student",
        )

    rows = []
    for seed in args.seeds:
        started = time.perf_counter()
        keras.utils.set_random_seed(seed)
        base = fit(build_model(keras), EPOCHS_BASE)
        base_path = f"{out}/base-{seed}.keras"
        base.save(base_path)
        row = {"seed": seed, "float": float_accuracy(base)}
        ptq = deploy(base, calibration=calib.x)
        row["ptq_int8"] = ptq["deployed_accuracy"]
        row["dense_gzip"] = ptq["model_gzip_bytes"]

        keras.utils.set_random_seed(seed)
        schedule = ek.pruning_schedule(0.8, epochs=EPOCHS_PRUNE, steps_per_epoch=steps)
        pruned = ek.prune_low_magnitude(keras.models.load_model(base_path), schedule)
        fit(pruned, EPOCHS_PRUNE, lr=1e-3, callbacks=[ek.callbacks.UpdatePruningStep()])
        pm = deploy(ek.strip_pruning(pruned), calibration=calib.x)
        row.update(
            pruned_int8=pm["deployed_accuracy"],
            pruned_gzip=pm["model_gzip_bytes"],
            pruned_sparsity=pm["weight_sparsity"],
        )

        keras.utils.set_random_seed(seed)
        qat = ek.quantize_model(keras.models.load_model(base_path), target="cortex-m4")
        fit(qat, EPOCHS_QAT, lr=1e-4)
        row["qat_int8"] = deploy(qat)["deployed_accuracy"]

        teacher = keras.models.load_model(base_path)
        conv = [la.name for la in teacher.layers if type(la).__name__ == "Conv2D"]
        variants = {
            "scratch": None,
            "soft": lambda c=conv: [ek.SoftTargetLoss(4.0)],
            "soft+at": lambda c=conv: [
                ek.SoftTargetLoss(4.0),
                ek.AttentionTransferLoss([("s_conv1", c[0])], weight=10.0),
            ],
            "soft+at+fm": lambda c=conv: [
                ek.SoftTargetLoss(4.0),
                ek.AttentionTransferLoss([("s_conv1", c[0])], weight=10.0),
                ek.FeatureMatchingLoss([("s_conv1", c[0])], weight=0.1),
            ],
        }
        for name, losses in variants.items():
            keras.utils.set_random_seed(seed)
            student = student_model()
            if losses is None:
                trained = fit(student, EPOCHS_STUDENT)
            else:
                distiller = ek.Distiller(student, teacher, losses(), alpha=0.3)
                fit(distiller, EPOCHS_STUDENT)
                trained = distiller.student
            row[f"student_{name}"] = deploy(trained, calibration=calib.x)["deployed_accuracy"]
        row["student_params"] = student_model().count_params()
        row["teacher_params"] = teacher.count_params()
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
        print(json.dumps(row), flush=True)

    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)

    def stat(key, scale=100.0):
        values = [scale * r[key] for r in rows]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.2f} ± {std:.2f}"

    print(f"\n{len(rows)} seeds: {', '.join(str(r['seed']) for r in rows)}\n")
    print("| figure | mean ± std |")
    print("|---|---|")
    for key, label in (
        ("float", "float accuracy (%)"),
        ("ptq_int8", "PTQ int8 accuracy (%)"),
        ("pruned_int8", "pruned 80 % int8 accuracy (%)"),
        ("pruned_sparsity", "pruned int8 weight sparsity (%)"),
        ("qat_int8", "QAT int8 accuracy (%)"),
        ("student_scratch", "student from scratch, int8 (%)"),
        ("student_soft", "student + soft targets, int8 (%)"),
        ("student_soft+at", "student + soft + attention transfer, int8 (%)"),
        ("student_soft+at+fm", "student + soft + AT + feature matching, int8 (%)"),
    ):
        print(f"| {label} | {stat(key)} |")
    ratio = [r["pruned_gzip"] / r["dense_gzip"] for r in rows]
    print(f"| gzipped pruned int8 / gzipped dense int8 | {statistics.mean(ratio):.3f} |")
    student, teacher = rows[0]["student_params"], rows[0]["teacher_params"]
    print(f"| student / teacher parameters | {student:,} / {teacher:,} = {student / teacher:.3f} |")


if __name__ == "__main__":
    main()
