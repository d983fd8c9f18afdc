"""Cortex-M firmware under QEMU: reference vs CMSIS-NN kernels, 32-bit arena, flash/RAM, builds.

For each net (the digits example and the residual ResNet-8) deployed to cortex-m4 and
cortex-m7, `edgekit bench BUNDLE --device qemu` is run with two TFLM trees: the CMSIS-NN tree
(`tflm/cortex-m`) and the reference-kernel tree (`tflm/host`, cross-compiled). It prints
instructions per inference (and the reference/CMSIS-NN ratio), the smallest arena that runs on
the 32-bit CPU against the 64-bit host figure, flash and RAM from the ELF with the stack
high-water mark, and the TFLM library build time cold (first use of a (tree, CPU) pair in a
fresh cache) and cached (every later bench).

    python benchmarks/qemu_firmware.py --shared ../shared --json /tmp/qemu.json

Needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm. A fresh cache is used
(a temporary EDGEKIT_CACHE_DIR unless --cache is given), so four TFLM libraries are built
cold: about 20 minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    parser.add_argument("--nets", nargs="+", default=["digits", "resnet8"])
    parser.add_argument("--targets", nargs="+", default=["cortex-m4", "cortex-m7"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", default=None, help="EDGEKIT_CACHE_DIR (default: a fresh one)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    os.environ["EDGEKIT_CACHE_DIR"] = args.cache or tempfile.mkdtemp(prefix="edgekit-qemu-")
    import edgekit
    from edgekit.bench.runner import bench

    trees = {
        "cmsis-nn": Path(args.shared, "tflm", "cortex-m"),
        "reference": Path(args.shared, "tflm", "host"),
    }
    work = Path(tempfile.mkdtemp(prefix="qemu-bench-"))
    rows = []
    for target in args.targets:
        for net in args.nets:
            print(f"deploying {net} to {target}", flush=True)
            bundle = edgekit.deploy(None, target, example=net, out=work / target)
            for kernels, tree in trees.items():
                start = time.monotonic()
                result = bench(
                    bundle.path,
                    device="qemu",
                    tflm_dir=tree,
                    runs=args.runs,
                    warmup=1,
                    record=False,
                    on_progress=lambda m: None,
                )
                wall = time.monotonic() - start
                m = result.metrics
                row = {
                    "net": net,
                    "target": target,
                    "kernels": kernels,
                    "ok": result.ok,
                    "error": result.error,
                    "board": result.device_info.get("board"),
                    "instructions": m["instructions"]["per_inference"],
                    "arena_32bit": m["arena_bytes"],
                    "arena_host": m["arena_host_bytes"],
                    "text": m["elf"]["text"],
                    "data": m["elf"]["data"],
                    "bss": m["elf"]["bss"],
                    "flash": m["flash_bytes"],
                    "ram": m["ram_bytes"],
                    "stack": m["stack_bytes"],
                    "library_s": m["build_seconds"]["tflm_library"],
                    "library_cached": m["build_seconds"]["library_cached"],
                    "firmware_s": m["build_seconds"]["application"],
                    "bench_wall_s": wall,
                    "crc": m["output_digest"],
                    "host_crc": m["host_output_digest"],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    print()
    print(
        "| net | target | kernels | instructions / inference | ref ÷ CMSIS-NN | arena 32-bit "
        "| arena host (64-bit) | flash (text+data) | RAM (data+bss+stack) | stack | CRC = host |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        cmsis = next(
            r
            for r in rows
            if r["net"] == row["net"]
            and r["target"] == row["target"]
            and r["kernels"] == "cmsis-nn"
        )
        ratio = row["instructions"] / cmsis["instructions"]
        print(
            f"| {row['net']} | {row['target']} ({row['board']}) | {row['kernels']} | "
            f"{row['instructions']:,} | {ratio:.1f}x | {row['arena_32bit']:,} | "
            f"{row['arena_host']:,} ({row['arena_host'] / row['arena_32bit'] - 1:+.1%}) | "
            f"{row['flash']:,} | {row['ram']:,} | {row['stack']:,} | "
            f"{'yes' if row['crc'] == row['host_crc'] else 'NO'} |"
        )
    print()
    print("| target | kernels | net | TFLM library | firmware (2 links) | whole bench |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        library = "cached" if row["library_cached"] else f"{row['library_s']:.0f} s (cold)"
        print(
            f"| {row['target']} | {row['kernels']} | {row['net']} | {library} | "
            f"{row['firmware_s']:.1f} s | {row['bench_wall_s']:.0f} s |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
