"""`--device qemu[:BOARD]`: the bundle's TFLM firmware on a Cortex-M emulated by QEMU.

The firmware (see :mod:`edgekit.bench.firmware`) is the real harness `main.cc`, TFLM (with
CMSIS-NN when the tree has it) and the MPS2 board port, built with the target profile's CPU
flags. QEMU runs it with `-icount shift=0`: one guest instruction is one nanosecond of
virtual time, so the board's 25 MHz timer counts instructions, deterministically (two runs
give the same figures). They are reported as **instructions**, never as milliseconds; a
profile with a documented `cpi` and `clock_hz` adds a millisecond figure labelled an estimate.

What one bench does:

1. build the firmware with the bundle's arena (the TFLM library comes from the cache);
2. bisect the smallest arena that runs on this 32-bit CPU (QEMU's `-append arena=N`),
   then rebuild with exactly that arena;
3. run the timed loop under QEMU, through the same line-protocol parser as a real board;
4. read flash and RAM from the ELF (text, data, bss, the arena's share) and the stack and
   heap high-water marks the board port measured;
5. compare the output CRC with host TFLM's on the same input: a mismatch fails the run,
   naming the kernels.

>>> qemu_command("mps2-an386", Path("fw.elf"), "EDGEKIT_RUN 0 1")[:4]
['qemu-system-arm', '-M', 'mps2-an386', '-nographic']
"""

from __future__ import annotations

import hashlib
import platform
import re
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit import metrics as M
from edgekit.bench import firmware as fw
from edgekit.bench.request import BenchRequest, model_file
from edgekit.bench.result import BenchResult, DeviceFailure, latency_stats
from edgekit.bench.serial_link import Collector
from edgekit.bench.uri import parse_device
from edgekit.converters.tflm import write_tflm_sources
from edgekit.errors import UsageError
from edgekit.graph import activation_lower_bound
from edgekit.isolation import call
from edgekit.runtimes.tflm import measure_arena, probe_timeout
from edgekit.targets import TargetProfile, load_target
from edgekit.tflite_model import read_tflite

# QEMU machines the MPS2 board port runs on, and their CPU.
BOARDS = {
    "mps2-an386": "cortex-m4",
    "mps2-an500": "cortex-m7",
    "mps2-an505": "cortex-m33",
    "mps3-an547": "cortex-m55",
}
RUN_TIMEOUT = 600.0
ROOM_BYTES = 64 * 1024  # extra arena tried when the host's does not run on the board


def qemu_command(board: str, elf: Path, arguments: str) -> list[str]:
    """The QEMU command line: instruction counting, semihosting (exit status, arguments)."""
    return [
        "qemu-system-arm",
        "-M",
        board,
        "-nographic",
        "-icount",
        "shift=0",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        str(elf),
        "-append",
        arguments,
    ]


def board_for(profile: Any, requested: str | None) -> str:
    """The QEMU machine: `qemu:BOARD`, else the profile's `[firmware] qemu_board`."""
    firmware = profile.firmware
    if firmware is None:
        raise UsageError(
            f"target {profile.name} has no [firmware] section (CPU flags, QEMU board): "
            "--device qemu builds for cortex-m4, -m7, -m33 and -m55 profiles"
        )
    board = requested or firmware.qemu_board
    if board is None:
        raise UsageError(f"target {profile.name} names no qemu_board; pass --device qemu:BOARD")
    if board not in BOARDS:
        raise UsageError(
            f"unknown QEMU board {board!r} for the MPS2 board port; expected one of: "
            + ", ".join(f"{name} ({cpu})" for name, cpu in BOARDS.items())
        )
    if BOARDS[board] != firmware.cpu:
        raise UsageError(
            f"QEMU board {board} is a {BOARDS[board]}, but target {profile.name} builds for "
            f"{firmware.cpu}"
        )
    return board


