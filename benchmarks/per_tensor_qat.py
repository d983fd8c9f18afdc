"""Per-tensor QAT on the built-in example: why edgekit folds BatchNorm and swaps one transform.

Trains the example with QAT for a per-tensor copy of the cortex-m4 profile three ways and
reports, per conv/dense op of the converted int8 model, the number of weight scales and
whether the op stayed float:

1. tfmot's `Default8BitQuantizeScheme(disable_per_axis=True)` alone;
2. BatchNorm folded first (`fold_batchnorm`), then tfmot's flag;
3. `edgekit.keras.quantize_model(model, target=<per-tensor profile>)` (fold + per_tensor_scheme).

Then deploys (3) to the per-tensor profile and prints the float/LiteRT/TFLM accuracy.

    python benchmarks/per_tensor_qat.py [--epochs 2]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace

OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def describe(qat) -> str:
    from edgekit.converters.tflite import convert
    from edgekit.models import from_keras
    from edgekit.tflite_model import read_tflite

    model = read_tflite(convert(from_keras(qat), "int8", io_dtype="int8", per_channel=False).data)
    cells = []
    for op in model.operators:
        if op.name not in OPS:
            continue
        weights = model.tensors[op.inputs[1]]
        kind = f"{len(weights.quant.scales)} scale(s)" if weights.quant else weights.dtype
        cells.append(f"{op.name} {kind}")
    return "; ".join(cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    import edgekit
    from edgekit import keras as ek
    from edgekit.examples import load_example
    from edgekit.examples.digits import digits_splits
    from edgekit.keras._tfmot import tfmot
    from edgekit.targets import Quantization, load_target

    keras = ek.tf_keras()
    train, _, val = digits_splits()
    path = load_example("digits").model_path
    profile = replace(
        load_target("cortex-m4"),
        name="cortex-m4-per-tensor",
        quantization=Quantization("int8", "int8", per_channel=False),
    )
    qk = tfmot().quantization.keras
    flag_only = qk.default_8bit.Default8BitQuantizeScheme(disable_per_axis=True)

    def fit(model):
        keras.utils.set_random_seed(0)
        model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
        model.fit(train.x, train.y, epochs=args.epochs, batch_size=32, verbose=0)
        return model

    variants = {
        "tfmot disable_per_axis only": lambda m: qk.quantize_apply(
            qk.quantize_annotate_model(m), flag_only
        ),
        "fold BatchNorm + disable_per_axis": lambda m: qk.quantize_apply(
            qk.quantize_annotate_model(ek.fold_batchnorm(m)), flag_only
        ),
        "edgekit quantize_model (fold + per_tensor_scheme)": lambda m: ek.quantize_model(
            m, target=profile
        ),
    }
    print(
        f"QAT {args.epochs} epoch(s); weight scales per op of the int8 model (FLOAT32 = op "
        "left in float)\n"
    )
    last = None
    for name, make in variants.items():
        last = fit(make(keras.models.load_model(path)))
        print(f"- {name}: {describe(last)}")
    with tempfile.TemporaryDirectory() as out:
        bundle = edgekit.deploy(last, profile, validation=(val.x, val.y), out=out)
    m = bundle.report.metrics
    print(
        f"\ndeploy to {profile.name}: ok={bundle.ok}; float {100 * m.float_accuracy:.1f} %, "
        f"TFLM {100 * m.deployed_accuracy:.1f} %, "
        f"TFLM vs LiteRT reference kernels max {m.tflm_max_diff_steps} step(s)"
    )


if __name__ == "__main__":
    main()
