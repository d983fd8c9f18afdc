"""Build the TFLM harness (devices/mcu) into Cortex-M firmware for QEMU's MPS2 boards.

The build is the board port's own Makefile (`devices/mcu/boards/mps2/Makefile`), so what
edgekit runs is what a user runs by hand. Two parts:

- the **TFLM library**: TFLM's core and only the kernels the model's resolver registers
  (:mod:`edgekit.bench.tflm_sources`; about a third of a CMSIS-NN tree for the digits
  example), compiled on every core with progress every few seconds, once per (TFLM tree
  contents, CPU flags, kernels, kernel set, compiler, Makefile) into edgekit's cache
  (`EDGEKIT_CACHE_DIR`, else the user cache directory) under a lock, so parallel benches
  build it once. A cached library built with more kernels serves a model needing fewer;
- the **application**: the harness `main.cc`, the board port and the bundle's model, linked
  against that library: seconds. An arena change recompiles `main.cc` only.

A missing toolchain is one line naming the Debian package.

>>> kernels_of(Path("/nonexistent"))
'reference'
>>> from edgekit.targets import load_target
>>> library_flags(load_target("cortex-m4").firmware)[:2]
['CPU=cortex-m4', 'CPU_FLAGS=-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard']
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from queue import Empty, Queue
from threading import Thread

from edgekit.bench.tflm_sources import library_sources, ops_in
from edgekit.errors import RuntimeFailure, UsageError
from edgekit.files import cache_root
from edgekit.targets import Firmware

ENV_TFLM_DIR = "EDGEKIT_TFLM_DIR"
# tool -> the Debian package that brings it
PACKAGES = {
    "arm-none-eabi-gcc": "gcc-arm-none-eabi",
    "make": "make",
    "qemu-system-arm": "qemu-system-arm",
}
BUILD_TIMEOUT = 3600.0  # seconds for one make run
PROGRESS_SECONDS = 5.0  # a cold library build reports this often
_COMPILED = re.compile(r"^(CXX|CC) (\S+)$")


@dataclass
class TflmLibrary:
    """A TFLM static library for one (tree, CPU flags, kernels, compiler)."""

    path: Path
    cpu: str
    kernels: str  # "cmsis-nn" | "reference"
    compiler: str  # the arm-none-eabi-gcc version line
    cached: bool  # it came from the cache
    seconds: float  # build time, 0 when cached


@dataclass
class FirmwareBuild:
    """One linked harness ELF and the library it was linked against."""

    elf: Path
    library: TflmLibrary
    app_seconds: float
    arena_bytes: int | None  # kTensorArenaSize given at build time (None: the bundle's)


def board_dir() -> Path:
    """The shipped MPS2 board port (startup, linker script, UART, timer, Makefile)."""
    return Path(str(resources.files("edgekit.devices.mcu") / "boards" / "mps2"))


def harness_dir() -> Path:
    return Path(str(resources.files("edgekit.devices.mcu")))


def require_tool(tool: str) -> str:
    """The tool's path, or a UsageError naming the Debian package that has it."""
    found = shutil.which(tool)
    if found is None:
        extra = " libnewlib-arm-none-eabi" if "gcc" in tool else ""
        raise UsageError(
            f"{tool} not found: install Debian's {PACKAGES[tool]} "
            f"(apt-get install {PACKAGES[tool]}{extra})"
        )
    return found


