"""The firmware stage (MCU targets): build the bundle's firmware and run it under QEMU.

The 32-bit arena, flash, RAM and instruction figures it measures join the report beside the
64-bit host estimates, and the firmware's output is checked bit for bit against host TFLM's.
The build and the run are `edgekit bench`'s (:func:`edgekit.bench.qemu.run_firmware`).

>>> from edgekit.stages.firmware import firmware_skip_reason                     # doctest: +SKIP
>>> firmware_skip_reason(load_target("cortex-m4"), None)                         # doctest: +SKIP
'no TFLM tree (--tflm-dir or EDGEKIT_TFLM_DIR)'
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgekit import metrics as M
from edgekit.bench.firmware import ENV_TFLM_DIR, missing_packages
from edgekit.bench.qemu import run_firmware
from edgekit.bundle import BundleFiles
from edgekit.checks import Check, kib
from edgekit.targets import TargetProfile

STEP = "firmware (qemu)"
RAISED = (
    "the optimized kernels of the 32-bit firmware need more arena than the host's reference "
    "kernels (CMSIS-NN scratch buffers), so tflm/model_ops.h carries the firmware's figure"
)
ESTIMATE = "the arena is the 64-bit host figure and flash/RAM are not measured"
ARENA_NOTE = (
    "kTensorArenaSize in model_ops.h is the 64-bit host figure, raised to the firmware's where "
    "its kernels needed more; the 32-bit firmware ran with arena_32bit_bytes"
)


@dataclass(frozen=True)
class Firmware:
    """What the firmware run measured (figures named as in :mod:`edgekit.metrics`), where each
    came from, its checks, and the ELF it ran (None when it did not get as far as a run)."""

    figures: dict[str, int]
    checks: tuple[Check, ...]
    detail: str
    elf: Path | None = None
    elf_name: str | None = None
    arena_32bit_source: str | None = None
    elf_text_data_bss_arena: str | None = None
    stack_high_water_bytes: int | None = None
    memory_source: str | None = None
    instructions_source: str | None = None
    built_with: str | None = None


def raised_arena(ops_header: str, measured: int, host: int, board: str) -> str:
    """`model_ops.h` with kTensorArenaSize raised to the arena the firmware measured, when
    the optimized kernels need more than the host's reference kernels did.

    >>> text = "#define EDGEKIT_TENSOR_ARENA_SIZE 100"
    >>> raised_arena(text, 120, 100, "mps3-an547").splitlines()[1]
    '#define EDGEKIT_TENSOR_ARENA_SIZE 120'
    """
    old = f"#define EDGEKIT_TENSOR_ARENA_SIZE {host}"
    note = (
        f"// Raised from {host} bytes (the host's reference kernels): the firmware on {board} "
        f"needs {measured}.\n#define EDGEKIT_TENSOR_ARENA_SIZE {measured}"
    )
    return ops_header.replace(old, note)


def keep_arena(
    result: Firmware, profile: TargetProfile, host_bytes: int, files: BundleFiles
) -> str | None:
    """When the firmware needed more arena than the host measured, the bundle's
    `tflm/model_ops.h` gets the firmware's figure (a device would fail AllocateTensors with
    the host's); returns the note saying so, or None."""
    measured = result.figures.get(M.TENSOR_ARENA_32BIT_BYTES)
    header = files.root / "tflm" / "model_ops.h"
    if not measured or measured <= host_bytes or not header.is_file():
        return None
    board = profile.firmware.qemu_board if profile.firmware else None
    text = raised_arena(header.read_text(), measured, host_bytes, board or "the board")
    files.rewrite("tflm/model_ops.h", text)
    return f"kTensorArenaSize raised to {measured:,} B: {RAISED}"


def tflm_tree(tflm_dir: str | Path | None) -> str | Path | None:
    """The TFLM tree to build with: `tflm_dir`, else EDGEKIT_TFLM_DIR."""
    return tflm_dir or os.environ.get(ENV_TFLM_DIR)


def firmware_skip_reason(profile: TargetProfile, tflm_dir: str | Path | None) -> str | None:
    """Why the firmware cannot be built here, or None when it can."""
    if profile.firmware is None:
        return f"target {profile.name} has no [firmware] section (CPU flags, QEMU board)"
    if not tflm_tree(tflm_dir):
        return f"no TFLM tree (--tflm-dir or {ENV_TFLM_DIR})"
    if missing := missing_packages():
        return f"not installed: {', '.join(missing)} (Debian packages)"
    return None


def build_and_run(
    profile: TargetProfile,
    model_file: Path,
    arena_bytes: int | None,
    tflm_dir: str | Path,
    progress: Callable[[str], None] | None = None,
) -> Firmware:
    """Build the firmware for `model_file` and run it under QEMU (3 runs)."""
    result = run_firmware(
        model_file, profile, arena_bytes=arena_bytes, tflm_dir=tflm_dir, progress=progress
    )
    m = result.metrics
    if M.INSTRUCTIONS not in m:  # it did not get as far as a run
        error = result.error or "failed"
        return Firmware({}, (Check("firmware_runs_on_qemu", False, error),), error)
    info = result.device_info
    where = f"QEMU {info['board']}, {info['kernels']} kernels, {' '.join(info['cpu_flags'])}"
    checks = [
        Check(
            "firmware_matches_host_tflm",
            result.ok,
            result.error or f"output CRC {m[M.OUTPUT_DIGEST]} under {where} equals host TFLM's",
        )
    ]
    budget = profile.memory
    fits = [
        (name, used, limit)
        for name, used, limit in (
            ("flash", m[M.FLASH_BYTES], budget.flash_bytes),
            ("RAM", m[M.RAM_BYTES], budget.ram_bytes),
        )
        if limit is not None
    ]
    if fits:
        checks.append(
            Check(
                "firmware_fits_memory",
                all(used <= limit for _, used, limit in fits),
                "; ".join(
                    f"{name} {kib(used)} of {kib(limit)} (ELF, 32-bit)"
                    for name, used, limit in fits
                ),
            )
        )
    per_inference = m[M.INSTRUCTIONS]["per_inference"]
    figures = {
        M.TENSOR_ARENA_32BIT_BYTES: m[M.ARENA_BYTES],
        M.FLASH_BYTES: m[M.FLASH_BYTES],
        M.RAM_BYTES: m[M.RAM_BYTES],
        M.INSTRUCTIONS_PER_INFERENCE: per_inference,
    }
    elf_name = f"edgekit_harness-{info['cpu']}-{info['kernels']}.elf"
    detail = (
        f"{per_inference:,} instructions/inference, arena {m[M.ARENA_BYTES]:,} B (32-bit) vs "
        f"{m[M.ARENA_HOST_BYTES]:,} B (host), flash {m[M.FLASH_BYTES]:,} B, RAM "
        f"{m[M.RAM_BYTES]:,} B"
    )
    return Firmware(
        figures=figures,
        checks=tuple(checks),
        detail=detail,
        elf=Path(info["elf"]),
        elf_name=elf_name,
        arena_32bit_source=f"{m[M.ARENA_SOURCE]}; {where}",
        elf_text_data_bss_arena=" / ".join(
            f"{m[M.ELF][k]:,}" for k in ("text", "data", "bss", "tensor_arena")
        ),
        stack_high_water_bytes=m[M.STACK_BYTES],
        memory_source=m[M.MEMORY_SOURCE],
        instructions_source=m[M.INSTRUCTIONS]["source"] + " (instructions, not cycles)",
        built_with=f"{info['compiler']}; QEMU {info['qemu']}",
    )
