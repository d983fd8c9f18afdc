"""The reference models on the newer Arm targets, in one run: each Ethos-U profile through
Vela (ops on the NPU, SRAM, flash, Vela's estimated time: estimates, not measurements), and
the Cortex-M33, M4 and M55 firmware under QEMU (instructions per inference, 32-bit arena,
flash), each checked bit for bit against host TFLM.

Every model is deployed once, for cortex-m4 (int8, per-channel, edgekit's engine), and that
same int8 file goes to Vela and to the three firmwares, so the rows compare targets, not
quantizations.

    python benchmarks/armv8m.py --tflm-dir ../shared/tflm/cortex-m --json armv8m.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("resnet8", "mobilenet", "dscnn", "autoencoder")
NPUS = ("ethos-u55-128", "ethos-u55-256", "ethos-u65-256")
CPUS = ("cortex-m33", "cortex-m4", "cortex-m55")


def int8_model(name: str, work: Path) -> tuple[Path, int]:
    """The example deployed for cortex-m4: its int8 .tflite and the host TFLM arena."""
    import edgekit
    from edgekit.report import Role

    bundle = edgekit.deploy(None, "cortex-m4", example=name, out=work / name, analysis=False)
    return bundle.file(Role.DEPLOYED_MODEL), bundle.report.metrics.tensor_arena_bytes


def vela_row(model: Path, target: str, work: Path) -> dict:
    from edgekit.stages.npu import compile_for_npu
    from edgekit.targets import load_target

    result = compile_for_npu(model, work / f"{model.stem}-{target}", load_target(target), False)
    run = result.run
    checks = {c.name: c.ok for c in result.checks()}
    return {
        "target": target,
        "vela": run.version,
        "ops_on_cpu": [op.op for op in run.cpu_ops],
        "npu_operations": run.npu_op_count,
        "sram_bytes": run.sram_used_bytes,
        "flash_bytes": run.flash_used_bytes,
        "estimated_ms": run.inference_ms,
        "estimated_cycles": run.cycles,
        "fits": checks.get("npu_sram", False) and checks.get("npu_flash", False),
        "detail": run.detail,
    }


def firmware_row(model: Path, target: str, arena: int, tflm_dir: str) -> dict:
    from edgekit import metrics as M
    from edgekit.bench.qemu import run_firmware
    from edgekit.targets import load_target

    start = time.monotonic()
    result = run_firmware(model, load_target(target), arena_bytes=None, tflm_dir=tflm_dir, runs=1)
    m = result.metrics or {}
    return {
        "target": target,
        "status": result.status,
        "error": result.error,
        "instructions": (m.get(M.INSTRUCTIONS) or {}).get("per_inference"),
        "arena_32bit": m.get(M.ARENA_BYTES),
        "arena_host": arena,
        "flash": m.get(M.FLASH_BYTES),
        "crc_equal": m.get(M.OUTPUT_DIGEST) == m.get(M.HOST_OUTPUT_DIGEST),
        "seconds": time.monotonic() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--tflm-dir", required=True)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="armv8m-"))
    rows = []
    for name in args.models:
        model, arena = int8_model(name, work)
        print(f"## {name}: {model.stat().st_size:,} B int8, host arena {arena:,} B", flush=True)
        for target in NPUS:
            row = {"model": name, **vela_row(model, target, work)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        for target in CPUS:
            row = {"model": name, **firmware_row(model, target, arena, args.tflm_dir)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    sys.exit(0)


if __name__ == "__main__":
    main()
