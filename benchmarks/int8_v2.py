"""int8 v2 side by side: learned rounding, block ranges, equalisation and int16 where int8 runs
out, against the plain converter, ai-edge-quantizer and Sony MCT, in one run.

Models: edgekit's reference ResNet-8, MobileNet (α 0.25, ReLU6) and DS-CNN (trained offline,
:mod:`edgekit.examples.zoo`), and a `keras.applications` MobileNetV2 α 0.35 (32×32, trained
here for a few epochs on the same photo patches; nothing is downloaded). Every int8 model is
a real `.tflite` scored in LiteRT's reference kernels (what TFLM computes) against the float
model on 500 validation samples: top-1 agreement, output and logits SQNR, accuracy, and the
seconds it took to make from the same 500 calibration samples. For the int8/int16 models:
bytes, the TFLM arena, and instructions per inference under QEMU (cortex-m4 firmware) when
--tflm-dir is given.

Peers run in their own venvs (`--aeq-python`, `--mct-python`; see benchmarks/aeq_peer.py and
benchmarks/mct_peer.py); a peer that is not given is left out and the table says so.

    python benchmarks/int8_v2.py --models resnet8 mobilenet dscnn mobilenetv2 \\
        --aeq-python /tmp/aeqenv/bin/python --mct-python /tmp/mctenv/bin/python \\
        --tflm-dir ../shared/tflm/cortex-m --json int8_v2.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def reference_model(name: str, work: Path):
    """(model path, Keras builder name for MCT, 500 calibration inputs, validation x, y)."""
    from edgekit.examples import load_example
    from edgekit.examples.datasets import keyword_spectrograms, photo_patches

    if name == "mobilenetv2":
        return mobilenetv2(work)
    example = load_example(name)
    calibration = (keyword_spectrograms if name == "dscnn" else photo_patches)(500, seed=2)[0]
    v = example.validation
    return example.model_path, calibration.astype(np.float32), v.x, v.y


def mobilenetv2(work: Path):
    """keras.applications MobileNetV2 α 0.35 at 32×32, 8 classes, trained 10 epochs.

    keras.applications builds its batch norms with momentum 0.999: a few hundred steps leave
    the moving statistics near their start and the model at chance in inference (13 % of 8
    classes, measured). 0.9 lets them follow the few steps there are."""
    import keras

    from edgekit.examples.datasets import photo_patches

    path = work / "mobilenetv2_035.keras"
    x, y = photo_patches(6000, seed=0)
    if not path.exists():
        model = keras.applications.MobileNetV2(
            input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=8
        )
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, y, epochs=10, batch_size=64, verbose=0)
        model.save(path)
    calibration = photo_patches(500, seed=2)[0].astype(np.float32)
    vx, vy = photo_patches(500, seed=1)
    return path, calibration, vx, vy


def score(float_model, int8_data: bytes, x, y) -> dict:
    """benchmarks/quantization.py's scores, named as the JSON here names them."""
    from quantization import score as scores  # this folder is on the path when run

    got = scores(float_model, int8_data, x, y)
    got["output_sqnr_db"], got["logits_sqnr_db"] = got.pop("output_sqnr"), got.pop("logits_sqnr")
    return got


def costs(data: bytes, tflm_dir: str | None, work: Path) -> dict:
    """Bytes, the host TFLM arena and (with a TFLM tree) cortex-m4 firmware under QEMU."""
    from edgekit.runtimes.tflm import measure_arena
    from edgekit.stages.firmware import build_and_run
    from edgekit.targets import load_target
    from edgekit.tflite_model import read_tflite

    out = {"bytes": len(data), "arena": measure_arena(read_tflite(data)).tensor_arena_bytes}
    if tflm_dir:
        path = work / f"fw-{abs(hash(data))}.tflite"
        path.write_bytes(data)
        firmware = build_and_run(load_target("cortex-m4"), path, None, tflm_dir)
        out["instructions"] = firmware.figures.get("instructions_per_inference")
        out["firmware"] = firmware.detail
    return out


