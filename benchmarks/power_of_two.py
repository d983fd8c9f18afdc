"""Power-of-two weights on the digits CNN against uniform int8: docs/benchmarks.md's table.

Uniform int8 is `edgekit.deploy` of the trained float model (edgekit's engine, the cortex-m4
profile, the example's calibration set). Power-of-two is `quantize_power_of_two` QAT from the
same float model, converted as the TFLite converter writes it and then snapped to exact
0/±2^k int8 (`snap_power_of_two`, what deploy ships). Every row is measured the same way on
the example's validation set: SQNR of the outputs against the float Keras model, top-1
accuracy (LiteRT reference kernels), gzip -9 size and size of the .tflite.

    python benchmarks/power_of_two.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import gzip
import tempfile

import numpy as np


def measure(data: bytes, x: np.ndarray, y: np.ndarray, reference: np.ndarray) -> tuple:
    from edgekit.tflite_model import read_tflite
    from edgekit.verify import run_model, sqnr_db

    out = next(iter(run_model(read_tflite(data), x, "reference").values())).reshape(len(x), -1)
    accuracy = float(np.mean(out.argmax(axis=1) == y))
    return sqnr_db(reference, out), accuracy, len(gzip.compress(data, 9)), len(data)


def host() -> str:
    from edgekit.devices.linux.edgekit_harness import device_info

    info = device_info()
    return f"{info['cpu']}, {info['cores']} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    import edgekit
    from edgekit._tf import tf_keras
    from edgekit.converters.tflite import convert
    from edgekit.examples import load_example
    from edgekit.examples.digits import digits_splits
    from edgekit.keras import quantize_power_of_two
    from edgekit.models import from_keras
    from edgekit.quantization.power_of_two import snap_power_of_two
    from edgekit.report import Role

    keras = tf_keras()
    example = load_example("digits")
    train, calib, val = digits_splits()
    reference = example.model(keras).predict(val.x, verbose=0)
    reference = reference.reshape(len(val.x), -1)
    with tempfile.TemporaryDirectory() as out:
        uniform = edgekit.deploy(
            example.model_path,
            "cortex-m4",
            calibration=calib.x,
            validation=(val.x, val.y),
            out=out,
            analysis=False,
        )
        uniform_bytes = uniform.file(Role.DEPLOYED_MODEL).read_bytes()
    qat = quantize_power_of_two(example.model(keras))
    qat.compile(keras.optimizers.Adam(5e-4), "sparse_categorical_crossentropy", ["accuracy"])
    qat.fit(train.x, train.y, epochs=args.epochs, batch_size=32, verbose=0)
    converted = convert(from_keras(qat), "int8", io_dtype="int8").data
    snapped, count = snap_power_of_two(converted)
    rows = {
        "uniform int8 (PTQ)": uniform_bytes,
        "power-of-two QAT, as converted": converted,
        "power-of-two QAT, snapped to exact 0/±2^k": snapped,
    }
    print(
        f"digits CNN, QAT {args.epochs} epochs, {len(val.x)} validation samples, "
        f"{count} ops snapped; host: {host()}\n"
    )
    print("| digits | SQNR vs float | accuracy | gzip bytes | bytes |")
    print("|---|---|---|---|---|")
    for name, data in rows.items():
        sqnr, accuracy, packed, size = measure(data, val.x, val.y, reference)
        print(f"| {name} | {sqnr:.2f} dB | {100 * accuracy:.1f} % | {packed:,} | {size:,} |")


if __name__ == "__main__":
    main()
