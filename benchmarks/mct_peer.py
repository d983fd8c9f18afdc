"""Sony's Model Compression Toolkit as a peer: PTQ to an int8 `.tflite` (a comparator only).

MCT 2.6 needs TensorFlow ≤ 2.15, so it runs in its own venv. Keras 2.15 cannot read a model
file saved by tf_keras 2.21, so the reference model is rebuilt there from edgekit's own builder
(`edgekit.examples.zoo`, plain Keras code) and given the trained weights:

    python3 -m venv /tmp/mctenv
    /tmp/mctenv/bin/pip install "tensorflow==2.15.1" "model-compression-toolkit==2.6.1"
    PYTHONPATH=. /tmp/mctenv/bin/python benchmarks/mct_peer.py \
        resnet8 weights.h5|weights.npz calib.npy out.tflite [--gptq]

`benchmarks/quantization.py --mct-dir DIR` scores `DIR/<model>_mct_int8.tflite` beside the rest.
This file imports no edgekit: it runs under MCT's TensorFlow.
"""

import sys
import time

import numpy as np


def main(name: str, weights: str, calibration: str, out: str, gptq: bool = False) -> None:
    import model_compression_toolkit as mct
    import tensorflow as tf

    from edgekit.examples.zoo import SPECS  # plain Keras builders; no edgekit TensorFlow import

    model = SPECS[name].build(tf.keras)
    if weights.endswith(".npz"):  # get_weights() of the same architecture, in order
        stored = np.load(weights)
        model.set_weights([stored[f"arr_{i}"] for i in range(len(stored.files))])
    else:
        model.load_weights(weights)
    x = np.load(calibration).astype(np.float32)

    def representative():
        for i in range(0, len(x), 10):
            yield [x[i : i + 10]]

    # MCT 2.6.1's "tflite" platform fails its own config checks; its default (imx500) runs.
    tpc = mct.get_target_platform_capabilities()
    if gptq:
        quantized, _ = mct.gptq.keras_gradient_post_training_quantization(
            model,
            representative,
            gptq_config=mct.gptq.get_keras_gptq_config(n_epochs=5),
            target_platform_capabilities=tpc,
        )
    else:
        quantized, _ = mct.ptq.keras_post_training_quantization(
            model, representative, target_platform_capabilities=tpc
        )
    mct.exporter.keras_export_model(
        model=quantized,
        save_model_path=out,
        serialization_format=mct.exporter.KerasExportSerializationFormat.TFLITE,
        quantization_format=mct.exporter.QuantizationFormat.INT8,
    )


if __name__ == "__main__":
    started = time.perf_counter()
    main(*sys.argv[1:5], gptq="--gptq" in sys.argv[5:])
    print(f"{time.perf_counter() - started:.2f}")