def peer(command: list[str]) -> float:
    """Run a peer in its own venv (edgekit's repo on its path for the zoo's builders)."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600, env=env)
    if done.returncode != 0:
        raise RuntimeError((done.stderr or done.stdout).strip().splitlines()[-1][:160])
    return float(done.stdout.strip().splitlines()[-1])


def make_rows(name: str, args, work: Path, worker, m4):
    """(rows, float model, validation x, y, the --optimize search) of one model."""
    from edgekit.converters.tflite import convert
    from edgekit.models import load_model
    from edgekit.quantization.engine import collect_statistics, quantize_int8
    from edgekit.quantization.equalize import equalize
    from edgekit.quantization.search import Goal
    from edgekit.stages.convert import QuantOptions, quantize_float_model
    from edgekit.tflite_edit import average_pool_to_mean
    from edgekit.tflite_model import read_tflite

    path, x, vx, vy = reference_model(name, work)
    loaded = load_model(path)
    float_data = convert(loaded, "float32").data
    float_model = read_tflite(float_data)
    rewritten, _ = average_pool_to_mean(float_data)
    rows: list[tuple[str, bytes | None, float, str]] = []

    def timed(label: str, make, note: str = "") -> bytes | None:
        print(f"  {name}: {label}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            data = make()
        except Exception as exc:  # a peer's failure is a finding, not the end of the run
            rows.append((label, None, 0.0, f"failed: {type(exc).__name__}: {exc}"[:160]))
            return None
        rows.append((label, data, time.perf_counter() - started, note))
        return data

    timed("TFLite converter (MinMax)", lambda: convert(loaded, "int8", calibration=x).data)
    statistics = collect_statistics(read_tflite(rewritten), x)

    def engine(data=rewritten, stats=statistics, **kw) -> bytes:
        return quantize_int8(data, x, worker=worker, statistics=stats, **kw).data

    before = timed("edgekit before (minmax, MEAN rewrite, bias correction)", engine)
    timed("edgekit + learned rounding", lambda: engine(rounding="learned"))
    timed("edgekit block ranges", lambda: engine(method="block"))
    equalized = equalize(rewritten, x).data
    timed("edgekit + equalisation", lambda: engine(equalized, None))
    optimized = {}

    def optimize() -> bytes:
        _, converted = quantize_float_model(float_model, m4, x, QuantOptions(optimize=True), worker)
        optimized.update(converted.quantization.search or {})
        return converted.data

    timed("edgekit after: --optimize accuracy", optimize)
    timed("per-tensor: edgekit before", lambda: engine(per_channel=False))
    timed("per-tensor: + equalisation", lambda: engine(equalized, None, per_channel=False))
    timed(
        "per-tensor: + equalisation + learned rounding",
        lambda: engine(equalized, None, per_channel=False, rounding="learned"),
    )
    base = score(float_model, before, vx, vy)["logits_sqnr_db"] if before else 0.0
    goal = round(base + args.goal_db, 1)
    mixed_names: list[str] = []

    def mixed() -> bytes:
        options = QuantOptions(goal=Goal(min_sqnr_db=goal), mixed_with="int16")
        _, converted = quantize_float_model(float_model, m4, x, options, worker)
        mixed_names.extend(converted.quantization.int16_tensors)
        return converted.data

    timed(f"edgekit int8 + int16 where needed (goal {goal} dB)", mixed)
    if args.aeq_python:
        calib = work / f"{name}_cal.npy"
        np.save(calib, x)
        fpath = work / f"{name}_float.tflite"
        fpath.write_bytes(float_data)
        regex = "|".join(map(re.escape, mixed_names))
        for label, extra in (
            ("ai-edge-quantizer int8 (default: moving average)", ["--recipe", "int8"]),
            (
                "ai-edge-quantizer int8 (global min/max)",
                ["--recipe", "int8", "--global-min-max"],
            ),
            (
                "ai-edge-quantizer 16x8 (whole model, min/max)",
                ["--recipe", "a16w8", "--global-min-max"],
            ),
            (
                "ai-edge-quantizer int8 + 16x8 on edgekit's int16 tensors (per-op, min/max)",
                ["--recipe", "mixed", "--global-min-max", "--a16-regex", regex]
                if mixed_names
                else None,
            ),
        ):
            if extra is None:
                continue
            out = work / f"{name}_aeq_{len(rows)}.tflite"
            command = [args.aeq_python, str(HERE / "aeq_peer.py"), str(fpath), str(calib)]

            def run_aeq(command=command + [str(out)] + extra, out=out) -> bytes:
                peer(command)
                return out.read_bytes()

            timed(label, run_aeq)
    else:
        rows.append(("ai-edge-quantizer", None, 0.0, "not run (no --aeq-python)"))
    if args.mct_python and name != "mobilenetv2":
        weights = work / f"{name}_weights.npz"
        import keras

        np.savez(weights, *keras.models.load_model(path).get_weights())
        calib = work / f"{name}_cal.npy"
        np.save(calib, x)
        for label, flag in (("Sony MCT 2.6.1 PTQ", []), ("Sony MCT 2.6.1 GPTQ", ["--gptq"])):
            if flag and args.skip_gptq:
                rows.append((label, None, 0.0, "not run (--skip-gptq)"))
                continue
            out = work / f"{name}_mct{len(rows)}.tflite"
            command = [args.mct_python, str(HERE / "mct_peer.py"), name, str(weights)]
            command += [str(calib), str(out), *flag]

            def run_mct(command=command, out=out) -> bytes:
                peer(command)
                return out.read_bytes()

            timed(label, run_mct, "own venv, TF 2.15")
    elif args.mct_python:
        rows.append(("Sony MCT", None, 0.0, "not run: its Keras 2.15 builder is zoo-only"))
    return rows, float_model, vx, vy, optimized


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["resnet8", "mobilenet", "dscnn"])
    parser.add_argument("--aeq-python", default=None)
    parser.add_argument("--mct-python", default=None)
    parser.add_argument("--tflm-dir", default=None)
    parser.add_argument("--goal-db", type=float, default=3.0, help="int16 goal: default + DB")
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--skip-gptq", action="store_true", help="leave out MCT's GPTQ (about 5 min a model)"
    )
    args = parser.parse_args()

    from edgekit.models import conversion_worker
    from edgekit.targets import load_target

    work = Path(tempfile.mkdtemp(prefix="int8v2-"))
    worker = conversion_worker()
    m4 = load_target("cortex-m4")
    results = []
    print("| model | quantizer | top-1 agreement | output SQNR | logits SQNR | accuracy | s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.models:
        rows, float_model, vx, vy, optimized = make_rows(name, args, work, worker, m4)
        for label, data, seconds, note in rows:
            row = {"model": name, "quantizer": label, "seconds": seconds, "note": note}
            if data is None:
                print(f"| {name} | {label} | {note} | | | | |", flush=True)
                results.append(row)
                continue
            row.update(score(float_model, data, vx, vy))
            if "int16" in label or "16x8" in label or label.startswith("edgekit before"):
                row.update(costs(data, args.tflm_dir, work))
            results.append(row)
            out = "identical" if row["output_sqnr_db"] is None else f"{row['output_sqnr_db']:.2f}"
            logits = row["logits_sqnr_db"]
            logits = "identical" if logits is None else f"{logits:.2f}"
            extra = "".join(
                f", {k} {row[k]:,}" for k in ("bytes", "arena", "instructions") if row.get(k)
            )
            print(
                f"| {name} | {label}{extra} | {100 * row['agreement']:.1f} % | {out} dB | "
                f"{logits} dB | {100 * row['accuracy']:.1f} % "
                f"(float {100 * row['float_accuracy']:.1f} %) | {seconds:.1f} |",
                flush=True,
            )
        if optimized.get("candidates"):
            chosen = next(c["label"] for c in optimized["candidates"] if c.get("chosen"))
            print(f"<!-- {name}: --optimize accuracy chose {chosen} -->", flush=True)
            results.append({"model": name, "optimize_chose": chosen})
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    sys.exit(0)


if __name__ == "__main__":
    main()