def _has_newlib(gcc: str) -> bool:
    specs = subprocess.run(
        [gcc, "-print-file-name=nano.specs"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    return os.path.isabs(specs)  # gcc echoes the bare name when it has no such file


def missing_packages() -> list[str]:
    """The Debian packages a QEMU firmware run still needs (empty: all there)."""
    missing = [package for tool, package in PACKAGES.items() if shutil.which(tool) is None]
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is not None and not _has_newlib(gcc):
        missing.append("libnewlib-arm-none-eabi")
    return missing


def require_toolchain() -> str:
    """arm-none-eabi-gcc with newlib-nano; returns its version line."""
    gcc = require_tool("arm-none-eabi-gcc")
    require_tool("make")
    if not _has_newlib(gcc):
        raise UsageError(
            "arm-none-eabi-gcc has no newlib (nano.specs not found): install Debian's "
            "libnewlib-arm-none-eabi"
        )
    version = subprocess.run([gcc, "--version"], capture_output=True, text=True, timeout=30)
    return version.stdout.splitlines()[0] if version.stdout else "arm-none-eabi-gcc"


def tflm_tree(path: str | os.PathLike[str] | None) -> Path:
    """The user's TFLM tree (`--tflm-dir`, else EDGEKIT_TFLM_DIR), checked."""
    path = path or os.environ.get(ENV_TFLM_DIR)
    if not path:
        raise UsageError(
            "--device qemu builds TFLM from source: pass --tflm-dir (a tree from tflite-micro's "
            "create_tflm_tree.py, with OPTIMIZED_KERNEL_DIR=cmsis_nn for CMSIS-NN) or set "
            f"{ENV_TFLM_DIR}"
        )
    tree = Path(path).expanduser().resolve()
    if not (tree / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").is_file():
        raise UsageError(
            f"{tree} is not a TFLM tree: no tensorflow/lite/micro/micro_interpreter.h "
            "(make one with tflite-micro's create_tflm_tree.py)"
        )
    return tree


def kernels_of(tree: Path) -> str:
    """`cmsis-nn` when the tree carries CMSIS-NN (and its kernels), else `reference`."""
    return "cmsis-nn" if (tree / "third_party" / "cmsis_nn").is_dir() else "reference"


def library_flags(firmware: Firmware) -> list[str]:
    """The make variables that decide the TFLM library (and the application's ABI)."""
    return [f"CPU={firmware.cpu}", f"CPU_FLAGS={' '.join(firmware.cpu_flags)}", "OPT=-O2"]


def _tree_digest(tree: Path) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(tree):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            digest.update(str(path.relative_to(tree)).encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def cache_dir(kind: str) -> Path:
    """`kind` ("tflm-lib", "firmware") under edgekit's cache directory."""
    return cache_root() / kind


class _BuildProgress:
    """Every PROGRESS_SECONDS while make compiles: files done of the total, and about how long
    the rest takes at the rate so far. A C++ source counts as ten C sources: TFLM's .cc files
    (templates, flatbuffers) took ~12 s each here and CMSIS-NN's .c files ~1 s."""

    def __init__(
        self, what: str, sources: list[str], progress: Callable[[str], None] | None
    ) -> None:
        self.what, self.progress = what, progress
        self.weights = {name: 1.0 if name.endswith(".cc") else 0.1 for name in sources}
        self.left = sum(self.weights.values())
        self.done, self.work_done, self.start = 0, 0.0, time.monotonic()
        self.shown = self.start

    def compiled(self, name: str) -> None:
        self.done += 1
        weight = self.weights.get(name, 0.0)
        self.work_done, self.left = self.work_done + weight, self.left - weight

    def tick(self) -> None:
        now = time.monotonic()
        if self.progress is None or not self.weights or now - self.shown < PROGRESS_SECONDS:
            return
        self.shown = now
        elapsed = now - self.start
        left = "estimating the time left"
        if self.work_done:
            left = f"about {max(self.left, 0) * elapsed / self.work_done:.0f} s left"
        total = len(self.weights)
        self.progress(f"{self.what}: {self.done}/{total} files, {elapsed:.0f} s, {left}")


def _make(
    args: list[str],
    what: str,
    progress: Callable[[str], None] | None = None,
    sources: list[str] | None = None,
) -> str:
    """Run make; report its compiled files (CXX/CC lines) of `sources` to `progress` every few
    seconds, however long one file takes; return its output."""
    command = [require_tool("make"), "-f", str(board_dir() / "Makefile"), *args]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    queue: Queue[str | None] = Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            queue.put(line)
        queue.put(None)

    Thread(target=read, daemon=True).start()
    status = _BuildProgress(what, sources or [], progress)
    try:
        while True:
            try:
                line = queue.get(timeout=1.0)
            except Empty:
                line = ""
            if line is None:
                break
            if line:
                lines.append(line.rstrip())
                compiled = _COMPILED.match(line.strip())
                if compiled:
                    status.compiled(compiled.group(2))
            status.tick()
            if time.monotonic() - status.start > BUILD_TIMEOUT:
                raise RuntimeFailure(f"{what} took over {BUILD_TIMEOUT:.0f} s and was stopped")
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        errors = [line for line in lines if "error" in line.lower()] or lines[-3:]
        detail = errors[0].strip() if errors else f"make exited with {proc.returncode}"
        raise UsageError(f"{what} failed: {detail[:300]}")
    return "\n".join(lines)


def _library_key(tree: Path, firmware: Firmware, compiler: str) -> str:
    """What decides every object of the library but the choice of sources."""
    parts = [
        _tree_digest(tree),
        *library_flags(firmware),
        compiler,
        (board_dir() / "Makefile").read_text(),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _cached_library(prefix: Path, sources: list[str]) -> Path | None:
    """A cached library built from these sources or more (the linker takes only what the
    model's resolver references, so a superset links the same firmware)."""
    wanted = set(sources)
    for listing in sorted(prefix.parent.glob(f"{prefix.name}-*/sources.txt")):
        if wanted <= set(listing.read_text().split()):
            return listing.parent / "libtflm.a"
    return None


def tflm_library(
    tree: Path,
    firmware: Firmware,
    model_ops: Path,
    progress: Callable[[str], None] = print,
    jobs: int | None = None,
    compiler: str | None = None,
) -> TflmLibrary:
    """The TFLM library with TFLM's core and the kernels `model_ops` (a bundle's
    `tflm/model_ops.h`) registers, for (tree, CPU flags, compiler): from the cache, or built
    into it first on `jobs` (default: every) cores. `compiler` is :func:`require_toolchain`'s
    answer, asked here if not given."""
    compiler = compiler or require_toolchain()
    kernels = kernels_of(tree)
    if not model_ops.is_file():
        raise UsageError(
            f"no {model_ops.name} in {model_ops.parent}: it names the model's ops "
            "(edgekit deploy writes it)"
        )
    methods = ops_in(model_ops.read_text(errors="replace"))
    sources = library_sources(tree, methods)
    key = _library_key(tree, firmware, compiler)
    prefix = cache_dir("tflm-lib") / f"{firmware.cpu}-{kernels}-{key}"
    chosen = hashlib.sha256("\n".join(sources).encode()).hexdigest()[:8]
    folder = prefix.with_name(f"{prefix.name}-{chosen}")
    library = TflmLibrary(folder / "libtflm.a", firmware.cpu, kernels, compiler, True, 0.0)
    found = _cached_library(prefix, sources)
    if found is not None:
        library.path = found
        return library
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another bench may be building it right now
        found = _cached_library(prefix, sources)
        if found is not None:
            library.path = found
            return library
        start = time.monotonic()
        jobs = jobs or os.cpu_count() or 1
        with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".building-") as work:
            listing = Path(work) / "sources.txt"
            listing.write_text("\n".join(sources) + "\n")
            args = [
                f"TFLM_DIR={tree}",
                *library_flags(firmware),
                f"LIB_DIR={work}",
                f"BUILD_DIR={work}",
                f"TFLM_SOURCE_LIST={listing}",
            ]
            names = ", ".join(m.removeprefix("Add") for m in methods)
            progress(
                f"building the TFLM library once ({kernels} kernels, {firmware.cpu}): "
                f"{len(sources)} files (TFLM's core and the kernels of {names}) on {jobs} "
                "cores; it is cached for later builds"
            )
            _make(
                [*args, f"-j{jobs}", "lib"],
                f"TFLM library ({kernels}, {firmware.cpu})",
                progress,
                sources,
            )
            folder.mkdir(exist_ok=True)
            os.replace(Path(work) / "libtflm.a", library.path)
            os.replace(listing, folder / "sources.txt")  # last: it marks the library complete
        library.cached, library.seconds = False, time.monotonic() - start
        return library


def build_firmware(
    bundle_tflm: Path,
    tree: Path,
    firmware: Firmware,
    build_dir: Path,
    *,
    library: TflmLibrary | None = None,
    arena_bytes: int | None = None,
    progress: Callable[[str], None] = print,
) -> FirmwareBuild:
    """Link the harness for `firmware.cpu` with the model in `bundle_tflm` (a bundle's
    `tflm/` folder), against `library` (default: :func:`tflm_library`'s)."""
    library = library or tflm_library(tree, firmware, bundle_tflm / "model_ops.h", progress)
    start = time.monotonic()
    args = [
        f"TFLM_DIR={tree}",
        *library_flags(firmware),
        f"TFLM_LIB={library.path}",
        f"HARNESS={harness_dir()}",
        f"BUNDLE_TFLM={bundle_tflm}",
        f"BUILD_DIR={build_dir}",
        f"ARENA={arena_bytes or ''}",
        "all",
    ]
    progress(
        f"compiling the harness and model for {firmware.cpu}"
        + (f" with a {arena_bytes:,}-byte arena" if arena_bytes else "")
    )
    _make(args, f"firmware build ({firmware.cpu})")
    return FirmwareBuild(
        build_dir / "edgekit_harness.elf", library, time.monotonic() - start, arena_bytes
    )
