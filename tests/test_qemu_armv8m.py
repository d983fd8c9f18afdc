"""The newer Arm cores under QEMU: Cortex-M55 with Helium on mps3-an547 and Cortex-M33 on
mps2-an505, built from the TFLM tree with CMSIS-NN, checked bit for bit against host TFLM."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import edgekit
from edgekit.report import Role


@pytest.fixture(scope="module")
def armv8m(tflm_tree, tmp_path_factory):
    """The digits example deployed with firmware to cortex-m55 and cortex-m33."""
    out = tmp_path_factory.mktemp("v8m")
    return {
        target: edgekit.deploy(
            None, target, example="digits", tflm_dir=tflm_tree, out=out / target, analysis=False
        )
        for target in ("cortex-m55", "cortex-m33")
    }


@pytest.mark.parametrize(
    ("target", "board"), [("cortex-m55", "mps3-an547"), ("cortex-m33", "mps2-an505")]
)
def test_the_firmware_runs_on_the_core_s_qemu_board_bit_exact(armv8m, target, board):
    bundle = armv8m[target]
    assert bundle.ok, [c for c in bundle.report.checks if not c.ok]
    checks = {c.name: c for c in bundle.report.checks}
    crc = checks["firmware_matches_host_tflm"]
    assert crc.ok and f"under QEMU {board}, cmsis-nn kernels, -mcpu={target}" in crc.detail
    assert checks["firmware_fits_memory"].ok
    metrics = bundle.report.metrics
    assert metrics.instructions_per_inference > 100_000
    assert metrics.tensor_arena_32bit_bytes > 0 and metrics.flash_bytes > 0
    assert bundle.file(Role.FIRMWARE).name.endswith(".elf")


def test_helium_kernels_are_in_the_m55_firmware_and_need_fewer_instructions(armv8m):
    """CMSIS-NN compiled for the M55 takes its MVE (Helium) paths: the ELF holds vector
    instructions on q registers, and the same model needs fewer instructions than with the
    M33's DSP-extension kernels."""
    objdump = shutil.which("arm-none-eabi-objdump")
    assert objdump is not None
    m55, m33 = armv8m["cortex-m55"], armv8m["cortex-m33"]

    def q_register_instructions(bundle) -> int:
        elf = str(bundle.file(Role.FIRMWARE))
        listing = subprocess.run([objdump, "-d", elf], capture_output=True, text=True).stdout
        return len(re.findall(r"\tv[a-z]+\.[a-z0-9]+\tq[0-7]\b", listing))

    assert q_register_instructions(m55) > 100  # e.g. vqrdmulh.s32 q0, q0, r2 (requantize)
    assert q_register_instructions(m33) == 0
    helium = m55.report.metrics.instructions_per_inference
    dsp = m33.report.metrics.instructions_per_inference
    assert helium < 0.6 * dsp, (helium, dsp)


def test_an_arena_the_optimized_kernels_outgrow_is_raised_in_the_bundle(
    armv8m, tflm_tree, tmp_path
):
    """The host measures the arena with reference kernels; CMSIS-NN's kernels may want more
    scratch. The firmware step measures the 32-bit arena; the bundle's kTensorArenaSize is
    never left below what the firmware needed."""
    for bundle in armv8m.values():
        metrics = bundle.report.metrics
        header = (bundle.path / "tflm" / "model_ops.h").read_text()
        needed, written = metrics.tensor_arena_32bit_bytes, metrics.tensor_arena_bytes
        assert needed <= written  # the report's figure is model_ops.h's, raised where needed
        assert f"#define EDGEKIT_TENSOR_ARENA_SIZE {written}" in header
    m55 = armv8m["cortex-m55"]
    assert any("kTensorArenaSize raised to" in n for n in m55.report.notes)  # Helium's scratch
    # the report's kTensorArenaSize is the raised one, and bench builds and runs the bundle
    assert m55.report.metrics.tensor_arena_bytes == m55.report.metrics.tensor_arena_32bit_bytes
    from edgekit.bench.runner import bench

    result = bench(
        m55.path, device="qemu", tflm_dir=tflm_tree, runs=2, warmup=0, db=tmp_path / "r.db"
    )
    assert result.status == "ok", result.error
    assert result.metrics["output_digest"] == result.metrics["host_output_digest"]