def run_elf(elf: Path, board: str, arguments: str, timeout: float = RUN_TIMEOUT) -> dict:
    """Run the ELF under QEMU; the protocol messages (hello, runs, ticks, memory, summary)."""
    command = qemu_command(board, elf, arguments)
    command[0] = fw.require_tool("qemu-system-arm")
    try:
        proc = subprocess.run(
            command, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        raise DeviceFailure(f"QEMU ({board}) did not finish within {timeout:.0f} s") from None
    collector = Collector()
    for raw in proc.stdout.splitlines():
        if collector.feed_line(raw):
            break
    if collector.summary is None:
        stderr = proc.stderr.decode(errors="replace").strip().splitlines()
        detail = stderr[-1] if stderr else f"exit status {proc.returncode}"
        raise DeviceFailure(
            f"QEMU ({board}) ended {collector.where()} without a summary: {detail[:200]}"
        )
    return collector.messages()


def smallest_arena(elf: Path, board: str, low: int, high: int) -> int:
    """The smallest arena in bytes the firmware runs one Invoke with (bisection, about 14 QEMU
    runs). `high` must run; `low` is a lower bound that need not."""
    low = max(0, low - 1)
    while high - low > 1:
        middle = (low + high) // 2
        try:
            run_elf(elf, board, f"arena={middle} EDGEKIT_RUN 0 1", timeout=120)
            high = middle
        except DeviceFailure:
            low = middle
    return high


def elf_sizes(elf: Path) -> dict[str, int]:
    """text, data and bss of the ELF (arm-none-eabi-size), and the tensor arena's bytes."""
    size = subprocess.run(
        ["arm-none-eabi-size", "-B", "-d", str(elf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()
    text, data, bss = (int(v) for v in size[1].split()[:3])
    symbols = subprocess.run(
        ["arm-none-eabi-nm", "-S", "-C", str(elf)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    arena = 0
    for line in symbols.splitlines():
        words = line.split()
        if len(words) >= 4 and "tensor_arena" in words[-1]:
            arena = int(words[1], 16)
    return {"text": text, "data": data, "bss": bss, "tensor_arena": arena}


def host_crc(data: bytes, model: Any, arena: int, name: str) -> str:
    """Host TFLM's (tflite_micro) output CRC on the harness's input, in a worker process.
    `model` is `data` read (:func:`~edgekit.tflite_model.read_tflite`), for the timeout."""
    collected = call(
        "edgekit.bench.tflm_host:simulate",
        data,
        arena,
        name,
        0,
        1,
        timeout=probe_timeout(model) * 3,
        what=f"host TFLM on {name}",
    )
    return collected["summary"]["output_crc32"]


def _qemu_version() -> str:
    out = subprocess.run(
        ["qemu-system-arm", "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    match = re.search(r"version (\S+)", out)
    return match.group(1) if match else "?"


def run_qemu(request: Any) -> BenchResult:
    """Build, size the arena, run, measure and check the bundle's firmware under QEMU."""
    profile = request.profile
    if profile.firmware is None:  # a bundle deployed before profiles had [firmware]
        try:
            profile = replace(profile, firmware=load_target(profile.name).firmware)
        except UsageError:
            pass
        request.profile = profile
    board = board_for(profile, request.device.params.get("board"))
    tree = fw.tflm_tree(request.tflm_dir)
    compiler = fw.require_toolchain()
    fw.require_tool("qemu-system-arm")
    data = request.model.path.read_bytes()
    model = read_tflite(data, request.model.name)
    name = request.model.path.stem
    sources, host_arena = _model_sources(request, model, name)
    build_root = fw.cache_dir("firmware") / (
        f"{request.model.sha256[:16]}-{profile.firmware.cpu}-{fw.kernels_of(tree)}-"
        + hashlib.sha256(str(tree).encode()).hexdigest()[:8]
    )
    library = fw.tflm_library(
        tree, profile.firmware, sources / "model_ops.h", request.progress, compiler=compiler
    )

    def build_with(folder: str, arena: int | None) -> Any:
        return fw.build_firmware(
            sources,
            tree,
            profile.firmware,
            build_root / folder,
            library=library,
            arena_bytes=arena,
            progress=request.progress,
        )

    build = build_with("bundle-arena", None)
    request.progress(f"finding the smallest arena that runs on {board}")
    try:
        first = run_elf(build.elf, board, "EDGEKIT_RUN 0 1", timeout=request.timeout)
        # the arena the firmware was built with (a bundle's model_ops.h may hold more than
        # its report's host figure: raised after a firmware run)
        high = max(host_arena, int((first.get("hello") or {}).get(M.ARENA_BYTES) or 0))
    except DeviceFailure as exc:
        # The host measures the arena with TFLM's reference kernels; optimized kernels ask
        # for larger scratch buffers (CMSIS-NN's Helium kernels: 1,216 B more on the digits
        # net). Try a roomier build before calling the bundle's arena too small.
        high = max(2 * host_arena, host_arena + ROOM_BYTES)
        request.progress(
            f"the host's {host_arena:,}-byte arena is too small on {board}; trying {high:,} bytes"
        )
        build = build_with("roomy-arena", high)
        try:
            run_elf(build.elf, board, "EDGEKIT_RUN 0 1", timeout=request.timeout)
        except DeviceFailure:
            raise DeviceFailure(
                f"the bundle's {host_arena:,}-byte arena does not run, nor {high:,} bytes: {exc}"
            ) from None
    low, _ = activation_lower_bound(model)
    minimum = smallest_arena(build.elf, board, low, high)
    final = build_with("minimal-arena", minimum)
    settings = request.settings
    request.progress(f"running {settings['runs']} runs on QEMU {board} ({library.kernels})")
    collected = run_elf(
        final.elf,
        board,
        f"EDGEKIT_RUN {settings['warmup']} {settings['runs']}",
        timeout=request.timeout,
    )
    sizes = elf_sizes(final.elf)
    request.progress("checking the output CRC against host TFLM")
    expected = host_crc(data, model, host_arena, name)
    return _result(request, collected, board, build, final, sizes, minimum, host_arena, expected)


def run_firmware(
    model: Path,
    profile: TargetProfile,
    *,
    arena_bytes: int | None,
    tflm_dir: str | Path,
    progress: Callable[[str], None] | None = None,
    runs: int = 3,
    warmup: int = 1,
    timeout: float = 600.0,
) -> BenchResult:
    """Deploy's firmware step: :func:`run_qemu` on a `.tflite` (beside its `tflm/` sources,
    whose arena is `arena_bytes`) for `profile`, on its QEMU board. A device failure is a
    result with status `failed` and the reason, not an exception.

    >>> result = run_firmware(Path("bundle/model.tflite"), load_target("cortex-m4"),
    ...                       arena_bytes=20480, tflm_dir="tflm-tree")  # doctest: +SKIP
    >>> result.metrics["instructions"]["per_inference"]                 # doctest: +SKIP
    1234567
    """
    found = model_file(Path(model))
    found.arena_bytes = arena_bytes
    request = BenchRequest(
        model=found,
        device=parse_device("qemu"),
        profile=profile,
        settings={
            "runs": runs,
            "warmup": warmup,
            "threads": 1,
            "delegate": "none",
            "input": "random",
        },
        timeout=timeout,
        tflm_dir=tflm_dir,
        progress=progress or (lambda message: None),
    )
    try:
        return run_qemu(request)
    except DeviceFailure as exc:
        return BenchResult(status="failed", error=str(exc), **request.identity())


def _model_sources(request: Any, model: Any, name: str) -> tuple[Path, int]:
    """The bundle's tflm/ folder and arena; for a bare .tflite, sources made here."""
    bundle_tflm = request.model.path.parent / "tflm"
    arena = request.model.arena_bytes
    if arena is not None and (bundle_tflm / "model_data.cc").is_file():
        return bundle_tflm, arena
    request.progress("measuring the TFLM arena on this host")
    measured = measure_arena(model)
    out = fw.cache_dir("firmware") / f"{request.model.sha256[:16]}-sources"
    write_tflm_sources(model, name, out, measured)
    return out, measured.tensor_arena_bytes


def _result(
    request: Any,
    collected: dict,
    board: str,
    build: Any,
    final: Any,
    sizes: dict[str, int],
    minimum: int,
    host_arena: int,
    expected: str,
) -> BenchResult:
    hello, summary = collected["hello"] or {}, collected["summary"]
    memory, library = collected["memory"] or {}, final.library
    tick_ns = int(hello.get("tick_ns") or 0)
    if tick_ns <= 0 or not collected["ticks"]:
        raise DeviceFailure("the firmware reported no tick clock: cannot count instructions")
    per_run = [ticks * tick_ns for ticks in collected["ticks"]]  # 1 ns = 1 instruction
    budget = request.profile.memory
    ram = sizes["data"] + sizes["bss"] + memory.get(M.STACK_BYTES, 0) + memory.get(M.HEAP_BYTES, 0)
    metrics: dict[str, Any] = {
        M.INSTRUCTIONS: {
            "per_inference": round(sum(per_run) / len(per_run)),
            "min": min(per_run),
            "max": max(per_run),
            "resolution": tick_ns,
            "first_inference": round(summary.get("first_us", 0) * 1000),
            "source": f"QEMU {board} -icount shift=0 (1 instruction = 1 ns), {len(per_run)} runs",
        },
        M.OUTPUT_DIGEST: f"crc32:{summary.get('output_crc32')}",
        M.HOST_OUTPUT_DIGEST: f"crc32:{expected}",
        M.ARENA_BYTES: minimum,
        M.ARENA_USED_BYTES: hello.get(M.ARENA_USED_BYTES),
        M.ARENA_SOURCE: "smallest arena that runs on the 32-bit CPU under QEMU (bisected "
        "to the byte)",
        M.ARENA_HOST_BYTES: host_arena,
        M.ELF: sizes,
        M.FLASH_BYTES: sizes["text"] + sizes["data"],
        M.RAM_BYTES: ram,
        M.FLASH_BUDGET_BYTES: budget.flash_bytes,
        M.RAM_BUDGET_BYTES: budget.ram_bytes,
        M.STACK_BYTES: memory.get(M.STACK_BYTES),
        M.HEAP_BYTES: memory.get(M.HEAP_BYTES),
        M.MEMORY_SOURCE: "arm-none-eabi-size on the ELF built with the smallest arena; stack "
        "and heap high-water marks from the MPS2 board port",
        M.BUILD_SECONDS: {
            "tflm_library": round(library.seconds, 1),
            "library_cached": library.cached,
            "application": round(build.app_seconds + final.app_seconds, 1),
        },
    }
    firmware = request.profile.firmware
    estimates: list[float] = []
    if firmware.cpi and firmware.clock_hz:
        estimates = [n * firmware.cpi / firmware.clock_hz * 1000 for n in per_run]
        metrics[M.LATENCY_MS] = latency_stats(estimates)
        metrics[M.LATENCY_SOURCE] = (
            f"estimate: instructions x CPI {firmware.cpi:g} / "
            f"{firmware.clock_hz / 1e6:g} MHz (target profile)"
        )
    identity = request.identity()
    error = None
    if summary.get("output_crc32") != expected:
        error = (
            f"output CRC {summary.get('output_crc32')} under QEMU ({library.kernels} kernels, "
            f"{library.cpu}) differs from host TFLM's {expected} (reference kernels)"
        )
    return BenchResult(
        status="failed" if error else "ok",
        error=error,
        runtime=f"tflm (qemu {board})",
        runtime_version=f"TFLM {library.kernels}; protocol {hello.get('protocol')}",
        delegate=None,
        metrics=metrics,
        device_info={
            "simulation": "qemu",
            "board": board,
            "cpu": library.cpu,
            "kernels": library.kernels,
            "cpu_flags": list(firmware.cpu_flags),
            "compiler": library.compiler,
            "qemu": _qemu_version(),
            "elf": str(final.elf),
            "host": platform.machine(),
        },
        latencies_ms=estimates,
        **identity,
    )
