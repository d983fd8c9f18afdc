"""Channel pruning on a Cortex-M: instructions per inference under QEMU, CMSIS-NN kernels.

The reference ResNet-8 and MobileNet (32x32) are channel-pruned (L2 criterion) to 30/50/70 %
fewer MACs, with counts rounded to the profile's channel tile (cortex-m4: 4) or not at all,
deployed to cortex-m4 with the firmware step (TFLM + CMSIS-NN on QEMU's mps2-an386), and the
instructions per inference compared with the unpruned net's, in one run. Instruction counts
depend on shapes, not on weight values, so no fine-tuning is needed for this table (accuracy
after fine-tuning is in the host benchmark, benchmarks/structured.py).

    python benchmarks/structured_qemu.py --tflm-dir ../shared/tflm/cortex-m
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm-dir", required=True)
    parser.add_argument("--nets", nargs="+", default=["resnet8", "mobilenet"])
    parser.add_argument("--reductions", nargs="+", type=float, default=[0.3, 0.5, 0.7])
    parser.add_argument("--target", default="cortex-m4")
    args = parser.parse_args()
    import edgekit
    from edgekit import keras as ek
    from edgekit.examples import load_example
    from edgekit.keras import tf_keras

    keras = tf_keras()
    work = Path(tempfile.mkdtemp(prefix="structured-qemu-"))
    print(
        "| net | variant | MACs | MACs vs unpruned | instructions / inference | "
        "instructions vs unpruned | flash | 32-bit arena |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for net in args.nets:
        example = load_example(net)
        base = example.model(keras)
        variants = [("unpruned", base)]
        for reduction in args.reductions:
            target = int(ek.keras_macs(base) * (1 - reduction))
            for tile, label in ((None, "no rounding"), (args.target, "tile")):
                model = ek.prune_channels(base, target_macs=target, criterion="l2", target=tile)
                variants.append((f"{reduction:.0%} fewer MACs, {label}", model))
        reference = None
        for index, (label, model) in enumerate(variants):
            bundle = edgekit.deploy(
                model,
                args.target,
                calibration=example.calibration.x,
                validation=(example.validation.x, example.validation.y),
                out=work / f"{net}-{index}",
                tflm_dir=args.tflm_dir,
                analysis=False,
            )
            m = bundle.report.metrics
            if reference is None:
                reference = m
            print(
                f"| {net} | {label} | {m.macs:,} | {m.macs / reference.macs:.2f}× | "
                f"{m.instructions_per_inference:,} | "
                f"{m.instructions_per_inference / reference.instructions_per_inference:.2f}× | "
                f"{m.flash_bytes:,} | {m.tensor_arena_32bit_bytes:,} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
